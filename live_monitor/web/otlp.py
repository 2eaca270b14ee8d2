"""OpenTelemetry in: ``POST /v1/traces`` takes OTLP/HTTP spans and stores them as endpoint events.

An app already instrumented with OpenTelemetry points its OTLP/HTTP trace exporter at the
monitor instead of (or besides) adding our loggers. SERVER spans become backend ``http``
events and CLIENT spans frontend ``api`` events, keyed ``METHOD /route`` like every other
endpoint event, so they meet the other side on the same key and the same trace id. Other
spans (INTERNAL, PRODUCER, ...) and spans without HTTP attributes are skipped and counted.

JSON (``application/json``, the OTLP JSON mapping) always works; protobuf
(``application/x-protobuf``, what the Python and Java exporters send) needs the
``opentelemetry-proto`` package.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from backend_logging_config import normalize_route
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.events import MAX_EPOCH, ExecutionEvent, convert_event
from live_monitor.vocabulary import OTLP_TRACES_PATH
from live_monitor.web.access import Access
from live_monitor.web.bodies import read_request_body
from live_monitor.web.errors import ApiError

__all__ = ["OtlpError", "OtlpReceiver", "SpanBatch", "bp", "spans_to_events"]

SIDES = {2: ("backend", "http"), 3: ("frontend", "api")}
KINDS = {
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
STATUS_ERROR = 2
MAX_SPAN_NAME = 200
# the first instant an event's timestamp cannot hold (3000-01-01T00:00:00Z): events refuse it
MAX_NANOS = MAX_EPOCH * 10**9
OUT_OF_RANGE = f"is out of range (must be before {datetime.fromtimestamp(MAX_EPOCH, UTC):%Y-%m-%d} UTC)"
HTTP_STATUS_ATTRIBUTES = ("http.response.status_code", "http.status_code")
# gRPC status codes for the google.rpc.Status body OTLP asks for on 4xx answers
GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_TEMPLATE_PARAM = re.compile(r"^(\{[^/]*\}|<[^/]*>|:[^/]+)$")
# why a span that parsed could still not become an event, by the event field refused
_INVALID = {
    "action": "method and route are longer than an event's 256-character action",
    "timestamp": f"startTimeUnixNano {OUT_OF_RANGE}",
    "duration_ms": "the span lasts too long",
    "details": "span name or attributes too large for an event",
    "": "span cannot become a valid event",
}


class OtlpError(ApiError):
    """The request as a whole is refused: ``status`` and a message for the sender."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


class _Rejected(ValueError):
    """One span is invalid; the message is the (data-free) reason, counted by reason."""


@dataclass
class SpanBatch:
    """What one export request turned into: events to store, skipped and rejected spans."""

    events: list[ExecutionEvent] = field(default_factory=list)
    skipped: int = 0
    rejected: list[str] = field(default_factory=list)

    def error_message(self) -> str:
        """One line for ``partialSuccess.errorMessage``: how many spans were refused and why."""
        reasons = Counter(self.rejected).most_common(5)
        text = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        more = len(set(self.rejected)) - len(reasons)
        return f"{len(self.rejected)} span(s) rejected: {text}" + (f"; and {more} more" if more else "")


class OtlpReceiver:
    """Counts spans by outcome (accepted, skipped, rejected); read by ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter({"accepted": 0, "skipped": 0, "rejected": 0})

    def count(self, batch: SpanBatch) -> None:
        """Add one batch's outcome."""
        with self._lock:
            self._counts["accepted"] += len(batch.events)
            self._counts["skipped"] += batch.skipped
            self._counts["rejected"] += len(batch.rejected)

    def counts(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)


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


