"""The page's own requests in headless Chromium, with and without the browser logger.

One page makes every shape of fetch and XMLHttpRequest a page makes (tests/browser/network_shapes.js:
inherited init fields, Request objects, each body type, redirects followed and not, an abort
mid-body, a stream the page cancels, a reused XHR, ...). Its server records what it received
(method, headers, body) and the page records what it saw (status, type, body text, errors, XHR
events). Loaded once without the logger and once with it, the two must be the same, but for the
``traceparent`` the logger adds; and the logger's events say what happened to each call.
The same page also takes a burst of 2,000 clicks: counted in a few events, none dropped.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage

from tests.helpers import ROOT, wait_for

pytestmark = pytest.mark.timeout(120)

SHAPES = (ROOT / "tests" / "browser" / "network_shapes.js").read_bytes()
PAGE = b"""<!doctype html><meta charset="utf-8"><title>shapes</title><link rel="icon" href="data:,">
<script>
window.ready = location.hash !== "#logger" ? Promise.resolve() : new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = "/live-monitor.js";
  script.onerror = reject;
  script.onload = () => resolve(window.monitor = LiveMonitor.initLiveMonitor({
    endpoint: location.origin, flushIntervalMs: 60000,
    capture: {clicks: false, scrolls: false, pageLoad: false, webVitals: false},
  }));
  document.head.append(script);
});
</script><script src="/shapes.js"></script>"""
INGEST = "/api/live-execution/events"
STREAM_BYTES = 64 * 1024 * 1024  # far more than the browser and the kernel buffer
SLOW_CHUNKS = 20  # of 1 KiB, 50 ms apart: a body that takes a second
PAGE_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")

# The events the logger reports, by endpoint key: (status, http_status, details.error), in the
# order the calls ended. The XHRs reused for two requests report two events, not four.
EXPECTED = sorted(
    [
        ("GET /api/shape/get", "success", 200, None),
        ("POST /api/shape/inherited", "success", 200, None),
        ("PUT /api/shape/request", "success", 200, None),
        ("POST /api/shape/request-init", "success", 200, None),
        ("GET /api/shape/integrity", "error", 0, "TypeError"),
        ("GET /api/shape/redirect", "error", 0, "TypeError"),
        ("POST /api/shape/body-text", "success", 200, None),
        ("POST /api/shape/body-params", "success", 200, None),
        ("POST /api/shape/body-form", "success", 200, None),
        ("POST /api/shape/body-blob", "success", 200, None),
        ("POST /api/shape/body-buffer", "success", 200, None),
        ("POST /api/shape/body-bytes", "success", 200, None),
        ("POST /api/shape/body-view", "success", 200, None),
        ("POST /api/shape/body-stream", "error", 0, "TypeError"),
        ("GET /api/shape/own-trace", "success", 200, None),
        ("GET /api/shape/redirect", "success", 200, None),
        ("GET /api/shape/redirect", "success", 0, None),
        ("GET /api/shape/fail", "error", 500, None),
        ("GET /api/shape/missing", "success", 404, None),
        ("GET localhost:PORT/api/shape/opaque", "success", 0, None),
        ("GET /api/shape/slow", "error", 200, "AbortError"),
        ("GET /api/shape/stream", "success", 200, None),
        ("GET /api/shape/xhr-get", "success", 200, None),
        ("POST /api/shape/xhr-post", "success", 200, None),
        ("GET /api/shape/xhr-fail", "error", 500, None),
        ("GET localhost:PORT/api/shape/xhr-cors", "success", 200, None),
        ("GET /api/shape/xhr-reused/:id", "success", 200, None),
        ("GET /api/shape/xhr-reused/:id", "success", 200, None),
        ("GET /api/shape/xhr-again/:id", "success", 200, None),
        ("GET /api/shape/xhr-again/:id", "success", 200, None),
        ("GET /api/shape/slow", "error", 0, "AbortError"),
        ("GET /api/shape/slow", "error", 0, "TimeoutError"),
    ],
    key=repr,
)


class ShapeServer:
    """The page's origin: the page, the logger, the shapes' API (recording what it received,
    and whether a long body was sent to its end) and an ingest endpoint keeping the events."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.traceparents: dict[str, list[str]] = {}
        self.events: list[dict[str, Any]] = []
        self.streamed: list[bool] = []  # per stream asked for: sent to its end
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> tuple[list[dict[str, Any]], list[bool]]:
        """What the API received since the last call, and whether each stream was sent whole
        (once the stream's sender has stopped)."""
        assert wait_for(lambda: self.streamed)
        with self.lock:
            taken = (self.received, self.streamed)
            self.received, self.streamed = [], []
        return taken

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self
        files = {
            "/": ("text/html", PAGE),
            "/shapes.js": ("text/javascript", SHAPES),
            "/live-monitor.js": ("text/javascript", (ROOT / "static" / "live-monitor.js").read_bytes()),
        }

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path in files:
                    self._send(200, *files[self.path])
                else:
                    self._api(b"")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == INGEST:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    with site.lock:
                        site.events.extend(json.loads(body)["events"])
                    self._send(200, "application/json", b'{"accepted": 1}')
                else:
                    self._api(body)

            do_PUT = do_POST  # noqa: N815

            def _api(self, body: bytes) -> None:
                url = urlsplit(self.path)
                name = url.path.removeprefix("/api/shape/")
                with site.lock:
                    site.received.append(self._record(body))
                if name == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/api/shape/target")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif name in ("slow", "stream"):
                    self._long(name)
                else:
                    status = int(parse_qs(url.query).get("status", ["200"])[0])
                    answer = json.dumps({"method": self.command, "path": url.path}).encode()
                    extra = {"Server-Timing": "app;dur=1.5"}
                    if self.headers.get("Origin"):  # another origin may read it, but not its Server-Timing
                        extra["Access-Control-Allow-Origin"] = "*"
                    self._send(status, "application/json", answer, extra)

            def _record(self, body: bytes) -> dict[str, Any]:
                """Method, path, headers and body as received; a multipart boundary (random
                for each request) is replaced, and the traceparent kept aside."""
                headers = {k.lower(): v for k, v in self.headers.items()}
                site.traceparents.setdefault(self.path, []).append(headers.pop("traceparent", ""))
                boundary = re.search(r"boundary=(\S+)", headers.get("content-type", ""))
                if boundary:
                    headers["content-type"] = headers["content-type"].replace(boundary[1], "BOUNDARY")
                    body = body.replace(boundary[1].encode(), b"BOUNDARY")
                return {"method": self.command, "path": self.path, "headers": headers, "body": body.decode()}

            def _long(self, name: str) -> None:
                """A body sent piece by piece: ``slow`` over a second, ``stream`` as fast as
                it is read (whether it was sent to its end is recorded)."""
                size, piece = (SLOW_CHUNKS * 1024, 1024) if name == "slow" else (STREAM_BYTES, 65536)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                whole = True
                try:
                    for _ in range(size // piece):
                        self.wfile.write(b"x" * piece)
                        self.wfile.flush()
                        if name == "slow":
                            threading.Event().wait(0.05)
                except OSError:
                    whole = False
                    self.close_connection = True
                if name == "stream":
                    with site.lock:
                        site.streamed.append(whole)

            def _send(
                self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[ShapeServer]:
    server = ShapeServer()
    yield server
    server.stop()


def distinct(received: list[dict[str, Any]]) -> list[str]:
    """Each request received, once: the browser itself may send one again on a new connection
    (each shape asks for its own URL, so this hides no shape)."""
    return sorted({json.dumps(request, sort_keys=True) for request in received})


def run_page(browser: Browser, site: ShapeServer, logger: bool) -> tuple[dict[str, Any], list[str]]:
    """Loads the page (with the logger or without) and runs every shape: what the page saw,
    and the errors thrown into it or written to its console."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.goto(site.url + ("/#logger" if logger else "/"))
    page.evaluate("() => window.ready")
    seen = page.evaluate("() => runShapes()")
    if logger:
        page.wait_for_function(f"() => window.monitor.stats().queued >= {len(EXPECTED)}")
        page.evaluate("() => window.monitor.flush()")
    context.close()
    return seen, errors


def test_every_request_shape_goes_and_answers_as_without_the_logger(
    browser: Browser, site: ShapeServer
) -> None:
    seen_without, errors_without = run_page(browser, site, logger=False)
    received_without, streamed_without = site.take()
    seen_with, errors_with = run_page(browser, site, logger=True)
    received_with, streamed_with = site.take()

    assert seen_with == seen_without
    assert distinct(received_with) == distinct(received_without)
    assert errors_with == errors_without  # the console's own network errors, nothing more
    # the page cancelled the stream: the logger does not read it to its end
    assert streamed_with == streamed_without == [False]
    # what the page saw is what the server answered (the comparison above is not of two failures)
    assert seen_with["init inherited from a prototype"]["text"] == json.dumps(
        {"method": "POST", "path": "/api/shape/inherited"}
    )
    assert seen_with["redirect manual"] == {
        "status": 0,
        "statusText": "",
        "type": "opaqueredirect",
        "redirected": False,
        "ok": False,
        "text": "",
    }
    assert seen_with["abort mid-body"]["rest"] == "AbortError"
    assert seen_with["XHR reused"] == [[200, '{"method": "GET", "path": "/api/shape/xhr-reused/1"}']] + [
        [200, '{"method": "GET", "path": "/api/shape/xhr-reused/2"}']
    ]
    bodies = {r["path"]: r["body"] for r in received_with}
    assert bodies["/api/shape/inherited"] == "x" and bodies["/api/shape/request"] == '{"a":1}'


def test_the_logger_reports_each_call_once_as_it_ended(browser: Browser, site: ShapeServer) -> None:
    site.events.clear()
    site.traceparents.clear()
    run_page(browser, site, logger=True)
    site.take()
    calls = [e for e in site.events if e["component"] in ("api", "http-client")]
    port = str(site.server.server_address[1])
    got = sorted(
        (
            (
                e["action"].replace(port, "PORT"),
                e["status"],
                e["details"]["http_status"],
                e["details"].get("error"),
            )
            for e in calls
        ),
        key=repr,
    )
    assert got == EXPECTED
    manual = [e for e in calls if e["details"].get("response_type") == "opaqueredirect"]
    assert len(manual) == 1 and manual[0]["action"] == "GET /api/shape/redirect"
    [opaque] = [e for e in calls if e["action"].endswith("/opaque")]
    assert opaque["details"]["response_type"] == "opaque"
    # a same-origin call carries the logger's traceparent, and its event the same ids; the
    # page's own traceparent goes as the page set it, and names the call's trace
    [sent] = site.traceparents["/api/shape/get"]
    [get] = [e for e in calls if e["action"] == "GET /api/shape/get"]
    match = TRACEPARENT.match(sent)
    assert match and match.groups() == (get["trace_id"], get["span_id"])
    assert site.traceparents["/api/shape/own-trace"] == [PAGE_TRACEPARENT]
    [own] = [e for e in calls if e["action"] == "GET /api/shape/own-trace"]
    assert own["trace_id"] == PAGE_TRACEPARENT.split("-")[1]
    assert site.traceparents["/api/shape/opaque"] == [""]  # another origin: not a target
    # the stream is reported when the page cancelled it, having read a little of it
    [stream] = [e for e in calls if e["action"] == "GET /api/shape/stream"]
    assert stream["details"]["backend_ms"] is None and stream["duration_ms"] >= 0


BURST = """async () => {
  window.monitor.stop();
  const monitor = LiveMonitor.initLiveMonitor({endpoint: location.origin, flushIntervalMs: 60000,
    capture: {pageLoad: false, webVitals: false}});
  const button = Object.assign(document.createElement("button"), {id: "buy"});
  document.body.append(button);
  for (let i = 0; i < 2000; i++) button.click();
  window.monitor = monitor;
}"""


def test_a_burst_of_2000_clicks_is_a_few_events_counting_them_all(
    browser: Browser, site: ShapeServer
) -> None:
    site.events.clear()
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/#logger")
    page.evaluate("() => window.ready")
    page.evaluate(BURST)
    page.wait_for_function("() => window.monitor.stats().queued >= 2")  # the burst's window ended
    page.evaluate("() => window.monitor.flush()")
    stats = page.evaluate("() => window.monitor.stats()")
    context.close()
    clicks = [e for e in site.events if e["component"] == "click"]
    assert [(e["action"], e["details"]["count"]) for e in clicks] == [("button#buy", 1), ("button#buy", 1999)]
    assert stats["dropped"] == 0 and stats["sent"] == 2
