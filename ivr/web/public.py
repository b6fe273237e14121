"""Blueprint of /healthz, /livez and the public /static/tts MP3s that Twilio's <Play> fetches."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, send_file

from .. import flow, programs
from ..facts.facts import DEFAULT_FACTS, IMPORTED
from ..runtime import Runtime, current_runtime
from ..tts_cache import is_public_name

bp = Blueprint("public", __name__)
MP3_MAX_AGE_SEC = 86400


@bp.route("/static/tts/<path:name>", methods=["GET"])
def tts_file(name: str) -> Response:
    """Serve a plain cache file as audio/mpeg; 404 for anything else (no traversal, no links).
    A file another instance made (several instances, one PostgreSQL) comes from the shared
    table the first time, and is kept here for the next (the prompts' aliases excepted)."""
    if not is_public_name(name):
        abort(404)
    rt = current_runtime()
    path = Path(rt.settings.tts_dir) / name
    if path.is_symlink():
        abort(404)
    if path.is_file():
        response = send_file(path, mimetype="audio/mpeg", max_age=MP3_MAX_AGE_SEC,
                             conditional=True)
    else:
        data = rt.cache.restore(name)
        if data is None:
            abort(404)
        response = Response(data, mimetype="audio/mpeg")
    response.headers["Cache-Control"] = f"public, max-age={MP3_MAX_AGE_SEC}"
    return response


@bp.route("/livez", methods=["GET"])
def livez() -> Response:
    """The process answers: the check for a platform that restarts an instance whose check fails
    (a restart drops every live call: overload, which /healthz reports, must not cause one)."""
    return jsonify({"status": "alive"})


@bp.route("/healthz", methods=["GET"])
def healthz() -> Response:
    """Engines chosen, the programs they run found, scheduler running, database writable, disk
    not full, requests not waiting for threads nor the event loop late, the flow file's and the
    facts files' last edits usable; 503 with the reasons when something is wrong."""
    rt = current_runtime()
    s = rt.settings
    load = load_report(rt)
    problems = load_problems(load, s.health_max_wait_sec)
    db_ok = rt.store.ping()
    write_problem = rt.store.write_problem() if db_ok else "database does not answer"
    problems += [write_problem] if write_problem else []
    scheduler_ok = bool(rt.scheduler.running)
    problems += [] if scheduler_ok else ["scheduler not running"]
    problems += disk_problems([s.var_dir, s.tts_dir], s.min_free_disk_mb)
    problems += programs.problems(s)
    problems += [flow_problem] if (flow_problem := flow.problem(s.flow_file)) else []
    facts = Path(s.facts_file or DEFAULT_FACTS)
    problems += [p for p in (flow.problem(facts), flow.problem(facts.parent / IMPORTED)) if p]
    body = {
        "status": "degraded" if problems else "ok", "problems": problems,
        "engines": {"asr": s.asr_engine, "llm": s.llm_engine, "tts": s.tts_engine},
        "programs": programs.status(s),
        "turn_mode": s.turn_mode, "reply_mode": s.reply_mode, "ws_mode": s.ws_mode,
        "scheduler": {"running": scheduler_ok, "jobs": len(rt.scheduler.get_jobs()),
                      "checks": rt.watchdog.checks.count()},
        "db": {"ok": db_ok and not write_problem, "dialect": rt.store.engine.dialect.name},
        "signatures": s.validate_twilio_signature, "local_mode": s.local_mode, "load": load,
    }
    response = jsonify(body)
    response.status_code = 503 if problems else 200
    return response


def load_report(rt: Runtime) -> dict:
    """The server's lanes (threads, busy, queued, how long the oldest waited), the event loop's
    lag (ms) and the continuations waiting for a chunk."""
    slots = rt.continuations
    report = rt.lanes.report() if rt.lanes is not None else {"lanes": {}, "loop_lag_ms": {}}
    return {**report, "continuations": {"waiting": slots.held, "cap": slots.cap}}


def load_problems(load: dict, max_wait_sec: float) -> list[str]:
    """A problem for each lane whose requests wait longer than `max_wait_sec` for a thread, an
    event loop that late, and continuations at their cap (more get the fallback phrase)."""
    problems = [f"{name} requests wait for a thread: the oldest for {lane['waited_sec']:.1f} s "
                f"({lane['busy']} of {lane['threads']} threads busy, {lane['queued']} queued; "
                f"HEALTH_MAX_WAIT_SEC={max_wait_sec:g})"
                for name, lane in load["lanes"].items() if lane["waited_sec"] > max_wait_sec]
    lag_ms = load["loop_lag_ms"].get("recent_max", 0)
    if lag_ms > max_wait_sec * 1000:
        problems.append(f"the event loop ran {lag_ms} ms late in the last seconds "
                        f"(HEALTH_MAX_WAIT_SEC={max_wait_sec:g})")
    waiting = load["continuations"]
    if waiting["waiting"] >= waiting["cap"]:
        problems.append(f"{waiting['waiting']} continuations wait for a reply's next chunk: "
                        "more get the fallback phrase at once (CONTINUE_MAX_WAITING="
                        f"{waiting['cap']})")
    return problems


def disk_problems(folders: list[str], min_free_mb: int) -> list[str]:
    """A problem for each folder on a disk with less than `min_free_mb` free."""
    problems = []
    for folder in folders:
        path = Path(folder)
        while not path.exists() and path != path.parent:
            path = path.parent
        free_mb = shutil.disk_usage(path).free // (1024 * 1024)
        if free_mb < min_free_mb:
            problems.append(f"disk almost full: {free_mb} MB free at {folder} "
                            f"(MIN_FREE_DISK_MB={min_free_mb})")
    return problems
