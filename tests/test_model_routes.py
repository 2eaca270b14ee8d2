"""The server's route templates applied to the browser's URLs: RouteTemplates alone, then through
the monitor's one entry point (events posted to /events), so both sides meet under one key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from live_monitor.core.monitor import ROUTE_SYNC_S, LiveExecutionMonitor
from live_monitor.model.events import ExecutionEvent
from live_monitor.model.routes import RouteTemplates
from live_monitor.tools.report import build_stats
from tests.helpers import API, FakeClock, ev


def learned(*keys: str, limit: int = 1000) -> RouteTemplates:
    routes = RouteTemplates(limit)
    routes.learn_keys(list(keys))
    return routes


@pytest.mark.parametrize(
    ("action", "key"),
    [
        ("GET /api/users/alice", "GET /api/users/:name"),
        ("GET /api/users/:id", "GET /api/users/:name"),  # a numeric user is the same route
        ("GET /api/users/alice/posts/hello-world", "GET /api/users/:name/posts/:slug"),
        ("GET /api/users/me", None),  # the literal route wins: it is more specific
        ("POST /api/users/alice", None),  # another method: another route
        ("GET /api/users", None),  # another number of segments
        ("GET /api/teams/alice", None),  # a literal segment differs
        ("GET /api/users/:name", None),  # already the server's key
    ],
)
def test_a_browser_call_takes_the_most_specific_template_that_fits(action: str, key: str | None) -> None:
    routes = learned(
        "GET /api/users/:name", "GET /api/users/me", "GET /api/users/:name/posts/:slug", "GET /api/users"
    )
    assert routes.key_for(action) == key


def test_with_equal_literals_the_first_template_by_key_wins_whatever_the_order_learned() -> None:
    keys = ["GET /api/:section/latest", "GET /api/news/:id"]
    for order in (keys, keys[::-1]):
        assert learned(*order).key_for("GET /api/news/latest") == "GET /api/:section/latest"


def test_the_registry_is_bounded() -> None:
    routes = learned(*(f"GET /api/r{i}/:id" for i in range(5)), limit=3)
    assert len(routes) == 3 and routes.keys() == ["GET /api/r0/:id", "GET /api/r1/:id", "GET /api/r2/:id"]
    assert routes.key_for("GET /api/r4/x") is None and not routes.learn("GET", "/api/r9/:id")


def test_routes_without_parameters_cannot_crowd_the_templates_out() -> None:
    """A backend that sends its raw paths as routes must not fill the registry for good."""
    routes = learned(*(f"GET /api/plain/{i}" for i in range(5)), "GET /api/users/:name", limit=3)
    assert len(routes) == 4 and "GET /api/users/:name" in routes.keys()
    assert routes.key_for("GET /api/users/alice") == "GET /api/users/:name"


def server_request(path: str, route: str) -> dict[str, Any]:
    return ev(service="backend", component="http", action=f"GET {path}", details={"route": route})


def test_browser_calls_meet_the_servers_route_key_in_data(client) -> None:
    """The server reports /api/users/<name>; the browser's calls to alice, bob and carol are
    keyed GET /api/users/:name, their own key kept in details.url_key."""
    batch = [server_request("/api/users/:name", "/api/users/<name>")]
    batch += [ev(action=f"GET /api/users/{name}") for name in ("alice", "bob", "carol")]
    batch.append(ev(action="GET /api/health"))  # no template: left as it is
    assert client.post(f"{API}/events", json=batch).status_code == 200
    events = client.get(f"{API}/data?limit=50").json["recent_events"]
    frontend = sorted(
        (e["action"], e["details"].get("url_key")) for e in events if e["service"] == "frontend"
    )
    assert frontend == [
        ("GET /api/health", None),
        ("GET /api/users/:name", "GET /api/users/alice"),
        ("GET /api/users/:name", "GET /api/users/bob"),
        ("GET /api/users/:name", "GET /api/users/carol"),
    ]
    rows = {r["key"]: r for r in client.get(f"{API}/data").json["endpoints"]}
    assert rows["GET /api/users/:name"]["seen_by"] == "both"


def test_browser_calls_sent_before_the_servers_route_was_known_meet_it_too(client) -> None:
    """Exporters flush when they like: the browser's calls often arrive first. They are counted
    under their own keys then, and /data folds them into the server's key once it is known."""
    browser = [ev(action=f"GET /api/users/{name}", duration_ms=50.0) for name in ("alice", "bob")]
    assert client.post(f"{API}/events", json=browser).status_code == 200
    server = [server_request("/api/users/:name", "/api/users/<name>")]
    assert client.post(f"{API}/events", json=server).status_code == 200
    data = client.get(f"{API}/data?limit=50").json
    rows = {r["key"]: r for r in data["endpoints"]}
    assert "GET /api/users/alice" not in rows and "GET /api/users/bob" not in rows
    assert rows["GET /api/users/:name"]["frontend"]["count"] == 2
    assert rows["GET /api/users/:name"]["seen_by"] == "both"
    calls = [e for e in data["recent_events"] if e["service"] == "frontend"]
    assert sorted((e["action"], e["details"]["url_key"]) for e in calls) == [
        ("GET /api/users/:name", "GET /api/users/alice"),
        ("GET /api/users/:name", "GET /api/users/bob"),
    ]


