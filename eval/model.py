"""The stand-in's "model" for the eval: rules, not a language model. It answers from the facts
its system prompt carries (the passages retrieval finds for the caller's words, Hebrew and a
few English words; a price question without a service: every price), calls `cannot_answer`
for anything else and says it does not know with an offer, greets and says goodbye as the
flow's hello and thanks do, asks for a person and ends the call with the line's tools, and
books, cancels and refuses through the booking tools as the system prompt says. Asked about a
promotion (INVENTS), it makes one up with a price, as a real model may: the line's check of
figures must keep it from the caller. It proves the line's plumbing on the OpenAI path, not
how a real model would phrase or decide."""

from __future__ import annotations

import json

from ivr.engines.scripted import normalize, with_hours
from ivr.facts.grounding import prompt_passages
from ivr.facts.retrieval import Retriever
from ivr.facts.words import content_words
from tests.providers import Called

DONT_KNOW = "אין לי מידע על זה. אפשר להשאיר הודעה לצוות או לבקש לדבר עם נציג."
INVENTS = ("מבצע", "promotion")  # asked about these, the "model" makes up a price
INVENTED = "יש אצלנו מבצע החודש על תספורת ב-60 ₪ בלבד."  # 60: in no facts
CHAT_INTENTS = ("hello", "thanks")  # the flow's intents that are talk, not facts
ENGLISH = {"hours": "שעות הפתיחה", "open": "שעות הפתיחה", "opening": "שעות הפתיחה",
           "address": "כתובת", "where": "כתובת", "parking": "חניה", "price": "מחיר",
           "prices": "מחיר", "cost": "מחיר", "hello": "שלום", "hi": "שלום", "bye": "תודה",
           "thanks": "תודה"}
UNDERSTANDS = {**ENGLISH, "איפה": "כתובת", "נמצאים": "כתובת", "להגיע": "כתובת",
               "מגיעים": "כתובת", "פתוחים": "שעות הפתיחה", "פתוח": "שעות הפתיחה",
               "סוגרים": "שעות הפתיחה", "מתי": "שעות הפתיחה", "שעות": "שעות הפתיחה",
               "השעות": "שעות הפתיחה"}  # what a word asks about
PRICE_WORDS = {"כמה", "עולה", "עולים", "עולות", "מחיר", "מחירים", "המחיר", "המחירים", "עלות",
               "מחירון", "זה", "אצלכם"}  # the "model" understands these as "what does it cost"
PRICE = "₪"  # a passage that names a price
PERSON = ("נציג", "בן אדם", "מנהל", "לדבר עם", "בעל העסק", "manager", "person")
CANCEL = ("לבטל", "ביטול")
YES = ("כן", "yes", "בטח", "אפשר")


def words_after(text: str, marks: tuple[str, ...]) -> str:
    """The caller's words after the first of `marks` they said ("" when none)."""
    for mark in marks:
        if mark in text:
            return text.split(mark, 1)[1].strip(" ?.,!")
    return ""


