"""Every /webhook route: status codes, content types, signatures, malformed input, records kept."""

import dataclasses
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest

from ivr import twiml
from ivr.engines.base import LLM, TRANSFER

from ..conftest import AUTH_TOKEN, BASE, CALL_SID, sign, wait_until

pytestmark = pytest.mark.usefixtures("database")


def kinds(runtime, call_sid=CALL_SID):
    return [e["kind"] for e in runtime.store.events(call_sid)]


def test_incoming_call_answers_a_stream_with_wss_url_and_three_parameters(
        twilio_post, runtime, settings):
    runtime.settings = settings.replace(turn_mode="stream")
    response = twilio_post("/webhook/incoming_call", From="+972501234567", To="+97231234567")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    stream = root.find("Connect/Stream")
    url = urlsplit(stream.get("url"))
    assert (url.scheme, url.path, url.query) == ("wss", "/ws/twilio-media", "")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["call_sid"] == CALL_SID and params["turn"] == "1"
    assert twiml.check_stream_token(AUTH_TOKEN, CALL_SID, 1, params["token"])
    assert root.find("Play") is None
    call = runtime.store.get_call(CALL_SID)
    assert (call["from_number"], call["turn"], call["turn_mode"]) == ("+972501234567", 1, "stream")
    assert kinds(runtime)[:2] == ["WEBHOOK", "TWIML"]


def test_greeting_play_only_when_asked(twilio_post, runtime, settings):
    runtime.settings = settings.replace(turn_mode="stream", twiml_play_greeting=True)
    root = ET.fromstring(twilio_post("/webhook/incoming_call").data)
    assert root[0].tag == "Play" and root[0].text == BASE + "/static/tts/greeting_he.mp3"


def test_gather_mode_first_turn(twilio_post, runtime, settings):
    runtime.settings = settings.replace(turn_mode="gather")
    root = ET.fromstring(twilio_post("/webhook/incoming_call").data)
    gather = root.find("Gather")
    assert gather.get("input") == "speech dtmf"
    assert gather.get("language") == "iw-IL"  # LANGUAGE=he-IL is iw-IL in Twilio's Gather table
    assert root.find("Redirect").text == BASE + "/webhook/handle_gather"


@pytest.mark.parametrize("route", ["/webhook/incoming_call", "/webhook/handle_gather"])
def test_every_gather_speaks_gather_language_not_language(twilio_post, runtime, settings, route):
    runtime.settings = settings.replace(turn_mode="gather", gather_language="he-IL")
    twilio_post("/webhook/incoming_call")
    root = ET.fromstring(twilio_post(route, SpeechResult="").data)  # heard nothing: re-prompt
    assert [g.get("language") for g in root.iter("Gather")] == ["he-IL"]


def test_a_failing_route_answers_a_gather_in_gather_language(twilio_post, runtime, settings,
                                                              monkeypatch):
    runtime.settings = settings.replace(gather_language="he-IL")
    monkeypatch.setattr(runtime.dialog, "start_turn", lambda *a, **k: 1 / 0)
    root = ET.fromstring(twilio_post("/webhook/handle_gather", SpeechResult="שלום").data)
    assert root.find("Gather").get("language") == "he-IL"  # the safe answer of a failing route


def test_unsigned_get_shows_a_preview_that_creates_nothing(client, runtime, settings):
    runtime.settings = settings.replace(turn_mode="stream")
    response = client.get("/webhook/incoming_call")
    assert response.status_code == 200 and b'name="token" value="preview"' in response.data
    assert runtime.store.list_calls() == []


@pytest.mark.parametrize("path,status,mimetype", [
    ("/webhook/incoming_call", 200, "text/xml"),
    ("/webhook/stream_status", 204, None),
    ("/webhook/stream_ended", 200, "text/xml"),
    ("/webhook/call_status", 204, None),
    ("/webhook/handle_recording", 200, "text/xml"),
    ("/webhook/handle_gather", 200, "text/xml"),
])
def test_route_status_and_content_type(twilio_post, path, status, mimetype):
    response = twilio_post(path, CallStatus="in-progress")
    assert response.status_code == status
    if mimetype:
        assert response.mimetype == mimetype
        ET.fromstring(response.data)
    else:
        assert response.data == b""


