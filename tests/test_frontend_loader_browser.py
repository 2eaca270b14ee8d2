"""The README's browser snippet in headless Chromium, the monitor down at page load and up.

The page is served from one origin (PageServer) and the monitor runs on another, as in a real
deployment. Checked is what the page's owner relies on: with the monitor down, the page's calls
on the logger raise nothing and leave nothing in the console but the browser's own line for
each failed load of the bundle; when the monitor comes up on that address within the loader's
5 minutes, the calls made meanwhile arrive with the times they were made, and automatic capture
(API calls, clicks) works from then on. The loader as a file serves a page with a strict
Content-Security-Policy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page

from tests.helpers import ROOT, MonitorProcess, PageServer, free_port, launch_chromium, wait_for

pytestmark = pytest.mark.timeout(120)

README_URL = "http://localhost:5001"
RECORDS = 40
# The page's own script: a button to click (automatic capture, once the logger is there).
BODY = '<button id="buy" type="button">Buy</button>'
LOADER_FILE = ROOT / "static" / "live-monitor-loader.js"

StartMonitor = Callable[..., AbstractContextManager[MonitorProcess]]


def readme_html() -> str:
    """The html block of the README's "Instrument your frontend" section, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## 🧩 Instrument your frontend\n")
    match = re.search(r"```html\n(.*?)```", text[start:], re.S)
    assert match, "the README's frontend section has no html block"
    return match.group(1)


def page_with(head: str) -> bytes:
    return f'<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">{head}<body>{BODY}'.encode()


class PageWatch:
    """What a page shows of trouble: uncaught errors, unhandled rejections, console errors and
    warnings, and the failed loads of ``bundle`` (the browser's own console line for each)."""

    def __init__(self, page: Page, bundle: str) -> None:
        self.errors: list[str] = []
        self.failed_loads = 0
        self.bundle = bundle
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("console", self._console)
        page.on("requestfailed", lambda request: self._failed(request.url))
        page.add_init_script(
            "addEventListener('unhandledrejection', (e) => console.error('unhandled rejection', e.reason))"
        )

    def _failed(self, url: str) -> None:
        if url == self.bundle:
            self.failed_loads += 1

    def _console(self, message: ConsoleMessage) -> None:
        own_line = (
            message.text.startswith("Failed to load resource") and message.location["url"] == self.bundle
        )
        if message.type in ("error", "warning") and not own_line:
            self.errors.append(f"console.{message.type}: {message.text}")


def monitor_events(monitor: MonitorProcess) -> list[dict[str, Any]]:
    answer = requests.get(f"{monitor.api}/data", params={"limit": 1000}, timeout=5)
    assert answer.status_code == 200, answer.text
    return [e for e in reversed(answer.json()["recent_events"]) if e["service"] == "frontend"]  # oldest first


