"""The web layer's seams: one error mapping, one JSON encoding, one access policy, a light front door."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from live_execution_monitor import create_app
from live_monitor.model.results import Difference
from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import API, EVENTS_PATH, OTLP_TRACES_PATH, OWN_TRAFFIC_TAG, STREAM_PATH

ROOT = Path(__file__).resolve().parent.parent
EVENT = {"service": "backend", "component": "http", "action": "GET /api/x", "duration_ms": 5.0}
THIRD_PARTY = (
    "flask",
    "flask_cors",
    "werkzeug",
    "msgspec",
    "waitress",
    "redis",
    "psutil",
    "prometheus_client",
)


FOUND = [
    Difference(
        type="performance",
        severity="high",
        scope="endpoint",
        key="GET /a",
        backend={"avg_ms": 900.0},
        frontend={"avg_ms": 100.0},
        difference_pct=800.0,
        message="slow",
    ),
    Difference(
        type="activity",
        severity="medium",
        scope="service",
        key=None,
        backend={"count": 10},
        frontend={"count": 5},
        difference_pct=50.0,
        message="busier",
    ),
    Difference(
        type="pattern",
        severity="low",
        scope="endpoint",
        key="GET /b",
        backend={},
        frontend={},
        difference_pct=None,
        message="only one side",
    ),
]


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_front_door_and_the_first_run_install_import_nothing_third_party():
    check = (
        "import sys, live_monitor, live_monitor.install\n"
        f"loaded = sorted(m for m in {THIRD_PARTY!r} if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "app = live_monitor.create_app({'self_monitor': False})\n"
        "assert 'flask' in sys.modules and app.extensions['live_monitor'] is not None\n"
        "assert live_monitor.ExecutionEvent.__name__ == 'ExecutionEvent'\n"
        "assert live_monitor.LiveExecutionMonitor.__name__ == 'LiveExecutionMonitor'\n"
    )
    result = _python(check)
    assert result.returncode == 0, result.stderr


def test_an_unknown_name_of_the_front_door_is_an_attribute_error():
    import live_monitor

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        live_monitor.nothing_here  # noqa: B018


def test_the_monitor_run_directly_never_imports_the_launcher():
    """No import circle: the launcher imports the monitor's entry file, never the reverse."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "live_execution_monitor.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--store" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "live_monitor.install" in imported and "run_live_monitor" not in imported


def _answer(response: Any) -> tuple[int, Any, str | None]:
    return response.status_code, response.get_json(), response.headers.get("Retry-After")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (StoreUnavailable("redis is unreachable"), (503, {"error": "redis is unreachable"}, "1")),
        (
            RuntimeError("secret internals"),
            (500, {"error": "internal error; the monitor's log has the details"}, None),
        ),
    ],
)
def test_a_flask_route_and_the_ingest_fast_path_answer_an_error_alike(app, monkeypatch, error, expected):
    def fail(*args, **kwargs):
        raise error

    monitor = app.extensions["live_monitor"]
    monkeypatch.setattr(monitor, "status", fail)
    monkeypatch.setattr(monitor, "ingest", fail)
    client = app.test_client()
    assert _answer(client.get(f"{API}/status")) == expected
    assert _answer(client.post(EVENTS_PATH, json=[EVENT])) == expected


def test_typed_differences_are_answered_and_filtered_as_dicts_are(app, monkeypatch):
    monkeypatch.setattr(app.extensions["live_monitor"], "differences", lambda stats=None: FOUND)
    client = app.test_client()
    answer = client.get(f"{API}/differences").json
    assert answer["differences"] == msgspec.to_builtins(FOUND) and answer["count"] == 3
    floor = client.get(f"{API}/differences?min_severity=medium").json["differences"]
    assert [d["severity"] for d in floor] == ["high", "medium"]
    assert client.get(f"{API}/data").json["differences"] == msgspec.to_builtins(FOUND)
    refused = client.get(f"{API}/differences?min_severity=urgent")
    assert refused.status_code == 400 and refused.json == {
        "error": "min_severity must be low, medium or high"
    }


