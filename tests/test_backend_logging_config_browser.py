"""End to end in headless Chromium: a Flask app with ``init_app(record_outgoing=True)`` serves a
page carrying its ``traceparent`` and the browser logger at ``sampleRate: 0.5``; a real monitor
stores what both sides send. Checked: one trace from the page's load through the browser's
calls to the server's requests and on to the payment provider, each span naming its parent, the
server keyed by its Flask rule, and the browser's calls carrying the rate they were sampled at.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser
from waitress import create_server

import backend_logging_config as blc
from tests.helpers import MonitorProcess, PageServer, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("restore_logging_globals")]


def make_app(monitor_url: str, provider: str) -> Flask:
    """A page holding its request's traceparent and the logger, and an API that charges the provider."""
    app = Flask(__name__)

    @app.get("/")
    def page() -> str:
        return f"""<!doctype html><html><head>
<meta name="traceparent" content="{blc.current_traceparent()}">
<script src="{monitor_url}/static/live-monitor.js"></script></head><body><script>
window.monitor = LiveMonitor.initLiveMonitor({{endpoint: "{monitor_url}", sampleRate: 0.5}});
</script></body></html>"""

    @app.get("/api/users/<name>")
    def user(name: str) -> dict[str, Any]:
        charged = requests.get(f"{provider}/api/v1/charges/{len(name)}", timeout=5)
        return {"name": name, "charged": charged.status_code}

    return app


@pytest.fixture
def served(start_monitor: Callable[..., AbstractContextManager[MonitorProcess]]) -> Iterator[tuple[str, str]]:
    """The monitor's URL and the app's, served by waitress on a free port, with a provider behind."""
    provider = PageServer({})
    with start_monitor("--no-self-monitor") as monitor:
        app = make_app(monitor.url, provider.origin)
        client = blc.init_app(app, monitor_url=monitor.url, record_outgoing=True)
        server = create_server(app, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            yield monitor.url, f"http://127.0.0.1:{server.effective_port}"
        finally:
            server.close()
            blc.stop_recording_outgoing_calls()
            client.close(timeout=2)
            provider.stop()


def test_one_trace_runs_from_the_page_through_the_server_to_the_provider(
    browser: Browser, served: tuple[str, str]
) -> None:
    monitor_url, app_url = served
    context = browser.new_context()
    page = context.new_page()
    page.add_init_script("Math.random = () => 0.25")  # this page session is in the 50% sampled
    page.goto(f"{app_url}/")
    page.wait_for_function("() => document.readyState === 'complete'")
    assert page.evaluate(
        "() => Promise.all(['alice', 'bob'].map((n) => fetch('/api/users/' + n).then((r) => r.json())))"
    ) == [{"name": "alice", "charged": 200}, {"name": "bob", "charged": 200}]

    def events() -> list[dict[str, Any]]:
        page.evaluate("() => window.monitor.flush()")
        answer = requests.get(f"{monitor_url}/api/live-execution/data", params={"limit": 100}, timeout=5)
        return list(answer.json()["recent_events"])

    def complete(found: list[dict[str, Any]]) -> bool:
        kinds = [(e["service"], e["component"]) for e in found]
        needed = [("frontend", "api")] * 2 + [("backend", "http")] * 3 + [("backend", "http-client")] * 2
        return (
            all(kinds.count(kind) >= needed.count(kind) for kind in needed) and ("frontend", "page") in kinds
        )

    assert wait_for(lambda: complete(events()), timeout=20)
    found = events()
    context.close()
    by_span = {e["span_id"]: e for e in found if e.get("span_id")}
    [load] = [e for e in found if e["component"] == "page"]
    served_page = by_span[load["parent_span_id"]]  # the page's load is the child of its request
    assert (served_page["action"], served_page["trace_id"]) == ("GET /", load["trace_id"])
    assert "sample_rate" not in load or load["sample_rate"] is None  # every session reports loads

    calls = [e for e in found if e["component"] == "api"]
    # the browser's own keys; the monitor may have keyed them by the server's route already
    # (when the server's request came first), keeping the browser's in details.url_key
    own_keys = sorted(c["details"].get("url_key", c["action"]) for c in calls)
    assert own_keys == ["GET /api/users/alice", "GET /api/users/bob"]
    for call in calls:
        assert call["sample_rate"] == 0.5
        [server] = [
            e for e in found if e["component"] == "http" and e.get("parent_span_id") == call["span_id"]
        ]
        assert (server["action"], server["trace_id"]) == ("GET /api/users/:name", call["trace_id"])
        assert server["details"]["route"] == "/api/users/<name>"
        [outgoing] = [e for e in found if e.get("parent_span_id") == server["span_id"]]
        assert outgoing["component"] == "http-client" and outgoing["trace_id"] == call["trace_id"]
        assert outgoing["action"].endswith("/api/v1/charges/:id") and outgoing["status"] == "success"
