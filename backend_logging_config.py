"""Backend instrumentation for the Live Execution Monitor: one file to copy into your app.

Standard library only at import (``init_app`` alone imports Flask). ``configure_logging``: JSON
logs, optionally forwarded; ``MonitorClient``: a bounded, non-blocking event shipper;
``init_app``: one ``http`` event per Flask request, ``traceparent`` in, ``Server-Timing`` out;
``track``: decorator and context manager; ``MonitorHandler``: log records to events.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import email.utils
import functools
import http.client
import importlib
import inspect
import json
import logging
import logging.config
import math
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

# An id segment: a number, a UUID or 16+ hex characters (the last two allow a trailing "\n", as
# "$" does; the browser's copy in frontend/routes.ts does the same), or a prefixed id such as
# Stripe's "ch_3Nabc123XYZ": 1-8 lowercase letters, "_", then 8+ letters and digits, one a digit.
_ID = re.compile(
    r"[0-9]+\Z|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$|[0-9a-fA-F]{16,}$"
    r"|[a-z]{1,8}_(?=[A-Za-z]*[0-9])[A-Za-z0-9]{8,}\Z"
)


_SCHEME_AND_HOST = re.compile(r"^\s*[a-z][a-z\d+.-]*://[^/?#]*", re.I)  # frontend/routes.ts's
# A route template's parameter: Flask's <name> or <converter:name>, {name} or {name:type}
# (OpenAPI, Starlette, ASP.NET), Express's :name (with an optional pattern or modifier).
_PARAM = re.compile(
    r"<(?:(?P<conv>\w+)(?:\([^)]*\))?:)?(?P<flask>\w+)>"
    r"|\{\*?(?P<brace>\w+)(?::(?P<type>[^}]*))?\}"
    r"|^:(?P<colon>\w+)(?:\([^)]*\))?[?*+]?$"
)
_ID_TYPES = frozenset({"int", "uuid", "guid", "long"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_route(path: str) -> str:
    """Return the route of a path or URL: no query, no empty segments, and ids (numbers, UUIDs,
    16+ hex characters, prefixed ids like ``ch_3Nabc123XYZ``) as ``:id``, so browser and server
    meet on ``/api/orders/:id``; words such as ``user_settings`` or ``v2`` stay."""
    if "://" in path:
        try:
            path = urlsplit(path).path
        except ValueError:  # a host urlsplit refuses (an unclosed IPv6 "["): cut it as the browser does
            path = _SCHEME_AND_HOST.sub("", path)
    path = path.split("?", 1)[0].split("#", 1)[0]
    return "/" + "/".join(":id" if _ID.match(s) else s for s in path.split("/") if s)


def endpoint_key(method: str, path: str) -> str:
    """Return the endpoint key both sides share, e.g. ``GET /api/orders/:id``."""
    return f"{method.upper()} {normalize_route(path)}"


def _param(match: re.Match[str]) -> str:
    """``:id`` for a parameter that holds ids (an int or uuid type, a name ``id`` or ending in
    ``_id``/``Id``), else ``:<name>``."""
    name = match["flask"] or match["brace"] or match["colon"]
    kind = (match["conv"] or match["type"] or "").split("(")[0].strip().lower()
    if kind in _ID_TYPES or name.lower() == "id" or name.endswith(("_id", "Id", "ID")):
        return ":id"
    return f":{name}"


def route_key(template: str) -> str:
    """Return the route a server's route template stands for, in the keys' form:
    ``/api/users/<name>`` -> ``/api/users/:name``, ``/api/orders/<int:order_id>`` and
    ``/api/orders/{id}`` -> ``/api/orders/:id``. Its literal segments are normalised as paths are,
    so the server's key is the one the browser's URLs of the same route are re-keyed to."""
    segments = [_PARAM.sub(_param, s) for s in template.split("?", 1)[0].split("/")]
    return normalize_route("/".join(segments))


def outgoing_key(method: str, url: str) -> str:
    """Return the key of an outgoing call, with the host it went to: ``GET
    payments.example.com/v1/charges/:id`` (host lowercased, no credentials, the scheme's default
    port dropped, another kept: ``host:8443``); a URL without a host gives ``GET /path``."""
    host = ""
    try:
        parts = urlsplit(url.strip())
        name, port, scheme = parts.hostname or "", parts.port, parts.scheme  # urlsplit lowercases it
    except ValueError:  # an unclosed IPv6 "[" or a port that is not a number: the path alone
        name, port, scheme = "", None, ""
    if name:
        host = f"[{name}]" if ":" in name else name
        if port is not None and port != _DEFAULT_PORTS.get(scheme):
            host += f":{port}"
    return f"{method.upper()} {host}{normalize_route(url)}"


MONITOR_BASE_PATH = "/api/live-execution"
EVENTS_PATH = MONITOR_BASE_PATH + "/events"
EVENT_FIELDS = ("service", "component", "action", "duration_ms", "status", "details")
TRACE_FIELDS = ("trace_id", "span_id")
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MAX_RETRY_AFTER = 60.0
_WARN_INTERVAL = 60.0
_MAX_BODY = 512 * 1024  # bytes of events per POST: half the monitor's default body limit
_Answer = tuple[int | None, float | None, bytes, str]  # status (None: unreachable), Retry-After, body, error
# The client's own warnings: they carry no component/action, so MonitorHandler ignores them.
_log = logging.getLogger("live_monitor.internal")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
# The traceparent of the request init_app is serving: "00-" trace id [3:35] "-" span id [36:52] "-01".
_current_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("live_monitor_trace")
_F = TypeVar("_F", bound=Callable[..., Any])
_traceparents: list[
    str
] = []  # new spans' traceparents, ready to use (_new_traceparent); emptied in a forked child
_second: tuple[int | None, str] = (None, "")  # the last whole second _iso formatted


def _stamp(epoch: float) -> tuple[str, int]:
    """Epoch seconds as ISO 8601 UTC to the second, and the milliseconds: what ``datetime`` gives
    (microseconds rounded half to even, then cut). The second's text is kept for the next call."""
    global _second
    whole = int(epoch)
    micros = round((epoch - whole) * 1e6)  # exact: the fraction math.modf gives
    if not 0 <= micros < 1_000_000:  # before 1970, or rounded up into the next second
        whole, micros = divmod(whole * 1_000_000 + micros, 1_000_000)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return _second[1], micros // 1000


