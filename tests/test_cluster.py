"""scripts/cluster.sh end to end: nginx over two instances of the line on one PostgreSQL; 40 calls
through the emulator across the three REPLY_MODEs, 13-14 at once; kill -9 of one instance."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ivr.sim import CallResult
from ivr.store import Store

from .livehelpers import ROOT, free_port, start_script_env, wait_until
from .pgcluster import postgres_bin

CALLS = {"play": 14, "action": 13, "stream": 13}  # 40 calls: each mode a cluster of its own
# The caller asks for a person (key 0) and leaves a message: name, phone, reason (the lead),
# then one more sentence, so that a call whose sentence died with the killed instance (it hears
# "please repeat" and goes on) still completes its message. A loaded machine answers late and
# may pause for seconds inside a streamed reply (a chunk synthesised late): the caller waits
# for both (reply_timeout, reply_pause), as a person waits for the question before answering.
LEAD_CALL = {"name": "lead through the cluster", "from": "+972529876543",
             "steps": [{"dtmf": "0"}, {"say": "דנה כהן"},
                       {"say": "אפס חמש שתיים תשע שמונה שבע שש חמש ארבע שלוש"},
                       {"say": "אני רוצה לקבוע פגישה"}, {"say": "תודה רבה"}],
             "end": "hangup", "reply_timeout": 60, "reply_pause": 6}
ACTIONS = len(LEAD_CALL["steps"])
RING_EVERY_SEC = 0.3
NOTABLE = {"STREAM_FALLBACK", "REPLY_LOST", "REPLY_LATE", "WATCHDOG_REDIRECT_OK",
           "WATCHDOG_STALLED_TURN", "TURN_STALE", "TTS_ERR", "BARGE_IN"}  # counted in the figures
# Its callers wait out reply_pause (6 s) of the line's silence before speaking: the line's own
# re-prompt of a silent caller (STREAM_SILENCE_SEC, 5 s by default) must wait longer than they do.
ENGINES = {"ASR_ENGINE": "fake", "LLM_ENGINE": "scripted", "TTS_ENGINE": "fake",
           "TURN_MODE": "stream", "STREAM_SILENCE_SEC": "30"}

pytestmark = [pytest.mark.live, pytest.mark.cluster, pytest.mark.skipif(
    postgres_bin() is None or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()),
    reason="needs PostgreSQL and nginx (scripts/install_system_deps.sh --with-browser)")]


class Cluster:
    """One `scripts/cluster.sh` in its own folder and ports, with one REPLY_MODE."""

    def __init__(self, tmp_path: Path, reply_mode: str, **settings: str):
        self.mode, self.dir = reply_mode, tmp_path / f"cluster-{reply_mode}"
        ports = [free_port() for _ in range(5)]
        self.balancer, self.lines, self.pg, self.carrier = ports[0], ports[1:3], ports[3], ports[4]
        env = start_script_env(tmp_path, ports[0], REPLY_MODE=reply_mode, **ENGINES,
                               CLUSTER_DIR=str(self.dir), BALANCER_PORT=str(self.balancer),
                               LINE_PORTS=" ".join(map(str, self.lines)), PG_PORT=str(self.pg),
                               CARRIER_PORT=str(self.carrier), **settings)
        env.pop("DATABASE_URL")  # the cluster's own PostgreSQL
        self.env = env
        self.store: Store | None = None

    def script(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "scripts/cluster.sh", *args], cwd=ROOT, env=self.env,
                              text=True, capture_output=True, timeout=300)

    def start(self) -> Cluster:
        started = self.script()
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"balancer   http://127.0.0.1:{self.balancer}" in started.stdout
        self.store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{self.pg}/ivr")
        return self

    def stop(self) -> None:
        if self.store is not None:
            self.store.close()
        stopped = self.script("stop")
        assert stopped.returncode == 0, stopped.stderr

    def pid(self, name: str) -> int:
        return int((self.dir / "pids" / f"{name}.pid").read_text())

    def call(self, script: dict = LEAD_CALL, **faults) -> CallResult:
        """Ring the balancer through the cluster's carrier (the control API `ivr call` uses)."""
        token = (self.dir / "emulator_auth_token").read_text().strip()
        body = {"token": token, "script": script, "speed": 1.0, "faults": faults}
        response = requests.post(f"http://127.0.0.1:{self.carrier}/sim/calls", json=body,
                                 timeout=600)
        assert response.status_code == 200, response.text
        return CallResult.from_dict(response.json())

    def name_of(self, port: int) -> str:
        return f"line{self.lines.index(port) + 1}"

    def kill_instance(self, name: str = "line1") -> float:
        """kill -9 of the whole instance: its gunicorn master and workers (one session)."""
        os.killpg(self.pid(name), signal.SIGKILL)
        return time.time()

    def answered_by(self, path: str) -> list[int]:
        """The instances' ports that answered `path`, as nginx logged them, in order."""
        lines = (self.dir / "nginx" / "access.log").read_text().splitlines()
        return [int(line.split("upstream=")[1].split()[0].rsplit(":", 1)[1].rstrip(","))
                for line in lines if f" {path} " in line]

    def sockets_cut(self, port: int, since: float) -> int:
        """Media sockets nginx had open to the instance on `port` that ended after `since`."""
        lines = (self.dir / "nginx" / "access.log").read_text().splitlines()
        return sum(1 for line in lines if "/ws/twilio-media" in line
                   and f"upstream=127.0.0.1:{port} " in line and float(line.split()[0]) >= since)


