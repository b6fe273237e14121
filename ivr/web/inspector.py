"""/inspector: every call, each call's timeline, the inbox of gaps; locked by INSPECTOR_TOKEN."""

from __future__ import annotations

import datetime
import hmac
import json
import re
import time
import zoneinfo
from pathlib import PurePath
from urllib.parse import urlsplit
from xml.dom import minidom

from flask import Blueprint, Flask, Response, abort, redirect, render_template, request
from flask_wtf.csrf import CSRFProtect

from .. import recordings
from ..config import Settings, is_loopback_host
from ..runtime import Runtime, current_runtime
from ..schema import DOCTOR_FROM
from ..tts_cache import GREETING
from ..twilio_alerts import AlertLog

bp = Blueprint("inspector", __name__)
csrf = CSRFProtect()  # the inspector's forms: a token per session (Flask-WTF), checked on POST
COOKIE = "inspector_token"
SESSION_COOKIE = "inspector_session"  # holds the forms' CSRF token (signed: Settings.session_key)
ANSWER_MAX_CHARS = 1000  # an answer is said on the phone: a few sentences
ERROR_CODE = re.compile(r"\b(1[0-9]{4}|2[0-9]{4}|3[0-9]{4})\b")
PROBLEM = re.compile(r"(_ERR|_FAIL|REJECTED|REFUSED|_BAD)$")
QUIET_KINDS = frozenset({"WS_MEDIA", "WS_TX"})
CODE_KINDS = frozenset({"STREAM_STATUS", "CALL_STATUS", "TWILIO_ALERT"})  # Twilio's codes in
NO_STATUS_AFTER_SEC = 900  # a call not ended this long after its last event: Twilio's final
# status never came (a live call has an event at least every turn, and its stream's media)
TWILIO_MAX_CALL_SEC = 4 * 3600  # Twilio ends any call after four hours
NO_STATUS = "ended (no status from Twilio)"
WITH_OWNER = frozenset({"dial", "owner"})  # turn modes of a call on the owner's phone: quiet here
ANSWERING_ROUTES = ("/webhook/incoming_call", "/webhook/dial_result")  # may play the greeting


def locked_reason(rt: Runtime) -> str | None:
    """Why this request may not see the inspector, or None when it may.

    Without INSPECTOR_TOKEN it is open only on a local line: PUBLIC_BASE_URL on loopback and
    the request from loopback. Binding to 127.0.0.1 is not enough: a reverse proxy on the same
    machine forwards the world's requests from loopback.
    """
    expected = rt.settings.inspector_token
    if not expected:
        if rt.settings.public_on_loopback and is_loopback_host(request.remote_addr):
            return None
        return ("401: the inspector is locked until INSPECTOR_TOKEN is set (without one it "
                "opens only on a local line: PUBLIC_BASE_URL and the browser on loopback)")
    auth = request.headers.get("Authorization", "")
    given = (request.args.get("token") or request.cookies.get(COOKIE)
             or (auth[7:] if auth.startswith("Bearer ") else ""))
    if given and hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return "401: the inspector needs INSPECTOR_TOKEN (?token=… once, or Authorization: Bearer)"


def protect_forms(app: Flask, settings: Settings) -> None:
    """The inspector's forms carry a CSRF token (Flask-WTF's CSRFProtect) kept in a session
    cookie signed with a key every instance derives alike; only the inspector's POSTs are
    checked (Twilio's webhooks are signed instead)."""
    app.secret_key = settings.session_key
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None,  # the session's whole life
        SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_PATH="/inspector",
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"))
    csrf.init_app(app)


def origin_of(url: str) -> str:
    """scheme://host[:port] as a browser's Origin header writes it (no default port)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80),
                                                                     ("https", 443)) else None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def cross_site(rt: Runtime) -> str | None:
    """Why a POST comes from another site (its Origin, or the browser's Sec-Fetch-Site, says
    so), or None. The CSRF token is checked after this, whatever it says."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return "403: a form of another site may not change the inspector"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if origin not in {origin_of(rt.settings.public_base_url), origin_of(request.host_url)}:
        return f"403: a form from {origin[:100]} may not change the inspector"
    return None


