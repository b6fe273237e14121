"""/metrics: the line's figures for Prometheus, locked by METRICS_TOKEN or the inspector's lock."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from .. import metrics
from ..runtime import Runtime, current_runtime
from .inspector import locked_reason

bp = Blueprint("scrape", __name__)


def scrape_locked(rt: Runtime) -> str | None:
    """Why this request may not read /metrics, or None when it may: with METRICS_TOKEN, that
    token as `Authorization: Bearer` (what Prometheus's `authorization:` sends); without it,
    whatever opens the inspector."""
    expected = rt.settings.metrics_token
    if not expected:
        return locked_reason(rt)
    auth = request.headers.get("Authorization", "")
    given = auth[7:] if auth.startswith("Bearer ") else ""
    if given and hmac.compare_digest(given.encode(), expected.encode()):
        return None
    return "401: /metrics needs METRICS_TOKEN (Authorization: Bearer)"


@bp.route("/metrics", methods=["GET"])
def scrape() -> Response:
    reason = scrape_locked(current_runtime())
    if reason:
        return Response(reason + "\n", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = metrics.exposition()
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
