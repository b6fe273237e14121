"""A burst of signed and malformed Twilio webhooks, 8 at a time: every answer, its time, its TwiML.

Run: `python -m bench.webhook_fuzz [--requests 2120] [--db sqlite,postgresql]` (or `make
bench-webhooks`). The line runs as `scripts/start.sh` does (one gunicorn worker, fake engines,
TURN_MODE=stream) on SQLite, then on a throwaway PostgreSQL cluster (tests/pgcluster.py, its
commits on the disk as in production). The requests are the same on both (a fixed seed):
Twilio's fields with the values a fuzzer tries (out-of-range numbers, digits that are not
ASCII, NUL, 1,000 characters…), status callbacks for calls the line never saw, and requests
that are not Twilio's (bad or no signature, malformed SIDs, another content type, invalid
UTF-8). Each call's requests go in order through one of 8 lanes, so both databases see the same
story and must give the same answers. Prints, per database: wall time, the slowest answer,
answers over Twilio's 15 s, 5xx, WEBHOOK_ERR events, and the answers that differ between the
databases.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

LANES = 8  # requests in flight at once
TWILIO_TIMEOUT_SEC = 15.0  # Twilio gives up on a webhook then
FORM = "application/x-www-form-urlencoded"
NUMBERS = ["0", "1", "7", "59", "600", "2147483647", "2147483648", "-1", "-2147483649",
           "9223372036854775808", "99999999999999999999999999", "1" * 1000, "3.5", "1e9",
           "NaN", "", " 12", "0x1F", "abc", "²", "١٢٣", "٣", "12\x00", "\x00"]
TEXTS = ["", "כן", "מה שעות הפתיחה שלכם?", "לא\nשורה שנייה", "a\x00b", "\u202eabc",
         "x" * 1500, "'; DROP TABLE calls; --", "<Response><Hangup/></Response>"]
PHONES = ["+972501234567", "+97231234567", "", "anonymous", "+1" + "9" * 60, "\x00", "שלום"]
CALL_STATUSES = ["queued", "ringing", "in-progress", "completed", "busy", "failed",
                 "no-answer", "canceled", "", "bogus"]
ROUTES = ["incoming_call", "call_status", "stream_status", "stream_ended", "handle_recording",
          "handle_gather", "reply_continue", "dial_result"]


@dataclass
class FuzzRequest:
    """One request of the burst; `lane` keeps a call's requests in order."""

    index: int
    lane: int
    method: str
    path: str  # with its query
    body: bytes
    headers: dict


@dataclass
class Outcome:
    index: int
    status: int
    mimetype: str
    body: str
    seconds: float


def sid(prefix: str, rng: random.Random) -> str:
    return prefix + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def route_fields(route: str, rng: random.Random) -> tuple[dict, dict]:
    """The query and form fields Twilio sends to `route`, with fuzzed values."""
    pick = rng.choice
    query: dict = {}
    if route == "incoming_call":
        form = {"From": pick(PHONES), "To": pick(PHONES), "CallStatus": pick(CALL_STATUSES)}
    elif route == "call_status":
        form = {"CallStatus": pick(CALL_STATUSES), "CallDuration": pick(NUMBERS),
                "Timestamp": pick(["Sat, 05 Dec 2026 07:00:00 +0000", "", "9" * 40]),
                "SequenceNumber": pick(NUMBERS)}
    elif route == "stream_status":
        form = {"StreamEvent": pick(["stream-started", "stream-stopped", "stream-error", "x"]),
                "StreamSid": sid("MZ", rng), "StreamError": pick(TEXTS),
                "Timestamp": pick(["2026-12-05T07:00:00.000Z", "", "\x00"])}
    elif route == "stream_ended":
        query = {"turn": pick(NUMBERS)}
        form = {"CallStatus": pick(CALL_STATUSES)}
    elif route == "handle_recording":
        form = {"RecordingUrl": pick(["", "https://evil.example/r.wav", "file:///etc/passwd",
                                      "javascript:alert(1)", "x" * 900]),
                "RecordingSid": sid("RE", rng), "RecordingDuration": pick(NUMBERS)}
    elif route == "handle_gather":
        form = {"SpeechResult": pick(TEXTS), "Confidence": pick(NUMBERS),
                "Digits": pick(["", "1", "0", "#", "*", "123", "9" * rng.randint(1, 2000)])}
    elif route == "reply_continue":
        query = {"turn": pick(NUMBERS), "part": pick(NUMBERS)}
        form = {"CallStatus": pick(CALL_STATUSES)}
    else:  # dial_result
        query = {"why": pick(["ring_first", "transfer", "", "x" * 300])}
        form = {"DialCallStatus": pick(["completed", "answered", "busy", "no-answer", "failed",
                                        "canceled", ""]),
                "DialCallSid": pick([sid("CA", rng), "", "junk"]),
                "DialCallDuration": pick(NUMBERS), "CallStatus": pick(CALL_STATUSES)}
    return {k: v for k, v in query.items() if rng.random() > 0.1}, \
        {k: v for k, v in form.items() if rng.random() > 0.1}


