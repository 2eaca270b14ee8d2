"""The dashboard's release and environment filter in real Chromium against a real monitor process:
two releases' events, only one of them with a slow endpoint in the browser. Choosing that release
shows its difference, and the endpoint row and drill-down show the monitor's filtered figures;
choosing the other shows none; the choice lives in the address beside #endpoint= and survives a
reload; the views the monitor does not filter say so."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import MonitorProcess, Tab, event

pytestmark = pytest.mark.timeout(120)

KEY = "GET /api/orders"
ROW = f'#endpoint-table tr[data-key="{KEY}"]'
FAST, SLOW = "web@1.4.1", "web@1.4.2"


def orders(release: str, browser_ms: float, count: int = 30) -> list[dict[str, Any]]:
    """``count`` calls of the endpoint from both sides of ``release`` in production: the server
    works 40-44 ms, the browser waits ``browser_ms`` more or less the same."""
    batch = []
    for i in range(count):
        for found in (
            event("backend", "http", KEY, 40.0 + i % 5),
            event("frontend", "api", KEY, browser_ms + i % 5),
        ):
            batch.append({**found, "release": release, "environment": "production"})
    return batch


def ms(page: Page, value: float | None) -> str:
    """A figure as the dashboard writes it (its own formatter)."""
    text: str = page.evaluate("x => LiveDashboard.format.fmtMs(x)", value)
    return text


def expect_row_as_the_api_says(page: Page, monitor: MonitorProcess, release: str) -> None:
    """The endpoint row shows the figures of ``/data?release=``: the calls and each side's p50 / p95."""
    (answer,) = [r for r in monitor.get(f"/data?release={quote(release)}")["endpoints"] if r["key"] == KEY]
    cells = page.locator(ROW).locator("td")
    expect(cells.nth(2)).to_have_text(f"{answer['backend']['count']} / {answer['frontend']['count']}")
    for column, side in ((4, "backend"), (5, "frontend")):
        figures = answer[side]
        expect(cells.nth(column)).to_have_text(
            f"{ms(page, figures['p50_ms'])} / {ms(page, figures['p95_ms'])}"
        )


def expect_drill_as_the_api_says(page: Page, monitor: MonitorProcess, release: str) -> None:
    """The drill-down's percentile table shows the figures of ``/endpoints/<key>?release=``."""
    answer = monitor.get(f"/endpoints/{quote(KEY, safe='')}?release={quote(release)}")
    assert answer["filter"]["release"] == release
    for side in ("backend", "frontend"):
        figures = answer[side]["figures"]
        cells = page.locator(f'#drill-percentiles tr[data-side="{side}"] td')
        expect(cells.nth(0)).to_have_text(str(figures["count"]))
        expect(cells.nth(1)).to_have_text(ms(page, figures["p50_ms"]))


