"""POST /events served below Flask: the same answers, the same rules, no traceback ever."""

from __future__ import annotations

import io
import json
import logging

import pytest

from live_execution_monitor import create_app
from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import EVENTS_PATH as EVENTS
from live_monitor.web.access import hostname

EVENT = {"service": "backend", "component": "http", "action": "GET /api/x", "duration_ms": 5.0}


def call(app, body: bytes, **environ):
    """Call the WSGI app as a server would; returns (status line, headers dict, body)."""
    seen = {}
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": EVENTS,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5001",
        "HTTP_HOST": "127.0.0.1:5001",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        **environ,
    }

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    chunks = app(env, start_response)
    return seen["status"], seen["headers"], b"".join(chunks)


def test_a_batch_is_stored_and_answered_with_counts(app):
    status, headers, body = call(app, json.dumps([EVENT, {**EVENT, "duration_ms": -1}]).encode())
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert int(headers["Content-Length"]) == len(body)
    answer = json.loads(body)
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["errors"] == [{"index": 1, "error": "events[1].duration_ms: must be >= 0"}]
    assert app.extensions["live_monitor"].store.counts()["totals"]["backend"] == 1


def test_a_body_sent_without_content_length_is_read_to_its_end(app):
    body = json.dumps([EVENT]).encode()
    status, _, answer = call(app, body, CONTENT_LENGTH="", **{"wsgi.input_terminated": True})
    assert status == "200 OK" and json.loads(answer)["accepted"] == 1


def test_a_malformed_content_length_is_a_400(app):
    status, _, answer = call(app, b"[]", CONTENT_LENGTH="12abc")
    assert status == "400 Bad Request"
    assert json.loads(answer) == {"error": "Content-Length must be a whole number"}


def test_an_unexpected_failure_is_a_500_without_a_traceback(app, monkeypatch, caplog):
    def explode(body, max_events=None):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["live_monitor"], "ingest", explode)
    with caplog.at_level(logging.ERROR, logger="live_execution_monitor"):
        status, _, answer = call(app, json.dumps([EVENT]).encode())
    assert status == "500 Internal Server Error"
    assert json.loads(answer) == {"error": "internal error; the monitor's log has the details"}
    assert b"secret internals" not in answer and b"Traceback" not in answer
    assert "secret internals" in caplog.text  # the operator still sees what went wrong


def test_a_shared_store_that_is_down_is_a_503_with_retry_after(app, monkeypatch):
    def down(body, max_events=None):
        raise StoreUnavailable("redis is unreachable")

    monkeypatch.setattr(app.extensions["live_monitor"], "ingest", down)
    status, headers, answer = call(app, json.dumps([EVENT]).encode())
    assert status == "503 Service Unavailable" and headers["Retry-After"] == "1"
    assert json.loads(answer) == {"error": "redis is unreachable"}


def test_an_allowed_browser_origin_gets_cors_headers_and_others_are_refused(app):
    body = json.dumps([EVENT]).encode()
    status, headers, _ = call(app, body, HTTP_ORIGIN="http://localhost:3000")
    assert status == "200 OK"
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert headers["Vary"] == "Origin"
    # the browser logger reads Retry-After on 429 and 503; from another origin only if exposed
    assert headers["Access-Control-Expose-Headers"] == "Retry-After, Server-Timing"
    status, headers, answer = call(app, body, HTTP_ORIGIN="https://evil.example")
    assert status == "403 Forbidden" and "Access-Control-Allow-Origin" not in headers
    assert "not allowed" in json.loads(answer)["error"]


