"""Tests of backend_logging_config.record_outgoing_calls: the app's own HTTP calls (requests and
urllib) as backend ``http-client`` events, in the trace of the request that made them, with a
``traceparent`` for the callee; opt-in, and never the monitor's own POSTs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

import backend_logging_config as blc
from live_monitor import vocabulary
from tests.helpers import PARENT, ROOT, TRACE, FakeMonitor, PageServer, Recorder, free_port

pytestmark = pytest.mark.usefixtures("restore_logging_globals")
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


@pytest.fixture
def provider() -> Iterator[PageServer]:
    """A payment provider on a free port: ``/api/...`` answers 200, a path ending in ``/0`` 500."""
    server = PageServer({})
    yield server
    server.stop()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Outgoing calls recorded into a Recorder for the test, and requests/urllib restored after."""
    recorder = Recorder()
    blc.record_outgoing_calls(recorder)  # type: ignore[arg-type]
    yield recorder
    blc.stop_recording_outgoing_calls()


def shop(provider: PageServer) -> Flask:
    """A shop whose checkout charges through the provider with requests, then with urllib."""
    app = Flask(__name__)

    @app.post("/api/checkout/<int:cart_id>")
    def checkout(cart_id: int) -> dict[str, Any]:
        charged = requests.get(f"{provider.origin}/api/v1/charges/{cart_id}?expand=card", timeout=5)
        failed = requests.post(f"{provider.origin}/api/v1/charges/0", json={"amount": 1}, timeout=5)
        with urllib.request.urlopen(f"{provider.origin}/api/v1/refunds/{cart_id}", timeout=5) as answer:
            refunded = answer.status
        return {"codes": [charged.status_code, failed.status_code, refunded]}

    return app


def test_a_requests_outgoing_calls_are_its_children_and_carry_its_trace(
    provider: PageServer, recorder: Recorder
) -> None:
    app = shop(provider)
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    response = app.test_client().post("/api/checkout/42", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert response.get_json() == {"codes": [200, 500, 200]}
    *calls, request = recorder.events
    host = provider.origin.removeprefix("http://")
    assert request["action"] == "POST /api/checkout/:id" and request["parent_span_id"] == PARENT
    assert [(c["component"], c["action"], c["status"], c["details"]) for c in calls] == [
        ("http-client", f"GET {host}/api/v1/charges/:id", "success", {"http_status": 200}),
        ("http-client", f"POST {host}/api/v1/charges/:id", "error", {"http_status": 500}),
        ("http-client", f"GET {host}/api/v1/refunds/:id", "success", {"http_status": 200}),
    ]
    assert all(c["service"] == "backend" and c["duration_ms"] > 0 for c in calls)
    # each call is a child of the request's span, and the provider saw the call's own span
    assert {(c["trace_id"], c["parent_span_id"]) for c in calls} == {(TRACE, request["span_id"])}
    sent = [TRACEPARENT.fullmatch(header) for header in provider.traceparents]
    assert [m.groups() if m else None for m in sent] == [(TRACE, c["span_id"]) for c in calls]
    assert len({c["span_id"] for c in calls} | {request["span_id"]}) == 4


def test_a_failed_call_is_an_error_and_the_app_still_gets_its_exception(recorder: Recorder) -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/charges/7", timeout=5)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/charges/8", timeout=5)
    key = f"GET 127.0.0.1:{port}/v1/charges/:id"
    assert [(e["action"], e["status"], e["details"]) for e in recorder.events] == [
        (key, "error", {"http_status": None, "error": "ConnectionError"}),
        (key, "error", {"http_status": None, "error": "URLError"}),
    ]


def test_a_call_outside_a_request_starts_its_own_trace_and_keeps_the_apps_traceparent(
    provider: PageServer, recorder: Recorder
) -> None:
    requests.get(f"{provider.origin}/api/v1/balance", timeout=5)
    own = f"00-{TRACE}-{PARENT}-01"
    requests.get(f"{provider.origin}/api/v1/balance", headers={"traceparent": own}, timeout=5)
    urllib.request.urlopen(
        urllib.request.Request(f"{provider.origin}/api/v1/balance", headers={"traceparent": own})
    )
    first, kept, kept_urllib = recorder.events
    assert "parent_span_id" not in first
    assert provider.traceparents[0] == f"00-{first['trace_id']}-{first['span_id']}-01"
    assert provider.traceparents[1:] == [own, own]  # the app's own header is left as it is
    assert (
        (kept["trace_id"], kept["span_id"])
        == (kept_urllib["trace_id"], kept_urllib["span_id"])
        == (TRACE, PARENT)
    )


