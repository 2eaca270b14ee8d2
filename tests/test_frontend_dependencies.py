"""A page's calls to third parties (analytics, error reporting, maps) are dependencies, not API
calls: healthy traffic with such page noise raises no medium or high difference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend_logging_config import endpoint_key, outgoing_key
from live_monitor.vocabulary import OUTGOING_COMPONENT, severity_rank
from tests.helpers import verdict_call as call

EVENTS = "/api/live-execution/events"
ANALYTICS = "https://www.google-analytics.com/g/collect?v=2&tid=G-XYZ&cid=555.1"
ANALYTICS_KEY = "POST www.google-analytics.com/g/collect"


def mixed_batch(as_api: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(backend, frontend): 30 same-origin calls both sides saw, and 15 analytics POSTs from the
    page: dependencies keyed with their host, or (``as_api``) api events keyed by path alone, as
    the browser logger used to report them."""
    keys = ["GET /api/orders/:id", "POST /api/cart", "GET /api/items"]
    backend, frontend = [], []
    for i in range(30):
        trace = f"{i + 1:032x}"
        backend.append(call("backend", keys[i % 3], 20.0 + i % 5, i, trace))
        frontend.append(call("frontend", keys[i % 3], 45.0 + i % 5, i, trace))
    for i in range(15):
        key = endpoint_key("post", ANALYTICS) if as_api else outgoing_key("post", ANALYTICS)
        beacon = call("frontend", key, 80.0 + i, 40 + i, None)
        beacon["details"]["url_origin"] = "https://www.google-analytics.com"
        frontend.append({**beacon, "component": "api" if as_api else OUTGOING_COMPONENT})
    return backend, frontend


def post(make_app: Callable[..., Any], as_api: bool = False) -> dict[str, Any]:
    """Post the mixed batch to a fresh monitor and return its /data answer."""
    client = make_app().test_client()
    for events in mixed_batch(as_api):
        assert client.post(EVENTS, json=events).status_code == 200
    return client.get("/api/live-execution/data").get_json()


def loud(data: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """The medium and high differences: (type, severity, key)."""
    return [
        (d["type"], d["severity"], d["key"])
        for d in data["differences"]
        if severity_rank(d["severity"]) >= severity_rank("medium")
    ]


def test_third_party_calls_are_frontend_dependencies_and_raise_nothing(make_app: Callable[..., Any]) -> None:
    data = post(make_app)
    assert loud(data) == []
    assert not [d for d in data["differences"] if d["key"] == ANALYTICS_KEY]
    assert data["frontend"]["work"]["dependencies"] == 15
    assert data["frontend"]["api_calls"]["count"] == data["backend"]["api_calls"]["count"] == 30
    assert ANALYTICS_KEY not in {row["key"] for row in data["endpoints"]}
    assert data["frontend"]["components"][OUTGOING_COMPONENT] == 15


def test_the_same_calls_reported_as_api_calls_cry_wolf(make_app: Callable[..., Any]) -> None:
    """What the logger used to send (path-only api events): the differences the test above rules out."""
    found = loud(post(make_app, as_api=True))
    assert sorted(found, key=str) == sorted(
        [("pattern", "high", None), ("activity", "medium", None), ("pattern", "medium", "POST /g/collect")],
        key=str,
    )
