"""The monitor's hot path, POST /api/live-execution/events, served as plain WSGI below Flask.

Browsers and backends post a batch every second or so, and a monitor watching a busy app
takes thousands a second. Flask's request machinery (routing, request and response
objects, hooks, extensions) costs more than decoding, validating and counting a 100-event
batch, so ``IngestApp`` answers this one route itself and hands every other request to
Flask. Both follow the same ``Access`` rules and answer errors through the same mapping
(``errors.error_answer``: status, JSON body, Retry-After), with the CORS headers Flask adds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.events import BatchError
from live_monitor.vocabulary import EVENTS_PATH
from live_monitor.web.access import Access, Header, cors_headers
from live_monitor.web.bodies import read_wsgi_body
from live_monitor.web.encoding import dumps
from live_monitor.web.errors import ApiError, error_answer

MAX_ERRORS_SHOWN = 20
JSON_TYPES = ("application/json", "text/plain")
STATUS_LINES = {
    status.value: f"{status.value} {status.phrase}" for status in HTTPStatus
}  # no enum call per answer

StartResponse = Callable[..., Any]


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts of up to ``rate``."""

    def __init__(
        self, rate: float, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_clients = max_clients
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Take one token for ``client``; False when it has none left."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            return allowed


class IngestApp:
    """WSGI middleware: answers POST /events itself and passes every other request to ``app``.

    ``config["BACKLOG"]``, when set, reports the server's queue (waitress), so a flooded
    monitor answers 503 rather than queueing without end.
    """

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        monitor: LiveExecutionMonitor,
        settings: Mapping[str, Any],
        access: Access,
        config: Mapping[str, Any],
    ) -> None:
        self.app = app
        self.config = config  # the Flask app's config: BACKLOG reports the server's queue
        self.monitor = monitor
        self.access = access
        self.limit = settings["max_body_bytes"]
        self.max_batch_events = settings["max_batch_events"]
        self.limiter = RateLimiter(settings["ingest_rate"])

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != EVENTS_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        origin = environ.get("HTTP_ORIGIN")
        try:
            status, answer = self._ingest(environ, origin)
            extra: dict[str, str] = {}
        except Exception as exc:  # noqa: BLE001 - every error gets its JSON answer, as in Flask
            status, answer, extra = error_answer(exc, where=f"POST {EVENTS_PATH}", body_limit=self.limit)
        body = dumps(answer).encode() + b"\n"
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            *extra.items(),
            *cors_headers(self.access, origin),
        ]
        start_response(STATUS_LINES[status], headers)
        return [body]

    def _ingest(self, environ: dict[str, Any], origin: str | None) -> tuple[int, dict[str, Any]]:
        host = environ["HTTP_HOST"] if "HTTP_HOST" in environ else environ.get("SERVER_NAME", "")
        self.access.check("POST", EVENTS_PATH, host, _header_reader(environ))
        self.access.check_load(self.config)
        if origin and not self.limiter.allow(f"{environ.get('REMOTE_ADDR')} {origin}"):
            raise ApiError(429, "too many requests from this browser; slow down", {"Retry-After": "1"})
        body = self._read_body(environ)
        try:
            result = self.monitor.ingest(body, self.max_batch_events)
        except BatchError as exc:
            self.monitor.store.reject(["malformed batch"])
            raise ApiError(400, str(exc)) from None
        answer: dict[str, Any] = {
            "accepted": result.accepted,
            "rejected": result.rejected,
            "errors": result.errors[:MAX_ERRORS_SHOWN],
        }
        if result.rejected > MAX_ERRORS_SHOWN:
            answer["errors_truncated"] = True
        if result.accepted == 0 and result.rejected:
            answer["error"] = "no valid event in the batch"
            return 400, answer
        return 200, answer

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The request body, decompressed, refused with 415 unless JSON and 413 beyond the limit."""
        mimetype = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        if mimetype not in JSON_TYPES:
            raise ApiError(415, "send the events as JSON with Content-Type: application/json")
        return read_wsgi_body(environ, self.limit)


def _header_reader(environ: Mapping[str, Any]) -> Header:
    def header(name: str) -> str | None:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return None if value is None else str(value)

    return header
