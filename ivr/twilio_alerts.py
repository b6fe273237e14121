"""Twilio's own warnings read back: this line's Monitor Alerts, each with its fix in plain words."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import delete, select
from twilio.rest import Client

from .config import Settings, is_twilio_host
from .delivery import rest_client, short_error
from .eventlog import EventLog
from .schema import capped, twilio_alerts
from .store import Store

JOB_ID = "twilio-alerts"
FIRST_RUN_SEC = 300  # the first check a few minutes after start, then once a day
READ_BACK_DAYS = 7  # each check reads this far back (Monitor keeps 30 days); seen ones are kept
MAX_ALERTS = 200


@dataclass(frozen=True)
class Fix:
    """What to do about an alert code; `blocking` ones make the doctor say NO-GO."""

    blocking: bool
    text: str


GATHER_FIX = Fix(True, "Twilio does not accept the <Gather> language: callers in gather mode "
                       "are not heard. Set GATHER_LANGUAGE to the tag Twilio's Gather table "
                       "lists (iw-IL for Hebrew; he-IL if your account's alerts say iw-IL is "
                       "the one refused)")
STREAM_FIX = "Calls fall back to <Record>. "
FIXES = {
    13331: GATHER_FIX,
    13512: GATHER_FIX,
    11200: Fix(True, "Twilio could not fetch a URL of this line (a <Play> MP3 or a webhook): "
                     "PUBLIC_BASE_URL must be reachable over https, /static/tts/*.mp3 must "
                     "answer 200 (run `python -m ivr doctor`), and every answer must come "
                     "within 15 s"),
    12100: Fix(True, "Twilio could not parse the TwiML this line answered: a proxy may be "
                     "answering in its place (an error page), or a route answered nothing"),
    12300: Fix(True, "a URL answered the wrong Content-Type (TwiML must be text/xml, a <Play> "
                     "file audio/mpeg): check the proxy in front of the line"),
    31920: Fix(True, STREAM_FIX + "The media WebSocket was not upgraded (no 101): let the "
                     "proxy pass WebSocket upgrades to /ws/twilio-media"),
    31921: Fix(True, STREAM_FIX + "The media WebSocket closed badly: check the proxy's "
                     "WebSocket timeouts and the line's log for WS_ lines"),
    31922: Fix(True, STREAM_FIX + "The Stream URL is not wss://: set PUBLIC_BASE_URL to the "
                     "https:// address"),
    31923: Fix(True, STREAM_FIX + "The Stream URL is malformed: check PUBLIC_BASE_URL (scheme "
                     "and host only)"),
    31924: Fix(False, "the line sent Twilio a media message it does not accept (REPLY_MODE="
                      "stream): the line's log shows the turn (WS_ lines); report it"),
    15003: Fix(False, "a status callback (call_status, stream_status) answered 4xx/5xx: look "
                      "for SIGNATURE_REJECTED or WEBHOOK_REJECTED in the line's log "
                      "(PUBLIC_BASE_URL and TWILIO_AUTH_TOKEN must match Twilio's)"),
    21220: Fix(False, "the line updated a call that had already ended (the caller hung up "
                      "while a reply was on its way): harmless when rare"),
}


@dataclass(frozen=True)
class Alert:
    """One Monitor Alert as this line keeps it."""

    sid: str
    code: int
    level: str
    message: str
    request_url: str
    resource_sid: str
    more_info: str
    generated_at: float

    @property
    def fix(self) -> Fix:
        return FIXES.get(self.code) or Fix(False, f"see {self.more_info or 'Twilio debugger'}")

    @classmethod
    def from_instance(cls, alert: Any) -> Alert:
        """From the SDK's AlertInstance (its alert_text is form-encoded: `Msg=…&…`)."""
        text = alert.alert_text or ""
        message = parse_qs(text).get("Msg", [text])[0]
        when = alert.date_generated or alert.date_created
        code = str(alert.error_code or "0")
        return cls(alert.sid or "", int(code) if code.isdigit() else 0, alert.log_level or "",
                   message, alert.request_url or "", alert.resource_sid or "",
                   alert.more_info or "", when.timestamp() if when else time.time())


def about_this_line(alert: Alert, public_host: str) -> bool:
    """An alert about a request to this line's host, to Twilio's API (the line's REST calls),
    or about no URL; not one about another application on the same account."""
    host = urlsplit(alert.request_url).hostname
    return not host or host == public_host or is_twilio_host(host)