def signed(base: str, token: str, path: str, form: dict, index: int, lane: int
           ) -> FuzzRequest:
    signature = RequestValidator(token).compute_signature(base + path, form)
    return FuzzRequest(index, lane, "POST", path, urlencode(form).encode(),
                       {"Content-Type": FORM, "X-Twilio-Signature": signature})


def malformed(base: str, token: str, path: str, form: dict, index: int, lane: int,
              rng: random.Random) -> FuzzRequest:
    """A request Twilio would not send: the line answers 4xx and changes nothing."""
    kind = rng.randrange(8)
    if kind == 0:  # signed with another token
        return signed(base, token + "x", path, form, index, lane)
    if kind == 1:  # no signature
        return FuzzRequest(index, lane, "POST", path, urlencode(form).encode(),
                           {"Content-Type": FORM})
    if kind in (2, 3, 4):  # a SID missing or not of its shape, signed all the same
        form = dict(form)
        if kind == 2:
            form.pop("CallSid")
        else:
            field = "CallSid" if kind == 3 else rng.choice(["AccountSid", "StreamSid",
                                                             "RecordingSid"])
            form[field] = rng.choice(["CA123", "", "CA" + "g" * 32, "CA" + "a" * 33,
                                      "../../etc/passwd", "\x00"])
        return signed(base, token, path, form, index, lane)
    if kind == 5:  # JSON, not a form
        return FuzzRequest(index, lane, "POST", path, b'{"CallSid": "x"}',
                           {"Content-Type": "application/json", "X-Twilio-Signature": "x"})
    if kind == 6:  # bytes that are not UTF-8
        return FuzzRequest(index, lane, "POST", path, b"CallSid=%FF%FE&From=%C3%28",
                           {"Content-Type": FORM, "X-Twilio-Signature": "x"})
    return FuzzRequest(index, lane, "GET", path.split("?")[0] + "?CallSid=x", b"", {})


def burst(base: str, token: str, count: int, seed: int = 21, calls: int = 120
          ) -> list[FuzzRequest]:
    """`count` requests (about one in six malformed) over `calls` calls, each call's in one
    lane. The same seed gives the same requests (but for the base URL and token)."""
    rng = random.Random(seed)
    call_sids = [sid("CA", rng) for _ in range(calls)]
    out = []
    for index in range(count):
        number = rng.randrange(calls)
        route = rng.choice(ROUTES)
        query, form = route_fields(route, rng)
        form = {"CallSid": call_sids[number], "AccountSid": sid("AC", random.Random(0)),
                **form}
        path = f"/webhook/{route}" + (f"?{urlencode(query)}" if query else "")
        lane = number % LANES
        if rng.random() < 0.17:
            out.append(malformed(base, token, path, form, index, lane, rng))
        else:
            out.append(signed(base, token, path, form, index, lane))
    return out


