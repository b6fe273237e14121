"""`python -m ivr check` as scripts/start.sh runs it: what it tells the owner before the server."""

import subprocess
import sys

import pytest

from .livehelpers import ROOT, free_port, start_script_env

LOCKED = "inspector: locked (401) until INSPECTOR_TOKEN is set"


def check(tmp_path, **extra: str) -> subprocess.CompletedProcess:
    env = start_script_env(tmp_path, free_port(), **extra)
    return subprocess.run([sys.executable, "-m", "ivr", "check"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("extra,locked", [
    ({"PUBLIC_BASE_URL": "https://line.example.com"}, True),
    ({"PUBLIC_BASE_URL": "https://line.example.com", "INSPECTOR_TOKEN": "t0ken"}, False),
    ({}, False),  # a local line: PUBLIC_BASE_URL defaults to http://127.0.0.1:PORT
])
def test_check_says_when_the_inspector_stays_locked(tmp_path, extra, locked):
    result = check(tmp_path, **extra)
    assert result.returncode == 0, result.stderr  # a notice, not a failure
    assert "config OK" in result.stdout
    assert (LOCKED in result.stdout) is locked
