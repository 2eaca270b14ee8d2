from __future__ import annotations

import gzip

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.stats import MAX_SERIES_KEYS, OTHER
from live_monitor.web.metrics import DURATION_BOUNDS_MS
from tests.helpers import FakeClock, FakeReader, reading

API = "/api/live-execution"
KEY = "GET /api/orders/:id"


def scrape(client, **headers):
    """{(sample name, sorted labels): value} of one /metrics answer."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def event(service, duration_ms, action=KEY, **fields):
    component = "http" if service == "backend" else "api"
    return {
        "service": service,
        "component": component,
        "action": action,
        "duration_ms": duration_ms,
        **fields,
    }


def expected_buckets(durations_ms):
    """Cumulative counts a Prometheus histogram of these durations has, by le label."""
    out = {str(b / 1000): sum(d <= b for d in durations_ms) for b in DURATION_BOUNDS_MS}
    out["+Inf"] = len(durations_ms)
    return out


def histogram(samples, name, **labels):
    return {
        dict(key)["le"]: v
        for key_name, key in samples
        if key_name == f"{name}_bucket"
        for v in [samples[(key_name, key)]]
        if {k: val for k, val in key if k != "le"} == labels
    }


def test_counters_and_duration_histograms_match_the_events_posted(make_app):
    client = make_app().test_client()
    backend_ms, frontend_ms = [3, 5, 40, 100, 120], [20, 60, 300, 800]
    batch = [event("backend", d, status="error" if d == 120 else "success") for d in backend_ms]
    batch += [event("frontend", d) for d in frontend_ms]
    batch += [
        {"service": "frontend", "component": "click", "action": "Buy"},
        event("backend", -1),  # invalid: rejected
    ]
    assert client.post(f"{API}/events", json=batch).json["rejected"] == 1

    samples = scrape(client)
    assert value(samples, "live_monitor_events_total", service="backend", status="success") == 4
    assert value(samples, "live_monitor_events_total", service="backend", status="error") == 1
    assert value(samples, "live_monitor_events_total", service="frontend", status="success") == 5
    assert value(samples, "live_monitor_events_total", service="frontend", status="error") == 0
    assert value(samples, "live_monitor_ingest_received_total") == 11
    assert value(samples, "live_monitor_ingest_accepted_total") == 10
    assert value(samples, "live_monitor_ingest_rejected_total") == 1
    assert value(samples, "live_monitor_window_errors", service="backend") == 1
    assert value(samples, "live_monitor_window_errors", service="frontend") == 0
    assert value(samples, "live_monitor_window_events", service="frontend") == 5
    assert value(samples, "live_monitor_window_timed_events", service="frontend") == 4

    for service, durations in (("backend", backend_ms), ("frontend", frontend_ms)):
        name = "live_monitor_duration_seconds"
        assert histogram(samples, name, service=service) == expected_buckets(durations)
        assert value(samples, f"{name}_count", service=service) == len(durations)
        assert value(samples, f"{name}_sum", service=service) == pytest.approx(sum(durations) / 1000)
        name = "live_monitor_endpoint_duration_seconds"
        assert histogram(samples, name, service=service, endpoint=KEY) == expected_buckets(durations)
        name = "live_monitor_window_duration_percentile_seconds"
        assert value(samples, name, service=service, percentile="99") == max(durations) / 1000
    assert value(samples, "live_monitor_window_endpoint_errors", service="backend", endpoint=KEY) == 1


def test_requests_both_sides_saw_give_the_browser_minus_server_gap(make_app):
    client = make_app().test_client()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    client.post(
        f"{API}/events",
        json=[event("backend", 40, trace_id=trace), event("frontend", 300, trace_id=trace)],
    )
    samples = scrape(client)
    gaps = histogram(samples, "live_monitor_trace_gap_seconds", endpoint=KEY)
    assert gaps == expected_buckets([260])
    assert value(samples, "live_monitor_window_trace_pairs", endpoint=KEY) == 1
    percentile = "live_monitor_window_trace_gap_percentile_seconds"
    assert value(samples, percentile, endpoint=KEY, percentile="95") == pytest.approx(0.26)


def test_the_histograms_keep_counting_when_the_window_slides_and_events_are_evicted():
    """Counters only go up (rate() needs that); the window's gauges go back down."""
    from live_execution_monitor import create_app

    clock = FakeClock()
    monitor = LiveExecutionMonitor(
        {"self_monitor": False, "window": 60, "max_events": 2}, reader=FakeReader([]), clock=clock
    )
    app = create_app({"self_monitor": False}, monitor)
    client = app.test_client()
    client.post(f"{API}/events", json=[event("backend", d) for d in (30, 30, 700)])
    clock.advance(600)
    client.post(f"{API}/events", json=[event("backend", 30, status="error")])
    samples = scrape(client)
    assert value(samples, "live_monitor_window_events", service="backend") == 1
    assert value(samples, "live_monitor_stored_events", service="backend") == 2
    assert histogram(samples, "live_monitor_duration_seconds", service="backend") == expected_buckets(
        [30, 30, 700, 30]
    )
    assert value(samples, "live_monitor_events_total", service="backend", status="success") == 3
    assert value(samples, "live_monitor_events_total", service="backend", status="error") == 1
    monitor.stop()


