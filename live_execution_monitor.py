"""The Live Execution Monitor's Flask API and command line.

``create_app(settings)`` builds an isolated app around a ``LiveExecutionMonitor``;
``main`` serves it with waitress (``--debug`` uses Flask's debugger, on loopback only).
Run ``python live_execution_monitor.py --help`` for every setting.
"""

from __future__ import annotations

if __name__ == "__main__":  # run directly: install what is missing on first use, as the launcher does
    import run_live_monitor

    if not run_live_monitor.ensure_python_packages():
        raise SystemExit(1)

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
from flask import Flask, Response, g, jsonify, request, send_from_directory
from flask_cors import CORS
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from backend_logging_config import endpoint_key
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import (
    add_arguments,
    defaults,
    is_loopback,
    origins_problem,
    public_view,
    range_problem,
    resolve,
    store_kind,
)
from live_monitor.model.comparator import Thresholds
from live_monitor.model.events import ExecutionEvent
from live_monitor.store import StoreUnavailable
from live_monitor.store.journal import JournalError, journal_problem
from live_monitor.web import metrics as monitor_metrics
from live_monitor.web import otlp as otlp_ingest
from live_monitor.web.ingest import API, EVENTS, Access, ApiError, IngestApp
from live_monitor.web.openapi import openapi

__all__ = ["LiveExecutionMonitor", "ExecutionEvent", "create_app", "main", "serve"]

HERE = Path(__file__).resolve().parent
DASHBOARD = "live_execution_dashboard.html"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NOT_SELF_MONITORED = (EVENTS, f"{API}/stream")
GIL_SWITCH_INTERVAL_S = 0.02
log = logging.getLogger("live_execution_monitor")


def create_app(
    settings: Mapping[str, Any] | None = None, monitor: LiveExecutionMonitor | None = None
) -> Flask:
    """Build the monitor's Flask app; every call gives an independent app and monitor."""
    settings = {**(monitor.settings if monitor is not None else defaults()), **(settings or {})}
    app = Flask(__name__, static_folder=str(HERE / "static"), static_url_path="/static")
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
        return send_from_directory(HERE, DASHBOARD, mimetype="text/html", max_age=0)

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
        return jsonify(
            msgspec.to_builtins(monitor.data(limit=limit, include_self=include_self, history=history))
        )

    @app.get(f"{API}/differences")
    def differences() -> Response:
        found = msgspec.to_builtins(monitor.differences())
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


def _free_port(host: str) -> int:
    """A port nobody listens on now (Flask's debug server cannot report the one it picked)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


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
            yield f"event: differences\ndata: {json.dumps(msgspec.to_builtins(monitor.differences()))}\n\n"
        if not fresh and not ticked:
            yield ": keep-alive\n\n"


def build_parser() -> argparse.ArgumentParser:
    """The monitor's command line: one flag per setting of monitor_settings.SETTINGS."""
    parser = argparse.ArgumentParser(
        prog="live_execution_monitor.py",
        description="Serve the Live Execution Monitor: REST API, dashboard and event ingest.",
    )
    add_arguments(parser)
    return parser


def check_settings(settings: Mapping[str, Any]) -> str | None:
    """Refuse values out of range and unsafe combinations; returns the reason or None."""
    out_of_range = range_problem(settings)
    if out_of_range:
        return out_of_range
    bad_origin = origins_problem(settings["cors_origins"])
    if bad_origin:
        return f"--cors-origins: {bad_origin}"
    if settings["debug"] and not is_loopback(settings["host"]):
        return "--debug runs Flask's interactive debugger and is refused unless bound to loopback"
    kind = store_kind(settings["store"])
    if kind is None:
        return f"--store must be 'memory' or a redis:// URL, not {settings['store']!r}"
    if settings["workers"] > 1 and kind != "redis":
        return "--workers needs a shared store: add --store redis://host:port/db"
    if settings["persist"] and kind != "memory":
        return "--persist journals the in-memory store; with Redis the events live in Redis"
    if settings["persist"]:
        unusable = journal_problem(settings["persist"])
        if unusable:
            return f"--persist {settings['persist']}: {unusable}"
    if settings["thresholds"]:
        try:
            Thresholds.from_file(settings["thresholds"])
        except (OSError, ValueError, TypeError) as exc:
            return f"--thresholds {settings['thresholds']}: {getattr(exc, 'strerror', None) or exc}"
    if not is_loopback(settings["host"]) and not settings["token"]:
        return (
            f"binding {settings['host']} exposes the monitor beyond this machine: "
            "set --token (or LIVE_MONITOR_TOKEN) so control and read endpoints need it"
        )
    return None


