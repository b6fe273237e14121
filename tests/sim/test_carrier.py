"""The local Twilio emulator against a fixture app: every verb, updates, faults, signatures."""

import base64
import io
import json
import time
import wave

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from ivr import audio
from ivr.sim import CallerScript
from ivr.sim.script import ScriptError

from ..livehelpers import wait_until
from ..simapp import (  # noqa: F401 - fixture_line_served, carrier_of_fixture_line: the fixtures
    ACCOUNT,
    SPEED,
    TOKEN,
    FixtureLine,
    carrier_of_fixture_line,
    doc,
    events,
    fixture_line_served,
    read_until_stop,
    receive,
)

pytestmark = pytest.mark.live  # rings whole calls through the emulator


def rest_client(carrier) -> Client:
    client = Client(ACCOUNT, TOKEN)
    client.api.base_url = carrier.url
    return client


SILENT = {"steps": [{"silence": 30}], "end": "wait", "max_duration": 60}


def test_play_say_pause_hangup_and_the_status_callback(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f"<Play>{line.url}/media/tone.mp3</Play>", '<Say language="he-IL">שלום</Say>',
        '<Pause length="2"/>', "<Hangup/>", "<Say>never</Say>")
    result = carrier.place_call(SILENT)
    assert [h["kind"] for h in result.heard] == ["play", "say"]
    assert result.heard[0]["url"] == f"{line.url}/media/tone.mp3"
    assert result.heard[0]["duration"] == pytest.approx(1.0, abs=0.05)
    assert result.heard[1]["text"] == "שלום" and result.error_codes == []
    assert result.status == "completed" and result.duration >= 3.0
    status = [r for r in line.requests if r["path"] == "/call_status"]
    assert status[0]["form"]["CallStatus"] == "completed"
    assert int(status[0]["form"]["CallDuration"]) >= 3


def test_webhooks_are_signed_with_twilio_parameters(line, carrier):
    line.docs["/webhook/incoming_call"] = doc("<Hangup/>")
    result = carrier.place_call({"from": "+972541112222", "steps": []})
    first = line.requests[0]
    assert first["signed"] is True and first["path"] == "/webhook/incoming_call"
    form = first["form"]
    assert form["CallSid"] == result.call_sid and form["CallSid"].startswith("CA")
    assert (form["AccountSid"], form["From"], form["Direction"], form["ApiVersion"]) == (
        ACCOUNT, "+972541112222", "inbound", "2010-04-01")
    assert form["CallStatus"] == "ringing"
    assert all(r["signed"] for r in line.requests)


def test_play_failures_are_11200_and_12300_and_the_call_goes_on(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f"<Play>{line.url}/media-missing/x.mp3</Play>", f"<Play>{line.url}/media/a.txt</Play>",
        f"<Play>{line.url}/media/ok.wav</Play>", "<Hangup/>")
    result = carrier.place_call(SILENT)
    assert result.error_codes == [11200, 12300]
    assert [h["kind"] for h in result.heard] == ["play"]


def test_play_fail_fault(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(f"<Play>{line.url}/media/ok.wav</Play>",
                                              "<Hangup/>")
    result = carrier.place_call(SILENT, play_fail=True)
    assert result.error_codes == [11200] and result.heard == []


def test_broken_twiml_is_12100_and_ends_the_call(line, carrier):
    line.docs["/webhook/incoming_call"] = "<Response><Play>oops</Response>"
    result = carrier.place_call(SILENT)
    assert result.error_codes == [12100] and result.status == "completed"


def test_incoming_call_answering_500_is_11200(line, carrier):
    result = carrier.place_call(SILENT)  # no doc: the fixture answers 404
    assert result.error_codes == [11200]


def test_redirect_fetches_the_next_document(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(f'<Redirect>{line.url}/next</Redirect>')
    line.docs["/next"] = doc('<Say>הבא</Say>', "<Hangup/>")
    result = carrier.place_call(SILENT)
    assert "/next" in line.paths() and result.heard[0]["text"] == "הבא"


def test_gather_speech_result_is_the_callers_sentence(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Gather input="speech dtmf" language="iw-IL" action="{line.url}/gathered" '
        f'speechTimeout="auto"><Say>מה תרצה?</Say></Gather>')
    line.docs["/gathered"] = doc("<Hangup/>")
    result = carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}], "end": "wait"})
    gathered = [r for r in line.requests if r["path"] == "/gathered"][0]["form"]
    assert gathered["SpeechResult"] == "מה שעות הפתיחה?" and "Confidence" in gathered
    assert result.said[0]["t"] > result.heard[0]["t"] + result.heard[0]["duration"] - 0.1


