"""The pinned baseline at /api/live-execution/baseline: POST pins the window as it is, GET says
what changed since (per endpoint and side, with severities and confidences), DELETE unpins. It
is kept across a restart with --persist and shared by the processes on Redis."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.vocabulary import BASELINE_PATH, EVENTS_PATH
from tests.helpers import FakeClock, event, run_monitor
from tests.test_tools_baseline import TAIL, release_pair

ORDERS, USERS = "GET /api/orders", "GET /api/users/:id"
TICKS, PER_TICK = 30, 2  # a window of 60 s: 30 ticks of 2 s, 2 calls per side and endpoint each
# The server's durations, 80 to 120 ms in a fixed order; the browser sees each 30 ms later.
DURATIONS = [80.0 + (i * 7) % 41 for i in range(TICKS * PER_TICK)]


def traffic(client: FlaskClient, clock: FakeClock, slow: str | None = None) -> None:
    """One window (60 s) of the same traffic on two endpoints; ``slow``: that endpoint's server
    three times slower, as a release that broke it would be."""
    for tick in range(TICKS):
        batch = []
        for n in range(PER_TICK):
            for key in (ORDERS, USERS):
                ms = DURATIONS[tick * PER_TICK + n] * (3 if key == slow else 1)
                batch += [event("backend", "http", key, ms), event("frontend", "api", key, ms + 30)]
        answer = client.post(EVENTS_PATH, json=batch)
        assert answer.status_code == 200 and answer.get_json()["accepted"] == len(batch)
        clock.advance(60 / TICKS)


def flagged(answer: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(key, side, metric, severity) of every change flagged since the baseline."""
    return sorted(
        (c["key"], c["side"], c["metric"], c["severity"])
        for c in answer["since_baseline"]["changes"]
        if c["verdict"] != "unchanged"
    )


@pytest.fixture(params=["memory", "redis"])
def monitor_client(request: pytest.FixtureRequest, clock: FakeClock) -> FlaskClient:
    """A monitor with a 60 s window on the test's clock, its events in memory or in a real Redis
    (started first, so it stops after the monitor)."""
    settings: dict[str, Any] = {"window": 60, "self_monitor": False}
    if request.param == "redis":
        settings["store"] = request.getfixturevalue("redis_server").url
    make_app = request.getfixturevalue("make_app")
    client: FlaskClient = make_app(monitor=LiveExecutionMonitor(settings, clock=clock)).test_client()
    return client


def test_a_regression_after_pinning_is_flagged_and_an_unchanged_window_is_not(monitor_client, clock):
    client = monitor_client
    assert client.get(BASELINE_PATH).get_json() == {"pinned": False, "baseline": None, "since_baseline": None}
    traffic(client, clock)
    pinned = client.post(BASELINE_PATH).get_json()
    assert pinned["pinned"] is True and pinned["baseline"]["pinned_at"] == clock()
    orders = next(e for e in pinned["baseline"]["endpoints"] if e["key"] == ORDERS)
    assert orders["backend"]["calls"] == orders["frontend"]["calls"] == TICKS * PER_TICK
    assert orders["backend"]["p50_ms"] == pytest.approx(100, abs=3)
    assert orders["gap_p50_ms"] == pytest.approx(30, abs=3)

    clock.advance(60)  # the pinned window has gone by; the next one is alike
    traffic(client, clock)
    same = client.get(BASELINE_PATH).get_json()
    assert flagged(same) == []
    tested = [c for c in same["since_baseline"]["changes"] if c["metric"] == "p95_ms"]
    assert len(tested) == 4 and all(c["samples"] == {"baseline": 60, "current": 60} for c in tested)
    assert same["since_baseline"]["counts"]["unchanged"] == len(same["since_baseline"]["changes"])

    clock.advance(60)
    traffic(client, clock, slow=ORDERS)  # a release makes the server three times slower there
    answer = client.get(BASELINE_PATH).get_json()
    assert flagged(answer) == [
        (ORDERS, side, metric, "high") for side in ("backend", "frontend") for metric in ("p50_ms", "p95_ms")
    ]
    p50 = next(
        c for c in answer["since_baseline"]["changes"] if c["side"] == "backend" and c["metric"] == "p50_ms"
    )
    assert p50["verdict"] == "regression" and p50["confidence"] >= 0.99
    assert p50["change"] == pytest.approx(200, abs=10) and "two proportions" in p50["test"]
    assert answer["baseline"] == pinned["baseline"]  # what was pinned stays as it was

    unpinned = client.delete(BASELINE_PATH).get_json()
    assert unpinned == {"pinned": False, "baseline": None, "since_baseline": None}
    assert client.get(BASELINE_PATH).get_json()["pinned"] is False


