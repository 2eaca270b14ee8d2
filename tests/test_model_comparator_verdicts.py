"""The comparator on real traffic's shapes: like for like, tails, error rates with confidence, sampling."""

from __future__ import annotations

import pytest

from live_monitor.model.comparator import (
    ONE_SIDED,
    compare,
    comparison,
    endpoint_rows,
    is_page_or_asset,
    summaries,
)
from live_monitor.model.events import ExecutionEvent
from live_monitor.model.stats import PairStats
from live_monitor.vocabulary import severity_rank

API_KEYS = ("GET /api/items/:id", "POST /api/cart", "GET /api/search")


def fill(stats: PairStats, service: str, component: str, action: str, durations, errors: int = 0, rate=None):
    side = stats.side(service)
    for i, d in enumerate(durations):
        side.add(component, action, d, i < errors, 0.0, rate)


def serious(diffs):
    return [(d.type, d.severity, d.key) for d in diffs if severity_rank(d.severity) >= 2]


def healthy_page(stats: PairStats) -> None:
    """A small page: 15 API calls, all matched by trace (5 per endpoint), one error on each side;
    the browser's clicks, vitals and page loads; the server's page, script and favicon."""
    for n, key in enumerate(API_KEYS):
        be = [18.0 + i for i in range(5)]
        fe = [60.0 + 3 * i for i in range(5)]
        fill(stats, "backend", "http", key, be, errors=1 if n == 0 else 0)
        fill(stats, "frontend", "api", key, fe, errors=1 if n == 1 else 0)
        for b, f in zip(be, fe, strict=True):
            stats.add_gap(key, f - b)
    fill(stats, "frontend", "click", "button#buy", [None] * 12)
    fill(stats, "frontend", "web-vitals", "LCP", [1800.0, 2100.0, 1500.0, 1900.0])
    fill(stats, "frontend", "web-vitals", "CLS", [None] * 4)
    fill(stats, "frontend", "page", "load", [2400.0, 2600.0, 2300.0, 2500.0])
    fill(stats, "frontend", "scroll", "scroll", [None] * 5)
    fill(stats, "backend", "http", "GET /", [4.0])
    fill(stats, "backend", "http", "GET /static/app.js", [2.0])
    fill(stats, "backend", "http", "GET /favicon.ico", [1.0])


def test_healthy_mixed_traffic_raises_no_medium_or_high_difference():
    stats = PairStats()
    healthy_page(stats)
    assert serious(compare(stats)) == []
    assert comparison(stats)["basis"] == "API calls"
    assert comparison(stats)["activity_ratio"] == 1.0  # 15 API calls each, not 18 vs 44 events


def test_the_page_noise_is_reported_by_kind_of_work():
    stats = PairStats()
    healthy_page(stats)
    backend, frontend = summaries(stats)
    assert backend["api_calls"]["count"] == 15
    assert backend["work"] == {"api_calls": 15, "pages_and_assets": 3, "dependencies": 0, "other": 0}
    assert frontend["work"] == {"api_calls": 15, "pages_and_assets": 0, "dependencies": 0, "other": 29}
    kinds = {r["key"]: r["work"] for r in endpoint_rows(stats)}
    assert kinds["GET /favicon.ico"] == "pages_and_assets" and kinds["GET /api/search"] == "api_calls"


def test_a_busy_asset_is_no_pattern_and_a_key_the_browser_calls_is_an_api_call():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/x", [20.0] * 30)
    fill(stats, "frontend", "api", "GET /api/x", [50.0] * 30)
    fill(stats, "backend", "http", "GET /static/app.js", [2.0] * 400)  # cache misses galore
    fill(stats, "backend", "http", "GET /data.json", [5.0] * 30)
    fill(stats, "frontend", "api", "GET /data.json", [30.0] * 30)
    diffs = compare(stats)
    assert [d for d in diffs if d.key == "GET /static/app.js"] == []
    assert not [d for d in diffs if d.type == "activity"]  # 60 API calls each side
    assert summaries(stats)[0]["api_calls"]["count"] == 60


def test_dependencies_are_reported_never_compared_with_browser_calls():
    stats = PairStats()
    fill(stats, "backend", "http", "POST /api/pay", [300.0] * 20)
    fill(stats, "backend", "http-client", "POST payments.example.com/v1/charges", [250.0] * 20)
    fill(stats, "frontend", "api", "POST /api/pay", [330.0] * 20)
    assert serious(compare(stats)) == []
    assert summaries(stats)[0]["work"]["dependencies"] == 20


