"""Tests of backend_logging_config.init_app: the WSGI middleware that records one event per
Flask request, keeps or starts a W3C trace, answers Server-Timing and skips preflight and
monitor paths.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask, abort
from flask_cors import CORS
from hypothesis import given
from hypothesis import strategies as st

import backend_logging_config as blc
from tests.helpers import PARENT, ROOT, TRACE, FakeMonitor, Recorder, wait_for

pytestmark = pytest.mark.usefixtures("restore_logging_globals")


def make_app(testing: bool = False) -> Flask:
    app = Flask(__name__)
    app.testing = testing

    @app.get("/api/orders/<int:order_id>")
    def order(order_id: int) -> dict[str, int]:
        with blc.track("db", "load_order"):
            return {"id": order_id}

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        return "nope", 500

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/exposed")
    def exposed() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Access-Control-Expose-Headers": "X-Request-Id"}

    return app


def test_request_event_keeps_incoming_trace_and_answers_server_timing() -> None:
    app, recorder = make_app(), Recorder()
    assert blc.init_app(app, client=recorder) is recorder  # type: ignore[arg-type]
    assert app.extensions["live_monitor"] is recorder
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "Cookie": "session=secret-cookie"}
    response = app.test_client().get("/api/orders/42?token=secret-query", headers=headers)
    assert response.status_code == 200
    db, http = recorder.events
    assert (db["component"], db["trace_id"]) == ("db", TRACE)
    assert {k: http[k] for k in ("service", "component", "action", "status", "details")} == {
        "service": "backend",
        "component": "http",
        "action": "GET /api/orders/:id",
        "status": "success",
        "details": {"http_status": 200, "route": "/api/orders/<int:order_id>"},
    }
    assert http["trace_id"] == TRACE and re.fullmatch("[0-9a-f]{16}", http["span_id"])
    assert http["span_id"] not in (PARENT, db["span_id"]) and http["duration_ms"] >= 0
    # the request is the caller's child, and the block timed inside it the request's
    assert (http["parent_span_id"], db["parent_span_id"]) == (PARENT, http["span_id"])
    assert "secret" not in json.dumps(http)
    timing = response.headers["Server-Timing"]
    match = re.fullmatch(r'app;dur=(\d+\.\d), traceparent;desc="00-([0-9a-f]{32})-([0-9a-f]{16})-01"', timing)
    assert match and match.group(2, 3) == (TRACE, http["span_id"])
    assert abs(float(match.group(1)) - http["duration_ms"]) <= 0.06
    assert response.headers["Access-Control-Expose-Headers"] == "Server-Timing"


@pytest.mark.parametrize(
    "traceparent",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"ff-{TRACE}-{PARENT}-01",
    ],
)
def test_missing_or_invalid_traceparent_starts_a_new_trace(traceparent: str | None) -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    headers = {"traceparent": traceparent} if traceparent else {}
    app.test_client().get("/api/orders/1", headers=headers)
    app.test_client().get("/api/orders/2", headers=headers)
    first, second = (e for e in recorder.events if e["component"] == "http")
    assert "parent_span_id" not in first and "parent_span_id" not in second  # a root span
    assert re.fullmatch("[0-9a-f]{32}", first["trace_id"]) and first["trace_id"] != "0" * 32
    assert TRACE not in (first["trace_id"], second["trace_id"])
    assert first["trace_id"] != second["trace_id"]


@pytest.mark.parametrize(
    ("path", "code", "status", "route"),
    [
        ("/fail", 500, "error", "/fail"),
        ("/boom", 500, "error", "/boom"),
        ("/missing", 404, "success", "/missing"),
        ("/nowhere/7", 404, "success", None),
    ],
)
def test_request_status_follows_the_response(path: str, code: int, status: str, route: Any) -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    assert app.test_client().get(path).status_code == code
    [event] = recorder.events
    assert (event["status"], event["details"]) == (status, {"http_status": code, "route": route})
    assert event["action"] == blc.endpoint_key("GET", path)


def test_requests_are_keyed_by_the_flask_rule_that_served_them() -> None:
    app, recorder = make_app(), Recorder()
    app.add_url_rule("/api/users/<name>", "user", lambda name: name)
    app.add_url_rule("/api/shops/<shopId>/items/<path:slug>", "item", lambda **kw: "ok")
    app.add_url_rule("/api/carts/<uuid:cart>/v2", "cart", lambda cart: "ok", methods=["POST"])
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    client = app.test_client()
    for name in ("alice", "bob", "carol"):
        client.get(f"/api/users/{name}")
    client.get("/api/shops/7/items/red-shoes/large")
    client.post("/api/carts/6f1c2f9e-8b1e-4b57-9c1a-2d4e5f6a7b8c/v2")
    client.get("/api/orders/12")
    client.get("/nowhere/7/else")
    keys = [(e["action"], e["details"]["route"]) for e in recorder.events if e["component"] == "http"]
    assert keys == [
        *[("GET /api/users/:name", "/api/users/<name>")] * 3,
        ("GET /api/shops/:id/items/:slug", "/api/shops/<shopId>/items/<path:slug>"),
        ("POST /api/carts/:id/v2", "/api/carts/<uuid:cart>/v2"),
        ("GET /api/orders/:id", "/api/orders/<int:order_id>"),
        ("GET /nowhere/:id/else", None),  # no rule matched: the path, normalised
    ]


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("/api/users/<name>", "/api/users/:name"),
        ("/api/orders/<int:order_id>", "/api/orders/:id"),
        ("/api/orders/<order_id>", "/api/orders/:id"),
        ("/api/orders/<orderId>/lines/<int:n>", "/api/orders/:id/lines/:id"),
        ("/api/items/<uuid:item>", "/api/items/:id"),
        ("/api/items/<id>", "/api/items/:id"),
        ("/api/files/<path:filename>", "/api/files/:filename"),
        ("/api/codes/<string(length=2):code>", "/api/codes/:code"),
        ("/api/prices/<float:amount>", "/api/prices/:amount"),
        ("/api/v<int:version>/ping", "/api/v:id/ping"),
        ("/api/2024/report/", "/api/:id/report"),
        ("/api/identity/<valid>", "/api/identity/:valid"),
        ("/", "/"),
    ],
)
def test_route_templates_become_the_keys_the_browser_uses(template: str, key: str) -> None:
    assert blc.route_key(template) == key


def test_a_page_can_carry_its_requests_traceparent_for_the_browser() -> None:
    app, recorder = make_app(), Recorder()
    app.add_url_rule("/", "page", lambda: f'<meta name="traceparent" content="{blc.current_traceparent()}">')
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    page = app.test_client().get("/").get_data(as_text=True)
    [request] = recorder.events
    assert page == f'<meta name="traceparent" content="00-{request["trace_id"]}-{request["span_id"]}-01">'
    assert blc.current_traceparent() is None  # outside a request


def test_propagated_exception_is_still_recorded_as_error() -> None:
    app, recorder = make_app(testing=True), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        app.test_client().get("/boom")
    [event] = recorder.events
    assert event["status"] == "error" and event["details"]["http_status"] == 500


def test_expose_headers_are_appended_also_with_flask_cors() -> None:
    app = make_app()
    CORS(app, expose_headers=["X-Total"])
    blc.init_app(app, client=Recorder())  # type: ignore[arg-type]
    response = app.test_client().get("/exposed", headers={"Origin": "http://localhost:3000"})
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Request-Id", "X-Total", "Server-Timing"}
    assert len(response.headers.getlist("Access-Control-Expose-Headers")) == 1


def test_second_init_app_swaps_the_client_without_doubling_events() -> None:
    app, first, second = make_app(), Recorder(), Recorder()
    blc.init_app(app, client=first)  # type: ignore[arg-type]
    assert blc.init_app(app, client=second) is second  # type: ignore[arg-type]
    response = app.test_client().get("/fail")
    assert first.events == [] and len(second.events) == 1
    assert response.headers["Server-Timing"].count("app;dur=") == 1


def test_preflight_and_monitor_paths_are_not_recorded() -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    client = app.test_client()
    client.options("/api/orders/1", headers={"Access-Control-Request-Method": "GET"})
    client.post("/api/live-execution/events", json={"events": []})
    assert recorder.events == []


def test_init_app_sends_request_events_to_a_real_monitor(fake_monitor: FakeMonitor) -> None:
    app = make_app()
    client = blc.init_app(app, monitor_url=fake_monitor.url)
    try:
        assert isinstance(client, blc.MonitorClient) and blc.get_default_client() is client
        app.test_client().get("/api/orders/9")
        assert client.flush(5)
        actions = sorted(event["action"] for event in fake_monitor.events())
        assert actions == ["GET /api/orders/:id", "load_order"]
    finally:
        client.close(timeout=1)


@given(
    method=st.sampled_from(["GET", "post", "DELETE"]),
    path=st.text(max_size=30).map(lambda text: "/" + text),
    status=st.sampled_from([None, "200 OK", "404 NOT FOUND", "500 INTERNAL SERVER ERROR", "503 X"]),
    rule=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["/a/<int:n>", "/u/<name>/x"])),
    ms=st.floats(min_value=0, max_value=1e6),
    wall=st.floats(min_value=0, max_value=4e9),
    parent=st.sampled_from([None, PARENT]),
    labels=st.sampled_from([{}, {"release": "1.4.2", "environment": "prod"}]),
)
def test_request_event_text_is_the_event_json_dumps_writes(
    method: str,
    path: str,
    status: str | None,
    rule: str | None,
    ms: float,
    wall: float,
    parent: str | None,
    labels: dict[str, str],
) -> None:
    code = int(status[:3]) if status else 500  # no status: the app raised
    action = f"{method.upper()} {blc.route_key(rule)}" if rule else blc.endpoint_key(method, path)
    expected = {
        "timestamp": datetime.fromtimestamp(wall, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "service": "backend",
        "component": "http",
        "action": action,
        "status": "error" if code >= 500 else "success",
        "details": {"http_status": code, "route": rule},
        "duration_ms": round(ms, 3),
        "trace_id": TRACE,
        "span_id": "b7ad6b7169203331",
        **({"parent_span_id": parent} if parent else {}),
        **labels,
    }
    traceparent = f"00-{TRACE}-b7ad6b7169203331-01"
    item = ("http", wall, ms, method, path, status, rule, traceparent, parent)
    text = blc._http_event(item, "," + json.dumps(labels, separators=(",", ":"))[1:-1] if labels else "")
    event = json.loads(text)  # the same members, in the same order; only the duration keeps its zeros
    assert event == expected and list(event) == list(expected)
    assert text.replace(f'"duration_ms":{ms:.3f}', f'"duration_ms":{round(ms, 3)!r}') == json.dumps(
        expected, separators=(",", ":")
    )


def test_request_events_arrive_complete_in_batches_and_close_sends_the_rest(
    fake_monitor: FakeMonitor,
) -> None:
    client = blc.MonitorClient(fake_monitor.url, flush_interval=30.0)  # no timer within the test
    app = make_app()
    blc.init_app(app, client=client)
    http = app.test_client()
    try:
        http.get("/health")  # starts the sender (a 404, sent at once)
        assert wait_for(lambda: len(fake_monitor.events()) == 1)
        timings = [http.get(f"/api/orders/{n}").headers["Server-Timing"] for n in range(600)]
        assert client.stats()["queued"] == 1200 and len(fake_monitor.requests) == 1  # all on the queue
    finally:
        assert client.close(timeout=10)
    assert [len(body["events"]) for _, _, body in fake_monitor.requests] == [1, 500, 500, 200]
    requests = [event for event in fake_monitor.events() if event["action"] == "GET /api/orders/:id"]
    assert len(requests) == 600 and len({event["span_id"] for event in requests}) == 600
    by_span = {event["span_id"]: event for event in requests}
    for timing in timings:
        match = re.fullmatch(
            r'app;dur=(\d+\.\d), traceparent;desc="00-([0-9a-f]{32})-([0-9a-f]{16})-01"', timing
        )
        assert match is not None
        event = by_span[match.group(3)]
        assert (
            event["trace_id"] == match.group(2) and abs(event["duration_ms"] - float(match.group(1))) <= 0.06
        )
        assert {
            k: v for k, v in event.items() if k not in ("timestamp", "trace_id", "span_id", "duration_ms")
        } == {
            "service": "backend",
            "component": "http",
            "action": "GET /api/orders/:id",
            "status": "success",
            "details": {"http_status": 200, "route": "/api/orders/<int:order_id>"},
        }
        assert abs(datetime.now(UTC) - datetime.fromisoformat(event["timestamp"])) < timedelta(seconds=60)


def test_route_is_still_found_when_the_app_raised_or_copied_the_environ() -> None:
    app, recorder = make_app(testing=True), Recorder()
    flask_app = app.wsgi_app

    def copying(environ: dict[str, Any], start_response: Any) -> Any:  # as some WSGI layers do
        return flask_app(dict(environ), start_response)

    app.wsgi_app = copying  # type: ignore[method-assign]
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    client = app.test_client()
    assert client.get("/api/orders/3").status_code == 200
    with pytest.raises(RuntimeError):
        client.get("/boom")
    routes = [(e["details"]["route"], e["status"]) for e in recorder.events if e["component"] == "http"]
    assert routes == [("/api/orders/<int:order_id>", "success"), ("/boom", "error")]


def test_an_app_that_raises_after_answering_is_recorded_as_an_error_of_its_route() -> None:
    app, recorder = make_app(testing=True), Recorder()
    flask_app = app.wsgi_app

    def answering_then_failing(environ: dict[str, Any], start_response: Any) -> Any:
        flask_app(environ, start_response)  # the headers went out (200) ...
        raise RuntimeError("... and then the body failed")

    app.wsgi_app = answering_then_failing  # type: ignore[method-assign]
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        app.test_client().get("/api/orders/3")
    [event] = [e for e in recorder.events if e["component"] == "http"]
    assert (event["action"], event["status"]) == ("GET /api/orders/:id", "error")
    assert event["details"] == {"http_status": 500, "route": "/api/orders/<int:order_id>"}


def test_a_forked_worker_does_not_repeat_its_parents_trace_ids() -> None:
    script = """
import os, flask, backend_logging_config as blc
class Recorder:
    closed = False
    def record(self, event): pass
app = flask.Flask("forked")
app.get("/")(lambda: "ok")
blc.init_app(app, client=Recorder())
trace = lambda: app.test_client().get("/").headers["Server-Timing"].split('"')[1]
trace()
read, write = os.pipe()
if os.fork() == 0:
    os.write(write, trace().encode())
    os._exit(0)
os.wait()
print(os.read(read, 100).decode() != trace())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