class Receptionist:
    """A chat request's body → what the "model" writes: text and Called tool calls."""

    def __init__(self, flow: dict):
        self.flow = with_hours(flow)
        self.intents = {i["name"]: i for i in self.flow.get("intents") or []
                        if i["name"] in CHAT_INTENTS}
        self.services = [s["name"] for s in (self.flow.get("booking") or {}).get("services", [])]

    def __call__(self, body: dict) -> list:
        messages = body["messages"]
        last = messages[-1]
        tools = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
        if last["role"] == "tool":
            return self.after_tool(tools[-1])
        return self.answer(last["content"] or "", messages, tools)

    def answer(self, text: str, messages: list[dict], tools: list[dict]) -> list:
        words = normalize(text)
        said_before = next((m["content"] or "" for m in reversed(messages[:-1])
                            if m["role"] == "assistant" and m.get("content")), "")
        mine = next((t["appointments"] for t in reversed(tools) if t.get("appointments")), [])
        offered = next((t["slots"] for t in reversed(tools) if t.get("slots")), [])
        if words in ("1", "2", "3") and offered and said_before.endswith("לקבוע?"):
            chosen = offered[min(int(words), len(offered)) - 1]  # "לבחירה הקישו": a key picks
            return [Called("book", {"slot_id": chosen["slot_id"], "name": ""})]
        if words.split()[:1] and words.split()[0] in YES:
            if mine and (said_before.startswith("לבטל את התור")
                         or said_before.endswith("לבטל אותו?")):
                return [Called("cancel", {"appointment_id": mine[0]["appointment_id"]})]
            if said_before.endswith("לקבוע?") and offered:
                return [Called("book", {"slot_id": offered[0]["slot_id"], "name": ""})]
        if words.split()[:1] and words.split()[0] in YES and said_before.endswith("?"):
            return ["במה אפשר לעזור?"]
        if any(w in words for w in PERSON):
            return [Called("transfer_to_person")]
        if any(w in words for w in CANCEL) and mine:
            return [f"לבטל את התור {mine[0]['said']}?"]
        if any(w in words for w in CANCEL) or "התור שלי" in words:
            return [Called("my_appointments")]
        if self.services and ("תור" in words.split() or "לקבוע" in words):
            service = next((s for s in self.services if s in words), self.services[0])
            when = words_after(words, (service, "תור", "לקבוע"))
            when = when.removeprefix("ל").strip() if when.startswith("ל" + service) else when
            return [Called("find_free_times", {"service": service, "when_words": when})]
        intent = self.intent(words)
        if any(w in words for w in INVENTS):
            return [INVENTED]
        found = self.from_facts(words, messages[0]["content"] if messages else "")
        if found:
            return [found]
        if intent is None:
            return [Called("cannot_answer", {"question": text}), DONT_KNOW]
        if intent["name"] == "thanks":
            return [intent["answer"], Called("end_call")]
        return [intent["answer"]]

    @staticmethod
    def from_facts(words: str, prompt: str) -> str:
        """The answer the prompt's facts give: the passage retrieval finds for the caller's
        words (their price words understood); for a price alone, every price."""
        passages = prompt_passages(prompt)
        said = " ".join(UNDERSTANDS.get(w, w) for w in words.split()
                        if w in UNDERSTANDS or not w.isascii())
        rest = " ".join(w for w in said.split() if w not in PRICE_WORDS)
        asks_price = rest != said
        if not content_words(rest):
            return " ".join(p.text for p in passages if PRICE in p.text) if asks_price else ""
        hits = Retriever(passages).search(rest, limit=3)
        if asks_price:
            hits = [h for h in hits if PRICE in h.passage.text]
            if not hits:  # a price of nothing the facts name: the prices there are
                return " ".join(p.text for p in passages if PRICE in p.text)
        return hits[0].passage.text if hits else ""

    def intent(self, words: str) -> dict | None:
        """The flow's intent with most of its keywords (or a key) in the caller's words."""
        if words.isdigit() and len(words) == 1:
            return next((i for i in self.intents.values() if str(i.get("dtmf")) == words), None)
        said = " ".join(ENGLISH.get(w, w) for w in words.split())
        scores = {name: sum(normalize(k) in said for k in i.get("keywords") or [])
                  for name, i in self.intents.items()}
        best = max(scores, key=lambda name: scores[name], default=None)
        return self.intents[best] if best and scores[best] else None

    def after_tool(self, result: dict) -> list:
        """The words after a tool's result, from that result alone (never a time of its own)."""
        if "error" in result:
            return ["כרגע אי אפשר לקבוע. אפשר להשאיר הודעה לצוות."]
        if result.get("ask"):
            return [result["ask"]]
        if result.get("booked"):
            return [f"קבעתי לך {result['service']} {result['said']}. אפשר לעזור במשהו נוסף?"]
        if result.get("cancelled"):
            return [f"התור {result['said']} בוטל. אפשר לעזור במשהו נוסף?"]
        if "appointments" in result:
            mine = result["appointments"]
            if not mine:
                return ["לא מצאתי תור על המספר הזה. רוצה לקבוע תור?"]
            return [f"יש לך תור ל{mine[0]['service']} {mine[0]['said']}. לבטל אותו?"]
        slots = result.get("slots") or []
        if not slots:
            return [result.get("none") or "אין תורים פנויים בימים הקרובים."]
        why = result.get("not_free") or result.get("why") or ""
        head = f"{why}. " if why else ""
        if len(slots) == 1 and not why:
            return [f"יש תור {slots[0]['said']}. לקבוע?"]
        times = ", ".join(s["said"] for s in slots[:-1]) + f" או {slots[-1]['said']}"
        return [f"{head}אפשר {times}. הראשון מתאים? לקבוע?"]
