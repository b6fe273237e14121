"""A real gunicorn server (one worker, fake engines) and a local carrier, for call benchmarks."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from ivr.config import LOCAL_ACCOUNT_SID, local_auth_token
from ivr.sim import Carrier

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchLine:
    """`scripts/start.sh` in a subprocess on loopback, with a carrier wired to its REST side."""

    def __init__(self, rest_url: str = "", **env: str):
        """`rest_url`: Twilio's REST API is served there by someone else (no carrier here)."""
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        var = Path(self.tmp.name) / "var"
        self.token = local_auth_token(var)
        self.carrier = None if rest_url else Carrier(self.url, account_sid=LOCAL_ACCOUNT_SID,
                                                     auth_token=self.token)
        self.db = Path(self.tmp.name) / "bench.sqlite3"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("TWILIO_", "OPENAI_", "GOOGLE_", "GCP_"))}
        # start.sh runs .venv's Python, else python3 on the PATH: the bench's own, as tests do
        base["PATH"] = str(Path(sys.executable).parent) + ":" + base.get("PATH", "")
        base.update(PORT=str(self.port), BIND_HOST="127.0.0.1", VAR_DIR=str(var),
                    TTS_DIR=f"{self.tmp.name}/tts", DATABASE_URL=f"sqlite:///{self.db}",
                    TWILIO_API_BASE_URL=rest_url or self.carrier.url, ASR_ENGINE="fake",
                    LLM_ENGINE="fake", TTS_ENGINE="fake", TURN_MODE="stream")
        base.update(env)  # a benchmark's own engines and modes win
        self.proc = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, env=base,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def __enter__(self) -> BenchLine:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        if self.carrier:
            self.carrier.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def __exit__(self, *_exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(15)
        if self.carrier:
            self.carrier.stop()
        self.tmp.cleanup()

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        gunicorn = int(children.split()[0])  # start.sh execs gunicorn: this is its master
        if Path(f"/proc/{gunicorn}/task/{gunicorn}/children").exists():
            kids = Path(f"/proc/{gunicorn}/task/{gunicorn}/children").read_text().split()
            return int(kids[0]) if kids else gunicorn
        return gunicorn

    def cpu_seconds(self, children: bool = False) -> float:
        """User + system CPU seconds of the one gunicorn worker so far (`children`: plus those
        of its child processes that have ended: ffmpeg, espeak-ng)."""
        fields = Path(f"/proc/{self.worker_pid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(f) for f in fields[11:15 if children else 13])
        return ticks / CLOCK_TICKS

    def events(self, kind: str) -> list[tuple[str, float, dict]]:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT call_sid, ts, detail FROM events WHERE kind = ?",
                                (kind,)).fetchall()
        return [(sid, ts, json.loads(detail)) for sid, ts, detail in rows]

    def event_counts(self, sids: set[str]) -> dict[str, int]:
        """How many events of each kind these calls logged."""
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("SELECT call_sid, kind, COUNT(*) FROM events "
                                "GROUP BY call_sid, kind").fetchall()
        counts: dict[str, int] = {}
        for sid, kind, count in rows:
            if sid in sids:
                counts[kind] = counts.get(kind, 0) + count
        return counts


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
