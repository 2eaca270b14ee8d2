"""The official OpenTelemetry web SDK, in headless Chromium, exporting to the monitor from
another origin.

A page instrumented as the SDK's users do (WebTracerProvider, BatchSpanProcessor, the OTLP/HTTP
trace exporter in JSON or protobuf, the fetch instrumentation; tests/browser/otel_web.ts,
bundled here with esbuild) is served from one origin and makes API calls to it; the monitor
runs on another, so each export is a cross-origin POST the browser preflights. Checked is what
the app's owner relies on: every call becomes a frontend ``api`` event under its endpoint key,
with the trace id the call carried to its backend; the preflight is answered for an origin in
``--cors-origins``; and the browser refuses to send anything from an origin outside it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page

from tests.helpers import (
    CLIENT,
    ROOT,
    MonitorProcess,
    PageServer,
    RedisServer,
    export,
    launch_chromium,
    run_bare_monitor,
    run_monitor,
    span,
)

pytestmark = pytest.mark.timeout(120)

ENTRY = ROOT / "tests" / "browser" / "otel_web.ts"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
PAGE = b"""<!doctype html><meta charset="utf-8"><title>shop</title><link rel="icon" href="data:,">
<script src="/otel_web.js"></script>"""
# what callApi() calls: orders 1, 2 and 0 (which fails with 500), and the cart
CALLS = [
    ("GET /api/orders/:id", 200),
    ("GET /api/orders/:id", 200),
    ("GET /api/orders/:id", 500),
    ("POST /api/cart", 200),
]
FAILED_ORDER = "Failed to load resource: the server responded with a status of 500 (Internal Server Error)"
TOKEN, INGEST_KEY = "read-token-5f2c", "ingest-key-9d41"
CONTENT_TYPES = {"json": "application/json", "protobuf": "application/x-protobuf"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The test page's script and the SDK, bundled as an app would ship them (into a temp dir)."""
    if not ESBUILD.exists():
        pytest.fail("esbuild is missing: run npm ci (make test does it)")
    out = tmp_path_factory.mktemp("otel-web") / "otel_web.js"
    options = ["--bundle", "--format=iife", "--target=es2022", "--log-level=warning"]
    subprocess.run([ESBUILD, ENTRY, *options, f"--outfile={out}"], check=True, cwd=ROOT, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def sites(bundle: bytes) -> Iterator[tuple[PageServer, PageServer]]:
    """Two origins serving the same app: the first in the monitor's --cors-origins, the second not."""
    files = {"/": ("text/html", PAGE), "/otel_web.js": ("text/javascript", bundle)}
    allowed, other = PageServer(files), PageServer(files)
    yield allowed, other
    allowed.stop()
    other.stop()


@pytest.fixture(scope="module")
def monitor(sites: tuple[PageServer, PageServer], bare_interpreter: Path) -> Iterator[MonitorProcess]:
    """A real monitor from a default install (requirements.txt alone) that takes browser calls
    from the allowed site's origin only."""
    with run_bare_monitor(bare_interpreter, "--no-self-monitor", "--cors-origins", sites[0].origin) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_monitor(sites: tuple[PageServer, PageServer]) -> Iterator[MonitorProcess]:
    """A monitor set up as off loopback: reads need the token, ingest the ingest key."""
    flags = ["--token", TOKEN, "--ingest-key", INGEST_KEY, "--cors-origins", sites[0].origin]
    with run_monitor("--no-self-monitor", *flags) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


class Network:
    """What the page's browser sent to the monitor, from DevTools: the CORS preflights with their
    answers' headers, and the content types of the exports themselves."""

    def __init__(self, page: Page, url: str) -> None:
        self.url = url
        self.preflights: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        session = page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self._request)
        session.on("Network.responseReceived", self._response)
        session.send("Network.enable")

    def _request(self, params: dict[str, Any]) -> None:
        request = params["request"]
        if request["url"] == self.url and request["method"] == "POST":
            headers = {k.lower(): v for k, v in request["headers"].items()}
            self.content_types.append(headers.get("content-type", ""))

    def _response(self, params: dict[str, Any]) -> None:
        if params.get("type") == "Preflight":
            response = params["response"]
            headers = {k.lower(): v for k, v in response["headers"].items()}
            self.preflights.append({"url": response["url"], "status": response["status"], "headers": headers})


def run_page(
    browser: Browser, site: PageServer, monitor: MonitorProcess, encoding: str, **headers: str
) -> dict[str, Any]:
    """Load the app from ``site``, export to ``monitor`` in ``encoding`` (with ``headers``), make
    the API calls and flush; what the page saw."""
    context = browser.new_context()
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    network = Network(page, f"{monitor.url}/v1/traces")
    seen = len(site.traceparents)
    try:
        page.goto(f"{site.origin}/")
        service = f"shop-web-{encoding}-{site.origin.rsplit(':', 1)[1]}"
        options = {
            "url": f"{monitor.url}/v1/traces",
            "encoding": encoding,
            "serviceName": service,
            "headers": headers,
        }
        page.evaluate("(options) => window.otelWeb.start(options)", options)
        statuses = page.evaluate("() => window.otelWeb.callApi()")
        page.wait_for_function(f"() => window.otelWeb.ended() >= {len(CALLS)}")
        flushed = page.evaluate("() => window.otelWeb.flush()")
    finally:
        context.close()
    return {
        "service": service,
        "statuses": statuses,
        "flushed": flushed,
        "console": console,
        "preflights": network.preflights,
        "content_types": network.content_types,
        "trace_ids": site.trace_ids()[seen:],
    }


