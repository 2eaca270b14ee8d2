from __future__ import annotations

import json

import msgspec
import pytest

from live_monitor.model.comparator import compare, comparison, endpoint_rows, level, summarize
from live_monitor.model.stats import PairStats
from live_monitor.model.thresholds import Thresholds

# The JSON keys of a difference, in the order /differences, /data and the report write them.
DIFFERENCE_KEYS = [
    "type",
    "severity",
    "scope",
    "key",
    "backend",
    "frontend",
    "difference_pct",
    "message",
    "samples",
    "confidence",
]


def fill(stats: PairStats, service: str, component: str, action: str, durations, errors: int = 0) -> None:
    side = stats.side(service)
    for i, d in enumerate(durations):
        side.add(component, action, d, i < errors, 0.0)


def only(diffs, **match):
    found = [d for d in diffs if all(getattr(d, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, diffs)
    return found[0]


def test_readme_activity_example_is_medium():
    """Neither side has API calls (the seed's components), so every event of each side counts."""
    stats = PairStats()
    fill(stats, "backend", "orders", "create", [None] * 15)
    fill(stats, "frontend", "checkout", "submit", [None] * 25)
    diff = only(compare(stats), type="activity")
    assert diff.severity == "medium"
    assert diff.scope == "service" and diff.key is None
    assert diff.backend["events"] == 15 and diff.frontend["events"] == 25
    assert diff.difference_pct == 66.7


def test_readme_performance_example_is_high():
    stats = PairStats()
    fill(stats, "backend", "db", "query", [125.0] * 20)
    fill(stats, "frontend", "Cart", "mount", [75.0] * 20)
    diff = only(compare(stats), type="performance")
    assert diff.severity == "high"
    assert diff.difference_pct == 66.7
    assert diff.backend["avg_ms"] == 125.0 and diff.frontend["avg_ms"] == 75.0
    assert "Backend" in diff.message
    assert comparison(stats)["performance_ratio"] == pytest.approx(1.67)


def test_every_difference_has_the_contract_shape():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [20.0] * 30, errors=10)
    fill(stats, "frontend", "api", "GET /x", [950.0] * 30)
    fill(stats, "frontend", "api", "GET /ghost", [40.0] * 30)
    diffs = compare(stats)
    assert diffs
    for d, written in zip(diffs, json.loads(msgspec.json.encode(diffs)), strict=True):
        assert list(written) == DIFFERENCE_KEYS
        assert d.type in {"activity", "performance", "error_rate", "pattern"}
        assert d.severity in {"low", "medium", "high"}
        assert d.scope in {"service", "endpoint"}
        assert (d.key is None) == (d.scope == "service")
        assert isinstance(d.message, str) and d.message
    severities = [d.severity for d in diffs]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)


def test_nothing_is_flagged_on_too_few_samples():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [125.0] * 9)
    fill(stats, "frontend", "api", "GET /x", [2000.0] * 9)
    assert compare(stats) == []
    assert compare(stats, Thresholds(min_samples=5)) != []


def test_normal_network_overhead_on_an_endpoint_is_not_an_alarm():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/orders/:id", [20.0 + i % 5 for i in range(50)])
    fill(stats, "frontend", "api", "GET /api/orders/:id", [55.0 + i % 5 for i in range(50)])
    assert [d for d in compare(stats) if d.scope == "endpoint"] == []


def test_a_900_ms_gap_on_an_endpoint_is_high():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/orders/:id", [40.0] * 50)
    fill(stats, "frontend", "api", "GET /api/orders/:id", [940.0] * 50)
    diff = only(compare(stats), type="performance", scope="endpoint")
    assert diff.key == "GET /api/orders/:id"
    assert diff.severity == "high"
    assert diff.frontend["gap_p50_ms"] == pytest.approx(900, rel=0.02)
    row = endpoint_rows(stats)[0]
    assert row["gap_p50_ms"] == pytest.approx(900, rel=0.02)
    assert row["seen_by"] == "both"


def test_trace_joined_gaps_are_preferred_to_medians():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [40.0] * 20)
    fill(stats, "frontend", "api", "GET /x", [640.0] * 20)
    for _ in range(20):
        stats.add_gap("GET /x", 600.0)
    diff = only(compare(stats), type="performance", scope="endpoint")
    assert "joined by trace id" in diff.message
    assert endpoint_rows(stats)[0]["matched_requests"] == 20


def test_backend_errors_the_ui_hides_are_an_endpoint_error_rate_difference():
    stats = PairStats()
    fill(stats, "backend", "http", "POST /api/cart", [30.0] * 100, errors=25)
    fill(stats, "frontend", "api", "POST /api/cart", [60.0] * 100)
    diff = only(compare(stats), type="error_rate", scope="endpoint")
    assert diff.severity == "high"
    assert diff.backend["error_rate"] == 0.25 and diff.frontend["error_rate"] == 0.0
    assert diff.difference_pct == 25.0


