"""Fixtures of the booking tests: a real CalDAV server (Radicale) on loopback."""

from __future__ import annotations

import pytest

from .radicale_server import Radicale


@pytest.fixture
def radicale(tmp_path):
    """Radicale on a free loopback port with the owner's calendar, its storage in tmp_path."""
    server = Radicale(tmp_path / "radicale").start()
    yield server
    server.stop()
