"""End to end: the example shop and the README's instrumentation snippets against a real monitor.

The monitor and ``examples/shop/app.py`` run as real processes on free ports and the page runs
in headless Chromium. Checked is what a user of the monitor relies on: every kind of browser
event arrives; the browser's API calls and the backend's requests share trace ids and endpoint
keys; the endpoint table pairs them with a gap; the failing call is an error on both sides; no
form value reaches the monitor; and the README's two snippets work exactly as written.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

import backend_logging_config as blc
from examples.shop.app import create_app, main

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

ROOT = Path(__file__).resolve().parent.parent
SHOP = "examples/shop/app.py"
SHOP_JS = ROOT / "examples" / "shop" / "static" / "shop.js"
README_URL = "http://localhost:5001"
CARD, EMAIL, QUERY = "4111 1111 1111 1111", "secret@example.com", "secret-query-7f3a"
KEYS = {
    "GET /api/products",
    "GET /api/products/:id",
    "POST /api/cart",
    "GET /api/orders/:id",
    "POST /api/checkout",
}


def readme_block(section: str, language: str) -> str:
    """The first ```language block under the README heading ``## 🧩 {section}``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.find(f"## 🧩 {section}\n")
    assert start >= 0, f"README.md has no '## 🧩 {section}' section"
    end = text.find("\n## ", start + 1)
    match = re.search(rf"```{language}\n(.*?)```", text[start : end if end > 0 else None], re.S)
    assert match, f"README section {section!r} has no {language} code block"
    return match.group(1)


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """Call ``fetch`` until ``done`` holds for its result or ``timeout`` passes; the last result."""
    deadline = time.monotonic() + timeout
    result = fetch()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(0.2)
        result = fetch()
    return result


def monitor_data(api: str) -> dict[str, Any]:
    response = requests.get(f"{api}/data", params={"limit": 1000}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def side(data: dict[str, Any], service: str, component: str | None = None) -> list[dict[str, Any]]:
    """The stored events of one service (and component), oldest first."""
    return [
        e
        for e in reversed(data["recent_events"])
        if e["service"] == service and (component is None or e["component"] == component)
    ]


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; an uncaught error in it fails the test."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def test_shop_page_reaches_the_monitor_from_both_sides(page: Page, start_monitor: Any) -> None:
    with (
        start_monitor("--no-self-monitor") as monitor,
        start_monitor("--monitor-url", monitor.url, script=SHOP) as shop,
    ):
        page.goto(f"{shop.url}/")
        body = page.locator("body")
        expect(body).to_have_attribute("data-ready", "true")
        expect(body).to_have_attribute("data-monitor", "on")
        page.locator("button.view-product").first.click()
        expect(page.locator("#product-detail")).to_contain_text("Espresso beans")
        page.locator("button.add-to-cart").nth(1).click()
        expect(page.locator("#cart-summary")).to_contain_text("1 item(s)")
        page.click("#show-order")
        expect(page.locator("#order-view")).to_have_text("Order 1001: shipped")
        page.fill("#search", QUERY)
        page.click("#search-button")
        expect(page.locator("#product-list li")).to_have_count(0)
        page.fill("#email", EMAIL)
        page.fill("#card", CARD)
        page.click("#pay")
        expect(page.locator("#checkout-result")).to_have_text("Failed: payment provider unavailable")
        page.mouse.wheel(0, 5000)
        page.wait_for_function("() => window.scrollY > 0")
        page.click("#close-cart")
        expect(page.locator("#close-cart")).to_have_text("Open cart")

        def snapshot() -> dict[str, Any]:
            page.evaluate("() => window.shop.monitor.flush()")
            return monitor_data(monitor.api)

        def complete(data: dict[str, Any]) -> bool:
            calls = side(data, "frontend", "api")
            traces = {e["trace_id"] for e in side(data, "backend", "http")}
            seen = {(e["component"], e["action"]) for e in side(data, "frontend")}
            rows = {row["key"]: row for row in data["endpoints"]}
            return (
                {call["action"] for call in calls} == KEYS
                and all(call.get("trace_id") in traces for call in calls)
                and all(rows.get(key, {}).get("matched_requests") for key in KEYS)
                and {("Cart", "unmount"), ("ProductList", "update")} <= seen
            )

        data = poll(snapshot, complete)

    events = data["recent_events"]
    front = side(data, "frontend")
    kinds = {e["component"] for e in front}
    assert {"click", "scroll", "form", "api", "page", "web-vitals"} <= kinds, kinds
    lifecycle = {(e["component"], e["action"]) for e in front if e["component"] in ("Cart", "ProductList")}
    assert lifecycle == {
        ("Cart", "mount"),
        ("Cart", "update"),
        ("Cart", "unmount"),
        ("ProductList", "mount"),
        ("ProductList", "update"),
    }
    clicks = {e["action"] for e in side(data, "frontend", "click")}
    assert {"button.view-product", "button.add-to-cart", "button#show-order", "button#pay"} <= clicks
    [form] = [e for e in side(data, "frontend", "form") if e["action"] == "submit form#checkout-form"]
    assert form["details"]["field_count"] == 3
    assert all(e["details"]["depth_pct"] > 0 for e in side(data, "frontend", "scroll"))
    [load] = side(data, "frontend", "page")
    assert load["action"] == "load" and load["duration_ms"] > 0
    assert {e["action"] for e in side(data, "frontend", "web-vitals")} <= {"FCP", "LCP", "CLS", "INP", "TTFB"}

    calls = side(data, "frontend", "api")
    backend = {e["trace_id"]: e for e in side(data, "backend", "http")}
    assert {call["action"] for call in calls} == KEYS
    assert len({call["trace_id"] for call in calls}) == len(calls)
    for call in calls:  # the same request seen from both sides: one trace id, one key
        server = backend.get(call["trace_id"])
        assert server is not None, f"no backend request with the trace of {call}"
        assert server["action"] == call["action"]
        assert server["details"]["http_status"] == call["details"]["http_status"]
        assert call["duration_ms"] >= server["duration_ms"]
        assert call["details"]["backend_ms"] is not None

    [checkout] = [c for c in calls if c["action"] == "POST /api/checkout"]
    server = backend[checkout["trace_id"]]
    assert (checkout["status"], checkout["details"]["http_status"]) == ("error", 500)
    assert (server["status"], server["details"]["http_status"]) == ("error", 500)
    charged = [e for e in side(data, "backend") if e["component"] == "payments"]
    assert charged and all(e["trace_id"] == checkout["trace_id"] for e in charged)

    rows = {row["key"]: row for row in data["endpoints"]}
    for key in KEYS:
        row = rows[key]
        assert row["seen_by"] == "both" and row["matched_requests"] >= 1, row
        assert row["gap_p50_ms"] is not None and row["matched_gap_p50_ms"] >= 0, row
    failing = rows["POST /api/checkout"]
    assert failing["backend"]["error_count"] >= 1 and failing["frontend"]["error_count"] >= 1

    raw = json.dumps(data)
    for secret in (CARD, CARD.replace(" ", ""), EMAIL, QUERY):
        assert secret not in raw, f"{secret!r} reached the monitor"
    assert len(events) < 1000  # below the limit asked for: the search above saw every event


README_SERVER = """
from pathlib import Path

from waitress import create_server

import readme_app

PAGE = Path(__file__).with_name("readme_page.html").read_text()
readme_app.app.add_url_rule("/", "page", lambda: PAGE)
readme_app.app.add_url_rule("/health", "health", lambda: {"status": "ok"})
server = create_server(readme_app.app, host="127.0.0.1", port=0)
print(f"serving on http://127.0.0.1:{server.effective_port}", flush=True)
server.run()
"""


def test_readme_snippets_work_together_as_written(page: Page, start_monitor: Any, tmp_path: Path) -> None:
    """The README's Flask app serves a page holding the README's html: both ends, as written."""
    python = readme_block("Instrument your backend", "python")
    html = readme_block("Instrument your frontend", "html")
    assert python.count(README_URL) == 2 and html.count(README_URL) == 2
    with start_monitor("--no-self-monitor") as monitor:
        (tmp_path / "readme_app.py").write_text(python.replace(README_URL, monitor.url))
        (tmp_path / "readme_page.html").write_text(
            f"<!doctype html><html><head><title>README</title></head><body>"
            f"{html.replace(README_URL, monitor.url)}</body></html>"
        )
        (tmp_path / "serve_readme.py").write_text(README_SERVER)
        env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
        with start_monitor(script=str(tmp_path / "serve_readme.py"), env=env) as app:
            page.goto(f"{app.url}/")
            answers = page.evaluate(
                "() => Promise.all(['/api/orders/42', '/api/orders/7'].map("
                "(path) => fetch(path).then(async (r) => [r.status, await r.json()])))"
            )
            assert answers == [[200, {"id": 42, "total": 89.55}], [404, {"error": "no such order"}]]

            def snapshot() -> dict[str, Any]:
                page.evaluate("() => monitor.flush()")  # the snippet's own `monitor`
                return monitor_data(monitor.api)

            def joined(data: dict[str, Any]) -> bool:
                calls = side(data, "frontend", "api")
                traces = {e["trace_id"] for e in side(data, "backend")}
                return len(calls) == 2 and all(call.get("trace_id") in traces for call in calls)

            data = poll(snapshot, joined)

    calls = {call["details"]["http_status"]: call for call in side(data, "frontend", "api")}
    assert {call["action"] for call in calls.values()} == {"GET /api/orders/:id"}
    assert calls[200]["details"]["backend_ms"] is not None  # Server-Timing reached the page
    for status, call in calls.items():
        [server] = [e for e in side(data, "backend", "http") if e["trace_id"] == call["trace_id"]]
        assert (server["action"], server["details"]["http_status"]) == (call["action"], status)
    found = calls[200]["trace_id"]
    traced = {(e["component"], e["action"]) for e in side(data, "backend") if e["trace_id"] == found}
    assert traced == {
        ("http", "GET /api/orders/:id"),
        ("db", "load_order"),
        ("pricing", "apply_discount"),
        ("orders", "loaded"),
    }


def test_example_code_is_the_readme_code() -> None:
    """The shop runs the README's lines, with its own monitor URL in place of the README's."""
    python = readme_block("Instrument your backend", "python")
    app_source = (ROOT / SHOP).read_text(encoding="utf-8")
    init_line = next(line for line in python.splitlines() if line.startswith("init_app("))
    assert init_line.replace(f'"{README_URL}"', "monitor_url") in app_source
    assert "from backend_logging_config import configure_logging, init_app, track" in python
    assert "from backend_logging_config import configure_logging, init_app, track" in app_source

    html = readme_block("Instrument your frontend", "html")
    init_call = re.search(r"<script>\n(\s+const monitor = .*?)</script>", html, re.S)
    assert init_call, "the README's html block has no init <script>"
    snippet = init_call.group(1).replace(f'"{README_URL}"', "monitorUrl")
    expected = [line.strip() for line in snippet.splitlines()]
    shop_lines = [line.strip() for line in SHOP_JS.read_text(encoding="utf-8").splitlines()]
    start = shop_lines.index(expected[0])
    assert shop_lines[start : start + len(expected)] == expected
    assert "${monitorUrl}/static/live-monitor.js" in SHOP_JS.read_text(encoding="utf-8")


def test_shop_api_works_without_a_monitor() -> None:
    app = create_app("http://127.0.0.1:9")  # nothing listens there: events are dropped
    try:
        client = app.test_client()
        page = client.get("/")
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self' http://127.0.0.1:9;" in csp and "unsafe-inline" not in csp
        assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page.get_data(as_text=True)))
        assert client.get("/api/config").get_json() == {"monitor_url": "http://127.0.0.1:9"}
        assert len(client.get("/api/products").get_json()["products"]) == 4
        found = client.get("/api/products?q=MUG").get_json()["products"]
        assert [product["name"] for product in found] == ["Ceramic mug"]
        assert client.get("/api/products/2").get_json()["name"] == "Pour-over kettle"
        missing = client.get("/api/products/99")
        assert (missing.status_code, missing.get_json()) == (404, {"error": "no product 99"})
        for bad, message in [
            ("[1]", "JSON object"),
            ('{"product_id": 99}', "unknown product_id"),
            ('{"product_id": 1, "quantity": 0}', "quantity"),
        ]:
            answer = client.post("/api/cart", data=bad, content_type="application/json")
            assert answer.status_code == 400 and message in answer.get_json()["error"]
        added = client.post("/api/cart", json={"product_id": 3, "quantity": 2})
        assert added.status_code == 201 and added.get_json()["total"] == 19.8
        failed = client.post("/api/checkout", json={"email": EMAIL, "card": CARD})
        assert (failed.status_code, failed.get_json()) == (500, {"error": "payment provider unavailable"})
    finally:
        app.extensions["live_monitor"].close(timeout=0)
        blc.set_default_client(None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--monitor-url", "localhost:5001", "--port", "0"], "http(s) URL"),
        (["--port", "99999"], "port must be a number from 0 to 65535"),
    ],
)
def test_shop_cli_rejects_bad_input_clearly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
