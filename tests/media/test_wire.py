"""The media socket's wire, row by row against the line and a plain `websockets` server: the same
frames, the same close code, the same messages delivered, the same clean and prompt TCP close."""

import gc
import threading
import weakref

import pytest
import websockets.asyncio.messages

from ivr import twiml
from ivr.media import session, wire
from ivr.media.session import MAX_MESSAGE_BYTES, MediaStreamSession
from ivr.media.wire import MAX_BUFFERED_OUT, MAX_FRAGMENTS, WRITE_HIGH_WATER, MediaProtocol

from ..conftest import sign
from ..livehelpers import wait_until
from ..wirepeers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Outcome,
    RawClient,
    ReferenceServer,
    close_frame,
    frame,
)

LIMIT = MAX_MESSAGE_BYTES
READ_BYTES = 256 * 1024  # the most the loop reads from a socket at once (asyncio and uvloop)
SHALOM = "שלום".encode()
BYE = close_frame(1000)
STOP = b'{"event": "stop"}'
VALID_CODES = (1000, 1001, 1003, 1008, 1011, 1014, 3000, 4999)
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)

# name, frames the client sends, close code the server sends (None: a close without a code),
# messages delivered, pongs; every row must also end in a clean TCP close (see Outcome)
ROWS = [
    ("one text message", [frame(TEXT, b"hello"), BYE], 1000, ["hello"], []),
    ("text in three fragments", [frame(TEXT, b"he", fin=False), frame(CONT, b"l", fin=False),
                                 frame(CONT, b"lo"), BYE], 1000, ["hello"], []),
    ("binary in two fragments", [frame(BINARY, b"\0\1", fin=False), frame(CONT, b"\2"), BYE],
     1000, [b"\0\1\2"], []),
    ("a UTF-8 character split between fragments", [frame(TEXT, SHALOM[:3], fin=False),
                                                   frame(CONT, SHALOM[3:]), BYE],
     1000, ["שלום"], []),
    ("a ping between fragments", [frame(TEXT, b"he", fin=False), frame(PING, b"p"),
                                  frame(CONT, b"llo"), BYE], 1000, ["hello"], [b"p"]),
    ("a ping of 125 bytes", [frame(PING, b"x" * 125), BYE], 1000, [], [b"x" * 125]),
    ("an unsolicited pong", [frame(PONG, b"u"), frame(TEXT, b"hello"), BYE], 1000, ["hello"],
     []),
    ("messages and the close in one write", [frame(TEXT, b"a") + frame(TEXT, b"b") + BYE],
     1000, ["a", "b"], []),
    ("a control frame over 125 bytes", [frame(PING, b"x" * 126)], 1002, [], []),
    ("a fragmented control frame", [frame(PING, b"p", fin=False)], 1002, [], []),
    ("a continuation of nothing", [frame(CONT, b"x")], 1002, [], []),
    ("a new message inside a fragmented one", [frame(TEXT, b"a", fin=False),
                                               frame(TEXT, b"b")], 1002, [], []),
    ("a reserved bit with no extension", [frame(TEXT, b"x", rsv=4)], 1002, [], []),
    ("an unknown data opcode", [frame(0x3, b"x")], 1002, [], []),
    ("an unknown control opcode", [frame(0xB)], 1002, [], []),
    ("an unmasked client frame", [frame(TEXT, b"x", masked=False)], 1002, [], []),
    *[(f"close code {code}", [close_frame(code, b"bye")], code, [], []) for code in VALID_CODES],
    *[(f"invalid close code {code}", [close_frame(code)], 1002, [], []) for code in INVALID_CODES],
    ("a close without a code", [close_frame(None)], None, [], []),
    ("a 1-byte close", [frame(CLOSE, b"\x03")], 1002, [], []),
    ("a close reason not UTF-8", [close_frame(1000, b"\xff\xfe")], 1007, [], []),
    ("text not UTF-8", [frame(TEXT, b"\xff\xfe")], 1007, [], []),
    ("text not UTF-8 once joined", [frame(TEXT, SHALOM[:3], fin=False), frame(CONT, b"\xff")],
     1007, [], []),
    ("a message of the limit", [frame(TEXT, b"x" * LIMIT), BYE], 1000, ["x" * LIMIT], []),
    ("a message over the limit", [frame(TEXT, b"x" * (LIMIT + 1))], 1009, [], []),
    ("fragments over the limit", [frame(TEXT, b"x" * LIMIT, fin=False), frame(CONT, b"x")],
     1009, [], []),
    ("fragments up to the cap", [frame(TEXT, b"x", fin=False)]
     + [frame(CONT, b"", fin=False)] * (MAX_FRAGMENTS - 2) + [frame(CONT, b"y"), BYE],
     1000, ["xy"], []),
    ("a flood of empty continuations (240 KB)", [frame(TEXT, b"x", fin=False)
                                                 + frame(CONT, fin=False) * 40_000],
     1009, [], []),
    ("the server closes (a stop): the client's answer ends the TCP", [frame(TEXT, STOP)],
     1000, [STOP.decode()], []),
]


