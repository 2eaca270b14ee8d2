"""The OpenAPI 3.1 description of the monitor's REST API, served at /api/openapi.json.

The schemas are generated from the types the code uses: the event schema from the model the
validator decodes (``IncomingEvent``: an ``ExecutionEvent`` with every timestamp form clients
may send), the answers of /data and /differences from ``live_monitor.model.results``. So the
description, the validator and the answers cannot drift apart; schemathesis fuzzes the API
from this document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from live_monitor.model.events import IncomingEvent
from live_monitor.model.results import DataAnswer, Difference, DifferencesAnswer
from live_monitor.vocabulary import (
    API,
    EVENTS_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    OTLP_LOGS_PATH,
    OTLP_TRACES_PATH,
    SEVERITIES,
    STATUS_PATH,
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": REF.format(name=name)}


ERROR = _ref("Error")
OBJECT = {"type": "object"}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "bad data",
        401: "missing or wrong credentials",
        403: "host or origin refused",
        413: "body too large",
        415: "not JSON",
        429: "too many requests",
        503: "overloaded or shutting down",
    }
    return {str(code): _json(ERROR, reasons[code]) for code in codes}


def _otlp(summary: str) -> dict[str, Any]:
    """An OTLP/HTTP export path: the JSON encoding is described, protobuf is accepted too."""
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": OBJECT}}},
            "responses": {
                "200": _json(OBJECT, "accepted, or partialSuccess"),
                **_errors(400, 401, 403, 413, 415, 503),
            },
        }
    }


def int_param(name: str, text: str) -> dict[str, Any]:
    """A non-negative integer query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": text,
        "schema": {"type": "integer", "minimum": 0},
    }


@cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document."""
    _, generated = msgspec.json.schema_components(
        [IncomingEvent, Difference, DataAnswer, DifferencesAnswer], ref_template=REF
    )
    # Through JSON, so the document equals the one served (default levels are lists, not tuples).
    components: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(generated))
    # One event schema for both ways, the one a client may send (epoch seconds and zoneless
    # times too): every event the monitor answers with (ISO times) fits it.
    components["ExecutionEvent"] = {**components.pop("IncomingEvent"), "title": "ExecutionEvent"}
    event = _ref("ExecutionEvent")
    components.update(
        {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Batch": {
                "oneOf": [
                    {"type": "array", "items": event},
                    {
                        "type": "object",
                        "required": ["events"],
                        "properties": {"events": {"type": "array", "items": event}},
                    },
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
                        "items": {
                            "type": "object",
                            "properties": {"index": {"type": "integer"}, "error": {"type": "string"}},
                        },
                    },
                },
            },
        }
    )
    control = {"200": _json(OBJECT, "the monitoring state"), **_errors(401, 403)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Live Execution Monitor",
            "version": "1.0.0",
            "description": "Where what users experience in the browser differs from what the backend does.",
        },
        "paths": {
            HEALTH_PATH: {"get": {"summary": "Liveness", "responses": {"200": _json(OBJECT, "alive")}}},
            f"{API}/start": {"post": {"summary": "Start monitoring", "responses": control}},
            f"{API}/stop": {"post": {"summary": "Stop monitoring; stored data stays", "responses": control}},
            STATUS_PATH: {"get": {"summary": "State, uptime and ingest counters", "responses": control}},
            f"{API}/data": {
                "get": {
                    "summary": "Summaries, comparison, endpoints, differences, system samples and recent events",
                    "parameters": [
                        int_param("limit", "recent events to return"),
                        int_param("history", "system and activity samples to return"),
                        {
                            "name": "include_self",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean"},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("DataAnswer"), "live data"),
                        **_errors(400, 401, 403),
                    },
                }
            },
            f"{API}/differences": {
                "get": {
                    "summary": "The differences now detected",
                    "parameters": [
                        {
                            "name": "min_severity",
                            "in": "query",
                            "required": False,
                            "schema": {"enum": list(SEVERITIES)},
                        }
                    ],
                    "responses": {
                        "200": _json(_ref("DifferencesAnswer"), "differences, most severe first"),
                        **_errors(400, 401, 403),
                    },
                }
            },
            EVENTS_PATH: {
                "post": {
                    "summary": "Ingest a batch of events; valid ones are kept, invalid ones listed",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Batch")}},
                    },
                    "responses": {
                        "200": _json(_ref("IngestResult"), "the batch was read"),
                        **_errors(400, 401, 403, 413, 415, 429, 503),
                    },
                }
            },
            f"{API}/config": {"get": {"summary": "Settings in force and thresholds", "responses": control}},
            METRICS_PATH: {
                "get": {
                    "summary": "Prometheus exposition: durations per service and endpoint, counters, system gauges",
                    "responses": {"200": {"description": "text exposition format"}, **_errors(401)},
                }
            },
            OTLP_TRACES_PATH: _otlp(
                "OTLP/HTTP traces (protobuf or JSON, gzip or not): SERVER and CLIENT spans"
            ),
            OTLP_LOGS_PATH: _otlp(
                "OTLP/HTTP logs (protobuf or JSON, gzip or not): records with component/action"
            ),
        },
        "components": {"schemas": components},
    }
