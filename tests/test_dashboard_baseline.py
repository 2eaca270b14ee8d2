"""The dashboard's "Pin baseline" button in real Chromium against a real monitor process: the
window is pinned by a click, every endpoint figure then shows how far it moved since (nothing
flagged while the traffic is alike), and a regression injected afterwards is shown beside the
figure it hit, its severity and confidence in the tooltip."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import MonitorProcess, Tab, event

pytestmark = pytest.mark.timeout(120)

KEY = "GET /api/orders"
ROW = f'#endpoint-table tr[data-key="{KEY}"]'


def orders(count: int, server_ms: float) -> list[dict]:
    """``count`` calls of the endpoint on both sides: the server works 0-19 ms more than
    ``server_ms``, the browser waits 30 ms more than the server."""
    batch = []
    for i in range(count):
        ms = server_ms + i % 20
        batch += [event("backend", "http", KEY, ms), event("frontend", "api", KEY, ms + 30)]
    return batch


def test_pinning_from_the_dashboard_shows_what_changed_beside_each_endpoint_figure(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    monitor_server.post_events(orders(60, 100.0))
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    row = page.locator(ROW)
    expect(row).to_be_visible()
    expect(row.locator(".since")).to_have_count(0)  # nothing pinned: the figures stand alone

    button = page.locator("#baseline-btn")
    expect(button).to_have_text("Pin baseline")
    button.click()
    expect(button).to_have_text("Unpin baseline")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert monitor_server.get("/baseline")["pinned"] is True
    expect(page.locator("#baseline-note")).to_contain_text("0 regression(s)")
    # every figure the baseline compares has its change beside it, and the same window flags nothing
    figures = row.locator(".since-fig")
    expect(figures).to_have_count(9)  # calls, p50, p95 (x2 sides), the gap, the error rates
    for side in ("backend", "frontend"):
        for metric in ("p50_ms", "p95_ms", "error_rate", "calls_per_minute"):
            expect(row.locator(f'.since-fig[data-side="{side}"][data-metric="{metric}"]')).to_have_count(1)
    expect(row.locator('.since-fig[data-verdict="regression"]')).to_have_count(0)
    expect(row.locator('.since-fig[data-side="backend"][data-metric="p50_ms"]')).to_have_text("0.0 ms")

    monitor_server.post_events(orders(200, 300.0))  # a release makes the server three times slower
    p50 = row.locator('.since-fig[data-side="backend"][data-metric="p50_ms"]')
    expect(p50).to_have_attribute("data-verdict", "regression")
    expect(p50).to_have_text(re.compile(r"^\+\d{3} ms ▲$"))  # beside the backend p50 / p95 cell
    expect(p50).to_have_class(re.compile(r"\bsince-regression\b.*\bsev-high\b"))
    title = p50.get_attribute("title") or ""
    assert "high regression" in title and re.search(r"confidence (above 99\.9|99\.\d)%", title), title
    assert row.locator("td").nth(4).locator(".since-fig").count() == 2  # p50 and p95 of the server
    expect(page.locator("#baseline-note")).to_contain_text(re.compile(r"[1-9]\d* regression\(s\)"))

    button.click()  # unpinned: the figures stand alone again
    expect(button).to_have_text("Pin baseline")
    expect(row.locator(".since")).to_have_count(0)
    assert monitor_server.get("/baseline")["pinned"] is False
    tab.assert_clean()
