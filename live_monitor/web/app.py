"""The monitor's Flask app: ``create_app(settings)`` builds an isolated app around a monitor."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_cors import CORS
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from backend_logging_config import endpoint_key
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import defaults, public_view
from live_monitor.model.events import ExecutionEvent
from live_monitor.store import StoreUnavailable
from live_monitor.web import metrics as monitor_metrics
from live_monitor.web import otlp as otlp_ingest
from live_monitor.web.access import Access
from live_monitor.web.errors import ApiError
from live_monitor.web.ingest import API, EVENTS, IngestApp
from live_monitor.web.openapi import openapi

# The dashboard page and static/ sit beside the package, in a checkout as in site-packages.
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = "live_execution_dashboard.html"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NOT_SELF_MONITORED = (EVENTS, f"{API}/stream")
log = logging.getLogger("live_execution_monitor")


def create_app(
    settings: Mapping[str, Any] | None = None, monitor: LiveExecutionMonitor | None = None
) -> Flask:
    """Build the monitor's Flask app; every call gives an independent app and monitor."""
    settings = {**(monitor.settings if monitor is not None else defaults()), **(settings or {})}
    app = Flask(__name__, static_folder=str(ROOT / "static"), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = settings["max_body_bytes"]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    monitor = monitor or LiveExecutionMonitor(settings)
    app.extensions["live_monitor"] = monitor
    access = Access(settings, monitor)
    monitor_metrics.register(app, monitor, access)
    otlp_ingest.register(app, monitor, access)
    CORS(
        app,
        resources={f"{API}/*": {"origins": access.origins}},
        supports_credentials=False,
        allow_headers=["Content-Type", "Authorization", "X-Ingest-Key", "Content-Encoding", "traceparent"],
        max_age=600,
    )
    streams = threading.Semaphore(max(1, settings["threads"] - 2))  # each open stream holds a thread
    app.wsgi_app = IngestApp(app.wsgi_app, monitor, settings, access, app.config)  # type: ignore[method-assign]
    # IngestApp answers POST /events before Flask; the rule makes Flask answer 405 and CORS
    # preflights for the route's other methods, as for every other route.
    rule = Rule(EVENTS, methods=["POST", "OPTIONS"], endpoint="events")
    rule.provide_automatic_options = True  # type: ignore[attr-defined]
    app.url_map.add(rule)

    @app.before_request
    def _guard() -> None:
        g.started = time.perf_counter()
        access.check(request.method, request.path, request.host, request.headers.get)

    @app.after_request
    def _after(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CSP
        path = request.path
        if (
            settings["self_monitor"]
            and path.startswith(API)
            and not path.startswith(NOT_SELF_MONITORED)
            and request.method != "OPTIONS"
        ):
            monitor.record(
                ExecutionEvent(
                    timestamp=time.time(),
                    service="backend",
                    component="http",
                    action=endpoint_key(request.method, path),
                    duration_ms=round(
                        (time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3
                    ),
                    status="error" if response.status_code >= 500 else "success",
                    details={"http_status": response.status_code, "self_monitor": True},
                )
            )
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int, dict[str, str]]:
        return jsonify(error=exc.message), exc.status, exc.headers

    @app.errorhandler(StoreUnavailable)
    def _store_down(exc: StoreUnavailable) -> tuple[Response, int, dict[str, str]]:
        return jsonify(error=str(exc)), 503, {"Retry-After": "1"}

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"body too large: at most {settings['max_body_bytes']:,} bytes"
        return jsonify(error=message), exc.code or 400

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error="internal error; the monitor's log has the details"), 500

    @app.get("/")
    def dashboard() -> Response:
        return send_from_directory(ROOT, DASHBOARD, mimetype="text/html", max_age=0)

    @app.get("/api/openapi.json")
    def openapi_json() -> Response:
        return jsonify(openapi())

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok", monitoring=monitor.monitoring)

    @app.post(f"{API}/start")
    def start() -> Response:
        started = monitor.start()
        return jsonify(status="started" if started else "already running", monitoring=True)

    @app.post(f"{API}/stop")
    def stop() -> Response:
        stopped = monitor.stop()
        return jsonify(status="stopped" if stopped else "not running", monitoring=False)

    @app.get(f"{API}/status")
    def status() -> Response:
        return jsonify(monitor.status())

    @app.get(f"{API}/data")
    def data() -> Response:
        limit = _int_arg("limit", settings["recent_limit"], 0, settings["max_events"] * 2)
        history = _int_arg("history", 300, 0, settings["history"])
        include_self = _bool_arg("include_self", True)
        return jsonify(monitor.data(limit=limit, include_self=include_self, history=history))

    @app.get(f"{API}/differences")
    def differences() -> Response:
        found = monitor.differences()
        floor = request.args.get("min_severity")
        if floor is not None:
            order = ["low", "medium", "high"]
            if floor not in order:
                raise ApiError(400, "min_severity must be low, medium or high")
            found = [d for d in found if order.index(d["severity"]) >= order.index(floor)]
        return jsonify(differences=found, count=len(found), thresholds=monitor.thresholds.as_dict())

    @app.get(f"{API}/config")
    def config() -> Response:
        return jsonify(settings=public_view(settings), thresholds=monitor.thresholds.as_dict())

    @app.get(f"{API}/stream")
    def stream() -> Response:
        if not streams.acquire(blocking=False):
            raise ApiError(503, "too many live streams open; poll /data instead", {"Retry-After": "5"})
        response = Response(
            _sse(monitor),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        response.call_on_close(streams.release)  # also when the stream never starts (HEAD)
        return response

    if settings["autostart"]:
        monitor.start()
    return app


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def _bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false")


def _sse(monitor: LiveExecutionMonitor) -> Iterator[str]:
    """Server-Sent Events: new events and the current differences after every tick."""
    seq, tick = monitor.store.seq, -1
    yield "retry: 2000\n\n"
    while not monitor.draining:
        wait = 15.0 if monitor.monitoring else monitor.settings["interval"]
        new_tick = monitor.wait_for_tick(tick, wait)
        seq, fresh = monitor.store.since(seq, 200)
        if fresh:
            yield f"event: events\ndata: {json.dumps([e.to_dict() for e in fresh])}\n\n"
        ticked, tick = new_tick != tick, new_tick
        if ticked:
            yield f"event: differences\ndata: {json.dumps(monitor.differences())}\n\n"
        if not fresh and not ticked:
            yield ": keep-alive\n\n"