@pytest.fixture
def servers(phone_line, monkeypatch):
    """The line and a plain websockets server with the same limits; each is given a close
    timeout far above the client's wait, so only a close that follows the peer's answer (or
    the failure) is clean. Yields {name: (url, path, headers, delivered, connections)}."""
    for module, name in ((wire, "CLOSE_TIMEOUT_SEC"), (session, "START_DEADLINE_SEC")):
        monkeypatch.setattr(module, name, 600.0)
    monkeypatch.setattr(websockets.asyncio.messages, "MAX_FRAGMENTS", MAX_FRAGMENTS)
    delivered = []
    receive = MediaStreamSession.receive
    monkeypatch.setattr(MediaStreamSession, "receive",
                        lambda session, raw: (delivered.append(raw), receive(session, raw)))
    line = phone_line()
    signed = {"X-Twilio-Signature": sign(twiml.stream_url(line.url), {})}
    # max_queue=None: no pause of its reading behind unread frames (the line has no queue)
    reference = ReferenceServer(max_size=LIMIT, close_timeout=600, max_queue=None).start()
    yield {"line": (line.url, twiml.STREAM_PATH, signed, delivered, None),
           "websockets": (reference.url, "/", {}, reference.delivered,
                          lambda: reference.handled)}
    reference.close()


def run_row(server, frames: list[bytes]) -> tuple[Outcome, list]:
    """The client's outcome, and the messages the server's handler had once it returned (the
    line's session is called before anything is answered; websockets' handler in a task)."""
    url, path, headers, delivered, handled = server
    delivered.clear()
    before = handled() if handled else 0
    client = RawClient(url, path, headers)
    for data in frames:
        client.send(data)
    sent_close = any(f[0] & 0x0F == CLOSE for f in frames[-1:])
    seen = client.outcome(sent_close=sent_close)
    if handled:
        wait_until(lambda: handled() > before)
    return seen, list(delivered)


def test_each_row_of_frames_ends_as_rfc_6455_and_websockets_say(servers):
    wrong = []
    for name, frames, code, messages, pongs in ROWS:
        for server in ("line", "websockets"):
            seen, delivered = run_row(servers[server], frames)
            got = (seen.code, delivered, seen.pongs, seen.clean)
            if got != (code, messages, pongs, True):
                wrong.append(f"{server}: {name}: code {seen.code}, clean {seen.clean}, "
                             f"{len(delivered)} delivered, {len(seen.pongs)} pongs")
    assert not wrong, "\n".join(wrong)


def flood_pings(client: RawClient, until: threading.Event, most: int) -> None:
    """Ping without reading until told, or `most` bytes have gone; a send that does not go
    in (the server reads nothing) is tried again."""
    client.sock.settimeout(0.2)
    pings, sent = frame(PING, b"x" * 125) * 512, 0
    while not until.is_set() and sent < most:
        try:
            sent += client.sock.send(pings)
        except TimeoutError:
            continue
        except OSError:
            return  # dropped


