"""Tables (calls, turns, events, leads, notices, media, replies, checks, alerts, bookings, gaps)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

DOCTOR_FROM = "doctor"  # the From of `python -m ivr doctor`'s probe call (no phone number is)
metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("account_sid", String(64), default=""),
    Column("from_number", String(64), default=""),  # DOCTOR_FROM: doctor's probe
    Column("to_number", String(64), default=""),
    Column("status", String(32), default="in-progress"),
    Column("turn_mode", String(16), default=""),  # stream, record, gather; the owner's: dial, owner
    Column("mode_after_dial", String(16)),  # how the call listens again if the owner is not there
    Column("dial_sid", String(64)),  # the DialCallSid whose result was acted on last
    Column("transfers", Integer, default=0),  # transfers to the owner this call has had
    Column("reply_mode", String(16), default=""),
    Column("turn", Integer, default=0),
    Column("stream_started_turn", Integer, default=0),
    Column("last_media_at", Float),
    Column("silent_turns", Integer, default=0),
    Column("history", Text, default="[]"),
    Column("pending_twiml", Text),
    Column("fallback_reason", String(200)),
    Column("outcome", String(64), default=""),
    Column("errors", Integer, default=0),
    Column("duration_sec", Integer),
    Column("started_at", Float),
    Column("updated_at", Float),
    Column("ended_at", Float),
    Column("ended", Boolean, default=False),
    Column("summary", Text),  # two lines for the owner (ivr/notify/notifier.py), once the call ends
)

turns = Table(
    "turns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("turn", Integer),
    Column("source", String(16)),
    Column("user_text", Text, default=""),
    Column("reply_text", Text, default=""),
    Column("audio_url", Text, default=""),
    Column("utterance_ms", Integer),
    Column("asr_ms", Integer),
    Column("llm_ms", Integer),
    Column("tts_ms", Integer),
    Column("total_ms", Integer),
    Column("first_audio_ms", Integer),  # end of the caller's speech → first audio out
    Column("timings", Text, default="{}"),  # JSON: stage → ms after the end of speech
    Column("fallback", String(64), default=""),
    Column("created_at", Float),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("ts", Float),
    Column("kind", String(64)),
    Column("detail", Text, default="{}"),
)

health = Table(
    "health", metadata,
    Column("id", Integer, primary_key=True),
    Column("checked_at", Float),
)

leads = Table(
    "leads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("caller", String(64), default=""),
    Column("name", Text, default=""),
    Column("phone", Text, default=""),
    Column("reason", Text, default=""),
    Column("incomplete", Boolean),  # the caller hung up before the message's last answer
    Column("created_at", Float),
)

checks = Table(  # the watchdog's due timers: one row per armed check, claimed by one process
    "checks", metadata,
    Column("id", String(160), primary_key=True),  # "<CallSid>:<kind>[:<turn>]"; re-arming replaces
    Column("call_sid", String(64), index=True),
    Column("kind", String(16)),
    Column("turn", Integer),
    Column("due_at", Float, index=True),
    Column("token", String(32)),  # this arming's identity: a run deletes only its own arming
    Column("lease_until", Float),  # claimed by a process until then (NULL: waiting)
    Column("attempts", Integer, default=0),
    Column("detail", Text, default="{}"),  # JSON: the check's other arguments
)

notifications = Table(  # the owner's SMS and e-mails: one row each, retried until sent or failed
    "notifications", metadata,
    Column("id", String(200), primary_key=True),  # "<CallSid>:<lead key or call>:<channel>"
    Column("call_sid", String(64), index=True),
    Column("channel", String(16)),  # "sms" or "email"
    Column("target", Text, default=""),  # the phone number, or the e-mail addresses
    Column("subject", Text, default=""),
    Column("body", Text, default=""),
    Column("status", String(16), default="pending"),  # pending, sent or failed
    Column("attempts", Integer, default=0),
    Column("next_at", Float, index=True),  # the next attempt is due then
    Column("lease_until", Float),  # an attempt is under way in some process until then
    Column("last_error", Text, default=""),
    Column("created_at", Float),
    Column("sent_at", Float),
)

CALL_FIELDS = frozenset(c.name for c in calls.columns)
MAX_TEXT_CHARS = 64 * 1024  # any Text column; String(n) columns are cut to n
INTEGER_RANGE = (-2**31, 2**31 - 1)  # an Integer column, on PostgreSQL as on SQLite


class UnknownField(ValueError):
    """A call field that the calls table does not have (a typo would otherwise be dropped)."""


class OutOfRange(ValueError):
    """A number that its Integer column cannot hold (PostgreSQL's `integer`): refused where it
    is written, never left to fail a batch of other rows."""


def capped(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """The values as every database takes them alike: each text without NUL (PostgreSQL
    refuses it) and cut to its column's size, each integer checked against its column's range
    (OutOfRange otherwise), so no field grows without bound."""
    out = {}
    for key, value in values.items():
        column = table.c[key].type
        if isinstance(value, str):
            length = getattr(column, "length", None) or MAX_TEXT_CHARS
            value = value.replace("\x00", "")[:length]
        elif isinstance(value, int) and not isinstance(value, bool) \
                and isinstance(column, Integer) \
                and not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
            raise OutOfRange(f"{table.name}.{key}={value} is outside an integer column")
        out[key] = value
    return out


def call_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields for the calls table, capped; an unknown one is an error, never dropped."""
    unknown = set(fields) - CALL_FIELDS
    if unknown:
        raise UnknownField(f"calls has no field {', '.join(sorted(unknown))}")
    return capped(calls, fields)


# ---- shared by every instance of the line (issue 13: several instances, one PostgreSQL) -------
media = Table(  # MP3s and recordings any instance can serve (written on PostgreSQL only)
    "media", metadata,
    Column("name", String(160), primary_key=True),  # the file's name: <sha256>.mp3, RE….wav
    Column("kind", String(16)),  # "tts" or "recording"
    Column("data", LargeBinary),
    Column("created_at", Float),
    Column("used_at", Float, index=True),  # retention: rows not used since RETENTION_DAYS go
)

shared_replies = Table(  # a reply in chunks whose later chunks a continuation webhook plays
    "shared_replies", metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("turn", Integer, primary_key=True),
    Column("tail", String(16)),  # how the call listens once the reply is over
    Column("parts", Integer),  # how many chunks the reply has, once that is known
    Column("cancelled", Boolean, default=False),  # no chunk beyond those written will come
    Column("created_at", Float, index=True),
)

reply_parts = Table(  # a chunk of a shared reply, written once its MP3 exists
    "reply_parts", metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("turn", Integer, primary_key=True),
    Column("part", Integer, primary_key=True),
    Column("name", String(160)),
    Column("seconds", Float),
    Column("fallback", String(64), default=""),
    Column("created_at", Float, index=True),
)

twilio_alerts = Table(  # Twilio's own warnings about this line (the Monitor Alerts), once each
    "twilio_alerts", metadata,
    Column("sid", String(64), primary_key=True),  # NO + 32 hex: the alert's, so kept only once
    Column("code", Integer, index=True),
    Column("level", String(16), default=""),  # error, warning, notice, debug
    Column("message", Text, default=""),
    Column("request_url", Text, default=""),
    Column("resource_sid", String(64), index=True),  # usually the CallSid
    Column("more_info", Text, default=""),
    Column("generated_at", Float, index=True),
    Column("seen_at", Float),  # when this line first read it
)


# ---- appointments booked by phone (issue 24: ivr/booking/) -------------------------------------
appointments = Table(  # one row per booking, kept when cancelled
    "appointments", metadata,
    Column("id", String(32), primary_key=True),  # 32 hex: also the calendar event's UID
    Column("call_sid", String(64), index=True),  # the call that booked it
    Column("caller", String(64), index=True),  # the caller's number: finds their bookings
    Column("name", Text, default=""),
    Column("service", String(200), default=""),
    Column("starts_at", Float, index=True),  # UTC epoch seconds (shown in TIMEZONE)
    Column("ends_at", Float),
    Column("busy_until", Float),  # ends_at and the service's buffer: the place is held till then
    Column("unit", Integer),  # which of the `capacity` places (chair, room) it holds
    Column("status", String(16), default="booked"),  # booked or cancelled
    Column("synced", Boolean, default=False),  # the owner's calendar shows it as it is now
    Column("external_uid", String(200), default=""),  # the event's UID in the owner's calendar
    Column("sync_error", Text, default=""),  # why the last sync failed
    Column("created_at", Float),
    Column("updated_at", Float),
)

appointment_cells = Table(  # the places a booking holds, 5 minutes a row: claimed by INSERT, so
    "appointment_cells", metadata,  # two workers racing for one place cannot both write it
    Column("unit", Integer, primary_key=True),
    Column("cell", Integer, primary_key=True),  # 5-minute pieces of time since the epoch
    Column("appointment_id", String(32), index=True),
)


# ---- the owner's inbox of questions the line could not answer (issue 25: ivr/facts/gaps.py) -----
gap_groups = Table(  # one question, however callers worded it: the owner answers it once
    "gap_groups", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("question", Text, default=""),  # the first caller's words
    Column("why", String(200), default=""),  # why the line could not answer, the last time
    Column("first_at", Float),
    Column("last_at", Float, index=True),  # the last call that asked it: newest first
    Column("answer", Text, default=""),  # the owner's answer ("": none yet): a passage of facts
    Column("answered_at", Float),
)

gaps = Table(  # a call that asked a group's question: once per call and group (the unique key)
    "gaps", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", Integer, index=True),
    Column("call_sid", String(64), index=True),
    Column("question", Text, default=""),  # the caller's words
    Column("why", String(200), default=""),
    Column("created_at", Float, index=True),
    UniqueConstraint("group_id", "call_sid", name="gaps_once_per_call"),
)

inbox_revision = Table(  # one row: moves on with every change of an answer, so every instance
    "inbox_revision", metadata,  # reads the answers again only when it moved
    Column("id", Integer, primary_key=True),
    Column("revision", Integer, default=0),
)
