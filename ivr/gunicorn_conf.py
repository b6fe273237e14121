"""gunicorn's hooks (scripts/start.sh: `-c python:ivr.gunicorn_conf`): the master empties the
workers' metrics files at its start; a worker's exit drops its live gauges."""

from __future__ import annotations

import os

from . import metrics
from .config import Settings

# gunicorn reads this module's names as its settings: only the hooks below are meant


def on_starting(server) -> None:
    """In the master, before any worker: every worker of this start writes its figures in
    VAR_DIR/metrics (inherited with the environment), emptied first. prometheus_client is
    first imported after this (ivr.metrics imports it on first use), so it sees the variable."""
    os.environ[metrics.MULTIPROC_ENV] = metrics.prepare_dir(Settings.from_env().var_dir)


def child_exit(server, worker) -> None:
    """A worker exited (stopped, crashed, killed): its counts stay in the sums, its live
    gauges go."""
    metrics.process_dead(worker.pid)
