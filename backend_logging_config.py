"""Backend instrumentation for the Live Execution Monitor.

Runs inside users' applications, so importing it uses the standard library only; Flask is
imported by ``init_app`` alone. Entry points: ``configure_logging`` (JSON-lines logs, optional
forwarding to the monitor), ``MonitorClient`` (a bounded, non-blocking event shipper),
``init_app`` (one ``http`` event per Flask request, W3C ``traceparent`` in, ``Server-Timing``
out), ``track`` (decorator and context manager) and ``MonitorHandler`` (log records to events).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import email.utils
import functools
import http.client
import inspect
import json
import logging
import logging.config
import os
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LONG_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")


def normalize_route(path: str) -> str:
    """Return the endpoint route for a path or URL: no query, ids replaced by ``:id``.

    Purely numeric segments, UUIDs and hex strings of 16 or more characters become
    ``:id`` so that ``/api/orders/42`` from the browser and from the server meet on
    ``/api/orders/:id``. Empty segments and a trailing slash are dropped.
    """
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = []
    for segment in path.split("/"):
        if not segment:
            continue
        if (segment.isascii() and segment.isdigit()) or _UUID.match(segment) or _LONG_HEX.match(segment):
            segment = ":id"
        segments.append(segment)
    return "/" + "/".join(segments)


def endpoint_key(method: str, path: str) -> str:
    """Return the endpoint key both sides share, e.g. ``GET /api/orders/:id``."""
    return f"{method.upper()} {normalize_route(path)}"


MONITOR_BASE_PATH = "/api/live-execution"
EVENTS_PATH = MONITOR_BASE_PATH + "/events"
EVENT_FIELDS = ("service", "component", "action", "duration_ms", "status", "details")
TRACE_FIELDS = ("trace_id", "span_id")
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_RETRY_AFTER = 60.0
_WARN_INTERVAL = 60.0
# The client's own warnings: they carry no component/action, so MonitorHandler ignores them.
_log = logging.getLogger("live_monitor.internal")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_current_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "live_monitor_trace", default=None
)
_F = TypeVar("_F", bound=Callable[..., Any])


def _iso(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with milliseconds and a ``Z``."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _json_default(value: Any) -> Any:
    """Serialise what json cannot: datetimes as ISO 8601, sets as lists, the rest as str()."""
    if isinstance(value, datetime):
        return value.isoformat()
    return list(value) if isinstance(value, (set, frozenset)) else str(value)


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """Return ``(trace_id, parent_span_id)`` from a W3C ``traceparent``, or None if invalid.

    Malformed values, version ``ff``, extra fields on version ``00`` and all-zero ids are
    invalid; the caller then starts a new trace, as the W3C spec asks.
    """
    match = _TRACEPARENT.match(header.strip()) if header else None
    if match is None:
        return None
    version, trace_id, parent_id, _flags, extra = match.groups()
    if version == "ff" or (version == "00" and extra) or not int(trace_id, 16):
        return None
    return (trace_id, parent_id) if int(parent_id, 16) else None


def _events_url(monitor_url: str) -> str:
    """Return the ingest URL for a monitor base URL (or for the ingest URL itself)."""
    url = monitor_url.strip().rstrip("/") if isinstance(monitor_url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"monitor_url must be an http(s) URL such as http://localhost:5001, got {monitor_url!r}"
        )
    return url if url.endswith(EVENTS_PATH) else url + EVENTS_PATH


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), capped at 60."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _json_object(payload: bytes) -> dict[str, Any]:
    """The monitor's JSON answer as a dict ({} when it is not a JSON object)."""
    try:
        answer = json.loads(payload) if payload else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