def test_choosing_a_release_filters_every_view_and_the_address_keeps_it(
    tab: Tab, monitor_server: MonitorProcess
) -> None:
    monitor_server.post_events(orders(FAST, 60.0) + orders(SLOW, 900.0))
    page = tab.page
    page.goto(f"{monitor_server.url}/?refresh=0.5")
    release = page.get_by_label("Release", exact=True)  # a labelled select, reached by the keyboard like any
    expect(release.locator("option")).to_have_text(
        ["All releases", f"{SLOW} (60 events)", f"{FAST} (60 events)"]
    )
    expect(page.get_by_label("Environment", exact=True).locator("option")).to_have_text(
        ["All environments", "production (120 events)"]
    )
    expect(page.locator(ROW).locator("td").nth(2)).to_have_text("60 / 60")  # both releases together
    note, tags = page.locator("#filter-note"), page.locator("[data-unfiltered]")
    expect(note).to_be_hidden()
    expect(tags.first).to_be_hidden()

    release.select_option(SLOW)
    expect(note).to_have_text(
        re.compile(rf"release {SLOW}: 30 backend / 30 frontend events matched \(of 120 stored\)\.")
    )
    assert page.evaluate("location.hash") == f"#release={quote(SLOW, safe='')}"
    expect_row_as_the_api_says(page, monitor_server, SLOW)
    alert = page.locator("#alerts .alert", has=page.locator("code.scope", has_text=KEY))
    expect(alert).to_have_count(1)
    expect(alert).to_have_attribute("data-type", "performance")
    for card in ("Activity", "System Resources", "Disk and Network I/O", "Difference History"):
        expect(page.locator(".card-head", has_text=card).locator("[data-unfiltered]")).to_have_text(
            "not filtered"
        )

    page.locator(ROW).click()  # the drill-down asks for the release too; the address holds both
    expect(page.locator("#endpoint-view")).to_have_attribute("data-state", "ready")
    expect_drill_as_the_api_says(page, monitor_server, SLOW)
    assert page.evaluate("location.hash") == f"#release={quote(SLOW, safe='')}&endpoint=GET%20%2Fapi%2Forders"

    release.select_option(FAST)  # the other release: the endpoint is as fast in the browser, no difference
    expect(alert).to_have_count(0)
    expect(page.locator("#alerts")).to_contain_text("No differences detected.")
    expect_row_as_the_api_says(page, monitor_server, FAST)
    expect_drill_as_the_api_says(page, monitor_server, FAST)
    assert page.evaluate("location.hash") == f"#release={quote(FAST, safe='')}&endpoint=GET%20%2Fapi%2Forders"

    page.reload()  # a shared or reloaded address opens the same filtered view
    expect(release).to_have_value(FAST)
    expect(note).to_contain_text(f"release {FAST}: 30 backend / 30 frontend events matched")
    expect(page.locator("#endpoint-view")).to_have_attribute("data-state", "ready")
    expect_drill_as_the_api_says(page, monitor_server, FAST)
    expect_row_as_the_api_says(page, monitor_server, FAST)
    expect(page.locator("#alerts")).to_contain_text("No differences detected.")
    drilled = [u for u in tab.requests if "/endpoints/" in u]
    assert drilled and all(u.endswith(f"?release={quote(FAST, safe='')}") for u in drilled[-2:]), drilled

    page.keyboard.press("Escape")  # closing the drill-down keeps the filter
    expect(page.locator("#endpoint-view")).to_be_hidden()
    assert page.evaluate("location.hash") == f"#release={quote(FAST, safe='')}"
    page.get_by_role("button", name="Show all").click()
    expect(note).to_be_hidden()
    expect(tags.first).to_be_hidden()
    expect(page.locator(ROW).locator("td").nth(2)).to_have_text("60 / 60")
    assert page.evaluate("location.hash") == ""

    page.goto(f"{monitor_server.url}/?refresh=0.5#release={SLOW}")  # a link typed by hand, followed in place
    expect(release).to_have_value(SLOW)
    expect(note).to_contain_text(f"release {SLOW}: 30 backend / 30 frontend events matched")
    expect(alert).to_have_count(1)
    page.get_by_label("Environment", exact=True).select_option("production")  # both: the events of both
    expect(note).to_contain_text(f"release {SLOW}, environment production: 30 backend / 30 frontend events")
    assert page.evaluate("location.hash") == f"#release={quote(SLOW, safe='')}&environment=production"
    tab.assert_clean()


def test_a_filtered_view_of_a_window_the_store_no_longer_holds_says_so(
    tab: Tab, start_monitor: Callable[..., AbstractContextManager[MonitorProcess]]
) -> None:
    with start_monitor("--no-self-monitor", "--max-events", "100") as monitor:
        monitor.post_events(orders(FAST, 60.0, 60) + orders(SLOW, 900.0, 60))  # 120 a side: 20 evicted
        page = tab.page
        page.goto(f"{monitor.url}/?refresh=0.5#release={quote(SLOW, safe='')}")
        note = page.locator("#filter-note")
        expect(note).to_contain_text(
            f"release {SLOW}: 60 backend / 60 frontend events matched (of 200 stored)"
        )
        expect(note).to_contain_text("window partly evicted")
        expect(note).to_have_attribute("data-covers", "false")
        tab.assert_clean()
