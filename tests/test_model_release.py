"""Events' optional ``release`` and ``environment``: checked on ingest, set by OTLP resources (the
official Python SDK's ``Resource``) and by backend_logging_config, and the views filtered by
them: /data, /differences and the drill-down on both stores, and the report's --release and
--baseline-release (the previous release as the baseline)."""

from __future__ import annotations

import json
import logging
import random
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from flask import Flask
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import backend_logging_config as blc
import execution_difference_report as report
from live_monitor.model.events import ExecutionEvent, decode_batch
from live_monitor.vocabulary import API, EVENTS_PATH, OTLP_LOGS_PATH, OTLP_TRACES_PATH
from tests.helpers import ROOT, wait_for

KEY = "GET /api/orders/:id"
T0 = datetime.now(UTC) - timedelta(minutes=5)


def pair(
    i: int, release: str, server_ms: float, environment: str = "production", gap_ms: float = 20.0
) -> list[dict[str, Any]]:
    """One request seen from both sides of ``release``: the browser waits ``gap_ms`` longer than the server."""
    at = (T0 + timedelta(milliseconds=10 * i)).isoformat()
    trace, span = f"{i + 1:032x}", f"{i + 1:016x}"
    labels = {"release": release, "environment": environment}
    browser = {"component": "api", "action": f"GET /api/orders/{i}", "duration_ms": server_ms + gap_ms}
    server = {
        "component": "http",
        "action": KEY,
        "duration_ms": server_ms,
        "details": {"route": "/api/orders/:id"},
    }
    return [
        {"timestamp": at, "service": "frontend", **browser, "trace_id": trace, "span_id": span, **labels},
        {
            "timestamp": at,
            "service": "backend",
            **server,
            "trace_id": trace,
            "parent_span_id": span,
            **labels,
        },
    ]


