"""Exact TwiML strings of every builder, and the URL rules of DESIGN §4."""

from ivr import twiml

BASE = "https://line.example.com"
HEAD = '<?xml version="1.0" encoding="UTF-8"?>'
SID = "CA" + "b" * 32


def test_abs_url_never_doubles_the_slash():
    assert twiml.abs_url("https://h/", "/webhook/x") == "https://h/webhook/x"
    assert twiml.abs_url("https://h", "webhook/x") == "https://h/webhook/x"


def test_stream_url_is_wss_with_no_query_even_for_a_plain_http_base():
    assert twiml.stream_url("https://h.example:8443") == "wss://h.example:8443/ws/twilio-media"
    assert twiml.stream_url("http://127.0.0.1:5000") == "wss://127.0.0.1:5000/ws/twilio-media"


def test_stream_turn_exact():
    token = twiml.stream_token("key", SID, 1)
    assert twiml.stream_turn(BASE, "key", SID, 1) == (
        HEAD + '<Response><Connect action="https://line.example.com/webhook/stream_ended?turn=1" '
        'method="POST"><Stream statusCallback="https://line.example.com/webhook/stream_status" '
        'statusCallbackMethod="POST" url="wss://line.example.com/ws/twilio-media">'
        f'<Parameter name="call_sid" value="{SID}" /><Parameter name="turn" value="1" />'
        f'<Parameter name="token" value="{token}" /></Stream></Connect></Response>')


def test_ping_pong_plays_then_reconnects_with_the_next_turn():
    body = twiml.stream_turn(BASE, "key", SID, 4, "https://line.example.com/static/tts/a.mp3")
    assert body.startswith(HEAD + "<Response><Play>https://line.example.com/static/tts/a.mp3"
                           "</Play><Connect ")
    assert '<Parameter name="turn" value="4" />' in body
    assert "//static" not in body.replace("https://", "")


def test_record_turn_exact():
    assert twiml.record_turn(BASE, "https://line.example.com/static/tts/f.mp3") == (
        HEAD + "<Response><Play>https://line.example.com/static/tts/f.mp3</Play>"
        '<Record action="https://line.example.com/webhook/handle_recording" maxLength="20" '
        'method="POST" playBeep="false" timeout="2" trim="trim-silence" />'
        '<Redirect method="POST">https://line.example.com/webhook/handle_recording</Redirect>'
        "</Response>")


def test_gather_turn_exact():
    """A menu key is answered as it is pressed (numDigits 1), not after `#` or 5 s."""
    assert twiml.gather_turn(BASE, "he-IL") == (
        HEAD + '<Response><Gather action="https://line.example.com/webhook/handle_gather" '
        'finishOnKey="#" input="speech dtmf" language="he-IL" method="POST" numDigits="1" '
        'speechTimeout="auto" timeout="5" />'
        '<Redirect method="POST">https://line.example.com/webhook/handle_gather</Redirect>'
        "</Response>")


def test_a_gather_for_a_phone_number_takes_keys_until_the_hash():
    body = twiml.gather_turn(BASE, "he-IL", num_digits=0)
    assert 'finishOnKey="#"' in body and "numDigits" not in body


def test_a_continued_reply_plays_its_ready_chunks_then_asks_for_the_next():
    urls = ["https://line.example.com/static/tts/a.mp3", "https://line.example.com/static/tts/b.mp3"]
    assert twiml.continue_reply(BASE, urls, 5, 2) == (
        HEAD + "<Response><Play>https://line.example.com/static/tts/a.mp3</Play>"
        "<Play>https://line.example.com/static/tts/b.mp3</Play>"
        '<Redirect method="POST">https://line.example.com/webhook/reply_continue?turn=5&amp;'
        "part=2</Redirect></Response>")
    body = twiml.gather_turn(BASE, "he-IL", urls)
    assert "<Play>https://line.example.com/static/tts/a.mp3</Play><Play>https://line.example." \
        "com/static/tts/b.mp3</Play></Gather>" in body


