"""One set of events, three readers: /data, /differences and the report give the same differences,
on the memory store and on Redis (whose counting path keeps sampled weights too)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from live_monitor.model.thresholds import Thresholds
from live_monitor.tools.report import report_from_files
from live_monitor.vocabulary import Service
from tests.helpers import verdict_call as call
from tests.helpers import verdict_traffic as traffic


def verdicts(diffs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d["type"], d["severity"], d["key"], d["samples"], d["confidence"]) for d in diffs]


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The store under test: memory, or a real redis-server (started before the app, so stopped after it)."""
    return "memory" if request.param == "memory" else request.getfixturevalue("redis_server").url


def test_data_differences_and_the_report_agree(store_url: str, make_app: Callable[..., Any], tmp_path: Path):
    backend, frontend = traffic()
    client = make_app({"store": store_url}).test_client()
    for events in (backend, frontend):
        assert client.post("/api/live-execution/events", json=events).status_code == 200
    data = client.get("/api/live-execution/data?limit=0").get_json()
    answer = client.get("/api/live-execution/differences").get_json()
    files: list[tuple[Path, Service]] = []
    sides: list[tuple[Service, list[dict[str, Any]]]] = [("backend", backend), ("frontend", frontend)]
    for name, events in sides:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        files.append((path, name))
    report = report_from_files(files, Thresholds())
    live = verdicts(data["differences"])
    assert live == verdicts(answer["differences"]) == verdicts(report["differences"])
    found = {(t, k): s for t, s, k, *_ in live}
    assert found[("error_rate", "POST /api/cart")] in {"medium", "high"}
    assert found[("performance", "GET /api/report")] in {"medium", "high"}
    assert found[("pattern", "GET /api/legacy")] in {"medium", "high"}
    assert not [k for t, k in found if k and k.startswith("GET /static")]
    assert "activity" not in {t for t, _ in found}  # 260 vs 290 API calls; the page noise not counted
    # The card's figures, the table's and the report's come from one summary.
    for side in ("backend", "frontend"):
        assert data[side]["api_calls"] == report["summary"][side]["api_calls"]
        assert data[side]["work"] == report["summary"][side]["work"]
    assert data["backend"]["api_calls"]["count"] == 260 and data["frontend"]["api_calls"]["count"] == 290
    assert data["comparison"]["basis"] == report["summary"]["comparison"]["basis"] == "API calls"
    rows = {r["key"]: r for r in data["endpoints"]}
    assert rows["GET /favicon.ico"]["work"] == "pages_and_assets"
    assert rows["GET /api/report"]["matched_requests"] == 100


def test_a_sampled_browser_is_not_quieter_in_either_store(store_url: str, make_app: Callable[..., Any]):
    client = make_app({"store": store_url}).test_client()
    backend = [call("backend", "GET /api/x", 20.0, i, None) for i in range(200)]
    frontend = [call("frontend", "GET /api/x", 60.0, i, None, sample_rate=0.1) for i in range(20)]
    for side in (backend, frontend):
        assert client.post("/api/live-execution/events", json=side).status_code == 200
    data = client.get("/api/live-execution/data?limit=0").get_json()
    assert data["frontend"]["estimated_events"] == 200.0
    assert data["comparison"]["activity_ratio"] == 1.0
    assert [d for d in data["differences"] if d["type"] == "activity"] == []
