"""The servers the monitor is compared with, served by waitress with the monitor's settings.

``python benchmarks/servers.py KIND --port 0`` prints ``serving on http://127.0.0.1:PORT``:
- ``bare-ingest``: a bare WSGI handler doing json.loads + deque.extend (the floor);
- ``naive-ingest``: a naive Flask handler using request.get_json();
- ``hello --middleware none|live|prometheus|otel``: a hello-world Flask app, bare or
  instrumented (``live`` is backend_logging_config.init_app, shipping to ``--monitor-url``).
``make_hello_app`` builds the same apps in-process for the in-process middleware rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import EVENTS  # noqa: E402
from live_monitor.core.settings import defaults  # noqa: E402

MIDDLEWARES = ("none", "live", "prometheus", "otel")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def bare_ingest_app() -> WsgiApp:
    """The floor: read the body, json.loads it, extend a deque, answer like the monitor."""
    store: deque[Any] = deque(maxlen=defaults()["max_events"] * 2)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            events = json.loads(environ["wsgi.input"].read(length))
            if isinstance(events, dict):
                events = events["events"]
            store.extend(events)
            body = b'{"accepted": %d, "rejected": 0, "errors": []}' % len(events)
        else:
            body = b'{"status": "ok"}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def naive_ingest_app() -> Any:
    """What a first Flask version would do: request.get_json() and a deque."""
    from flask import Flask, jsonify, request

    app = Flask("naive_ingest")
    store: deque[Any] = deque(maxlen=defaults()["max_events"] * 2)

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok")

    @app.post(EVENTS)
    def events() -> Any:
        data = request.get_json()
        events = data["events"] if isinstance(data, dict) else data
        store.extend(events)
        return jsonify(accepted=len(events), rejected=0, errors=[])

    return app


def make_hello_app(middleware: str = "none", monitor_url: str = "", client: Any = None) -> Any:
    """A hello-world Flask app, bare or with one instrumentation; returns the WSGI callable."""
    from flask import Flask

    app = Flask("hello")

    @app.get("/hello")
    def hello() -> str:
        return "Hello, World!"

    @app.get("/health")
    def health() -> str:
        return "ok"

    if middleware == "none":
        return app
    if middleware == "live":
        import backend_logging_config

        backend_logging_config.init_app(app, monitor_url=monitor_url or "http://127.0.0.1:9", client=client)
        return app
    if middleware == "prometheus":
        app.wsgi_app = _prometheus_middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
        return app
    if middleware == "otel":
        from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

        app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, tracer_provider=otel_provider()
        )
        return app
    raise ValueError(f"unknown middleware {middleware!r}: use one of {', '.join(MIDDLEWARES)}")


def _prometheus_middleware(wsgi_app: WsgiApp) -> WsgiApp:
    """The usual prometheus_client pattern: a request-duration Histogram by method, path, status."""
    from prometheus_client import CollectorRegistry, Histogram

    histogram = Histogram(
        "http_request_duration_seconds",
        "HTTP request duration",
        ["method", "path", "status"],
        registry=CollectorRegistry(),
    )

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status = ["500"]

        def recording_start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        try:
            return wsgi_app(environ, recording_start_response)
        finally:
            histogram.labels(environ["REQUEST_METHOD"], environ["PATH_INFO"], status[0]).observe(
                time.perf_counter() - started
            )

    return app


_PROVIDER: Any = None


def otel_provider() -> Any:
    """An OpenTelemetry SDK tracer provider whose batch processor exports to nowhere."""
    global _PROVIDER
    if _PROVIDER is None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class DiscardExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        _PROVIDER = TracerProvider()
        _PROVIDER.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    return _PROVIDER


def serve(app: WsgiApp, port: int) -> int:
    """Serve exactly as live_execution_monitor.serve does: live_monitor.web.server.WaitressServer
    with the monitor's default threads, body limit, connection cap (``connections_that_fit``, so
    the open-file limit is raised alike), read deadlines and GIL switch interval."""
    from live_monitor.web.server import GIL_SWITCH_INTERVAL_S, WaitressServer, connections_that_fit

    settings = defaults()
    server = WaitressServer(
        app,
        "127.0.0.1",
        port,
        settings["threads"],
        settings["max_body_bytes"],
        max_connections=connections_that_fit(settings["max_connections"]),
        header_timeout=settings["header_timeout"],
        body_timeout=settings["body_timeout"],
    )
    print(f"serving on http://127.0.0.1:{server.port}", flush=True)
    sys.setswitchinterval(max(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve one comparison app."""
    parser = argparse.ArgumentParser(prog="servers.py", description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["bare-ingest", "naive-ingest", "hello"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--middleware", choices=MIDDLEWARES, default="none")
    parser.add_argument("--monitor-url", default="")
    args = parser.parse_args(argv)
    if args.kind == "bare-ingest":
        return serve(bare_ingest_app(), args.port)
    if args.kind == "naive-ingest":
        return serve(naive_ingest_app(), args.port)
    return serve(make_hello_app(args.middleware, args.monitor_url), args.port)


if __name__ == "__main__":
    sys.exit(main())
