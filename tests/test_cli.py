"""`python -m ivr check` as scripts/start.sh runs it: what it tells the owner before the server;
every command's answer to a bad environment."""

import subprocess
import sys

import pytest

from .livehelpers import ROOT, free_port, start_script_env

pytestmark = pytest.mark.live  # starts processes

LOCKED = "inspector: locked (401) until INSPECTOR_TOKEN is set"


def check(tmp_path, **extra: str) -> subprocess.CompletedProcess:
    env = start_script_env(tmp_path, free_port(), **extra)
    return subprocess.run([sys.executable, "-m", "ivr", "check"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60)


ACCOUNT = {"TWILIO_ACCOUNT_SID": "AC" + "7" * 32, "TWILIO_AUTH_TOKEN": "t" * 32}


@pytest.mark.parametrize("extra,locked", [
    ({"PUBLIC_BASE_URL": "https://line.example.com", **ACCOUNT}, True),
    ({"PUBLIC_BASE_URL": "https://line.example.com", "INSPECTOR_TOKEN": "t0ken", **ACCOUNT},
     False),
    ({}, False),  # a local line: PUBLIC_BASE_URL defaults to http://127.0.0.1:PORT
])
def test_check_says_when_the_inspector_stays_locked(tmp_path, extra, locked):
    result = check(tmp_path, **extra)
    assert result.returncode == 0, result.stderr  # a notice, not a failure
    assert "config OK" in result.stdout
    assert (LOCKED in result.stdout) is locked


@pytest.mark.parametrize("command", [["serve"], ["purge"], ["call"],
                                     ["doctor", "--url", "http://127.0.0.1:9"]])
def test_every_command_stops_on_a_bad_environment_with_every_problem(tmp_path, command):
    env = start_script_env(tmp_path, free_port(), VAD_RMS="loud", RETENTION_DAYS="0")
    result = subprocess.run([sys.executable, "-m", "ivr", *command], cwd=ROOT, env=env,
                            text=True, capture_output=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("bad configuration:")
    assert "VAD_RMS='loud'" in result.stderr and "RETENTION_DAYS='0'" in result.stderr


def test_check_refuses_several_workers_on_sqlite_and_accepts_them_on_postgresql(tmp_path):
    refused = check(tmp_path, WORKERS="2")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "WORKERS=2: several workers need PostgreSQL" in refused.stderr
    accepted = check(tmp_path, WORKERS="2", DATABASE_URL="postgresql+psycopg://u@127.0.0.1:9/db")
    assert accepted.returncode == 0, accepted.stderr
    assert "workers=2" in accepted.stdout


def test_check_says_how_the_owner_is_reached_and_names_a_wrong_hours_line(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text((ROOT / "ivr/flows/default_he.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    told = check(tmp_path, OWNER_PHONE="+972501234567", FLOW_FILE=str(flow),
                 NOTIFY_EMAIL_TO="owner@example.com", SMTP_URL="smtp://mail.example.com?starttls=true")
    assert told.returncode == 0, told.stderr
    assert "owner +972501234567 (" in told.stdout
    assert "notifications: email to owner@example.com" in told.stdout
    flow.write_text(flow.read_text(encoding="utf-8").replace('sun: "08:00-18:00"', 'sun: "9-5"'),
                    encoding="utf-8")
    wrong = check(tmp_path, FLOW_FILE=str(flow))
    assert wrong.returncode == 1 and "hours.sun: '9' is not a time like 08:00" in wrong.stderr


OPENAI_CHAT_ONLY = {"OPENAI_API_KEY": "sk-test-key-123456", "ASR_ENGINE": "none",
                    "TTS_ENGINE": "espeak"}


def test_check_refuses_a_chat_model_openai_has_shut_down(tmp_path):
    result = check(tmp_path, OPENAI_MODEL="o1-mini", **OPENAI_CHAT_ONLY)  # shut down 2025-10-27
    assert result.returncode == 1 and "config OK" not in result.stdout
    assert ("bad configuration: OPENAI_MODEL=o1-mini: OpenAI shut this chat model down on "
            "2025-10-27; use gpt-6-luna") in result.stderr


def test_check_warns_of_a_model_with_an_announced_shutdown_and_goes_on(tmp_path):
    from datetime import date

    from ivr.engines.openai_models import model_list
    ahead = sorted((day, model) for model, day in model_list("chat").shutdowns.items()
                   if day > date.today())
    if not ahead:
        pytest.skip("every deprecated chat model of the pinned SDK is past its date")
    day, model = ahead[-1]
    result = check(tmp_path, OPENAI_MODEL=model, **OPENAI_CHAT_ONLY)
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout and "llm=openai" in result.stdout
    assert f"WARNING: OPENAI_MODEL={model}: OpenAI shuts this chat model down on {day} (in " \
        in result.stderr and " days); use gpt-6-luna" in result.stderr


def test_check_says_nothing_of_the_current_default_models(tmp_path):
    result = check(tmp_path, **{**OPENAI_CHAT_ONLY, "ASR_ENGINE": "openai"})
    assert result.returncode == 0, result.stderr
    assert "OPENAI_MODEL" not in result.stderr and "OPENAI_ASR_MODEL" not in result.stderr


@pytest.mark.parametrize("url,problem", [
    ("smtp://owner:pw@mail.example.com:587",
     "plain SMTP to mail.example.com would send the password and the messages unencrypted"),
    ("smtp://owner:pw@mail.example.com:587?starttls=ture",
     "starttls='ture': expected true or false"),
])
def test_check_refuses_smtp_that_would_log_in_unencrypted(tmp_path, url, problem):
    result = check(tmp_path, NOTIFY_EMAIL_TO="owner@example.com", SMTP_URL=url)
    assert result.returncode == 1 and "config OK" not in result.stdout
    assert "SMTP_URL=(set)" in result.stderr and problem in result.stderr
    assert ":pw@" not in result.stderr


@pytest.fixture
def running_line(tmp_path):
    """A listener on the port the checked configuration names, as a running line holds it."""
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def check_beside(tmp_path, port: int, *options: str, **extra: str) -> subprocess.CompletedProcess:
    env = start_script_env(tmp_path, port, **extra)
    return subprocess.run([sys.executable, "-m", "ivr", "check", *options], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=60)


REAL_SID = "AC" + "7" * 32
TAB_FLOW = (ROOT / "ivr/flows/default_he.yaml").read_text(encoding="utf-8").replace(
    '  fri: "08:00-13:00"', '\tfri: "08:00-13:00"')
TAB_LINE = TAB_FLOW.splitlines().index('\tfri: "08:00-13:00"') + 1  # where the mistake is


@pytest.mark.parametrize("extra, says", [
    ({"TWILIO_ACCOUNT_SID": REAL_SID, "PUBLIC_BASE_URL": "https://line.example.com"},
     "TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: webhook signatures would be off "
     "and every REST request (recordings, SMS, redirects) refused; set the account's auth token"),
    ({"TWILIO_ACCOUNT_SID": REAL_SID, "TWILIO_AUTH_TOKEN": "t" * 32},
     "PUBLIC_BASE_URL='http://127.0.0.1:{port}' (unset or loopback) with a real Twilio account: "
     "Twilio cannot reach this machine there; set the https address of the line"),
    ({"OWNER_PHONE": "+9720501234567"},
     "OWNER_PHONE='+9720501234567': the 0 after +972 is dialled only inside the country; "
     "write +972501234567"),
    ({"TTS_ENGINE": "espeak", "PATH": "{empty}"},
     "espeak-ng not found on PATH: TTS_ENGINE=espeak speaks every reply with it"),
    ({"REPLY_MODE": "stream", "ASR_ENGINE": "fake", "PATH": "{empty}"},
     "ffmpeg not found on PATH: REPLY_MODE=stream decodes every MP3 reply to μ-law with it"),
    ({"FLOW_FILE": "{flow}"}, f"{{flow}}:{TAB_LINE}:1: a tab: indent with spaces only"),
    ({"PUBLIC_BASE_URL": "https://my-line.example.com"},
     "PUBLIC_BASE_URL='https://my-line.example.com' is a public address but TWILIO_ACCOUNT_SID "
     "and TWILIO_AUTH_TOKEN are not both set"),
], ids=["no-token", "no-public-url", "trunk-0", "no-espeak", "no-ffmpeg", "flow-tab",
        "public-no-account"])
def test_check_names_each_mistake_in_one_line_beside_a_running_line(tmp_path, running_line,
                                                                    extra, says):
    flow, empty = tmp_path / "flow.yaml", tmp_path / "empty-path"
    flow.write_text(TAB_FLOW, encoding="utf-8")
    empty.mkdir()
    fill = {"port": running_line, "flow": flow, "empty": empty}
    result = check_beside(tmp_path, running_line,
                          **{k: v.format(**fill) for k, v in extra.items()})
    assert result.returncode == 1 and "config OK" not in result.stdout
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert [line for line in lines if says.format(**fill) in line], result.stderr
    assert "Traceback" not in result.stderr and "already in use" not in result.stderr


def test_check_passes_beside_a_running_line_and_names_the_holder_only_when_asked(tmp_path,
                                                                                 running_line):
    import os
    fine = check_beside(tmp_path, running_line)
    assert fine.returncode == 0 and "config OK" in fine.stdout, fine.stderr
    asked = check_beside(tmp_path, running_line, "--port")
    assert asked.returncode == 1 and "pkill" not in asked.stderr
    assert f"port {running_line} is already in use by " in asked.stderr
    assert f"(pid {os.getpid()}): if that is an old server, stop it (kill {os.getpid()})" \
        in asked.stderr and "pytest" in asked.stderr  # this test's process holds it


FORKED_SERVER = r"""
import os, socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
if os.fork() == 0:  # the worker: the inherited socket is now its alone, as psutil lists it
    os.write(1, f"worker {os.getpid()}\n".encode())
    while True:
        time.sleep(60)
server.close()
os.write(1, f"master {os.getpid()}\n".encode())
os.wait()
"""


def test_check_names_the_master_of_a_forked_server_not_its_worker(tmp_path):
    """A second `make run` beside a gunicorn line: psutil lists the port under the worker, but
    killing the worker only makes the master fork another; the advice names the master."""
    import os
    import signal
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", FORKED_SERVER, str(port)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pids = dict(server.stdout.readline().split() for _ in range(2))
        result = check_beside(tmp_path, port, "--port")
        assert result.returncode == 1
        assert f"(pid {server.pid}): if that is an old server, stop it (kill {server.pid})" \
            in result.stderr, result.stderr
        assert pids["master"] == str(server.pid) and f"kill {pids['worker']}" not in result.stderr
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the master and its worker, started here
        server.wait(timeout=30)
