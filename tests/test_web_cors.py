"""CORS on every answer a browser may read: a page on an allowed origin sees the monitor's 413,
429 and 503 (and the answers waitress gives before the app) as they are, with Retry-After and
Server-Timing exposed, never as a network error.

Without ``Access-Control-Allow-Origin`` a browser hides the whole answer: the page's fetch
rejects as a network error and the logger retries a body that will never fit. Checked against
a real monitor process (its fast ingest path, its Flask routes and waitress's own refusals), in
process for the 503s, and in headless Chromium as a page on another origin sees them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import EVENTS_PATH
from tests.helpers import MonitorProcess, PageServer, launch_chromium, run_monitor

pytestmark = pytest.mark.timeout(120)

ORIGIN = "http://localhost:5173"  # allowed by the default --cors-origins
# Another allowed origin, for the rate limit test: the limit counts per origin and address.
BUSY_ORIGIN = "http://localhost:5174"
LIMIT = 1024  # --max-body-bytes
EXPOSED = {"Retry-After", "Server-Timing"}
EVENT = {"service": "frontend", "component": "click", "action": "button#buy", "status": "success"}


@pytest.fixture(scope="module")
def monitor() -> Iterator[MonitorProcess]:
    """One browser request a second per origin, bodies of at most 1 KiB."""
    with run_monitor("--no-self-monitor", "--ingest-rate", "1", "--max-body-bytes", str(LIMIT)) as server:
        yield server


def assert_readable(status: int, headers: Mapping[str, str], expected: int, origin: str = ORIGIN) -> None:
    """The answer a browser on ``origin`` may read: its CORS headers, Retry-After and
    Server-Timing exposed."""
    lower = {name.lower(): value for name, value in headers.items()}
    assert status == expected
    assert lower["access-control-allow-origin"] == origin
    assert {h.strip() for h in lower["access-control-expose-headers"].split(",")} == EXPOSED
    assert "origin" in lower["vary"].lower()


def raw(port: int, head: str) -> tuple[int, dict[str, str]]:
    """Send a request head as is (waitress refuses some before the app sees them); the answer's
    status and headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), dict(line.split(": ", 1) for line in lines[1:])


def test_a_body_over_the_limit_is_a_413_the_page_can_read(monitor: MonitorProcess) -> None:
    body = json.dumps([EVENT] * 40)
    assert len(body) > LIMIT
    for path in (EVENTS_PATH, "/v1/traces"):  # the fast ingest path, and a Flask route
        answer = requests.post(
            monitor.url + path,
            data=body,
            headers={"Origin": ORIGIN, "Content-Type": "application/json"},
            timeout=10,
        )
        assert_readable(answer.status_code, answer.headers, 413)


def test_too_many_requests_is_a_429_the_page_can_read(monitor: MonitorProcess) -> None:
    answers = [
        requests.post(monitor.api + "/events", json=[EVENT], headers={"Origin": BUSY_ORIGIN}, timeout=10)
        for _ in range(5)
    ]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    for answer in refused:
        assert_readable(answer.status_code, answer.headers, 429, BUSY_ORIGIN)
        assert answer.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ("Content-Length: many\r\n", 400),  # malformed: waitress refuses it before the app
        (f"Content-Length: {LIMIT + 64 * 1_048_576 + 1}\r\n", 413),  # beyond what is worth reading
    ],
)
def test_the_servers_own_refusals_carry_cors(monitor: MonitorProcess, framing: str, expected: int) -> None:
    head = (
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n"
    )
    assert_readable(*raw(monitor.port, head), expected)


def test_an_origin_not_allowed_reads_nothing(monitor: MonitorProcess) -> None:
    head = (
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
        f"Content-Type: application/json\r\nContent-Length: many\r\n\r\n"
    )
    status, headers = raw(monitor.port, head)
    assert status == 400 and "Access-Control-Allow-Origin" not in headers


def store_down(*args: Any, **kwargs: Any) -> Any:
    raise StoreUnavailable("redis is unreachable")


@pytest.mark.parametrize("outage", ["store", "shutdown"])
def test_a_503_is_one_the_page_can_read(make_app: Any, monkeypatch: pytest.MonkeyPatch, outage: str) -> None:
    """A store outage and a monitor shutting down: on the fast ingest path and on Flask's routes."""
    app = make_app()
    monitor = app.extensions["live_monitor"]
    if outage == "store":
        monkeypatch.setattr(monitor, "ingest", store_down)
        monkeypatch.setattr(monitor.store, "recent", store_down)
    else:
        monitor.draining = True
    client = app.test_client()
    headers = {"Origin": ORIGIN}
    answers = [
        client.post(EVENTS_PATH, json=[EVENT], headers=headers),
        client.get("/api/live-execution/data", headers=headers),
        client.post("/v1/traces", json={}, headers=headers),
    ]
    for answer in answers[: 3 if outage == "shutdown" else 2]:
        assert_readable(answer.status_code, answer.headers, 503)
        assert int(answer.headers["Retry-After"]) >= 1


PAGE = b"""<!doctype html><meta charset="utf-8"><title>page</title><link rel="icon" href="data:,">"""
# What a page on another origin sees of the monitor's refusals: status and exposed headers.
READ = """async ([url, big]) => {
  const post = (body) => fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body})
    .then((r) => ({status: r.status, retryAfter: r.headers.get("retry-after")}),
          (e) => ({error: e.name}));
  const tooLarge = await post(big);
  const burst = await Promise.all(Array.from({length: 10}, () => post("[]")));
  return {tooLarge, limited: burst.filter((a) => a.status === 429), errors: burst.filter((a) => a.error)};
}"""


def test_a_page_on_another_origin_reads_the_413_and_the_429_with_retry_after(monitor: MonitorProcess) -> None:
    site = PageServer({"/": ("text/html", PAGE)})
    try:
        with launch_chromium() as browser:
            page = browser.new_page()
            page.goto(site.origin + "/")
            seen = page.evaluate(READ, [monitor.api + "/events", "[" + " " * 2 * LIMIT + "]"])
    finally:
        site.stop()
    assert seen["tooLarge"] == {"status": 413, "retryAfter": None}
    assert seen["errors"] == []
    assert seen["limited"] and all(a["retryAfter"] == "1" for a in seen["limited"])
