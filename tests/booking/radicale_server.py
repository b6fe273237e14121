"""A real CalDAV server for the tests: Radicale on a free loopback port, its storage in a temp
folder, any user name accepted; it can be stopped and started again on the same port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import caldav

from ..livehelpers import free_port, wait_for

OWNER = "owner"  # Radicale's auth type none: any user name, any password


class Radicale:
    """`python -m radicale` in a subprocess; `calendar_url` is the owner's calendar, made at
    the first start."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.calendar_url = f"{self.base}/{OWNER}/appointments/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Radicale:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", "",
             "--server-hosts", f"127.0.0.1:{self.port}",
             "--storage-filesystem-folder", str(self.folder),
             "--auth-type", "none", "--rights-type", "owner_only",
             "--logging-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(self.base + "/.web/", self.proc)
        if not (self.folder / "collection-root" / OWNER / "appointments").exists():
            self.client().principal().make_calendar(name="תורים", cal_id="appointments")
        return self

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(url=self.base, username=OWNER, password="any")

    def calendar(self):
        """The owner's calendar as the owner's own phone sees it."""
        return self.client().calendar(url=self.calendar_url)

    def owner_event(self, start, end, summary: str, uid: str = "") -> None:
        """An event the owner adds by hand on their phone."""
        import uuid

        import icalendar
        cal, event = icalendar.Calendar(), icalendar.Event()
        cal.add("prodid", "-//owner's phone//")
        cal.add("version", "2.0")
        event.add("uid", uid or f"{uuid.uuid4()}@owner-phone")
        event.add("dtstamp", start)
        event.add("dtstart", start)
        event.add("dtend", end)
        event.add("summary", summary)
        cal.add_component(event)
        self.calendar().add_event(ical=cal.to_ical().decode())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc.stdout.close()
        self.proc = None
