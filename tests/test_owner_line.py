"""Calls through the emulator that reach the owner: ring-first, transfers, the line hanging up
after a goodbye, and the owner told of a message by SMS (the emulator) and e-mail (SMTP)."""

import pytest
import requests
import yaml

from ivr.engines.fake import FakeASR
from ivr.engines.scripted import DEFAULT_FLOW

from .conftest import sign, wait_until

OWNER = "+972509998877"
ENGINES = {"asr_engine": "fake", "llm_engine": "scripted", "tts_engine": "fake",
           "turn_mode": "stream"}
FLOW = yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))
NAME, PHONE, REASON = "דנה כהן", "אפס חמש שתיים תשע שמונה שבע שש חמש ארבע שלוש", "תור לשבוע הבא"
UNAVAILABLE_THEN_NAME = f"{FLOW['owner_unavailable']} {FLOW['lead']['ask_name']}"


def flow_file(tmp_path, open_now: bool) -> str:
    """The default flow with hours that are always open (none given) or never (every day
    closed): a test cannot depend on the day and hour it runs."""
    flow = dict(FLOW)
    if open_now:
        flow.pop("hours")
        flow.pop("booking")  # appointments are booked in the hours: none without them
    else:
        flow["hours"] = {}
    path = tmp_path / ("open.yaml" if open_now else "closed.yaml")
    path.write_text(yaml.safe_dump(flow, allow_unicode=True), encoding="utf-8")
    return str(path)


def owner_line(phone_line, tmp_path, open_now=True, asr_texts=(), **changes):
    """The line on the emulator with the owner's phone; the fake ASR hears `asr_texts` in turn."""
    line = phone_line(**{**ENGINES, "owner_phone": OWNER, "owner_dial_timeout_sec": 5,
                         "flow_file": flow_file(tmp_path, open_now), **changes})
    if asr_texts:
        line.runtime.engines.asr = FakeASR(list(asr_texts))
    return line


def said_by_line(line, call_sid):
    return [m["text"] for m in line.store.history(call_sid) if m["role"] == "assistant"]


def hung_up_by(result) -> list[str]:
    return [e["who"] for e in result.timeline if e["text"] == "hangs up"]


def ended(line, call_sid) -> dict:
    return wait_until(lambda: (c := line.store.get_call(call_sid)) and c["ended"] and c)


def test_ring_first_answered_the_owner_has_the_call_and_the_line_never_speaks(phone_line,
                                                                             tmp_path):
    line = owner_line(phone_line, tmp_path, owner_ring_first=True)
    result = line.carrier.place_call({"steps": [], "end": "wait", "dial": "answer",
                                      "dial_talk": 4})
    (dial,) = result.dials
    assert (dial["number"], dial["status"], dial["duration"]) == (OWNER, "completed", 4)
    assert result.streams == [] and result.heard == []
    assert hung_up_by(result) == ["line"]  # the owner hung up; the line ends the call
    assert ended(line, result.call_sid)["outcome"] == "owner-answered"


def test_ring_first_not_answered_the_line_takes_the_call(phone_line, tmp_path):
    line = owner_line(phone_line, tmp_path, owner_ring_first=True,
                      asr_texts=["מה שעות הפתיחה?"])
    result = line.carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}], "dial": "busy"})
    assert [d["status"] for d in result.dials] == ["busy"]
    always_open = "אנחנו פתוחים בכל יום, בכל שעה."  # {hours} of a flow without hours:
    assert said_by_line(line, result.call_sid) == [always_open]
    assert hung_up_by(result) == ["caller"]


def test_ring_first_out_of_hours_rings_nobody(phone_line, tmp_path):
    line = owner_line(phone_line, tmp_path, open_now=False, owner_ring_first=True,
                      asr_texts=["מה שעות הפתיחה?"])
    result = line.carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}], "dial": "answer"})
    assert result.dials == [] and len(said_by_line(line, result.call_sid)) == 1


@pytest.mark.parametrize("reply_mode", ["play", "stream"])
def test_a_transfer_nobody_answers_comes_back_and_takes_the_message(phone_line, tmp_path,
                                                                   reply_mode):
    line = owner_line(phone_line, tmp_path, reply_mode=reply_mode,
                      asr_texts=[NAME, PHONE, REASON])
    result = line.carrier.place_call({
        "steps": [{"dtmf": "0"}, {"say": NAME}, {"say": PHONE}, {"say": REASON}],
        "dial": "no-answer", "reply_timeout": 60})
    assert [(d["number"], d["status"]) for d in result.dials] == [(OWNER, "no-answer")]
    assert said_by_line(line, result.call_sid)[:2] == [FLOW["transferring"],
                                                       UNAVAILABLE_THEN_NAME]
    (lead,) = wait_until(lambda: line.store.leads())
    assert (lead["name"], lead["phone"], lead["reason"]) == (NAME, "0529876543", REASON)
    turns = wait_until(lambda: (t := line.store.turns(result.call_sid)) and len(t) == 5 and t)
    assert [(t["source"], t["reply_text"]) for t in turns][:2] == [  # every one in the table
        ("stream", FLOW["transferring"]), ("line", UNAVAILABLE_THEN_NAME)]