def stored(monitor: MonitorProcess, service: str, token: str = "") -> list[dict[str, Any]]:
    """The monitor's events that came from ``service``'s spans (read with ``token`` if any)."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(f"{monitor.api}/data", params={"limit": 1000}, headers=auth, timeout=5)
    answer.raise_for_status()
    events = answer.json()["recent_events"]
    return [e for e in events if (e.get("details") or {}).get("service.name") == service]


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_web_sdk_spans_from_another_origin_become_frontend_events(
    browser: Browser, sites: tuple[PageServer, PageServer], monitor: MonitorProcess, encoding: str
) -> None:
    site = sites[0]
    seen = run_page(browser, site, monitor, encoding)
    assert seen["statuses"] == [status for _, status in CALLS]
    assert seen["flushed"] == "ok"
    assert set(seen["content_types"]) == {CONTENT_TYPES[encoding]}
    assert seen["console"] == [FAILED_ORDER]  # the browser's line for the app's own 500, nothing else
    events = stored(monitor, seen["service"])
    assert sorted((e["action"], e["details"]["http_status"]) for e in events) == sorted(CALLS)
    assert {(e["service"], e["component"]) for e in events} == {("frontend", "api")}
    assert sorted(e["status"] for e in events) == ["error", "success", "success", "success"]
    # each event carries the trace id its call sent to the backend, so the two sides meet
    assert len(set(seen["trace_ids"])) == len(CALLS)
    assert sorted(e["trace_id"] for e in events) == sorted(seen["trace_ids"])
    preflight = [p for p in seen["preflights"] if p["url"] == f"{monitor.url}/v1/traces"]
    assert preflight, seen["preflights"]
    headers = preflight[0]["headers"]
    assert 200 <= preflight[0]["status"] < 300
    assert headers["access-control-allow-origin"] == site.origin
    assert "content-type" in headers["access-control-allow-headers"].lower()


def test_an_origin_outside_cors_origins_gets_nothing_stored(
    browser: Browser, sites: tuple[PageServer, PageServer], monitor: MonitorProcess
) -> None:
    seen = run_page(browser, sites[1], monitor, "json")
    assert seen["statuses"] == [status for _, status in CALLS]  # the app itself works
    assert seen["flushed"] != "ok"
    assert any("CORS policy" in line for line in seen["console"]), seen["console"]
    # the browser asked, got no Access-Control-Allow-Origin for this origin, and sent nothing
    assert seen["preflights"], "the browser sent no preflight"
    assert {p["url"] for p in seen["preflights"]} == {f"{monitor.url}/v1/traces"}
    assert all("access-control-allow-origin" not in p["headers"] for p in seen["preflights"])
    assert stored(monitor, seen["service"]) == []


def test_an_ingest_key_header_passes_the_preflight(
    browser: Browser, sites: tuple[PageServer, PageServer], keyed_monitor: MonitorProcess
) -> None:
    """Off loopback the monitor wants credentials: the exporter's ``headers`` carry the ingest key
    (never the read token, which a page would leak), and the preflight allows the header."""
    seen = run_page(browser, sites[0], keyed_monitor, "protobuf", **{"X-Ingest-Key": INGEST_KEY})
    assert seen["flushed"] == "ok"
    events = stored(keyed_monitor, seen["service"], token=TOKEN)
    assert sorted((e["action"], e["details"]["http_status"]) for e in events) == sorted(CALLS)
    allowed = seen["preflights"][0]["headers"]["access-control-allow-headers"].lower()
    assert {"content-type", "x-ingest-key"} <= {h.strip() for h in allowed.split(",")}


def test_a_store_outage_tells_the_browser_when_to_retry(
    browser: Browser, sites: tuple[PageServer, PageServer], redis_server: RedisServer
) -> None:
    """The exporter (and the monitor's own logger) waits as long as Retry-After says, but a
    browser hides that header from a cross-origin caller unless the answer exposes it."""
    body = json.dumps(export(span(CLIENT, {"http.request.method": "GET", "url.path": "/api/orders/1"})))
    flags = ["--store", redis_server.url, "--cors-origins", sites[0].origin]
    with run_monitor("--no-self-monitor", *flags) as monitor:
        redis_server.stop()
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{sites[0].origin}/")
        seen = page.evaluate(
            """async ([url, body]) => {
                const headers = {"Content-Type": "application/json"};
                const response = await fetch(url, {method: "POST", headers, body});
                return [response.status, response.headers.get("Retry-After")];
            }""",
            [f"{monitor.url}/v1/traces", body],
        )
        context.close()
    assert seen == [503, "1"]