@pytest.fixture
def clusters(request):
    """The three clusters, started side by side, in a folder the postgres user may enter (when
    run as root, PostgreSQL runs as postgres: pytest's own temporary folders are private);
    kept, with every log and the databases' files, when the test fails."""
    failed_before = request.session.testsfailed
    root = Path(tempfile.mkdtemp(prefix="ivr-cluster-"))
    root.chmod(0o755)
    built = [Cluster(root, mode) for mode in CALLS]
    with ThreadPoolExecutor(len(built)) as pool:
        starts = [pool.submit(cluster.start) for cluster in built]
    try:
        for start in starts:
            start.result()
        yield {c.mode: c for c in built}
    finally:
        for cluster in built:
            cluster.stop()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"the clusters' folders are kept in {root}")


def answered_actions(result: CallResult) -> int:
    """Caller actions (key or sentence) followed by something the line said before the next."""
    acts = sorted([s["t"] for s in result.said]
                  + [e["t"] for e in result.timeline if e["text"].startswith("presses ")])
    heard = [h["t"] for h in result.heard]
    bounds = acts[1:] + [float("inf")]
    return sum(1 for t, end in zip(acts, bounds, strict=True) if any(t < h < end for h in heard))


def call_problems(result: CallResult) -> list[str]:
    """What the caller noticed: a Twilio error, a sentence nobody answered, a call cut short."""
    problems = [f"error {e['code']}: {e['message']}" for e in result.errors]
    problems += [e["text"] for e in result.timeline if e["text"].startswith("no reply")]
    if answered_actions(result) != ACTIONS:
        problems.append(f"{answered_actions(result)} of {ACTIONS} actions answered")
    return problems


def kept_problems(store: Store, result: CallResult, mode: str) -> list[str]:
    """What the database lost of a call the emulator saw: the call row, its turns, its lead."""
    sid = result.call_sid
    try:
        row = wait_until(lambda: (store.get_call(sid) or {}).get("ended") and store.get_call(sid),
                         seconds=60)
    except AssertionError:
        return ["no ended call row"]
    problems = [] if row["status"] == "completed" and row["reply_mode"] == mode else [
        f"call row status={row['status']} reply_mode={row['reply_mode']}"]
    heard = sum(1 for t in store.turns(sid) if t["user_text"])
    if heard < ACTIONS - 1:  # at most the sentence the kill cut off ("please repeat" after it)
        problems.append(f"{heard} turns kept for {ACTIONS} actions")
    leads = [lead for lead in store.leads() if lead["call_sid"] == sid]
    if len(leads) != 1:
        problems.append(f"{len(leads)} leads")
    return problems


