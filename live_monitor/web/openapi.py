"""The OpenAPI 3.1 description of the monitor's REST API, served at /api/openapi.json.

The schemas are generated from the types the code uses: the event schema from the model the
validator decodes (``IncomingEvent``: an ``ExecutionEvent`` with every timestamp form clients
may send), the answers of /data, /differences and /status from ``live_monitor.model.results``. The
limits that depend on the settings (query bounds, events a batch, body size, credentials) come
from the app's settings, and the routes read their bounds here too (``query_bounds``). So the
description, the validator and the answers cannot drift apart; schemathesis checks the API
against this document with all its checks.

OTLP/HTTP (/v1/traces and the like) is left out on purpose: its bodies are OTLP protobuf or
OTLP JSON, described by the OpenTelemetry protocol specification, not by a JSON Schema here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from live_monitor.model.events import IncomingEvent
from live_monitor.model.results import (
    BaselineAnswer,
    DataAnswer,
    Difference,
    DifferencesAnswer,
    EndpointDrill,
    HistoryAnswer,
    LabelsAnswer,
    StatusAnswer,
)
from live_monitor.store import EPISODES_KEPT
from live_monitor.vocabulary import (
    API,
    BASELINE_PATH,
    EVENTS_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    OPENAPI_PATH,
    READY_PATH,
    SEVERITIES,
    STATUS_PATH,
    STREAM_PATH,
)
from live_monitor.web.endpoints import ENDPOINTS_PATH
from live_monitor.web.filters import FILTER_PARAMS
from live_monitor.web.ingest import MAX_ERRORS_SHOWN

__all__ = ["FALSE_WORDS", "HISTORY_DEFAULT", "HISTORY_LIMIT", "TRUE_WORDS", "openapi", "query_bounds"]

REF = "#/components/schemas/{name}"
HISTORY_DEFAULT = 300  # system and activity samples /data returns unless ?history= says
HISTORY_LIMIT = (
    100,
    1,
    EPISODES_KEPT,
)  # difference episodes /differences/history returns: default, least, most
OTLP_NOTE = (
    " OTLP/HTTP (POST /v1/traces and the other OTLP signals) is not described here: its bodies "
    "are OTLP protobuf or JSON, as the OpenTelemetry protocol specification describes them."
)


# The words a yes-or-no query parameter takes, in any case.
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes"), ("0", "false", "no")


def _any_case(words: tuple[str, ...]) -> str:
    """A pattern matching exactly ``words`` in any case (``[tT][rR]...``)."""
    spelled = ("".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in word) for word in words)
    return f"^(?:{'|'.join(spelled)})$"


DASHBOARD_LIMIT = 1000  # the most recent events the dashboard asks /data for (static/dashboard.js)


def query_bounds(settings: Mapping[str, Any]) -> dict[str, tuple[int, int, int]]:
    """The default, least and greatest value of each whole-number query parameter of /data.

    ``limit`` goes up to both sides' events, and never below DASHBOARD_LIMIT, the most the
    dashboard asks for: with a small --max-events its every poll would otherwise be a 400."""
    return {
        "limit": (settings["recent_limit"], 0, max(settings["max_events"] * 2, DASHBOARD_LIMIT)),
        "history": (min(HISTORY_DEFAULT, settings["history"]), 0, settings["history"]),
    }


@dataclass(frozen=True)
class _Limits:
    """What of the settings the document states: the query bounds, batch and body limits, and
    whether credentials are asked for."""

    limit: tuple[int, int, int]
    history: tuple[int, int, int]
    max_batch_events: int
    max_body_bytes: int
    token: bool
    ingest_key: bool


def openapi(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document of an app run with ``settings``."""
    bounds = query_bounds(settings)
    return _document(
        _Limits(
            limit=bounds["limit"],
            history=bounds["history"],
            max_batch_events=settings["max_batch_events"],
            max_body_bytes=settings["max_body_bytes"],
            token=bool(settings["token"]),
            ingest_key=bool(settings["token"] and settings["ingest_key"]),
        )
    )


