"""The monitor's Flask app: ``create_app(settings)`` builds an isolated app around a monitor.

The app holds what every request passes through, whichever blueprint answers it: the access
policy before, the security headers and the recording of the monitor's own API calls after,
and one mapping from errors to JSON answers. The routes are blueprints (web.api, web.otlp,
web.metrics); POST /events is answered below Flask (web.ingest).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from flask_cors import CORS
from werkzeug.routing import Rule

from backend_logging_config import endpoint_key
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import defaults
from live_monitor.model.events import ExecutionEvent
from live_monitor.vocabulary import API, EVENTS_PATH, STREAM_PATH, is_own_path
from live_monitor.web import api, endpoints, metrics, otlp
from live_monitor.web.access import EXPOSED_HEADERS, Access
from live_monitor.web.encoding import JSONProvider
from live_monitor.web.errors import error_answer
from live_monitor.web.ingest import IngestApp

__all__ = ["create_app"]
log = logging.getLogger("live_execution_monitor")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Own API paths whose calls are not recorded as self-monitoring: ingest, and the live stream
# (one call that lasts as long as the dashboard stays open).
NOT_SELF_MONITORED = (EVENTS_PATH, STREAM_PATH)

CORS_HEADERS = ["Content-Type", "Authorization", "X-Ingest-Key", "Content-Encoding", "traceparent"]


def create_app(
    settings: Mapping[str, Any] | None = None, monitor: LiveExecutionMonitor | None = None
) -> Flask:
    """Build the monitor's Flask app; every call gives an independent app and monitor."""
    settings = {**(monitor.settings if monitor is not None else defaults()), **(settings or {})}
    app = Flask(__name__, static_folder=str(api.ROOT / "static"), static_url_path="/static")
    app.json = JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings["max_body_bytes"]
    app.config["LIVE_MONITOR_SETTINGS"] = settings
    monitor = monitor or LiveExecutionMonitor(settings)
    access = Access(settings, monitor)
    app.extensions["live_monitor"] = monitor
    app.extensions["live_monitor.access"] = access
    app.register_error_handler(Exception, _json_error)
    app.before_request(_guard)
    app.after_request(_after)
    for blueprint in (api.bp, otlp.bp, metrics.bp, endpoints.bp):
        app.register_blueprint(blueprint)
    CORS(
        app,
        resources={
            f"{API}/*": {"origins": access.origins},
            **{
                path: {"origins": access.origins, "methods": ["POST"]} for path in otlp.SIGNALS
            },  # exporters only post
        },
        supports_credentials=False,
        allow_headers=CORS_HEADERS,
        expose_headers=list(EXPOSED_HEADERS),
        max_age=600,
    )
    app.wsgi_app = IngestApp(app.wsgi_app, monitor, settings, access, app.config)  # type: ignore[method-assign]
    # IngestApp answers POST /events before Flask; the rule makes Flask answer 405 and CORS
    # preflights for the route's other methods, as for every other route.
    rule = Rule(EVENTS_PATH, methods=["POST", "OPTIONS"], endpoint="events")
    rule.provide_automatic_options = True  # type: ignore[attr-defined]
    app.url_map.add(rule)
    if settings["autostart"]:
        monitor.start()
    return app


def _json_error(exc: Exception) -> tuple[Response, int, dict[str, str]]:
    """Every error a route raises, answered by the one mapping the ingest fast path uses too."""
    where = f"{request.method} {request.path}"
    status, body, headers = error_answer(
        exc, where=where, body_limit=current_app.config["MAX_CONTENT_LENGTH"]
    )
    return jsonify(body), status, headers


def _guard() -> None:
    """Before every request: the access policy (shutdown, Host, Origin, credentials)."""
    g.started = time.perf_counter()
    access: Access = current_app.extensions["live_monitor.access"]
    access.check(request.method, request.path, request.host, request.headers.get)


def _after(response: Response) -> Response:
    """After every request: security headers, and the monitor's own API calls recorded.

    Recording is a side effect that never changes the answer: while the store is down the
    call is dropped and counted (``self_events_dropped`` in /status); anything else goes to
    the log, and the client still gets the answer the route gave.
    """
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
    if current_app.config["LIVE_MONITOR_SETTINGS"]["self_monitor"] and _self_monitored(
        request.method, request.path
    ):
        try:
            current_app.extensions["live_monitor"].record_own(_own_call(response.status_code))
        except Exception:  # noqa: BLE001 - a side effect must not turn the answer into a 500
            log.exception("recording %s %s as self-monitoring failed", request.method, request.path)
    return response


def _self_monitored(method: str, path: str) -> bool:
    """The monitor's own API calls are recorded (tagged as its own traffic), but not ingest,
    the live stream or CORS preflights."""
    return is_own_path(path) and not path.startswith(NOT_SELF_MONITORED) and method != "OPTIONS"


def _own_call(http_status: int) -> ExecutionEvent:
    """The backend event of the API call being answered, tagged as the monitor's own traffic."""
    return ExecutionEvent(
        timestamp=time.time(),
        service="backend",
        component="http",
        action=endpoint_key(request.method, request.path),
        duration_ms=round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
        status="error" if http_status >= 500 else "success",
        details={"http_status": http_status},  # record() tags it as the monitor's own
    )
