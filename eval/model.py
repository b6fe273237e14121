"""The stand-in's "model" for the eval: rules, not a language model. It answers from the flow's
own texts (its intents' keywords and answers, Hebrew and a few English words), says it does not
know anything else and offers a message, asks for a person and ends the call with the line's
tools, and books, cancels and refuses through the booking tools as the system prompt says. It
proves the line's plumbing on the OpenAI path (tools, transfer, hang-up, booking), not how a
real model would phrase or decide."""

from __future__ import annotations

import json

from ivr.engines.scripted import normalize, with_hours
from tests.providers import Called

DONT_KNOW = "אין לי מידע על זה. אפשר להשאיר הודעה לצוות או לבקש לדבר עם נציג."
ENGLISH = {"hours": "hours", "open": "hours", "opening": "hours", "address": "address",
           "where": "address", "price": "prices", "prices": "prices", "cost": "prices",
           "hello": "hello", "hi": "hello", "bye": "thanks", "thanks": "thanks"}
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
        self.intents = {i["name"]: i for i in self.flow.get("intents") or []}
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
        if intent is None:
            return [DONT_KNOW]
        if intent["name"] == "thanks":
            return [intent["answer"], Called("end_call")]
        return [intent["answer"]] if intent.get("answer") else [DONT_KNOW]

    def intent(self, words: str) -> dict | None:
        """The flow's intent with most of its keywords (or a key) in the caller's words."""
        if words.isdigit() and len(words) == 1:
            return next((i for i in self.intents.values() if str(i.get("dtmf")) == words), None)
        scores = {name: sum(normalize(k) in words for k in i.get("keywords") or [])
                  for name, i in self.intents.items()}
        for word in words.split():
            if ENGLISH.get(word) in scores:
                scores[ENGLISH[word]] += 1
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