def _ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON response, with the headers it always carries."""
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = {name: {**header, "required": True} for name, header in headers.items()}
    return answer


ERROR = _ref("Error")
RETRY_AFTER = {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 0}}
REASONS = {
    400: "bad data",
    401: "missing or wrong credentials",
    404: "no such endpoint key in the window or the newest events",
    403: "a foreign Host on a loopback monitor, or a browser origin not allowed (see --cors-origins)",
    413: "body too large",
    415: "not JSON, or a Content-Encoding other than gzip or deflate",
    429: "too many requests from this browser",
    503: "shutting down, overloaded, the store unreachable, (the stream) too many streams open, or "
    "(/ready, pinning) the --persist journal still being read back",
}


def _errors(*codes: int, body_limit: int = 0) -> dict[str, Any]:
    """The error answers ``codes``, each ``{"error": message}``, with the headers they carry."""
    answers = {}
    for code in codes:
        reason = REASONS[code] + (
            f": at most {body_limit:,} bytes after decompression" if code == 413 else ""
        )
        headers: dict[str, Any] = {}
        if code in (429, 503):
            headers["Retry-After"] = RETRY_AFTER
        if code == 401:
            headers["WWW-Authenticate"] = {
                "description": "the scheme asked for",
                "schema": {"const": "Bearer"},
            }
        answers[str(code)] = _json(ERROR, reason, headers)
    return answers


def _int_param(name: str, text: str, bounds: tuple[int, int, int]) -> dict[str, Any]:
    """A whole-number query parameter with its default and bounds."""
    default, low, high = bounds
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": {"type": "integer", "minimum": low, "maximum": high, "default": default},
    }


def _components(limits: _Limits) -> dict[str, Any]:
    """The schemas: the generated ones (events, answers) and the ingest body and answers."""
    _, generated = msgspec.json.schema_components(
        [
            IncomingEvent,
            Difference,
            DataAnswer,
            DifferencesAnswer,
            StatusAnswer,
            HistoryAnswer,
            LabelsAnswer,
            EndpointDrill,
            BaselineAnswer,
        ],
        ref_template=REF,
    )
    # Through JSON, so the document equals the one served (default levels are lists, not tuples).
    components: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(generated))
    # One event schema for both ways, the one a client may send (epoch seconds and zoneless
    # times too): every event the monitor answers with (ISO times) fits it.
    components["ExecutionEvent"] = {**components.pop("IncomingEvent"), "title": "ExecutionEvent"}
    events = {
        "type": "array",
        "items": _ref("ExecutionEvent"),
        "maxItems": limits.max_batch_events,
        "description": "events beyond the limit are rejected one by one, as invalid events are",
    }
    answers: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "Batch": {
            "oneOf": [
                events,
                {"type": "object", "required": ["events"], "properties": {"events": events}},
            ]
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "rejected", "errors"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "errors": {
                    "type": "array",
                    "maxItems": MAX_ERRORS_SHOWN,
                    "items": {
                        "type": "object",
                        "required": ["index", "error"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "error": {"type": "string"},
                        },
                    },
                },
                "errors_truncated": {"const": True, "description": f"more than {MAX_ERRORS_SHOWN} rejected"},
            },
        },
        "IngestRefused": {"allOf": [_ref("IngestResult"), ERROR], "description": "no event was valid"},
        "StreamEvent": {
            "description": "one event of the live stream: its name and its JSON data",
            "oneOf": [_stream_event("events", "ExecutionEvent"), _stream_event("differences", "Difference")],
        },
        "Switch": {
            "type": "object",
            "required": ["status", "monitoring"],
            "properties": {
                "status": {"enum": ["started", "already running", "stopped", "not running"]},
                "monitoring": {"type": "boolean"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "monitoring"],
            "properties": {
                "status": {"const": "ok"},
                "monitoring": {
                    "type": ["boolean", "null"],
                    "description": "null while the store is unreachable",
                },
            },
        },
        "Ready": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ready"}}},
        "Config": {
            "type": "object",
            "required": ["settings", "thresholds"],
            "properties": {
                "settings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "value", "default", "env", "flag", "help"],
                        "properties": {
                            key: {"type": "string"} if key in ("name", "env", "flag", "help") else {}
                            for key in ("name", "value", "default", "env", "flag", "help")
                        },
                    },
                },
                "thresholds": _ref("Thresholds"),
            },
        },
    }
    return {**components, **answers}


def _stream_event(name: str, item: str) -> dict[str, Any]:
    """A live stream event named ``name`` whose data is a JSON array of ``item``."""
    data = {"type": "array", "items": _ref(item)}
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data},
        },
    }


def _security(limits: _Limits) -> dict[str, Any]:
    """The credentials schemes a monitor with a token asks for (none without one)."""
    if not limits.token:
        return {}
    schemes: dict[str, Any] = {"bearer": {"type": "http", "scheme": "bearer"}}
    if limits.ingest_key:
        schemes["ingestKey"] = {"type": "apiKey", "in": "header", "name": "X-Ingest-Key"}
    return schemes


def _operation(
    summary: str, answer: dict[str, Any], *codes: int, secured: bool, body_limit: int = 0, **more: Any
) -> dict[str, Any]:
    """One operation: its answer, its error answers (every route may answer 403 and 503; a
    secured one 401 too) and, when credentials are asked for, its security."""
    codes = tuple(sorted({*codes, 403, 503, *((401,) if secured else ())}))
    responses = {"200": answer, **_errors(*codes, body_limit=body_limit)}
    operation = {"summary": summary, **more, "responses": responses}
    if secured:
        operation["security"] = [{"bearer": []}]
    return operation


@cache
def _document(limits: _Limits) -> dict[str, Any]:
    secured = limits.token
    api = {"secured": secured}
    data_params = [
        _int_param("limit", "recent events to return", limits.limit),
        _int_param("history", "system and activity samples to return", limits.history),
        {
            "name": "include_self",
            "in": "query",
            "required": False,
            "description": "include the monitor's own API calls: true or false (also 1, yes; 0, no; any case)",
            "schema": {"type": "string", "pattern": _any_case(TRUE_WORDS + FALSE_WORDS), "default": "true"},
        },
        *FILTER_PARAMS,
    ]
    severity = {
        "name": "min_severity",
        "in": "query",
        "required": False,
        "schema": {"enum": list(SEVERITIES)},
    }
    ingest = _operation(
        "Ingest a batch of events; valid ones are kept, invalid ones listed",
        _json(_ref("IngestResult"), "the batch was read: its valid events kept, the others listed"),
        400,
        413,
        415,
        429,
        secured=secured,
        body_limit=limits.max_body_bytes,
        requestBody={
            "required": True,
            "description": f"JSON (or text/plain, as navigator.sendBeacon sends it), gzip or deflate "
            f"too; at most {limits.max_body_bytes:,} bytes after decompression",
            "content": {"application/json": {"schema": _ref("Batch")}},
        },
    )
    ingest["responses"]["400"] = _json(
        {"anyOf": [ERROR, _ref("IngestRefused")]}, "no valid event, or not a batch"
    )
    if limits.ingest_key:
        ingest["security"] = [{"bearer": []}, {"ingestKey": []}]
    switch = _json(_ref("Switch"), "the monitoring state")
    baseline = _json(_ref("BaselineAnswer"), "the pinned baseline (none after DELETE) and the changes since")
    paths = {
        HEALTH_PATH: {
            "get": _operation(
                "Liveness: 200 while the process serves, even while the store is down",
                _json(_ref("Health"), "alive"),
                secured=False,
            )
        },
        READY_PATH: {
            "get": _operation(
                "Readiness: 200 when the store answers and the --persist journal is read back; "
                "503 with Retry-After and the reason while the store is unreachable or the journal is read back",
                _json(_ref("Ready"), "ready to serve"),
                secured=False,
            )
        },
        OPENAPI_PATH: {
            "get": _operation("This document", _json({"type": "object"}, "OpenAPI 3.1"), secured=False)
        },
        f"{API}/start": {"post": _operation("Start monitoring", switch, **api)},
        f"{API}/stop": {"post": _operation("Stop monitoring; stored data stays", switch, **api)},
        STATUS_PATH: {
            "get": _operation(
                "State, uptime and ingest counters",
                _json(_ref("StatusAnswer"), "the monitoring state"),
                **api,
            )
        },
        f"{API}/data": {
            "get": _operation(
                "Summaries, comparison, endpoints, differences, system samples and recent events",
                _json(_ref("DataAnswer"), "live data"),
                400,
                parameters=data_params,
                **api,
            )
        },
        f"{API}/differences": {
            "get": _operation(
                "The differences now detected",
                _json(_ref("DifferencesAnswer"), "differences, most severe first"),
                400,
                parameters=[severity, *FILTER_PARAMS],
                **api,
            )
        },
        f"{API}/differences/history": {
            "get": _operation(
                "When each difference opened and resolved, and the highest severity it reached",
                _json(_ref("HistoryAnswer"), "episodes, the newest opened first"),
                400,
                parameters=[_int_param("limit", "episodes to return", HISTORY_LIMIT)],
                **api,
            )
        },
        f"{API}/labels": {
            "get": _operation(
                "The releases and environments the stored events carry, the most recently seen "
                "first: the values ?release= and ?environment= filter by",
                _json(_ref("LabelsAnswer"), "releases and environments"),
                **api,
            )
        },
        f"{ENDPOINTS_PATH}/{{key}}": {
            "get": _operation(
                "One endpoint drilled into: both sides' latency distributions, the matched requests' "
                "gaps and slowest waterfalls, HTTP statuses, differences and calls per minute",
                _json(_ref("EndpointDrill"), "the endpoint, side by side"),
                400,
                404,
                parameters=[
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "description": "the endpoint key as the endpoint rows show it, URL-encoded "
                        "(GET%20%2Fapi%2Forders%2F%3Aid)",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    *FILTER_PARAMS,
                ],
                **api,
            )
        },
        BASELINE_PATH: {
            "post": _operation(
                "Pin the window as it is now as the baseline (kept with --persist, shared on Redis)",
                baseline,
                **api,
            ),
            "get": _operation(
                "The pinned baseline's figures per endpoint and side, and what changed since: each "
                "change's verdict, severity and confidence",
                baseline,
                **api,
            ),
            "delete": _operation("Unpin the baseline", baseline, **api),
        },
        EVENTS_PATH: {"post": ingest},
        STREAM_PATH: {
            "get": _operation(
                "Server-Sent Events: `events` (a JSON array of new events) and `differences` (a JSON "
                "array of the differences now detected) after every check, comments to keep alive",
                {
                    "description": "an endless event stream; each event as the schema has it",
                    "content": {"text/event-stream": {"schema": _ref("StreamEvent")}},
                },
                **api,
            )
        },
        f"{API}/config": {
            "get": _operation("Settings in force and thresholds", _json(_ref("Config"), "settings"), **api)
        },
        METRICS_PATH: {
            "get": _operation(
                "Prometheus exposition: durations per service and endpoint, counters, system gauges",
                {
                    "description": "Prometheus text format, or OpenMetrics when the Accept header asks",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                },
                **api,
            )
        },
    }
    components: dict[str, Any] = {"schemas": _components(limits)}
    if secured:
        components["securitySchemes"] = _security(limits)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Live Execution Monitor",
            "version": "1.0.0",
            "description": "Where what users experience in the browser differs from what the backend does."
            + OTLP_NOTE,
        },
        "paths": paths,
        "components": components,
    }