def test_a_client_that_pings_and_never_reads_is_held_back_then_dropped(phone_line, monkeypatch):
    """The line stops reading a peer whose answers (pongs) it cannot write, so the memory they
    take is bounded; what the line itself writes to it (a streamed reply) drops it past
    MAX_BUFFERED_OUT, and nothing of it stays. A plain websockets server, for the record,
    buffers every pong."""
    for module, name in ((wire, "CLOSE_TIMEOUT_SEC"), (session, "START_DEADLINE_SEC")):
        monkeypatch.setattr(module, name, 600.0)  # only the cap can end this socket
    line = phone_line()
    before = set(line_sockets(line))
    client = RawClient(line.url, twiml.STREAM_PATH,
                       {"X-Twilio-Signature": sign(twiml.stream_url(line.url), {})})
    done = threading.Event()
    flood = threading.Thread(target=flood_pings, args=(client, done, 16 * MAX_BUFFERED_OUT))
    flood.start()
    try:
        gone = held_back_then_dropped(
            wait_until(lambda: set(line_sockets(line)) - before).pop(), flood)
        wait_until(lambda: not any(s is gone() for s in line_sockets(line)))
        wait_until(lambda: gc.collect() >= 0 and gone() is None)  # freed, buffers and all
    finally:
        done.set()
        flood.join()
        client.sock.close()

    reference = ReferenceServer(max_size=LIMIT, max_queue=None).start()
    try:
        client = RawClient(reference.url, "/")
        flood_pings(client, threading.Event(), 8 * MAX_BUFFERED_OUT)
        buffered = next(iter(reference.connections)).transport.get_write_buffer_size()
        assert buffered > 2 * MAX_BUFFERED_OUT  # websockets has no such bound
        client.sock.close()
    finally:
        reference.close()


def held_back_then_dropped(ours: MediaProtocol, flood: threading.Thread) -> weakref.ref:
    """Once pongs wait to be written, nothing more is read: what waits stays within the high
    water mark and one read. Then the line writes to it until the socket refuses."""
    wait_until(lambda: not flood.is_alive() or (
        ours.transport.get_write_buffer_size() >= WRITE_HIGH_WATER
        and not ours.transport.is_reading()))
    held = ours.transport.get_write_buffer_size()
    assert not ours.transport.is_reading() and held <= WRITE_HIGH_WATER + READ_BYTES, held
    wait_until(lambda: not ours.send_text("x" * 65536))  # a reply the peer never reads
    return weakref.ref(ours)


def line_sockets(line) -> list[MediaProtocol]:
    """The line's media sockets open now (uvicorn's own registry of connections)."""
    server = line.live.server.server_state
    return [c for c in list(server.connections) if isinstance(c, MediaProtocol)]


def flood_continuations(line, until: threading.Event, codes: list, opened: threading.Event):
    """Socket after socket, a message begun and 1 MB of empty continuations, until told;
    each socket's close code."""
    signed = {"X-Twilio-Signature": sign(twiml.stream_url(line.url), {})}
    while not until.is_set():
        client = RawClient(line.url, twiml.STREAM_PATH, signed)
        opened.set()
        client.send(frame(TEXT, b"x", fin=False) + frame(CONT, fin=False) * 175_000)
        codes.append(client.outcome().code)


def test_a_frame_flood_is_cut_by_the_fragment_cap_while_a_live_call_is_answered(phone_line):
    line = phone_line(asr_engine="fake", llm_engine="fake", tts_engine="fake",
                      turn_mode="stream", reply_mode="play")
    done, opened, codes = threading.Event(), threading.Event(), []
    flood = threading.Thread(target=flood_continuations, args=(line, done, codes, opened))
    flood.start()
    try:
        assert opened.wait(60)  # the flood is on before the call rings
        result = line.carrier.place_call("three_turns")
    finally:
        done.set()
        flood.join(60)
    assert result.error_codes == [] and [h["kind"] for h in result.heard] == ["play"] * 3
    events = [e["kind"] for e in line.store.events(result.call_sid)]
    assert "WATCHDOG_REDIRECT_OK" not in events and events.count("PING_PONG_TX") == 3
    assert codes and set(codes) == {1009}  # every flooding socket cut by the cap


def test_writes_from_other_threads_keep_their_order_and_end_with_the_close(phone_line):
    """The session writes from turn threads: each thread's messages arrive in the order it
    wrote them, and nothing after the close."""
    line = phone_line()
    client = RawClient(line.url, twiml.STREAM_PATH,
                       {"X-Twilio-Signature": sign(twiml.stream_url(line.url), {})})
    socket = wait_until(lambda: line_sockets(line))[0]
    writers = [threading.Thread(target=lambda n=n: [socket.send_text(f"{n}:{i}")
                                                    for i in range(50)]) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    socket.close(1008, "done")
    seen = client.outcome()
    assert seen.code == 1008 and seen.clean and len(seen.texts) == 200
    assert not socket.send_text("too late")
    for n in range(4):
        assert [t for t in seen.texts if t.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(50)]
