"""Retention on a real SQLite file and real folders: what a purge deletes, keeps and counts."""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from ivr import recordings
from ivr.eventlog import EventLog
from ivr.facts.gaps import Inbox
from ivr.notify.outbox import NotifyQueue
from ivr.retention import JOB_ID, purge, run_scheduled, schedule_daily
from ivr.schema import gaps, notifications
from ivr.store import Store
from ivr.tts_cache import ALIASES, TTSCache
from ivr.twilio_alerts import Alert, AlertLog

from .conftest import backdate, make_settings
from .livehelpers import ROOT, free_port, start_script_env

OLD, NEW = "CA" + "0" * 32, "CA" + "1" * 32
LONG_AGO = time.time() - 100 * 86400


def fill(store: Store, var_dir: str, tts_dir: str) -> dict:
    """An old and a recent call, line events, recordings and cache files, old ones backdated."""
    for sid in (OLD, NEW):
        store.ensure_call(sid)
        store.add_turn(sid, turn=1, source="gather", user_text="שלום")
        store.add_event(sid, "ASR_TEXT", {"text": "שלום"})
        store.add_lead(sid, name="דנה", phone="0501234567")
    store.add_event(None, "APP_START", {})
    queue = NotifyQueue(store)
    for sid in (OLD, NEW):
        queue.add(f"{sid}:call:email", sid, "email", "owner@example.com", "שיחה", "גוף")
    backdate(store, OLD, days=100)
    backdate(store, "", days=100)
    with store.writing() as conn:
        conn.execute(update(notifications).where(notifications.c.call_sid == OLD)
                     .values(created_at=time.time() - 100 * 86400))
    inbox = Inbox(store)  # questions the line could not answer: an old one, a recent one, and
    inbox.record(OLD, "יש לכם וויפיי?")  # an old one the owner answered
    inbox.record(NEW, "יש לכם מזגן?")
    inbox.answer(inbox.record(OLD, "אתם עושים החלקה יפנית?"), "כן, 600 ש\"ח.")
    with store.writing() as conn:
        conn.execute(update(gaps).where(gaps.c.call_sid == OLD).values(created_at=LONG_AGO))
    store.add_event(None, "APP_START", {})
    for sid, at in ((OLD, LONG_AGO), (NEW, time.time())):  # Twilio's alerts about the two calls
        AlertLog(store).add(Alert("NO" + sid[2:], 13331, "warning", "Invalid language", "", sid,
                                  "", at))
    old_rec = recordings.keep(var_dir, "REold", b"RIFF", {"call_sid": OLD})
    recordings.keep(var_dir, "REnew", b"RIFF", {"call_sid": NEW})
    cache = TTSCache(tts_dir)
    old_mp3, new_mp3 = (cache.write(f"{c * 64}.mp3", b"ID3") for c in "ab")
    aliases = [cache.write(alias, b"ID3") for alias in ALIASES]
    for path in [old_rec, old_rec.with_suffix(".json"), old_mp3] + aliases:
        os.utime(path, (LONG_AGO, LONG_AGO))
    return {"old_rec": old_rec, "old_mp3": old_mp3, "new_mp3": new_mp3, "aliases": aliases}


def assert_only_the_recent_is_left(store: Store, files: dict) -> None:
    assert [c["call_sid"] for c in store.list_calls()] == [NEW]
    assert store.get_call(OLD) is None and store.turns(OLD) == [] and store.events(OLD) == []
    assert len(store.turns(NEW)) == 1 and len(store.events(NEW)) == 1
    assert len(store.leads()) == 2  # leads stay until the owner deletes them
    assert [a["resource_sid"] for a in AlertLog(store).recent()] == [NEW]
    assert [n["call_sid"] for n in NotifyQueue(store).of_call(NEW)] == [NEW]
    assert NotifyQueue(store).of_call(OLD) == []
    assert not files["old_rec"].exists() and not files["old_rec"].with_suffix(".json").exists()
    assert (files["old_rec"].parent / "REnew.wav").exists()
    assert not files["old_mp3"].exists() and files["new_mp3"].exists()
    assert all(alias.exists() for alias in files["aliases"])  # prompts, fallback, beep
    left = {g.question: (g.calls, g.answer) for g in Inbox(store).groups()}
    assert left == {"יש לכם מזגן?": (1, ""),  # the old unanswered one is gone; the answered
                    "אתם עושים החלקה יפנית?": (0, "כן, 600 ש\"ח.")}  # stays: it is a fact


def test_purge_deletes_the_old_keeps_the_recent_and_the_leads_and_counts(tmp_path):
    settings = make_settings(tmp_path)
    store = Store(settings.database_url)
    files = fill(store, settings.var_dir, settings.tts_dir)
    counts = purge(settings, store, EventLog(store))
    assert counts == {"calls": 1, "turns": 1, "events": 2, "recordings": 1, "tts_files": 1,
                      "media_rows": 0, "reply_rows": 0,  # rows only with PostgreSQL
                      "notification_rows": 1, "twilio_alert_rows": 1, "gap_rows": 2}
    assert_only_the_recent_is_left(store, files)
    line = [(e["kind"], e["detail"]) for e in store.events("")]
    assert line == [("APP_START", {}), ("PURGE", {"days": 90, **counts})]
    assert purge(settings, store, EventLog(store))["calls"] == 0


@pytest.mark.live  # starts a process
def test_purge_command_deletes_with_a_days_override_and_prints_the_counts(tmp_path):
    env = start_script_env(tmp_path, free_port(), RETENTION_DAYS="365")
    store = Store(env["DATABASE_URL"])
    files = fill(store, env["VAR_DIR"], env["TTS_DIR"])
    store.close()
    proc = subprocess.run([sys.executable, "-m", "ivr", "purge", "--days", "30"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("purge: older than 30 days: calls=1 turns=1 events=2 "
                                   "recordings=1 tts_files=1 media_rows=0 reply_rows=0 "
                                   "notification_rows=1 twilio_alert_rows=1 gap_rows=2 "
                                   "(leads kept)")
    store = Store(env["DATABASE_URL"])
    assert_only_the_recent_is_left(store, files)
    assert store.events("")[-1]["detail"]["days"] == 30


def test_create_app_schedules_one_daily_purge_soon_after_start(runtime):
    job = runtime.scheduler.get_job(JOB_ID)
    assert job.trigger.interval == timedelta(days=1) and job.coalesce
    assert job.next_run_time > datetime.now(job.next_run_time.tzinfo)  # not at once
    schedule_daily(runtime)
    assert [j.id for j in runtime.scheduler.get_jobs()].count(JOB_ID) == 1


def test_a_failing_scheduled_purge_is_an_event_not_an_exception(tmp_path):
    settings = make_settings(tmp_path)
    (tmp_path / "a-file").write_text("")
    store = Store(settings.database_url)
    runtime = SimpleNamespace(settings=settings.replace(tts_dir=str(tmp_path / "a-file" / "tts")),
                              store=store, events=EventLog(store), cache=None)
    run_scheduled(runtime)
    assert [e["kind"] for e in store.events("")] == ["PURGE_ERR"]