def test_page_rule():
    pages = ["GET /", "GET /index.html", "GET /static/x", "GET /assets/app.css", "GET /favicon.ico"]
    apis = ["GET /api/users/:id", "POST /checkout", "GET /(other)", "GET /api/v1.2/items"]
    assert all(is_page_or_asset(k) for k in pages)
    assert not any(is_page_or_asset(k) for k in apis)


def test_without_api_calls_on_both_sides_every_event_is_compared():
    stats = PairStats()
    fill(stats, "backend", "orders", "create", [125.0] * 20)
    fill(stats, "frontend", "checkout", "submit", [75.0] * 20)
    assert comparison(stats)["basis"] == "operations"
    assert [(d.type, d.severity) for d in compare(stats)] == [("performance", "high")]


def seed_example_with_api_calls_on(side: str) -> PairStats:
    """The seed's figures (15 vs 25 events, 125 vs 75 ms) where only ``side`` logs API calls, and
    a third of the backend's events fail: a browser whose logger does not capture its calls, or a
    server that logs only its queries."""
    stats = PairStats()
    be_component, be_action = ("http", "GET /api/orders") if side == "backend" else ("db", "SELECT orders")
    fe_component, fe_action = ("api", "GET /api/orders") if side == "frontend" else ("page", "load")
    fill(stats, "backend", be_component, be_action, [125.0] * 15, errors=5)
    fill(stats, "frontend", fe_component, fe_action, [75.0] * 25)
    return stats


@pytest.mark.parametrize("side", ["backend", "frontend"])
def test_with_api_calls_on_one_side_only_no_side_is_busier_slower_or_failing_more(side):
    stats = seed_example_with_api_calls_on(side)
    assert [d for d in compare(stats) if d.scope == "service" and d.type != "pattern"] == []
    figures = comparison(stats)
    assert figures["basis"] == ONE_SIDED == "none: one side has no API calls"
    assert figures["performance_ratio"] == 1.67 and figures["activity_ratio"] == 0.6  # still reported
    backend, frontend = summaries(stats)
    assert (backend["total_events"], frontend["total_events"]) == (15, 25)
    assert {r["key"] for r in endpoint_rows(stats)} == {"GET /api/orders"}


def test_the_seeds_figures_without_api_calls_on_either_side_keep_their_severities():
    stats = PairStats()
    fill(stats, "backend", "orders", "create", [125.0] * 15, errors=5)
    fill(stats, "frontend", "checkout", "submit", [75.0] * 25)
    assert comparison(stats)["basis"] == "operations"
    found = {d.type: d.severity for d in compare(stats)}
    assert found["activity"] == "medium" and found["performance"] == "high" and "error_rate" in found


def sampled_browser(server_calls: int, sampled_calls: int) -> PairStats:
    """One endpoint: every server request logged, the browser's calls sampled at 0.1."""
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/x", [20.0] * server_calls)
    fill(stats, "frontend", "api", "GET /api/x", [60.0] * sampled_calls, rate=0.1)
    return stats


def test_a_one_in_ten_sample_that_came_out_low_is_not_a_busier_backend():
    """150 calls each side: a 10% sample expects 15 of the browser's and gets 10 (as likely as
    one in eight), which stands for 100 calls: 50% apart, but well within the sample's chance."""
    stats = sampled_browser(150, 10)
    assert [d for d in compare(stats) if d.type == "activity"] == []
    assert comparison(stats)["activity_ratio"] == 1.5  # the estimate is still reported
    exact = PairStats()  # the same gap counted, not estimated, is a difference
    fill(exact, "backend", "http", "GET /api/x", [20.0] * 150)
    fill(exact, "frontend", "api", "GET /api/x", [60.0] * 100)
    assert {(d.scope, d.severity) for d in compare(exact) if d.type == "activity"} == {
        ("service", "medium"),
        ("endpoint", "medium"),
    }


def test_a_real_threefold_gap_behind_a_one_in_ten_sample_is_found_and_sure():
    stats = sampled_browser(900, 30)  # the browser's 30 sampled calls stand for 300
    activity = {d.scope: d for d in compare(stats) if d.type == "activity"}
    assert set(activity) == {"service", "endpoint"}
    for diff in activity.values():
        assert diff.severity == "high"
        assert diff.confidence is not None and diff.confidence >= 0.99
        assert diff.samples == {"backend": 900, "frontend": 30}
    browser = activity["service"].frontend
    assert browser["events"] == 300 and browser["sampled_events"] == 30


def tail_traffic(stats: PairStats, calls: int, slow: int, extra_ms: float) -> str:
    key = "GET /api/report"
    fill(stats, "backend", "http", key, [20.0 + i % 5 for i in range(calls)])
    fill(
        stats, "frontend", "api", key, [60.0 + i % 5 + (extra_ms if i < slow else 0.0) for i in range(calls)]
    )
    return key


