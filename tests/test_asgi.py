"""The server: no number of idle, half-open or slow connections, nor of continuations waiting
on a stalled engine, keeps webhooks and /healthz from answering."""

import re
import socket
from concurrent.futures import ThreadPoolExecutor

import requests
import websocket

from ivr import twiml
from ivr.asgi import wsgi_environ
from ivr.tts_cache import FALLBACK
from ivr.web import webhooks

from .conftest import ACCOUNT_SID, CALL_SID, sign, wait_until
from .providers import (  # noqa: F401 - streamed_reply_provider: the fixture
    SPEECH_API_LAST_DAY,
    streamed_reply_provider,
)

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}


def raw(url: str, data: bytes) -> socket.socket:
    host, port = url.rsplit("/", 1)[1].split(":")
    conn = socket.create_connection((host, int(port)), timeout=60)
    conn.sendall(data)
    return conn


def signed_webhook(url: str) -> requests.Response:
    params = {"CallSid": CALL_SID, "StreamEvent": "stream-started"}
    target = url + "/webhook/stream_status"
    return requests.post(target, data=params, timeout=30,
                         headers={"X-Twilio-Signature": sign(target, params)})


def closed_by_server(conn: socket.socket) -> bool:
    """True once the server closes the connection without answering (EOF or reset)."""
    conn.settimeout(60)
    try:
        return conn.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_idle_sockets_and_half_sent_requests_do_not_starve_webhooks(phone_line):
    line = phone_line(**FAKES)
    wss = twiml.stream_url(line.url)
    ws_url = line.url.replace("http", "ws") + "/ws/twilio-media"
    idle = [websocket.create_connection(ws_url, timeout=30,
                                        header=[f"X-Twilio-Signature: {sign(wss, {})}"])
            for _ in range(150)]  # upgraded, then silent: over twice the old 64 threads
    half = [raw(line.url, b"POST /webhook/incoming_call HTTP/1.1\r\nHost: x\r\n")
            for _ in range(150)]
    slow = [raw(line.url, b"POST /webhook/incoming_call HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 5000\r\n\r\nCallSid=") for _ in range(100)]
    for _ in range(5):
        assert signed_webhook(line.url).status_code == 204
        assert requests.get(line.url + "/healthz", timeout=30).status_code == 200
    result = line.carrier.place_call("three_turns")  # and a real call is served meanwhile
    assert result.error_codes == [] and len(result.heard) == 3
    for conn in half[:5]:
        assert closed_by_server(conn)  # the head deadline (10 s) closes it
    answer = slow[0].recv(1024)
    assert answer.startswith(b"HTTP/1.1 408")  # the body deadline answers 408
    for ws in idle[:3]:
        ws.settimeout(60)
        assert ws.recv_data(control_frame=True)[0] == websocket.ABNF.OPCODE_CLOSE
    for conn in half + slow:
        conn.close()


def test_the_environ_carries_path_query_headers_and_body():
    scope = {"type": "http", "method": "POST", "path": "/webhook/x", "query_string": b"a=1",
             "headers": [(b"content-type", b"text/plain"), (b"x-twilio-signature", b"s"),
                         (b"accept", b"a"), (b"accept", b"b")],
             "server": ("127.0.0.1", 5000), "client": ("10.0.0.1", 1234), "scheme": "https"}
    environ = wsgi_environ(scope, b"hello")
    assert environ["PATH_INFO"] == "/webhook/x" and environ["QUERY_STRING"] == "a=1"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "5"
    assert environ["HTTP_X_TWILIO_SIGNATURE"] == "s" and environ["HTTP_ACCEPT"] == "a,b"
    assert environ["REMOTE_ADDR"] == "10.0.0.1" and environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.input"].read() == b"hello"


def test_a_body_over_256_kb_is_413_before_flask_sees_it(phone_line):
    line = phone_line(**FAKES)
    response = requests.post(line.url + "/webhook/incoming_call", data=b"x" * 300_000,
                             timeout=30)
    assert response.status_code == 413
    assert requests.get(line.url + "/healthz", timeout=30).status_code == 200