@pytest.mark.parametrize("path", ["/webhook/incoming_call", "/webhook/stream_status",
                                  "/webhook/stream_ended", "/webhook/call_status",
                                  "/webhook/handle_recording", "/webhook/handle_gather"])
def test_forged_and_missing_signatures_are_403(client, runtime, path):
    params = {"CallSid": CALL_SID}
    forged = sign(BASE + path, params, token="not-the-token")
    response = client.post(path, data=params, headers={"X-Twilio-Signature": forged})
    assert response.status_code == 403 and b"does not match" in response.data
    response = client.post(path, data=params)
    assert response.status_code == 403 and response.data == b"missing X-Twilio-Signature\n"
    assert runtime.store.get_call(CALL_SID) is None
    assert kinds(runtime, "") == ["APP_START", "SIGNATURE_REJECTED"]  # the minute's first


def test_signature_over_tampered_params_is_403(client):
    params = {"CallSid": CALL_SID, "From": "+972500000000"}
    good = sign(BASE + "/webhook/incoming_call", params)
    params["From"] = "+972599999999"
    response = client.post("/webhook/incoming_call", data=params,
                           headers={"X-Twilio-Signature": good})
    assert response.status_code == 403


def test_signature_uses_public_url_behind_a_proxy(client):
    """The app sees http://localhost; Twilio signed https://line.example.com: still accepted."""
    params = {"CallSid": CALL_SID}
    response = client.post("/webhook/stream_status", data=params,
                           base_url="http://localhost:8080",
                           headers={"X-Twilio-Signature": sign(BASE + "/webhook/stream_status",
                                                               params)})
    assert response.status_code == 204


def test_signature_includes_the_query_string(client):
    path = "/webhook/handle_recording?retry=1"
    params = {"CallSid": CALL_SID}
    ok = client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE + path, params)})
    assert ok.status_code == 200
    bad = client.post(path, data=params, headers={
        "X-Twilio-Signature": sign(BASE + "/webhook/handle_recording", params)})
    assert bad.status_code == 403


@pytest.mark.parametrize("body,content_type,reason", [
    ('{"CallSid": "x"}', "application/json", b"expected application/x-www-form-urlencoded"),
    ("From=%2B972", "application/x-www-form-urlencoded", b"CallSid missing or malformed"),
    ("CallSid=CA123&From=x", "application/x-www-form-urlencoded", b"CallSid missing"),
    ("\xff\xfe garbage", "application/x-www-form-urlencoded", b"CallSid missing"),
    (f"CallSid={CALL_SID}%0A", "application/x-www-form-urlencoded", b"CallSid missing"),
    (f"CallSid={CALL_SID}&AccountSid=AC{'0' * 32}%0A", "application/x-www-form-urlencoded",
     b"AccountSid malformed (expected AC + 32 hex digits)"),
])
def test_malformed_body_is_400_not_500(client, runtime, body, content_type, reason):
    from urllib.parse import parse_qsl
    params = dict(parse_qsl(body)) if content_type.endswith("urlencoded") else {}
    url = BASE + "/webhook/incoming_call"
    response = client.post("/webhook/incoming_call", data=body.encode("latin-1"),
                           content_type=content_type,
                           headers={"X-Twilio-Signature": sign(url, params)})
    assert response.status_code == 400 and reason in response.data
    assert "WEBHOOK_REJECTED" in kinds(runtime, "")


