from __future__ import annotations

import json
from datetime import datetime

import pytest

from live_execution_monitor import ExecutionEvent, LiveExecutionMonitor
from tests.helpers import FakeReader, reading, stored_event


def make_monitor(clock, **settings):
    return LiveExecutionMonitor(settings, reader=FakeReader([reading(cpu_percent=33.0)]), clock=clock)


def test_the_readme_snippet_counts_in_every_figure(clock):
    monitor = make_monitor(clock)
    for _ in range(20):
        monitor.backend_events.append(
            ExecutionEvent(
                timestamp=datetime.now().isoformat(),
                service="backend",
                component="custom_component",
                action="custom_action",
                duration_ms=125.0,
                status="success",
                details={"custom_metric": "value"},
            )
        )
        monitor.frontend_events.append(
            ExecutionEvent(
                timestamp=datetime.now().isoformat(),
                service="frontend",
                component="Cart",
                action="render",
                duration_ms=75.0,
                status="success",
            )
        )
    status = monitor.status()
    assert status["backend_events"] == 20 and status["frontend_events"] == 20
    data = monitor.data()
    assert data["backend"]["total_events"] == 20
    assert data["backend"]["avg_duration_ms"] == 125.0
    assert data["comparison"]["performance_ratio"] == 1.67
    assert data["recent_events"][0]["component"] in {"custom_component", "Cart"}
    perf = [d for d in monitor.differences() if d.type == "performance"]
    assert perf and perf[0].severity == "high"
    assert status["differences_found"] >= 1
    # /data carries the differences and their thresholds too, so the dashboard polls once.
    assert data["differences"] == monitor.differences()
    assert data["differences_count"] == len(data["differences"])
    assert perf[0] in data["differences"] and data["thresholds"]["min_samples"] == 10


def test_start_stop_are_idempotent_and_the_clock_counts_only_monitoring(clock):
    monitor = make_monitor(clock, interval=60)
    assert monitor.start() is True
    assert monitor.start() is False
    clock.advance(30)
    assert monitor.stop() is True
    assert monitor.stop() is False
    clock.advance(100)
    assert monitor.uptime() == 30
    monitor.start()
    clock.advance(5)
    assert monitor.uptime() == 35
    monitor.stop()


def test_a_tick_samples_the_system_and_records_activity(clock):
    monitor = make_monitor(clock)
    monitor.ingest(
        json.dumps([{"service": "frontend", "component": "click", "action": "button#a"}] * 3).encode()
    )
    sample = monitor.sampler.tick()
    assert sample["cpu_percent"] == 33.0
    data = monitor.data()
    assert data["system"]["cpu_percent"] == 33.0
    assert data["activity_history"][-1]["frontend"] == 3
    assert data["activity_history"][-1]["backend"] == 0
    assert monitor.status()["last_sample_age_seconds"] == 0.0


def test_each_activity_point_counts_the_events_since_the_tick_before(clock):
    # an idle tick does not ask the store for its counts: the points before and after it must
    # still count every event once
    monitor = make_monitor(clock)
    click = {"service": "frontend", "component": "click", "action": "button#a"}
    points = []
    for batch in (3, 0, 0, 2, 0):
        if batch:
            monitor.ingest(json.dumps([click] * batch).encode())
        clock.advance(1)
        monitor.sampler.tick()
        points.append(monitor.data()["activity_history"][-1]["frontend"])
    assert points == [3, 0, 0, 2, 0]


def test_events_sent_while_stopped_do_not_spike_the_first_activity_point(clock):
    monitor = make_monitor(clock, interval=60)  # only the tick on starting, and ours
    batch = [{"service": "backend", "component": "http", "action": "GET /a", "duration_ms": 5}]
    monitor.ingest(json.dumps(batch * 500).encode())
    ticks = 0
    for _ in range(2):  # a first start, and a restart after events came in while stopped
        assert monitor.start()
        ticks = monitor.wait_for_tick(ticks, timeout=10)  # the sampler ticks once on starting
        assert monitor.data()["activity_history"][-1]["backend"] == 0
        monitor.ingest(json.dumps(batch * 4).encode())
        monitor.stop()
        monitor.sampler.tick()
        assert monitor.data()["activity_history"][-1]["backend"] == 4
        ticks += 1
        monitor.ingest(json.dumps(batch * 300).encode())
    assert monitor.status()["backend_events"] == 1108  # all of them stored and counted


