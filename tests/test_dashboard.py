"""Real-browser tests of live_execution_dashboard.html against a real monitor process.

Each test starts ``live_execution_monitor.py --port 0`` as a subprocess, drives the dashboard
in Chromium (Playwright, one browser per module) and checks what a user would see: counts,
charts, alerts, the event stream, the unreachable banner, file:// mode, and that hostile
event fields stay text.
"""

from __future__ import annotations

import copy
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import launch_chromium
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

ROOT = Path(__file__).resolve().parent.parent
API = "/api/live-execution"
ARTIFACTS = ROOT / "test-artifacts"
BACKEND_RGB = (129, 140, 248)  # dashboard-charts.js COLORS.backend
FRONTEND_RGB = (45, 212, 191)  # dashboard-charts.js COLORS.frontend
HOSTILE = "<img src=x onerror=alert(1)>"
LOOPBACK_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"
NETWORK_ERROR = re.compile(r"Failed to load resource|net::ERR_")


class MonitorProcess:
    """A live_execution_monitor.py subprocess on a free loopback port."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0

    def start(self, port: int = 0, deadline_s: float = 30.0) -> MonitorProcess:
        """Start the monitor, read its URL from stdout and wait until /health answers."""
        cmd = [sys.executable, str(ROOT / "live_execution_monitor.py"), "--port", str(port), *self.args]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc = proc
        lines: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + deadline_s
        seen: list[str] = []
        while not self.url:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                self.stop()
                pytest.fail(f"monitor did not start: {' '.join(cmd)}\n{''.join(seen)}")
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            seen.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"monitor at {self.url} never answered /health")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (and kill it if it lingers)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def post_events(self, events: list[dict[str, Any]]) -> None:
        """Ingest a batch through the REST API, as an instrumented app would."""
        answer = requests.post(f"{self.url}{API}/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(events), answer.text

    def get(self, path: str) -> Any:
        """GET an API path and return its JSON."""
        answer = requests.get(f"{self.url}{API}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()


def event(
    service: str,
    component: str,
    action: str,
    duration_ms: float | None,
    status: str = "success",
    **details: Any,
) -> dict[str, Any]:
    """One ExecutionEvent as the API takes it, stamped now."""
    return {
        "timestamp": datetime.now(UTC).isoformat(),
        "service": service,
        "component": component,
        "action": action,
        "duration_ms": duration_ms,
        "status": status,
        "details": details,
    }


class Tab:
    """A page plus everything it logged, dialogs it opened and requests it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self, allow: re.Pattern[str] | None = None) -> None:
        """No console error (but those matching ``allow``), no uncaught exception, no dialog."""
        errors = [e for e in self.errors if not (allow and allow.search(e))]
        assert errors == [], errors
        assert self.dialogs == [], self.dialogs

    def assert_requests_only_to(self, *prefixes: str) -> None:
        """Every request the page made went to one of ``prefixes``."""
        strays = [u for u in self.requests if not u.startswith(prefixes)]
        assert strays == [], strays

    def chart_pixels(self, canvas_id: str, rgb: tuple[int, int, int]) -> dict[str, int]:
        """Painted pixels of a canvas and how many of them have colour ``rgb``."""
        return self.page.evaluate(
            """([id, rgb]) => {
                const c = document.getElementById(id);
                const {data} = c.getContext("2d").getImageData(0, 0, c.width, c.height);
                let painted = 0, colored = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i + 3] > 0) painted++;
                    if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 8 &&
                        Math.abs(data[i + 1] - rgb[1]) < 8 && Math.abs(data[i + 2] - rgb[2]) < 8) colored++;
                }
                return {painted, colored, size: data.length / 4};
            }""",
            [canvas_id, list(rgb)],
        )

    def chart_data(self, canvas_id: str) -> dict[str, Any]:
        """Labels and datasets of the Chart.js chart drawn on a canvas."""
        return self.page.evaluate(
            """(id) => {
                const chart = Chart.getChart(document.getElementById(id));
                return {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data)};
            }""",
            canvas_id,
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module; fails (never skips) when it or Chart.js is missing."""
    with launch_chromium("static/vendor/chart.umd.js") as chromium:
        yield chromium


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    """A fresh 1280x720 page, recording console errors, dialogs and requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-US")
    context.set_default_timeout(15_000)
    yield Tab(context.new_page())
    context.close()


@pytest.fixture
def monitor() -> Iterator[MonitorProcess]:
    """A monitor that does not record its own requests, so every figure is what a test sent."""
    running = MonitorProcess("--no-self-monitor").start()
    yield running
    running.stop()


@pytest.fixture
def self_monitor() -> Iterator[MonitorProcess]:
    """A monitor that records its own API requests (the default) and accepts file:// pages."""
    running = MonitorProcess("--self-monitor", "--cors-origins", f"null,{LOOPBACK_ORIGINS}").start()
    yield running
    running.stop()


def orders_batch(count: int = 20) -> list[dict[str, Any]]:
    """The seed's example: backend calls at 125 ms, the same calls seen at 75 ms in the browser."""
    be = [event("backend", "http", "GET /api/orders/:id", 125.0, http_status=200) for _ in range(count)]
    fe = [event("frontend", "api", "GET /api/orders/:id", 75.0, http_status=200) for _ in range(count)]
    return be + fe


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


def table_row(page: Page, table_id: str, label: str) -> Any:
    return page.locator(f"#{table_id} tbody tr", has_text=label)


def own_frontend_events(monitor: MonitorProcess) -> list[dict[str, Any]]:
    """The frontend events the monitor lists when its own traffic is included."""
    data = monitor.get("/data?include_self=true&limit=1000&history=1")
    return [e for e in data["recent_events"] if e["service"] == "frontend"]


def wait_for_own_call(monitor: MonitorProcess, action: str, deadline_s: float = 15.0) -> list[dict[str, Any]]:
    """Polls until the dashboard's browser logger has delivered its ``action`` call; returns the
    frontend events listed by then. The logger sends in order, so everything the page emitted
    before that call (page load, web vitals, the click that made it) has arrived too."""
    deadline = time.monotonic() + deadline_s
    while True:
        events = own_frontend_events(monitor)
        if any(e["component"] == "api" and e["action"] == action for e in events):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard's logger never reported {action}: {events}")
        time.sleep(0.1)


def test_dashboard_shows_live_counts_charts_alerts_and_stream(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor.url}/?refresh=0.5")
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
    assert monitor.get("/status")["monitoring"] is True

    monitor.post_events(orders_batch())
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
    found = monitor.get("/differences")["count"]
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
    monitor.post_events([event("frontend", "api", "POST /api/checkout", 310.0, "error", http_status=502)])
    expect(rows.first).to_contain_text("POST /api/checkout")
    expect(rows.first).to_contain_text("310 ms")
    expect(rows.first).to_contain_text("error")
    expect(page.locator("#metric-frontend")).to_have_text("21")

    monitor.post_events(busy_app_batch())
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
    assert monitor.get("/status")["monitoring"] is False
    tab.assert_clean()
    tab.assert_requests_only_to(monitor.url + "/")


def test_hostile_event_fields_are_shown_as_text(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor.url}/?refresh=0.5")
    hostile_key = "GET /<img src=x onerror=alert(3)>"
    monitor.post_events(
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
        "static/dashboard.js",
    ]
    tab.assert_clean()


def test_unreachable_monitor_shows_a_banner_and_recovers(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    banner = page.locator("#banner-unreachable")
    expect(banner).to_be_hidden()

    port = monitor.port
    monitor.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Monitor unreachable")
    expect(banner).to_contain_text(f"127.0.0.1:{port}")
    expect(page.locator("#state-pill")).to_have_text("Unreachable")
    expect(page.locator("#start-btn")).to_be_disabled()
    expect(page.locator("#stop-btn")).to_be_disabled()

    monitor.start(port=port)
    expect(banner).to_be_hidden()
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    page.click("#start-btn")
    expect(page.locator("#state-pill")).to_have_text("Monitoring")
    monitor.post_events(orders_batch(3))
    expect(page.locator("#metric-backend")).to_have_text("3")
    expect(page.locator("#event-table tbody tr")).to_have_count(6)
    tab.assert_clean(allow=NETWORK_ERROR)
    tab.assert_requests_only_to(monitor.url + "/")


def test_opened_from_disk_with_api_parameter(tab: Tab, self_monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{(ROOT / 'live_execution_dashboard.html').as_uri()}?api={self_monitor.url}&refresh=0.5")
    expect(page.locator("#api-base")).to_have_text(self_monitor.url)
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    page.click("#start-btn")
    expect(page.locator("#state-pill")).to_have_text("Monitoring")
    assert self_monitor.get("/status")["monitoring"] is True

    self_monitor.post_events(orders_batch(12))
    expect(page.locator('#endpoint-table tr[data-key="GET /api/orders/:id"]')).to_contain_text("12 / 12")
    # The page's own browser logger, loaded from static/ beside the file, reports its calls as
    # the monitor's own traffic: listed, never counted with the app's 12.
    events = wait_for_own_call(self_monitor, "POST /api/live-execution/start")
    assert [
        e for e in events if "/api/orders/" not in e["action"] and not e["details"].get("self_monitor")
    ] == []
    assert self_monitor.get("/status")["frontend_events"] == 12
    expect(page.locator('.alert[data-type="performance"]').first).to_be_visible()
    page.wait_for_function(
        """() => Chart.getChart(document.getElementById("chart-performance")).data.datasets[0].data[0] > 0"""
    )
    assert tab.chart_pixels("chart-success-backend", BACKEND_RGB)["colored"] > 1000
    tab.assert_clean()
    tab.assert_requests_only_to("file://", self_monitor.url + "/")


def test_opened_from_disk_without_file_origin_allowed_says_how_to_fix(
    tab: Tab, monitor: MonitorProcess
) -> None:
    page = tab.page
    page.goto(f"{(ROOT / 'live_execution_dashboard.html').as_uri()}?api={monitor.url}&refresh=0.5")
    banner = page.locator("#banner-unreachable")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(monitor.url)
    # The README's flag, whole: `null` alone would shut out the loopback origins apps run on.
    readme_flags = re.findall(r"--cors-origins '([^']+)'", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme_flags and len(set(readme_flags)) == 1, readme_flags
    expect(banner).to_contain_text(f"--cors-origins '{readme_flags[0]}'")
    tab.assert_clean(allow=re.compile(r"CORS policy|" + NETWORK_ERROR.pattern))
    tab.assert_requests_only_to("file://", monitor.url + "/")


def test_page_works_without_chart_and_logger_bundles(tab: Tab, self_monitor: MonitorProcess) -> None:
    page = tab.page
    for bundle in ("static/vendor/chart.umd.js", "static/live-monitor.js"):
        page.route(f"{self_monitor.url}/{bundle}", lambda route: route.fulfill(status=404, body="missing"))
    page.goto(f"{self_monitor.url}/?refresh=0.5")
    expect(page.locator(".chart-box", has_text="Charts unavailable")).to_have_count(6)
    expect(page.locator(".chart-box").first).to_contain_text("npm ci && npm run build")
    page.click("#start-btn")
    expect(page.locator("#state-pill")).to_have_text("Monitoring")
    self_monitor.post_events([event("backend", "http", "GET /api/ping", 3.0)])
    expect(page.locator("#event-table tbody")).to_contain_text("GET /api/ping")
    expect(page.locator("#metric-frontend")).to_have_text("0")  # no logger, no frontend events
    expect(page.locator("#hint-frontend")).to_be_visible()
    tab.assert_clean(allow=NETWORK_ERROR)


def test_the_dashboards_own_events_are_listed_never_counted(tab: Tab, self_monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{self_monitor.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    page.click("#start-btn")
    expect(page.locator("#state-pill")).to_have_text("Monitoring")
    own = "GET /api/live-execution/data"
    # The dashboard is its own first frontend: its calls arrive as the monitor's own traffic,
    # and nothing else of its own page (load, web vitals, the Start click) is an app's event.
    events = wait_for_own_call(self_monitor, "POST /api/live-execution/start")
    assert any(e["action"] == own for e in events), events
    untagged = [(e["component"], e["action"]) for e in events if not e["details"].get("self_monitor")]
    assert untagged == []
    assert self_monitor.get("/status")["frontend_events"] == 0
    assert self_monitor.get("/data?include_self=false")["frontend"]["total_events"] == 0
    expect(page.locator("#metric-frontend")).to_have_text("0")
    expect(page.locator("#hint-frontend")).to_be_visible()
    expect(table_row(page, "comparison-table", "Events in window")).to_contain_text("0")

    self_monitor.post_events([event("backend", "http", "GET /api/ping", 4.0)])
    stream = page.locator("#event-table tbody")
    expect(stream).to_contain_text("GET /api/ping")
    expect(stream.locator('tr[data-service="frontend"]')).to_have_count(0)
    expect(page.locator(f'#endpoint-table tr[data-key="{own}"]')).to_have_count(0)

    page.uncheck("#hide-self")
    expect(stream.locator('tr[data-service="backend"] td.action', has_text=own).first).to_be_visible()
    expect(stream.locator('tr[data-service="frontend"] td.action', has_text=own).first).to_be_visible()
    # The monitor's own traffic is listed, never compared: no endpoint row, no alert for it.
    expect(page.locator(f'#endpoint-table tr[data-key="{own}"]')).to_have_count(0)
    expect(page.locator("#alerts")).not_to_contain_text(own)
    page.check("#hide-self")
    expect(stream.locator('tr[data-service="frontend"]')).to_have_count(0)
    expect(page.locator("#metric-frontend")).to_have_text("0")
    tab.assert_clean()
    tab.assert_requests_only_to(self_monitor.url + "/")


def test_event_stream_filters_limit_and_pause(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    requests.post(f"{monitor.url}{API}/start", timeout=10).raise_for_status()
    expect(page.locator("#state-pill")).to_have_text("Monitoring")  # started elsewhere (curl)
    expect(page.locator("#stop-btn")).to_be_enabled()
    monitor.post_events(
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
    monitor.post_events([event("backend", "http", "DELETE /api/late", 12.0)])
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


SEED_SIDES = {"backend": (1247, 125.0, 250.0, 0.98, 15.0), "frontend": (2156, 75.0, 180.0, 0.955, 25.0)}
SYSTEM_FIELDS = "cpu_percent memory_percent disk_read_bytes_per_s disk_write_bytes_per_s".split()
SYSTEM_FIELDS += ["net_sent_bytes_per_s", "net_recv_bytes_per_s"]


def seed_sample(real: dict[str, Any], uptime: float, points: int) -> dict[str, Any]:
    """A real /data answer carrying the seed README's sample figures and long histories."""
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


def test_seed_sample_figures_are_formatted(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    real = monitor.get("/data")
    answer = {"data": seed_sample(real, 323, 1000)}
    page.route(f"{monitor.url}{API}/data*", lambda route: route.fulfill(json=answer["data"]))
    page.goto(f"{monitor.url}/")
    expect(page.locator("#refresh-seconds")).to_have_text("2")
    expect(page.locator("#api-base")).to_have_text(monitor.url)
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
    tab.assert_requests_only_to(monitor.url + "/")


def test_bad_query_parameters_fall_back_with_a_warning(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor.url}/?api=javascript:alert(1)&refresh=0&events=x")
    warning = page.locator("#banner-config")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("?api=javascript:alert(1) is not an http(s) URL")
    expect(warning).to_contain_text("?refresh= must be between")
    expect(warning).to_contain_text("?events= must be a whole number")
    expect(page.locator("#api-base")).to_have_text(monitor.url)
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    expect(page.locator("#event-limit")).to_have_value("50")
    tab.assert_clean()


PAGE_READS = (
    "monitoring uptime_seconds backend frontend comparison endpoints system_history activity_history "
    "differences thresholds"
)
SIDE_READS = "total_events window_events avg_duration_ms p50_duration_ms p95_duration_ms success_rate"


def test_data_has_every_field_the_page_reads(monitor: MonitorProcess) -> None:
    """Guards against a silent drift between /data and what dashboard.js reads."""
    data = monitor.get("/data?limit=5&history=5&include_self=false")
    assert set(PAGE_READS.split()) | {"recent_events", "window_seconds"} <= set(data)
    for side in ("backend", "frontend"):
        reads = set(SIDE_READS.split()) | {"events_per_minute", "error_count", "components"}
        assert reads <= set(data[side]), side


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


def test_charts_are_redrawn_only_when_their_figures_change(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    monitor.post_events(orders_batch(12))
    page.goto(f"{monitor.url}/?refresh=0.5")
    page.wait_for_function(
        """() => Chart.getChart(document.getElementById("chart-performance")).data.datasets[0].data[0] === 125"""
    )
    page.evaluate(COUNT_CHART_DRAWS)
    # A poll starts only after the one before it has rendered, so the 6th start means 5 renders.
    page.wait_for_function("() => window.dataPolls >= 6")
    assert page.evaluate("window.chartDraws") == []
    assert [u for u in tab.requests if "/differences" in u] == []  # /data carries them: one request a poll

    failed = [event("frontend", "api", "GET /api/orders/:id", 300.0, "error", http_status=500)] * 4
    monitor.post_events(failed)
    page.wait_for_function("() => window.chartDraws.includes('chart-success-frontend')")
    drawn = set(page.evaluate("window.chartDraws"))
    assert {"chart-performance", "chart-success-frontend"} <= drawn
    assert "chart-success-backend" not in drawn  # its figures did not change
    assert tab.chart_data("chart-success-frontend")["data"] == [[12, 4]]
    assert tab.chart_data("chart-performance")["data"][1][0] > 75
    # Histories: once monitoring samples the system, each new sample redraws its charts.
    page.evaluate("window.chartDraws = []")
    requests.post(f"{monitor.url}{API}/start", timeout=10).raise_for_status()
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


def test_io_axis_labels_stay_distinct_for_tiny_and_large_rates(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    start = time.time() - 20
    shown = {"history": io_history(1.0, start)}

    def with_history(route: Any) -> None:
        response = route.fetch()
        data = response.json()
        data["system_history"] = shown["history"]
        route.fulfill(response=response, json=data)

    page.route(f"{monitor.url}{API}/data*", with_history)
    page.goto(f"{monitor.url}/?refresh=0.5")
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


def test_activity_line_never_swings_past_its_samples(tab: Tab, monitor: MonitorProcess) -> None:
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

    page.route(f"{monitor.url}{API}/data*", with_history)
    page.goto(f"{monitor.url}/?refresh=0.5")
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


def test_overflowing_boxes_show_there_is_more_below(tab: Tab, monitor: MonitorProcess) -> None:
    page = tab.page
    monitor.post_events([event("backend", "http", "GET /api/a", 10.0) for _ in range(60)])
    page.goto(f"{monitor.url}/?refresh=0.5")
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