def read(client: Client, public_host: str, since: datetime) -> list[Alert]:
    """The account's alerts about this line since `since`, newest first (one REST list)."""
    found = client.monitor.v1.alerts.list(start_date=since, limit=MAX_ALERTS)
    return [a for a in map(Alert.from_instance, found) if about_this_line(a, public_host)]


def failure(exc: Exception) -> str:
    """A failed read in one line: the SDK's list raises TwilioException('Unable to fetch page',
    response) with Twilio's answer in it (401 20003 for a bad token); else the error."""
    response = next((a for a in exc.args if hasattr(a, "status_code")), None)
    if response is not None:
        return f"HTTP {response.status_code} {str(getattr(response, 'text', ''))[:160]}"
    return short_error(exc)


def enabled(settings: Settings) -> bool:
    """Alerts are read with real credentials, or from the emulator as the carrier."""
    return bool(settings.twilio_account_sid and settings.twilio_auth_token)


class AlertLog:
    """The alerts this line has read, one row each (the first reader keeps and logs it)."""

    def __init__(self, store: Store):
        self.store = store

    def add(self, alert: Alert) -> bool:
        """Keep an alert; False when it was kept before (by this process or another)."""
        values = capped(twilio_alerts, {**asdict(alert), "seen_at": time.time()})
        stmt = (self.store.insert(twilio_alerts).values(**values)
                .on_conflict_do_nothing(index_elements=[twilio_alerts.c.sid])
                .returning(twilio_alerts.c.sid))
        with self.store.writing() as conn:
            return conn.execute(stmt).first() is not None

    def recent(self, limit: int = 50, call_sid: str | None = None) -> list[dict]:
        """The newest alerts kept (of one call), each with its fix."""
        query = select(twilio_alerts).order_by(twilio_alerts.c.generated_at.desc()).limit(limit)
        if call_sid is not None:
            query = query.where(twilio_alerts.c.resource_sid == call_sid)
        with self.store.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            fix = FIXES.get(row["code"]) or Fix(False, f"see {row['more_info']}")
            row.update(fix=fix.text, blocking=fix.blocking)
        return rows

    def purge_before(self, ts: float) -> int:
        """Delete the alerts generated before `ts` (RETENTION_DAYS); how many."""
        with self.store.writing() as conn:
            return conn.execute(delete(twilio_alerts).where(
                twilio_alerts.c.generated_at < ts)).rowcount


def check(settings: Settings, store: Store, events: EventLog,
          client: Client | None = None) -> list[Alert]:
    """Read the recent alerts, keep the new ones and log each (`TWILIO_ALERT code= fix=`);
    a failure is logged (TWILIO_ALERTS_ERR) and never raised. The new alerts."""
    if not enabled(settings):
        return []
    try:
        client = client or rest_client(settings.twilio_account_sid, settings.twilio_auth_token,
                                       settings.twilio_api_base_url)
        since = datetime.now(UTC) - timedelta(days=READ_BACK_DAYS)
        alerts = read(client, urlsplit(settings.public_base_url).hostname or "", since)
    except Exception as exc:  # noqa: BLE001 - a scheduler job must not die on a bad day
        events.emit("TWILIO_ALERTS_ERR", None, logging.WARNING, err=failure(exc))
        return []
    log = AlertLog(store)
    new = [alert for alert in reversed(alerts) if log.add(alert)]
    for alert in new:
        call = alert.resource_sid if alert.resource_sid.startswith("CA") else None
        level = logging.ERROR if alert.fix.blocking else logging.WARNING
        events.emit("TWILIO_ALERT", call, level, code=alert.code, log_level=alert.level,
                    fix=alert.fix.text, url=alert.request_url, sid=alert.sid,
                    message=alert.message, at=datetime.fromtimestamp(
                        alert.generated_at, UTC).isoformat(timespec="seconds"))
    return new


def schedule_daily(runtime: Any) -> None:
    """Check once a day, the first time a few minutes after start (every process does; each
    alert is logged by the first to keep it)."""
    if not enabled(runtime.settings):
        return
    runtime.scheduler.add_job(
        check, "interval", days=1, id=JOB_ID, replace_existing=True, coalesce=True,
        max_instances=1, misfire_grace_time=3600,
        args=(runtime.settings, runtime.store, runtime.events),
        next_run_time=datetime.now() + timedelta(seconds=FIRST_RUN_SEC))
