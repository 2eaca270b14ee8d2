"""The monitor's Flask app: ``create_app(settings)`` builds an isolated app around a monitor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask_cors import CORS
from werkzeug.routing import Rule

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import defaults
from live_monitor.vocabulary import API, EVENTS_PATH, OTLP_TRACES_PATH
from live_monitor.web import api, metrics, otlp
from live_monitor.web.access import Access
from live_monitor.web.encoding import JSONProvider
from live_monitor.web.errors import error_answer
from live_monitor.web.ingest import IngestApp

__all__ = ["create_app"]

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
    for blueprint in (api.bp, otlp.bp, metrics.bp):
        app.register_blueprint(blueprint)
    CORS(
        app,
        resources={
            f"{API}/*": {"origins": access.origins},
            OTLP_TRACES_PATH: {"origins": access.origins, "methods": ["POST"]},  # an exporter only posts
        },
        supports_credentials=False,
        allow_headers=CORS_HEADERS,
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
