"""/metrics: each family counted once from what the line does, its lock, and the workers' sums."""

import asyncio
import os
import subprocess
import sys
import threading

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from ivr import gunicorn_conf, metrics, threads
from ivr.eventlog import EventLog
from ivr.media.loop import LagProbe

from .conftest import CALL_SID, make_settings
from .livehelpers import ROOT, wait_until

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}
ASK = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"say": "איפה אתם נמצאים?"}],
       "end": "hangup"}
TOKEN = "metrics-token-0123456789"


def value(name: str, **labels: str) -> float:
    """A sample of this process's figures (0 before its first count)."""
    return metrics.figures().registry.get_sample_value(name, labels) or 0.0


def turn_events(line, call_sid: str) -> list[dict]:
    return [e["detail"] for e in line.store.events(call_sid) if e["kind"] == "TURN"]


@pytest.mark.parametrize("mode", ["play", "stream"])
def test_a_turns_figures_land_in_the_histograms_of_its_reply_mode(phone_line, mode):
    """Each turn of a call through the emulator is one turn of its REPLY_MODE, and its first
    audio and stage times (the TURN event's own) are in that mode's histograms, not another's."""
    other = "stream" if mode == "play" else "play"
    names = ("ivr_turns_total", "ivr_first_audio_seconds_count", "ivr_first_audio_seconds_sum")
    before = {(name, m): value(name, mode=m) for name in names for m in (mode, other)}
    asr_before = value("ivr_turn_stage_seconds_count", mode=mode, stage="asr")
    line = phone_line(**FAKES, reply_mode=mode)
    result = line.carrier.place_call(ASK)
    assert result.error_codes == []
    turns = wait_until(lambda: len(turn_events(line, result.call_sid)) == 2
                       and turn_events(line, result.call_sid))
    assert {t["mode"] for t in turns} == {mode}
    firsts = [t["first_audio_ms"] for t in turns]
    assert all(ms is not None for ms in firsts)
    assert value("ivr_turns_total", mode=mode) == before["ivr_turns_total", mode] + 2
    assert value("ivr_first_audio_seconds_count", mode=mode) == \
        before["ivr_first_audio_seconds_count", mode] + 2
    assert value("ivr_first_audio_seconds_sum", mode=mode) == pytest.approx(
        before["ivr_first_audio_seconds_sum", mode] + sum(firsts) / 1000)
    assert value("ivr_turn_stage_seconds_count", mode=mode, stage="asr") == asr_before + 2
    for name in ("ivr_turns_total", "ivr_first_audio_seconds_count"):
        assert value(name, mode=other) == before[name, other]


@pytest.mark.usefixtures("database")  # the end is claimed once on both engines
def test_a_call_is_counted_once_by_its_outcome(client, twilio_post, runtime):
    """Twilio's final status sent twice is one ended call; the line's own outcome wins over
    Twilio's status."""
    completed = value("ivr_calls_ended_total", outcome="completed")
    silent = value("ivr_calls_ended_total", outcome="silent-hangup")
    twilio_post("/webhook/call_status", CallStatus="completed", CallDuration="12")
    twilio_post("/webhook/call_status", CallStatus="completed", CallDuration="12")
    assert value("ivr_calls_ended_total", outcome="completed") == completed + 1
    other = "CA" + "e" * 32
    runtime.calls.ensure(other)
    runtime.calls.set_outcome(other, "silent-hangup")
    twilio_post("/webhook/call_status", CallSid=other, CallStatus="completed")
    assert value("ivr_calls_ended_total", outcome="silent-hangup") == silent + 1
    assert value("ivr_calls_ended_total", outcome="completed") == completed + 1