def test_system_gauges_show_the_latest_sample(make_app):
    clock = FakeClock()
    reader = FakeReader(
        [
            reading(cpu_percent=12.5, memory_percent=40.0, disk_read_bytes=1000, net_recv_bytes=0),
            reading(
                cpu_percent=30.0,
                memory_percent=41.5,
                disk_read_bytes=9000,
                net_recv_bytes=4000,
                process_rss_bytes=123_456_789,
            ),
        ]
    )
    monitor = LiveExecutionMonitor({"self_monitor": False}, reader=reader, clock=clock)
    client = make_app(monitor=monitor).test_client()
    assert not any(name.startswith("live_monitor_system_") for name, _ in scrape(client))

    monitor.sampler.tick()
    clock.advance(2.0)
    monitor.sampler.tick()
    samples = scrape(client)
    assert value(samples, "live_monitor_system_cpu_percent") == 30.0
    assert value(samples, "live_monitor_system_memory_percent") == 41.5
    assert value(samples, "live_monitor_system_disk_read_bytes_per_second") == 4000.0
    assert value(samples, "live_monitor_system_network_received_bytes_per_second") == 2000.0
    assert value(samples, "live_monitor_process_resident_memory_bytes") == 123_456_789
    assert value(samples, "live_monitor_system_sample_timestamp_seconds") == clock.now


def test_the_monitoring_gauge_follows_start_and_stop(make_app):
    client = make_app().test_client()
    assert value(scrape(client), "live_monitor_monitoring") == 0
    client.post(f"{API}/start")
    assert value(scrape(client), "live_monitor_monitoring") == 1
    client.post(f"{API}/stop")
    assert value(scrape(client), "live_monitor_monitoring") == 0


def test_evicted_events_are_counted_per_service(make_app):
    client = make_app({"max_events": 3}).test_client()
    client.post(f"{API}/events", json=[event("backend", d) for d in range(1, 6)])
    samples = scrape(client)
    assert value(samples, "live_monitor_ingest_evicted_total", service="backend") == 2
    assert value(samples, "live_monitor_ingest_evicted_total", service="frontend") == 0
    assert value(samples, "live_monitor_stored_events", service="backend") == 3
    assert value(samples, "live_monitor_events_total", service="backend", status="success") == 5


def test_endpoint_labels_stay_bounded_however_many_paths_arrive(make_app):
    client = make_app().test_client()
    batch = [event("backend", 5, action=f"GET /api/search/q{i}") for i in range(MAX_SERIES_KEYS + 100)]
    assert client.post(f"{API}/events", json=batch).json["accepted"] == MAX_SERIES_KEYS + 100
    samples = scrape(client)
    for family in ("live_monitor_endpoint_duration_seconds_count", "live_monitor_window_endpoint_events"):
        endpoints = {dict(labels)["endpoint"] for name, labels in samples if name == family}
        assert len(endpoints) == MAX_SERIES_KEYS + 1 and OTHER in endpoints, family
        assert value(samples, family, service="backend", endpoint=OTHER) == 100
    assert (
        value(
            samples,
            "live_monitor_endpoint_duration_seconds_count",
            service="backend",
            endpoint="GET /api/search/q0",
        )
        == 1
    )


def test_the_differences_gauge_counts_what_differences_reports(make_app):
    client = make_app().test_client()
    batch = [event("backend", 125) for _ in range(15)] + [event("frontend", 75) for _ in range(25)]
    client.post(f"{API}/events", json=batch)
    found = client.get(f"{API}/differences").json["differences"]
    assert found, "the README's example must produce differences"
    samples = scrape(client)
    for kind in ("activity", "performance", "error_rate", "pattern"):
        for severity in ("low", "medium", "high"):
            expected = sum(1 for d in found if d["type"] == kind and d["severity"] == severity)
            assert value(samples, "live_monitor_differences", type=kind, severity=severity) == expected


def test_a_token_protects_the_metrics(make_app):
    client = make_app({"token": "s3cret"}).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    samples = scrape(client, Authorization="Bearer s3cret")
    assert value(samples, "live_monitor_monitoring") == 0


def test_each_app_has_its_own_registry(make_app):
    first, second = make_app().test_client(), make_app().test_client()
    first.post(f"{API}/events", json=[event("backend", 10)])
    assert value(scrape(first), "live_monitor_events_total", service="backend", status="success") == 1
    assert value(scrape(second), "live_monitor_events_total", service="backend", status="success") == 0
    assert b"live_monitor_" not in generate_latest(REGISTRY)


def test_openmetrics_and_gzip_are_negotiated(make_app):
    client = make_app().test_client()
    client.post(f"{API}/events", json=[event("backend", 30)])
    response = client.get(
        "/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.mimetype == "application/openmetrics-text"
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.get_data()).decode()
    families = {f.name: f for f in openmetrics_families(text)}
    durations = families["live_monitor_duration_seconds"]
    assert durations.type == "histogram"
    counts = [s for s in durations.samples if s.name.endswith("_count")]
    assert {s.labels["service"]: s.value for s in counts} == {"backend": 1, "frontend": 0}
    assert families["live_monitor_events"].type == "counter"
    assert families["live_monitor_window_duration_percentile_seconds"].type == "gauge"