def test_an_endpoint_the_backend_never_sees_is_a_pattern_difference():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [10.0] * 30)
    fill(stats, "frontend", "api", "GET /x", [40.0] * 30)
    fill(stats, "frontend", "api", "GET /api/legacy", [40.0] * 30)
    diff = only(compare(stats), type="pattern", scope="endpoint")
    assert diff.key == "GET /api/legacy"
    assert diff.severity in {"medium", "high"}
    service = only(compare(stats), type="pattern", scope="service")
    assert service.difference_pct == 50.0


def test_one_sided_keys_need_the_other_side_instrumented():
    stats = PairStats()
    fill(stats, "frontend", "api", "GET /x", [40.0] * 30)
    fill(stats, "backend", "db", "query", [1.0] * 30)
    assert [d for d in compare(stats) if d.type == "pattern"] == []


def test_untimed_events_do_not_move_the_averages():
    stats = PairStats()
    fill(stats, "backend", "db", "query", [100.0] * 20)
    fill(stats, "frontend", "Cart", "mount", [100.0] * 20)
    fill(stats, "frontend", "click", "button", [None] * 20)
    assert [d for d in compare(stats) if d.type == "performance"] == []


def test_thresholds_are_configurable(tmp_path):
    stats = PairStats()
    fill(stats, "backend", "db", "query", [125.0] * 20)
    fill(stats, "frontend", "Cart", "mount", [75.0] * 20)
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"performance_pct": [100, 200, 300]}))
    assert [d for d in compare(stats, Thresholds.from_file(path)) if d.type == "performance"] == []
    path.write_text(json.dumps({"nonsense": 1}))
    with pytest.raises(ValueError, match="nonsense"):
        Thresholds.from_file(path)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), (10, None), (25, "low"), (50, "medium"), (1000, "high")]
)
def test_level(value, expected):
    assert level(value, (25, 50, 100)) == expected


def test_service_performance_compares_api_calls_when_both_sides_have_them():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [40.0] * 30)
    fill(stats, "backend", "db", "query", [2.0] * 300)
    fill(stats, "frontend", "api", "GET /x", [440.0] * 30)
    fill(stats, "frontend", "page", "load", [1800.0] * 30)
    diff = only(compare(stats), type="performance", scope="service")
    assert diff.backend["avg_ms"] == 40.0 and diff.frontend["avg_ms"] == 440.0
    assert "API calls" in diff.message


def test_a_normal_network_gap_is_no_difference_when_page_loads_and_db_queries_are_about():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /x", [40.0] * 30)
    fill(stats, "backend", "db", "query", [2.0] * 300)
    fill(stats, "frontend", "api", "GET /x", [65.0] * 30)
    fill(stats, "frontend", "page", "load", [1800.0] * 30)
    assert [d for d in compare(stats) if d.type == "performance"] == []


# The README's clean sample traffic: three endpoints, the browser ~34 ms behind the server on
# every call (backend average ~68 ms, browser ~102 ms), no anomaly.
ENDPOINTS = {"GET /api/products": 30.0, "GET /api/search": 60.0, "GET /api/orders/:id": 115.0}


def traffic(
    stats: PairStats,
    gap_ms: float,
    *,
    calls: int = 100,
    traced: bool = True,
    slow_key: str | None = None,
    slow_gap_ms: float = 0.0,
) -> None:
    """Both sides of ``calls`` requests per endpoint; the browser sees each ``gap_ms`` (+0-8 ms) later."""
    for key, base in ENDPOINTS.items():
        backend = [base * (0.8 + 0.04 * (i % 11)) for i in range(calls)]
        gaps = [gap_ms + i % 9 + (slow_gap_ms if key == slow_key else 0.0) for i in range(calls)]
        fill(stats, "backend", "http", key, backend)
        fill(stats, "frontend", "api", key, [b + g for b, g in zip(backend, gaps, strict=True)])
        for g in gaps if traced else []:
            stats.add_gap(key, g)


@pytest.mark.parametrize("traced", [True, False], ids=["joined-by-trace-id", "medians-only"])
def test_a_uniform_normal_network_gap_is_not_a_service_performance_difference(traced):
    stats = PairStats()
    traffic(stats, 30.0, traced=traced)
    assert stats.backend.api.timed.mean == pytest.approx(68.3, abs=1)
    assert stats.frontend.api.timed.mean == pytest.approx(102.3, abs=1)
    assert [d for d in compare(stats) if d.type == "performance"] == []