def test_urls_that_are_not_http_are_no_outgoing_calls(recorder: Recorder) -> None:
    with urllib.request.urlopen("data:,hello") as answer:
        assert answer.read() == b"hello"
    assert recorder.events == []


def test_outgoing_calls_are_recorded_only_when_asked_for(provider: PageServer) -> None:
    original_send, original_open = requests.Session.send, urllib.request.OpenerDirector.open
    recorder = Recorder()
    app = shop(provider)
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    app.test_client().post("/api/checkout/1")
    assert [e["component"] for e in recorder.events] == ["http"] and provider.traceparents == ["", "", ""]
    try:
        blc.init_app(app, client=recorder, record_outgoing=True)  # type: ignore[arg-type]
        app.test_client().post("/api/checkout/2")
        assert [e["component"] for e in recorder.events[1:]] == ["http-client"] * 3 + ["http"]
    finally:
        blc.stop_recording_outgoing_calls()
    assert (requests.Session.send, urllib.request.OpenerDirector.open) == (original_send, original_open)
    app.test_client().post("/api/checkout/3")
    assert len(recorder.events) == 6 and provider.traceparents[-3:] == ["", "", ""]


def test_the_monitors_own_posts_are_never_recorded(fake_monitor: FakeMonitor, provider: PageServer) -> None:
    client = blc.MonitorClient(fake_monitor.url)
    client._direct, client._opener = (
        None,
        urllib.request.build_opener(),
    )  # post through urllib, as via a proxy
    blc.record_outgoing_calls(client)
    try:
        requests.get(f"{provider.origin}/api/v1/balance", timeout=5)
        assert client.flush(5)
        client.record({"component": "jobs", "action": "nightly", "status": "success", "details": {}})
        assert client.flush(5)
    finally:
        blc.stop_recording_outgoing_calls()
        client.close(timeout=1)
    assert [e["action"] for e in fake_monitor.events()] == [
        f"GET {provider.origin.removeprefix('http://')}/api/v1/balance",
        "nightly",
    ]


@pytest.mark.parametrize(
    ("method", "url", "key"),
    [
        (
            "get",
            "https://payments.example.com/v1/charges/42?expand=card",
            "GET payments.example.com/v1/charges/:id",
        ),
        ("POST", "https://user:pw@API.Example.com:443/v1/orders/", "POST api.example.com/v1/orders"),
        (
            "GET",
            "http://inventory:8080/items/6f1c2f9e-8b1e-4b57-9c1a-2d4e5f6a7b8c",
            "GET inventory:8080/items/:id",
        ),
        ("GET", "http://[::1]:9000/health#top", "GET [::1]:9000/health"),
        ("DELETE", "http://cache.local", "DELETE cache.local/"),
    ],
)
def test_outgoing_keys_carry_the_host_and_the_route(method: str, url: str, key: str) -> None:
    assert blc.outgoing_key(method, url) == key


def test_the_outgoing_component_is_the_monitors_word() -> None:
    assert blc.OUTGOING_COMPONENT == vocabulary.OUTGOING_COMPONENT


def test_without_requests_installed_urllib_calls_are_still_recorded(provider: PageServer) -> None:
    script = f"""
import sys, urllib.request
class BlockRequests:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "requests":
            raise ImportError("requests is not installed")
sys.meta_path.insert(0, BlockRequests())
import backend_logging_config as blc
class Recorder:
    closed = False
    def record(self, event): print(event["component"], event["action"], event["status"])
blc.record_outgoing_calls(Recorder())
urllib.request.urlopen("{provider.origin}/api/v1/balance").read()
print("requests" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    host = provider.origin.removeprefix("http://")
    assert done.stdout.splitlines() == [f"http-client GET {host}/api/v1/balance success", "False"]
