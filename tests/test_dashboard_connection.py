"""Real-browser tests of how the dashboard reaches its monitor, against real monitor processes.

A monitor that goes away and comes back, the page opened from disk (file://) with and without
that origin allowed, the page without its chart and logger bundles, and the dashboard's own
calls, which the monitor lists but never counts as the app's frontend (and the browser logger
captures the dashboard turns off, checked against frontend/types.ts without a browser).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from live_monitor.core import settings as monitor_settings
from tests.helpers import (
    BACKEND_RGB,
    ROOT,
    MonitorProcess,
    Tab,
    event,
    orders_batch,
    run_monitor,
    table_row,
)

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

NETWORK_ERROR = re.compile(r"Failed to load resource|net::ERR_")


@pytest.fixture
def self_monitor() -> Iterator[MonitorProcess]:
    """A monitor that records its own API requests (the default) and accepts file:// pages."""
    with run_monitor(
        "--self-monitor", "--cors-origins", f"null,{monitor_settings.LOOPBACK_ORIGINS}"
    ) as running:
        yield running


def own_frontend_events(monitor: MonitorProcess) -> list[dict[str, Any]]:
    """The frontend events the monitor lists when its own traffic is included."""
    data = monitor.get("/data?include_self=true&limit=1000&history=1")
    return [e for e in data["recent_events"] if e["service"] == "frontend"]


def wait_for_own_call(monitor: MonitorProcess, action: str, deadline_s: float = 15.0) -> list[dict[str, Any]]:
    """Polls until the dashboard's browser logger has delivered its ``action`` call; returns the
    frontend events listed by then. The logger sends in order, so what the page emitted before that
    call (page load, the click that made it) has arrived too; web vitals need not have: web-vitals
    reports LCP at the first input, and CLS and INP only when the page is hidden."""
    deadline = time.monotonic() + deadline_s
    while True:
        events = own_frontend_events(monitor)
        if any(e["component"] == "api" and e["action"] == action for e in events):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard's logger never reported {action}: {events}")
        time.sleep(0.1)


def test_unreachable_monitor_shows_a_banner_and_recovers(tab: Tab, monitor_server: MonitorProcess) -> None:
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    expect(page.locator("#state-pill")).to_have_text("Stopped")
    banner = page.locator("#banner-unreachable")
    expect(banner).to_be_hidden()

    port = monitor_server.port
    monitor_server.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Monitor unreachable")
    expect(banner).to_contain_text(f"127.0.0.1:{port}")
    expect(page.locator("#state-pill")).to_have_text("Unreachable")
    expect(page.locator("#start-btn")).to_be_disabled()
    expect(page.locator("#stop-btn")).to_be_disabled()

    with run_monitor("--no-self-monitor", port=port) as restarted:  # the fixture's flags, same port
        expect(banner).to_be_hidden()
        expect(page.locator("#state-pill")).to_have_text("Stopped")
        page.click("#start-btn")
        expect(page.locator("#state-pill")).to_have_text("Monitoring")
        restarted.post_events(orders_batch(3))
        expect(page.locator("#metric-backend")).to_have_text("3")
        expect(page.locator("#event-table tbody tr")).to_have_count(6)
        tab.assert_clean(allow=NETWORK_ERROR)
        tab.assert_requests_only_to(monitor_server.url + "/")


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
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    page = tab.page
    page.goto(f"{(ROOT / 'live_execution_dashboard.html').as_uri()}?api={monitor_server.url}&refresh=0.5")
    banner = page.locator("#banner-unreachable")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(monitor_server.url)
    # The README's flag, whole: `null` alone would shut out the loopback origins apps run on.
    readme_flags = re.findall(r"--cors-origins '([^']+)'", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme_flags and len(set(readme_flags)) == 1, readme_flags
    assert readme_flags[0] == f"null,{monitor_settings.LOOPBACK_ORIGINS}"  # the settings table's default
    expect(banner).to_contain_text(f"--cors-origins '{readme_flags[0]}'")
    tab.assert_clean(allow=re.compile(r"CORS policy|" + NETWORK_ERROR.pattern))
    tab.assert_requests_only_to("file://", monitor_server.url + "/")


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
    assert page.evaluate("typeof window.LiveMonitor") == "undefined"  # the logger really is missing
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
    # Cells after the label: backend, frontend, difference.
    expect(table_row(page, "comparison-table", "Events in window").locator("td").nth(1)).to_have_text("0")

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


def _quoted_names(text: str) -> set[str]:
    return set(re.findall(r'"(\w+)"', text))


def test_the_dashboard_turns_off_every_logger_capture_but_api() -> None:
    """A capture kind added to the logger later must be turned off here too, or the dashboard's
    own page events would count as the app's frontend again."""
    types = (ROOT / "frontend" / "types.ts").read_text(encoding="utf-8")
    declared = re.search(r"export type CaptureKind\s*=([^;]+);", types)
    assert declared, "no `export type CaptureKind = ...;` in frontend/types.ts"
    dashboard = (ROOT / "static" / "dashboard.js").read_text(encoding="utf-8")
    listed = re.search(r"const LOGGER_CAPTURES_OFF = \[([^\]]*)\];", dashboard)
    assert listed, "no `const LOGGER_CAPTURES_OFF = [...];` in static/dashboard.js"
    kinds = _quoted_names(declared.group(1))
    assert "api" in kinds
    assert _quoted_names(listed.group(1)) == kinds - {"api"}
