"""The server: no number of idle, half-open or slow connections keeps webhooks from answering."""

import socket

import requests
import websocket

from ivr import twiml
from ivr.asgi import wsgi_environ

from .conftest import CALL_SID, sign

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