def test_a_browser_300_ms_behind_the_server_everywhere_is_high_at_service_scope():
    stats = PairStats()
    traffic(stats, 300.0)
    diffs = compare(stats)
    service = only(diffs, type="performance", scope="service")
    assert service.severity == "high"
    assert service.message.startswith("Frontend API calls take longer on average")
    assert service.frontend["avg_ms"] == pytest.approx(372.3, abs=1)
    # Only the gap the endpoint rule always lets pass is forgiven as network, not all 300 ms.
    assert service.frontend["network_gap_ms"] == Thresholds().endpoint_gap_ms[0]
    endpoint = [d for d in diffs if d.type == "performance" and d.scope == "endpoint"]
    assert sorted(d.key or "" for d in endpoint) == sorted(ENDPOINTS)
    assert {d.severity for d in endpoint} == {"medium"}  # ~304 ms: medium by ms, high by %


def test_one_slow_endpoint_does_not_raise_the_network_allowance():
    stats = PairStats()
    traffic(stats, 30.0, slow_key="GET /api/orders/:id", slow_gap_ms=1000.0)
    diffs = compare(stats)
    assert only(diffs, type="performance", key="GET /api/orders/:id").severity == "high"
    service = only(diffs, type="performance", scope="service")
    assert service.severity == "high"
    assert service.frontend["network_gap_ms"] == pytest.approx(34, abs=1)
    assert "34 ms of it the usual network gap" in service.message


def test_a_backend_slower_than_the_browser_sees_is_flagged_at_service_scope():
    stats = PairStats()
    traffic(stats, 30.0)
    # The busiest endpoint's server time is twice what the browser waits for it.
    fill(stats, "backend", "http", "GET /api/cart", [300.0 + i % 7 for i in range(300)])
    fill(stats, "frontend", "api", "GET /api/cart", [150.0 + i % 7 for i in range(300)])
    diffs = compare(stats)
    service = only(diffs, type="performance", scope="service")
    # ~186 ms against ~128 ms: 45% apart (medium) and 58 ms (high) make a medium difference.
    assert service.difference_pct == pytest.approx(45.4, abs=1)
    assert service.severity == "medium"
    assert service.message.startswith("Backend API calls take longer on average")
    assert "network_gap_ms" not in service.frontend  # nothing was taken off the browser's side
    assert [d for d in diffs if d.type == "performance" and d.scope == "endpoint"] == []


@pytest.mark.parametrize(
    "content",
    [
        [1, 2, 3],
        {"min_samples": "x"},
        {"min_samples": 0},
        {"activity_pct": [1, 2]},
        {"activity_pct": [3, 2, 1]},
    ],
)
def test_unusable_threshold_files_are_refused(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError):
        Thresholds.from_file(path)


def test_an_endpoint_with_too_few_samples_is_not_judged_even_when_the_service_is():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /busy", [40.0] * 50)
    fill(stats, "frontend", "api", "GET /busy", [60.0] * 50)
    fill(stats, "backend", "http", "GET /rare", [40.0] * 5, errors=4)
    fill(stats, "frontend", "api", "GET /rare", [2000.0] * 2)
    assert [d for d in compare(stats) if d.key == "GET /rare"] == []


def test_the_summary_carries_the_api_calls_of_each_side_apart_from_all_events():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/orders/:id", [40.0, 80.0] * 10)
    fill(stats, "backend", "db", "SELECT orders", [5.0] * 20)
    fill(stats, "backend", "log", "INFO orders", [None] * 5)
    fill(stats, "frontend", "api", "GET /api/orders/:id", [70.0, 110.0] * 10 + [None])
    fill(stats, "frontend", "web-vitals", "LCP", [2400.0] * 10)
    backend, frontend = summarize(stats.backend), summarize(stats.frontend)
    assert backend["api_calls"] == {"count": 20, "avg_duration_ms": 60.0, "p95_duration_ms": 80.0}
    # The untimed call counts as a call but not in the durations.
    assert frontend["api_calls"] == {"count": 21, "avg_duration_ms": 90.0, "p95_duration_ms": 110.0}
    # The other figures still cover every event of the side, as before.
    assert backend["total_events"] == 45 and backend["timed_events"] == 40
    assert backend["avg_duration_ms"] == 32.5
    assert frontend["total_events"] == 31 and frontend["avg_duration_ms"] == 860.0
    json.dumps(backend)


def test_a_side_without_api_calls_has_null_api_figures():
    stats = PairStats()
    fill(stats, "frontend", "web-vitals", "LCP", [2400.0] * 3)
    none = {"count": 0, "avg_duration_ms": None, "p95_duration_ms": None}
    assert summarize(stats.frontend)["api_calls"] == none
    assert summarize(stats.backend)["api_calls"] == none
