"""A watchdog alone in its own process on a test's database: `python -m tests.watchdog_worker`.

Arguments: the database URL, the carrier's URL, a scratch folder. It prints "ready" once it
sweeps, and when its stdin closes it stops and prints the ids of the checks it ran, as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from ivr.calls import Calls
from ivr.config import Settings
from ivr.delivery import Delivery
from ivr.eventlog import EventLog
from ivr.store import Store
from ivr.watchdog import Watchdog


def build(settings: Settings, **options) -> Watchdog:
    """A watchdog with its own store and scheduler (what one process of the line has)."""
    store = Store(settings.database_url)
    events = EventLog(store)
    return Watchdog(settings, BackgroundScheduler(), Calls(store), events,
                    Delivery(settings, events),
                    lambda alias: f"https://line.example.com/static/tts/{alias}", **options)


def stop(dog: Watchdog) -> None:
    """Everything the process would lose when it dies (a second stop is a no-op)."""
    if dog.scheduler.running:
        dog.scheduler.shutdown(wait=False)
    dog.close()
    dog.calls.store.close()


def main() -> None:
    from .conftest import DATABASE, make_settings
    database_url, carrier_url, folder = sys.argv[1:4]
    DATABASE["url"] = database_url
    Path(folder).mkdir(parents=True, exist_ok=True)
    settings = make_settings(Path(folder)).replace(twilio_api_base_url=carrier_url)
    dog = build(settings, sweep_sec=0.05)
    dog.start()
    print("ready", flush=True)
    sys.stdin.read()
    dog.scheduler.shutdown(wait=True)
    dog.pool.shutdown(wait=True)  # the checks it claimed finish
    dog.calls.store.close()
    print(json.dumps([check_id for check_id, _ in dog.fired]), flush=True)


if __name__ == "__main__":
    main()
