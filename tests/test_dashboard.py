"""Real-browser tests of live_execution_dashboard.html against a real monitor process.

Each test starts ``live_execution_monitor.py --port 0`` as a subprocess, drives the dashboard in
Chromium (Playwright) and checks what a user would see: counts, alerts, the event stream and its
filters, how figures are formatted, that hostile event fields stay text, and that a scroll box
with rows hidden below fades its bottom edge until scrolled to the end. The charts are tested in
test_dashboard_charts.py, how the page reaches its monitor in test_dashboard_connection.py.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.helpers import (
    BACKEND_RGB,
    FRONTEND_RGB,
    ROOT,
    MonitorProcess,
    Tab,
    event,
    orders_batch,
    table_row,
)

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = "<img src=x onerror=alert(1)>"


def busy_app_batch() -> list[dict[str, Any]]:
    """A few endpoints with a slow browser-side cart, failures and a call the backend never sees."""
    events = []
    for i in range(30):
        failed = i % 10 == 0
        status = "error" if failed else "success"
        code = 500 if failed else 200
        events.append(event("backend", "http", "POST /api/cart", 38.0 + i % 7 * 3, status, http_status=code))
        events.append(
            event("frontend", "api", "POST /api/cart", 410.0 + i % 5 * 20, status, http_status=code)
        )
    for i in range(15):
        events.append(event("backend", "http", "GET /api/products", 60.0 + i % 4 * 9, http_status=200))
        events.append(event("frontend", "click", "button#add-to-cart", None))
    for i in range(12):
        events.append(event("frontend", "api", "GET /api/recommendations", 95.0 + i, http_status=200))
    events.append(event("frontend", "Cart", "mount", 18.5))
    return events


def test_dashboard_shows_live_counts_charts_alerts_and_stream(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    expect(page.locator("#banner-stopped")).to_be_visible()
    expect(page.locator("#alerts")).to_contain_text("Click Start Monitoring")
    expect(page.locator("#hint-frontend")).to_contain_text("No frontend events yet")
    expect(page.locator("#start-btn")).to_be_enabled()
    expect(page.locator("#stop-btn")).to_be_disabled()
    legend_only = tab.chart_pixels("chart-performance", BACKEND_RGB)["colored"]
    assert tab.chart_pixels("chart-success-backend", BACKEND_RGB)["colored"] == 0

    page.click("#start-btn")
    expect(page.locator("#state-pill")).to_have_text("Monitoring")
    expect(page.locator("#start-btn")).to_be_disabled()
    expect(page.locator("#stop-btn")).to_be_enabled()
    expect(page.locator("#banner-stopped")).to_be_hidden()
    assert monitor_server.get("/status")["monitoring"] is True

    monitor_server.post_events(orders_batch())
    expect(page.locator("#metric-backend")).to_have_text("20")
    expect(page.locator("#metric-frontend")).to_have_text("20")
    expect(page.locator("#metric-uptime")).to_have_text(re.compile(r"^0:\d\d$"))
    expect(page.locator("#hint-frontend")).to_be_hidden()
    expect(table_row(page, "comparison-table", "Average duration")).to_contain_text("125 ms")
    expect(table_row(page, "comparison-table", "Average duration")).to_contain_text("75.0 ms")
    expect(table_row(page, "comparison-table", "Performance ratio")).to_contain_text("1.67×")
    endpoint = page.locator('#endpoint-table tr[data-key="GET /api/orders/:id"]')
    expect(endpoint).to_contain_text("20 / 20")
    expect(endpoint).to_contain_text("125 ms / 125 ms")
    expect(endpoint).to_contain_text("75.0 ms / 75.0 ms")
    expect(endpoint).to_contain_text("-50.0 ms")

    alert = page.locator('.alert.sev-high[data-type="performance"]')
    expect(alert).to_contain_text("Performance difference")
    expect(alert).to_contain_text("whole service")
    expect(alert).to_contain_text("66.7% apart")
    expect(alert).to_contain_text("avg 125 ms")
    expect(alert).to_contain_text("avg 75.0 ms")
    found = monitor_server.get("/differences")["count"]
    expect(page.locator("#metric-differences")).to_have_text(str(found))
    expect(page.locator("#alerts .alert")).to_have_count(found)

    page.wait_for_function(
        """() => Chart.getChart(document.getElementById("chart-activity"))
              .data.datasets.map(d => d.data.reduce((a, b) => a + b, 0)).join() === "20,20" """
    )
    page.wait_for_function(
        """() => Chart.getChart(document.getElementById("chart-system")).data.labels.length >= 3"""
    )
    assert tab.chart_pixels("chart-performance", BACKEND_RGB)["colored"] > legend_only + 1000
    assert tab.chart_pixels("chart-performance", FRONTEND_RGB)["colored"] > legend_only + 500
    assert tab.chart_pixels("chart-success-backend", BACKEND_RGB)["colored"] > 1000
    assert tab.chart_pixels("chart-success-frontend", FRONTEND_RGB)["colored"] > 1000
    for canvas in ("chart-activity", "chart-system", "chart-io"):
        assert tab.chart_pixels(canvas, BACKEND_RGB)["painted"] > 0, canvas
    assert tab.chart_data("chart-performance")["data"] == [[125, 125, 125], [75, 75, 75]]

    rows = page.locator("#event-table tbody tr")
    expect(rows).to_have_count(40)
    monitor_server.post_events(
        [event("frontend", "api", "POST /api/checkout", 310.0, "error", http_status=502)]
    )
    expect(rows.first).to_contain_text("POST /api/checkout")
    expect(rows.first).to_contain_text("310 ms")
    expect(rows.first).to_contain_text("error")
    expect(page.locator("#metric-frontend")).to_have_text("21")

    monitor_server.post_events(busy_app_batch())
    expect(
        page.locator('.alert[data-type="performance"] code.scope', has_text="POST /api/cart")
    ).to_be_visible()
    expect(
        page.locator('.alert[data-type="pattern"] code.scope', has_text="GET /api/recommendations")
    ).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.click("#stop-btn")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    expect(page.locator("#start-btn")).to_be_enabled()
    assert monitor_server.get("/status")["monitoring"] is False
    tab.assert_clean()
    tab.assert_requests_only_to(monitor_server.url + "/")


def test_hostile_event_fields_are_shown_as_text(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    hostile_key = "GET /<img src=x onerror=alert(3)>"
    monitor_server.post_events(
        [event("frontend", "click", HOSTILE, None, note="<b>bold</b><script>alert(2)</script>")]
        + [event("frontend", "<script>alert(4)</script>", "mount", 5.0)]
        + [event("backend", "http", "GET /api/items", 20.0) for _ in range(10)]
        + [event("frontend", "api", hostile_key, 30.0) for _ in range(10)]
    )
    stream = page.locator("#event-table tbody")
    expect(stream.locator("td.action", has_text=HOSTILE)).to_have_text(HOSTILE)
    expect(stream).to_contain_text("note=<b>bold</b><script>alert(2)</script>")
    expect(page.locator(f'#endpoint-table tr[data-key="{hostile_key}"] code')).to_have_text(hostile_key)
    expect(page.locator("#alerts code.scope", has_text=hostile_key).first).to_have_text(hostile_key)
    expect(page.locator("#filter-component option", has_text="<script>alert(4)</script>")).to_have_count(1)

    assert page.locator("img").count() == 0
    assert page.locator("b").count() == 0
    scripts = page.eval_on_selector_all("script", "nodes => nodes.map(n => n.getAttribute('src'))")
    assert scripts == [
        "static/vendor/chart.umd.js",
        "static/live-monitor.js",
        "static/dashboard-format.js",
        "static/dashboard-charts.js",
        "static/dashboard-filter.js",
        "static/dashboard.js",
        "static/dashboard-endpoint.js",
    ]
    tab.assert_clean()


def test_event_stream_filters_limit_and_pause(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    requests.post(f"{monitor_server.api}/start", timeout=10).raise_for_status()
    expect(page.locator("#state-pill")).to_have_text("Monitoring")  # started elsewhere (curl)
    expect(page.locator("#stop-btn")).to_be_enabled()
    monitor_server.post_events(
        [event("backend", "http", "GET /api/a", 10.0) for _ in range(6)]
        + [event("frontend", "api", "GET /api/a", 40.0, "error", http_status=500) for _ in range(4)]
        + [event("frontend", "click", "button#buy", None) for _ in range(3)]
    )
    rows = page.locator("#event-table tbody tr")
    expect(rows).to_have_count(13)

    page.select_option("#filter-service", "frontend")
    expect(rows).to_have_count(7)
    expect(page.locator('#event-table tbody tr[data-service="backend"]')).to_have_count(0)
    page.select_option("#filter-status", "error")
    expect(rows).to_have_count(4)
    page.select_option("#filter-status", "")
    page.select_option("#filter-component", "click")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("button#buy")
    page.select_option("#filter-component", "")
    page.select_option("#filter-service", "")

    page.fill("#event-limit", "5")
    page.press("#event-limit", "Enter")
    expect(rows).to_have_count(5)
    expect(page.locator("#events-note")).to_contain_text("of the last 5")

    page.click("#pause-btn")
    expect(page.locator("#pause-btn")).to_have_text("Resume")
    monitor_server.post_events([event("backend", "http", "DELETE /api/late", 12.0)])
    expect(page.locator("#metric-backend")).to_have_text("7")  # figures keep updating
    expect(page.locator("#event-table tbody")).not_to_contain_text("DELETE /api/late")
    page.click("#pause-btn")
    expect(page.locator("#pause-btn")).to_have_text("Pause")
    expect(rows.first).to_contain_text("DELETE /api/late")

    page.select_option("#filter-service", "frontend")
    page.select_option("#filter-status", "error")
    page.select_option("#filter-component", "click")
    expect(rows).to_have_count(0)
    expect(page.locator("#events-empty")).to_have_text("No events match the filters.")
    tab.assert_clean()


def test_api_call_rows_compare_the_same_requests_and_the_sentence_follows_them(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    """Slow web vitals make the browser look far slower over all events; on the same API calls
    it waits 1.5x the server's time, and that is what the closing sentence says once both sides
    have API calls (as the "Execution differences" card compares API calls only)."""
    page = tab.page
    monitor_server.post_events(
        [event("backend", "db", "SELECT orders", 5.0) for _ in range(20)]
        + [event("frontend", "web-vitals", "LCP", 2400.0) for _ in range(10)]
    )
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    summary = page.locator("#comparison-summary")
    expect(summary).to_have_text("Frontend operations take 480× as long as backend ones on average.")
    api_average = table_row(page, "comparison-table", "API call average")
    expect(api_average.locator("td")).to_have_text(["–", "–", "–"])  # no API calls on either side yet
    basis = page.locator("#comparison-table tbody th", has_text="What the differences compare")
    expect(basis).to_have_text("What the differences compare: all events")

    monitor_server.post_events(
        [event("backend", "http", "GET /api/orders/:id", d, http_status=200) for d in [40.0, 80.0] * 10]
    )
    expect(basis).to_have_text("What the differences compare: nothing")  # the server's calls alone
    monitor_server.post_events(
        [event("frontend", "api", "GET /api/orders/:id", d, http_status=200) for d in [70.0, 110.0] * 10]
    )
    expect(api_average.locator("td")).to_have_text(["60.0 ms", "90.0 ms", "-30.0 ms"])
    expect(table_row(page, "comparison-table", "API call p95").locator("td")).to_have_text(
        ["80.0 ms", "110 ms", "-30.0 ms"]
    )
    expect(table_row(page, "comparison-table", "API calls in window").locator("td")).to_have_text(
        ["20", "20", "–"]
    )
    # (20 x 5 ms + 20 calls x 60 ms) / 40 on the server; (10 x 2400 ms + 20 calls x 90 ms) / 30 in the browser
    everything = table_row(page, "comparison-table", "Average duration").locator("td")
    expect(everything.nth(0)).to_have_text("32.5 ms")
    expect(everything.nth(1)).to_have_text("860 ms")
    # Each group of rows sits under a header that says what its figures cover.
    expect(page.locator("#comparison-table tbody th")).to_have_text(
        [
            "All events of each side",
            "Average duration",
            "p95 duration",
            "Success rate",
            "Events per minute",
            "Events in window",
            "The same API calls, seen from both sides",
            "API call average",
            "API call p95",
            "API calls in window",
            "What the differences compare: API calls",
            "Performance ratio",
            "Activity ratio",
            "Success difference",
            "Events by kind of work",
            "API calls (compared)",
            "Pages and static files",
            "Outgoing calls (dependencies)",
            "Clicks, vitals, page loads, other",
        ]
    )
    expect(summary).to_have_text(
        "The browser waits 1.50× as long as the server works on the same API calls, on average."
    )
    expect(summary).not_to_contain_text("operations")
    tab.assert_clean()


SEED_SIDES = {"backend": (1247, 125.0, 250.0, 0.98, 15.0), "frontend": (2156, 75.0, 180.0, 0.955, 25.0)}
SYSTEM_FIELDS = "cpu_percent memory_percent disk_read_bytes_per_s disk_write_bytes_per_s".split()
SYSTEM_FIELDS += ["net_sent_bytes_per_s", "net_recv_bytes_per_s"]


def seed_sample(real: dict[str, Any], uptime: float, points: int) -> dict[str, Any]:
    """A real /data answer carrying the README's sample figures and long histories."""
    data = copy.deepcopy(real)
    for side, (total, avg, p95, success, per_minute) in SEED_SIDES.items():
        data[side].update(total_events=total, window_events=total, avg_duration_ms=avg, p95_duration_ms=p95)
        data[side].update(success_rate=success, events_per_minute=per_minute)
    data["comparison"]["performance_ratio"] = 1.67
    data.update(monitoring=False, uptime_seconds=uptime)
    start = time.time() - points
    data["system_history"] = [
        {"timestamp": start + i, **dict.fromkeys(SYSTEM_FIELDS, 10.0)} for i in range(points)
    ]
    data["activity_history"] = [{"timestamp": start + i, "backend": 1, "frontend": 2} for i in range(points)]
    data.update(differences=SEED_DIFFERENCES, differences_count=2, thresholds={"min_samples": 10})
    return data


