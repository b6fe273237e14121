"""Blueprint of /healthz and the public /static/tts MP3 files that Twilio's <Play> fetches."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, send_file

from .runtime import current_runtime

bp = Blueprint("public", __name__)
CACHE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}\.mp3$")
MP3_MAX_AGE_SEC = 86400


@bp.route("/static/tts/<path:name>", methods=["GET"])
def tts_file(name: str) -> Response:
    """Serve a plain cache file as audio/mpeg; 404 for anything else (no traversal, no links)."""
    if not CACHE_FILE.match(name):
        abort(404)
    path = Path(current_runtime().settings.tts_dir) / name
    if path.is_symlink() or not path.is_file():
        abort(404)
    response = send_file(path, mimetype="audio/mpeg", max_age=MP3_MAX_AGE_SEC, conditional=True)
    response.headers["Cache-Control"] = f"public, max-age={MP3_MAX_AGE_SEC}"
    return response


@bp.route("/healthz", methods=["GET"])
def healthz() -> Response:
    """Engines chosen, scheduler running, database reachable; 503 when something is down."""
    rt = current_runtime()
    s = rt.settings
    db_ok = rt.store.ping()
    scheduler_ok = bool(rt.scheduler.running)
    body = {
        "status": "ok" if db_ok and scheduler_ok else "degraded",
        "engines": {"asr": s.asr_engine, "llm": s.llm_engine, "tts": s.tts_engine},
        "turn_mode": s.turn_mode, "reply_mode": s.reply_mode, "ws_mode": s.ws_mode,
        "scheduler": {"running": scheduler_ok, "jobs": len(rt.scheduler.get_jobs())},
        "db": {"ok": db_ok, "dialect": rt.store.engine.dialect.name},
        "signatures": s.validate_twilio_signature, "local_mode": s.local_mode,
    }
    response = jsonify(body)
    response.status_code = 200 if body["status"] == "ok" else 503
    return response
