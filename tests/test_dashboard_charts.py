"""Real-browser tests of the dashboard's Chart.js charts against a real monitor process.

They check what the numbers alone cannot: that a chart is redrawn only when its figures change,
that the I/O axis stays readable for tiny and huge rates, and that smoothed lines never swing
past their samples.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.helpers import (
    MonitorProcess,
    Tab,
    event,
    orders_batch,
)

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)


COUNT_CHART_DRAWS = """() => {
    window.chartDraws = [];
    window.dataPolls = 0;
    const update = Chart.prototype.update;
    Chart.prototype.update = function (mode) {
        if (mode !== "resize") window.chartDraws.push(this.canvas.id);  // resizes are Chart.js's own
        return update.apply(this, arguments);
    };
    const fetch = window.fetch;
    window.fetch = function (url, ...rest) {
        if (String(url).includes("/api/live-execution/data?")) window.dataPolls += 1;
        return fetch.call(this, url, ...rest);
    };
}"""


def test_charts_are_redrawn_only_when_their_figures_change(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    monitor_server.post_events(orders_batch(12))
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    page.wait_for_function(
        """() => Chart.getChart(document.getElementById("chart-performance")).data.datasets[0].data[0] === 125"""
    )
    page.evaluate(COUNT_CHART_DRAWS)
    # A poll starts only after the one before it has rendered, so the 6th start means 5 renders.
    page.wait_for_function("() => window.dataPolls >= 6")
    assert page.evaluate("window.chartDraws") == []
    # /data carries them: one request a poll (the history timeline reads its own resource)
    assert [u for u in tab.requests if "/differences" in u and "/differences/history" not in u] == []

    failed = [event("frontend", "api", "GET /api/orders/:id", 300.0, "error", http_status=500)] * 4
    monitor_server.post_events(failed)
    page.wait_for_function("() => window.chartDraws.includes('chart-success-frontend')")
    drawn = set(page.evaluate("window.chartDraws"))
    assert {"chart-performance", "chart-success-frontend"} <= drawn
    assert "chart-success-backend" not in drawn  # its figures did not change
    assert tab.chart_data("chart-success-frontend")["data"] == [[12, 4]]
    assert tab.chart_data("chart-performance")["data"][1][0] > 75
    # Histories: once monitoring samples the system, each new sample redraws its charts.
    page.evaluate("window.chartDraws = []")
    requests.post(f"{monitor_server.api}/start", timeout=10).raise_for_status()
    page.wait_for_function(
        "() => ['chart-system', 'chart-io', 'chart-activity'].every((id) => window.chartDraws.includes(id))"
    )
    tab.assert_clean()


def io_history(scale: float, start: float) -> list[dict[str, Any]]:
    """Twenty system samples with no disk traffic and network rates of up to 1.2 × ``scale`` B/s."""
    return [
        {
            "timestamp": start + i,
            "cpu_percent": 5.0,
            "memory_percent": 40.0,
            "disk_read_bytes_per_s": 0.0,
            "disk_write_bytes_per_s": 0.0,
            "net_sent_bytes_per_s": scale * 0.4 * (i % 4),
            "net_recv_bytes_per_s": scale * 0.3 * (i % 3),
        }
        for i in range(20)
    ]


def test_io_axis_labels_stay_distinct_for_tiny_and_large_rates(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    page = tab.page
    start = time.time() - 20
    shown = {"history": io_history(1.0, start)}

    def with_history(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        data["system_history"] = shown["history"]
        route.fulfill(response=response, json=data)

    page.route(f"{monitor_server.api}/data*", with_history)
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    axis = """(top) => {
        const chart = Chart.getChart(document.getElementById("chart-io"));
        const shows = Math.max(...chart.data.datasets.flatMap(d => d.data));
        const y = chart.scales.y;
        return Math.abs(shows - top) < 1e-9 * top && {labels: y.ticks.map(t => t.label), max: y.max};
    }"""
    for scale in (1.0, 1e6):
        shown["history"] = io_history(scale, start + scale)
        y = page.wait_for_function(axis, arg=1.2 * scale).json_value()
        labels = y["labels"]
        assert len(labels) >= 2, labels
        assert len(set(labels)) == len(labels), labels
        assert y["max"] >= 1.2 * scale  # the top tick is above the highest rate
    tab.assert_clean()


CURVE_POINTS = """(id) => {
    const chart = Chart.getChart(document.getElementById(id));
    return chart.data.datasets.map((d, i) => chart.getDatasetMeta(i).data.map(
        (p) => ({y: p.y, cp1y: p.cp1y ?? p.y, cp2y: p.cp2y ?? p.y})));
}"""


def test_activity_line_never_swings_past_its_samples(tab: Tab, monitor_server: MonitorProcess) -> None:
    """A smoothed line through 3, 3, 9 events once dipped below 3 between the first two samples."""
    page = tab.page
    start = time.time() - 3
    history = [
        {"timestamp": start + i, "backend": be, "frontend": fe}
        for i, (be, fe) in enumerate([(3, 4), (3, 0), (9, 5)])
    ]

    def with_history(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), "activity_history": history})

    page.route(f"{monitor_server.api}/data*", with_history)
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    page.wait_for_function(
        "() => Chart.getChart(document.getElementById('chart-activity')).data.labels.length === 3"
    )
    for points in page.evaluate(CURVE_POINTS, "chart-activity"):
        # Each segment is a Bézier curve: it stays between its two samples when its control
        # points do (pixels, y grows downwards).
        for a, b in zip(points, points[1:], strict=False):
            low, high = min(a["y"], b["y"]) - 0.5, max(a["y"], b["y"]) + 0.5
            assert low <= a["cp2y"] <= high and low <= b["cp1y"] <= high, (a, b)
    tab.assert_clean()