@bp.before_request
def guard():
    rt = current_runtime()
    reason = locked_reason(rt)
    if reason:
        return Response(reason + "\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="inspector"'})
    if request.method == "POST":
        refused = cross_site(rt)
        if refused:
            return Response(refused + "\n", status=403, mimetype="text/plain")
        csrf.protect()  # 400 (CSRFError) without this session's token
    if "token" in request.args:  # keep the token out of URLs, history and logs
        response = redirect(request.path)
        secure = request.is_secure or rt.settings.public_base_url.startswith("https://")
        response.set_cookie(COOKIE, request.args["token"], httponly=True, samesite="Strict",
                            secure=secure, path="/inspector")
        return response
    return None


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.route("/inspector")
def calls() -> str:
    """Every call but doctor's probes (`?checks=1` lists them too, marked), and the messages."""
    rt = current_runtime()
    rows = rt.store.call_summaries()
    now = time.time()
    checks = sum(1 for row in rows if row["from_number"] == DOCTOR_FROM)
    if not request.args.get("checks"):
        rows = [row for row in rows if row["from_number"] != DOCTOR_FROM]
    for row in rows:
        end = row["ended_at"] or (row["updated_at"] if row["ended"] else now)
        row["seconds"] = row["duration_sec"] or round((end or now) - (row["started_at"] or now))
        row["state"] = call_state(row, now)
        row["check"] = row["from_number"] == DOCTOR_FROM
    return render_template("inspector_calls.html", calls=rows, leads=rt.store.leads()[-20:],
                           alerts=AlertLog(rt.store).recent(), when=when_in(rt), checks=checks,
                           zone=rt.settings.timezone)


def call_state(call: dict, now: float) -> str:
    """What the call's status is for the owner: its outcome or Twilio's status, or, when Twilio
    never sent the final one, that it ended without it: NO_STATUS_AFTER_SEC after its last
    event (a call with the owner's phone is quiet here: after Twilio's limit on a call).
    Decided when shown, never written: a late status callback still ends the call."""
    if call.get("ended") or not call.get("started_at"):
        return call.get("outcome") or call.get("status") or ""
    last = max(t for t in (call["started_at"], call.get("updated_at"), call.get("last_media_at"),
                           call.get("last_event_at")) if t)
    quiet = now - last > NO_STATUS_AFTER_SEC
    if call.get("turn_mode") in WITH_OWNER:
        quiet = quiet and now - call["started_at"] > TWILIO_MAX_CALL_SEC
    return NO_STATUS if quiet else call.get("outcome") or call.get("status") or ""


@bp.route("/inspector/calls/<call_sid>")
def call(call_sid: str) -> str:
    rt = current_runtime()
    record = rt.store.get_call(call_sid)
    if record is None:
        abort(404)
    start = record["started_at"] or 0
    stored = rt.store.events(call_sid)
    record["last_event_at"] = max((e["ts"] for e in stored), default=None)
    record["state"] = call_state(record, time.time())
    record["check"] = record["from_number"] == DOCTOR_FROM
    events = [_view(e, start) for e in stored if e["kind"] not in QUIET_KINDS]
    codes = sorted({code for e in events for code in e["codes"]})
    turns = rt.store.turns(call_sid)
    notices = rt.notifier.queue.of_call(call_sid) if rt.notifier else []
    return render_template("inspector_call.html", call=record, events=events, codes=codes,
                           bookings=bookings_in(rt, stored),
                           turns=as_heard(rt, stored, turns), bars=timing_bars(turns),
                           when=when_in(rt), zone=rt.settings.timezone, no_status=NO_STATUS,
                           notices=notices,
                           alerts=AlertLog(rt.store).recent(call_sid=call_sid),
                           tts=lambda name: rt.tts_url(name) if name else "",
                           recording=lambda path: f"/inspector/recordings/{PurePath(path).name}")


@bp.route("/inspector/inbox")
def inbox() -> str:
    """The questions the line could not answer, grouped, the most recently asked first; a form
    per group for the owner's answer."""
    rt = current_runtime()
    return render_template("inspector_inbox.html", groups=rt.inbox.groups(), when=when_in(rt),
                           zone=rt.settings.timezone, max_chars=ANSWER_MAX_CHARS)


@bp.route("/inspector/inbox/<int:group_id>/<any(answer, remove, delete):change>",
          methods=["POST"])
def inbox_change(group_id: int, change: str) -> Response:
    """Save the owner's answer to a group (the next call uses it), remove the answer, or delete
    the group (not a real question)."""
    rt = current_runtime()
    answer = " ".join(request.form.get("answer", "").split()) if change == "answer" else ""
    if len(answer) > ANSWER_MAX_CHARS:
        return Response(f"400: an answer is said on the phone: {ANSWER_MAX_CHARS} characters "
                        "at most\n", status=400, mimetype="text/plain")
    done = rt.inbox.delete(group_id) if change == "delete" else rt.inbox.answer(group_id, answer)
    if not done:
        abort(404)
    kind = {"answer": "INBOX_ANSWERED" if answer else "INBOX_ANSWER_REMOVED",
            "remove": "INBOX_ANSWER_REMOVED", "delete": "INBOX_DELETED"}[change]
    rt.events.emit(kind, None, group=group_id, chars=len(answer))
    return redirect("/inspector/inbox" + ("" if change == "delete" else f"#g{group_id}"), 303)


APPOINTMENTS_DAYS_BACK = 30  # the appointments page: the last 30 days and all coming ones
BOOKING_KINDS = {"APPOINTMENT_BOOKED": "booked", "APPOINTMENT_MOVED": "moved",
                 "APPOINTMENT_CANCELLED": "cancelled"}


@bp.route("/inspector/appointments")
def appointments() -> str:
    """Coming appointments first (soonest first), then the last 30 days' (latest first);
    cancelled ones shown as such; times in TIMEZONE."""
    rt = current_runtime()
    now = rt.desk.clock()
    rows = rt.desk.appointments.since(now - datetime.timedelta(days=APPOINTMENTS_DAYS_BACK))
    coming = [a for a in rows if a.end > now]
    past = [a for a in reversed(rows) if a.end <= now]
    return render_template("inspector_appointments.html", coming=coming, past=past,
                           zone=rt.settings.timezone, when=when_in(rt),
                           calendar=bool(rt.desk.calendar))


def bookings_in(rt: Runtime, events: list[dict]) -> list[dict]:
    """The bookings, moves and cancellations made in a call (its APPOINTMENT_* events), each
    with its appointment as it is now."""
    made = []
    for e in events:
        if e["kind"] in BOOKING_KINDS:
            found = rt.desk.appointments.get(str(e["detail"].get("appointment") or ""))
            made.append({"ts": e["ts"], "change": BOOKING_KINDS[e["kind"]], "appointment": found,
                         "service": e["detail"].get("service", ""),
                         "start": _local(rt, e["detail"].get("start"))})
    return made


def _local(rt: Runtime, iso: str | None) -> str:
    """An ISO time from an event, as the owner reads it in TIMEZONE."""
    try:
        moment = datetime.datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso or "")
    return moment.astimezone(zoneinfo.ZoneInfo(rt.settings.timezone)).strftime("%Y-%m-%d %H:%M")


