"""The endpoint drill-down in real Chromium against a real monitor process: matched browser and
server requests (tied by trace and span ids) are posted, an endpoint row is clicked (or the
address names it, or Enter is pressed on it), and the view's distributions, gaps, waterfalls,
statuses and calls are read back from the page's DOM and its Chart.js data, not from pixels.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from live_monitor.tools.render import SIDE_COLORS
from tests.helpers import FRONTEND_RGB, MonitorProcess, Tab, event
from tests.test_web_endpoints import KEY, matched

pytestmark = pytest.mark.timeout(120)
expect.set_options(timeout=15_000)

ROW = f'#endpoint-table tr[data-key="{KEY}"]'


def chart(tab: Tab, canvas_id: str) -> list[dict[str, Any]]:
    """The datasets of the Chart.js chart on ``canvas_id``: label, side, marker, colour, data."""
    return tab.page.evaluate(
        """(id) => Chart.getChart(document.getElementById(id)).data.datasets.map((d) => ({
            label: d.label, side: d.side, marker: d.marker || null, value: d.value ?? null,
            color: d.borderColor || d.backgroundColor, counts: d.counts || null, data: d.data }))""",
        canvas_id,
    )


def open_view(tab: Tab) -> Any:
    view = tab.page.locator("#endpoint-view")
    expect(view).to_be_visible()
    expect(view).to_have_attribute("data-state", "ready")
    return view


def test_clicking_an_endpoint_shows_both_distributions_gaps_and_waterfalls(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    monitor_server.post_events(matched(20, failing=2))
    answer = monitor_server.get("/endpoints/GET%20%2Fapi%2Forders%2F%3Aid")
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    page.locator(ROW).click()
    view = open_view(tab)
    assert page.evaluate("location.hash") == "#endpoint=GET%20%2Fapi%2Forders%2F%3Aid"
    expect(view.locator("#drill-title")).to_have_text(f"Endpoint {KEY}")

    latency = chart(tab, "drill-latency")
    shapes = {d["side"]: d for d in latency if d["marker"] is None}
    assert set(shapes) == {"backend", "frontend"}
    for side, dataset in shapes.items():
        assert sum(dataset["counts"]) == 20 and dataset["color"] == SIDE_COLORS[side].lower()
        assert max(p["y"] for p in dataset["data"]) > 0
        marks = {d["marker"]: d["value"] for d in latency if d["side"] == side and d["marker"]}
        figures = answer[side]["latency"]
        assert marks == {m: figures[f"{m}_ms"] for m in ("p50", "p95", "p99")}
    # the browser waits 101..120 ms, the server works 31..50 ms: the browser's shape lies to the right
    lowest = {side: min(p["x"] for p in d["data"] if p["y"] > 0) for side, d in shapes.items()}
    assert lowest["backend"] < 50 < 100 < lowest["frontend"] * 1.3

    gaps = [d for d in chart(tab, "drill-gaps") if d["marker"] is None]
    assert len(gaps) == 1 and sum(gaps[0]["counts"]) == 20
    expect(view.locator("#drill-gap-summary")).to_contain_text("20 matched requests: p50 70")

    falls = view.locator("#drill-waterfalls .waterfall")
    expect(falls).to_have_count(10)
    first = falls.first
    expect(first).to_have_attribute("data-trace", f"{20:032x}")
    expect(first).to_have_attribute("data-browser-ms", "120")
    expect(first).to_have_attribute("data-estimated", "server_start server_end")
    expect(first).to_contain_text("server start ≈35.0 ms")
    expect(first).to_contain_text("browser end 120 ms")
    bars = first.evaluate(
        """(w) => ['.wf-browser', '.wf-server'].map((s) => {
            const r = w.querySelector(s).getBoundingClientRect();
            return {left: r.left, right: r.right, color: getComputedStyle(w.querySelector(s)).backgroundColor}; })"""
    )
    browser, server = bars
    assert browser["left"] < server["left"] < server["right"] < browser["right"]
    # 35 ms of the browser's 120 before the server's 50 ms, as many after
    width = browser["right"] - browser["left"]
    assert (server["left"] - browser["left"]) / width == pytest.approx(35 / 120, abs=0.02)
    assert browser["color"] == f"rgb{FRONTEND_RGB}"  # the browser's orange, as in the charts

    statuses = view.locator("#drill-statuses tbody tr")
    expect(statuses.filter(has_text="200")).to_have_text(re.compile(r"200\s*18\s*18"))
    expect(statuses.filter(has_text="500")).to_have_text(re.compile(r"500\s*2\s*2"))
    expect(view.locator("#drill-percentiles tr[data-side=frontend]")).to_contain_text("2 (10.0%)")
    calls = chart(tab, "drill-calls")
    assert {d["side"]: sum(d["data"]) for d in calls} == {"backend": 20, "frontend": 20}
    tab.assert_clean()


def gapped(gaps: list[float]) -> list[dict[str, Any]]:
    """Matched requests whose browser waits ``gap`` ms longer than the server's 40 ms, each."""
    events = []
    for i, gap in enumerate(gaps, start=1):
        trace, span = f"{i:032x}", f"{i:016x}"
        browser = event("frontend", "api", f"GET /api/orders/{i}", 40.0 + gap, backend_ms=40.0)
        server = event("backend", "http", KEY, 40.0, route="/api/orders/:id")
        events += [
            {**browser, "trace_id": trace, "span_id": span},
            {**server, "trace_id": trace, "parent_span_id": span},
        ]
    return events