def test_a_continued_reply_in_a_gather_call_plays_inside_a_gather_that_hears_the_caller():
    urls = ["https://line.example.com/static/tts/a.mp3"]
    assert twiml.continue_reply(BASE, urls, 5, 1, "iw-IL") == (
        HEAD + '<Response><Gather action="https://line.example.com/webhook/handle_gather" '
        'finishOnKey="#" input="speech dtmf" language="iw-IL" method="POST" numDigits="1" '
        'speechTimeout="auto" timeout="1">'
        "<Play>https://line.example.com/static/tts/a.mp3</Play></Gather>"
        '<Redirect method="POST">https://line.example.com/webhook/reply_continue?turn=5&amp;'
        "part=1</Redirect></Response>")


def test_goodbye_and_empty_exact():
    assert twiml.goodbye("https://h/static/tts/bye.mp3") == (
        HEAD + "<Response><Play>https://h/static/tts/bye.mp3</Play><Hangup /></Response>")
    assert twiml.empty() == HEAD + "<Response />"
    assert twiml.goodbye(["https://h/a.mp3", "https://h/b.mp3"]) == (
        HEAD + "<Response><Play>https://h/a.mp3</Play><Play>https://h/b.mp3</Play><Hangup />"
        "</Response>")
    assert twiml.goodbye() == HEAD + "<Response><Hangup /></Response>"


def test_dial_owner_exact():
    assert twiml.dial_owner(BASE, "+972501234567", 20, "ring_first") == (
        HEAD + '<Response><Dial action="https://line.example.com/webhook/dial_result'
        '?why=ring_first" method="POST" timeout="20"><Number>+972501234567</Number></Dial>'
        "</Response>")
    assert twiml.dial_owner(BASE, "+972501234567", 15, "transfer", ["https://h/t.mp3"]) == (
        HEAD + '<Response><Play>https://h/t.mp3</Play><Dial action="https://line.example.com'
        '/webhook/dial_result?why=transfer" method="POST" timeout="15">'
        "<Number>+972501234567</Number></Dial></Response>")


def test_stream_token_binds_call_and_turn():
    token = twiml.stream_token("key", SID, 2)
    assert twiml.check_stream_token("key", SID, 2, token)
    assert not twiml.check_stream_token("key", SID, 3, token)
    assert not twiml.check_stream_token("other", SID, 2, token)
    assert not twiml.check_stream_token("key", SID, 2, "")


def test_hold_plays_a_filler_then_pauses_for_the_reply():
    assert twiml.hold("https://h/static/tts/thinking_he.mp3", 27) == (
        HEAD + "<Response><Play>https://h/static/tts/thinking_he.mp3</Play>"
        '<Pause length="27" /></Response>')


def test_a_ping_pong_reply_is_heard_over_by_a_fork_stopped_before_the_stream():
    """<Start><Stream> (one way, the turn's token, fork=1) before the Plays, stopped by name
    before the <Connect>: the caller who speaks over the reply is heard."""
    token = twiml.stream_token("key", SID, 3)
    doc = twiml.stream_turn(BASE, "key", SID, 3, [BASE + "/a.mp3"], fork_starts=True,
                            fork_stops=True)
    assert doc.startswith(
        HEAD + '<Response><Start><Stream name="listen-3" '
        'url="wss://line.example.com/ws/twilio-media">'
        f'<Parameter name="call_sid" value="{SID}" /><Parameter name="turn" value="3" />'
        f'<Parameter name="token" value="{token}" /><Parameter name="fork" value="1" />'
        '</Stream></Start><Play>https://line.example.com/a.mp3</Play>'
        '<Stop><Stream name="listen-3" /></Stop><Connect ')


def test_a_fork_still_running_ends_before_the_owner_is_dialled_or_the_line_hangs_up():
    dial = twiml.dial_owner(BASE, "+972501111111", 20, "transfer", [BASE + "/a.mp3"], 4)
    assert '</Play><Stop><Stream name="listen-4" /></Stop><Dial ' in dial
    assert twiml.goodbye([BASE + "/a.mp3"], 4).endswith(
        '</Play><Stop><Stream name="listen-4" /></Stop><Hangup /></Response>')
    assert "<Stop>" not in twiml.goodbye([BASE + "/a.mp3"])