def seed_difference(
    type_: str, severity: str, backend: dict[str, Any], frontend: dict[str, Any]
) -> dict[str, Any]:
    """One service-scope Difference as /differences and /data report it."""
    return {
        "type": type_,
        "severity": severity,
        "scope": "service",
        "key": None,
        "backend": backend,
        "frontend": frontend,
        "difference_pct": 66.7,
        "message": f"The {type_} differs.",
    }


SEED_DIFFERENCES = [
    seed_difference("performance", "high", {"avg_ms": 125.0}, {"avg_ms": 75.0}),
    seed_difference("activity", "medium", {"events": 15}, {"events": 25}),
]


def test_readme_sample_figures_are_formatted(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    real = monitor_server.get("/data")
    answer = {"data": seed_sample(real, 323, 1000)}
    page.route(f"{monitor_server.api}/data*", lambda route: route.fulfill(json=answer["data"]))
    page.goto(f"{monitor_server.url}/")
    expect(page.locator("#refresh-seconds")).to_have_text("2")
    expect(page.locator("#api-base")).to_have_text(monitor_server.url)
    expect(page.locator("#metric-backend")).to_have_text("1,247")
    expect(page.locator("#metric-frontend")).to_have_text("2,156")
    expect(page.locator("#metric-differences")).to_have_text("2")
    expect(page.locator("#metric-uptime")).to_have_text("5:23")
    expect(table_row(page, "comparison-table", "Performance ratio")).to_contain_text("1.67×")
    expect(table_row(page, "comparison-table", "Success rate")).to_contain_text("95.5%")
    expect(table_row(page, "comparison-table", "Events per minute")).to_contain_text("15.0/min")
    high = page.locator('.alert.sev-high[data-type="performance"]')
    expect(high.locator("dt")).to_have_text(["Backend", "Frontend"])
    expect(high.locator("dd")).to_have_text(["avg 125 ms", "avg 75.0 ms"])
    medium = page.locator('.alert.sev-medium[data-type="activity"]')
    expect(medium).to_contain_text("Activity level difference")
    expect(medium.locator("dd")).to_have_text(["events 15", "events 25"])
    # Charts keep at most 300 points a series, whatever the API sends.
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-activity')).data.labels.length === 300"
    )
    assert len(tab.chart_data("chart-io")["data"][0]) == 300

    answer["data"] = seed_sample(real, 3725, 10)
    expect(page.locator("#metric-uptime")).to_have_text("1:02:05")
    tab.assert_clean()
    tab.assert_requests_only_to(monitor_server.url + "/")


