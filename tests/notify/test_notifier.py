"""Telling the owner on SQLite and PostgreSQL: a real SMTP server on loopback, the emulator's
Messages API, retries under a lease, the summaries, the inspector's view."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import pytest

from ivr.app import create_app
from ivr.engines.base import LLM
from ivr.engines.openai_engines import SUMMARY_MAX_TOKENS, SUMMARY_PROMPT, OpenAILLM
from ivr.engines.scripted import ScriptedLLM
from ivr.notify.notifier import SWEEP_JOB
from ivr.notify.outbox import NotifyQueue
from ivr.notify.texts import Notice, email_body, one_line, sms_body, subject
from ivr.store import Store
from ivr.threads import POOLS

from ..conftest import database_url, make_settings, wait_until
from ..livehelpers import ROOT, free_port
from ..providers import ProviderServer
from ..smtpserver import SMTPServer, Tarpit

pytestmark = pytest.mark.usefixtures("database")

SID = "CA" + "d" * 32
CALLER = "+972501111111"
TOKEN = "inspector-token-0123"
LEAD = {"name": "דנה כהן", "phone": "0527654321", "reason": "לקבוע תור ליום שלישי"}
FLOW = ScriptedLLM()
HOURS = FLOW.intents[0]["answer"]
PRICES = FLOW.intents[2]["answer"]
HISTORY = [  # asked about the opening hours and the prices, then left a message
    {"role": "user", "text": "מתי אתם פתוחים?"}, {"role": "assistant", "text": HOURS},
    {"role": "user", "text": "כמה זה עולה?"}, {"role": "assistant", "text": PRICES},
    {"role": "user", "text": "אני רוצה לדבר עם נציג"},
    {"role": "assistant", "text": FLOW.lead_texts["ask_name"]},
    {"role": "user", "text": LEAD["name"]},
    {"role": "assistant", "text": FLOW.lead_texts["ask_phone"]},
    {"role": "user", "text": LEAD["phone"]},
    {"role": "assistant", "text": FLOW.lead_texts["ask_reason"]}]
SUMMARY = ("פנייה בנושא: שעות הפתיחה, המחירים, שיחה עם נציג\n"
           "הודעה: דנה כהן, 0527654321 — לקבוע תור ליום שלישי")
NOV_23_1405 = datetime.datetime(2026, 11, 23, 12, 5, tzinfo=datetime.UTC).timestamp()  # 14:05 IST


@pytest.fixture
def line(tmp_path):
    """`line(**settings)`: the app (its notifier sweeping every 50 ms; `sweep=False`: not at
    all), with a call from CALLER that left LEAD, on the test's database."""
    built = []

    def build(sweep: bool = True, **changes):
        settings = make_settings(tmp_path, inspector_token=TOKEN, notify_retry_sec=0.05,
                                 **changes)
        app = create_app(settings)
        rt = app.extensions["ivr"]
        rt.notifier.sweep_sec = 0.05
        rt.notifier.start(rt.scheduler)  # the same job, swept faster
        if not sweep:
            rt.scheduler.remove_job(SWEEP_JOB)
        rt.store.ensure_call(SID, from_number=CALLER)
        rt.store.update_call(SID, started_at=NOV_23_1405,
                             history=json.dumps(HISTORY, ensure_ascii=False))
        built.append(rt)
        rt.client = app.test_client()
        return rt
    yield build
    for rt in built:
        rt.close()


def leave_message(rt) -> None:
    """What the dialog and the integrator do when the caller has left LEAD."""
    rt.store.add_lead(SID, caller=CALLER, **LEAD)
    rt.notifier.lead_left(SID, LEAD)


def notify_events(rt) -> list[tuple[str, dict]]:
    return [(e["kind"], e["detail"]) for e in rt.store.events(SID)
            if e["kind"].startswith("NOTIFY")]


def finished(rt, channel: str = "email") -> dict | None:
    """The call's notification on `channel` once it is sent or failed."""
    rows = [r for r in rt.notifier.queue.of_call(SID) if r["channel"] == channel]
    return rows[0] if rows and rows[0]["status"] != "pending" else None