def arrived(
    page: Page, monitor: MonitorProcess, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The monitor's frontend events once ``done`` holds for them (the page flushing meanwhile)."""
    events: list[dict[str, Any]] = []

    def check() -> bool:
        nonlocal events
        page.evaluate("() => monitor.flush()")
        events = monitor_events(monitor)
        return done(events)

    wait_for(check, timeout=20)
    return events


def until(page: Page, predicate: Callable[[], Any], timeout: float = 20.0) -> bool:
    """Poll ``predicate`` while Playwright delivers the page's events (a plain sleep would not)."""
    return wait_for(lambda: page.evaluate("0") == 0 and predicate(), timeout=timeout)


def of(events: list[dict[str, Any]], component: str) -> list[dict[str, Any]]:
    return [e for e in events if e["component"] == component]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium("static/live-monitor.js", "static/live-monitor-loader.js") as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_snippet_with_the_monitor_down_breaks_nothing_and_delivers_later(
    page: Page, start_monitor: StartMonitor
) -> None:
    port = free_port()  # nothing listens there until the monitor starts below
    monitor_url = f"http://127.0.0.1:{port}"
    bundle = f"{monitor_url}/static/live-monitor.js"
    site = PageServer({"/": ("text/html", page_with(readme_html().replace(README_URL, monitor_url)))})
    watch = PageWatch(page, bundle)
    try:
        page.goto(f"{site.origin}/")
        page.evaluate(
            f"""() => {{
            for (let i = 0; i < {RECORDS}; i++) monitor.record("checkout", "step", {{details: {{i}}}});
            const cart = monitor.trackComponent("Cart");
            cart.beginRender();
            cart.mount();
            cart.render(() => 1);
            window.pending = monitor.trackComponent("Basket");
            return monitor.flush();
            }}"""
        )
        assert until(page, lambda: watch.failed_loads >= 2, timeout=10), "the loader did not try again"
        made_before = time.time()
        assert page.evaluate("() => monitor.stats().queued") == RECORDS + 5
        assert watch.errors == []

        with start_monitor("--no-self-monitor", port=port) as monitor:
            # The next try of the loader brings the bundle, which replays the queue.
            assert until(page, lambda: page.evaluate("() => !!LiveMonitor.normalizeRoute"))
            page.evaluate("() => { window.pending.render(() => 2); fetch('/api/orders/42'); }")
            page.click("#buy")
            events = arrived(
                page, monitor, lambda got: len(of(got, "checkout")) == RECORDS and len(of(got, "api")) == 1
            )
    finally:
        site.stop()

    steps = of(events, "checkout")
    assert sorted(e["details"]["i"] for e in steps) == list(range(RECORDS))
    for event in steps:  # sent with the time they were made, not when the bundle came
        assert datetime.fromisoformat(event["timestamp"]).timestamp() <= made_before
    assert [(e["action"], e["status"]) for e in of(events, "Cart")] == [
        ("mount", "success"),
        ("update", "success"),
    ]
    assert [e["action"] for e in of(events, "Basket")] == [
        "mount"
    ]  # a stand-in tracker kept after the bundle came
    assert [e["action"] for e in of(events, "api")] == ["GET /api/orders/:id"]
    assert of(events, "click"), "clicks are not captured once the logger is there"
    assert watch.errors == [], "the page saw errors"
    assert 2 <= watch.failed_loads <= 4  # backing off: a few tries, not one per call


def test_snippet_with_the_monitor_up_captures_from_the_start(page: Page, start_monitor: StartMonitor) -> None:
    with start_monitor("--no-self-monitor") as monitor:
        html = readme_html().replace(README_URL, monitor.url)
        site = PageServer({"/": ("text/html", page_with(html))})
        watch = PageWatch(page, f"{monitor.url}/static/live-monitor.js")
        try:
            page.goto(f"{site.origin}/")  # the load event waits for the async bundle
            page.evaluate("() => fetch('/api/orders/7')")
            page.click("#buy")
            events = arrived(
                page, monitor, lambda got: bool(of(got, "api") and of(got, "click") and of(got, "page"))
            )
        finally:
            site.stop()
    assert [e["action"] for e in of(events, "api")] == ["GET /api/orders/:id"]
    assert page.evaluate("() => monitor.stats().sent") >= 3  # the page's handle is the logger's own
    assert watch.errors == [] and watch.failed_loads == 0


def test_loader_file_under_a_strict_csp(page: Page, start_monitor: StartMonitor) -> None:
    """The loader served by the page's own origin, the init call in a file: no inline script."""
    start = "const monitor = LiveMonitor.initLiveMonitor({endpoint: MONITOR}); monitor.record('csp', 'ok');"
    with start_monitor("--no-self-monitor") as monitor:
        bundle = f"{monitor.url}/static/live-monitor.js"
        # The policy a server would send as a header, in the page (Chromium enforces both alike).
        csp = f"script-src 'self' {monitor.url}; connect-src 'self' {monitor.url}"
        head = (
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<script src="/loader.js" data-bundle="{bundle}"></script><script src="/start.js"></script>'
            "<script>window.inline = true</script>"  # refused: the policy is in force
        )
        site = PageServer(
            {
                "/": ("text/html", page_with(head)),
                "/loader.js": ("text/javascript", LOADER_FILE.read_bytes()),
                "/start.js": ("text/javascript", start.replace("MONITOR", repr(monitor.url)).encode()),
            }
        )
        watch = PageWatch(page, bundle)
        try:
            page.goto(f"{site.origin}/")
            events = arrived(page, monitor, lambda got: bool(of(got, "csp")))
        finally:
            site.stop()
    assert [e["action"] for e in of(events, "csp")] == ["ok"]
    [refused] = watch.errors  # the page's own inline script, and nothing of the logger's
    assert "Executing inline script violates" in refused
