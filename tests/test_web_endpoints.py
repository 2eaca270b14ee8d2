"""GET /api/live-execution/endpoints/<key>: one endpoint drilled into, from matched browser and
server events, on the memory store and on a real Redis."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from live_monitor.core import drill
from live_monitor.vocabulary import API, EVENTS_PATH
from tests.helpers import event, schema_validator

KEY = "GET /api/orders/:id"
ENCODED = quote(KEY, safe="")  # GET%20%2Fapi%2Forders%2F%3Aid


def matched(n: int, *, first: int = 1, server_timing: bool = True, failing: int = 0) -> list[dict[str, Any]]:
    """``n`` requests seen from both sides, tied by trace and span: the browser calls
    ``/api/orders/<i>`` and waits 100 + i ms, the server's route works 30 + i ms; the first
    ``failing`` answer 500 on both sides."""
    events = []
    for i in range(first, first + n):
        trace, span = f"{i:032x}", f"{i:016x}"
        code = 500 if i - first < failing else 200
        status = "error" if code == 500 else "success"
        browser = event("frontend", "api", f"GET /api/orders/{i}", 100.0 + i, status, http_status=code)
        if server_timing:
            browser["details"]["backend_ms"] = 30.0 + i
        server = event("backend", "http", KEY, 30.0 + i, status, http_status=code, route="/api/orders/:id")
        events += [
            {**browser, "trace_id": trace, "span_id": span},
            {**server, "trace_id": trace, "parent_span_id": span},
        ]
    return events


def post(client: Any, events: list[dict[str, Any]]) -> None:
    answer = client.post(EVENTS_PATH, json={"events": events}).json
    assert answer["accepted"] == len(events), answer


def drilled(client: Any, key: str = ENCODED) -> dict[str, Any]:
    response = client.get(f"{API}/endpoints/{key}")
    assert response.status_code == 200, response.json
    answer: dict[str, Any] = response.json
    return answer


@pytest.fixture(params=["memory", "redis"])
def store_app(request: pytest.FixtureRequest) -> Any:
    """A monitor app on the memory store or on a real redis-server (started first, so the app
    is stopped before it)."""
    settings = {"store": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    return request.getfixturevalue("make_app")(settings)


def test_both_sides_gaps_and_waterfalls_come_from_the_matched_requests(store_app: Any) -> None:
    client = store_app.test_client()
    post(client, matched(20, failing=2))
    answer = drilled(client)
    assert answer["key"] == KEY
    edges = answer["edges_ms"]
    assert edges == sorted(edges) and len(edges) >= 2
    for side, low, high in (("backend", 31, 50), ("frontend", 101, 120)):
        figures, latency = answer[side]["figures"], answer[side]["latency"]
        assert figures["count"] == latency["count"] == 20 and figures["error_count"] == 2
        assert len(latency["counts"]) == len(edges) - 1 and sum(latency["counts"]) == 20
        # every value is counted in a bin whose edges hold it (the sketch's 1% aside)
        filled = [i for i, n in enumerate(latency["counts"]) if n]
        assert edges[filled[0]] <= low * 1.01 and edges[filled[-1] + 1] >= high * 0.99
        assert low <= latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= high * 1.01
        assert answer[side]["statuses"] == {"200": 18, "500": 2}
        assert answer[side]["errors_scanned"] == 2
    gaps = answer["gaps"]["distribution"]
    assert gaps["count"] == 20 and gaps["p50_ms"] == pytest.approx(70, rel=0.02)
    assert sum(gaps["counts"]) == 20 and len(answer["gaps"]["edges_ms"]) == len(gaps["counts"]) + 1
    slowest = answer["slowest"]
    assert len(slowest) == drill.SLOWEST
    assert [w["browser_ms"] for w in slowest] == [120.0 - i for i in range(drill.SLOWEST)]
    first = slowest[0]
    assert first["trace_id"] == f"{20:032x}" and first["server_ms"] == 50.0
    assert first["server_ms_from"] == "server_timing" and first["estimated"] == ["server_start", "server_end"]
    # the server's 50 ms centred in the browser's 120 ms: 35 ms of wait before it and after it
    assert first["server_start"] - first["browser_start"] == pytest.approx(0.035, abs=1e-5)
    assert first["browser_end"] - first["server_end"] == pytest.approx(0.035, abs=1e-5)
    assert answer["scanned"] == {**answer["scanned"], "backend": 20, "frontend": 20, "matched": 20}
    minutes = answer["calls_per_minute"]
    assert sum(m["backend"] for m in minutes) == sum(m["frontend"] for m in minutes) == 20


def test_without_server_timing_the_server_event_gives_the_duration(client: Any) -> None:
    post(client, matched(3, server_timing=False))
    slowest = drilled(client)["slowest"]
    assert [(w["server_ms"], w["server_ms_from"]) for w in slowest] == [
        (33.0, "server_event"),
        (32.0, "server_event"),
        (31.0, "server_event"),
    ]


def test_the_key_may_keep_its_slashes_and_an_unknown_key_is_a_json_404(client: Any) -> None:
    post(client, matched(2))
    assert drilled(client, "GET%20/api/orders/:id")["key"] == KEY
    for unknown in ("GET%20%2Fnowhere", "x" * 3000, "%00"):
        response = client.get(f"{API}/endpoints/{unknown}")
        assert response.status_code == 404 and response.is_json
        assert "no endpoint" in response.json["error"] and len(response.json["error"]) < 200


def test_the_endpoint_differences_come_with_their_confidence(client: Any) -> None:
    """A browser far slower than its server on one endpoint: the drill-down lists that
    endpoint's differences (and only its own), as /differences has them."""
    slow = [event("frontend", "api", "GET /api/slow", 900.0) for _ in range(30)]
    fast = [event("backend", "http", "GET /api/slow", 10.0) for _ in range(30)]
    other = [event("frontend", "api", "GET /api/ghost", 10.0) for _ in range(30)]
    post(client, slow + fast + other)
    answer = drilled(client, quote("GET /api/slow", safe=""))
    everything = client.get(f"{API}/differences").json["differences"]
    mine = [d for d in everything if d["key"] == "GET /api/slow"]
    assert mine and answer["differences"] == mine
    assert all("confidence" in d and "samples" in d for d in answer["differences"])