def test_bad_query_parameters_fall_back_with_a_warning(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor_server.url}/?api=javascript:alert(1)&refresh=0&events=x")
    warning = page.locator("#banner-config")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("?api=javascript:alert(1) is not an http(s) URL")
    expect(warning).to_contain_text("?refresh= must be between")
    expect(warning).to_contain_text("?events= must be a whole number")
    expect(page.locator("#api-base")).to_have_text(monitor_server.url)
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    expect(page.locator("#event-limit")).to_have_value("50")
    tab.assert_clean()


PAGE_READS = (
    "monitoring uptime_seconds backend frontend comparison endpoints system_history activity_history "
    "differences thresholds"
)
SIDE_READS = "total_events window_events avg_duration_ms p50_duration_ms p95_duration_ms success_rate"


def test_data_has_every_field_the_page_reads(monitor_server: MonitorProcess) -> None:
    """Guards against a silent drift between /data and what dashboard.js reads."""
    data = monitor_server.get("/data?limit=5&history=5&include_self=false")
    assert set(PAGE_READS.split()) | {"recent_events", "window_seconds"} <= set(data)
    for side in ("backend", "frontend"):
        reads = set(SIDE_READS.split()) | {"events_per_minute", "error_count", "components"}
        assert reads <= set(data[side]), side
        assert {"count", "avg_duration_ms", "p95_duration_ms"} <= set(data[side]["api_calls"]), side


def test_overflowing_boxes_show_there_is_more_below(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    monitor_server.post_events([event("backend", "http", "GET /api/a", 10.0) for _ in range(60)])
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    expect(page.locator("#event-table tbody tr")).to_have_count(50)
    stream = page.locator(".scroll-frame", has=page.locator("#event-table"))
    endpoints = page.locator(".scroll-frame", has=page.locator("#endpoint-table"))
    fade = "(frame) => getComputedStyle(frame, '::after').opacity"
    expect(stream).to_have_class(re.compile(r"\bmore-below\b"))
    assert stream.evaluate(fade) == "1"
    expect(endpoints).not_to_have_class(re.compile(r"\bmore-below\b"))  # one row: nothing hidden
    assert endpoints.evaluate(fade) == "0"
    box = stream.locator(".table-scroll")
    box.evaluate("(box) => box.scrollTo(0, box.scrollHeight)")
    expect(stream).not_to_have_class(re.compile(r"\bmore-below\b"))
    assert stream.evaluate(fade) == "0"
    box.evaluate("(box) => box.scrollTo(0, 0)")
    expect(stream).to_have_class(re.compile(r"\bmore-below\b"))
    tab.assert_clean()