class MonitorClient:
    """Ships ExecutionEvents to the monitor from a background thread, never blocking the app.

    ``record`` only appends to a bounded queue (``max_queue`` counts events waiting and in
    flight, so memory stays bounded while the monitor is down); a daemon thread posts batches
    and retries 429/502/503/504 and connection errors with full-jitter exponential backoff,
    honouring ``Retry-After``. Every event ends up counted in ``stats()`` as sent or dropped.
    ``token`` (default: env ``LIVE_MONITOR_TOKEN``) is sent as ``Authorization: Bearer``.
    """

    def __init__(
        self,
        monitor_url: str,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10000,
        timeout: float = 5.0,
        max_retries: int = 5,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        shutdown_timeout: float = 2.0,
        token: str | None = None,
    ) -> None:
        for name, value in list(locals().items())[2:-1]:  # the numeric options, in order
            least = 1 if name in ("batch_size", "max_queue") else 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
                raise ValueError(f"MonitorClient {name} must be a number >= {least}, got {value!r}")
        self.url = _events_url(monitor_url)
        self.batch_size, self.max_queue, self.max_retries = batch_size, max_queue, max_retries
        self.flush_interval, self.timeout = float(flush_interval), float(timeout)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.shutdown_timeout = float(shutdown_timeout)
        self.token = token or os.environ.get("LIVE_MONITOR_TOKEN") or None
        host = urlsplit(self.url).hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        # Never send loopback traffic through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if loopback else []))
        self._sent = self._retried = self._batches_sent = 0
        self._dropped: dict[str, int] = {}
        self._last_error: str | None = None
        self._last_warning = float("-inf")
        self._init_state()
        _clients.add(self)

    def _init_state(self) -> None:
        """Fresh lock, queue and thread (also in a forked child: the parent sends its queue)."""
        self._cond = threading.Condition()
        self._queue: deque[dict[str, Any]] = deque()
        self._in_flight = self._flush_waiters = 0
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, event: Mapping[str, Any]) -> bool:
        """Queue one event (a dict in the ExecutionEvent schema, or an object with
        ``to_dict()``); False if it was dropped.

        Fills ``timestamp`` (now, ISO UTC) and ``service`` ("backend") when missing. Never
        blocks on the network and never raises.
        """
        reason = "invalid"
        with contextlib.suppress(Exception):
            if not isinstance(event, Mapping) and callable(getattr(event, "to_dict", None)):
                event = event.to_dict()  # type: ignore[attr-defined]
            if isinstance(event, Mapping):
                data = dict(event)
                if data.get("timestamp") is None:
                    data["timestamp"] = _iso(time.time())
                data["service"] = data.get("service") or "backend"
                with self._cond:
                    if self._closing:
                        reason = "closed"
                    elif len(self._queue) + self._in_flight >= self.max_queue:
                        reason = "queue_full"
                    else:
                        self._queue.append(data)
                        self._ensure_worker()
                        if len(self._queue) in (1, self.batch_size):
                            self._cond.notify_all()
                        return True
            self._drop(1, reason, f"event dropped: {reason}")
        return False

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every queued event was sent or dropped; False if ``timeout`` ran out."""
        with self._cond:
            if not self._queue and not self._in_flight:
                return True
            self._ensure_worker()
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout=timeout)
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` (default ``shutdown_timeout``), then stop the thread.

        Events still queued afterwards are dropped with reason ``closed``. Idempotent.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stop.is_set():
                return True
            self._closing = True
        delivered = self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            thread, leftover = self._thread, len(self._queue)
            self._queue.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        if leftover:
            self._drop(leftover, "closed", "client closed with events queued")
        _clients.discard(self)
        return delivered

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closing

    def stats(self) -> dict[str, Any]:
        """Return a copy of the counters: queued, sent, retried, dropped by reason, errors."""
        with self._cond:
            return {
                "queued": len(self._queue) + self._in_flight,
                "sent": self._sent,
                "retried": self._retried,
                "dropped": dict(self._dropped),
                "dropped_total": sum(self._dropped.values()),
                "batches_sent": self._batches_sent,
                "last_error": self._last_error,
            }

    def _ensure_worker(self) -> None:
        if (self._thread is None or not self._thread.is_alive()) and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="live-monitor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(5.0)  # record() notifies when the queue stops being empty
                waiting = self._queue and not (self._flush_waiters or self._closing)
                if waiting and len(self._queue) < self.batch_size:
                    self._cond.wait(self.flush_interval)  # let a batch build up
                count = min(len(self._queue), self.batch_size)
                if self._stop.is_set() or not count:
                    continue
                batch = [self._queue.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - the sender thread must survive anything
                self._drop(len(batch), "error", f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Post one batch, retrying what is worth retrying, and count the outcome."""
        good = []
        for event in batch:  # one unserialisable event must not sink the whole batch
            try:
                good.append(json.dumps(event, default=_json_default))
            except (TypeError, ValueError) as exc:
                self._drop(1, "unserializable", f"event is not JSON-serialisable: {exc}")
        if not good:
            return
        body = ('{"events":[' + ",".join(good) + "]}").encode()
        for attempt in range(self.max_retries + 1):
            code, retry_after, payload, error = self._post(body)
            answer = _json_object(payload)
            if code is not None and (200 <= code < 300 or (code == 400 and answer.get("rejected"))):
                return self._accepted(len(good), answer)  # a 400 that rejected every event
            if code is not None and code not in RETRYABLE_STATUS:
                return self._drop(len(good), f"http_{code}", error)
            if attempt == self.max_retries:
                break
            cap = min(self.backoff_max, self.backoff_base * 2**attempt)
            with self._cond:
                self._retried += 1
                self._last_error = error
            if self._stop.wait(random.uniform(0.0, cap) if retry_after is None else retry_after):
                return self._drop(len(good), "closed", "client closed while retrying")
        self._drop(len(good), "retries_exhausted", error)

    def _post(self, body: bytes) -> tuple[int | None, float | None, bytes, str]:
        """POST a body: (status or None if unreachable, Retry-After, answer, error text)."""
        headers = {"Content-Type": "application/json", "User-Agent": "live-monitor-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, None, response.read(1 << 20), ""
        except urllib.error.HTTPError as exc:
            with exc:
                retry_after = _parse_retry_after(exc.headers.get("Retry-After"))
                answer = exc.read(1 << 16)
            detail = answer[:300].decode("utf-8", "replace").strip()
            return exc.code, retry_after, answer, f"HTTP {exc.code} from monitor: {detail}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, None, b"", f"cannot reach monitor at {self.url}: {reason}"

    def _accepted(self, count: int, answer: dict[str, Any]) -> None:
        """Count a delivered batch: events the monitor ``rejected`` are dropped, the rest sent."""
        rejected, first_error = 0, ""
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            rejected = min(max(int(answer.get("rejected") or 0), 0), count)
            first_error = str((answer.get("errors") or [""])[0])
        with self._cond:
            self._sent += count - rejected
            self._batches_sent += 1
        if rejected:
            self._drop(rejected, "rejected", f"monitor rejected {rejected} event(s): {first_error}")

    def _drop(self, count: int, reason: str, error: str) -> None:
        """Count dropped events; warn at most once a minute, on a logger never forwarded."""
        with self._cond:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
            self._last_error = error
            now = time.monotonic()
            if now - self._last_warning < _WARN_INTERVAL:
                return
            self._last_warning = now
        with contextlib.suppress(Exception):
            _log.warning("live monitor: dropped %d event(s) (%s): %s", count, reason, error)


_clients: weakref.WeakSet[MonitorClient] = weakref.WeakSet()
_default_client: MonitorClient | None = None
_logging_client: MonitorClient | None = None


def _close_all_clients() -> None:
    """At exit, give every open client its ``shutdown_timeout`` to flush."""
    for client in list(_clients):
        with contextlib.suppress(Exception):
            client.close()


atexit.register(_close_all_clients)


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._init_state()


if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_default_client(client: MonitorClient | None) -> None:
    """Set the client ``track`` and ``MonitorHandler`` use when they are given none."""
    global _default_client
    _default_client = client


def get_default_client() -> MonitorClient | None:
    """Return the client set by ``set_default_client``, ``init_app`` or ``configure_logging``."""
    return _default_client


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp (UTC), level, logger, message, and event fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in EVENT_FIELDS + TRACE_FIELDS:
            if field in record.__dict__:
                data[field] = record.__dict__[field]
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=_json_default, ensure_ascii=False)