DRAWN_GAPS = """([id, edges]) => {
    // Each bin's height as painted: the first pixel of the outline's colour from the top, at the
    // bin's middle on the log axis (the percentile markers hidden first), read back in %.
    const chart = Chart.getChart(document.getElementById(id));
    chart.data.datasets.forEach((d, i) => chart.setDatasetVisibility(i, !d.marker));
    chart.update("none");
    const [x, y] = [chart.scales.x, chart.scales.y];
    const ratio = chart.currentDevicePixelRatio;
    const line = chart.data.datasets.find((d) => !d.marker);
    const rgb = [1, 3, 5].map((i) => parseInt(line.borderColor.slice(i, i + 2), 16));
    const heights = edges.slice(1).map((to, i) => {
        const px = Math.round(x.getPixelForValue(Math.sqrt(edges[i] * to)) * ratio);
        const column = chart.ctx.getImageData(px, 0, 1, chart.canvas.height).data;
        for (let row = Math.round(y.top * ratio); row < chart.canvas.height; row++) {
            const c = column.subarray(row * 4, row * 4 + 3);
            if (c.every((v, k) => Math.abs(v - rgb[k]) < 40)) return y.getValueForPixel(row / ratio + 1);
        }
        return null;
    });
    const font = Chart.helpers.toFont(x.options.ticks.font);
    chart.ctx.font = font.string;
    const ticks = x.ticks.map((t) => ({value: t.value, label: t.label, at: x.getPixelForValue(t.value),
        width: chart.ctx.measureText(t.label).width}));
    return {heights, ticks};
}"""