def test_other_methods_and_routes_still_go_through_flask(app):
    client = app.test_client()
    assert client.get(EVENTS).status_code == 405
    assert client.get(EVENTS).json["error"]
    preflight = client.options(
        EVENTS,
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200  # browsers send the batch only after a 2xx preflight
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert client.get("/health").json["status"] == "ok"


@pytest.mark.parametrize("host", ["evil.example", ""])
def test_a_foreign_or_empty_host_is_refused_before_the_body_is_read(app, host):
    status, _, answer = call(app, json.dumps([EVENT]).encode(), HTTP_HOST=host)
    assert status == "403 Forbidden" and "Host header" in json.loads(answer)["error"]
    assert app.extensions["live_monitor"].store.counts()["received"] == 0


@pytest.mark.parametrize(
    ("host", "name"),
    [("localhost:5001", "localhost"), ("[::1]:5001", "[::1]"), ("::1", "::1"), ("127.0.0.1", "127.0.0.1")],
)
def test_hostname_drops_the_port_only(host, name):
    assert hostname(host) == name


def test_secrets_are_filtered_before_the_store_and_the_journal(tmp_path):
    app = create_app({"self_monitor": False, "persist": str(tmp_path / "journal.db")})
    secret = {**EVENT, "details": {"password": "hunter2", "route": "/api/x"}}
    for _ in range(2):  # the second copy too
        status, _, _ = call(app, json.dumps([secret]).encode())
        assert status == "200 OK"
    monitor = app.extensions["live_monitor"]
    assert [e["details"] for e in monitor.data()["recent_events"]] == [
        {"password": "[Filtered]", "route": "/api/x"}
    ] * 2
    monitor.close()
    journal = b"".join(path.read_bytes() for path in tmp_path.glob("journal.db*"))
    assert b"/api/x" in journal and b"hunter2" not in journal


def test_the_apps_batch_limit_applies_to_a_monitor_built_apart():
    from live_monitor.core.monitor import LiveExecutionMonitor

    monitor = LiveExecutionMonitor({"self_monitor": False})
    app = create_app({"self_monitor": False, "max_batch_events": 3}, monitor)
    status, _, body = call(app.wsgi_app, json.dumps([EVENT] * 5).encode())
    answer = json.loads(body)
    assert status.startswith("200") and (answer["accepted"], answer["rejected"]) == (3, 2)
    assert "more than 3 events" in answer["errors"][0]["error"]
    monitor.close()


def test_a_lone_surrogate_escape_loses_no_event(app):
    # Byte for byte what the tester sent: an emoji cut in two by the browser logger's slice(0, 300).
    body = (
        b'[{"service":"frontend","component":"ok","action":"GET /a","duration_ms":3},'
        b'{"service":"frontend","component":"x","action":"GET /b \\ud83d"}]'
    )
    status, _, answer = call(app, body)
    assert status == "200 OK"
    assert (json.loads(answer)["accepted"], json.loads(answer)["rejected"]) == (2, 0)
    recent = app.extensions["live_monitor"].data()["recent_events"]
    assert sorted(e["action"] for e in recent) == ["GET /a", "GET /b \ufffd"]


def test_a_time_the_reports_cannot_read_is_refused_and_the_rest_kept(app):
    late = {**EVENT, "action": "GET /late", "timestamp": "9999-12-31T23:59:59-14:00"}
    status, _, answer = call(app, json.dumps([EVENT, late]).encode())
    assert status == "200 OK"
    answer = json.loads(answer)
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["errors"][0]["error"].startswith("events[1].timestamp: out of range")
    recent = app.extensions["live_monitor"].data()["recent_events"]
    assert [e["action"] for e in recent] == ["GET /api/x"]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer s3cret", "200 OK"),
        ("bearer s3cret", "200 OK"),  # the scheme is case-insensitive (RFC 9110)
        ("BEARER  s3cret ", "200 OK"),
        ("Bearer S3CRET", "401 UNAUTHORIZED"),  # the token is not
        ("Basic s3cret", "401 UNAUTHORIZED"),
        ("s3cret", "401 UNAUTHORIZED"),
        ("Bearer", "401 UNAUTHORIZED"),
    ],
)
def test_the_bearer_scheme_is_read_in_any_case_the_token_exactly(authorization: str, status: str) -> None:
    app = create_app({"token": "s3cret", "self_monitor": False})
    body = json.dumps([EVENT]).encode()
    got, _, answer = call(app.wsgi_app, body, HTTP_AUTHORIZATION=authorization)
    assert got.upper() == status, answer
    flask_status = app.test_client().get(
        "/api/live-execution/status", headers={"Authorization": authorization}
    )
    assert flask_status.status_code == int(status[:3])