def test_each_family_counts_its_events_and_no_label_carries_the_callers_words(runtime):
    """Fallbacks by kind, watchdog redirects by check, barge-ins over what, dropped utterances
    by reason, notifications by result, drafts by result: each from its event, once; words
    outside the code's own (Hebrew, a caller's) become `other`."""
    events = EventLog(runtime.store)
    cases = [
        (("TURN", {"mode": "play", "fallback": "llm-error"}),
         "ivr_fallbacks_total", {"kind": "llm-error"}),
        (("SILENT_TURN", {"count": 1}), "ivr_fallbacks_total", {"kind": "silence"}),
        (("PING_PONG_FAIL", {"err": "x"}), "ivr_fallbacks_total", {"kind": "ping-pong-failed"}),
        (("WATCHDOG_REDIRECT_OK", {"check": "media", "reason": "no media for 6 s"}),
         "ivr_watchdog_redirects_total", {"check": "media", "result": "ok"}),
        (("WATCHDOG_REDIRECT_FAIL", {"check": "start"}),
         "ivr_watchdog_redirects_total", {"check": "start", "result": "fail"}),
        (("BARGE_IN", {"by": "voice", "over": "play"}),
         "ivr_barge_ins_total", {"over": "play", "by": "voice"}),
        (("BARGE_IN", {"by": "key"}), "ivr_barge_ins_total", {"over": "stream", "by": "key"}),
        (("BACKCHANNEL", {"sec": 0.3, "voiced": 12, "words": "כן", "over": "play"}),
         "ivr_backchannels_total", {"over": "play"}),
        (("EARLY_ASR", {"result": "dropped", "sec": 1.2}),
         "ivr_early_transcriptions_total", {"result": "dropped"}),
        (("DRAFT", {"result": "used", "text": "מה שעות הפתיחה", "chars": 12}),
         "ivr_drafts_total", {"result": "used"}),
        (("DRAFT", {"result": "dropped", "why": "went-on", "text": "מה", "chars": 0}),
         "ivr_drafts_total", {"result": "dropped"}),
        (("UTTERANCE_DROPPED", {"reason": "refractory"}),
         "ivr_utterances_dropped_total", {"reason": "refractory"}),
        (("UTTERANCE_DROPPED", {"reason": "כן כן"}),
         "ivr_utterances_dropped_total", {"reason": "other"}),
        (("NOTIFY_FAILED", {"channel": "sms"}),
         "ivr_notifications_total", {"channel": "sms", "result": "failed"}),
        (("NOTIFY_SENT", {"channel": "email"}),
         "ivr_notifications_total", {"channel": "email", "result": "sent"}),
    ]
    for (kind, detail), name, labels in cases:
        before = value(name, **labels)
        kinds = value("ivr_events_total", kind=kind)
        events.emit(kind, CALL_SID, **detail)
        assert value(name, **labels) == before + 1, (kind, detail)
        assert value("ivr_events_total", kind=kind) == kinds + 1
    text = metrics.exposition()[0].decode()
    assert not any("\u0590" <= ch <= "\u05ff" for ch in text)


def test_the_watchdogs_redirect_is_counted_by_its_check(phone_line):
    """A stream that never starts: the watchdog's `start` check moves the call to <Record>."""
    before = value("ivr_watchdog_redirects_total", check="start", result="ok")
    line = phone_line(**FAKES, stream_start_timeout_sec=1.0)
    result = line.carrier.place_call({"steps": [{"silence": 3}], "end": "hangup"},
                                     stream_hangs=True)
    wait_until(lambda: any(e["kind"] == "WATCHDOG_REDIRECT_OK"
                           for e in line.store.events(result.call_sid)))
    assert value("ivr_watchdog_redirects_total", check="start", result="ok") == before + 1


def test_a_pools_queue_is_its_jobs_waiting_for_a_thread():
    pool = threads.executor("watchdog", 1)
    release = threading.Event()
    try:
        pool.submit(release.wait)
        metrics.sample()
        before = value("ivr_pool_queued", pool="watchdog")
        pool.submit(lambda: None)
        pool.submit(lambda: None)
        metrics.sample()
        assert value("ivr_pool_queued", pool="watchdog") == before + 2
    finally:
        release.set()
        pool.shutdown(wait=True)
    metrics.sample()
    assert value("ivr_pool_queued", pool="watchdog") == before