def test_oversized_body_is_rejected(client):
    response = client.post("/webhook/incoming_call", data={"CallSid": CALL_SID, "x": "a" * 300_000},
                           headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 413


def test_unknown_call_sid_on_any_webhook_creates_the_call(twilio_post, runtime):
    assert twilio_post("/webhook/stream_status", StreamEvent="stream-started",
                       StreamSid="MZ" + "1" * 32).status_code == 204
    call = runtime.store.get_call(CALL_SID)
    assert call is not None
    status = [e for e in runtime.store.events(CALL_SID) if e["kind"] == "STREAM_STATUS"][0]
    assert status["detail"]["event"] == "stream-started"


def test_call_status_closes_the_call_and_cancels_its_jobs(twilio_post, runtime, settings):
    runtime.settings = settings.replace(turn_mode="stream")
    twilio_post("/webhook/incoming_call")
    runtime.watchdog.watch_media(CALL_SID, 1)
    assert len(runtime.watchdog.pending(CALL_SID)) == 2
    assert twilio_post("/webhook/call_status", CallStatus="completed",
                       CallDuration="42").status_code == 204
    call = runtime.store.get_call(CALL_SID)
    assert call["ended"] and call["duration_sec"] == 42 and call["outcome"] == "completed"
    assert runtime.watchdog.pending(CALL_SID) == []


@pytest.mark.parametrize("duration", ["2147483648", "99999999999999999999", "-5", "²", "4e2"])
def test_a_call_duration_out_of_range_or_not_a_number_is_missing_with_its_reason(
        twilio_post, runtime, duration):
    """PostgreSQL's integer ends at 2**31-1 and SQLite's at 2**63-1; "²" passes str.isdigit:
    none of them is a duration, so the call ends without one, said in the log, never an error."""
    twilio_post("/webhook/incoming_call")
    response = twilio_post("/webhook/call_status", CallStatus="completed", CallDuration=duration)
    assert response.status_code == 204
    call = runtime.store.get_call(CALL_SID)
    assert call["ended"] and call["status"] == "completed" and call["duration_sec"] is None
    events = runtime.store.events(CALL_SID)
    ignored = [e["detail"] for e in events if e["kind"] == "TWILIO_FIELD_IGNORED"]
    assert [(d["field"], d["value"]) for d in ignored] == [("CallDuration", duration)]
    assert "WEBHOOK_ERR" not in [e["kind"] for e in events]


@pytest.mark.parametrize("route, form, answer", [
    ("/webhook/call_status", {"CallStatus": "completed", "CallDuration": "12"}, 204),
    ("/webhook/stream_status", {"StreamEvent": "stream-error", "StreamError": "x"}, 204),
    ("/webhook/stream_status", {"StreamEvent": "stream-stopped"}, 204),
    ("/webhook/stream_ended?turn=1", {"CallStatus": "in-progress"}, 200),
    ("/webhook/reply_continue?turn=2&part=1", {"CallStatus": "in-progress"}, 200),
    ("/webhook/handle_recording", {"RecordingUrl": "", "RecordingDuration": "3"}, 200),
    ("/webhook/dial_result?why=transfer", {"DialCallStatus": "completed",
                                           "DialCallDuration": "9"}, 200),
])
def test_a_callback_for_a_call_with_no_row_is_answered_and_recorded(
        twilio_post, runtime, route, form, answer):
    """A webhook's own row of the call may not have landed (another instance, a write lost):
    Twilio is answered all the same, and the call is there for the owner to see."""
    runtime.calls.note = lambda *_args, **_kwargs: None  # the row a webhook writes: not there
    response = twilio_post(route, **form)
    assert response.status_code == answer
    if answer == 200:
        assert response.mimetype == "text/xml" and ET.fromstring(response.data).tag == "Response"
    assert runtime.store.get_call(CALL_SID) is not None
    kinds_seen = kinds(runtime)
    assert "WEBHOOK" in kinds_seen and "WEBHOOK_ERR" not in kinds_seen


def test_stream_ended_returns_pending_action_twiml_once(twilio_post, runtime):
    twilio_post("/webhook/incoming_call")
    pending = twiml.stream_turn(BASE, "k", CALL_SID, 2, BASE + "/static/tts/r.mp3")
    runtime.store.update_call(CALL_SID, pending_twiml=pending)
    assert twilio_post("/webhook/stream_ended").data.decode() == pending
    assert runtime.store.get_call(CALL_SID)["pending_twiml"] is None


def test_a_continuation_whose_reply_was_lost_plays_the_fallback_and_listens_again(
        twilio_post, runtime):
    """After a restart the reply being played is gone: the caller hears the fallback phrase and
    the call gets a fresh stream for its turn, never silence."""
    runtime.calls.answer(CALL_SID, "stream", "play", "in-progress")
    runtime.calls.advance_turn(CALL_SID, 1)
    response = twilio_post("/webhook/reply_continue?turn=2&part=1")
    assert response.status_code == 200
    body = response.data.decode()
    assert re.search(r"/static/tts/(fallback_he|beep)\.mp3</Play>"
                     r"<Stop><Stream name=\"listen-\d+\" /></Stop><Connect", body)
    assert '<Parameter name="turn" value="2" />' in body
    assert "REPLY_LOST" in [e["kind"] for e in runtime.store.events(CALL_SID)]


def test_stream_ended_before_the_stream_started_falls_back_to_record(twilio_post, runtime):
    twilio_post("/webhook/incoming_call")
    response = twilio_post("/webhook/stream_ended")
    root = ET.fromstring(response.data)
    assert response.status_code == 200 and root.find("Record") is not None
    assert root.find("Play").text == BASE + "/static/tts/fallback_he.mp3"
    call = runtime.store.get_call(CALL_SID)
    assert call["turn_mode"] == "record" and call["fallback_reason"] == "stream never started"


def test_stream_ended_after_hangup_is_an_empty_response(twilio_post):
    twilio_post("/webhook/incoming_call")
    twilio_post("/webhook/call_status", CallStatus="completed")
    response = twilio_post("/webhook/stream_ended")
    assert response.status_code == 200 and response.data.decode() == twiml.empty()


def test_silent_recordings_reprompt_then_say_goodbye(twilio_post, runtime):
    twilio_post("/webhook/incoming_call")
    for _ in range(runtime.settings.max_silent_turns - 1):
        root = ET.fromstring(twilio_post("/webhook/handle_recording").data)
        assert root.find("Record") is not None
    root = ET.fromstring(twilio_post("/webhook/handle_recording").data)
    assert root.find("Hangup") is not None and root.find("Record") is None
    assert runtime.store.get_call(CALL_SID)["outcome"] == "silent-hangup"


def test_silent_gathers_reprompt_then_say_goodbye(twilio_post, runtime):
    twilio_post("/webhook/incoming_call")
    answers = [ET.fromstring(twilio_post("/webhook/handle_gather").data) for _ in range(3)]
    assert [a.find("Gather") is not None for a in answers] == [True, True, False]
    assert answers[-1].find("Hangup") is not None


def test_a_failing_handler_still_answers_sound_and_keeps_the_record(twilio_post, runtime):
    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded")
    runtime.dialog.start_turn = broken
    response = twilio_post("/webhook/handle_gather", SpeechResult="מה שעות הפתיחה?")
    assert response.status_code == 200
    root = ET.fromstring(response.data)
    assert root.find("Gather/Play").text.endswith("/static/tts/fallback_he.mp3")
    events = runtime.store.events(CALL_SID)
    assert [e["kind"] for e in events][:3] == ["WEBHOOK", "GATHER", "WEBHOOK_ERR"]
    assert events[0]["detail"]["params"]["SpeechResult"] == "מה שעות הפתיחה?"
    assert "engine exploded" in events[2]["detail"]["err"]


# ---- hostile input and a database that is not there -----------------------------------------


class HeldWriteLock:
    """Another process's write transaction on the line's database (what a stuck job does):
    SQLite's write lock, or PostgreSQL tables locked against every write."""

    def __init__(self, settings):
        url = settings.database_url
        if url.startswith("sqlite:///"):
            import sqlite3
            self.conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg
            from sqlalchemy.engine import make_url
            self.conn = psycopg.connect(make_url(url).set(drivername="postgresql")
                                        .render_as_string(hide_password=False))
            self.conn.execute("LOCK TABLE calls, events, turns, health IN EXCLUSIVE MODE")

    def release(self):
        self.conn.commit()
        self.conn.close()


def answered_while_locked(settings, request) -> tuple[object, bool]:
    """Send `request()` while the database is write-locked; release the lock only once the
    answer is in (or after 30 s). Returns the answer and whether it came while still locked."""
    import threading
    lock = HeldWriteLock(settings)
    released = threading.Event()

    def release_later():
        if not answered.wait(30):
            released.set()
        lock.release()
    answered = threading.Event()
    threading.Thread(target=release_later, daemon=True).start()
    response = request()
    answered.set()
    return response, not released.is_set()


def test_forged_webhooks_never_touch_a_locked_database_and_add_no_row_each(twilio_post,
                                                                           runtime, settings):
    def flood():
        return [twilio_post("/webhook/incoming_call", signed=False) for _ in range(300)]
    responses, in_time = answered_while_locked(settings, flood)
    assert in_time and {r.status_code for r in responses} == {403}
    runtime.rejections.close()  # the minute ends: its summary
    rows = [e["detail"] for e in runtime.store.events("") if e["kind"] == "SIGNATURE_REJECTED"]
    assert len(rows) == 2 and rows[-1]["count"] == 300


def test_incoming_call_answers_while_the_database_is_locked_and_the_row_lands_later(
        twilio_post, runtime, settings):
    runtime.settings = settings.replace(turn_mode="stream")
    response, in_time = answered_while_locked(
        settings, lambda: twilio_post("/webhook/incoming_call", From="+972501234567"))
    assert in_time and response.status_code == 200
    assert b"<Connect" in response.data
    call = runtime.store.get_call(CALL_SID)  # waits for the deferred write
    assert call["turn"] == 1 and call["turn_mode"] == "stream"
    assert call["from_number"] == "+972501234567"
    assert "WEBHOOK" in kinds(runtime)


def test_healthz_is_503_with_the_reason_while_writes_fail(client, settings):
    response, _ = answered_while_locked(settings, lambda: client.get("/healthz"))
    body = response.get_json()
    assert response.status_code == 503 and body["db"]["ok"] is False
    assert any("database" in p for p in body["problems"]), body["problems"]
    assert client.get("/healthz").status_code == 200  # and well again once it is released


def test_healthz_is_503_when_the_disk_is_almost_full(client, runtime, settings):
    runtime.settings = settings.replace(min_free_disk_mb=10**7)  # more than any test disk has
    response = client.get("/healthz")
    assert response.status_code == 503
    assert any(p.startswith("disk almost full") for p in response.get_json()["problems"])


def test_what_the_caller_said_is_capped_before_it_goes_anywhere(twilio_post, runtime):
    response = twilio_post("/webhook/handle_gather", SpeechResult="a" * 250_000)
    assert response.status_code == 200
    turn = wait_until(lambda: runtime.store.turns(CALL_SID))[-1]  # written once it is said
    assert len(turn["user_text"]) == 1000
    stored = sum(len(str(e["detail"])) for e in runtime.store.events(CALL_SID))
    assert stored < 20_000


def test_a_malformed_account_sid_is_400(twilio_post):
    response = twilio_post("/webhook/incoming_call", AccountSid="AC\nforged")
    assert response.status_code == 400 and b"AccountSid" in response.data


OWNER = "+972509998877"
DIAL_SID = "CA" + "d" * 32  # the owner's leg of a <Dial>


def owner_line(runtime, settings, open_now=True, mode="stream"):
    """The runtime with an owner to ring (business hours: always, or never)."""
    from ivr.owner import BusinessHours, Owner
    runtime.settings = settings.replace(turn_mode=mode)
    week = None if open_now else {day: [] for day in range(7)}
    runtime.owner = Owner(phone=OWNER, ring_first=True, hours=BusinessHours(week))


def test_ring_first_in_business_hours_dials_the_owner_and_nothing_watches_a_stream(
        twilio_post, runtime, settings):
    owner_line(runtime, settings)
    root = ET.fromstring(twilio_post("/webhook/incoming_call").data)
    dial = root.find("Dial")
    assert dial.find("Number").text == OWNER and dial.get("timeout") == "20"
    assert dial.get("action") == BASE + "/webhook/dial_result?why=ring_first"
    assert runtime.store.get_call(CALL_SID)["turn_mode"] == "dial"
    assert runtime.watchdog.pending(CALL_SID) == [] and "RING_OWNER_FIRST" in kinds(runtime)


def test_ring_first_out_of_hours_is_the_line_at_once(twilio_post, runtime, settings):
    owner_line(runtime, settings, open_now=False)
    root = ET.fromstring(twilio_post("/webhook/incoming_call").data)
    assert root.find("Dial") is None and root.find("Connect/Stream") is not None


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled", ""])
def test_the_owner_not_answering_first_gives_the_call_to_the_line(twilio_post, runtime,
                                                                  settings, status):
    owner_line(runtime, settings)
    twilio_post("/webhook/incoming_call")
    root = ET.fromstring(twilio_post("/webhook/dial_result?why=ring_first",
                                     DialCallStatus=status, CallStatus="in-progress").data)
    params = {p.get("name"): p.get("value") for p in root.findall("Connect/Stream/Parameter")}
    assert params["turn"] == "1"
    call = runtime.store.get_call(CALL_SID)
    assert (call["turn_mode"], call["turn"]) == ("stream", 1)
    assert runtime.watchdog.pending(CALL_SID) == [f"{CALL_SID}:start:1"]


@pytest.mark.parametrize("why, outcome", [("ring_first", "owner-answered"),
                                          ("transfer", "transferred")])
def test_the_owner_answering_ends_the_call_when_they_hang_up(twilio_post, runtime, settings,
                                                             why, outcome):
    owner_line(runtime, settings)
    twilio_post("/webhook/incoming_call")
    body = twilio_post(f"/webhook/dial_result?why={why}", DialCallStatus="completed",
                       DialCallDuration="42", DialCallSid=DIAL_SID).data
    assert body == twiml.goodbye().encode()
    assert runtime.store.get_call(CALL_SID)["outcome"] == outcome
    (result,) = [e for e in runtime.store.events(CALL_SID) if e["kind"] == "DIAL_RESULT"]
    assert result["detail"] == {"why": why, "status": "completed", "seconds": "42",
                                "dial_sid": DIAL_SID}


@pytest.mark.parametrize("mode", ["stream", "gather"])
def test_a_transfer_nobody_answers_comes_back_to_take_a_message(twilio_post, runtime,
                                                                settings, mode):
    owner_line(runtime, settings, mode=mode)
    runtime.owner = dataclasses.replace(runtime.owner, ring_first=False)
    twilio_post("/webhook/incoming_call")
    runtime.calls.hand_to_owner(CALL_SID)  # a reply ended in <Dial>
    root = ET.fromstring(twilio_post("/webhook/dial_result?why=transfer",
                                     DialCallStatus="no-answer").data)
    said = f"{runtime.owner.unavailable} {runtime.owner.take_message}"
    last = runtime.store.history(CALL_SID)[-1]
    assert (last["role"], last["text"]) == ("assistant", said)
    call = runtime.store.get_call(CALL_SID)
    assert (call["turn_mode"], call["turn"]) == (mode, 2)
    plays = root.findall(".//Play")
    assert len(plays) == 1 and plays[0].text.startswith(BASE + "/static/tts/")
    if mode == "stream":
        params = {p.get("name"): p.get("value") for p in root.findall("Connect/Stream/Parameter")}
        assert params["turn"] == "2"
    else:
        assert root.find("Gather") is not None


def dial_ignored(runtime) -> list[str]:
    return [e["detail"]["reason"] for e in runtime.store.events(CALL_SID)
            if e["kind"] == "DIAL_RESULT_IGNORED"]


@pytest.mark.parametrize("mode", ["stream", "gather"])
def test_a_replayed_dial_result_changes_nothing_and_answers_how_the_call_listens(
        twilio_post, runtime, settings, mode):
    owner_line(runtime, settings, mode=mode)
    runtime.owner = dataclasses.replace(runtime.owner, ring_first=False)
    twilio_post("/webhook/incoming_call")
    runtime.calls.hand_to_owner(CALL_SID)  # a reply ended in <Dial>
    form = {"DialCallStatus": "no-answer", "DialCallSid": DIAL_SID, "CallStatus": "in-progress"}
    twilio_post("/webhook/dial_result?why=transfer", **form)
    before, history = runtime.store.get_call(CALL_SID), runtime.store.history(CALL_SID)
    pending = runtime.watchdog.pending(CALL_SID)
    root = ET.fromstring(twilio_post("/webhook/dial_result?why=transfer", **form).data)
    call = runtime.store.get_call(CALL_SID)
    assert (call["turn"], call["turn_mode"]) == (before["turn"], mode) == (2, mode)
    assert runtime.store.history(CALL_SID) == history  # "not available" said once
    assert runtime.watchdog.pending(CALL_SID) == pending
    assert root.find(".//Play") is None and root.find("Record") is None
    if mode == "stream":
        params = {p.get("name"): p.get("value") for p in root.findall("Connect/Stream/Parameter")}
        assert params["turn"] == "2"  # the stream the call is on, not a new turn
    else:
        assert root.find("Gather") is not None
    assert dial_ignored(runtime) == ["replay"]


@pytest.mark.parametrize("status", ["completed", "no-answer"])
def test_a_dial_result_for_a_call_that_never_dialled_changes_nothing(twilio_post, runtime,
                                                                     settings, status):
    runtime.settings = settings.replace(turn_mode="stream")
    twilio_post("/webhook/incoming_call")
    pending = runtime.watchdog.pending(CALL_SID)
    root = ET.fromstring(twilio_post("/webhook/dial_result?why=ring_first",
                                     DialCallStatus=status, DialCallSid=DIAL_SID).data)
    call = runtime.store.get_call(CALL_SID)
    assert (call["outcome"], call["turn"], call["turn_mode"]) == ("", 1, "stream")
    assert root.find("Hangup") is None and root.find("Connect/Stream") is not None
    assert runtime.watchdog.pending(CALL_SID) == pending
    assert dial_ignored(runtime) == ["not ringing the owner"]


def test_the_owner_answering_is_acted_on_once(twilio_post, runtime, settings):
    owner_line(runtime, settings)
    twilio_post("/webhook/incoming_call")
    form = {"DialCallStatus": "completed", "DialCallSid": DIAL_SID, "DialCallDuration": "9"}
    first = twilio_post("/webhook/dial_result?why=ring_first", **form).data
    again = twilio_post("/webhook/dial_result?why=ring_first", **form).data
    late = twilio_post("/webhook/dial_result?why=ring_first", **{**form,
                                                                  "DialCallStatus": "busy"}).data
    assert first == again == late == twiml.goodbye().encode()  # the call is the owner's
    call = runtime.store.get_call(CALL_SID)
    assert (call["outcome"], call["turn"]) == ("owner-answered", 1)
    assert dial_ignored(runtime) == ["replay", "replay"]


class AsksForAPerson(LLM):
    """A caller who presses 0 every turn: the LLM asks for a transfer each time."""

    name = "asks-for-a-person"

    def reply(self, history: list[dict], text: str) -> str:
        return ""

    def reply_tokens(self, history: list[dict], text: str):
        yield TRANSFER


def test_key_0_six_times_rings_the_owner_once_then_takes_a_message(twilio_post, runtime,
                                                                    settings):
    owner_line(runtime, settings, mode="gather")
    runtime.owner = dataclasses.replace(runtime.owner, ring_first=False)
    runtime.engines.llm = AsksForAPerson()
    runtime.dialog.owner = runtime.owner
    runtime.dialog.s = runtime.dialog.s.replace(dedup_window_sec=0)  # each press is heard
    twilio_post("/webhook/incoming_call")
    rings = 0
    for n in range(6):
        root = ET.fromstring(twilio_post("/webhook/handle_gather", Digits="0").data)
        if root.find("Dial") is not None:
            rings += 1
            twilio_post("/webhook/dial_result?why=transfer", DialCallStatus="no-answer",
                        DialCallSid="CA" + f"{n:032x}", CallStatus="in-progress")
        else:
            assert root.find("Gather") is not None  # the line goes on listening
    assert rings == 1
    said = [m["text"] for m in runtime.store.history(CALL_SID) if m["role"] == "assistant"]
    assert said.count(runtime.owner.transferring) == 1
    after_the_ring = said[said.index(runtime.owner.transferring) + 2:]  # "not available…"
    assert after_the_ring[0] == runtime.owner.take_message  # asking again: a message is taken
    declined = [e["detail"]["why"] for e in runtime.store.events(CALL_SID)
                if e["kind"] == "TRANSFER_DECLINED"]
    assert declined == ["OWNER_MAX_TRANSFERS reached"] * 5
    assert runtime.store.get_call(CALL_SID)["transfers"] == 1

