"""/calendar/<token>.ics: the appointments as an iCalendar feed the owner's phone subscribes to."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, abort

from ..booking import feed
from ..runtime import current_runtime

bp = Blueprint("calendar_feed", __name__)
FEED_DAYS_BACK = 30  # the feed shows the last 30 days and every coming appointment


@bp.route("/calendar/<token>.ics", methods=["GET"])
def appointments_feed(token: str) -> Response:
    """The feed behind CALENDAR_FEED_TOKEN (compared in constant time); 404 alike when the
    token is unset or wrong, so the address says nothing to a guesser."""
    rt = current_runtime()
    if not feed.token_ok(token, rt.settings.calendar_feed_token):
        abort(404)
    since = rt.desk.clock() - dt.timedelta(days=FEED_DAYS_BACK)
    body = feed.feed(rt.desk.appointments.since(since))
    return Response(body, content_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, no-store",
                             "Content-Disposition": 'inline; filename="appointments.ics"'})
