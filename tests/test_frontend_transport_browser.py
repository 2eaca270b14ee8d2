"""The browser logger's transport in headless Chromium: what reaches the monitor when it goes
away and comes back, when it asks to wait, when the page leaves with more queued than the
browser lets a leaving page send, and whether the page's own beacons still go while it runs.

Pages are served from one origin (the built ``static/live-monitor.js`` among their files), the
monitor (a real one, or a stub that records each request's time, encoding and events) from
another, so every send is a cross-origin POST, as in production.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, Request

from tests.helpers import ROOT, PageServer, run_monitor, wait_for

pytestmark = pytest.mark.timeout(150)

UNLOAD_BUDGET = 32 * 1024  # frontend/transport.ts UNLOAD_BUDGET_BYTES: half of the page's 64 KiB
NO_CAPTURE = "{api: false, clicks: false, scrolls: false, forms: false, pageLoad: false, webVitals: false, errors: false}"


class StubMonitor:
    """The ingest endpoint on a port of its own, answering CORS as the monitor does; records
    each POST as (monotonic time, wall time, Content-Encoding, compressed size, events).
    ``script`` holds (status, headers) answers to give first; with ``delay``, each answer's body
    ends that many seconds after its first byte (a slow network: the request stays in flight
    until its answer has been read to the end)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.posts: list[tuple[float, float, str, int, list[dict[str, Any]]]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.delay = delay
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
                self.send_response(204)
                self._cors()
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header(
                    "Access-Control-Allow-Headers", "Content-Type, Content-Encoding, X-Ingest-Key"
                )
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding") or ""
                body = json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)
                with stub.lock:
                    stub.posts.append((time.monotonic(), time.time(), encoding, len(raw), body["events"]))
                    status, headers = stub.script.pop(0) if stub.script else (200, {})
                data = json.dumps({"accepted": len(body["events"])} if status == 200 else {"error": "busy"})
                self.send_response(status)
                self._cors()
                for name, value in headers.items():
                    # an HTTP date is made when the answer is given, as a server does
                    self.send_header(
                        name, formatdate(time.time() + 2, usegmt=True) if value == "date+2" else value
                    )
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:1].encode())
                self.wfile.flush()
                time.sleep(stub.delay)
                self.wfile.write(data[1:].encode())

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Expose-Headers", "Retry-After")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for *_, events in self.posts for event in events]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page_html(endpoint: str, options: str = "", logger: bool = True) -> bytes:
    """A page with a button, and (unless ``logger`` is False) the logger started with ``options``."""
    start = f"""<script src="/live-monitor.js"></script><script>
window.monitor = LiveMonitor.initLiveMonitor({{endpoint: "{endpoint}", flushIntervalMs: 60000,
  capture: {NO_CAPTURE}, {options}}});
</script>"""
    return f"""<!doctype html><html><head><link rel="icon" href="data:,">{start if logger else ""}</head>
<body><button id="buy">Buy</button></body></html>""".encode()


def site(pages: dict[str, bytes]) -> PageServer:
    """An origin serving ``pages`` (path -> html) and the built logger."""
    bundle = (ROOT / "static" / "live-monitor.js").read_bytes()
    files = {path: ("text/html", html) for path, html in pages.items()}
    return PageServer({**files, "/live-monitor.js": ("text/javascript", bundle)})


@pytest.fixture
def stub() -> Iterator[StubMonitor]:
    monitor = StubMonitor()
    yield monitor
    monitor.stop()


def ticks_stored(url: str, component: str) -> list[int]:
    """The numbers of the ticks a real monitor holds from ``component`` (one page's ticks)."""
    answer = requests.get(f"{url}/api/live-execution/data", params={"limit": 5000, "history": 0}, timeout=5)
    return [e["details"]["n"] for e in answer.json()["recent_events"] if e["component"] == component]


def record_ticks(page: Page, component: str) -> None:
    """The page records an event every 100 ms until told to stop (window.ticks counts them)."""
    page.evaluate(
        """(component) => { window.ticks = 0; window.ticker = setInterval(
             () => window.monitor.record(component, "tick", {details: {n: ++window.ticks}}), 100); }""",
        component,
    )