def test_gather_digits(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Gather input="dtmf" numDigits="2" action="{line.url}/gathered"/>')
    line.docs["/gathered"] = doc("<Hangup/>")
    carrier.place_call({"steps": [{"dtmf": "42"}], "end": "wait"})
    assert [r for r in line.requests if r["path"] == "/gathered"][0]["form"]["Digits"] == "42"


def test_gather_with_no_input_goes_to_the_next_verb_without_the_action(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Gather input="speech" timeout="1" action="{line.url}/gathered"/>',
        f"<Redirect>{line.url}/again</Redirect>")
    line.docs["/again"] = doc("<Hangup/>")
    carrier.place_call(SILENT)
    assert "/gathered" not in line.paths() and "/again" in line.paths()


def test_record_posts_the_recording_which_needs_basic_auth(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Record action="{line.url}/recorded" timeout="1" maxLength="20" playBeep="false"/>')
    line.docs["/recorded"] = doc("<Hangup/>")
    result = carrier.place_call({"steps": [{"say": "שלום, אני רוצה לקבוע תור"}], "end": "wait"})
    form = [r for r in line.requests if r["path"] == "/recorded"][0]["form"]
    url = form["RecordingUrl"]
    assert url.startswith(carrier.url) and form["RecordingSid"].startswith("RE")
    spoken = audio.duration_sec(audio.espeak_pcm16("שלום, אני רוצה לקבוע תור"))
    assert result.recordings[0]["duration"] == pytest.approx(spoken, abs=0.1)
    assert requests.get(url, timeout=5).status_code == 401
    wav = requests.get(url, auth=(ACCOUNT, TOKEN), timeout=5)
    assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/x-wav"
    with wave.open(io.BytesIO(wav.content)) as parsed:
        assert parsed.getframerate() == 8000 and parsed.getnframes() > 8000
    mp3 = requests.get(url + ".mp3", auth=(ACCOUNT, TOKEN), timeout=5)
    assert mp3.status_code == 200 and mp3.headers["Content-Type"] == "audio/mpeg"


def test_recording_not_ready_fault(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Record action="{line.url}/recorded" timeout="1" playBeep="false"/>')
    line.docs["/recorded"] = doc("<Hangup/>")
    carrier.place_call({"steps": [{"say": "שלום"}], "end": "wait"}, recording_404s=2)
    url = [r for r in line.requests if r["path"] == "/recorded"][0]["form"]["RecordingUrl"]
    codes = [requests.get(url, auth=(ACCOUNT, TOKEN), timeout=5).status_code for _ in range(3)]
    assert codes == [404, 404, 200]


def test_empty_recording_skips_the_action_and_runs_the_next_verb(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Record action="{line.url}/recorded" timeout="2"/>', "<Say>עוד פעם</Say>",
        "<Hangup/>")
    result = carrier.place_call(SILENT)
    assert "/recorded" not in line.paths()
    assert [h["kind"] for h in result.heard] == ["beep", "say"]


def stream_doc(line, action=True, extra=""):
    act = f' action="{line.url}/stream_ended"' if action else ""
    return doc(f'<Connect{act}><Stream url="{line.wss}" statusCallback="{line.url}/stream_status">'
               '<Parameter name="call_sid" value="CAx"/><Parameter name="turn" value="1"/>'
               f"</Stream></Connect>{extra}")


def test_connect_stream_protocol_and_server_close_requests_the_action(line, carrier):
    def close_after_a_second(ws, session):
        while receive(ws, session) is not None:
            if sum(m["event"] == "media" for m in session["messages"]) >= 50:
                return  # the app closes the socket
    line.on_socket = close_after_a_second
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    line.docs["/stream_ended"] = doc("<Say>אחרי</Say>", "<Hangup/>")
    result = carrier.place_call(SILENT)
    session = line.session()
    assert session["signed"] is True and session["protocol"] is None
    connected, start, media = session["messages"][:3]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0",
                         "sequenceNumber": "1"}
    assert start["start"]["customParameters"] == {"call_sid": "CAx", "turn": "1"}
    assert start["start"]["callSid"] == result.call_sid
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                             "channels": 1}
    assert set(media["media"]) == {"track", "chunk", "timestamp", "payload"}
    assert all(isinstance(v, str) for v in media["media"].values())
    assert len(base64.b64decode(media["media"]["payload"])) == 160
    assert "/stream_ended" in line.paths() and result.heard[-1]["text"] == "אחרי"
    status = [r["form"]["StreamEvent"] for r in line.requests if r["path"] == "/stream_status"]
    assert status == ["stream-started", "stream-stopped"]


def test_media_is_paced_at_50_frames_a_second(line, carrier):
    line.docs["/webhook/incoming_call"] = stream_doc(line, extra="")
    carrier.speed = 1
    client = rest_client(carrier)
    arrived = []

    def hang_up_after_51_frames(ws, session):
        while (message := receive(ws, session)) is not None:
            if message["event"] == "media":
                arrived.append(time.monotonic())
                if len(arrived) == 51:
                    call_sid = session["messages"][1]["start"]["callSid"]
                    client.calls(call_sid).update(status="completed")
            elif message["event"] == "stop":
                return
    line.on_socket = hang_up_after_51_frames
    carrier.place_call(SILENT)
    media = [m for m in line.session()["messages"] if m["event"] == "media"]
    assert len(media) >= 51
    # Never faster than real time: 50 frames take a second (less the 0.1 s a late emulator may
    # catch up in a burst). A loaded machine may only make them slower.
    assert arrived[50] - arrived[0] >= 0.9
    chunks = [int(m["media"]["chunk"]) for m in media]
    stamps = [int(m["media"]["timestamp"]) for m in media]
    assert chunks == list(range(1, len(media) + 1))
    assert stamps == [20 * i for i in range(len(media))]  # media time: 20 ms a frame


def media_message(frame: bytes) -> str:
    return json.dumps({"event": "media", "streamSid": "x",
                       "media": {"payload": base64.b64encode(frame).decode()}})


def test_two_way_audio_marks_and_clear(line, carrier):
    tone = audio.pcm16_to_ulaw(audio.beep_pcm16(400))

    def talk_back(ws, session):
        receive(ws, session)
        receive(ws, session)
        for frame in audio.frames_of(tone):
            ws.send(media_message(frame))
        ws.send('{"event": "mark", "streamSid": "x", "mark": {"name": "reply-1"}}')
        while (message := receive(ws, session)) is not None:
            if message["event"] == "mark" and message["mark"]["name"] == "reply-1":
                for frame in audio.frames_of(tone * 10):
                    ws.send(media_message(frame))
                ws.send('{"event": "mark", "mark": {"name": "reply-2"}}')
                ws.send('{"event": "clear", "streamSid": "x"}')
            if message["event"] == "stop":
                return
    line.on_socket = talk_back
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    carrier.speed = 1  # reply-2 plays for 4 s of real time: the clear has that long to arrive
    result = carrier.place_call({"steps": [{"silence": 2}], "end": "hangup"})
    marks = [m["mark"]["name"] for m in line.session()["messages"] if m["event"] == "mark"]
    assert marks == ["reply-1", "reply-2"]  # reply-2's mark is echoed by the clear
    streamed = [h for h in result.heard if h["kind"] == "stream"]
    total = sum(h["duration"] for h in streamed)
    # reply-1 (0.4 s) is heard whole; the clear flushes reply-2 (4 s) before its end.
    assert 0.4 <= total < 0.4 + 4.0
    assert result.streams[0]["clears"] == 1 and result.streams[0]["received"] >= 20


def test_rest_update_interrupts_the_stream_with_stop(line, carrier):
    client = rest_client(carrier)

    def update_when_streaming(ws, session):
        receive(ws, session)
        start = receive(ws, session)
        call_sid = start["start"]["callSid"]
        client.calls(call_sid).update(
            twiml=doc(f"<Play>{line.url}/media/r.wav</Play>", "<Hangup/>"))
        read_until_stop(ws, session)
    line.on_socket = update_when_streaming
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    result = carrier.place_call(SILENT)
    assert events(line.session())[-1] == "stop"
    assert [h["kind"] for h in result.heard] == ["play"]
    assert "/stream_ended" not in line.paths()
    rest = [r for r in result.requests if r["direction"] == "in"]
    assert rest[0]["status"] == 200 and "Twiml" in rest[0]["params"]


def test_rest_errors_21220_32018_and_401(line, carrier):
    line.docs["/webhook/incoming_call"] = doc("<Hangup/>")
    result = carrier.place_call(SILENT)
    client = rest_client(carrier)
    with pytest.raises(TwilioRestException) as ended:
        client.calls(result.call_sid).update(twiml=doc("<Hangup/>"))
    assert ended.value.code == 21220 and ended.value.status == 400
    bad = Client(ACCOUNT, "wrong-token")
    bad.api.base_url = carrier.url
    with pytest.raises(TwilioRestException) as auth:
        bad.calls(result.call_sid).update(twiml=doc("<Hangup/>"))
    assert auth.value.status == 401 and auth.value.code == 20003

    def update_long(ws, session):
        receive(ws, session)
        start = receive(ws, session)
        with pytest.raises(TwilioRestException) as long:
            client.calls(start["start"]["callSid"]).update(
                twiml=doc("<Say>" + "א" * 4100 + "</Say>"))
        session["long"] = long.value.code
        client.calls(start["start"]["callSid"]).update(status="completed")
        read_until_stop(ws, session)
    line.on_socket = update_long
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    carrier.place_call(SILENT)
    assert line.session()["long"] == 32018


def test_slow_rest_fault_delays_the_update(line, carrier):
    client = rest_client(carrier)

    def timed_update(ws, session):
        receive(ws, session)
        start = receive(ws, session)
        began = time.monotonic()
        client.calls(start["start"]["callSid"]).update(status="completed")
        session["took"] = time.monotonic() - began
        read_until_stop(ws, session)
    line.on_socket = timed_update
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    carrier.place_call(SILENT, slow_rest=0.5)
    assert line.session()["took"] >= 0.5


def test_refused_handshake_is_31920_then_stream_error_then_the_action(line, carrier):
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    line.docs["/stream_ended"] = doc("<Say>גיבוי</Say>", "<Hangup/>")
    result = carrier.place_call(SILENT, ws_refuse=True)
    assert result.error_codes == [31920] and line.sockets == []
    status = [r["form"] for r in line.requests if r["path"] == "/stream_status"]
    assert status[0]["StreamEvent"] == "stream-error" and "31920" in status[0]["StreamError"]
    assert result.heard[-1]["text"] == "גיבוי"


def test_a_websocket_url_that_404s_is_31920_too(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Connect action="{line.url}/stream_ended"><Stream url="{line.wss}-nope"/></Connect>')
    line.docs["/stream_ended"] = doc("<Hangup/>")
    result = carrier.place_call(SILENT)
    assert result.error_codes == [31920] and "/stream_ended" in line.paths()


def test_no_media_fault_sends_connected_and_start_only(line, carrier):
    client = rest_client(carrier)

    def wait_then_hang_up(ws, session):
        receive(ws, session)
        start = receive(ws, session)
        run = carrier.calls[start["start"]["callSid"]]
        opened = run.result.streams[0]["opened"]
        wait_until(lambda: run.tick_at - opened >= 0.3)  # 15 frames that were never sent
        client.calls(start["start"]["callSid"]).update(status="completed")
        read_until_stop(ws, session)
    line.on_socket = wait_then_hang_up
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    carrier.place_call(SILENT, ws_no_media=True)
    assert events(line.session()) == ["connected", "start", "stop"]


def test_subprotocol_is_offered_only_when_asked(line, carrier):
    line.docs["/webhook/incoming_call"] = stream_doc(line, action=False, extra="<Hangup/>")
    line.on_socket = lambda ws, session: None
    carrier.offer_subprotocol = True
    carrier.place_call(SILENT)
    assert line.session()["protocol"] == "audio.twilio.com"


def test_start_stream_forks_audio_while_the_twiml_goes_on(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Start><Stream url="{line.wss}"/></Start>', '<Pause length="1"/>', "<Hangup/>")
    carrier.place_call(SILENT)
    media = [m for m in line.session()["messages"] if m["event"] == "media"]
    assert 45 <= len(media) <= 52 and events(line.session())[-1] == "stop"


def test_stop_stream_by_name_ends_that_fork_and_the_other_goes_on(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Start><Stream name="a" url="{line.wss}"><Parameter name="n" value="a"/></Stream>'
        "</Start>",
        f'<Start><Stream name="b" url="{line.wss}"><Parameter name="n" value="b"/></Stream>'
        "</Start>",
        '<Pause length="1"/>', f'<Redirect>{line.url}/next</Redirect>')
    line.docs["/next"] = doc('<Stop><Stream name="a"/></Stop>', '<Pause length="1"/>',
                             "<Hangup/>")
    result = carrier.place_call(SILENT)
    first, second = line.session(0), line.session(1)
    by_name = {s["messages"][1]["start"]["customParameters"]["n"]: s for s in (first, second)}
    media = {n: len([m for m in s["messages"] if m["event"] == "media"])
             for n, s in by_name.items()}
    assert 45 <= media["a"] <= 55 and 95 <= media["b"] <= 105  # "b" lived through /next
    assert by_name["a"]["messages"][1]["start"]["tracks"] == ["inbound"]
    assert events(by_name["a"])[-1] == "stop" and events(by_name["b"])[-1] == "stop"
    assert [s["closed_by"] for s in result.streams] == ["stop", "carrier"]


def test_start_stream_refusals_as_twilio(line, carrier):
    fork = '<Start><Stream name="{}" url="{}"{}/></Start>'
    line.docs["/webhook/incoming_call"] = doc(
        fork.format("x", line.wss, ""), fork.format("x", line.wss, ""),
        fork.format("y", line.wss, ' track="left"'),
        *(fork.format(f"n{i}", line.wss, "") for i in range(4)),
        '<Stop><Stream name="nope"/></Stop>', '<Pause length="0.2"/>', "<Hangup/>")
    result = carrier.place_call(SILENT)
    assert [s["name"] for s in result.streams] == ["x", "n0", "n1", "n2"]
    warnings = [e["text"] for e in result.timeline if "warning" in e["text"]]
    assert any('"x" is already running' in w for w in warnings)
    assert any('track="left"' in w for w in warnings)
    assert any("at most 4" in w for w in warnings)
    assert any('name="nope"' in w for w in warnings)


def test_stereo_wav_has_the_caller_left_and_the_line_right(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f"<Play>{line.url}/media/tone.wav</Play>",
        f'<Record action="{line.url}/recorded" timeout="1" playBeep="false"/>')
    line.docs["/recorded"] = doc("<Hangup/>")
    result = carrier.place_call({"steps": [{"say": "שלום"}], "end": "wait"})
    with wave.open(io.BytesIO(result.wav)) as parsed:
        assert parsed.getnchannels() == 2 and parsed.getframerate() == 8000
        frames = parsed.readframes(parsed.getnframes())
    import audioop
    left, right = audioop.tomono(frames, 2, 1, 0), audioop.tomono(frames, 2, 0, 1)
    first_second = 8000 * 2
    assert audioop.rms(right[:first_second], 2) > 1000 and audioop.rms(left[:first_second], 2) < 50
    assert audioop.rms(left[first_second:], 2) > 200


def test_caller_script_errors_name_the_step():
    with pytest.raises(ScriptError, match="step 2: expected exactly one of"):
        CallerScript.load({"steps": [{"say": "שלום"}, {"sing": "la"}]})
    with pytest.raises(ScriptError, match="step 1: dtmf keys"):
        CallerScript.load({"steps": [{"dtmf": "12a"}]})
    assert [s.action for s in CallerScript.load("three_turns").steps] == ["say"] * 3


def test_unknown_fault_is_refused(carrier):
    with pytest.raises(ValueError, match="unknown fault"):
        carrier.place_call(SILENT, explode=True)


def test_messages_create_with_the_real_client_is_a_queued_message(carrier):
    body = "שלום, התור שלך נקבע ליום שלישי"
    message = rest_client(carrier).messages.create(to="+972501111111", from_="+97231234567",
                                                   body=body)
    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.direction, message.num_segments) == (
        "queued", "outbound-api", "1")
    assert message.body == body and message.to == "+972501111111"
    assert message.date_created is not None and message.date_sent is None
    assert message.error_code is None and message.account_sid == ACCOUNT
    assert [(m["sid"], m["to"], m["from"], m["body"]) for m in carrier.messages] == [
        (message.sid, "+972501111111", "+97231234567", body)]
    assert [(a["status"], a["sid"]) for a in carrier.message_attempts] == [(201, message.sid)]


def test_messages_bad_to_is_21211_and_nothing_is_sent(carrier):
    with pytest.raises(TwilioRestException) as bad:
        rest_client(carrier).messages.create(to="0501111111", from_="+97231234567", body="היי")
    assert bad.value.code == 21211 and bad.value.status == 400
    assert "The 'To' number 0501111111 is not a valid phone number." in bad.value.msg
    assert carrier.messages == []
    assert [(a["status"], a["code"]) for a in carrier.message_attempts] == [(400, 21211)]


@pytest.mark.parametrize("form, code", [
    ({"From": "+97231234567", "Body": "x"}, 21211),
    ({"To": "+972501111111", "From": "+972", "Body": "x"}, 21212),
    ({"To": "+972501111111", "From": "+97231234567", "Body": ""}, 21602),
    ({"To": "+972501111111", "From": "+97231234567", "Body": "א" * 1601}, 21617)])
def test_messages_refused_with_twilios_codes(carrier, form, code):
    url = f"{carrier.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    answer = requests.post(url, data=form, auth=(ACCOUNT, TOKEN), timeout=10)
    assert answer.status_code == 400 and answer.json()["code"] == code
    assert carrier.messages == []


def test_messages_long_hebrew_body_counts_ucs2_segments(carrier):
    message = rest_client(carrier).messages.create(to="+972501111111", from_="+97231234567",
                                                   body="א" * 135)
    assert message.num_segments == "3"  # UCS-2: 67 characters a segment once split


def test_messages_bad_token_is_20003(carrier):
    bad = Client(ACCOUNT, "wrong-token")
    bad.api.base_url = carrier.url
    with pytest.raises(TwilioRestException) as auth:
        bad.messages.create(to="+972501111111", from_="+97231234567", body="היי")
    assert auth.value.status == 401 and auth.value.code == 20003
    assert carrier.messages == [] and carrier.message_attempts[0]["status"] == 401


def test_messages_injected_failures_then_success(carrier):
    client = rest_client(carrier)
    carrier.fail_messages(2)
    codes = []
    for _ in range(2):
        with pytest.raises(TwilioRestException) as failed:
            client.messages.create(to="+972501111111", from_="+97231234567", body="היי")
        codes.append((failed.value.status, failed.value.code))
    message = client.messages.create(to="+972501111111", from_="+97231234567", body="היי")
    assert codes == [(500, 20500), (500, 20500)] and message.status == "queued"
    assert [m["sid"] for m in carrier.messages] == [message.sid]
    assert [a["status"] for a in carrier.message_attempts] == [500, 500, 201]


def test_messages_control_api_lists_and_injects_failures(carrier):
    control = f"{carrier.url}/sim/messages"
    assert requests.post(control, json={"token": "nope"}, timeout=10).status_code == 401
    requests.post(control, json={"token": TOKEN, "fail": 1, "status": 503, "code": 20503},
                  timeout=10)
    with pytest.raises(TwilioRestException) as failed:
        rest_client(carrier).messages.create(to="+972501111111", from_="+97231234567",
                                             body="היי")
    assert (failed.value.status, failed.value.code) == (503, 20503)
    listed = requests.post(control, json={"token": TOKEN}, timeout=10).json()
    assert listed["messages"] == [] and [a["code"] for a in listed["attempts"]] == [20503]


EPS = 1e-6  # call times are rounded to the millisecond: their differences to float noise
DIAL_DOC = doc('<Dial timeout="2" action="/dial_done"><Number>+972501111111</Number></Dial>')


def dial_call(line, carrier, far_end, steps=(), **faults):
    """Ring the fixture line, which dials +972501111111; the caller waits for it to listen."""
    line.docs["/webhook/incoming_call"] = DIAL_DOC
    line.docs["/dial_done"] = doc("<Say>תודה</Say>", "<Hangup/>")
    script = {"dial": {"+972501111111": far_end, "+972509999999": "busy"}, "dial_talk": 2,
              "steps": list(steps), "end": "wait", "max_duration": 60}
    result = carrier.place_call(script, **faults)
    done = [r for r in line.requests if r["path"] == "/dial_done"]
    assert len(done) == 1 and done[0]["signed"] and result.error_codes == []
    assert done[0]["form"]["CallSid"] == result.call_sid
    assert result.heard[-1]["text"] == "תודה"  # the action's TwiML ran
    request = [r for r in result.requests if r["url"].endswith("/dial_done")][0]
    return result, done[0]["form"], request["t"]


def said_at(result, text: str) -> float:
    return [e["t"] for e in result.timeline if text in e["text"]][0]


def test_dial_answered_bridges_then_the_far_end_hangs_up_and_the_action_runs(line, carrier):
    result, form, action_t = dial_call(line, carrier, "answer", steps=[{"say": "הלו?"}])
    assert result.said == []  # ringing and bridged, the line never listened for the caller
    assert (form["DialCallStatus"], form["DialCallDuration"]) == ("completed", "2")
    assert form["DialCallSid"].startswith("CA") and len(form["DialCallSid"]) == 34
    assert form["DialCallSid"] != result.call_sid
    dialled = result.dials[0]
    assert (dialled["number"], dialled["outcome"], dialled["status"]) == (
        "+972501111111", "answer", "completed")
    answered = said_at(result, "the far end answered")
    hung_up = said_at(result, "the far end hangs up")
    assert answered - said_at(result, "dials +972501111111") >= 1.0 - EPS  # rang 1 s
    assert hung_up - answered >= 2.0 - EPS and action_t >= hung_up  # talked dial_talk s
    assert dialled["seconds"] >= 3.0 - EPS and result.to_dict(False)["dials"] == result.dials


def test_dial_no_answer_rings_out_the_timeout(line, carrier):
    result, form, action_t = dial_call(line, carrier, "no-answer")
    assert (form["DialCallStatus"], form["DialCallDuration"]) == ("no-answer", "0")
    assert action_t - result.dials[0]["t"] >= 2.0 - EPS
    assert "the far end answered" not in result.timeline_text()
    assert said_at(result, "the far end did not answer") <= action_t


def test_dial_busy_fault_overrides_the_script(line, carrier):
    result, form, action_t = dial_call(line, carrier, "answer", dial="busy")
    assert (form["DialCallStatus"], form["DialCallDuration"]) == ("busy", "0")
    assert result.dials[0]["outcome"] == "busy"
    assert said_at(result, "the far end is busy") - result.dials[0]["t"] >= 0.5 - EPS
    assert "the far end answered" not in result.timeline_text()


def test_dial_failed_at_once(line, carrier):
    result, form, _ = dial_call(line, carrier, "failed")
    assert form["DialCallStatus"] == "failed" and result.dials[0]["status"] == "failed"


def test_dial_without_action_goes_on_with_the_next_verb(line, carrier):
    line.docs["/webhook/incoming_call"] = doc('<Dial timeout="2">+972501111111</Dial>',
                                              "<Say>אחרי</Say>", "<Hangup/>")
    result = carrier.place_call({"dial": "busy", "steps": [], "end": "wait"})
    assert result.dials[0]["status"] == "busy" and result.heard[0]["text"] == "אחרי"
    assert result.heard[0]["t"] >= said_at(result, "the far end is busy")
    assert line.paths() == ["/webhook/incoming_call", "/call_status"]


def test_dial_a_number_not_in_the_script_is_not_answered(line, carrier):
    line.docs["/webhook/incoming_call"] = doc('<Dial timeout="1">+972507777777</Dial>')
    result = carrier.place_call({"dial": {"+972501111111": "answer"}, "steps": [],
                                 "end": "wait"})
    assert result.dials[0]["status"] == "no-answer"


def test_the_caller_may_hang_up_while_the_dial_rings(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        '<Dial timeout="30" action="/dial_done">+972501111111</Dial>')
    result = carrier.place_call({"steps": [{"silence": 1}, "hangup"]})
    assert result.dials[0]["status"] == "canceled" and result.dials[0]["seconds"] < 30
    assert "/dial_done" not in line.paths() and result.duration < 30


def test_dial_script_keys_and_the_fault_are_checked(carrier):
    script = CallerScript.load("dial:\n  +972501111111: answer\n  '+972-52-000-0000': busy\n"
                               "dial_talk: 5\nsteps: []\n")
    assert script.dial_outcome("+972501111111") == "answer"
    assert script.dial_outcome("+972520000000") == "busy"
    assert script.dial_outcome("+972530000000") == "no-answer" and script.dial_talk == 5
    assert CallerScript.load({"dial": "busy"}).dial_outcome("+1555") == "busy"
    with pytest.raises(ScriptError, match="dial: .*'ringing'"):
        CallerScript.load({"dial": {"+972501111111": "ringing"}})
    with pytest.raises(ValueError, match="fault dial=maybe"):
        carrier.place_call(SILENT, dial="maybe")