CAP = 40  # CONTINUE_MAX_WAITING: continuations that may wait for a chunk at once


def signed_post(line, path: str, **params: str) -> requests.Response:
    params = {"AccountSid": ACCOUNT_SID, **params}
    return requests.post(line.url + path, data=params, timeout=120,
                         headers={"X-Twilio-Signature": sign(line.url + path, params)})


def health_of(line) -> tuple[int, dict]:
    response = requests.get(line.url + "/healthz", timeout=120)
    return response.status_code, response.json()


def call_sid(n: int) -> str:
    return f"CA{n:032x}"


def test_continuations_waiting_on_a_stalled_llm_starve_no_call_and_are_capped(
        phone_line, provider, monkeypatch):
    """40 continuations wait for a reply the LLM stalls in the middle of: a new call's first
    request and /healthz are answered meanwhile (not queued behind them), /healthz says 503
    with the load, and a 41st continuation gets the fallback phrase at once; once the LLM goes
    on, the 40 are answered with the rest of their replies."""
    for budget in ("CONTINUE_WAIT_SEC", "TWILIO_WEBHOOK_BUDGET_SEC"):  # Twilio's 15 s, here
        monkeypatch.setattr(webhooks, budget, 600.0)  # stretched: they wait until the LLM goes on
    provider.today = SPEECH_API_LAST_DAY
    provider.chat_holds_after = 30  # after the first chunk ("כן, בשמחה,") is written
    provider.slow_sec = 600.0  # held until released: the 41 first answers take a minute or more
    line = phone_line(asr_engine="fake", llm_engine="openai", tts_engine="fake",
                      openai_api_key="sk-test-key-123456", openai_base_url=provider.url + "/v1",
                      turn_mode="gather", llm_timeout_sec=120, continue_max_waiting=CAP)
    continuations = []
    for n in range(CAP + 1):  # each call's first answer: the first chunk, then a <Redirect>
        assert signed_post(line, "/webhook/incoming_call", CallSid=call_sid(n)).ok
        first = signed_post(line, "/webhook/handle_gather", CallSid=call_sid(n),
                            SpeechResult=f"מה שעות הפתיחה שלכם? {n}")
        (redirect,) = re.findall(r"/webhook/reply_continue\?[^<]+", first.text)
        continuations.append(redirect.replace("&amp;", "&"))
    with ThreadPoolExecutor(CAP) as pool:
        waiting = [pool.submit(signed_post, line, continuations[n], CallSid=call_sid(n))
                   for n in range(CAP)]
        wait_until(lambda: health_of(line)[1]["load"]["continuations"]["waiting"] == CAP)
        status, health = health_of(line)
        new_call = signed_post(line, "/webhook/incoming_call", CallSid=call_sid(CAP + 1))
        over = signed_post(line, continuations[CAP], CallSid=call_sid(CAP))
        assert not any(f.done() for f in waiting)  # all this while the 40 still wait
        assert new_call.ok and "<Gather" in new_call.text
        fallback = line.runtime.prompt_url(FALLBACK)
        assert over.ok and f"<Play>{fallback}</Play>" in over.text and "<Gather" in over.text
        assert "CONTINUE_OVER_CAP" in [e["kind"] for e in line.store.events(call_sid(CAP))]
        assert status == 503 and any("CONTINUE_MAX_WAITING=40" in p for p in health["problems"])
        load = health["load"]
        assert load["lanes"]["continuations"]["busy"] == CAP
        assert load["lanes"]["calls"]["queued"] == 0 and {"now", "recent_max"} <= set(
            load["loop_lag_ms"])
        provider.release.set()
        answers = [f.result() for f in waiting]
    assert all(a.ok and fallback not in a.text and "/static/tts/" in a.text for a in answers)
    assert health_of(line)[0] == 200
