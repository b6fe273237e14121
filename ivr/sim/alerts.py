"""Twilio's Monitor Alerts as the emulator keeps them: every error or warning of its calls."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from .result import ERROR_TEXT

WARNINGS = frozenset({13331, 13512, 15003, 12200})  # Twilio logs these at level "warning"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(raw: str) -> float | None:
    """StartDate/EndDate as the SDK sends them: YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (GMT)."""
    for shape in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, shape).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


class AlertBook:
    """The account's alerts, newest last; `page` answers GET /v1/Alerts in Twilio's shape."""

    def __init__(self, account_sid: str):
        self.account_sid = account_sid
        self.lock = threading.Lock()
        self.alerts: list[dict] = []

    def add(self, code: int, message: str, call_sid: str = "", request_url: str = "",
            method: str = "POST", **variables: str) -> dict:
        """Raise an alert (a call's error or warning) the Monitor resource then lists."""
        now = time.time()
        sid = "NO" + secrets.token_hex(16)
        text = urlencode({"Msg": message, "ErrorCode": str(code), **variables})
        alert = {"sid": sid, "account_sid": self.account_sid, "error_code": str(code),
                 "log_level": "warning" if code in WARNINGS else "error",
                 "alert_text": text, "api_version": "2010-04-01", "resource_sid": call_sid,
                 "request_method": method if request_url else None,
                 "request_url": request_url or None, "service_sid": None,
                 "more_info": f"https://www.twilio.com/docs/errors/{code}",
                 "date_created": iso(now), "date_generated": iso(now), "date_updated": iso(now),
                 "url": f"https://monitor.twilio.com/v1/Alerts/{sid}", "_at": now,
                 "_title": ERROR_TEXT.get(code, "")}
        with self.lock:
            self.alerts.append(alert)
        return alert

    def codes(self) -> list[int]:
        with self.lock:
            return [int(a["error_code"]) for a in self.alerts]

    def find(self, sid: str) -> dict | None:
        """One alert, as fetched by its SID (with the request details a list leaves out)."""
        with self.lock:
            alert = next((a for a in self.alerts if a["sid"] == sid), None)
        if alert is None:
            return None
        return {**public(alert), "request_variables": "", "request_headers": "",
                "response_body": "", "response_headers": ""}

    def page(self, params: dict, base: str) -> dict:
        """GET /v1/Alerts: LogLevel, StartDate, EndDate, PageSize, Page; newest first."""
        start, end = parse_time(params.get("StartDate", "")), parse_time(params.get("EndDate", ""))
        level = params.get("LogLevel")
        with self.lock:
            rows = [a for a in reversed(self.alerts)
                    if (start is None or a["_at"] >= start) and (end is None or a["_at"] <= end)
                    and (not level or a["log_level"] == level)]
        size = min(max(int(params.get("PageSize") or DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
        number = max(int(params.get("Page") or 0), 0)
        chosen = rows[number * size:(number + 1) * size]
        query = {k: v for k, v in params.items() if k in ("LogLevel", "StartDate", "EndDate")}

        def link(page: int) -> str:
            return f"{base}/v1/Alerts?" + urlencode({**query, "PageSize": size, "Page": page})
        more = len(rows) > (number + 1) * size
        return {"alerts": [public(a) for a in chosen],
                "meta": {"page": number, "page_size": size, "key": "alerts",
                         "first_page_url": link(0), "url": link(number),
                         "previous_page_url": link(number - 1) if number else None,
                         "next_page_url": link(number + 1) if more else None}}


def public(alert: dict) -> dict:
    """An alert without the emulator's own bookkeeping."""
    return {k: v for k, v in alert.items() if not k.startswith("_")}
