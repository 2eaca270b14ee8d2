"""One endpoint drilled into: ``GET /api/live-execution/endpoints/<key>``.

A Blueprint that ``create_app`` registers. The key is the endpoint key the endpoint rows show
(``GET /api/orders/:id``), URL-encoded (``GET%20%2Fapi%2Forders%2F%3Aid``; the slashes may stay
as they are); a key nobody has seen is a 404. ``?release=`` and ``?environment=`` drill into
the events of one release and/or environment only.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from live_monitor.core.drill import endpoint_drill
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.vocabulary import API
from live_monitor.web.errors import ApiError
from live_monitor.web.filters import event_filter

__all__ = ["ENDPOINTS_PATH", "bp"]

ENDPOINTS_PATH = f"{API}/endpoints"
bp = Blueprint("endpoints", __name__)


@bp.get(f"{ENDPOINTS_PATH}/<path:key>")
def endpoint(key: str) -> Response:
    """The drill-down of one endpoint key; 404 JSON when the key is unknown."""
    monitor: LiveExecutionMonitor = current_app.extensions["live_monitor"]
    answer = endpoint_drill(monitor, key, event_filter())
    if answer is None:
        shown = key if len(key) <= 120 else key[:120] + "…"
        raise ApiError(404, f"no endpoint {shown!r} in the window or the newest events")
    return jsonify(answer)
