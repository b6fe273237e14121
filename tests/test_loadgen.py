"""bench/loadgen.py against a live line: two calls, every turn answered, its clock reported."""

import json
import subprocess
import sys

import pytest

from bench.harness import ROOT, BenchLine, free_port

pytestmark = pytest.mark.live  # starts processes


def test_two_generated_calls_get_every_reply_from_a_live_line():
    port = free_port()
    with BenchLine(rest_url=f"http://127.0.0.1:{port}", REPLY_MODE="play") as line:
        done = subprocess.run([sys.executable, "-m", "bench.loadgen", "--url", line.url,
                               "--token", line.token, "--rest-port", str(port), "--calls", "2"],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == {} and summary["turns_answered"] == 6
    assert summary["calls_all_answered"] == 2 and summary["streams"] == 8  # 3 turns + goodbye
    assert summary["frames_sent"] > 0 and summary["tick_late_ms_max"] >= 0