def test_data_has_the_contract_fields(clock):
    monitor = make_monitor(clock)
    monitor.sampler.tick()
    data = monitor.data()
    for side in ("backend", "frontend"):
        for key in (
            "total_events",
            "avg_duration_ms",
            "p95_duration_ms",
            "success_rate",
            "events_per_minute",
        ):
            assert key in data[side]
    assert "performance_ratio" in data["comparison"]
    for key in (
        "cpu_percent",
        "memory_percent",
        "disk_read_bytes_per_s",
        "disk_write_bytes_per_s",
        "net_sent_bytes_per_s",
        "net_recv_bytes_per_s",
    ):
        assert key in data["system"]
    assert isinstance(data["recent_events"], list)


def test_ingest_keeps_valid_events_and_counts_rejections_by_rule(clock):
    monitor = make_monitor(clock)
    body = json.dumps(
        {
            "events": [
                {"service": "backend", "component": "http", "action": "GET /a", "duration_ms": 5},
                {"service": "backend", "component": "http", "action": "GET /a", "duration_ms": -5},
            ]
        }
    ).encode()
    result = monitor.ingest(body)
    assert (result.accepted, result.rejected) == (1, 1)
    status = monitor.status()
    assert status["rejected_by_reason"] == {"duration_ms: must be >= 0": 1}
    assert status["received"] == 2


def test_the_monitors_own_traffic_is_listed_but_never_compared(clock):
    monitor = make_monitor(clock)
    own_backend = [
        {
            "service": "backend",
            "component": "http",
            "action": "GET /api/live-execution/data",
            "duration_ms": 1.0,
            "details": {"self_monitor": True},
        }
    ] * 30
    dashboard_polls = [
        {
            "service": "frontend",
            "component": "api",
            "action": "GET /api/live-execution/data",
            "duration_ms": 100.0,
        }
    ] * 30
    monitor.ingest(json.dumps(own_backend + dashboard_polls).encode())
    assert monitor.differences() == []
    data = monitor.data()
    assert data["backend"]["total_events"] == 0 and data["frontend"]["total_events"] == 0
    assert monitor.status()["self_events"] == 60
    assert data["endpoints"] == []
    assert all(e["details"]["self_monitor"] for e in data["recent_events"])
    assert data["recent_events"] and monitor.data(include_self=False)["recent_events"] == []


def test_a_decoded_event_recorded_or_appended_directly_is_scrubbed_too():
    from live_monitor.model.events import decode_batch

    monitor = LiveExecutionMonitor()
    body = b'[{"service": "backend", "component": "db", "action": "q", "details": {"password": "p"}}]'
    (recorded,) = decode_batch(body).events
    monitor.record(recorded)
    (appended,) = decode_batch(body).events
    monitor.backend_events.append(appended)
    assert [e["details"] for e in monitor.data()["recent_events"]] == [{"password": "[Filtered]"}] * 2


def test_status_and_data_read_the_shared_monitoring_state_once_each(clock):
    """With Redis each read is a round trip: /status and /data must not repeat it."""
    monitor = LiveExecutionMonitor(clock=clock)
    monitor.start()
    reads = []
    real = monitor.store.monitoring_state
    monitor.store.monitoring_state = lambda: reads.append(1) or real()  # type: ignore[method-assign]
    clock.advance(5)
    status = monitor.status()
    assert (status["monitoring"], status["uptime_seconds"], len(reads)) == (True, 5.0, 1)
    data = monitor.data()
    assert (data["monitoring"], data["uptime_seconds"], len(reads)) == (True, 5.0, 2)
    monitor.stop()


def test_min_samples_given_on_the_command_line_wins_over_the_thresholds_file_even_at_10(tmp_path, clock):
    from live_execution_monitor import build_parser
    from live_monitor.core.settings import resolve

    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"min_samples": 3}))

    def min_samples(*argv: str, environ: dict[str, str] | None = None) -> int:
        settings = resolve(build_parser().parse_args(list(argv)), environ or {})
        return LiveExecutionMonitor(settings, clock=clock).thresholds.min_samples

    assert min_samples("--thresholds", str(thresholds), "--min-samples", "10") == 10
    assert min_samples("--thresholds", str(thresholds), environ={"LIVE_MONITOR_MIN_SAMPLES": "10"}) == 10
    assert min_samples("--thresholds", str(thresholds)) == 3
    assert min_samples("--min-samples", "4") == 4
    assert min_samples() == 10


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_polls_and_self_monitoring_never_recompute_the_differences(kind, clock, monkeypatch, request):
    """Only a counted event or a time bucket entering the window recomputes the differences."""
    from live_execution_monitor import create_app
    from live_monitor.core import monitor as core
    from live_monitor.vocabulary import API, EVENTS_PATH

    url = "memory" if kind == "memory" else request.getfixturevalue("redis_server").url
    monitor = LiveExecutionMonitor({"store": url}, reader=FakeReader([reading()]), clock=clock)
    assert monitor.settings["self_monitor"] is True  # the default: every poll records an event
    client = create_app(monitor=monitor).test_client()
    computed: list[int] = []
    real = core.compare
    monkeypatch.setattr(core, "compare", lambda *a, **k: computed.append(1) or real(*a, **k))
    batch = [{"service": "backend", "component": "http", "action": "GET /a", "duration_ms": 5}]

    assert client.post(EVENTS_PATH, json=batch).status_code == 200
    assert client.get(f"{API}/data").status_code == 200
    assert len(computed) == 1
    for _ in range(5):  # polls, each of them recorded as the monitor's own traffic
        assert client.get(f"{API}/data").status_code == 200
        assert client.get(f"{API}/differences").status_code == 200
    assert len(computed) == 1
    assert monitor.store.counts()["self_events"] >= 11
    assert client.post(EVENTS_PATH, json=batch).status_code == 200  # one new app event
    for _ in range(3):
        client.get(f"{API}/data")
        client.get(f"{API}/differences")
    assert len(computed) == 2
    clock.advance(monitor.store.bucket_s)  # a new time bucket enters the window
    client.get(f"{API}/data")
    client.get(f"{API}/differences")
    assert len(computed) == 3


