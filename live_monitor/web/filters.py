"""The ``?release=`` and ``?environment=`` query parameters of /data, /differences and the
endpoint drill-down: read and checked once here, described once for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import request

from live_monitor.model.events import MAX_ENVIRONMENT, MAX_RELEASE, EventFilter
from live_monitor.web.errors import ApiError

__all__ = ["FILTER_PARAMS", "event_filter"]

_LIMITS = {"release": MAX_RELEASE, "environment": MAX_ENVIRONMENT}
_TEXT = {
    "release": "only the events of this release (an event's `release`, exactly): every figure is "
    "computed from the stored events that match, and the answer's `filter` says how many",
    "environment": "only the events of this environment (an event's `environment`, exactly), "
    "computed as for `release`; both together: the events of that release in that environment",
}
FILTER_PARAMS: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": _TEXT[name],
        "schema": {"type": "string", "minLength": 1, "maxLength": limit},
    }
    for name, limit in _LIMITS.items()
]


def event_filter() -> EventFilter | None:
    """The request's filter, None when it names neither; a 400 for a value no event can hold."""
    values = {}
    for name, limit in _LIMITS.items():
        raw = request.args.get(name)
        if raw is not None and not 0 < len(raw) <= limit:
            raise ApiError(400, f"{name} must be 1 to {limit} characters")
        values[name] = raw
    where = EventFilter(**values)
    return where if where else None