def test_the_live_stream_sends_typed_differences_as_json(app, monkeypatch):
    monkeypatch.setattr(app.extensions["live_monitor"], "differences", lambda stats=None: FOUND)
    response = app.test_client().get(STREAM_PATH, buffered=False)
    try:
        for chunk in response.response:
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            if text.startswith("event: differences"):
                data = text.split("data: ", 1)[1]
                assert json.loads(data) == msgspec.to_builtins(FOUND)
                break
        else:
            pytest.fail("the stream ended without differences")
    finally:
        response.close()


def test_only_the_api_and_its_sub_paths_are_the_monitors_own():
    """One rule (vocabulary.is_own_path) for the token and for self-monitoring: a path that merely
    starts like the API is someone else's, so it is a plain 404 and never recorded as own traffic."""
    app = create_app({"self_monitor": True, "token": "s3cret"})
    client = app.test_client()
    auth = {"Authorization": "Bearer s3cret"}
    assert client.get(f"{API}/status").status_code == 401
    assert client.get(f"{API}x/status").status_code == 404
    assert client.get(f"{API}/status", headers=auth).status_code == 200
    recent = client.get(f"{API}/data?include_self=true", headers=auth).json["recent_events"]
    own = [e["action"] for e in recent if e["details"].get(OWN_TRAFFIC_TAG)]
    assert own == ["GET /api/live-execution/status"] * 2  # the 401 and the 200, not the 404
    app.extensions["live_monitor"].stop()


def test_otlp_is_refused_by_the_same_load_and_shutdown_rules_as_ingest(app):
    client = app.test_client()
    export: dict[str, list[object]] = {"resourceSpans": []}
    app.config["BACKLOG"] = lambda: 10_000
    for path, body in ((EVENTS_PATH, [EVENT]), (OTLP_TRACES_PATH, export)):
        response = client.post(path, json=body)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.json["error"] == "the monitor is overloaded; retry shortly"
    app.config["BACKLOG"] = lambda: 0
    assert client.post(OTLP_TRACES_PATH, json=export).status_code == 200
    app.extensions["live_monitor"].begin_drain()
    for path, body in ((EVENTS_PATH, [EVENT]), (OTLP_TRACES_PATH, export)):
        response = client.post(path, json=body)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("path", [f"{API}/status", "/metrics", f"{API}/config"])
def test_every_route_refusing_credentials_names_the_bearer_scheme(path: str) -> None:
    """The REST API and /metrics refuse a caller by the same rule and the same answer, with the
    WWW-Authenticate header RFC 9110 asks of a 401."""
    app = create_app({"token": "s3cret", "self_monitor": False})
    refused = app.test_client().get(path)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.get_json() == {"error": "missing or wrong credentials: send Authorization: Bearer <token>"}
    assert app.test_client().get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def _routes(flask_app: Any) -> dict[str, set[str]]:
    """Every route's path (a sample value for each variable part) and the methods it answers."""
    routes: dict[str, set[str]] = {}
    for rule in flask_app.url_map.iter_rules():
        path = rule.rule.replace("<path:filename>", "dashboard.css")
        routes.setdefault(path, set()).update(rule.methods or ())
    return routes


def test_every_route_answers_a_method_it_does_not_take_with_405_and_allow(app):
    """RFC 9110: a 405 names the methods the resource takes in Allow; the OTLP and ingest routes
    too, whose POST is answered elsewhere (the ingest fast path below Flask)."""
    client = app.test_client()
    routes = _routes(app)
    assert {EVENTS_PATH, OTLP_TRACES_PATH, STREAM_PATH, "/metrics", "/health"} <= set(routes)
    for path, methods in routes.items():
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - methods:
            response = client.open(path, method=method)
            assert response.status_code == 405, (method, path)
            assert response.get_json() == {"error": "The method is not allowed for the requested URL."}
            allow = {m.strip() for m in response.headers["Allow"].split(",")}
            assert allow == methods, (method, path)