class ReplaysTheDialResult(FakeASR):
    """Hears the caller's answers in turn; while the first is heard (the call back on its live
    stream after the owner's phone rang), the `<Dial>`'s result is POSTed again, signed, as a
    balancer or a retry would resend it."""

    def __init__(self, line, texts: list[str]):
        super().__init__(texts)
        self.line, self.replies = line, []

    def transcribe(self, pcm16_8k: bytes) -> str:
        if not self.replies:
            self.replies.append(self.replay())
        return super().transcribe(pcm16_8k)

    def replay(self) -> requests.Response:
        (call,) = self.line.store.list_calls()
        (sent,) = [e["detail"] for e in self.line.store.events(call["call_sid"])
                   if e["kind"] == "WEBHOOK" and e["detail"]["route"] == "/webhook/dial_result"]
        url = self.line.url + "/webhook/dial_result?why=transfer"
        token = self.line.runtime.settings.twilio_auth_token
        return requests.post(url, data=sent["params"], timeout=30,
                             headers={"X-Twilio-Signature": sign(url, sent["params"], token)})


def test_a_replayed_dial_result_on_a_live_stream_changes_nothing(phone_line, tmp_path):
    line = owner_line(phone_line, tmp_path, reply_mode="stream")
    line.runtime.engines.asr = asr = ReplaysTheDialResult(line, [NAME, PHONE, REASON])
    result = line.carrier.place_call({
        "steps": [{"dtmf": "0"}, {"say": NAME}, {"say": PHONE}, {"say": REASON}],
        "dial": "no-answer", "reply_timeout": 60})
    (replay,) = asr.replies
    assert replay.status_code == 200 and "<Record" not in replay.text and "<Play" not in replay.text
    assert "<Stream" in replay.text  # how the call listens now: the stream it is on
    said = said_by_line(line, result.call_sid)
    assert said[:2] == [FLOW["transferring"], UNAVAILABLE_THEN_NAME]
    assert said.count(UNAVAILABLE_THEN_NAME) == 1
    (lead,) = wait_until(lambda: line.store.leads())
    assert (lead["name"], lead["phone"], lead["reason"]) == (NAME, "0529876543", REASON)
    kinds = [e["kind"] for e in line.store.events(result.call_sid)]
    assert "STREAM_FALLBACK" not in kinds and kinds.count("DIAL_RESULT_IGNORED") == 1
    assert len(result.streams) == 2  # the first turn's, then one after the owner's phone rang


def test_a_transfer_the_owner_answers_is_theirs(phone_line, tmp_path):
    line = owner_line(phone_line, tmp_path)
    result = line.carrier.place_call({"steps": [{"dtmf": "0"}], "end": "wait",
                                      "dial": {OWNER: "answer"}, "dial_talk": 3})
    assert [d["status"] for d in result.dials] == ["completed"]
    assert said_by_line(line, result.call_sid) == [FLOW["transferring"]]
    assert hung_up_by(result) == ["line"]
    assert ended(line, result.call_sid)["outcome"] == "transferred"


def test_out_of_hours_asking_for_a_person_takes_a_message_directly(phone_line, tmp_path):
    line = owner_line(phone_line, tmp_path, open_now=False)
    result = line.carrier.place_call({"steps": [{"dtmf": "0"}], "dial": "answer"})
    assert result.dials == []
    assert said_by_line(line, result.call_sid) == [FLOW["lead"]["ask_name"]]


@pytest.mark.parametrize("reply_mode", ["play", "action", "stream"])
def test_the_line_says_goodbye_then_hangs_up(phone_line, tmp_path, reply_mode):
    line = owner_line(phone_line, tmp_path, reply_mode=reply_mode,
                      asr_texts=["מה שעות הפתיחה?", "תודה רבה, להתראות"])
    result = line.carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"},
                                                {"say": "תודה רבה, להתראות"}],
                                      "end": "wait", "reply_timeout": 60})
    goodbye = FLOW["goodbye"]
    assert said_by_line(line, result.call_sid)[-1] == goodbye
    assert hung_up_by(result) == ["line"]
    hangup_at = next(e["t"] for e in result.timeline if e["text"] == "hangs up")
    last_heard = result.heard[-1]
    assert last_heard["t"] + last_heard["duration"] <= hangup_at + 0.1  # heard to its end
    call = ended(line, result.call_sid)
    assert call["outcome"] == "line-hangup" and call["turn_mode"] == "stream"
    kinds = [e["kind"] for e in line.store.events(result.call_sid)]
    assert "LINE_HANGUP" in kinds and "WATCHDOG_REDIRECT_OK" not in kinds