def ring_and_kill(cluster: Cluster) -> tuple[list[CallResult], float]:
    """The cluster's calls, ringing in a little apart; once every one of them is mid-call (two
    turns answered, none ended), kill -9 of the first instance; the calls as the callers saw
    them, and when the kill was."""
    results: list[CallResult] = []
    failures: list[BaseException] = []

    def ring(delay: float) -> None:
        time.sleep(delay)  # not one burst of first turns
        try:
            results.append(cluster.call())
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
    callers = [threading.Thread(target=ring, args=(i * RING_EVERY_SEC,))
               for i in range(CALLS[cluster.mode])]
    for caller in callers:
        caller.start()

    def mid_call() -> bool:
        calls = cluster.store.list_calls()
        return len(calls) == CALLS[cluster.mode] and all(
            len(cluster.store.turns(c["call_sid"])) >= 2 for c in calls)
    wait_until(mid_call, seconds=300, every=0.5)
    killed_at = cluster.kill_instance()
    for caller in callers:
        caller.join(600)
    assert not failures, failures
    return results, killed_at


def test_forty_calls_through_the_balancer_survive_a_kill_9_of_one_instance(clusters):
    figures, problems = [], []
    started = time.monotonic()
    for mode, cluster in clusters.items():  # one mode at a time: a 2-core machine's worth
        calls, killed_at = ring_and_kill(cluster)
        assert len(calls) == CALLS[mode]
        (cluster.dir / "calls.json").write_text(json.dumps(  # kept with the logs on a failure
            [r.to_dict(with_audio=False) for r in calls], ensure_ascii=False))
        cut = cluster.sockets_cut(cluster.lines[0], killed_at)
        answered = sum(answered_actions(r) for r in calls)
        fallbacks = sum(1 for r in calls for h in r.heard
                        if h.get("url", "").endswith("/fallback_he.mp3"))
        events = Counter(e["kind"] for r in calls for e in cluster.store.events(r.call_sid)
                         if e["kind"] in NOTABLE)
        figures.append(f"{mode}: {len(calls)} calls, {answered}/{ACTIONS * len(calls)} actions "
                       f"answered, {cut} media sockets cut by the kill, {fallbacks} "
                       f"'please repeat' heard, events {dict(sorted(events.items()))}")
        for result in calls:
            for problem in call_problems(result) + kept_problems(cluster.store, result, mode):
                problems.append(f"{mode} {result.call_sid}: {problem}")
    print("CLUSTER " + "; ".join(figures) + f"; calls took {time.monotonic() - started:.0f} s")
    assert not problems, "\n".join(problems)


@pytest.fixture
def play_cluster():
    """One cluster whose watchdog moves a call to <Record> 4 s after a stream fails to start."""
    root = Path(tempfile.mkdtemp(prefix="ivr-cluster-"))
    root.chmod(0o755)
    cluster = Cluster(root, "play", STREAM_START_TIMEOUT_SEC="4").start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_watchdog_check_of_a_killed_instance_fires_on_the_other(play_cluster):
    """The instance that answered a call dies before the call's stream starts (it never does):
    the other instance's watchdog moves the call to <Record>, and the caller hears it."""
    cluster = play_cluster
    results: list[CallResult] = []
    caller = threading.Thread(target=lambda: results.append(cluster.call(
        {"steps": [{"silence": 25}], "end": "hangup", "reply_timeout": 10}, stream_hangs=True)))
    caller.start()
    [port] = wait_until(lambda: cluster.answered_by("/webhook/incoming_call"), seconds=60)
    cluster.kill_instance(cluster.name_of(port))
    caller.join(120)
    [result] = results
    moved = [e for e in cluster.store.events(result.call_sid)
             if e["kind"] == "WATCHDOG_REDIRECT_OK"]
    heard = [h.get("url", "").rsplit("/", 1)[-1] for h in result.heard]
    assert moved and "fallback_he.mp3" in heard, result.timeline_text()


def test_workers_set_in_the_environment_reach_the_lines_not_the_local_carrier():
    """`WORKERS=2 bash scripts/cluster.sh` in local mode: the lines run two workers each on the
    cluster's PostgreSQL, and the emulated carrier (one process on no database) still starts
    and rings the balancer."""
    root = Path(tempfile.mkdtemp(prefix="ivr-cluster-"))
    root.chmod(0o755)
    cluster = Cluster(root, "play", WORKERS="2")
    try:
        cluster.start()
        result = cluster.call({"steps": [{"say": "שלום"}], "end": "hangup", "reply_timeout": 60})
        assert not result.errors and result.heard, result.timeline_text()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