def test_a_pinned_window_judges_a_tail_that_moved_far_as_the_report_does(monitor_client, clock, tmp_path):
    """The README screenshots' runs replayed: the first pinned, the second a window later. The
    live pin compares with the report's model, so the browser's p95 of the endpoint whose tail
    moved far is the same sure regression, and its medians stay unchanged."""
    client = monitor_client
    v1, v2 = release_pair(tmp_path, 8000)
    replay(client, v1.events())
    assert client.post(BASELINE_PATH).get_json()["pinned"] is True
    clock.advance(120)  # the pinned window has gone by
    replay(client, v2.events())
    changes = client.get(BASELINE_PATH).get_json()["since_baseline"]["changes"]
    by = {(c["key"], c["side"], c["metric"]): c for c in changes}
    p95 = by[TAIL, "frontend", "p95_ms"]
    assert (p95["verdict"], p95["severity"]) == ("regression", "high") and p95["confidence"] >= 0.99, p95
    assert p95["current"] > 10 * p95["baseline"] and min(p95["samples"].values()) > 150
    assert (
        by[TAIL, "frontend", "p50_ms"]["verdict"] == by[TAIL, "backend", "p95_ms"]["verdict"] == "unchanged"
    )


def replay(client: FlaskClient, sides: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """Post a run's events of both sides, every one accepted."""
    events = [*sides[0], *sides[1]]
    for start in range(0, len(events), 1000):
        answer = client.post(EVENTS_PATH, json=events[start : start + 1000])
        assert answer.status_code == 200 and answer.get_json()["rejected"] == 0


def test_pinning_follows_the_access_rules_of_the_other_post_routes(make_app):
    client = make_app({"token": "s3cret", "cors_origins": "https://ok.example"}).test_client()
    assert client.post(BASELINE_PATH).status_code == 401
    assert client.get(BASELINE_PATH).status_code == 401
    bearer = {"Authorization": "Bearer s3cret"}
    refused = client.post(BASELINE_PATH, headers={**bearer, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and "not allowed" in refused.get_json()["error"]
    assert (
        client.delete(BASELINE_PATH, headers={**bearer, "Origin": "https://evil.example"}).status_code == 403
    )
    allowed = client.post(BASELINE_PATH, headers={**bearer, "Origin": "https://ok.example"})
    assert (
        allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    )
    assert client.get(BASELINE_PATH, headers=bearer).get_json()["pinned"] is True


def some_traffic() -> list[dict[str, Any]]:
    return [
        event(side, "http" if side == "backend" else "api", ORDERS, 100.0 + i % 7)
        for i in range(30)
        for side in ("backend", "frontend")
    ]


def baseline_of(server: Any) -> dict[str, Any]:
    answer: dict[str, Any] = server.get("/baseline")
    return answer


def test_a_monitor_restarted_with_persist_keeps_its_pin(tmp_path: Path):
    flags = ["--no-self-monitor", "--persist", str(tmp_path / "events.db")]
    with run_monitor(*flags) as server:
        server.post_events(some_traffic())
        pinned = requests.post(f"{server.api}/baseline", timeout=10).json()["baseline"]
    with run_monitor(*flags) as server:
        kept = baseline_of(server)
        assert kept["pinned"] is True and kept["baseline"] == pinned
        assert kept["since_baseline"]["counts"]["regression"] == 0  # the journaled events, as pinned
        assert requests.delete(f"{server.api}/baseline", timeout=10).json()["pinned"] is False
    with run_monitor(*flags) as server:
        assert baseline_of(server)["pinned"] is False  # unpinning is journaled too


def test_monitors_on_one_redis_share_the_pin(redis_server):
    flags = ["--no-self-monitor", "--store", redis_server.url]
    with run_monitor(*flags) as one, run_monitor(*flags) as other:
        one.post_events(some_traffic())
        pinned = requests.post(f"{one.api}/baseline", timeout=10).json()["baseline"]
        assert baseline_of(other)["baseline"] == pinned
        requests.delete(f"{other.api}/baseline", timeout=10).raise_for_status()
        assert baseline_of(one)["pinned"] is False


def test_a_journaled_pin_that_cannot_be_read_leaves_the_monitor_unpinned(tmp_path: Path, make_app, caplog):
    """A damaged row (or one of another version) is skipped with a warning: the monitor starts,
    unpinned, rather than failing to start or comparing with a half-read baseline."""
    path = tmp_path / "events.db"
    LiveExecutionMonitor({"persist": str(path)}).close()  # a journal with its tables
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO baseline (id, body) VALUES (1, ?)", (b'{"pinned_at": "yesterday"}',))
    client = make_app({"persist": str(path)}).test_client()
    assert client.get(BASELINE_PATH).get_json()["pinned"] is False
    assert "skipped the journaled baseline" in caplog.text
    assert client.post(BASELINE_PATH).get_json()["pinned"] is True  # and a new pin replaces it