def _add_trace(event: dict[str, Any], trace_id: Any = None, span_id: Any = None) -> None:
    """Set trace ids: the given ones, else the current request's trace with a new span."""
    current = _current_trace.get()
    trace_id = trace_id or (current[0] if current else None)
    if trace_id:
        event["trace_id"], event["span_id"] = trace_id, span_id or secrets.token_hex(8)


class MonitorHandler(logging.Handler):
    """Forwards log records carrying ``component`` and ``action`` (via ``extra=``) as events.

    Other records are ignored; ``emit`` only builds a dict and enqueues it, so it stays cheap
    on the logging thread. Uses the default client when ``client`` is None.
    """

    def __init__(self, client: MonitorClient | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        client = self.client or _default_client
        if not fields.get("component") or not fields.get("action") or client is None:
            return
        with contextlib.suppress(Exception):
            raw = fields.get("details")
            details = dict(raw) if isinstance(raw, Mapping) else {} if raw is None else {"value": raw}
            details.setdefault("message", record.getMessage()[:1000])
            details.setdefault("level", record.levelname)
            failed = record.levelno >= logging.ERROR or bool(record.exc_info)
            event: dict[str, Any] = {
                "timestamp": _iso(record.created),
                "service": fields.get("service") or "backend",
                "component": str(fields["component"]),
                "action": str(fields["action"]),
                "status": fields.get("status") or ("error" if failed else "success"),
                "details": details,
            }
            if fields.get("duration_ms") is not None:
                event["duration_ms"] = fields["duration_ms"]
            _add_trace(event, fields.get("trace_id"), fields.get("span_id"))
            client.record(event)


def _parse_level(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    text = str(level).strip().upper()
    levels = logging.getLevelNamesMapping()
    if text.isdigit() or text in levels:
        return int(text) if text.isdigit() else levels[text]
    raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")


def configure_logging(
    level: str | int = "INFO",
    log_file: str | os.PathLike[str] | None = None,
    json_format: bool = True,
    monitor_url: str | None = None,
    *,
    logger_name: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
) -> logging.Logger:
    """Configure logging with ``dictConfig``: console, optional rotating file, optional monitor.

    ``LIVE_MONITOR_LOG_LEVEL``, ``LIVE_MONITOR_LOG_FILE`` and ``LIVE_MONITOR_LOG_FORMAT``
    (json|text) override the arguments. Calling it again replaces the handlers rather than
    adding duplicates. Returns the root logger, or the ``logger_name`` logger.
    """
    global _logging_client
    level_no = _parse_level(os.environ.get("LIVE_MONITOR_LOG_LEVEL") or level)
    log_file = os.environ.get("LIVE_MONITOR_LOG_FILE") or log_file
    env_format = os.environ.get("LIVE_MONITOR_LOG_FORMAT", "").strip().lower()
    if env_format not in ("", "json", "text"):
        raise ValueError(f"LIVE_MONITOR_LOG_FORMAT must be json or text, got {env_format!r}")
    formatter = env_format or ("json" if json_format else "text")
    console = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    handlers: dict[str, dict[str, Any]] = {"live_monitor_console": console}
    if log_file:
        handlers["live_monitor_file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": os.path.abspath(os.fspath(log_file)),
            "maxBytes": max_bytes,
            "backupCount": backup_count,
            "encoding": "utf-8",
        }
    for handler in handlers.values():
        handler["formatter"] = formatter
    old = _logging_client
    if monitor_url:
        reuse = old is not None and not old.closed and old.url == _events_url(monitor_url)
        _logging_client = old if reuse and old else MonitorClient(monitor_url)
        handlers["live_monitor"] = {"()": functools.partial(MonitorHandler, _logging_client)}
    else:
        _logging_client = None
    target = {"level": level_no, "handlers": list(handlers)}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}, "text": {"format": TEXT_FORMAT}},
        "handlers": handlers,
    }
    if logger_name:
        config["loggers"] = {logger_name: {**target, "propagate": False}}
    else:
        config["root"] = target
    try:
        if log_file:
            os.makedirs(os.path.dirname(handlers["live_monitor_file"]["filename"]), exist_ok=True)
        logging.config.dictConfig(config)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot configure logging: {exc}") from exc
    if _default_client is None or _default_client is old:
        set_default_client(_logging_client)
    if old is not None and old is not _logging_client:
        old.close(timeout=1.0)
    return logging.getLogger(logger_name)