def test_the_scan_reads_a_bounded_number_of_events_whatever_the_store_holds(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's figures count every call; the event-level figures read the newest
    ``SCAN_LIMIT`` of each side, however many are stored."""
    monkeypatch.setattr(drill, "SCAN_LIMIT", 30)
    client = make_app().test_client()
    post(client, matched(100))
    answer = drilled(client)
    assert answer["backend"]["figures"]["count"] == answer["frontend"]["figures"]["count"] == 100
    assert answer["scanned"] == {**answer["scanned"], "limit": 30, "backend": 30, "frontend": 30}
    assert answer["scanned"]["matched"] == 30
    assert sum(answer["backend"]["statuses"].values()) == 30
    assert answer["slowest"][0]["browser_ms"] == 200.0  # the newest are the slowest here


def test_the_answer_fits_its_schema_with_nothing_undescribed(client: Any) -> None:
    post(client, matched(5) + [event("backend", "http", "GET /api/bare", None)])
    validator = schema_validator(client, "EndpointDrill", closed=True)
    answer = drilled(client)
    validator.validate(answer)
    bare = drilled(client, quote("GET /api/bare", safe=""))  # one side, untimed: empty scales
    validator.validate(bare)
    assert bare["frontend"] is None and bare["edges_ms"] == [] and bare["slowest"] == []
    broken = json.loads(json.dumps(answer))
    del broken["slowest"][0]["server_start"]
    assert not validator.is_valid(broken)


def test_a_server_slower_than_its_browser_call_is_placed_across_the_whole_call(client: Any) -> None:
    """Clocks and timers disagree at times (the server counts work the browser's timer missed):
    the server's span never leaves the browser's, whose times are the measured ones."""
    trace = f"{7:032x}"
    browser = event("frontend", "api", "GET /api/orders/7", 20.0, http_status=200, backend_ms=35.0)
    server = event("backend", "http", KEY, 35.0, http_status=200, route="/api/orders/:id")
    post(client, [{**server, "trace_id": trace, "parent_span_id": "7" * 16}])
    post(client, [{**browser, "trace_id": trace, "span_id": "7" * 16}])
    [late] = drilled(client)["slowest"]
    assert late["trace_id"] == trace and late["server_ms"] == 35.0 and late["browser_ms"] == 20.0
    assert (late["server_start"], late["server_end"]) == (late["browser_start"], late["browser_end"])
    assert late["browser_action"] == "GET /api/orders/7"  # the browser's own key, kept
