"""A stand-in for the monitor's ingest endpoint, and helpers, for the instrumentation tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class FakeMonitor:
    """A real HTTP server standing in for the monitor's ingest endpoint.

    ``script`` holds answers to give first, as ``(status, headers, json_body)``; after that
    every batch is accepted. ``stop()`` closes the port (connection refused), ``start()``
    reopens the same port.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.script: list[tuple[int, dict[str, str], dict[str, Any] | None]] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with monitor.lock:
                    monitor.requests.append((time.monotonic(), self.path, body))
                    monitor.auth.append(self.headers.get("Authorization"))
                    status, headers, answer = monitor.script.pop(0) if monitor.script else (200, {}, None)
                if answer is None and status == 200:
                    answer = {"accepted": len(body["events"]), "rejected": 0, "errors": []}
                data = json.dumps(answer or {"error": "scripted"}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for _, _, body in self.requests for event in body["events"]]


class Recorder:
    """Stands in for a MonitorClient where only the recorded events matter."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def record(self, event: dict[str, Any]) -> bool:
        self.events.append(event)
        return True
