"""OpenTelemetry in: OTLP/HTTP ``POST /v1/traces`` and ``POST /v1/logs`` become events.

An app already instrumented with OpenTelemetry points its OTLP/HTTP exporters at the monitor
instead of (or besides) adding our loggers. Which side a span is on comes from its source:
SERVER spans become backend ``http`` events, keyed by their ``http.route`` template when they
have one (``GET /api/users/:name``); CLIENT spans from a browser (a resource whose
``telemetry.sdk.language`` is ``webjs`` or with ``browser.*`` or ``user_agent.original``
attributes, or the scope of the browser's fetch or XMLHttpRequest instrumentation) become
frontend ``api`` events keyed by their URL's path; a backend's CLIENT spans are its outgoing
calls (``http-client``, keyed with their host: ``GET payments.example.com/v1/charges/:id``),
never compared with the browser's. Other spans (INTERNAL, PRODUCER, ...) and spans without
HTTP attributes are skipped and counted. Log records with ``component`` and ``action``
attributes become events as ``MonitorHandler`` records do; one without them becomes a ``log``
event only at ERROR or above and with a span context (the trace's spans already stand for the
request), else it is skipped and counted.

Both encodings work on a default install: JSON (``application/json``, the OTLP JSON
mapping) and protobuf (``application/x-protobuf``, what the Python and Java exporters send,
decoded with ``opentelemetry-proto`` from requirements.txt), gzip-compressed or not. Invalid
items are answered with ``partialSuccess`` as the OTLP spec has it; a refused export gets a
``google.rpc.Status`` body, is counted by cause (``/status``, ``/metrics``) and logged once
per cause. ``spans_to_events`` and ``logs_to_events`` are the converters any transport uses.
Their events are scrubbed where every event is, when the monitor keeps them
(``LiveExecutionMonitor.accept``): span names, attributes and log records included.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import functools
import importlib
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from backend_logging_config import normalize_route, outgoing_key, route_key
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.events import (
    MAX_ENVIRONMENT,
    MAX_EPOCH,
    MAX_RELEASE,
    MIN_SAMPLE_RATE,
    ExecutionEvent,
    convert_event,
)
from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import OTLP_LOGS_PATH, OTLP_TRACES_PATH, OUTGOING_COMPONENT, SERVICES, STATUSES
from live_monitor.web.access import Access
from live_monitor.web.bodies import read_request_body
from live_monitor.web.errors import ApiError

__all__ = [
    "SIGNALS",
    "OtlpError",
    "OtlpReceiver",
    "Signal",
    "SpanBatch",
    "bp",
    "logs_to_events",
    "spans_to_events",
]

SERVER_KIND, CLIENT_KIND = 2, 3
# (service, component) by span kind and whether the span came from a browser SDK
SIDES = {
    (SERVER_KIND, False): ("backend", "http"),
    (SERVER_KIND, True): ("backend", "http"),
    (CLIENT_KIND, True): ("frontend", "api"),
    (CLIENT_KIND, False): ("backend", OUTGOING_COMPONENT),
}
KINDS = {
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_ERROR = 2
# instrumentations that only run in a browser: their CLIENT spans are the frontend's calls
BROWSER_SCOPES = frozenset(
    {"@opentelemetry/instrumentation-fetch", "@opentelemetry/instrumentation-xml-http-request"}
)
MAX_SPAN_NAME = 200
# the first instant an event's timestamp cannot hold (3000-01-01T00:00:00Z): events refuse it
MAX_NANOS = MAX_EPOCH * 10**9
OUT_OF_RANGE = f"is out of range (must be before {datetime.fromtimestamp(MAX_EPOCH, UTC):%Y-%m-%d} UTC)"
HTTP_STATUS_ATTRIBUTES = ("http.response.status_code", "http.status_code")
# gRPC status codes for the google.rpc.Status body OTLP asks for on 4xx answers
GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 429: 8, 503: 14}
# why a whole export was refused, by HTTP status: the bounded ``reason`` of the refusal counters
REFUSALS = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}
REFUSED_OTHER = "other"
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
log = logging.getLogger("live_execution_monitor")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# why a span that parsed could still not become an event, by the event field refused
_INVALID = {
    "action": "method and route are longer than an event's 256-character action",
    "timestamp": f"startTimeUnixNano {OUT_OF_RANGE}",
    "duration_ms": "the duration is too long or negative",
    "details": "name, body or attributes too large for an event",
    "component": "component is longer than an event's 128 characters",
    "": "cannot become a valid event",
}


class OtlpError(ApiError):
    """The request as a whole is refused: ``status`` and a message for the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