def test_the_report_folds_the_browsers_calls_into_the_servers_routes(tmp_path) -> None:
    """The report learns the routes from the server's file as it reads, as the live monitor does."""
    browser = [ev(action=f"GET /api/users/{name}", duration_ms=50.0) for name in ("alice", "bob")]
    server = [server_request("/api/users/:name", "/api/users/<name>")]
    for name, events in (("frontend.json", browser), ("backend.json", server)):
        stamped = [{**e, "timestamp": f"2026-12-07T10:00:0{i}Z"} for i, e in enumerate(events)]
        (tmp_path / name).write_text(json.dumps(stamped))
    stats = build_stats([(tmp_path / "backend.json", "backend"), (tmp_path / "frontend.json", "frontend")])
    assert set(stats.frontend.endpoints) == {"GET /api/users/:name"}
    assert stats.frontend.endpoints["GET /api/users/:name"].count == 2


def test_events_recorded_in_python_are_keyed_too_and_learning_lasts_across_batches() -> None:
    monitor = LiveExecutionMonitor({"self_monitor": False})
    monitor.backend_events.append(ExecutionEvent(**server_request("/api/posts/x", "/api/posts/{slug}")))
    monitor.record(ExecutionEvent(**ev(action="GET /api/posts/hello-world")))
    [call] = monitor.store.events("frontend")
    assert (call.action, call.details["url_key"]) == ("GET /api/posts/:slug", "GET /api/posts/hello-world")


def test_processes_on_one_redis_share_what_they_learned(redis_server) -> None:
    """With --workers, the server's request and the browser's call may reach different processes:
    a template one learns is shared at once and read by the others within ROUTE_SYNC_S."""
    clock = FakeClock()
    settings = {"self_monitor": False, "store": redis_server.url}
    first, second = LiveExecutionMonitor(settings, clock=clock), LiveExecutionMonitor(settings, clock=clock)
    second.record(ExecutionEvent(**ev(action="GET /api/health")))  # reads the shared templates: none
    first.record(ExecutionEvent(**server_request("/api/users/x", "/api/users/<name>")))
    second.record(ExecutionEvent(**ev(action="GET /api/users/alice")))  # read 0 s ago: its own key
    clock.advance(ROUTE_SYNC_S)
    second.record(ExecutionEvent(**ev(action="GET /api/users/bob")))
    actions = [e.action for e in second.store.events("frontend")]
    assert actions == ["GET /api/health", "GET /api/users/alice", "GET /api/users/:name"]


def test_a_restarted_monitor_knows_the_routes_its_journal_holds(tmp_path) -> None:
    settings = {"self_monitor": False, "persist": str(tmp_path / "events.jsonl")}
    before = LiveExecutionMonitor(settings)
    before.accept([ExecutionEvent(**server_request("/api/users/x", "/api/users/<name>"))])
    before.close()
    after = LiveExecutionMonitor(settings)
    after.accept([ExecutionEvent(**ev(action="GET /api/users/alice"))])
    assert [e.action for e in after.store.events("frontend")] == ["GET /api/users/:name"]
    after.close()


def test_a_process_that_only_serves_reads_learns_the_others_routes(redis_server) -> None:
    """A worker that answers the dashboard but took no event lately still folds the browser's
    calls into the route another process learned, within ROUTE_SYNC_S."""
    clock = FakeClock()
    settings = {"self_monitor": False, "store": redis_server.url}
    ingest, reader = LiveExecutionMonitor(settings, clock=clock), LiveExecutionMonitor(settings, clock=clock)
    reader.data()  # its first read: no templates yet
    ingest.record(ExecutionEvent(**ev(action="GET /api/users/alice")))
    ingest.record(ExecutionEvent(**server_request("/api/users/x", "/api/users/<name>")))
    clock.advance(ROUTE_SYNC_S)
    keys = {row["key"] for row in reader.data()["endpoints"]}
    assert "GET /api/users/:name" in keys and "GET /api/users/alice" not in keys