def _route(attrs: Mapping[str, Any]) -> str | None:
    """The endpoint route of a span: its normalised path, else its route template.

    The path comes first because it is what the other side (the browser logger, the Flask
    middleware) keys on: ``/api/orders/42`` meets ``/api/orders/:id`` there, while a
    template such as ``/api/orders/<int:id>`` would not. A template alone has its
    parameters turned into ``:id``.
    """
    for name in ("url.path", "http.target", "url.full", "http.url", "http.route"):
        value = attrs.get(name)
        if not isinstance(value, str) or not value:
            continue
        if name == "http.route":
            value = "/".join(":id" if _TEMPLATE_PARAM.match(s) else s for s in value.split("/"))
        return normalize_route(value)  # an absolute URL (url.full, http.url) gives its path
    return None


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


def _span_event(span: Any, service_name: str | None) -> ExecutionEvent | None:
    """The event of one span, None to skip it; raises _Rejected when the span is invalid."""
    if not isinstance(span, dict):
        raise _Rejected("a span must be an object")
    side = SIDES.get(_kind(_get(span, "kind")))
    if side is None:
        return None
    attrs = _attributes(_get(span, "attributes"))
    method, route = _method(attrs), _route(attrs)
    if method is None or route is None:
        return None
    trace_id = _hex_id(_get(span, "traceId"), 16, "traceId")
    span_id = _hex_id(_get(span, "spanId"), 8, "spanId")
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
    if service_name:
        details["service.name"] = service_name[:MAX_SPAN_NAME]
    template = attrs.get("http.route")
    if isinstance(template, str):
        details["route"] = template[:MAX_SPAN_NAME]
    try:
        return convert_event(
            {
                "timestamp": start / 1e9,
                "service": side[0],
                "component": side[1],
                "action": f"{method} {route}",
                "duration_ms": round((end - start) / 1e6, 3),
                "status": "error" if failed else "success",
                "details": details,
                "trace_id": trace_id,
                "span_id": span_id,
            }
        )
    except (ValueError, TypeError) as exc:  # msgspec.ValidationError is a ValueError
        text = str(exc)
        match = re.search(r"at `\$\.(\w+)`", text)
        raise _Rejected(
            _INVALID.get(match.group(1) if match else text.split(":", 1)[0], _INVALID[""])
        ) from None


def _resource_spans(body: Mapping[str, Any]) -> Iterator[tuple[str | None, Any]]:
    """(service.name, span) for every span of an ExportTraceServiceRequest."""
    for i, resource_spans in enumerate(_list(body, "resourceSpans", "body")):
        where = f"resourceSpans[{i}]"
        if not isinstance(resource_spans, dict):
            raise OtlpError(400, f"{where} must be an object")
        resource = _get(resource_spans, "resource")
        attrs = _attributes(_get(resource, "attributes")) if isinstance(resource, dict) else {}
        service = attrs.get("service.name")
        service = service if isinstance(service, str) else None
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            if not isinstance(scope_spans, dict):
                raise OtlpError(400, f"{where}.scopeSpans[{j}] must be an object")
            for span in _list(scope_spans, "spans", f"{where}.scopeSpans[{j}]"):
                yield service, span


def spans_to_events(body: Any) -> SpanBatch:
    """Turn a decoded ExportTraceServiceRequest (OTLP JSON shape) into events.

    Raises OtlpError(400) when the request's structure is not OTLP; an invalid span only
    lands in ``rejected`` with its reason.
    """
    if not isinstance(body, dict):
        raise OtlpError(400, 'body must be an OTLP ExportTraceServiceRequest: {"resourceSpans": [...]}')
    batch = SpanBatch()
    for service, span in _resource_spans(body):
        try:
            event = _span_event(span, service)
        except _Rejected as exc:
            batch.rejected.append(str(exc))
            continue
        if event is None:
            batch.skipped += 1
        else:
            batch.events.append(event)
    return batch


# --- protobuf (optional) --------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _protobuf() -> Any:
    """The generated OTLP modules, or None when opentelemetry-proto is not installed (looked
    up once: a failed import searches sys.path again on every call)."""
    try:
        from google.protobuf import json_format
        from google.rpc import status_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:
        return None
    return json_format, trace_service_pb2, status_pb2


