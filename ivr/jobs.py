"""The scheduler's sweeps: one interval job per id in each process, the scheduler started."""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler


def every(scheduler: BaseScheduler, seconds: float, job: Callable[[], object],
          job_id: str) -> None:
    """Run `job` every `seconds` (replacing a job of that id; never two runs at once, a missed
    run once, however late), starting the scheduler if it is not running."""
    scheduler.add_job(job, "interval", seconds=seconds, id=job_id, replace_existing=True,
                      max_instances=1, coalesce=True, misfire_grace_time=None)
    if not scheduler.running:
        scheduler.start()