class track(contextlib.ContextDecorator):
    """Time a block or a function and record one event; status "error" if it raised.

    ``@track("db", "load_orders")`` or ``with track("db", "load_orders"):``; exceptions are
    re-raised. Sends through ``client`` or the default client (without one it only times).
    Inside a request instrumented by ``init_app`` the event joins that request's trace.
    """

    def __init__(
        self,
        component: str,
        action: str,
        client: MonitorClient | None = None,
        service: str = "backend",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.component, self.action, self.client = component, action, client
        self.service, self.details = service, dict(details or {})
        self._local = threading.local()  # a stack of start times, per thread

    def _recreate_cm(self) -> Self:
        """A fresh timer for each call of a decorated function (threads, recursion)."""
        return type(self)(self.component, self.action, self.client, self.service, self.details)

    def __call__(self, func: _F) -> _F:
        if not inspect.iscoroutinefunction(func):
            return super().__call__(func)  # type: ignore[return-value]

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._recreate_cm():
                return await func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __enter__(self) -> Self:
        self._local.__dict__.setdefault("starts", []).append(time.perf_counter())
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        starts = self._local.__dict__.get("starts")
        if starts:
            self._emit(starts.pop(), exc)

    def _emit(self, start: float, error: BaseException | None) -> None:
        duration = (time.perf_counter() - start) * 1000.0
        client = self.client or _default_client
        if client is None:
            return
        with contextlib.suppress(Exception):
            details = dict(self.details)
            if error is not None:
                details.setdefault("error", type(error).__name__)
            event: dict[str, Any] = {
                "timestamp": _iso(time.time() - duration / 1000.0),
                "service": self.service,
                "component": self.component,
                "action": self.action,
                "duration_ms": round(duration, 3),
                "status": "error" if error is not None else "success",
                "details": details,
            }
            _add_trace(event)
            client.record(event)


class _RequestState:
    """What init_app's hooks keep about one request between before and teardown."""

    def __init__(self, trace_id: str, span_id: str, token: contextvars.Token[Any]) -> None:
        self.start, self.wall = time.perf_counter(), time.time()
        self.trace_id, self.span_id, self.token = trace_id, span_id, token
        self.duration_ms: float | None = None
        self.http_status: int | None = None


def _header_list_with(existing: str | None, name: str) -> str:
    """Add ``name`` to a comma-separated header list unless already there (or ``*``)."""
    items = [item.strip() for item in (existing or "").split(",") if item.strip()]
    if name.lower() not in {item.lower() for item in items} and "*" not in items:
        items.append(name)
    return ", ".join(items)


def init_app(
    app: Any, monitor_url: str = "http://localhost:5001", client: MonitorClient | None = None
) -> MonitorClient:
    """Instrument a Flask app: one backend ``http`` event per request, traced and timed.

    Reads ``traceparent`` and answers ``Server-Timing`` (exposed to browser scripts). CORS
    preflights and the monitor's own ``/api/live-execution`` paths are not recorded. Returns
    the client (the default one if it posts to the same URL), kept in ``app.extensions``;
    calling it again on the same app only swaps the client.
    """
    from flask import g, request  # Flask is needed here only

    if client is None:
        same = _default_client is not None and not _default_client.closed
        same = same and _default_client.url == _events_url(monitor_url)  # type: ignore[union-attr]
        client = _default_client if same and _default_client else MonitorClient(monitor_url)
    instrumented = "live_monitor" in app.extensions
    app.extensions["live_monitor"] = client  # the hooks read it here, so a new call swaps it
    if _default_client is None or _default_client.closed:
        set_default_client(client)
    key = "_live_monitor_request"

    def before_request() -> None:
        path = request.path
        if path == MONITOR_BASE_PATH or path.startswith(MONITOR_BASE_PATH + "/"):
            return
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return
        parent = parse_traceparent(request.headers.get("traceparent"))
        trace_id, span_id = parent[0] if parent else secrets.token_hex(16), secrets.token_hex(8)
        token = _current_trace.set((trace_id, span_id))
        setattr(g, key, _RequestState(trace_id, span_id, token))

    def after_request(response: Any) -> Any:
        state = getattr(g, key, None)
        if state is None:
            return response
        with contextlib.suppress(Exception):
            state.duration_ms = (time.perf_counter() - state.start) * 1000.0
            state.http_status = response.status_code
            timing = f"app;dur={state.duration_ms:.1f}, traceparent;desc="
            timing += f'"00-{state.trace_id}-{state.span_id}-01"'
            headers = response.headers  # join repeated headers (e.g. one added by flask-cors)
            existing = ", ".join(headers.getlist("Server-Timing"))
            headers["Server-Timing"] = f"{existing}, {timing}" if existing else timing
            expose = ", ".join(headers.getlist("Access-Control-Expose-Headers"))
            headers["Access-Control-Expose-Headers"] = _header_list_with(expose, "Server-Timing")
        return response

    def teardown_request(exc: BaseException | None) -> None:
        state = g.pop(key, None)
        if state is None:
            return
        try:
            _current_trace.reset(state.token)
        except ValueError:  # reset from another context: just forget the trace
            _current_trace.set(None)
        with contextlib.suppress(Exception):
            duration = state.duration_ms
            if duration is None:
                duration = (time.perf_counter() - state.start) * 1000.0
            code = state.http_status
            if exc is not None and (code is None or code < 500):
                code = 500
            rule = request.url_rule
            event = {
                "timestamp": _iso(state.wall),
                "service": "backend",
                "component": "http",
                "action": endpoint_key(request.method, request.path),
                "duration_ms": round(duration, 3),
                "status": "error" if exc is not None or (code or 0) >= 500 else "success",
                "details": {"http_status": code, "route": rule.rule if rule else None},
                "trace_id": state.trace_id,
                "span_id": state.span_id,
            }
            app.extensions["live_monitor"].record(event)

    if instrumented:
        return client
    # First before_request and last after_request, so the timing spans the other hooks.
    app.before_request_funcs.setdefault(None, []).insert(0, before_request)
    app.after_request_funcs.setdefault(None, []).insert(0, after_request)
    app.teardown_request(teardown_request)
    return client