def _decode(body: bytes, protobuf: bool) -> Any:
    if not protobuf:
        try:
            return msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise OtlpError(400, f"malformed JSON: {exc}") from None
    modules = _protobuf()
    if modules is None:
        raise OtlpError(415, "protobuf needs the opentelemetry-proto package: send JSON instead")
    json_format, trace_service_pb2, _ = modules
    message = trace_service_pb2.ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except Exception:  # protobuf's DecodeError differs between its implementations
        raise OtlpError(400, "malformed protobuf: not an ExportTraceServiceRequest") from None
    return json_format.MessageToDict(message)


# --- HTTP ---------------------------------------------------------------------------------


def _answer(batch: SpanBatch, protobuf: bool) -> Response:
    """The ExportTraceServiceResponse, with partialSuccess when spans were rejected."""
    if protobuf:
        _, trace_service_pb2, _ = _protobuf()
        message = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            message.partial_success.rejected_spans = len(batch.rejected)
            message.partial_success.error_message = batch.error_message()
        return Response(message.SerializeToString(), 200, mimetype="application/x-protobuf")
    answer: dict[str, Any] = {}
    if batch.rejected:
        answer["partialSuccess"] = {
            "rejectedSpans": len(batch.rejected),
            "errorMessage": batch.error_message(),
        }
    return Response(msgspec.json.encode(answer), 200, mimetype="application/json")


def _error(exc: ApiError, protobuf: bool) -> Response:
    """A google.rpc.Status body, as OTLP asks for 4xx answers (JSON also carries ``error``)."""
    code = GRPC_CODES.get(exc.status, 2)
    headers = dict(exc.headers)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status == 503:
        headers.setdefault("Retry-After", "1")
    modules = _protobuf() if protobuf else None
    if modules is not None:
        status = modules[2].Status(code=code, message=exc.message)
        return Response(
            status.SerializeToString(), exc.status, mimetype="application/x-protobuf", headers=headers
        )
    body = {"code": code, "message": exc.message, "error": exc.message}
    return Response(msgspec.json.encode(body), exc.status, mimetype="application/json", headers=headers)


bp = Blueprint("otlp", __name__)


@bp.record_once
def _receiver(state: BlueprintSetupState) -> None:
    """Each app counts its own exports and spans (``/status`` and ``/metrics`` read them)."""
    state.app.extensions["live_monitor.otlp"] = OtlpReceiver()


@bp.post(OTLP_TRACES_PATH)
def otlp_traces() -> Response:
    """OTLP/HTTP traces in. The rules of ``/events`` apply: with a token set the sender needs
    ``Authorization: Bearer <token>`` (or ``X-Ingest-Key`` when an ingest key is set), a
    browser's Origin must be allowed by ``--cors-origins``, and bodies are capped at
    ``--max-body-bytes`` after decompression. CORS is answered by the app's CORS rules."""
    monitor: LiveExecutionMonitor = current_app.extensions["live_monitor"]
    access: Access = current_app.extensions["live_monitor.access"]
    protobuf = request.mimetype == "application/x-protobuf"
    try:
        access.check_caller(request.headers.get, method="POST", ingest=True)
        access.check_load(current_app.config)
        if request.mimetype not in ("application/json", "application/x-protobuf"):
            raise OtlpError(415, "send OTLP as application/json or application/x-protobuf (OTLP/HTTP)")
        batch = spans_to_events(
            _decode(read_request_body(current_app.config["MAX_CONTENT_LENGTH"]), protobuf)
        )
    except ApiError as exc:
        if exc.status == 400:
            monitor.store.reject(["otlp: malformed export request"])
        return _error(exc, protobuf)
    if batch.events:
        monitor.accept(batch.events)
    if batch.rejected:
        monitor.store.reject(f"otlp: {reason}" for reason in batch.rejected)
    current_app.extensions["live_monitor.otlp"].count(batch)
    return _answer(batch, protobuf)
