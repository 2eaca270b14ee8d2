"""Real-browser tests of the dashboard's live stream (an EventSource on /api/live-execution/stream)
against real monitor processes: new events update the page at once (the page is opened with a
refresh of 300 s, so only the stream can bring them), and a stream the monitor ends or refuses
with a 503 (its store down, too many streams open) is reopened by the page itself, after a
backoff that honours the monitor's Retry-After, while the page says it is reconnecting.
"""

from __future__ import annotations

import http.client
import re

import pytest
from playwright.sync_api import expect

from tests.helpers import MonitorProcess, RedisServer, Tab, event, run_monitor

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=15_000)

# Chromium logs a refused stream ("EventSource's response has a status 503 ...") and a refused
# or failed request; those are the outage itself, not a fault of the page.
OUTAGE_LOGS = re.compile(r"EventSource|Failed to load resource|net::ERR_")
POLLS_AT_MOST = 12  # /data requests in a whole test: a poll per app batch, never a loop


def _open(tab: Tab, server: MonitorProcess) -> None:
    """The dashboard, refreshing every 300 s: what it shows sooner came through the stream."""
    tab.page.goto(f"{server.url}/?refresh=300")
    expect(tab.page.locator("#stream-pill")).to_have_text("Live stream")


def _post_and_see(tab: Tab, server: MonitorProcess, action: str) -> None:
    server.post_events([event("backend", "http", action, 3.0)])
    expect(tab.page.locator("#event-table tbody")).to_contain_text(action)


def _polls(tab: Tab) -> int:
    return sum("/api/live-execution/data" in url for url in tab.requests)


def test_the_stream_is_reopened_after_a_store_outage(tab: Tab, redis_server: RedisServer) -> None:
    # Self-monitoring on (the default): the page's own polls come through the stream too, and
    # must not make it poll again.
    with run_monitor("--store", redis_server.url, "--interval", "0.2") as server:
        _open(tab, server)
        _post_and_see(tab, server, "GET /api/before")
        pill = tab.page.locator("#stream-pill")

        redis_server.stop()  # the stream ends with a retry hint; reconnecting, it gets 503s
        expect(pill).to_have_text("Stream reconnecting…")
        expect(pill).to_have_attribute("title", re.compile(r"next attempt in \d"))  # the page's own

        redis_server.start()
        expect(pill).to_have_text("Live stream")
        _post_and_see(tab, server, "GET /api/after")
        assert _polls(tab) <= POLLS_AT_MOST, _polls(tab)
        tab.assert_clean(allow=OUTAGE_LOGS)
        tab.assert_requests_only_to(server.url + "/")


def test_a_stream_refused_as_one_too_many_waits_the_retry_after_and_opens(tab: Tab) -> None:
    # Three threads: one live stream at most (two are kept for everything else).
    with run_monitor("--no-self-monitor", "--threads", "3", "--interval", "0.2") as server:
        other = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        other.request("GET", "/api/live-execution/stream")
        held = other.getresponse()  # kept: a response let go of closes its connection
        assert held.status == 200  # the one stream this monitor takes
        tab.page.goto(f"{server.url}/?refresh=300")
        pill = tab.page.locator("#stream-pill")
        expect(pill).to_have_text("Stream reconnecting…")
        expect(pill).to_have_attribute("title", re.compile(r"next attempt in 5 s"))  # Retry-After: 5

        held.close()
        other.close()  # its thread is given back at the stream's next write
        expect(pill).to_have_text("Live stream")
        _post_and_see(tab, server, "GET /api/orders")
        tab.assert_clean(allow=OUTAGE_LOGS)