@bp.route("/inspector/recordings/<name>")
def recording(name: str) -> Response:
    """A recording the caller left, as kept here, or by another instance (the shared table)."""
    rt = current_runtime()
    data = recordings.read(rt.settings.var_dir, name, rt.media)
    if data is None:
        abort(404)
    return Response(data, mimetype="audio/wav")


TIMING_STAGES = (  # the turn's stages in order, as SpokenReply marks them
    ("asr", "ASR final"), ("llm_first", "first text"), ("first_chunk", "first chunk written"),
    ("first_chunk_audio", "first chunk audio"), ("first_audio", "first audio out"),
    ("last_chunk", "last chunk audio"))


def timing_bars(turns: list[dict]) -> dict[int, list[dict]]:
    """Each turn's stages as bar segments (percent of the slowest turn's span), by row id."""
    timings = {}
    for t in turns:
        try:
            marks = json.loads(t.get("timings") or "{}")
        except ValueError:
            marks = {}
        timings[t["id"]] = [(key, label, marks[key]) for key, label in TIMING_STAGES
                            if isinstance(marks.get(key), int)]
    span = max((ms for stages in timings.values() for _k, _l, ms in stages), default=0) or 1
    bars = {}
    for row, stages in timings.items():
        segments, before = [], 0
        for key, label, ms in sorted(stages, key=lambda s: s[2]):
            segments.append({"stage": key, "label": label, "ms": ms,
                             "left": 100 * before / span, "width": 100 * (ms - before) / span})
            before = max(before, ms)
        bars[row] = segments
    return bars


def _view(event: dict, start: float) -> dict:
    detail = dict(event["detail"])
    text = " ".join(str(v) for v in detail.values() if isinstance(v, (str, int)))
    twiml = detail.pop("twiml", None)
    params = detail.pop("params", None)
    return {"t": round(event["ts"] - start, 2), "kind": event["kind"], "detail": detail,
            "params": params, "twiml": _pretty(twiml) if twiml else None,
            "problem": bool(PROBLEM.search(event["kind"])),
            "codes": [int(c) for c in ERROR_CODE.findall(text)]
            if event["kind"] in CODE_KINDS or PROBLEM.search(event["kind"])
            else []}


def _pretty(xml_text: str) -> str:
    """The TwiML indented, without the XML declaration minidom puts first."""
    try:
        document = minidom.parseString(xml_text.encode())
        return "\n".join(node.toprettyxml(indent="  ") for node in document.childNodes).strip()
    except Exception:  # noqa: BLE001 - show what Twilio got, even if it does not parse
        return xml_text


def as_heard(rt: Runtime, events: list[dict], turns: list[dict]) -> list[dict]:
    """The call's turns as the caller heard them, numbered from 1: the greeting the answer's
    TwiML played (not a turn the dialog wrote), then each turn in the order it was kept."""
    played = any(e["kind"] == "TWIML" and e["detail"].get("route") in ANSWERING_ROUTES
                 and f"/{GREETING}<" in (e["detail"].get("twiml") or "") for e in events)
    heard = [{"id": None, "source": "greeting", "user_text": "", "utterance_ms": None,
              "reply_text": rt.prompts.texts.get(GREETING, ""), "audio_url": GREETING,
              "fallback": ""}] if played else []
    return [{**turn, "n": n} for n, turn in enumerate(heard + turns, 1)]


def when_in(rt: Runtime):
    """A time as the owner reads it: in TIMEZONE, the zone named (as SMS and e-mail show it)."""
    zone = zoneinfo.ZoneInfo(rt.settings.timezone)

    def when(ts: float | None) -> str:
        if not ts:
            return ""
        return datetime.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    return when