def two_releases(n: int = 60, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` requests of release 1.0 (the server ~20 ms, the browser 20 ms more) and ``n`` of 1.1
    in staging, whose server takes ~200 ms and whose browser waits ~400 ms more (a gap)."""
    r = random.Random(seed)
    events = []
    for i in range(n):
        events += pair(2 * i, "1.0", r.uniform(15, 25))
        events += pair(2 * i + 1, "1.1", r.uniform(180, 220), "staging", r.uniform(380, 420))
    return events


# -- the model ---------------------------------------------------------------------------------


def test_release_and_environment_are_optional_and_checked_like_component():
    base = {"service": "backend", "component": "http", "action": "GET /x"}
    body = [
        {**base, "release": "1.4.2", "environment": "production"},
        base,
        {**base, "release": ""},
        {**base, "environment": "e" * 65},
        {**base, "release": 7},
    ]
    result = decode_batch(json.dumps(body).encode())
    assert [(e.release, e.environment) for e in result.events] == [("1.4.2", "production"), (None, None)]
    assert [e["error"] for e in result.errors] == [
        "events[2].release: must not be empty",
        "events[3].environment: must be at most 64 characters",
        "events[4].release: must be text or null, got int",
    ]
    assert ExecutionEvent(**base, release="r" * 200).release == "r" * 200  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="release: must be text of 1 to 200 characters"):
        ExecutionEvent(**base, release="r" * 201)  # type: ignore[arg-type]


# -- the live views, filtered ------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def store_client(request: pytest.FixtureRequest) -> Any:
    settings = {"store": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    app: Flask = request.getfixturevalue("make_app")(settings)
    client = app.test_client()
    answer = client.post(EVENTS_PATH, json=two_releases()).json
    assert answer["accepted"] == 240, answer
    return client


def row(data: dict[str, Any]) -> dict[str, Any]:
    [found] = [r for r in data["endpoints"] if r["key"] == KEY]
    return found


def test_data_filtered_by_release_counts_that_releases_events_only(store_client):
    everything = store_client.get(f"{API}/data").json
    old = store_client.get(f"{API}/data?release=1.0").json
    new = store_client.get(f"{API}/data?release=1.1&environment=staging").json
    assert "filter" not in everything and row(everything)["backend"]["count"] == 120
    assert (row(old)["backend"]["count"], row(new)["backend"]["count"]) == (60, 60)
    assert row(old)["backend"]["p50_ms"] < 30 < 150 < row(new)["backend"]["p50_ms"]
    assert {e["release"] for e in new["recent_events"]} == {"1.1"}
    assert new["filter"] == {
        "release": "1.1",
        "environment": "staging",
        "scanned": 240,
        "matched_backend": 60,
        "matched_frontend": 60,
        "covers_window": True,
    }
    # the browser's calls are keyed by the server's routes and joined by trace, as unfiltered
    assert row(new)["frontend"]["count"] == 60 and row(new)["matched_requests"] == 60
    assert store_client.get(f"{API}/data?release=1.0&environment=staging").json["endpoints"] == []


def test_a_filter_that_matches_every_event_gives_the_unfiltered_figures(make_app):
    client = make_app({}).test_client()
    events = [e for e in two_releases() if e["release"] == "1.1"]
    assert client.post(EVENTS_PATH, json=events).json["accepted"] == 120
    plain, filtered = (client.get(f"{API}/data{q}").json for q in ("", "?environment=staging"))
    assert filtered["endpoints"] == plain["endpoints"]
    assert filtered["comparison"] == plain["comparison"]
    assert filtered["differences"] == plain["differences"]


def test_a_filtered_view_says_when_the_store_no_longer_holds_its_whole_window(make_app):
    client = make_app({"max_events": 100}).test_client()
    assert client.post(EVENTS_PATH, json=two_releases(n=40)).json["accepted"] == 160
    note = client.get(f"{API}/data?release=1.1").json["filter"]
    assert (note["matched_backend"], note["covers_window"]) == (40, True)  # 80 of 100 kept: all
    assert client.post(EVENTS_PATH, json=two_releases(n=20, seed=8)).json["accepted"] == 80
    note = client.get(f"{API}/data?release=1.1").json["filter"]
    assert (note["scanned"], note["covers_window"]) == (200, False)  # 20 a side were evicted


def test_differences_and_the_drill_down_filtered_by_release(store_client):
    def gap_differences(query: str) -> list[dict[str, Any]]:
        found = store_client.get(f"{API}/differences{query}").json["differences"]
        return [d for d in found if d["key"] == KEY]

    drilled = store_client.get(f"{API}/endpoints/{quote(KEY, safe='')}?release=1.1").json
    assert drilled["backend"]["figures"]["count"] == 60 and drilled["filter"]["release"] == "1.1"
    assert drilled["backend"]["latency"]["p50_ms"] > 150
    assert len(drilled["slowest"]) == 10 and drilled["scanned"]["matched"] == 60
    assert store_client.get(f"{API}/endpoints/{quote(KEY, safe='')}?release=2.0").status_code == 404
    assert gap_differences("?release=1.0") == []  # the browser waits 20 ms more: no gap
    assert [d["type"] for d in gap_differences("?release=1.1&environment=staging")] == ["performance"]
    assert store_client.get(f"{API}/differences?release=1.1").json["filter"]["matched_backend"] == 60


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("release=", "release must be 1 to 200 characters"),
        ("environment=" + "e" * 65, "environment must be 1 to 64"),
    ],
)
def test_a_filter_no_event_can_match_is_a_400(client, query, message):
    for path in ("/data", "/differences", f"/endpoints/{quote(KEY, safe='')}"):
        answer = client.get(f"{API}{path}?{query}")
        assert answer.status_code == 400 and message in answer.json["error"], (path, answer.json)


# -- where the fields come from ----------------------------------------------------------------


def test_an_otel_resources_service_version_and_deployment_environment_become_the_events(client):
    exporter = InMemorySpanExporter()
    spans: list[Any] = []
    for attrs in (
        {"service.name": "shop", "service.version": "2.0.1", "deployment.environment.name": "staging"},
        {"service.name": "shop", "service.version": "2.0.0", "deployment.environment": "production"},
        {"service.name": "old"},
    ):
        provider = TracerProvider(resource=Resource.create(attrs))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests")
        span_attrs = {
            "http.request.method": "GET",
            "http.route": "/api/orders/{id}",
            "url.path": "/api/orders/1",
        }
        with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes=span_attrs):
            pass
        spans += exporter.get_finished_spans()
        exporter.clear()
    body = encode_spans(spans).SerializeToString()
    answer = client.post(OTLP_TRACES_PATH, data=body, headers={"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 200
    events = client.get(f"{API}/data").json["recent_events"]
    labels = {(e["release"], e["environment"]) for e in events if e["component"] == "http"}
    assert labels == {("2.0.1", "staging"), ("2.0.0", "production"), (None, None)}
    staging = client.get(f"{API}/data?environment=staging").json
    assert [e["release"] for e in staging["recent_events"]] == ["2.0.1"]


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_an_otel_log_records_resource_gives_its_release_too(client):
    records = InMemoryLogRecordExporter()
    resource = Resource.create({"service.version": "2.0.1", "deployment.environment": "staging"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    logger = logging.getLogger("tests.release.otel")
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.warning("paid", extra={"component": "checkout", "action": "pay"})
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    body = encode_logs(records.get_finished_logs()).SerializeToString()
    answer = client.post(OTLP_LOGS_PATH, data=body, headers={"Content-Type": "application/x-protobuf"})
    assert answer.status_code == 200
    [event] = client.get(f"{API}/data?release=2.0.1&environment=staging").json["recent_events"]
    assert (event["component"], event["action"]) == ("checkout", "pay")


@pytest.mark.usefixtures("restore_logging_globals")
def test_backend_logging_config_stamps_its_release_on_every_event_it_sends(monitor_server, monkeypatch):
    monkeypatch.setenv("LIVE_MONITOR_ENVIRONMENT", "canary")  # taken when no argument names one
    log = blc.configure_logging(monitor_url=monitor_server.url, logger_name="release-test", release="3.1.0")
    app = Flask(__name__)

    @app.get("/api/orders/<int:order_id>")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    client = blc.init_app(app, monitor_server.url)
    assert client.labels == {"release": "3.1.0", "environment": "canary"}
    assert app.test_client().get("/api/orders/7").status_code == 200
    log.info("paid", extra={"component": "checkout", "action": "pay", "duration_ms": 12.0})
    client.record({"component": "db", "action": "query", "release": "own"})  # an event's own wins
    assert client.flush(10)

    def sent() -> list[dict[str, Any]]:
        return monitor_server.get("/data?release=3.1.0&environment=canary")["recent_events"]

    assert wait_for(lambda: len(sent()) == 2, timeout=10)
    assert sorted(e["component"] for e in sent()) == ["checkout", "http"]
    assert [e["component"] for e in monitor_server.get("/data?release=own")["recent_events"]] == ["db"]
    with pytest.raises(ValueError, match="release must be text of 1 to 200 characters"):
        blc.init_app(app, monitor_server.url, release="")
    with pytest.raises(ValueError, match="environment must be text of 1 to 64 characters"):
        blc.configure_logging(environment="e" * 65)  # checked with or without a monitor


# -- the report --------------------------------------------------------------------------------


def test_the_report_compares_a_release_with_the_previous_one_from_the_same_files(tmp_path: Path, capsys):
    events = two_releases(n=120)
    r = random.Random(3)
    events += [e for i in range(120) for e in pair(1000 + i, "1.0.1", r.uniform(15, 25))]  # as 1.0
    data = tmp_path / "events.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in events))
    files = ["--backend-data", str(data), "--frontend-data", str(data), "--format", "json"]

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        code = report.main([*files, *args, "--output", str(tmp_path / "r.json"), "--fail-on", "high"])
        return code, json.loads((tmp_path / "r.json").read_text())

    code, bad = run("--release", "1.1", "--baseline-release", "1.0")
    assert code == report.EXIT_FAIL_ON
    assert bad["summary"]["source"]["filter"] == {"release": "1.1"}
    assert bad["summary"]["backend"]["total_events"] == 120
    assert bad["baseline"]["baseline"]["filter"] == {"release": "1.0"}
    regressions = {
        (c["key"], c["side"], c["metric"]) for c in bad["baseline"]["changes"] if c["verdict"] == "regression"
    }
    assert (KEY, "backend", "p50_ms") in regressions
    code, same = run("--release", "1.0.1", "--baseline-release", "1.0")
    assert code == report.EXIT_OK
    assert [c for c in same["baseline"]["changes"] if c["verdict"] == "regression"] == []
    assert report.main(["--baseline-release", "1.0"]) == report.EXIT_USAGE  # a monitor has no files
    assert "--baseline-release reads events" in capsys.readouterr().err


def test_the_report_asks_a_monitor_for_one_releases_figures(monitor_server, tmp_path: Path):
    monitor_server.post_events(two_releases())
    out = tmp_path / "r.json"
    argv = ["--url", monitor_server.url, "--release", "1.1", "--format", "json", "--output", str(out)]
    assert report.main(argv) == report.EXIT_OK
    found = json.loads(out.read_text())
    assert found["summary"]["source"]["filter"]["matched_backend"] == 60
    [row_] = [r for r in found["summary"]["endpoints"] if r["key"] == KEY]
    assert row_["backend"]["count"] == 60 and row_["backend"]["p50_ms"] > 150
    assert requests.get(f"{monitor_server.api}/data?release=", timeout=5).status_code == 400


def test_the_readmes_release_commands_are_the_reports_own():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"^python execution_difference_report\.py (.*--(?:baseline-)?release .+)$", text, re.M)
    assert len(lines) == 2
    for line in lines:
        args = report.build_parser().parse_args(shlex.split(line))
        assert args.release == "1.5.0"