def test_a_30_s_outage_loses_nothing_and_keeps_the_console_quiet(browser: Browser) -> None:
    """Monitor down for 30 s of page activity, then back on the same port. Page ``scaled``
    backs off to at most 2 s (so the test need not wait a minute for its next probe) and must
    deliver at least 95% of what it recorded; page ``default`` runs with the real defaults
    (backoff up to 60 s): its attempts and console messages over the outage are counted."""
    with run_monitor("--no-self-monitor") as first:
        port, url = first.port, first.url
        origin = site(
            {
                "/scaled": page_html(url, "retryBaseMs: 500, maxRetryDelayMs: 2000, flushIntervalMs: 1000"),
                "/default": page_html(url, "flushIntervalMs: 1000"),
            }
        )
        scaled, default = browser.new_page(), browser.new_page()
        scaled.goto(f"{origin.origin}/scaled")
        default.goto(f"{origin.origin}/default")
        attempts: list[str] = []
        console: list[str] = []

        def attempted(request: Request) -> None:
            if request.method == "POST" and request.url.endswith("/api/live-execution/events"):
                attempts.append(request.url)

        default.on("request", attempted)
        default.on("console", lambda message: console.append(message.text))
        record_ticks(scaled, "scaled")
        record_ticks(default, "default")
        # a first delivery while the monitor is up, then the outage
        assert wait_for(lambda: len(ticks_stored(url, "scaled")) > 5, timeout=10)
        delivered = ticks_stored(url, "scaled")
        first.stop()
    try:
        default.evaluate("() => 0")  # what happened before the outage is reported by now
        attempts.clear()
        console.clear()
        default.wait_for_timeout(30_000)  # the outage: both pages keep recording
        down_attempts, down_console = len(attempts), list(console)
        print(f"outage: {down_attempts} attempts, console: {down_console}")
        with run_monitor("--no-self-monitor", port=port) as second:
            recorded = scaled.evaluate("() => { clearInterval(window.ticker); return window.ticks; }")
            default.evaluate("() => clearInterval(window.ticker)")
            assert wait_for(lambda: scaled.evaluate("() => monitor.stats().queued") == 0, timeout=15)
            stats = scaled.evaluate("() => monitor.stats()")
            delivered += ticks_stored(second.url, "scaled")
    finally:
        origin.stop()
    assert stats["failed"] == 0 and stats["dropped"] == 0, stats
    assert len(delivered) == len(set(delivered)), "an event arrived twice"
    assert len(delivered) >= 0.95 * recorded, f"{len(delivered)} of {recorded} events arrived"
    # One probe at a time, backing off (about 7 attempts): the old transport, posting each batch
    # and retrying it three times, made 100 attempts in the same 30 s on this page. The browser
    # logs one network error per failed attempt; the logger adds nothing to the console.
    assert 1 <= down_attempts <= 10, f"{down_attempts} attempts in 30 s"
    assert len(down_console) <= down_attempts, down_console


def test_retry_after_is_honoured_in_seconds_and_as_a_date(browser: Browser, stub: StubMonitor) -> None:
    """503 with ``Retry-After: 2``, then 429 with an HTTP date 2 s ahead, then 200: the retries
    come no earlier than asked (times taken by the server), and the batch arrives once."""
    stub.script = [(503, {"Retry-After": "2"}), (429, {"Retry-After": "date+2"})]
    origin = site({"/": page_html(stub.url, "retryBaseMs: 100")})
    try:
        page = browser.new_page()
        page.goto(f"{origin.origin}/")
        page.evaluate("() => { for (const n of [1, 2, 3]) monitor.record('shop', 'pay', {details: {n}}); }")
        page.evaluate("() => monitor.flush()")
        assert wait_for(lambda: len(stub.posts) == 3, timeout=10)
        assert wait_for(lambda: page.evaluate("() => monitor.stats().sent") == 3, timeout=5)
    finally:
        origin.stop()
    (first, _, *_), (second, second_wall, *_), (third, third_wall, *_) = stub.posts
    assert second - first >= 2.0, f"retried {second - first:.2f} s after a 503 asking for 2 s"
    asked = formatdate(second_wall + 2, usegmt=True)  # the date the 429 named (whole seconds)
    assert third_wall >= int(second_wall + 2), f"retried before {asked}"
    assert [e["details"]["n"] for e in stub.events()[-3:]] == [1, 2, 3]


