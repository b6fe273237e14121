"""A real Prometheus (Debian's `prometheus`) scrapes the line as scripts/start.sh runs it: a
recording rule and a query over calls through the emulator, the token checked, and the counts of
a worker killed mid-life kept in the sums."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess

import psutil
import pytest
import requests

from ivr.metrics import FIRST_AUDIO_BUCKETS

from .livehelpers import ROOT, free_port, start_script_env, wait_for, wait_until

PROMETHEUS = shutil.which("prometheus")
pytestmark = [pytest.mark.live, pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus binary (Debian's `prometheus` package: "
    "scripts/install_system_deps.sh --with-browser)")]

TOKEN = "scrape-token-0123456789abcdef"
FAKES = {"ASR_ENGINE": "fake", "LLM_ENGINE": "fake", "TTS_ENGINE": "fake", "TURN_MODE": "stream"}
ROOMY_SEC = 120  # a bound a loaded machine never meets; every wait ends on its condition
RULES = """
groups:
  - name: line
    interval: 1s
    rules:
      - record: ivr:turns:sum
        expr: sum by (mode) (ivr_turns_total)
      - record: ivr:first_audio_seconds:p50
        expr: histogram_quantile(0.5, sum by (le, mode) (ivr_first_audio_seconds_bucket))
"""
CONFIG = """
global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: line
    authorization: {{credentials: "{token}"}}
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: line-without-token
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


class Prometheus:
    """Prometheus on a loopback port, scraping the line with a config file and rules."""

    def __init__(self, tmp_path, line_port: int):
        rules = tmp_path / "rules.yml"
        rules.write_text(RULES)
        config = tmp_path / "prometheus.yml"
        config.write_text(CONFIG.format(rules=rules, token=TOKEN, port=line_port))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = tmp_path / "prometheus.log"

    def ready(self) -> None:
        def answers() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                return requests.get(self.url + "/-/ready", timeout=10).ok
            except requests.RequestException:
                return False
        wait_until(answers, ROOMY_SEC, every=0.1)

    def query(self, expr: str) -> dict[tuple, float]:
        """An instant query's series: {sorted label pairs: value}."""
        answer = requests.get(self.url + "/api/v1/query", params={"query": expr},
                              timeout=30).json()
        assert answer["status"] == "success", answer
        return {tuple(sorted(s["metric"].items())): float(s["value"][1])
                for s in answer["data"]["result"]}

    def value(self, expr: str) -> float | None:
        series = self.query(expr)
        assert len(series) <= 1, series
        return next(iter(series.values()), None)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def turn_events(db) -> list[dict]:
    with sqlite3.connect(db) as conn:
        return [json.loads(detail) for (detail,) in conn.execute(
            "SELECT detail FROM events WHERE kind = 'TURN' ORDER BY id")]


def bucket_of(seconds: float) -> tuple[float, float]:
    """The bounds of the first-audio bucket that holds `seconds`."""
    upper = next(b for b in FIRST_AUDIO_BUCKETS if seconds <= b)
    lower = max([0.0] + [b for b in FIRST_AUDIO_BUCKETS if b < upper])
    return lower, upper


def test_prometheus_scrapes_the_line_and_its_rules_read_the_calls(tmp_path):
    from ivr.config import LOCAL_ACCOUNT_SID, local_auth_token
    from ivr.sim import Carrier
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    carrier = Carrier(base, account_sid=LOCAL_ACCOUNT_SID,
                      auth_token=local_auth_token(tmp_path / "var")).start()
    env = start_script_env(tmp_path, port, TWILIO_API_BASE_URL=carrier.url,
                           METRICS_TOKEN=TOKEN, **FAKES)
    line = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    prometheus = None
    db = tmp_path / "ivr.sqlite3"
    try:
        wait_for(base + "/healthz", line)
        prometheus = Prometheus(tmp_path, port)
        prometheus.ready()
        result = carrier.place_call("three_turns")
        assert result.error_codes == []
        turns = wait_until(lambda: len(turn_events(db)) == 3 and turn_events(db), ROOMY_SEC)
        assert {t["mode"] for t in turns} == {"play"}

        def scraped(expr: str, expected: float):
            return lambda: prometheus.value(expr) == expected
        wait_until(scraped('ivr:turns:sum{mode="play"}', 3), ROOMY_SEC, every=0.2)
        median = sorted(t["first_audio_ms"] for t in turns)[1] / 1000
        lower, upper = bucket_of(median)
        p50 = prometheus.value('ivr:first_audio_seconds:p50{mode="play"}')
        assert lower <= p50 <= upper, (p50, median, [t["first_audio_ms"] for t in turns])
        print(f"PROMETHEUS_FIRST_AUDIO_P50_SEC={p50:.3f} (the turns' median {median:.3f})")
        assert prometheus.value('sum(ivr_turn_stage_seconds_count{stage="asr"})') == 3
        wait_until(scraped('ivr_calls_ended_total{outcome="completed"}', 1), ROOMY_SEC, 0.2)
        assert prometheus.value('up{job="line"}') == 1
        assert prometheus.value('up{job="line-without-token"}') == 0  # 401 without the token
        assert prometheus.value("sum(ivr_event_loop_lag_seconds_count)") > 0
        assert prometheus.value('ivr_pool_queued{pool="calls"}') is not None

        # a worker killed (a crash, an OOM kill): its counts stay, the new worker's add up
        [worker] = psutil.Process(line.pid).children()
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: [p.pid for p in psutil.Process(line.pid).children()]
                   not in ([], [worker.pid]), ROOMY_SEC, every=0.05)
        wait_for(base + "/healthz", line)
        gone = tmp_path / "var" / "metrics" / f"gauge_livesum_{worker.pid}.db"
        assert not gone.exists()  # gunicorn's child_exit dropped its live gauges
        result = carrier.place_call({"steps": [{"say": "כמה זה עולה?"}], "end": "hangup"})
        assert result.error_codes == []
        wait_until(scraped('ivr:turns:sum{mode="play"}', 4), ROOMY_SEC, every=0.2)
        wait_until(scraped('ivr_calls_ended_total{outcome="completed"}', 2), ROOMY_SEC, 0.2)
    finally:
        if prometheus is not None:
            prometheus.stop()
        line.terminate()
        line.wait(30)
        carrier.stop()