def test_a_message_left_reaches_the_owner_by_sms_and_email_with_the_call_link(
        phone_line, tmp_path, smtp):
    line = owner_line(phone_line, tmp_path, open_now=False, asr_texts=[NAME, PHONE, REASON],
                      notify_sms_to="+972507777777", notify_sms_from="+97233333333",
                      smtp_url=smtp.url(), notify_email_to="owner@example.com",
                      notify_retry_sec=0.05, inspector_token="owner-token")
    line.carrier.fail_messages(2, status=503, code=20503)  # Twilio fails twice, then sends
    result = line.carrier.place_call({
        "steps": [{"dtmf": "0"}, {"say": NAME}, {"say": PHONE}, {"say": REASON}],
        "from": "+972529876543", "reply_timeout": 60})
    link = f"{line.url}/inspector/calls/{result.call_sid}"
    (sms,) = wait_until(lambda: line.carrier.messages)
    assert sms["to"] == "+972507777777" and sms["from"] == "+97233333333"
    assert all(part in sms["body"] for part in (NAME, REASON, "0529876543", link))  # short
    (mail,) = wait_until(lambda: smtp.inbox.messages)
    body = mail.get_content()
    assert mail["To"] == "owner@example.com" and NAME in mail["Subject"]
    summary = wait_until(lambda: line.store.get_call(result.call_sid)["summary"])
    assert all(part in body for part in (NAME, "0529876543", REASON, "+972529876543", link))
    assert summary.splitlines()[-1] in body  # the message, as the summary's second line
    assert [a["status"] for a in line.carrier.message_attempts] == [503, 503, 201]
    page = line.app.test_client().get(f"/inspector/calls/{result.call_sid}",
                                      headers={"Authorization": "Bearer owner-token"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "notifications" in html.lower() and "sent" in html
    sms_row = next(r for r in line.runtime.notifier.queue.of_call(result.call_sid)
                   if r["channel"] == "sms")
    assert (sms_row["status"], sms_row["attempts"]) == ("sent", 3)


def test_a_caller_who_hangs_up_after_giving_a_name_leaves_an_incomplete_lead_the_owner_is_told(
        phone_line, tmp_path, smtp):
    line = owner_line(phone_line, tmp_path, open_now=False, asr_texts=[NAME],
                      notify_sms_to="+972507777777", notify_sms_from="+97233333333",
                      smtp_url=smtp.url(), notify_email_to="owner@example.com")
    result = line.carrier.place_call({"steps": [{"dtmf": "0"}, {"say": NAME}],
                                      "from": "+972529876543", "reply_timeout": 60})
    assert said_by_line(line, result.call_sid)[-1] == FLOW["lead"]["ask_phone"]  # then hung up
    (lead,) = wait_until(lambda: line.store.leads())
    assert (lead["name"], lead["phone"], lead["reason"], lead["incomplete"]) == (
        NAME, "", "", True)
    (sms,) = wait_until(lambda: line.carrier.messages)
    assert "הודעה חלקית" in sms["body"] and NAME in sms["body"] and "+972529876543" in sms["body"]
    (mail,) = wait_until(lambda: smtp.inbox.messages)
    assert "הודעה חלקית" in mail["Subject"] and NAME in mail["Subject"]
    assert "ניתק לפני שסיים" in mail.get_content()
    summary = wait_until(lambda: line.store.get_call(result.call_sid)["summary"])
    assert summary.splitlines() == ["פנייה בנושא: שיחה עם נציג",
                                    f"הודעה חלקית (המתקשר ניתק לפני שסיים): {NAME}"]
    listing = line.app.test_client().get("/inspector").get_data(as_text=True)
    assert "incomplete: hung up before the end" in listing


def test_a_caller_who_hangs_up_while_saying_their_name_leaves_it_in_the_lead(phone_line,
                                                                            tmp_path):
    """The stream ends while the name is still being said: what was heard of it is
    transcribed into the conversation before the call's end is summarised, and the owner's
    text message has it."""
    line = owner_line(phone_line, tmp_path, open_now=False, asr_texts=[NAME],
                      notify_sms_to="+972509999999", notify_sms_from="+97233333333")
    result = line.carrier.place_call({"steps": [{"dtmf": "0"},
                                                {"say": NAME, "hang_up_after": 0.6}],
                                      "from": "+972529876543", "reply_timeout": 60})
    assert hung_up_by(result) == ["caller"]
    (lead,) = wait_until(lambda: line.store.leads())
    assert (lead["name"], lead["incomplete"]) == (NAME, True)
    summary = wait_until(lambda: line.store.get_call(result.call_sid)["summary"])
    assert NAME in summary.splitlines()[-1]
    (sms,) = wait_until(lambda: line.carrier.messages)
    assert sms["to"] == "+972509999999" and NAME in sms["body"]