def settle(rt) -> None:
    """Wait for the notifier's rows and summaries in hand to be done (then it takes no more)."""
    rt.notifier.rows.shutdown(wait=True)
    rt.notifier.summaries.shutdown(wait=True)


def inspector_page(rt) -> str:
    page = rt.client.get(f"/inspector/calls/{SID}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    return page.get_data(as_text=True)


# ---- the texts ---------------------------------------------------------------------------


NOTICE = Notice(caller=CALLER, name=LEAD["name"], phone=LEAD["phone"], reason=LEAD["reason"],
                at=NOV_23_1405, summary=SUMMARY,
                link=f"https://line.example.com/inspector/calls/{SID}")


def test_the_email_says_who_why_when_the_summary_and_the_link():
    assert subject(NOTICE) == "הודעה חדשה מדנה כהן (0527654321)"
    assert email_body(NOTICE, "Asia/Jerusalem") == (
        "התקבלה הודעה חדשה בקו.\n\n"
        "מספר המתקשר: +972501111111\n"
        "שם: דנה כהן\n"
        "טלפון לחזרה: 0527654321\n"
        "סיבת הפנייה: לקבוע תור ליום שלישי\n"
        "שעה: 23/11/2026 14:05\n\n"
        "סיכום:\n"
        "פנייה בנושא: שעות הפתיחה, המחירים, שיחה עם נציג\n"
        "הודעה: דנה כהן, 0527654321 — לקבוע תור ליום שלישי\n\n"
        f"השיחה ביומן: https://line.example.com/inspector/calls/{SID}\n")


def test_the_sms_is_short():
    assert sms_body(NOTICE, "Asia/Jerusalem") == (
        "הודעה מדנה כהן 0527654321: לקבוע תור ליום שלישי\n23/11/2026 14:05\n"
        f"https://line.example.com/inspector/calls/{SID}")
    rambling = Notice(**{**NOTICE.__dict__, "name": "ב" * 100, "reason": "א" * 300})
    assert len(sms_body(rambling, "Asia/Jerusalem")) <= 3 * 67  # three Hebrew (UCS-2) parts
    no_message = Notice(caller=CALLER, name="", phone="", reason="", at=NOV_23_1405,
                        summary="פנייה בנושא: המחירים\nלא הושארה הודעה", link="https://x/y")
    assert sms_body(no_message, "UTC") == \
        "שיחה מ-+972501111111: פנייה בנושא: המחירים\n23/11/2026 12:05\nhttps://x/y"
    assert subject(no_message) == "שיחה מ-+972501111111"


# ---- the summaries ---------------------------------------------------------------------------


def test_the_scripted_summary_names_the_intents_reached_and_the_message():
    assert FLOW.summarize(HISTORY, LEAD) == SUMMARY
    cut_off = [{"role": "user", "text": "כמה?"}, {"role": "assistant", "text": PRICES[:20]}]
    assert FLOW.summarize(cut_off, None) == "פנייה בנושא: המחירים\nלא הושארה הודעה"
    hello = [{"role": "user", "text": "שלום"},
             {"role": "assistant", "text": FLOW.intents[-1]["answer"]}]
    assert FLOW.summarize(hello, None) == "לא זוהה נושא הפנייה\nלא הושארה הודעה"


def test_the_base_summary_is_built_from_the_conversation():
    assert LLM().summarize(HISTORY[:3], None) == \
        "המתקשר אמר: מתי אתם פתוחים? / כמה זה עולה?\nלא הושארה הודעה"
    assert LLM().summarize([], {"name": "", "phone": "", "reason": "תקלה"}) == \
        "המתקשר לא אמר דבר\nהודעה: ללא שם וטלפון — תקלה"


@pytest.fixture
def provider():
    server = ProviderServer()
    yield server
    server.stop()


def test_the_openai_summary_is_one_short_completion_and_falls_back(tmp_path, provider):
    settings = make_settings(tmp_path, openai_api_key="sk-test-key-123456",
                             openai_base_url=provider.url + "/v1")
    llm = OpenAILLM.from_settings(settings)
    provider.reply_text = "התעניין בשעות הפתיחה ובמחירים.\n\nהשאיר הודעה: דנה כהן.\nעוד שורה"
    assert llm.summarize(HISTORY, LEAD) == "התעניין בשעות הפתיחה ובמחירים.\nהשאיר הודעה: דנה כהן."
    sent = provider.requests[-1]["json"]
    assert sent["max_completion_tokens"] == SUMMARY_MAX_TOKENS and not sent.get("stream")
    assert sent["reasoning_effort"] == "none" and "temperature" not in sent
    assert sent["messages"][0] == {"role": "system", "content": SUMMARY_PROMPT}
    assert "מתקשר: מתי אתם פתוחים?" in sent["messages"][1]["content"]
    provider.mode = "500"
    assert llm.summarize(HISTORY, LEAD) == LLM.summarize(llm, HISTORY, LEAD)


# ---- e-mail ------------------------------------------------------------------------------


def test_a_message_left_is_mailed_with_the_link_and_the_summary(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    leave_message(rt)
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert mail["To"] == "owner@example.com" and mail["From"] == "ivr@127.0.0.1"
    assert mail["Subject"] == "הודעה חדשה מדנה כהן (0527654321)"
    body = mail.get_body().get_content()
    assert mail.get_body().get_content_charset() == "utf-8"
    for part in (f"https://line.example.com/inspector/calls/{SID}", LEAD["name"],
                 LEAD["reason"], CALLER, "23/11/2026 14:05", SUMMARY):
        assert part in body
    row = wait_until(lambda: finished(rt))
    assert (row["status"], row["attempts"], row["target"]) == ("sent", 1, "owner@example.com")
    assert rt.store.get_call(SID)["summary"] == SUMMARY
    assert wait_until(lambda: notify_events(rt)) == [
        ("NOTIFY_SENT", {"channel": "email", "attempt": 1})]


def test_a_server_that_defers_twice_gets_it_on_the_third_attempt(line, smtp):
    smtp.inbox.failures = ["451 4.3.0 try again later"] * 2
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com",
              notify_email_from="line@example.com")
    leave_message(rt)
    row = wait_until(lambda: finished(rt))
    assert (row["status"], row["attempts"], smtp.inbox.data_calls) == ("sent", 3, 3)
    assert len(smtp.inbox.messages) == 1 and smtp.inbox.messages[0]["From"] == "line@example.com"
    assert row["last_error"] == "SMTPDataError: 451 4.3.0 try again later"
    assert wait_until(lambda: len(notify_events(rt)) == 3 and notify_events(rt)) == [
        ("NOTIFY_RETRY", {"channel": "email", "attempt": 1,
                          "err": "SMTPDataError: 451 4.3.0 try again later", "next_in": 0.05}),
        ("NOTIFY_RETRY", {"channel": "email", "attempt": 2,
                          "err": "SMTPDataError: 451 4.3.0 try again later", "next_in": 0.1}),
        ("NOTIFY_SENT", {"channel": "email", "attempt": 2 + 1})]
    page = inspector_page(rt)
    assert "<h2>Notifications</h2>" in page and "owner@example.com" in page
    assert "451 4.3.0 try again later" in page and "NOTIFY_RETRY" in page
    assert page.index("פנייה בנושא: שעות הפתיחה") < page.index("<h2>Turns</h2>")


def test_a_server_that_always_defers_gets_four_attempts_then_failed(line, smtp):
    smtp.inbox.always = "451 4.3.0 try again later"
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    leave_message(rt)
    row = wait_until(lambda: finished(rt))
    assert (row["status"], row["attempts"], smtp.inbox.data_calls) == ("failed", 4, 4)
    assert row["sent_at"] is None
    kinds = wait_until(lambda: [k for k, _d in notify_events(rt)][-1:] == ["NOTIFY_FAILED"]
                       and [(k, d.get("attempt")) for k, d in notify_events(rt)])
    assert kinds == [("NOTIFY_RETRY", 1), ("NOTIFY_RETRY", 2), ("NOTIFY_RETRY", 3),
                     ("NOTIFY_FAILED", None)]
    assert notify_events(rt)[-1][1] == {"channel": "email", "attempts": 4,
                                        "err": "SMTPDataError: 451 4.3.0 try again later"}
    assert '<tr class="problem">' in inspector_page(rt).split("<h2>Notifications</h2>")[1]


def test_a_permanent_refusal_fails_at_once(line, smtp):
    smtp.inbox.always = "554 5.7.1 relay denied"
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    leave_message(rt)
    row = wait_until(lambda: finished(rt))
    assert (row["status"], row["attempts"], smtp.inbox.data_calls) == ("failed", 1, 1)
    assert wait_until(lambda: notify_events(rt)) == [("NOTIFY_FAILED", {
        "channel": "email", "attempts": 1, "err": "SMTPDataError: 554 5.7.1 relay denied"})]


def test_a_header_the_message_cannot_carry_fails_at_once(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com\nBcc: x@example.com")
    leave_message(rt)
    row = wait_until(lambda: finished(rt))
    assert (row["status"], row["attempts"], smtp.inbox.data_calls) == ("failed", 1, 0)
    assert "ValueError" in row["last_error"]


def test_the_smtp_password_never_reaches_the_log_the_events_or_the_row(line):
    password = "s3cret/pa55@word"  # percent-encoded in the URL, sent (and echoed) decoded
    server = SMTPServer(logins={"owner@example.com": password})
    server.inbox.always = f"451 4.7.0 login owner@example.com/{password} is rate limited"
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("ivr").addHandler(handler)
    try:
        rt = line(smtp_url=server.url(f"owner%40example.com:{quote(password, safe='')}"),
                  notify_email_to="owner@example.com")
        leave_message(rt)
        retry = wait_until(lambda: notify_events(rt))[0]
        row = rt.notifier.queue.of_call(SID)[0]
    finally:
        server.stop()
        logging.getLogger("ivr").removeHandler(handler)
    assert retry == ("NOTIFY_RETRY", {
        "channel": "email", "attempt": 1, "next_in": 0.05,
        "err": "SMTPDataError: 451 4.7.0 login owner@example.com/*** is rate limited"})
    assert server.inbox.data_calls >= 1  # logged in: the server's DATA answer is the error
    assert "NOTIFY_RETRY" in log.getvalue() and password not in log.getvalue()
    assert password not in row["last_error"]
    assert password not in inspector_page(rt)


# ---- when to notify ----------------------------------------------------------------------


def test_every_call_on_tells_the_owner_of_a_call_without_a_message(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com", notify_every_call=True)
    rt.store.update_call(SID, history='[{"role": "user", "text": "כמה זה עולה?"}, '
                                      f'{{"role": "assistant", "text": "{PRICES}"}}]')
    rt.notifier.call_ended(SID)
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert mail["Subject"] == f"שיחה מ-{CALLER}"
    assert "פנייה בנושא: המחירים\nלא הושארה הודעה" in mail.get_body().get_content()
    assert rt.store.get_call(SID)["summary"] == "פנייה בנושא: המחירים\nלא הושארה הודעה"


def test_every_call_adds_nothing_to_a_call_that_left_a_message(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com", notify_every_call=True)
    leave_message(rt)
    wait_until(lambda: finished(rt))
    rt.notifier.call_ended(SID)
    settle(rt)  # its work done
    assert len(rt.notifier.queue.of_call(SID)) == 1 and len(smtp.inbox.messages) == 1
    assert rt.store.get_call(SID)["summary"] == SUMMARY


def test_every_call_off_stores_the_summary_and_sends_nothing(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    rt.store.update_call(SID, history=json.dumps(HISTORY[:4], ensure_ascii=False))  # no message
    rt.notifier.call_ended(SID)
    settle(rt)
    assert rt.store.get_call(SID)["summary"] == \
        "פנייה בנושא: שעות הפתיחה, המחירים\nלא הושארה הודעה"
    assert rt.notifier.queue.of_call(SID) == [] and smtp.inbox.data_calls == 0
    assert "None sent for this call." in inspector_page(rt)


def test_nothing_raises_into_the_call(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")

    def broken(history, lead):
        raise RuntimeError("summary engine down")
    rt.notifier.llm.summarize = broken
    leave_message(rt)
    wait_until(lambda: smtp.inbox.messages)
    assert rt.store.get_call(SID)["summary"] == LLM.summarize(rt.notifier.llm, HISTORY, LEAD)
    rt.notifier.call_ended("CA-unknown")  # no such call: logged at most
    rt.notifier.close()
    rt.notifier.lead_left(SID, LEAD)  # a stopping process: logged, not raised
    rt.notifier.call_ended(SID)


# ---- durable retries ---------------------------------------------------------------------


def test_a_lease_gives_each_attempt_to_one_claimer(tmp_path):
    store = Store(database_url(tmp_path))
    queue = NotifyQueue(store, lease_sec=0.2)
    assert queue.add(f"{SID}:call:email", SID, "email", "o@example.com", "s", "b")
    assert queue.add(f"{SID}:call:email", SID, "email", "o@example.com", "s", "b") is None
    [first] = queue.claim(time.time(), 10)
    assert first["attempts"] == 1
    assert queue.claim(time.time(), 10) == []  # leased to its first attempt
    wait_until(lambda: queue.waiting(time.time()))  # its claimer died: the lease ran out
    processes = [Store(database_url(tmp_path)) for _ in range(4)]  # one writer lock each
    gate, won = threading.Barrier(len(processes)), []

    def claim(other: Store):
        gate.wait()
        won.extend(NotifyQueue(other).claim(time.time(), 10))
    threads = [threading.Thread(target=claim, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r["attempts"] for r in won] == [2]
    assert not queue.finish(first, status="sent")  # the first attempt's late word is ignored
    assert queue.finish(won[0], status="sent") and queue.of_call(SID)[0]["status"] == "sent"
    for each in [store, *processes]:
        each.close()


def test_a_restart_resumes_a_pending_retry(line, smtp):
    down = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    first = line(sweep=False, smtp_url=down, notify_email_to="owner@example.com")
    leave_message(first)
    assert wait_until(lambda: notify_events(first))[0][0] == "NOTIFY_RETRY"
    first.close()
    second = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    row = wait_until(lambda: finished(second))
    assert (row["status"], row["attempts"], len(smtp.inbox.messages)) == ("sent", 2, 1)


def test_two_processes_sweeping_make_each_attempt_once(line, smtp):
    smtp.inbox.failures = ["451 4.3.0 try again later"] * 2
    one = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    two = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    leave_message(one)
    assert wait_until(lambda: finished(two))["attempts"] == 3
    assert smtp.inbox.data_calls == 3 and len(smtp.inbox.messages) == 1
    assert [k for k, _d in wait_until(lambda: len(notify_events(one)) == 3
                                      and notify_events(one))] == \
        ["NOTIFY_RETRY", "NOTIFY_RETRY", "NOTIFY_SENT"]


# ---- SMS through the emulator's Messages API -----------------------------------------------


def sms_line(line, carrier, to: str = "+972509999999"):
    return line(twilio_api_base_url=carrier.url, notify_sms_to=to,
                notify_sms_from="+97233333333")


def test_a_message_left_is_texted_through_twilio(line, carrier):
    rt = sms_line(line, carrier)
    leave_message(rt)
    sms = wait_until(lambda: carrier.messages)[0]
    assert (sms["to"], sms["from"]) == ("+972509999999", "+97233333333")
    assert sms["body"] == sms_body(NOTICE, "Asia/Jerusalem")
    row = wait_until(lambda: finished(rt, "sms"))
    assert (row["status"], row["attempts"]) == ("sent", 1)


def test_twilio_failing_twice_sends_the_sms_on_the_third_attempt(line, carrier):
    carrier.fail_messages(2, status=500, code=20500)
    rt = sms_line(line, carrier)
    leave_message(rt)
    row = wait_until(lambda: finished(rt, "sms"))
    assert (row["status"], row["attempts"], len(carrier.messages)) == ("sent", 3, 1)
    assert "HTTP 500 code 20500" in row["last_error"]
    assert [k for k, _d in wait_until(lambda: len(notify_events(rt)) == 3
                                      and notify_events(rt))] == \
        ["NOTIFY_RETRY", "NOTIFY_RETRY", "NOTIFY_SENT"]


def test_a_bad_number_fails_at_once(line, carrier):
    rt = sms_line(line, carrier, to="+1")
    leave_message(rt)
    row = wait_until(lambda: finished(rt, "sms"))
    assert (row["status"], row["attempts"], carrier.messages) == ("failed", 1, [])
    assert "HTTP 400 code 21211" in row["last_error"]
    assert wait_until(lambda: [k for k, _d in notify_events(rt)]) == ["NOTIFY_FAILED"]


@pytest.mark.parametrize("code", [21212, 21602, 21617])
def test_twilio_refusing_the_message_itself_fails_at_once(line, carrier, code):
    carrier.fail_messages(1, status=400, code=code)
    rt = sms_line(line, carrier)
    leave_message(rt)
    row = wait_until(lambda: finished(rt, "sms"))
    assert (row["status"], row["attempts"], carrier.messages) == ("failed", 1, [])
    assert f"HTTP 400 code {code}" in row["last_error"]


def test_twilio_rate_limiting_is_retried(line, carrier):
    carrier.fail_messages(1, status=429, code=20429)
    rt = sms_line(line, carrier)
    leave_message(rt)
    row = wait_until(lambda: finished(rt, "sms"))
    assert (row["status"], row["attempts"], len(carrier.messages)) == ("sent", 2, 1)


# ---- caller text on one line ----------------------------------------------------------------


def test_caller_text_is_folded_to_one_line():
    assert one_line(" דנה\r\nכהן\u2028\t\u202e\u200f\x00 ") == "דנה כהן"
    odd = Notice(**{**NOTICE.__dict__, "name": "דנה\nכהן", "phone": "052\r\n765",
                    "reason": "תור\u2029לשלישי\u202e"})
    assert subject(odd) == "הודעה חדשה מדנה כהן (052 765)"
    assert sms_body(odd, "UTC").splitlines()[0] == "הודעה מדנה כהן 052 765: תור לשלישי"


def test_a_line_break_in_the_name_still_mails_and_texts_the_owner(line, smtp, carrier):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com",
              twilio_api_base_url=carrier.url, notify_sms_to="+972509999999",
              notify_sms_from="+97233333333")
    lead = {**LEAD, "name": "דנה\nכהן\u202e"}
    rt.store.add_lead(SID, caller=CALLER, **lead)
    rt.notifier.lead_left(SID, lead)
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert mail["Subject"] == "הודעה חדשה מדנה כהן (0527654321)"
    assert "שם: דנה כהן\n" in mail.get_body().get_content()
    sms = wait_until(lambda: carrier.messages)[0]
    assert sms["body"].splitlines()[0] == "הודעה מדנה כהן 0527654321: לקבוע תור ליום שלישי"


# ---- durable first: rows before slow work, a worker pool per channel ---------------------------


def test_the_rows_are_written_and_the_sms_sent_while_the_summary_is_slow(line, smtp, carrier):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com",
              twilio_api_base_url=carrier.url, notify_sms_to="+972509999999",
              notify_sms_from="+97233333333")
    release, summarizing = threading.Event(), threading.Event()

    def slow(history, lead):
        summarizing.set()
        release.wait(600)  # until the test has looked (released in `finally`)
        return "סיכום המנוע\nשורה שנייה"
    rt.notifier.llm.summarize = slow
    try:
        leave_message(rt)
        wait_until(summarizing.is_set)
        assert wait_until(lambda: carrier.messages)[0]["body"] == sms_body(NOTICE, "Asia/Jerusalem")
        assert sorted(r["channel"] for r in rt.notifier.queue.of_call(SID)) == ["email", "sms"]
        assert smtp.inbox.data_calls == 0  # the e-mail waits for the summary it shows
    finally:
        release.set()
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert "סיכום המנוע\nשורה שנייה" in mail.get_body().get_content()


def test_a_message_left_without_its_notice_is_notified_when_the_call_ends(line, smtp):
    rt = line(smtp_url=smtp.url(), notify_email_to="owner@example.com")
    rt.store.add_lead(SID, caller=CALLER, **LEAD)  # the process that heard it died: no row
    rt.notifier.call_ended(SID)
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert mail["Subject"] == "הודעה חדשה מדנה כהן (0527654321)"
    rt.notifier.lead_left(SID, LEAD)  # a late word of the same message adds nothing
    settle(rt)
    assert len(rt.notifier.queue.of_call(SID)) == 1


def test_an_attempt_ends_by_its_deadline_inside_its_lease(line):
    tarpit = Tarpit(interval=0.2)
    try:
        rt = line(smtp_url=tarpit.url(), notify_email_to="owner@example.com")
        rt.notifier.queue.lease_sec = 4.0
        leave_message(rt)
        retries = wait_until(lambda: len(notify_events(rt)) >= 2 and notify_events(rt))
    finally:
        tarpit.stop()
    # each attempt ended by itself and was recorded as its own (a row claimed again by the
    # sweep once its lease ran out would ignore the first attempt's late word)
    assert [(kind, detail["attempt"]) for kind, detail in retries[:2]] == \
        [("NOTIFY_RETRY", 1), ("NOTIFY_RETRY", 2)]
    assert all("deadline" in detail["err"] for _kind, detail in retries[:2])
    assert tarpit.accepted >= 2


def five_leads() -> list[dict]:
    return [{**LEAD, "name": f"{LEAD['name']} {n}"} for n in range(POOLS["notify-sms"].size + 1)]


def rows_of(rt, channel: str) -> list[dict]:
    return [r for r in rt.notifier.queue.of_call(SID) if r["channel"] == channel]


@pytest.mark.live  # starts a process
def test_a_tarpit_delays_no_sms_and_a_kill_loses_nothing(line, carrier, smtp, tmp_path):
    """More messages than e-mail workers, on an SMTP server that sends a byte every 5 s: every
    SMS goes out and every row is written while it holds the e-mails; after a kill -9 the next
    process sends each e-mail once and no SMS again."""
    here = line(sweep=False)  # the call's row; sends nothing
    tarpit = Tarpit(interval=5.0)
    targets = {"notify_email_to": "owner@example.com", "notify_sms_to": "+972509999999",
               "notify_sms_from": "+97233333333", "twilio_api_base_url": carrier.url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.notify_worker", database_url(tmp_path),
         str(tmp_path / "worker"), "12", json.dumps({**targets, "smtp_url": tarpit.url()})],
        cwd=ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert worker.stdout.readline().strip() == "ready"
        for lead in five_leads():
            here.store.add_lead(SID, caller=CALLER, **lead)
            worker.stdin.write(json.dumps({"sid": SID, "lead": lead}) + "\n")
            worker.stdin.flush()
        wait_until(lambda: len(carrier.messages) == len(five_leads()) and all(
            r["status"] == "sent" for r in rows_of(here, "sms")))  # out, and recorded so
        assert tarpit.accepted >= 1 and len(rows_of(here, "email")) == len(five_leads())
        assert all(r["status"] == "pending" for r in rows_of(here, "email"))  # held there
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    finally:
        worker.kill()
        tarpit.stop()
    after = line(smtp_url=smtp.url(), **targets)
    wait_until(lambda: all(r["status"] == "sent" for r in rows_of(after, "email")))
    subjects = sorted(m["Subject"] for m in smtp.inbox.messages)
    assert subjects == sorted(f"הודעה חדשה מ{lead['name']} (0527654321)" for lead in five_leads())
    assert len(carrier.messages) == len(five_leads())  # none sent again
