"""The report's trace join (live_monitor/tools/report.py): event files of real traces pair as
the live monitor's stores pair them (policy.TraceJoin), ids read from the files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from live_monitor.model.stats import PairStats
from live_monitor.model.thresholds import Thresholds
from live_monitor.tools.report import build_stats, report_from_files
from live_monitor.vocabulary import Service

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(service: str, component: str, action: str, ms: float, at: float, **ids: str) -> dict[str, Any]:
    """One event of the trace ``TRACE`` as a file holds it, ``at`` seconds after T0."""
    return {
        "timestamp": (T0 + timedelta(seconds=at)).isoformat(),
        "service": service,
        "component": component,
        "action": action,
        "duration_ms": ms,
        "trace_id": TRACE,
        **ids,
    }


def write(
    tmp_path: Path, backend: list[dict[str, Any]], frontend: list[dict[str, Any]]
) -> list[tuple[Path, Service]]:
    """The two sides' event files (JSON Lines), as the report takes them."""
    sources: list[tuple[Path, Service]] = [
        (tmp_path / "be.jsonl", "backend"),
        (tmp_path / "fe.jsonl", "frontend"),
    ]
    for (path, _), events in zip(sources, (backend, frontend), strict=True):
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return sources


def stats_of(tmp_path: Path, backend: list[dict[str, Any]], frontend: list[dict[str, Any]]) -> PairStats:
    return build_stats(write(tmp_path, backend, frontend))


def page_with_three_calls() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One page trace: three browser calls to a route, each request calling a payment provider
    that reports here too. Each span starts after its parent; the browser's call is slowest."""
    backend, frontend = [], []
    for i, name in enumerate(["alice", "bob", "carol"]):
        call, request, outgoing = f"b{i}" * 8, f"5{i}" * 8, f"c{i}" * 8
        frontend.append(span("frontend", "api", f"GET /api/users/{name}", 300.0 + i, i, span_id=call))
        backend += [
            span(
                "backend",
                "http",
                "GET /api/users/:name",
                100.0,
                i + 0.01,
                span_id=request,
                parent_span_id=call,
            ),
            span(
                "backend",
                "http-client",
                "GET payments.example.com/v1/charges/:id",
                60.0,
                i + 0.02,
                span_id=outgoing,
                parent_span_id=request,
            ),
            span(
                "backend",
                "http",
                "GET /v1/charges/:id",
                50.0,
                i + 0.03,
                span_id=f"d{i}" * 8,
                parent_span_id=outgoing,
            ),
        ]
    return backend, frontend


def test_files_of_a_page_trace_pair_each_call_with_its_request_under_the_servers_key(tmp_path):
    backend, frontend = page_with_three_calls()
    stats = stats_of(tmp_path, backend, frontend)
    ((key, gaps),) = stats.trace_gaps.items()
    assert key == "GET /api/users/:name" and gaps.count == 3
    assert (gaps.quantile(0.0), gaps.quantile(1.0)) == (200.0, 202.0)  # each call with its own request
    # The browser's calls start first, so each was read (and counted) before its request.
    assert set(stats.frontend.endpoints) == {f"GET /api/users/{n}" for n in ("alice", "bob", "carol")}


def test_the_reports_endpoint_row_counts_the_matched_requests(tmp_path):
    sources = write(tmp_path, *page_with_three_calls())
    rows = {row["key"]: row for row in report_from_files(sources, Thresholds())["summary"]["endpoints"]}
    assert rows["GET /api/users/:name"]["matched_requests"] == 3
    assert rows["GET /v1/charges/:id"]["matched_requests"] == 0  # the provider's request is no browser call's


def test_a_browser_call_read_after_its_request_is_counted_under_the_servers_key(tmp_path):
    """A browser whose clock runs behind, or a logger that stamps a call when it ends."""
    backend = [
        span("backend", "http", "GET /api/users/:name", 100.0, 1.0, span_id="5" * 16, parent_span_id="b" * 16)
    ]
    frontend = [span("frontend", "api", "GET /api/users/alice", 250.0, 2.0, span_id="b" * 16)]
    stats = stats_of(tmp_path, backend, frontend)
    assert set(stats.frontend.endpoints) == {"GET /api/users/:name"}
    assert stats.trace_gaps["GET /api/users/:name"].quantile(0.5) == 150.0