def test_a_tail_only_slowdown_is_a_performance_difference_on_its_endpoint():
    stats = PairStats()
    key = tail_traffic(stats, 100, 10, 1500.0)  # 10 of 100 calls 1.5 s longer; the median is fine
    only = [d for d in compare(stats) if d.type == "performance" and d.key == key]
    assert len(only) == 1
    diff = only[0]
    assert diff.severity == "medium"
    assert "tail-only" in diff.message and "10 of 100 calls" in diff.message
    assert diff.frontend["slow_calls"] == 10
    assert diff.frontend["gap_p95_ms"] > 1000 and diff.frontend["gap_p50_ms"] < 100
    assert diff.samples == {"backend": 100, "frontend": 100}


def test_a_tail_of_joined_requests_is_judged_on_their_gaps():
    stats = PairStats()
    key = tail_traffic(stats, 40, 4, 2500.0)
    for i in range(40):
        stats.add_gap(key, 40.0 + (2500.0 if i < 4 else 0.0))
    diff = [d for d in compare(stats) if d.key == key][0]
    assert diff.severity == "high"
    assert "4 of 40 calls" in diff.message and "joined by trace id" in diff.message


def test_a_p99_tail_counts_on_enough_calls_and_a_lone_slow_call_does_not():
    stats = PairStats()
    key = tail_traffic(stats, 150, 3, 3000.0)  # 2% of calls: above the p95, within the p99
    assert [d.severity for d in compare(stats) if d.key == key] == ["medium"]
    lone = PairStats()
    tail_traffic(lone, 30, 1, 5000.0)
    assert compare(lone) == []


def hidden_errors(errors: int, calls: int) -> PairStats:
    stats = PairStats()
    fill(stats, "backend", "http", "POST /api/cart", [30.0] * calls, errors=errors)
    fill(stats, "frontend", "api", "POST /api/cart", [60.0] * calls)
    return stats


def test_seven_hidden_server_errors_in_120_calls_are_at_least_medium_on_the_endpoint():
    diff = [d for d in compare(hidden_errors(7, 120)) if d.type == "error_rate" and d.key][0]
    assert diff.severity == "medium"
    assert diff.samples == {"backend": 120, "frontend": 120}
    assert diff.confidence is not None and 0.95 <= diff.confidence < 0.99
    assert "7 of 120" in diff.message


def test_one_error_in_twelve_calls_stays_quiet():
    assert [d for d in compare(hidden_errors(1, 12)) if d.type == "error_rate"] == []


def test_a_browser_sampled_at_one_in_ten_is_not_ten_times_quieter():
    stats = PairStats()
    fill(stats, "backend", "http", "GET /api/x", [20.0] * 200)
    fill(stats, "frontend", "api", "GET /api/x", [60.0] * 20, rate=0.1)
    diffs = compare(stats)
    assert [d for d in diffs if d.type == "activity"] == []
    assert comparison(stats)["activity_ratio"] == 1.0
    assert summaries(stats)[1]["estimated_events"] == 200.0
    unweighted = PairStats()
    fill(unweighted, "backend", "http", "GET /api/x", [20.0] * 200)
    fill(unweighted, "frontend", "api", "GET /api/x", [60.0] * 20)
    assert {d.severity for d in compare(unweighted) if d.type == "activity"} == {"high"}


def test_batched_counting_weighs_sampled_events_as_single_adds_do():
    events = [
        ExecutionEvent(service="frontend", component=c, action=a, duration_ms=50.0, sample_rate=r)
        for c, a, r in [("api", "GET /api/x", 0.25), ("api", "GET /api/x", None), ("click", "b", 0.5)]
    ]
    batched = PairStats()
    batched.frontend.add_events(events, 0.0, 0.0)
    single = PairStats()
    for e in events:
        single.frontend.add(e.component, e.action, e.duration_ms, False, 0.0, e.sample_rate)
    for stats in (batched, single):
        assert stats.frontend.total.estimated == 4 + 1 + 2
        assert stats.frontend.endpoints["GET /api/x"].estimated == 5
        assert stats.frontend.api.estimated == 5
        # The variance of an estimated count: the sum of the squared weights.
        assert stats.frontend.total.estimated_variance == 16 + 1 + 4
        assert stats.frontend.api.estimated_variance == 16 + 1


def test_every_difference_says_what_it_rests_on():
    stats = hidden_errors(25, 100)
    for d in compare(stats):
        assert set(d.samples) == {"backend", "frontend"}
        assert d.confidence is None or 0 <= d.confidence <= 1