def test_unload_sends_what_fits_and_the_next_page_sends_the_rest(browser: Browser, stub: StubMonitor) -> None:
    """200 KB queued when the page leaves: gzip keepalive posts within half the page's 64 KiB,
    the rest kept in sessionStorage and sent by the next page of the same origin; each once."""
    options = "batchSize: 500"
    origin = site({"/one": page_html(stub.url, options), "/two": page_html(stub.url, options)})
    try:
        page = browser.new_page()
        page.goto(f"{origin.origin}/one")
        page.evaluate(
            """() => { for (let n = 0; n < 400; n++) {
                 const noise = Array.from({length: 40}, () => Math.random().toString(36).slice(2)).join("");
                 monitor.record("shop", "view", {details: {n, noise: noise.slice(0, 450)}}); } }"""
        )
        assert page.evaluate("() => monitor.stats().queued") == 400
        page.goto(f"{origin.origin}/two")
        assert wait_for(lambda: len(stub.events()) >= 400, timeout=10)
        restored = page.evaluate("() => monitor.stats().restored")
    finally:
        origin.stop()
    unload = [(size, events) for _, _, encoding, size, events in stub.posts if encoding == "gzip"]
    later = [events for _, _, encoding, _, events in stub.posts if encoding != "gzip"]
    assert unload and sum(size for size, _ in unload) <= UNLOAD_BUDGET
    sent_at_unload = sum(len(events) for _, events in unload)
    assert 0 < sent_at_unload < 400 and restored == 400 - sent_at_unload
    assert sum(len(events) for events in later) == restored
    assert sorted(e["details"]["n"] for e in stub.events()) == list(range(400))


BEACON_CHECK = """async () => {
  const body = "x".repeat(20 * 1024);
  const beacon = navigator.sendBeacon("/api/beacon", body);
  const fetched = await fetch("/api/keepalive", {method: "POST", body, keepalive: true})
    .then((r) => r.ok, () => false);
  return [beacon, fetched];
}"""
BURST = """async () => {
  const button = document.getElementById("buy");
  // the app reports each add to cart itself, as well as the logger seeing the click
  button.onclick = (e) => window.monitor?.record("cart", "add", {details: {item: "sku-" + e.timeStamp}});
  for (let i = 0; i < 300; i++) {
    button.click();
    if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 5));
  }
}"""


def test_the_pages_own_beacons_go_during_a_click_burst(browser: Browser) -> None:
    """300 clicks (each reported by the app too) with the logger capturing them and a monitor
    whose answers take 1 s to come in full: the page's 20 KB sendBeacon and keepalive fetch
    succeed, as on the same page without the logger, and every event arrives. (A logger posting
    with keepalive and leaving its answers unread holds the page's 64 KiB allowance until they
    end: three batches of 100 events are more than 64 KiB.)"""
    slow = StubMonitor(delay=1.0)
    options = f"capture: {{...{NO_CAPTURE}, clicks: true}}, flushIntervalMs: 200, batchSize: 100"
    origin = site({"/with": page_html(slow.url, options), "/without": page_html(slow.url, logger=False)})
    try:
        page = browser.new_page()
        page.goto(f"{origin.origin}/with")
        with_logger = burst_then_beacons(page)
        assert wait_for(lambda: page.evaluate("() => monitor.stats().queued") == 0, timeout=15)
        stats = page.evaluate("() => monitor.stats()")
        page.close()
        page = browser.new_page()
        page.goto(f"{origin.origin}/without")
        without_logger = burst_then_beacons(page)
        page.close()
    finally:
        origin.stop()
        slow.stop()
    assert with_logger == without_logger == [True, True]
    assert stats["failed"] == stats["dropped"] == 0 and stats["sent"] > 0, stats
    assert len(slow.events()) == stats["sent"]


def burst_then_beacons(page: Page) -> list[bool]:
    """The click burst, then the page's own beacon and keepalive fetch: whether each went."""
    page.evaluate(BURST)
    page.wait_for_timeout(300)  # the logger's batches are out, awaiting their answers
    return list(page.evaluate(BEACON_CHECK))