def test_an_empty_window_is_compared_again_only_when_an_event_is_counted(clock, monkeypatch):
    """With the monitor's own store, time passing over an empty window changes nothing; the
    first counted event (and each bucket after it) is compared again."""
    from live_monitor.core import monitor as core

    monitor = make_monitor(clock)
    computed: list[int] = []
    real = core.compare
    monkeypatch.setattr(core, "compare", lambda *a, **k: computed.append(1) or real(*a, **k))
    for _ in range(4):  # idle ticks over four time buckets
        monitor.sampler.tick()
        clock.advance(monitor.store.bucket_s)
    assert len(computed) == 1
    slow = {"service": "backend", "component": "http", "action": "GET /a", "duration_ms": 900}
    fast = {"service": "frontend", "component": "api", "action": "GET /a", "duration_ms": 5}
    monitor.ingest(json.dumps([slow] * 30 + [fast] * 30).encode())
    monitor.sampler.tick()
    assert len(computed) == 2
    assert monitor.differences()  # found at once, not a bucket later
    clock.advance(monitor.store.bucket_s)  # a bucket enters a window that holds events
    monitor.sampler.tick()
    assert len(computed) == 3
    clock.advance(monitor.store.window_s + monitor.store.bucket_s)  # the events leave the window
    monitor.sampler.tick()
    assert monitor.differences() == []


def test_own_traffic_is_decided_where_events_enter_whichever_way_they_enter(clock):
    """accept() and record() tag calls of the monitor's own API; the store only reads the tag."""
    monitor = make_monitor(clock)
    poll = {"service": "frontend", "component": "api", "action": "GET /api/live-execution/data?limit=5"}
    app_call = {"service": "frontend", "component": "api", "action": "GET /api/live-executions"}
    monitor.ingest(json.dumps([{**poll, "duration_ms": 90.0}, {**app_call, "duration_ms": 80.0}]).encode())
    monitor.record(
        ExecutionEvent(
            service="backend", component="http", action="GET /api/live-execution/status", duration_ms=1.0
        )
    )
    tagged = {e["action"]: e["details"].get("self_monitor", False) for e in monitor.data()["recent_events"]}
    assert tagged == {
        "GET /api/live-execution/data": True,  # an endpoint action keeps no query string
        "GET /api/live-executions": False,  # an app route that only starts like the monitor's
        "GET /api/live-execution/status": True,
    }
    status = monitor.status()
    assert (status["self_events"], status["frontend_events"], status["backend_events"]) == (2, 1, 0)


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_the_deque_view_goes_through_the_monitor(store, request):
    """``backend_events`` appends are checked, scrubbed, tagged and counted like any event, on
    either store: a dict gets its side, the other side is refused, own traffic is not counted."""
    url = request.getfixturevalue("redis_server").url if store == "redis" else "memory"
    monitor = LiveExecutionMonitor({"store": url, "self_monitor": False})
    backend = monitor.backend_events
    backend.append(stored_event(action="GET /api/orders/1"))
    backend.append({"component": "db", "action": "query", "duration_ms": 3.0, "details": {"password": "x"}})
    backend.append(stored_event(action="GET /api/live-execution/data"))
    assert len(backend) == 3
    assert [e.component for e in backend] == ["http", "db", "http"]
    assert backend[1].details == {"password": "[Filtered]"}
    assert backend[2].is_self  # the monitor's own API, tagged where every event enters
    assert monitor.store.window_stats().backend.total.count == 2
    with pytest.raises(ValueError, match="frontend event"):
        backend.append(stored_event(service="frontend"))