def send(url: str, burst_requests: list[FuzzRequest], timeout: float = 120.0
         ) -> list[Outcome]:
    """Send each lane's requests in order, the lanes at once; every answer with its time."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def lane(mine: list[FuzzRequest]) -> None:
        with requests.Session() as session:
            for req in mine:
                started = time.monotonic()
                try:
                    answer = session.request(req.method, url + req.path, data=req.body,
                                             headers=req.headers, timeout=timeout)
                    result = Outcome(req.index, answer.status_code,
                                     answer.headers.get("Content-Type", "").split(";")[0],
                                     answer.text, time.monotonic() - started)
                except requests.RequestException as exc:
                    result = Outcome(req.index, 0, "", repr(exc), time.monotonic() - started)
                with lock:
                    outcomes.append(result)
    threads = [threading.Thread(target=lane, args=([r for r in burst_requests if r.lane == n],))
               for n in range(LANES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes, key=lambda o: o.index)


def shape(outcome: Outcome) -> tuple:
    """What Twilio gets, as both databases must give it: the status, the content type and
    whether it is TwiML Twilio can run (which TwiML may differ: a reply's chunks ready by the
    answer or not, a watchdog check due or not are matters of the clock)."""
    return outcome.status, outcome.mimetype, not bad_twiml(outcome)


def bad_twiml(outcome: Outcome) -> str:
    """Why this TwiML would not run ("" when it would, or is no TwiML)."""
    if outcome.mimetype != "text/xml":
        return ""
    try:
        return "" if ET.fromstring(outcome.body).tag == "Response" else "TwiML without <Response>"
    except ET.ParseError as exc:
        return f"TwiML does not parse: {exc}"


def bad_answer(outcome: Outcome) -> str:
    """Why this answer would not do for Twilio ("" when it would): no answer, a 5xx, or TwiML
    that does not run (the time it took aside)."""
    if outcome.status == 0 or outcome.status >= 500:
        return f"answered {outcome.status or 'nothing'}"
    return bad_twiml(outcome)


def summary(outcomes: list[Outcome], wall: float) -> dict:
    times = sorted(o.seconds for o in outcomes)
    late = sum(o.seconds > TWILIO_TIMEOUT_SEC for o in outcomes)
    return {"requests": len(outcomes), "wall_seconds": round(wall, 1),
            "p50_ms": round(times[len(times) // 2] * 1000), "max_seconds": round(times[-1], 2),
            "over_15s": late, "server_errors": sum(o.status == 0 or o.status >= 500
                                                   for o in outcomes),
            "statuses": {str(s): sum(o.status == s for o in outcomes)
                         for s in sorted({o.status for o in outcomes})}}


def run_on(database: str, database_url: str | None, count: int, seed: int) -> tuple[dict, list]:
    """The burst against a fresh line on `database_url`; its summary and its answers' shapes."""
    from sqlalchemy import create_engine, func, select

    from ivr.schema import events

    from .harness import BenchLine, log
    env = {"STREAM_START_TIMEOUT_SEC": "120", "NO_MEDIA_TIMEOUT_SEC": "120",
           **({"DATABASE_URL": database_url} if database_url else {})}
    with BenchLine(**env) as line:
        burst_requests = burst(line.url, line.token, count, seed)
        log(f"{database}: {count} requests, {LANES} at a time")
        started = time.monotonic()
        outcomes = send(line.url, burst_requests)
        wall = time.monotonic() - started
        engine = create_engine(database_url or f"sqlite:///{line.db}")
        with engine.connect() as conn:
            errors = conn.execute(select(func.count()).select_from(events)
                                  .where(events.c.kind == "WEBHOOK_ERR")).scalar()
        engine.dispose()
        result = {**summary(outcomes, wall), "webhook_errors": errors,
                  "bad_answers": sum(bool(bad_answer(o)) for o in outcomes)}
        return result, [shape(o) for o in outcomes]


def main() -> None:
    from .common import write_result
    from .harness import log
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2120)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    results, shapes = {}, {}
    for database in args.db.split(","):
        cluster = url = None  # SQLite: BenchLine's own file
        if database == "postgresql":
            from tests.pgcluster import PgCluster
            cluster = PgCluster(durable=True).start()  # commits wait for the disk
            url = cluster.new_database()
        try:
            results[database], shapes[database] = run_on(database, url, args.requests,
                                                         args.seed)
        finally:
            if cluster:
                cluster.stop()
        log(f"{database}: {results[database]}")
    if len(shapes) == 2:
        first, second = shapes.values()
        differ = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
        results["answers_that_differ"] = len(differ)
        for i in differ[:5]:
            log(f"request {i}: {first[i]} != {second[i]}")
    path = write_result("webhook_fuzz", results)
    for database, result in results.items():
        if isinstance(result, dict):
            print(f"{database:10s} {result['wall_seconds']:7.1f} s  p50 {result['p50_ms']} ms  "
                  f"max {result['max_seconds']} s  over 15 s: {result['over_15s']}  5xx: "
                  f"{result['server_errors']}  WEBHOOK_ERR: {result['webhook_errors']}")
    print(f"answers that differ: {results.get('answers_that_differ', 'n/a')}  ({path})")


if __name__ == "__main__":
    main()