class _Rejected(ValueError):
    """One span or log record is invalid; the message is the (data-free) reason, counted by reason."""


@dataclass
class SpanBatch:
    """What one export request turned into: events to store, skipped and rejected items (spans
    or log records): the result of ``spans_to_events`` and ``logs_to_events`` alike."""

    events: list[ExecutionEvent] = field(default_factory=list)
    skipped: int = 0
    rejected: list[str] = field(default_factory=list)

    def error_message(self, noun: str = "span") -> str:
        """One line for ``partialSuccess.errorMessage``: how many items were refused and why."""
        reasons = Counter(self.rejected).most_common(5)
        text = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        more = len(set(self.rejected)) - len(reasons)
        return f"{len(self.rejected)} {noun}(s) rejected: {text}" + (f"; and {more} more" if more else "")


class OtlpReceiver:
    """Counts items by signal and outcome (accepted, skipped, rejected) and refused exports by
    signal and reason; read by ``/status`` and ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {
            name: Counter({"accepted": 0, "skipped": 0, "rejected": 0}) for name in ("traces", "logs")
        }
        self._refused: Counter[tuple[str, str]] = Counter()

    def count(self, batch: SpanBatch, signal: str = "traces") -> None:
        """Add one batch's outcome."""
        with self._lock:
            counts = self._counts[signal]
            counts["accepted"] += len(batch.events)
            counts["skipped"] += batch.skipped
            counts["rejected"] += len(batch.rejected)

    def refuse(self, signal: str, reason: str) -> bool:
        """Count a refused export; True the first time its signal and reason are seen."""
        with self._lock:
            self._refused[signal, reason] += 1
            return self._refused[signal, reason] == 1

    def counts(self, signal: str = "traces") -> dict[str, int]:
        """A copy of one signal's item counters."""
        with self._lock:
            return dict(self._counts[signal])

    def refused(self) -> dict[tuple[str, str], int]:
        """Refused exports by (signal, reason)."""
        with self._lock:
            return dict(self._refused)

    def status(self) -> dict[str, dict[str, Any]]:
        """The figures ``/status`` shows: per signal, item outcomes and refusals by reason."""
        refused = self.refused()
        return {
            name: {
                **self.counts(name),
                "refused": {reason: n for (signal, reason), n in sorted(refused.items()) if signal == name},
            }
            for name in self._counts
        }


# --- the OTLP JSON mapping -----------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field by its JSON name (``traceId``) or its proto name (``trace_id``)."""
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel))


@functools.lru_cache(maxsize=128)
def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _list(obj: Mapping[str, Any], camel: str, where: str) -> list[Any]:
    value = _get(obj, camel)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(400, f"{where}.{camel} must be an array")
    return value


def _any_value(value: Any) -> Any:
    """The Python value of an OTLP AnyValue, None when it is not one we read.

    Only scalars are read (arrays, maps and bytes are ignored), and only when the value has
    the type its field names: ``{"boolValue": "GET"}`` is no method. A double may come as
    ``"Infinity"`` or ``"NaN"`` (the proto3 JSON mapping), so it may be non-finite; a number
    that does not parse (``"abc"``, 5000 digits) is None too.
    """
    if not isinstance(value, dict):
        return None
    for camel in ("stringValue", "boolValue", "intValue", "doubleValue"):
        raw = _get(value, camel)
        if raw is None:
            continue
        if camel == "stringValue":
            return raw if isinstance(raw, str) else None
        if camel == "boolValue":
            return raw if isinstance(raw, bool) else None
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            return None
        try:
            return int(raw) if camel == "intValue" else float(raw)
        except (ValueError, OverflowError):  # "abc", too many digits, float("inf") as an int
            return None
    return None


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _hex_id(value: Any, size: int, name: str) -> str:
    """A trace or span id as lowercase hex: hex per the OTLP JSON mapping, or base64 (proto3 JSON)."""
    if not isinstance(value, str) or not value:
        raise _Rejected(f"{name} is missing")
    if len(value) == 2 * size and _HEX.match(value):
        text = value.lower()
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _Rejected(f"{name} must be {2 * size} hex characters") from None
        if len(raw) != size:
            raise _Rejected(f"{name} must be {2 * size} hex characters")
        text = raw.hex()
    if text.strip("0") == "":
        raise _Rejected(f"{name} must not be all zeros")
    return text