def test_a_narrow_spread_of_gaps_draws_its_real_shape_with_readable_ticks(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    """Gaps of 760 to 1,260 ms span three bins of the scale: each is drawn at its own share (it
    was drawn at the next bin's, one flat block), and the axis labels neither repeat nor overlap
    (Chart.js added "794 ms" beside "800 ms")."""
    gaps = [770.0] * 3 + [800.0 + 10 * i for i in range(18)] + [1050.0, 1150.0, 1250.0]
    monitor_server.post_events(gapped(gaps))
    answer = monitor_server.get("/endpoints/GET%20%2Fapi%2Forders%2F%3Aid")["gaps"]
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5#endpoint=GET%20/api/orders/:id")
    open_view(tab)
    edges, counts = answer["edges_ms"], answer["distribution"]["counts"]
    drawn = page.evaluate(DRAWN_GAPS, ["drill-gaps", edges])
    shares = [100 * n / len(gaps) for n in counts]
    assert len(set(counts)) > 1  # a real spread: not every bin alike
    assert drawn["heights"] == pytest.approx(shares, abs=2.5), (drawn["heights"], shares)
    ticks = drawn["ticks"]
    labels = [t["label"] for t in ticks]
    assert len(ticks) >= 3 and len(set(labels)) == len(labels), labels
    assert all(a["value"] < b["value"] for a, b in zip(ticks, ticks[1:], strict=False)), labels
    for a, b in zip(ticks, ticks[1:], strict=False):  # label boxes are centred on their ticks
        assert b["at"] - a["at"] > (a["width"] + b["width"]) / 2 + 4, (a, b)
    tab.assert_clean()


def test_the_address_opens_the_view_and_enter_on_a_focused_row_does_too(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    monitor_server.post_events(matched(4))
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5#endpoint=GET%20/api/orders/:id")
    view = open_view(tab)
    expect(view.locator("#drill-title code")).to_have_text(KEY)
    expect(view.locator("#drill-waterfalls .waterfall")).to_have_count(4)

    page.keyboard.press("Escape")
    expect(view).to_be_hidden()
    assert page.evaluate("location.hash") == ""
    row = page.locator(ROW)
    assert row.get_attribute("tabindex") == "0"
    row.focus()
    shown = page.locator("#last-update").inner_text()
    expect(page.locator("#last-update")).not_to_have_text(shown)  # a poll redrew the table
    expect(row).to_be_focused()  # the redrawn row kept the keyboard's place
    page.keyboard.press("Enter")
    view = open_view(tab)
    expect(view.locator("#drill-waterfalls .waterfall")).to_have_count(4)
    view.locator("#drill-close").click()
    expect(view).to_be_hidden()
    expect(page.locator(ROW)).to_be_focused()  # back where the keyboard user was

    page.goto(f"{monitor_server.url}/#endpoint=GET%20%2Fnowhere")
    view = page.locator("#endpoint-view")
    expect(view).to_have_attribute("data-state", "error")
    expect(view.locator("#drill-note")).to_contain_text("Nothing is known of GET /nowhere yet")

    hostile = "GET /<img src=x onerror=alert(1)>"
    monitor_server.post_events([event("backend", "http", hostile, 5.0, http_status="<b>x</b>")])
    page.goto(f"{monitor_server.url}/#endpoint={quote(hostile, safe='')}")
    view = open_view(tab)
    expect(view.locator("#drill-title code")).to_have_text(hostile)
    expect(view.locator("#drill-statuses tbody")).to_contain_text("no status")
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    tab.assert_clean(allow=re.compile("404"))


def test_at_800_px_the_tables_keep_their_last_column_in_view(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    long_query = (
        "SELECT * FROM orders JOIN customers USING (customer_id) WHERE orders.id = ? ORDER BY created"
    )
    monitor_server.post_events(
        [*matched(3), event("backend", "db", long_query, 3.0, note="x" * 200, table="orders_and_customers")]
    )
    page = tab.page
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    expect(page.locator(ROW)).to_be_visible()
    expect(page.locator("#event-table tbody tr").first).to_be_visible()
    for table in ("endpoint-table", "event-table"):
        edges = page.evaluate(
            """(id) => {
                const table = document.getElementById(id);
                const box = table.closest('.table-scroll').getBoundingClientRect();
                const cells = [...table.tHead.rows[0].cells, ...[...table.tBodies[0].rows].map((r) => r.cells[r.cells.length - 1])];
                return {box: box.right, last: Math.max(...cells.map((c) => c.getBoundingClientRect().right))};
            }""",
            table,
        )
        assert edges["last"] <= edges["box"] + 0.5, (table, edges)
    page.locator(ROW).click()
    open_view(tab)
    assert page.evaluate("document.documentElement.scrollWidth") <= 800


def test_requests_of_a_real_app_traced_by_both_loggers_open_as_waterfalls(
    tab: Tab, start_monitor: Any
) -> None:
    """The example shop: its Flask backend (init_app) and its page (the browser logger) send the
    two halves of each API call with one trace; the drill-down draws them, the server's span from
    the Server-Timing duration the browser read."""
    key = "GET /api/products/:id"
    page = tab.page
    with (
        start_monitor("--no-self-monitor") as monitor,
        start_monitor("--monitor-url", monitor.url, script="examples/shop/app.py") as shop,
    ):
        page.goto(f"{shop.url}/")
        expect(page.locator("body")).to_have_attribute("data-monitor", "on")
        for button in range(2):
            page.locator("button.view-product").nth(button).click()
            expect(page.locator("#product-detail")).not_to_be_empty()
        page.evaluate("() => window.shop.monitor.flush()")
        page.goto(f"{monitor.url}/?refresh=0.5#endpoint={quote(key, safe='')}")
        view = open_view(tab)
        falls = view.locator("#drill-waterfalls .waterfall")
        expect(falls).to_have_count(2)
        shapes = {d["side"] for d in chart(tab, "drill-latency") if d["marker"] is None}
        assert shapes == {"backend", "frontend"}
        answer = monitor.get(f"/endpoints/{quote(key, safe='')}")
        for fall, drawn in zip(answer["slowest"], falls.all(), strict=True):
            assert fall["server_ms_from"] == "server_timing"
            assert fall["browser_action"].startswith("GET /api/products/")
            assert fall["browser_start"] <= fall["server_start"] <= fall["server_end"] <= fall["browser_end"]
            assert drawn.get_attribute("data-trace") == fall["trace_id"]
            expect(drawn).to_contain_text("(Server-Timing)")
        tab.assert_clean()
        page.goto("about:blank")  # no poll meets the monitor shutting down
