"""One process of the line telling the owner, on a test's database: `python -m
tests.notify_worker DATABASE_URL FOLDER LEASE_SEC SETTINGS_JSON`.

It prints "ready" once it sweeps, then for each line of stdin (JSON: {"sid", "lead"}) does what
the dialog does when a caller leaves a message (`Notifier.lead_left`). The tests kill it."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    from ivr.app import create_app

    from .conftest import DATABASE, make_settings
    database_url, folder, lease_sec, changes = sys.argv[1:5]
    DATABASE["url"] = database_url
    Path(folder).mkdir(parents=True, exist_ok=True)
    app = create_app(make_settings(Path(folder), **json.loads(changes)))
    notifier = app.extensions["ivr"].notifier
    notifier.queue.lease_sec = float(lease_sec)
    print("ready", flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        notifier.lead_left(message["sid"], message["lead"])


if __name__ == "__main__":
    main()
