"""One process of a line that takes bookings, on a test's database: `python -m
tests.booking.worker DATABASE_URL CARRIER_URL FOLDER NOW`.

Its desk's clock stands at NOW (ISO); it prints "ready" once it sweeps, then for each line of
stdin (JSON {"book": "<day>T<time>"}) books a haircut for the caller and prints the
appointment's id. The tests kill it."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path


def main() -> None:
    from ..conftest import DATABASE
    from .lines import Clock, book, booking_line, booking_settings
    database_url, carrier_url, folder, now = sys.argv[1:5]
    DATABASE["url"] = database_url
    rt = booking_line(booking_settings(Path(folder), carrier_url),
                      Clock(dt.datetime.fromisoformat(now)))
    print("ready", flush=True)
    for line in sys.stdin:
        day, clock = json.loads(line)["book"].split("T")
        print(book(rt, day, clock).id, flush=True)


if __name__ == "__main__":
    main()