def serve(
    settings: Mapping[str, Any],
    monitor: LiveExecutionMonitor | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until interrupted; ``ready`` gets the base URL once the socket listens."""
    from live_monitor.web.server import WaitressServer, inherited_socket, listen_error

    try:
        app = create_app(settings, monitor)
    except JournalError as exc:  # the file changed since check_settings looked, or is read-only
        print(f"error: --persist {exc}", file=sys.stderr)
        return 2
    monitor = app.extensions["live_monitor"]
    host = settings["host"]
    if settings["debug"]:
        logging.basicConfig(level=logging.DEBUG)
        port = settings["port"] or _free_port(host)
        base = f"http://{host}:{port}"
        print(f"Live Execution Monitor (debug) serving on {base}", flush=True)
        if ready:
            ready(base)
        app.run(host=host, port=port, debug=True, use_reloader=False, threaded=True)
        return 0
    sock = inherited_socket(host)
    try:
        server = WaitressServer(
            app, host, settings["port"], settings["threads"], settings["max_body_bytes"], sock
        )
    except OSError as exc:
        monitor.close()
        print(listen_error(host, settings["port"], exc), file=sys.stderr)
        return 2
    app.config["BACKLOG"] = server.backlog
    server.on_drain = monitor.begin_drain
    base = f"http://{'[' + host + ']' if ':' in host else host}:{server.port}"
    if sock is None:
        print(f"Live Execution Monitor serving on {base}", flush=True)
    if ready:
        ready(base)
    # Ingest threads take the store's lock while they count a queue of events (a few ms);
    # at Python's default 5 ms switch interval the GIL was taken from them mid-count and
    # the other threads queued on the lock: 8 threads spent ~40% more CPU per batch than
    # one. A 20 ms interval lets a count finish; requests still yield at every socket read.
    # The setting is the process's, which serving takes over for good.
    sys.setswitchinterval(max(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    try:
        server.serve_forever()
    finally:
        monitor.close()
    print("Live Execution Monitor stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None, *, ready: Callable[[str], None] | None = None) -> int:
    """Run the monitor from the command line; ``ready`` gets the public URL once it accepts connections.

    The launcher (run_live_monitor.py) calls this too, so both check and serve the same way.
    """
    args = build_parser().parse_args(argv)
    try:
        settings = resolve(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = check_settings(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(settings["host"]):
        print(f"warning: listening on {settings['host']}: every API call needs the token", file=sys.stderr)
    if settings["workers"] > 1:
        return _serve_workers(settings, list(argv if argv is not None else sys.argv[1:]), ready)
    return serve(settings, ready=ready)


def _serve_workers(settings: Mapping[str, Any], argv: list[str], ready: Callable[[str], None] | None) -> int:
    """Start ``--workers`` monitor processes on one public port (monitor_server.run_workers)."""
    from live_monitor.web.server import run_workers

    rest = _without_option(_without_option(argv, "--workers"), "--port")
    host, port, workers = settings["host"], settings["port"], settings["workers"]
    return run_workers(__file__, [*rest, "--port", "0"], host, port, workers, ready=ready)


def _without_option(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` or ``flag=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