def _iso(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds and a ``Z``, as ``datetime`` writes them."""
    second, millis = _stamp(epoch)
    return f"{second}.{_MILLIS[millis]}Z"


_MILLIS = [f"{n:03d}" for n in range(1000)]  # "000".."999": an index costs less than a format spec


def _event(when: float, component: str, action: str, status: str, details: Any, **kw: Any) -> dict[str, Any]:
    """An ExecutionEvent dict; ``kw`` adds ``duration_ms``, trace ids or another ``service``. The
    timestamp stays epoch seconds until the sender thread formats it (``_deliver``)."""
    event = {"timestamp": when, "service": "backend", "component": component, "action": action}
    return {**event, "status": status, "details": details, **kw}


def _new_traceparent() -> str:
    """A W3C ``traceparent`` with a new random trace id and span id (``00-<32 hex>-<16 hex>-01``),
    from a pool the sender thread keeps filled, so a request's thread only pops one."""
    while True:
        try:
            return _traceparents.pop()
        except IndexError:
            _fill_traceparents()


def _fill_traceparents(count: int = 256) -> None:
    """Add ``count`` traceparents to the pool, from one ``os.urandom`` draw (fork-safe)."""
    digits = os.urandom(24 * count).hex()
    _traceparents.extend(
        [f"00-{digits[i : i + 32]}-{digits[i + 32 : i + 48]}-01" for i in range(0, 48 * count, 48)]
    )


def _json_default(value: Any) -> Any:
    """Serialise what json cannot: datetimes as ISO 8601, sets as lists, the rest as str()."""
    if isinstance(value, datetime):
        return value.isoformat()
    return list(value) if isinstance(value, (set, frozenset)) else str(value)


_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"))


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """Return ``(trace_id, parent_span_id)`` from a W3C ``traceparent``; None if invalid
    (malformed, version ``ff``, extra fields on ``00``, all-zero ids): start a new trace then."""
    match = _TRACEPARENT.match(header.strip()) if header else None
    if match is None:
        return None
    version, trace_id, parent_id, _flags, extra = match.groups()
    if version == "ff" or (version == "00" and extra) or not int(trace_id, 16):
        return None
    return (trace_id, parent_id) if int(parent_id, 16) else None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the request ``init_app`` is serving (None outside one). Put it
    in a page as ``<meta name="traceparent" content="...">``: the browser logger then reports the
    page's load in that trace, as a child of the request that served the page."""
    return _current_trace.get(None)


def _events_url(monitor_url: str) -> str:
    """Return the ingest URL for a monitor base URL (or for the ingest URL itself)."""
    url = monitor_url.strip().rstrip("/") if isinstance(monitor_url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"monitor_url must be an http(s) URL such as http://localhost:5001, got {monitor_url!r}"
        )
    return url if url.endswith(EVENTS_PATH) else url + EVENTS_PATH


def _refused(code: int, retry_after: str | None, answer: bytes) -> _Answer:
    """What ``MonitorClient._post`` returns for an answer other than 2xx, with the seconds to wait
    its ``Retry-After`` (seconds or HTTP date) asks for, capped at 60."""
    wait: float | None = None
    with contextlib.suppress(ValueError):
        wait = float(retry_after or "")
    if wait is None and retry_after:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            wait = email.utils.parsedate_to_datetime(retry_after).timestamp() - time.time()
    detail = answer[:300].decode("utf-8", "replace").strip()
    wait = None if wait is None or not math.isfinite(wait) else min(max(wait, 0.0), _MAX_RETRY_AFTER)
    return code, wait, answer, f"HTTP {code} from monitor: {detail}"


def _labels(release: str | None, environment: str | None) -> dict[str, str]:
    """The release and environment given (None: not given), checked as the monitor checks them."""
    labels = {}
    for name, value, limit in (("release", release, 200), ("environment", environment, 64)):
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise ValueError(f"{name} must be text of 1 to {limit} characters, got {value!r}")
        labels[name] = value
    return labels


class MonitorClient:
    """Ships events to the monitor from a daemon thread, never blocking the app: ``record`` only
    appends to a queue bounded by ``max_queue`` (waiting plus in flight). Batches are retried on
    429/502/503/504 and connection errors (jittered backoff, ``Retry-After``); ``stats()`` counts
    each event as sent or dropped. ``token`` (env ``LIVE_MONITOR_TOKEN``) goes as a Bearer."""

    def __init__(
        self,
        monitor_url: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10000,
        timeout: float = 5.0,
        max_retries: int = 5,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        shutdown_timeout: float = 2.0,
        token: str | None = None,
        release: str | None = None,
        environment: str | None = None,
    ) -> None:
        for name, value in list(locals().items())[2:-3]:  # the numeric options, in order
            least = 1 if name in ("batch_size", "max_queue") else 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
                raise ValueError(f"MonitorClient {name} must be a number >= {least}, got {value!r}")
        self.url = _events_url(monitor_url)
        self.batch_size, self.max_queue, self.max_retries = batch_size, max_queue, max_retries
        self.flush_interval, self.timeout = float(flush_interval), float(timeout)
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.shutdown_timeout = float(shutdown_timeout)
        self.token = token or os.environ.get("LIVE_MONITOR_TOKEN") or None
        self._labels: dict[str, str] = {}  # release and environment, stamped on every event sent
        self._labels_json = ""  # the same as JSON members, for events already written as JSON
        self.label(
            release or os.environ.get("LIVE_MONITOR_RELEASE") or None,
            environment or os.environ.get("LIVE_MONITOR_ENVIRONMENT") or None,
        )
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        # Loopback never goes through the environment's proxy; without one, a kept-alive connection.
        proxied = not loopback and parts.scheme in urllib.request.getproxies()
        self._direct = None if proxied else (parts.scheme, host, parts.port, parts.path or "/")
        self._opener = urllib.request.build_opener() if proxied else None  # built once, not per POST
        self._sent = self._retried = self._batches_sent = 0
        self._dropped: dict[str, int] = {}
        self._last_error: str | None = None
        self._last_warning = float("-inf")
        self._init_state()
        _clients.add(self)

    def label(self, release: str | None = None, environment: str | None = None) -> None:
        """Stamp ``release`` (the build, e.g. "1.4.2") and ``environment`` (e.g. "production") on
        every event this client sends from now on; None leaves one as it is. An event that names
        its own keeps it. ValueError unless text of 1 to 200 (release) or 64 characters."""
        labels = {**self._labels, **_labels(release, environment)}
        self._labels, self._labels_json = labels, _ENCODER.encode(labels)[1:-1]

    @property
    def labels(self) -> dict[str, str]:
        """The release and environment stamped on every event (those that were set)."""
        return dict(self._labels)

    def _init_state(self) -> None:
        """Fresh lock, queue and thread (also in a forked child: the parent sends its queue)."""
        self._cond = threading.Condition()
        self._wake = threading.Event()  # set by flush(), close() and a half-full queue
        self._wake_at = max(1, self.max_queue // 2) if self.flush_interval else 1
        self._queue: deque[dict[str, Any] | tuple[Any, ...]] = deque()
        self._in_flight, self._closing, self._stop = 0, False, threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: http.client.HTTPConnection | None = None

    def _enqueue(self, item: dict[str, Any] | tuple[Any, ...]) -> bool:
        """Queue an event dict, or a tuple ``(kind, *fields)`` the sender thread turns into one
        (``_http_event``, ``_BUILDERS``). No lock, and no wake-up unless the queue is half full: the sender wakes
        by itself once a ``flush_interval``, so a request does not pay for a thread switch."""
        queue = self._queue
        if self._closing or len(queue) + self._in_flight >= self.max_queue:
            reason = "closed" if self._closing else "queue_full"
            self._drop(1, reason, f"event dropped: {reason}")
            return False
        queue.append(item)
        if self._thread is None:  # the first event, or close() set it so
            if self._stop.is_set():  # close() got past its last look at the queue: count it here
                return self._drop_queued()
            self._ensure_worker()
            self._wake.set()
        elif len(queue) >= self._wake_at and not self._wake.is_set():  # no lock while the sender drains
            self._wake.set()
        return True

    def record(self, event: Mapping[str, Any]) -> bool:
        """Queue one event (an ExecutionEvent dict or object with ``to_dict()``); False if dropped.
        Fills ``timestamp`` (now) and ``service`` ("backend") when missing. Never blocks or raises."""
        with contextlib.suppress(Exception):
            if not isinstance(event, Mapping) and callable(getattr(event, "to_dict", None)):
                event = event.to_dict()
            if isinstance(event, Mapping):
                data = dict(event)
                if data.get("timestamp") is None:
                    data["timestamp"] = time.time()
                data["service"] = data.get("service") or "backend"
                return self._enqueue(data)
            self._drop(1, "invalid", "event dropped: invalid")
        return False

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every queued event was sent or dropped; False if ``timeout`` ran out."""
        with self._cond:
            if not self._queue and not self._in_flight:
                return True
            self._ensure_worker()
            self._wake.set()
            return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout=timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` (default ``shutdown_timeout``) and stop; idempotent. Events still
        queued then, or added meanwhile, are dropped as ``closed``: none goes uncounted."""
        deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        with self._cond:
            if self._stop.is_set():
                return True
            self._closing = True
        delivered = self.flush(max(0.0, deadline - time.monotonic()))
        with self._cond:  # from here on no batch is taken, and a racing _enqueue counts its own
            self._stop.set()
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        self._drop_queued()
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
        with self._cond:
            if (self._thread is None or not self._thread.is_alive()) and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="live-monitor", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Once a ``flush_interval`` (or when woken), send all that waits, ``batch_size`` a POST, and
        top up the pool of traceparents."""
        _outgoing_off.set(True)  # the monitor's own POSTs are no outgoing calls of the app
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval or None)
            self._wake.clear()
            while self._queue and not self._stop.is_set():
                with self._cond:  # none once stopped: close() or a racing _enqueue counts them
                    take = 0 if self._stop.is_set() else min(len(self._queue), self.batch_size)
                    batch = [self._queue.popleft() for _ in range(take)]
                    self._in_flight = len(batch)
                try:
                    self._deliver(batch)
                except Exception as exc:  # noqa: BLE001 - the sender thread must survive anything
                    self._drop(len(batch), "error", f"{type(exc).__name__}: {exc}")
                finally:
                    with self._cond:
                        self._in_flight = 0
                        self._cond.notify_all()
            if len(_traceparents) < 512:  # the requests to come pop theirs, ready-made
                _fill_traceparents(1024)

    def _drop_queued(self) -> bool:
        """Once stopped, count what waits as dropped ("closed"); False, for ``_enqueue`` to return."""
        with self._cond:  # only the sender and this pop, under the lock: each event is counted once
            count = len(self._queue)
            for _ in range(count):  # not clear(): whoever appends after len() counts their own
                self._queue.popleft()
            self._cond.notify_all()  # a flush() waiting for the queue to empty returns now
        if count:
            self._drop(count, "closed", "client closed with events queued")
        return False

    def _deliver(self, batch: list[dict[str, Any] | tuple[Any, ...]]) -> None:
        """Turn a batch into JSON texts and post them, at most ``_MAX_BODY`` bytes a request."""
        parts, size = list[str](), 0
        labels = f",{self._labels_json}" if self._labels_json else ""
        for n, item in enumerate(batch, 1):
            if not n % 64:
                _yield_gil()  # let the app's threads have the GIL between slices of this work
            try:
                if type(item) is tuple and item[0] == "http":  # a request's: the most common
                    event = _http_event(item, labels)
                else:
                    event = self._write(item)
            except Exception as exc:  # noqa: BLE001 - one event must not sink the whole batch
                self._drop(1, "unserializable", f"cannot write event as JSON: {type(exc).__name__}: {exc}")
                continue
            if parts and size + len(event) > _MAX_BODY:
                self._send(parts)
                parts, size = [], 0
            parts.append(event)
            size += len(event) + 1
        if parts:
            self._send(parts)

    def _write(self, item: dict[str, Any] | tuple[Any, ...]) -> str:
        """An event dict, or a tuple ``_BUILDERS`` turns into one, as JSON with the labels."""
        event = item if isinstance(item, dict) else _BUILDERS[item[0]](item)
        if isinstance(event.get("timestamp"), float):  # epoch, as taken on the app's thread
            event["timestamp"] = _iso(event["timestamp"])
        return _ENCODER.encode({**self._labels, **event} if self._labels else event)

    def _send(self, parts: list[str]) -> None:
        """Post events (JSON texts), retrying what is worth retrying, and count the outcome."""
        count, body = len(parts), ('{"events":[' + ",".join(parts) + "]}").encode()
        for attempt in range(self.max_retries + 1):
            code, retry_after, payload, error = self._post(body)
            answer: Any = {}
            with contextlib.suppress(ValueError):  # the monitor's answer, {} if not a JSON object
                answer = json.loads(payload or b"{}")
            answer = answer if isinstance(answer, dict) else {}
            if code is not None and (200 <= code < 300 or (code == 400 and answer.get("rejected"))):
                return self._accepted(count, answer)  # a 400 that rejected every event
            if code is not None and code not in RETRYABLE_STATUS:
                return self._drop(count, f"http_{code}", error)
            if attempt == self.max_retries:
                break
            cap = min(self.backoff_max, self.backoff_base * 2**attempt)
            with self._cond:
                self._retried += 1
                self._last_error = error
            if self._stop.wait(random.uniform(0.0, cap) if retry_after is None else retry_after):
                return self._drop(count, "closed", "client closed while retrying")
        self._drop(count, "retries_exhausted", error)

    def _post(self, body: bytes) -> _Answer:
        """POST a body: (status or None if unreachable, Retry-After, answer, error text)."""
        headers = {"Content-Type": "application/json", "User-Agent": "live-monitor-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self._opener is None:
            return self._post_direct(body, headers)
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, None, response.read(1 << 20), ""
        except urllib.error.HTTPError as exc:
            with exc:
                return _refused(exc.code, exc.headers.get("Retry-After"), exc.read(1 << 16))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, None, b"", f"cannot reach monitor at {self.url}: {reason}"

    def _post_direct(self, body: bytes, headers: dict[str, str]) -> _Answer:
        """POST over the kept-alive connection; a stale one is replaced once, at once."""
        assert self._direct is not None
        scheme, host, port, path = self._direct
        for fresh in (self._conn is None, True):
            if self._conn is None:
                kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
                self._conn = kind(host, port, timeout=self.timeout)
            try:
                self._conn.request("POST", path, body, headers)
                response = self._conn.getresponse()
                answer = response.read(1 << 20)
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if fresh:
                    return None, None, b"", f"cannot reach monitor at {self.url}: {exc}"
                continue
            if response.will_close:
                self._conn.close()
                self._conn = None
            if response.status < 300:
                return response.status, None, answer, ""
            return _refused(response.status, response.getheader("Retry-After"), answer)
        return None, None, b"", f"cannot reach monitor at {self.url}"

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


@atexit.register
def _close_all_clients() -> None:
    """At exit, give every open client its ``shutdown_timeout`` to flush."""
    for client in list(_clients):
        with contextlib.suppress(Exception):
            client.close()


def _after_fork_in_child() -> None:
    _traceparents.clear()  # a forked worker must not repeat its parent's trace ids
    for client in list(_clients):
        client._init_state()


if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_default_client(client: MonitorClient | None) -> None:
    """Set the client ``track`` and ``MonitorHandler`` use when given none."""
    global _default_client
    _default_client = client


def get_default_client() -> MonitorClient | None:
    """Return the client set by ``set_default_client``, ``init_app`` or ``configure_logging``."""
    return _default_client


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp (UTC), level, logger, message, and event fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"timestamp": _iso(record.created), "level": record.levelname, "logger": record.name}
        data["message"] = record.getMessage()
        data.update((f, record.__dict__[f]) for f in EVENT_FIELDS + TRACE_FIELDS if f in record.__dict__)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=_json_default, ensure_ascii=False)


def _add_trace(event: dict[str, Any], trace_id: Any, span_id: Any, current: str | None) -> None:
    """Set trace ids: the given ones, else the ``current`` request's trace (its traceparent) with
    a new span, a child of the request's span (``parent_span_id``)."""
    if not trace_id and current:
        event["parent_span_id"] = current[36:52]
    trace_id = trace_id or (current[3:35] if current else None)
    if trace_id:
        event["trace_id"], event["span_id"] = trace_id, span_id or _new_traceparent()[36:52]


def _log_event(item: tuple[Any, ...]) -> dict[str, Any]:
    """The event for a log record's fields taken by MonitorHandler.emit (on the sender thread)."""
    _, created, component, action, status, raw, message, level, service, ms, trace_id, span_id, current = item
    details = raw if isinstance(raw, dict) else {} if raw is None else {"value": raw}
    details.setdefault("message", message[:1000])
    details.setdefault("level", level)
    event = _event(created, str(component), str(action), status, details, service=service or "backend")
    if ms is not None:
        event["duration_ms"] = ms
    _add_trace(event, trace_id, span_id, current)
    return event


class MonitorHandler(logging.Handler):
    """Forwards log records with ``component`` and ``action`` (via ``extra=``) as events; ignores
    other records. ``client`` None: the default client. The caller's thread only takes what may
    change later (message, details, current trace); the sender thread builds the event."""

    def __init__(self, client: MonitorClient | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        client = self.client or _default_client
        if not fields.get("component") or not fields.get("action") or client is None:
            return
        try:
            raw = fields.get("details")
            failed = record.levelno >= logging.ERROR or bool(record.exc_info)
            fields_taken = (
                "log",
                record.created,
                fields["component"],
                fields["action"],
                fields.get("status") or ("error" if failed else "success"),
                dict(raw) if isinstance(raw, Mapping) else raw,
                record.getMessage(),
                record.levelname,
                fields.get("service"),
                fields.get("duration_ms"),
                fields.get("trace_id"),
                fields.get("span_id"),
                _current_trace.get(None),
            )
            if isinstance(client, MonitorClient):
                client._enqueue(fields_taken)
            else:  # any object with record(event), e.g. a test double
                client.record(_log_event(fields_taken))
        except Exception:  # noqa: BLE001 - logging must never raise into the app
            pass


def _client_for(monitor_url: str, client: MonitorClient | None) -> MonitorClient:
    """``client`` if it is open and posts to ``monitor_url``, else a new client for that URL."""
    if client is not None and not client.closed and client.url == _events_url(monitor_url):
        return client
    return MonitorClient(monitor_url)


def _parse_level(level: str | int) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    text, levels = str(level).strip().upper(), logging.getLevelNamesMapping()
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
    release: str | None = None,
    environment: str | None = None,
) -> logging.Logger:
    """Configure logging (``dictConfig``): stderr, optional rotating file, optional monitor;
    a second call replaces the handlers. Env ``LIVE_MONITOR_LOG_LEVEL``, ``_LOG_FILE`` and
    ``_LOG_FORMAT`` (json|text) override the arguments. ``release`` and ``environment`` (else env
    ``LIVE_MONITOR_RELEASE``, ``_ENVIRONMENT``) go on every event sent to the monitor
    (``MonitorClient.label``). Returns the root/``logger_name`` logger."""
    global _logging_client
    _labels(release, environment)  # a bad one fails here, with or without a monitor
    level_no = _parse_level(os.environ.get("LIVE_MONITOR_LOG_LEVEL") or level)
    log_file = os.environ.get("LIVE_MONITOR_LOG_FILE") or log_file
    env_format = os.environ.get("LIVE_MONITOR_LOG_FORMAT", "").strip().lower()
    if env_format not in ("", "json", "text"):
        raise ValueError(f"LIVE_MONITOR_LOG_FORMAT must be json or text, got {env_format!r}")
    formatter = env_format or ("json" if json_format else "text")
    console = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": formatter}
    handlers: dict[str, dict[str, Any]] = {"live_monitor_console": console}
    path = os.path.abspath(os.fspath(log_file)) if log_file else None
    if path:
        handlers["live_monitor_file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "formatter": formatter,
            "filename": path,
            "maxBytes": max_bytes,
            "backupCount": backup_count,
            "encoding": "utf-8",
        }
    old = _logging_client
    _logging_client = _client_for(monitor_url, old) if monitor_url else None
    if _logging_client:
        _logging_client.label(release, environment)
    if _logging_client:
        handlers["live_monitor"] = {"()": functools.partial(MonitorHandler, _logging_client)}
    target = {"level": level_no, "handlers": list(handlers)}
    config: dict[str, Any] = {"version": 1, "disable_existing_loggers": False, "handlers": handlers}
    config["formatters"] = {"json": {"()": JsonFormatter}, "text": {"format": TEXT_FORMAT}}
    if logger_name:
        config["loggers"] = {logger_name: {**target, "propagate": False}}
    else:
        config["root"] = target
    try:
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        logging.config.dictConfig(config)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot configure logging: {exc}") from exc
    if _default_client is None or _default_client is old:
        set_default_client(_logging_client)
    if old is not None and old is not _logging_client:
        old.close(timeout=1.0)
    return logging.getLogger(logger_name)


class track:
    """Time a block (``with track("db", "load")``) or each call of a function (``@track(...)``,
    plain or async) as one event, status "error" if it raised (and re-raise). Sends through
    ``client`` or the default client; inside an ``init_app`` request it joins that trace."""

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

    def __call__(self, func: _F) -> _F:
        @functools.wraps(func)  # each call keeps its own start time: threads and recursion are safe
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._emit(start, exc)
                raise
            self._emit(start, None)
            return result

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._emit(start, exc)
                raise
            self._emit(start, None)
            return result

        return async_wrapper if inspect.iscoroutinefunction(func) else wrapper  # type: ignore[return-value]

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
            status = "error" if error is not None else "success"
            event = _event(time.time() - duration / 1000.0, self.component, self.action, status, details)
            event.update(service=self.service, duration_ms=round(duration, 3))
            _add_trace(event, None, None, _current_trace.get(None))
            client.record(event)


def init_app(
    app: Any,
    monitor_url: str = "http://localhost:5001",
    client: MonitorClient | None = None,
    *,
    record_outgoing: bool = False,
    release: str | None = None,
    environment: str | None = None,
) -> MonitorClient:
    """Instrument a Flask app: one backend ``http`` event per request, traced and timed, keyed by
    the Flask rule that served it. Reads ``traceparent``, answers ``Server-Timing`` (exposed to
    browser scripts); skips CORS preflights and ``/api/live-execution``. ``record_outgoing``: the
    app's own HTTP calls too (``record_outgoing_calls``). Returns the client (the default one if it
    posts to the same URL), kept in ``app.extensions``; a second call only swaps the client. It
    wraps ``app.wsgi_app``: a WSGI layer costs the app's thread a fraction of what Flask's hooks
    and proxies do. ``release`` and ``environment`` go on every event the client sends
    (``MonitorClient.label``; env ``LIVE_MONITOR_RELEASE``, ``_ENVIRONMENT`` when not given)."""
    client = _client_for(monitor_url, _default_client) if client is None else client
    if isinstance(client, MonitorClient):
        client.label(release, environment)
    instrumented = "live_monitor" in app.extensions
    app.extensions["live_monitor"] = client  # the middleware reads it here, so a new call swaps it
    if _default_client is None or _default_client.closed:
        set_default_client(client)
    if not instrumented:
        app.wsgi_app = _layer(app.wsgi_app, app)
    if record_outgoing:
        record_outgoing_calls(client)
    return client


def _layer(wsgi_app: Any, app: Any) -> Callable[[dict[str, Any], Any], Any]:
    """The WSGI layer ``init_app`` puts around a Flask app (a function: cheaper to call than an
    object). The request's thread only pops a ready-made traceparent, reads the clocks, answers
    ``Server-Timing`` and queues a tuple of strings and numbers (which the garbage collector then
    leaves alone); the sender thread writes the event (``_http_event``)."""
    pop, set_trace, reset_trace, now = _traceparents.pop, _current_trace.set, _current_trace.reset, time.time

    def live_monitor_layer(environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        if (path.startswith(MONITOR_BASE_PATH) and path[_BASE_LENGTH : _BASE_LENGTH + 1] in ("", "/")) or (
            method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            return wsgi_app(environ, start_response)
        try:
            traceparent = pop()
        except IndexError:
            traceparent = _new_traceparent()
        parent_id, header = None, environ.get("HTTP_TRACEPARENT")
        if header:
            parent = parse_traceparent(header)
            if parent:  # the caller's trace, and its span as our parent
                traceparent, parent_id = f"00-{parent[0]}-{traceparent[36:52]}-01", parent[1]
        token = set_trace(traceparent)
        # What start_response saw: the status line, the ms until then and the Flask rule (None:
        # no rule matched; environ: no Flask request seen). A list and a partial: fewer objects
        # per request than a closure over as many variables.
        seen: list[Any] = [None, 0.0, environ]
        wall, started = now(), _clock()
        try:
            result = wsgi_app(
                environ, functools.partial(_traced, seen, environ, start_response, started, traceparent)
            )
        except BaseException:
            seen[0] = None  # the app raised: a 500, whatever it began to answer
            raise
        finally:
            try:
                reset_trace(token)
            except ValueError:  # reset from another context: just forget the trace
                _current_trace.set(None)
            status, ms, rule = seen
            if status is None:
                ms = (_clock() - started) * 1000.0
            if rule is not None:
                rule = rule.rule if rule is not environ else _match_rule(app, environ)
            fields = ("http", wall, ms, method, path, status, rule, traceparent, parent_id)
            client = app.extensions["live_monitor"]
            try:
                if isinstance(client, MonitorClient):
                    client._enqueue(fields)
                else:  # any object with record(event), e.g. a test double
                    client.record(json.loads(_http_event(fields)))
            except Exception:  # noqa: BLE001 - instrumentation must never break a request
                pass
        return result

    return live_monitor_layer


def _traced(
    seen: list[Any],
    environ: dict[str, Any],
    start_response: Any,
    started: float,
    traceparent: str,
    status: str,
    headers: list[tuple[str, str]],
    exc_info: Any = None,
) -> Any:
    """The ``start_response`` the app gets: notes what ``_layer`` records, adds Server-Timing."""
    ms = (_clock() - started) * 1000.0
    rule = getattr(environ.get("werkzeug.request"), "url_rule", environ)  # Flask's, until it returns
    seen[:] = status, ms, rule
    timing = f'app;dur={ms:.1f}, traceparent;desc="{traceparent}"'
    for name, _ in headers:  # _add_timing's look, inline: a call per request costs more than it
        if len(name) in _OUR_LENGTHS and name.lower() in _OUR_HEADERS:
            _add_timing(headers, timing)
            break
    else:
        headers += (("Server-Timing", timing), _EXPOSE)
    return start_response(status, headers, exc_info)


def _match_rule(app: Any, environ: dict[str, Any]) -> str | None:
    """The rule of the app's URL map a request matches (None if none): for a request Flask did not
    see through (it raised, or a layer between copied the environ)."""
    with contextlib.suppress(Exception):
        return str(app.url_map.bind_to_environ(environ).match(return_rule=True)[0].rule)
    return None


_BASE_LENGTH = len(MONITOR_BASE_PATH)
_clock = time.perf_counter
# Hand the GIL to a thread waiting for it: sched_yield costs this thread 0.6 us, sleep(0) 14 us.
_yield_gil = getattr(os, "sched_yield", None) or functools.partial(time.sleep, 0)
# A request's event as the sender thread writes it: what json.dumps(event) gives, for less (the
# duration with three decimals, trailing zeros kept), and the client's labels, if any, at the end.
_HTTP_EVENT = (
    '{"timestamp":"%s.%sZ","service":"backend","component":"http",%s,'
    '"duration_ms":%.3f,"trace_id":"%s","span_id":"%s"%s%s}'
)


@functools.lru_cache(maxsize=4096)
def _http_outcome(method: str, path: str, status: str | None, rule: str | None) -> str:
    """What repeats in a request's event (action, status, details), as JSON members. The action
    is keyed by the Flask rule that matched (``GET /api/users/:name``), else by the path."""
    code = int(status[:3]) if status else 500
    action = f"{method.upper()} {route_key(rule)}" if rule else endpoint_key(method, path)
    details = {"http_status": code, "route": rule}
    outcome = "error" if code >= 500 else "success"
    return _ENCODER.encode({"action": action, "status": outcome, "details": details})[1:-1]


def _http_event(item: tuple[Any, ...], labels: str = "") -> str:
    """A request's ``http`` event as JSON, from the tuple ``_layer`` queued; its parent span
    is the caller's (the ``traceparent`` it sent), if any. ``labels``: ``,"release":...`` members."""
    _, wall, ms, method, path, status, rule, traceparent, parent_id = item
    middle = _http_outcome(method, "" if rule else path, status, rule)
    parent = f',"parent_span_id":"{parent_id}"' if parent_id else ""
    whole, (last, second) = int(wall), _second
    micros = round((wall - whole) * 1e6)  # as _stamp, inline for the usual case: the same second
    if whole == last and 0 <= micros < 1_000_000:
        millis = micros // 1000
    else:
        second, millis = _stamp(wall)
    return _HTTP_EVENT % (
        second,
        _MILLIS[millis],
        middle,
        ms,
        traceparent[3:35],
        traceparent[36:52],
        parent,
        labels,
    )


_OUR_HEADERS = ("server-timing", "access-control-expose-headers")
_OUR_LENGTHS = frozenset(map(len, _OUR_HEADERS))
_EXPOSE = ("Access-Control-Expose-Headers", "Server-Timing")


def _add_timing(headers: list[tuple[str, str]], timing: str) -> None:
    """Append our Server-Timing entry and expose Server-Timing to browser scripts."""
    for name, _ in headers:
        if len(name) in _OUR_LENGTHS and name.lower() in _OUR_HEADERS:
            break
    else:  # the usual case: neither header is there yet
        headers += (("Server-Timing", timing), _EXPOSE)
        return
    ours = _OUR_HEADERS
    timings = [v for k, v in headers if k.lower() == ours[0]] + [timing]
    names = [n.strip() for k, v in headers if k.lower() == ours[1] for n in v.split(",") if n.strip()]
    if "server-timing" not in {n.lower() for n in names} and "*" not in names:
        names.append("Server-Timing")
    headers[:] = [(k, v) for k, v in headers if k.lower() not in ours]
    headers += (("Server-Timing", ", ".join(timings)), ("Access-Control-Expose-Headers", ", ".join(names)))


_BUILDERS: dict[str, Callable[[tuple[Any, ...]], dict[str, Any]]] = {"log": _log_event}


# -- the app's outgoing HTTP calls (opt-in) ------------------------------------------------------

OUTGOING_COMPONENT = "http-client"  # as live_monitor.vocabulary.OUTGOING_COMPONENT (a test checks)
# True inside a recorded call (a redirect's inner call is part of it) and on the sender thread
# (the monitor's own POSTs are not the app's calls).
_outgoing_off: contextvars.ContextVar[bool] = contextvars.ContextVar("live_monitor_outgoing", default=False)
_outgoing_client: Any = None  # the client outgoing calls go to; None: the default client
_unpatch: list[Callable[[], None]] = []  # undoes the patches while recording
_Ids = tuple[str, str, str | None]  # trace id, span id, parent span id


def record_outgoing_calls(client: MonitorClient | None = None) -> Callable[[], None]:
    """Record the app's outgoing HTTP calls, through ``requests`` (if installed) and
    ``urllib.request``, as backend ``http-client`` events keyed ``outgoing_key``: duration, status
    (error on a 5xx or an exception), in the current request's trace as a child of its span, and
    with a ``traceparent`` for the callee. Sent through ``client`` (None: the default client). A
    second call only swaps the client; returns ``stop_recording_outgoing_calls``."""
    global _outgoing_client
    _outgoing_client = client
    if not _unpatch:
        _unpatch.extend(undo for undo in (_patch_urllib(), _patch_requests()) if undo)
    return stop_recording_outgoing_calls


def stop_recording_outgoing_calls() -> None:
    """Undo ``record_outgoing_calls``: ``requests`` and ``urllib`` are as they were."""
    global _outgoing_client
    while _unpatch:
        _unpatch.pop()()
    _outgoing_client = None


def _begin_call(existing: str | None) -> _Ids:
    """The ids of a new outgoing call: those of a ``traceparent`` the app set itself (its parent
    id is the span the callee sees), else a new span, child of the current request's span."""
    given = parse_traceparent(existing)
    if given:
        return given[0], given[1], None
    current, new = _current_trace.get(None), _new_traceparent()
    return (current or new)[3:35], new[36:52], (current[36:52] if current else None)


def _end_call(ids: _Ids, method: str, url: str, wall: float, ms: float, code: int | None, error: Any) -> None:
    """Record one outgoing call that took ``ms`` (HTTP status ``code``, or the ``error`` it raised)."""
    client = _outgoing_client or _default_client
    if client is None or getattr(client, "closed", False):
        return
    details: dict[str, Any] = {"http_status": code}
    if error is not None:
        details["error"] = type(error).__name__
    status = "error" if error is not None or (code or 0) >= 500 else "success"
    trace = {"trace_id": ids[0], "span_id": ids[1], "duration_ms": round(ms, 3)}
    event = _event(wall, OUTGOING_COMPONENT, outgoing_key(method, url), status, details, **trace)
    if ids[2]:
        event["parent_span_id"] = ids[2]
    client.record(event)


def _recorded(call: Callable[[], Any], ids: _Ids, describe: Callable[[], tuple[str, str]]) -> Any:
    """Run ``call`` (the original send) as one recorded outgoing call; ``describe`` gives its
    method and URL once it ran. Calls made inside it (redirects) are part of it, not recorded."""
    token = _outgoing_off.set(True)
    wall, started = time.time(), time.perf_counter()
    code, error = None, None
    try:
        response = call()
        code = getattr(response, "status_code", None) or getattr(response, "status", None)
        return response
    except urllib.error.HTTPError as exc:  # urllib raises for 4xx and 5xx: an answer all the same
        code = exc.code
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        _outgoing_off.reset(token)
        ms = (time.perf_counter() - started) * 1000.0
        with contextlib.suppress(Exception):  # instrumentation must never break the app's call
            _end_call(ids, *describe(), wall, ms, code, error)


def _patch_urllib() -> Callable[[], None]:
    """Patch ``urllib.request.OpenerDirector.open`` (``urlopen`` goes through it); return the undo."""
    director = urllib.request.OpenerDirector
    original = director.open

    @functools.wraps(original)
    def open_(self: Any, fullurl: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if _outgoing_off.get() or not isinstance(fullurl, (str, urllib.request.Request)):
                return original(self, fullurl, *args, **kwargs)
            request = urllib.request.Request(fullurl) if isinstance(fullurl, str) else fullurl
            if request.type not in ("http", "https"):  # a file:, data: or ftp: URL is no HTTP call
                return original(self, request, *args, **kwargs)
            ids = _begin_call(request.get_header("Traceparent"))
            if not request.has_header("Traceparent"):
                request.add_header("traceparent", f"00-{ids[0]}-{ids[1]}-01")
        except Exception:  # noqa: BLE001 - e.g. a malformed URL: let urllib say what is wrong
            return original(self, fullurl, *args, **kwargs)
        call = functools.partial(original, self, request, *args, **kwargs)
        return _recorded(call, ids, lambda: (request.get_method(), request.full_url))

    director.open = open_  # type: ignore[method-assign]
    return lambda: setattr(director, "open", original)


def _patch_requests() -> Callable[[], None] | None:
    """Patch ``requests.Session.send`` (every requests call goes through it); None without requests."""
    try:  # the app's own library, optional: imported only when asked for, and never required
        session = importlib.import_module("requests").Session
    except ImportError:
        return None
    original = session.send

    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        try:
            if _outgoing_off.get():
                return original(self, request, **kwargs)
            ids = _begin_call(request.headers.get("traceparent"))
            request.headers.setdefault("traceparent", f"00-{ids[0]}-{ids[1]}-01")
        except Exception:  # noqa: BLE001 - not a PreparedRequest we know: leave it alone
            return original(self, request, **kwargs)
        call = functools.partial(original, self, request, **kwargs)
        return _recorded(call, ids, lambda: (request.method or "GET", request.url or ""))

    session.send = send
    return lambda: setattr(session, "send", original)