def _nanos(value: Any, name: str) -> int:
    """A span time in nanoseconds since the epoch, from 1970 to before ``MAX_NANOS`` (year 3000)."""
    if isinstance(value, bool):
        raise _Rejected(f"{name} must be an integer")
    try:
        nanos = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        raise _Rejected(f"{name} must be an integer (nanoseconds since the epoch)") from None
    if nanos < 0:
        raise _Rejected(f"{name} must not be negative")
    if nanos == 0:
        raise _Rejected(f"{name} is missing")
    if nanos >= MAX_NANOS:
        raise _Rejected(f"{name} {OUT_OF_RANGE}")
    return nanos


def _kind(value: Any) -> int:
    if isinstance(value, str):
        return KINDS.get(value.upper(), KINDS.get(f"SPAN_KIND_{value.upper()}", 0))
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_URL_ATTRS = ("url.path", "http.target", "url.full", "http.url")  # a span's URL or path, preferred first


def _url_value(attrs: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` that is a non-empty string attribute."""
    for name in names:
        value = attrs.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _path(attrs: Mapping[str, Any]) -> str | None:
    """The span's URL path as sent (query and fragment cut), from its path or its full URL."""
    value = _url_value(attrs, *_URL_ATTRS)
    if value is None:
        return None
    if "://" in value:
        try:
            value = urlsplit(value).path
        except ValueError:  # a host urlsplit refuses: the key's path still holds, this one is left out
            return None
    return value.split("?", 1)[0].split("#", 1)[0] or "/"


def _route(attrs: Mapping[str, Any], template: str | None) -> str | None:
    """The route of a server or browser span: its ``http.route`` template made a key
    (``/api/users/<name>`` -> ``/api/users/:name``), else its normalised URL path.

    The template wins because it names the route whatever the value: ``/api/users/alice`` and
    ``/bob`` are one key. The browser's calls only know the path; the monitor re-keys them
    with the templates the server reported (``live_monitor.model.routes``).
    """
    if template is not None:
        return route_key(template)
    value = _url_value(attrs, *_URL_ATTRS)
    return None if value is None else normalize_route(value)  # an absolute URL gives its path


def _outgoing_action(attrs: Mapping[str, Any], method: str) -> str | None:
    """The key of a backend's outgoing call, with its host: from ``url.full`` (``http.url``),
    else from ``server.address``/``server.port`` (``net.peer.*``, ``http.host``) and the path."""
    url = _url_value(attrs, "url.full", "http.url")
    if url is not None and "://" in url:
        return outgoing_key(method, url)
    path = _url_value(attrs, "url.path", "http.target") or url
    host = _url_value(attrs, "server.address", "net.peer.name", "http.host")
    if host is None:
        return None if path is None else outgoing_key(method, path)
    port = attrs.get("server.port", attrs.get("net.peer.port"))
    scheme = _url_value(attrs, "url.scheme", "http.scheme") or ("https" if port == 443 else "http")
    if host.count(":") > 1 and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    if isinstance(port, int) and not isinstance(port, bool) and ":" not in host.rsplit("]", 1)[-1]:
        host = f"{host}:{port}"  # http.host may carry its port already
    return outgoing_key(method, f"{scheme}://{host}{path or '/'}")


def _method(attrs: Mapping[str, Any]) -> str | None:
    method = attrs.get("http.request.method") or attrs.get("http.method")
    if not isinstance(method, str) or not method.strip():
        return None
    if method == "_OTHER" and isinstance(attrs.get("http.request.method_original"), str):
        method = attrs["http.request.method_original"]
    return method.strip().upper()


def _http_status(attrs: Mapping[str, Any]) -> int | None:
    """The span's HTTP status code, None without a readable one.

    0 is read: the browser instrumentations send it for a call that got no response (network
    error, CORS), the calls the monitor exists to show. Any value that is neither 0 nor a
    whole number from 100 to 999 (``"OK"``, ``true``, ``1e308``) is ignored, as other
    attributes of the wrong type are, and the span is kept.
    """
    for name in HTTP_STATUS_ATTRIBUTES:
        value = attrs.get(name)
        code: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            code = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            code = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", value):
            code = int(value)
        if code is not None and (code == 0 or 100 <= code <= 999):
            return code
    return None


@dataclass(frozen=True)
class _Source:
    """What a span's resource says of where it comes from."""

    service_name: str | None = None
    browser: bool = False
    release: str | None = None  # the resource's service.version
    environment: str | None = None  # its deployment.environment.name (or the older deployment.environment)

    @classmethod
    def of(cls, resource: Mapping[str, Any]) -> _Source:
        service = resource.get("service.name")
        environment = resource.get("deployment.environment.name", resource.get("deployment.environment"))
        return cls(
            service if isinstance(service, str) else None,
            _is_browser(resource),
            _label(resource.get("service.version"), MAX_RELEASE),
            _label(environment, MAX_ENVIRONMENT),
        )

    def with_scope(self, scope: Any) -> _Source:
        """This source, a browser too when the spans' instrumentation scope runs only in one:
        the web SDK set up with a resource of its own (``resourceFromAttributes``) says no
        ``webjs``, but its fetch and XMLHttpRequest spans still name their instrumentation."""
        name = _get(scope, "name") if isinstance(scope, dict) else None
        return dataclasses.replace(self, browser=True) if name in BROWSER_SCOPES else self


def _label(value: Any, limit: int) -> str | None:
    """A resource's release or environment as an event holds it: text, cut to ``limit``
    characters (a long version names the build no less), None when absent, empty or not text."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def _is_browser(resource: Mapping[str, Any]) -> bool:
    """True for telemetry from a browser: the web SDK's ``telemetry.sdk.language`` ``webjs``, or
    the browser detector's resource attributes (``browser.*``, ``user_agent.original``)."""
    if resource.get("telemetry.sdk.language") == "webjs" or "user_agent.original" in resource:
        return True
    return any(key.startswith("browser.") for key in resource)


def _span_event(span: Any, source: _Source) -> ExecutionEvent | None:
    """The event of one span, None to skip it; raises _Rejected when the span is invalid."""
    if not isinstance(span, dict):
        raise _Rejected("a span must be an object")
    side = SIDES.get((_kind(_get(span, "kind")), source.browser))
    if side is None:
        return None
    attrs = _attributes(_get(span, "attributes"))
    template = _url_value(attrs, "http.route")
    method = _method(attrs)
    if method is None:
        return None
    if side[1] == OUTGOING_COMPONENT:
        action = _outgoing_action(attrs, method)
    else:
        route = _route(attrs, template)
        action = None if route is None else f"{method} {route}"
    if action is None:
        return None
    trace_id = _hex_id(_get(span, "traceId"), 16, "traceId")
    span_id = _hex_id(_get(span, "spanId"), 8, "spanId")
    parent_span_id = _parent_id(_get(span, "parentSpanId"))
    sample_rate = _sample_rate(_get(span, "traceState"))
    start = _nanos(_get(span, "startTimeUnixNano"), "startTimeUnixNano")
    end = _nanos(_get(span, "endTimeUnixNano"), "endTimeUnixNano")
    if end < start:
        raise _Rejected("endTimeUnixNano is before startTimeUnixNano")
    status = _get(span, "status")
    code = _get(status, "code") if isinstance(status, dict) else None
    http_status = _http_status(attrs)
    # http_status 0: the call got no response, an error whatever the span's status says
    failed = code in (STATUS_ERROR, "STATUS_CODE_ERROR") or http_status == 0 or (http_status or 0) >= 500
    details: dict[str, Any] = {"http_status": http_status}
    name = _get(span, "name")
    if isinstance(name, str):
        details["otel_span_name"] = name[:MAX_SPAN_NAME]
    if source.service_name:
        details["service.name"] = source.service_name[:MAX_SPAN_NAME]
    if template is not None:
        details["route"] = template[:MAX_SPAN_NAME]
    path = _path(attrs)
    if path is not None:
        details["url_path"] = path[:MAX_SPAN_NAME]
    return _convert(
        {
            "timestamp": start / 1e9,
            "service": side[0],
            "component": side[1],
            "action": action,
            "duration_ms": round((end - start) / 1e6, 3),
            "status": "error" if failed else "success",
            "details": details,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent_span_id,
            "sample_rate": sample_rate,
            "release": source.release,
            "environment": source.environment,
        }
    )


def _sample_rate(trace_state: Any) -> float | None:
    """The probability the span was sampled at, where its trace state says it (OpenTelemetry's
    ``ot=th:<hex>`` rejection threshold: the rate is ``1 - th / 2**56``); None for every other
    span, which then counts as itself. A threshold that does not read is ignored."""
    if not isinstance(trace_state, str) or "ot=" not in trace_state:
        return None
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for field_ in value.split(";"):
            name, _, threshold = field_.partition(":")
            if name == "th" and 0 < len(threshold) <= 14 and _HEX.match(threshold):
                rate = 1 - int(threshold.ljust(14, "0"), 16) / 2**56
                return rate if MIN_SAMPLE_RATE <= rate < 1 else None
    return None


def _parent_id(value: Any) -> str | None:
    """The span's parent as hex, None for a root span (no parent, or all zeros); a parent id
    that does not read is dropped rather than the span: the join then falls back to the key."""
    if value in (None, ""):
        return None
    try:
        return _hex_id(value, 8, "parentSpanId")
    except _Rejected:
        return None


def _convert(fields: dict[str, Any]) -> ExecutionEvent:
    """The event of ``fields``; raises _Rejected naming the event field it could not hold."""
    try:
        return convert_event(fields)
    except (ValueError, TypeError) as exc:  # msgspec.ValidationError is a ValueError
        text = str(exc)
        match = re.search(r"at `\$\.(\w+)`", text)
        raise _Rejected(
            _INVALID.get(match.group(1) if match else text.split(":", 1)[0], _INVALID[""])
        ) from None


def _resource_spans(body: Mapping[str, Any]) -> Iterator[tuple[_Source, Any]]:
    """(where it comes from, span) for every span of an ExportTraceServiceRequest."""
    for i, resource_spans in enumerate(_list(body, "resourceSpans", "body")):
        where = f"resourceSpans[{i}]"
        if not isinstance(resource_spans, dict):
            raise OtlpError(400, f"{where} must be an object")
        resource = _get(resource_spans, "resource")
        attrs = _attributes(_get(resource, "attributes")) if isinstance(resource, dict) else {}
        source = _Source.of(attrs)
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            if not isinstance(scope_spans, dict):
                raise OtlpError(400, f"{where}.scopeSpans[{j}] must be an object")
            scoped = source.with_scope(_get(scope_spans, "scope"))
            for span in _list(scope_spans, "spans", f"{where}.scopeSpans[{j}]"):
                yield scoped, span


_S = TypeVar("_S")  # what an item is read with: a span's source, a record's resource


def _collect(
    items: Iterator[tuple[_S, Any]], convert: Callable[[Any, _S], ExecutionEvent | None]
) -> SpanBatch:
    """The events of ``(source, item)`` pairs: an item ``convert`` refuses is rejected with its
    reason, one it passes over (None) skipped; the others' events are kept."""
    batch = SpanBatch()
    for source, item in items:
        try:
            event = convert(item, source)
        except _Rejected as exc:
            batch.rejected.append(str(exc))
            continue
        if event is None:
            batch.skipped += 1
        else:
            batch.events.append(event)
    return batch


def spans_to_events(body: Any) -> SpanBatch:
    """Turn a decoded ExportTraceServiceRequest (OTLP JSON shape) into events.

    Raises OtlpError(400) when the request's structure is not OTLP; an invalid span only
    lands in ``rejected`` with its reason.
    """
    if not isinstance(body, dict):
        raise OtlpError(400, 'body must be an OTLP ExportTraceServiceRequest: {"resourceSpans": [...]}')
    return _collect(_resource_spans(body), _span_event)


# --- logs ------------------------------------------------------------------------------------

# severityNumber 17 to 20 is ERROR, 21 to 24 FATAL (the OTLP data model)
SEVERITY_ERROR = 17
SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LOG_COMPONENT = "log"
MAX_LOG_BODY = 1000
MAX_LOG_ATTRIBUTES = 32
# attributes a log record's event is built from, so not repeated in its details
_LOG_FIELDS = frozenset({"component", "action", "service", "duration_ms", "status", "trace_id", "span_id"})
_SEVERITY_ENUM = re.compile(r"^SEVERITY_NUMBER_([A-Z]+)([234]?)$")


def _severity(record: Mapping[str, Any]) -> tuple[int, str | None]:
    """The record's severityNumber (0 when unset) and its name: severityText, else from the number.

    JSON carries the number as an integer, protobuf's JSON mapping as ``SEVERITY_NUMBER_ERROR2``.
    """
    raw = _get(record, "severityNumber")
    number = 0
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 24:
        number = raw
    elif isinstance(raw, str) and (match := _SEVERITY_ENUM.match(raw.upper())):
        base = match.group(1)
        if base in SEVERITY_NAMES:
            number = 4 * SEVERITY_NAMES.index(base) + int(match.group(2) or 1)
    text = _get(record, "severityText")
    if isinstance(text, str) and text.strip():
        return number, text.strip()[:32]
    return number, SEVERITY_NAMES[(number - 1) // 4] if number else None


def _log_service(attrs: Mapping[str, Any], source: _Source) -> str:
    """A ``service`` attribute naming a side, else frontend for a browser, else backend."""
    service = attrs.get("service")
    if service in SERVICES:
        return str(service)
    return "frontend" if source.browser else "backend"


def _optional_id(record: Mapping[str, Any], camel: str, size: int) -> str | None:
    """A log record's trace or span id, None when unset (empty, or absent as protobuf omits it)."""
    value = _get(record, camel)
    if value is None or value == "":
        return None
    return _hex_id(value, size, camel)


def _log_time(record: Mapping[str, Any]) -> float | None:
    """Seconds since the epoch: timeUnixNano, else observedTimeUnixNano, else None (now)."""
    for camel in ("timeUnixNano", "observedTimeUnixNano"):
        value = _get(record, camel)
        if value not in (None, 0, "0", ""):
            return _nanos(value, camel) / 1e9
    return None


def _log_details(record: Mapping[str, Any], attrs: Mapping[str, Any], level: str | None) -> dict[str, Any]:
    """What a log event keeps: its body as ``message``, its ``level`` and other scalar attributes."""
    details: dict[str, Any] = {}
    body = _any_value(_get(record, "body"))
    if body is not None:
        details["message"] = str(body)[:MAX_LOG_BODY]
    if level:
        details["level"] = level
    extra = [(k, v) for k, v in attrs.items() if k not in _LOG_FIELDS and v is not None]
    for key, value in extra[:MAX_LOG_ATTRIBUTES]:
        if isinstance(value, float) and not math.isfinite(value):
            continue
        details.setdefault(key[:MAX_SPAN_NAME], value[:MAX_SPAN_NAME] if isinstance(value, str) else value)
    return details


def _log_event(record: Any, source: _Source) -> ExecutionEvent | None:
    """The event of one log record, None to skip it; raises _Rejected when it is invalid.

    With ``component`` and ``action`` attributes it is an event as ``MonitorHandler`` makes
    one; without them, only an ERROR-or-worse record with a span context becomes one (a
    ``log`` event named by its severity), since the trace's spans already stand for the request.
    """
    if not isinstance(record, dict):
        raise _Rejected("a log record must be an object")
    attrs = _attributes(_get(record, "attributes"))
    number, level = _severity(record)
    trace_id = _optional_id(record, "traceId", 16)
    span_id = _optional_id(record, "spanId", 8)
    component, action = attrs.get("component"), attrs.get("action")
    if not (isinstance(component, str) and component and isinstance(action, str) and action):
        if trace_id is None or number < SEVERITY_ERROR:
            return None
        component, action = LOG_COMPONENT, level or "ERROR"
    status = attrs.get("status")
    fields: dict[str, Any] = {
        "service": _log_service(attrs, source),
        "component": component,
        "action": action,
        "status": "error" if number >= SEVERITY_ERROR else status if status in STATUSES else "success",
        "details": _log_details(record, attrs, level),
        "trace_id": trace_id,
        "span_id": span_id,
        "release": source.release,
        "environment": source.environment,
    }
    seconds = _log_time(record)
    if seconds is not None:
        fields["timestamp"] = seconds
    duration = attrs.get("duration_ms")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise _Rejected("duration_ms must be a number")
        fields["duration_ms"] = duration
    if source.service_name is not None:
        fields["details"].setdefault("service.name", source.service_name[:MAX_SPAN_NAME])
    return _convert(fields)


def _resource_logs(body: Mapping[str, Any]) -> Iterator[tuple[_Source, Any]]:
    """(the resource as a source, log record) for every record of an ExportLogsServiceRequest;
    the resource is read once, not once a record."""
    for i, resource_logs in enumerate(_list(body, "resourceLogs", "body")):
        where = f"resourceLogs[{i}]"
        if not isinstance(resource_logs, dict):
            raise OtlpError(400, f"{where} must be an object")
        resource = _get(resource_logs, "resource")
        attrs = _attributes(_get(resource, "attributes")) if isinstance(resource, dict) else {}
        source = _Source.of(attrs)
        for j, scope_logs in enumerate(_list(resource_logs, "scopeLogs", where)):
            if not isinstance(scope_logs, dict):
                raise OtlpError(400, f"{where}.scopeLogs[{j}] must be an object")
            for record in _list(scope_logs, "logRecords", f"{where}.scopeLogs[{j}]"):
                yield source, record


def logs_to_events(body: Any) -> SpanBatch:
    """Turn a decoded ExportLogsServiceRequest (OTLP JSON shape) into events.

    Raises OtlpError(400) when the request's structure is not OTLP; an invalid record only
    lands in ``rejected`` with its reason.
    """
    if not isinstance(body, dict):
        raise OtlpError(400, 'body must be an OTLP ExportLogsServiceRequest: {"resourceLogs": [...]}')
    return _collect(_resource_logs(body), _log_event)


# --- the signals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its path, protobuf messages, converter and partial-success field."""

    name: str  # "traces" or "logs": the label in /status and /metrics
    path: str
    module: str  # opentelemetry-proto's generated module of the signal's collector service
    request: str
    response: str
    convert: Callable[[Any], SpanBatch]
    rejected_field: str  # partialSuccess's count, by its proto name
    noun: str

    def messages(self) -> Any:
        """The signal's generated protobuf module (None when a broken install lacks it)."""
        return _messages(self.module)

    @property
    def rejected_json(self) -> str:
        """The count's name in the OTLP JSON mapping (lowerCamelCase)."""
        head, *rest = self.rejected_field.split("_")
        return head + "".join(word.title() for word in rest)


TRACES = Signal(
    "traces",
    OTLP_TRACES_PATH,
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    "ExportTraceServiceRequest",
    "ExportTraceServiceResponse",
    spans_to_events,
    "rejected_spans",
    "span",
)
LOGS = Signal(
    "logs",
    OTLP_LOGS_PATH,
    "opentelemetry.proto.collector.logs.v1.logs_service_pb2",
    "ExportLogsServiceRequest",
    "ExportLogsServiceResponse",
    logs_to_events,
    "rejected_log_records",
    "log record",
)
SIGNALS = {signal.path: signal for signal in (TRACES, LOGS)}


# --- protobuf --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _messages(module: str) -> Any:
    """A generated module of opentelemetry-proto (in requirements.txt), None when a broken
    install lacks it (looked up once: a failed import searches sys.path on every call)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def decode(body: bytes, protobuf: bool, signal: Signal) -> Any:
    """The export request in the OTLP JSON shape, from JSON or protobuf bytes."""
    if not protobuf:
        try:
            return msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise OtlpError(400, f"malformed JSON: {exc}") from None
    module = _messages(signal.module)
    if module is None:
        raise OtlpError(
            415, "protobuf needs requirements.txt installed (opentelemetry-proto): send JSON instead"
        )
    from google.protobuf import json_format

    message = getattr(module, signal.request)()
    try:
        message.ParseFromString(body)
    except Exception:  # protobuf's DecodeError differs between its implementations
        raise OtlpError(400, f"malformed protobuf: not an {signal.request}") from None
    return json_format.MessageToDict(message)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | 0x80 if n else low)
        if not n:
            return bytes(out)


def rpc_status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` in protobuf wire format: ``code`` (field 1, int32) and
    ``message`` (field 2, string), the two fields OTLP/HTTP error answers use; by hand, as
    googleapis-common-protos would be a whole package for a two-field message."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


# --- HTTP ---------------------------------------------------------------------------------


def export_response(batch: SpanBatch, signal: Signal, module: Any) -> bytes:
    """The Export…ServiceResponse in protobuf (HTTP and gRPC), with partial_success when items
    were rejected."""
    message = getattr(module, signal.response)()
    if batch.rejected:
        setattr(message.partial_success, signal.rejected_field, len(batch.rejected))
        message.partial_success.error_message = batch.error_message(signal.noun)
    return bytes(message.SerializeToString())


def _answer(batch: SpanBatch, protobuf: bool, signal: Signal) -> Response:
    """The Export…ServiceResponse, with partialSuccess when items were rejected."""
    module = _messages(signal.module) if protobuf else None
    if module is not None:
        return Response(export_response(batch, signal, module), 200, mimetype="application/x-protobuf")
    answer: dict[str, Any] = {}
    if batch.rejected:
        answer["partialSuccess"] = {
            signal.rejected_json: len(batch.rejected),
            "errorMessage": batch.error_message(signal.noun),
        }
    return Response(msgspec.json.encode(answer), 200, mimetype="application/json")


def note_refusal(app: Flask, signal: Signal, exc: ApiError) -> None:
    """Count a refused export (HTTP or gRPC) by reason and log the first of each reason, so a
    misconfigured exporter retrying does not flood the log; a malformed one counts as rejected."""
    reason = REFUSALS.get(exc.status, REFUSED_OTHER)
    receiver: OtlpReceiver = app.extensions["live_monitor.otlp"]
    if receiver.refuse(signal.name, reason):
        log.warning(
            "OTLP %s export refused (HTTP %d, %s): %s; further refusals for this reason are "
            "counted in /status and /metrics, not logged",
            signal.name,
            exc.status,
            reason,
            exc.message,
        )
    if exc.status == 400:
        with contextlib.suppress(StoreUnavailable):  # the answer is a refusal all the same
            app.extensions["live_monitor"].store.reject(["otlp: malformed export request"])


def _refuse(exc: ApiError, signal: Signal) -> Response:
    """Count a refused export by reason, log its first one, and answer with a google.rpc.Status
    body as OTLP asks for (in JSON, ``error`` too, as the monitor's other errors have it)."""
    note_refusal(current_app, signal, exc)
    code = GRPC_CODES.get(exc.status, 2)
    headers = dict(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status == 503:
        headers.setdefault("Retry-After", "1")
    if request.mimetype in PROTOBUF_TYPES:
        body = rpc_status(code, exc.message)
        return Response(body, exc.status, mimetype="application/x-protobuf", headers=headers)
    answer = {"code": code, "message": exc.message, "error": exc.message}
    return Response(msgspec.json.encode(answer), exc.status, mimetype="application/json", headers=headers)


def _export(signal: Signal) -> Response:
    """One OTLP/HTTP export of ``signal``: checked, decoded, converted, stored and answered."""
    monitor: LiveExecutionMonitor = current_app.extensions["live_monitor"]
    access: Access = current_app.extensions["live_monitor.access"]
    protobuf = request.mimetype in PROTOBUF_TYPES
    try:
        access.check_caller(request.headers.get, method="POST", ingest=True)
        access.check_load(current_app.config)
        if not protobuf and request.mimetype != "application/json":
            raise OtlpError(415, "send OTLP as application/x-protobuf or application/json (OTLP/HTTP)")
        body = read_request_body(current_app.config["MAX_CONTENT_LENGTH"])
        batch = signal.convert(decode(body, protobuf, signal))
        if batch.events:
            monitor.accept(batch.events)
        if batch.rejected:
            monitor.store.reject(f"otlp: {reason}" for reason in batch.rejected)
    except StoreUnavailable as exc:
        return _refuse(ApiError(503, str(exc), {"Retry-After": "1"}), signal)
    except ApiError as exc:
        return _refuse(exc, signal)
    current_app.extensions["live_monitor.otlp"].count(batch, signal.name)
    return _answer(batch, protobuf, signal)


bp = Blueprint("otlp", __name__)


@bp.record_once
def _receiver(state: BlueprintSetupState) -> None:
    """Each app counts its own exports and items (``/status`` and ``/metrics`` read them)."""
    state.app.extensions["live_monitor.otlp"] = OtlpReceiver()


@bp.errorhandler(ApiError)
def _refused_before(exc: ApiError) -> Response:
    """A refusal raised before the route (shutting down, a foreign Host) is answered and
    counted as OTLP ones are."""
    return _refuse(exc, SIGNALS[request.path])


@bp.post(OTLP_TRACES_PATH)
def otlp_traces() -> Response:
    """OTLP/HTTP traces in. The rules of ``/events`` apply: with a token set the sender needs
    ``Authorization: Bearer <token>`` (or ``X-Ingest-Key`` when an ingest key is set), a
    browser's Origin must be allowed by ``--cors-origins``, and bodies are capped at
    ``--max-body-bytes`` after decompression. CORS is answered by the app's CORS rules."""
    return _export(TRACES)


@bp.post(OTLP_LOGS_PATH)
def otlp_logs() -> Response:
    """OTLP/HTTP logs in, under the same rules as traces."""
    return _export(LOGS)