def test_each_tick_of_the_loop_lag_probe_is_observed():
    before = value("ivr_event_loop_lag_seconds_count")
    probe, loop = LagProbe(), asyncio.new_event_loop()

    async def ticks(count: int) -> None:
        while sum(probe.bins) < count:
            await asyncio.sleep(0.005)
    try:
        probe.start(loop)
        loop.run_until_complete(ticks(3))
        probe.handle.cancel()
    finally:
        loop.close()
    assert value("ivr_event_loop_lag_seconds_count") == before + sum(probe.bins)


def test_metrics_needs_its_token_or_the_inspectors(tmp_path):
    from ivr.app import create_app
    app = create_app(make_settings(tmp_path, metrics_token=TOKEN,
                                   inspector_token="inspector-token-0123456789"))
    client = app.test_client()
    try:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={  # the inspector's token is not this one
            "Authorization": "Bearer inspector-token-0123456789"}).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.mimetype == "text/plain"
        assert "# TYPE ivr_turns_total counter" in answer.text
        assert "ivr_event_loop_lag_seconds_bucket" in answer.text
    finally:
        app.extensions["ivr"].close()
    (tmp_path / "b").mkdir()
    locked = create_app(make_settings(tmp_path / "b", inspector_token="inspector-token-012345"))
    try:
        client = locked.test_client()
        assert client.get("/metrics").status_code == 401  # a public line, no token
        assert client.get("/metrics", headers={
            "Authorization": "Bearer inspector-token-012345"}).status_code == 200
    finally:
        locked.extensions["ivr"].close()


WORKER = """
from ivr import metrics, threads
threads.executor("engine")
metrics.event("TURN", {"mode": "play", "first_audio_ms": 800, "asr_ms": 300})
metrics.event("BARGE_IN", {"by": "voice"})
metrics.sample()
print(__import__("os").getpid())
"""


def test_two_workers_counts_are_summed_and_a_dead_ones_live_gauges_go(tmp_path, monkeypatch):
    """What gunicorn's hooks do (scripts/start.sh): the master empties VAR_DIR/metrics, each
    worker writes its own files, a scrape sums them; a worker's exit drops its queues'
    gauges, never its counts."""
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")  # restored after the hook sets it
    stale = tmp_path / "var" / "metrics" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by the last run")
    gunicorn_conf.on_starting(None)
    path = os.environ[metrics.MULTIPROC_ENV]
    assert path == str(tmp_path / "var" / "metrics") and not stale.exists()
    pids = [int(subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, check=True, text=True,
                               capture_output=True, env=dict(os.environ)).stdout)
            for _ in range(2)]

    def summed(name: str, **labels: str) -> float | None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
        return registry.get_sample_value(name, labels)
    assert summed("ivr_turns_total", mode="play") == 2
    assert summed("ivr_first_audio_seconds_count", mode="play") == 2
    assert summed("ivr_first_audio_seconds_sum", mode="play") == pytest.approx(1.6)
    assert summed("ivr_barge_ins_total", over="stream", by="voice") == 2
    gauges = sorted(p.name for p in (tmp_path / "var" / "metrics").glob("gauge_livesum_*"))
    assert gauges == sorted(f"gauge_livesum_{pid}.db" for pid in pids)
    gunicorn_conf.child_exit(None, type("Worker", (), {"pid": pids[0]})())
    gauges = [p.name for p in (tmp_path / "var" / "metrics").glob("gauge_livesum_*")]
    assert gauges == [f"gauge_livesum_{pids[1]}.db"]
    assert summed("ivr_turns_total", mode="play") == 2


def test_gunicorns_master_never_imports_the_client_before_its_hook():
    """gunicorn imports the worker class (ivr.asgi) and its config in the master before
    on_starting: prometheus_client imported then would fix every worker in one-process mode."""
    probe = ("import sys, ivr.asgi, ivr.gunicorn_conf; "
             "print('prometheus_client' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, text=True,
                         capture_output=True, check=True).stdout.strip()
    assert out == "False"
