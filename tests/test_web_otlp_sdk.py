"""The official OpenTelemetry Python SDK's exporters against a monitor installed from
requirements.txt alone and started by ``python run_live_monitor.py``: protobuf (the default
exporter, traces and logs) and JSON (the official JSON encoder), gzip or not.

The monitor is shared by the session (``bare_monitor``): each test names its own OTel service
and checks only the events of that service.
"""

from __future__ import annotations

import gzip
import logging
import uuid

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.json.common import _log_encoder as json_logs
from opentelemetry.exporter.otlp.json.common import trace_encoder as json_traces
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.helpers import events_of, proto_request, proto_span

SPANS = 25


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_spans(provider: TracerProvider) -> dict[str, tuple[str, str]]:
    """SPANS SERVER spans (every third a 500), one INTERNAL span; {action: (trace_id, status)}."""
    tracer = provider.get_tracer("tests")
    expected = {}
    for i in range(SPANS):
        attrs = {"http.request.method": "GET", "url.path": f"/api/items/{i}/x{i}"}
        with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes=attrs) as server:
            with tracer.start_as_current_span("SELECT items"):
                pass
            failed = i % 3 == 0
            server.set_attribute("http.response.status_code", 500 if failed else 200)
            if failed:
                server.set_status(StatusCode.ERROR)
        trace_id = format(server.get_span_context().trace_id, "032x")
        expected[f"GET /api/items/:id/x{i}"] = (trace_id, "error" if failed else "success")
    return expected


def stored(bare_monitor, service) -> dict[str, tuple[str, str]]:
    return {e["action"]: (e["trace_id"], e["status"]) for e in events_of(bare_monitor, service)}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_the_default_protobuf_trace_exporter_gets_every_span_stored(bare_monitor, monkeypatch, compression):
    # what the README tells a user to set: the base URL; the SDK appends /v1/traces
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", bare_monitor.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    service = unique("sdk-proto")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(timeout=10), max_export_batch_size=10))
    try:
        expected = make_spans(provider)
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()
    assert stored(bare_monitor, service) == expected


def test_the_sdk_log_exporter_turns_records_into_events(bare_monitor, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", bare_monitor.url)  # the SDK appends /v1/logs
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    service = unique("sdk-logs")
    resource = Resource.create({"service.name": service})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(timeout=10)))
    tracer = TracerProvider(resource=resource).get_tracer("tests")
    logger = logging.getLogger(f"tests.{service}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logs)
    logger.addHandler(handler)
    try:
        logger.info("paid", extra={"component": "checkout", "action": "pay", "duration_ms": 42.5})
        logger.warning(
            "card declined", extra={"component": "checkout", "action": "refund", "status": "error"}
        )
        logger.info("fine", extra={"component": "cart", "action": "add", "service": "frontend"})
        with tracer.start_as_current_span("GET /api/pay", kind=SpanKind.SERVER) as span:
            logger.error("payment backend down")  # no component: an error in a trace
            logger.info("retrying")  # skipped: the span stands for the request
        logger.error("an error outside any trace")  # skipped
        assert logs.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        logs.shutdown()

    events = {(e["component"], e["action"]): e for e in events_of(bare_monitor, service)}
    assert set(events) == {("checkout", "pay"), ("checkout", "refund"), ("cart", "add"), ("log", "ERROR")}
    pay, refund = events["checkout", "pay"], events["checkout", "refund"]
    assert (pay["service"], pay["status"], pay["duration_ms"]) == ("backend", "success", 42.5)
    assert (pay["details"]["message"], pay["details"]["level"]) == ("paid", "INFO")
    assert (refund["status"], events["cart", "add"]["service"]) == ("error", "frontend")
    error = events["log", "ERROR"]
    assert (error["status"], error["details"]["message"]) == ("error", "payment backend down")
    assert error["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert error["span_id"] == format(span.get_span_context().span_id, "016x")


@pytest.mark.parametrize("compressed", [False, True])
def test_json_from_the_official_encoder_is_stored(bare_monitor, compressed):
    """What opentelemetry-exporter-otlp-json-http sends: its encoder's JSON, as application/json."""
    service = unique("sdk-json")
    resource = Resource.create({"service.name": service})
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    expected = make_spans(provider)
    records = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(records))
    handler = LoggingHandler(logger_provider=logs)
    handler.emit(
        logging.makeLogRecord({"msg": "paid", "levelno": 20, "component": "checkout", "action": "pay"})
    )

    for path, body in (
        ("/v1/traces", json_traces.encode_spans(spans.get_finished_spans()).to_json()),
        ("/v1/logs", json_logs.encode_logs(records.get_finished_logs()).to_json()),
    ):
        data, headers = body.encode(), {"Content-Type": "application/json"}
        if compressed:
            data, headers["Content-Encoding"] = gzip.compress(data), "gzip"
        answer = requests.post(f"{bare_monitor.url}{path}", data=data, headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json() == {}, answer.text
    stored_events = stored(bare_monitor, service)
    assert stored_events.pop("pay")[1] == "success"
    assert stored_events == expected


def test_partial_success_in_protobuf_from_a_default_install(bare_monitor):
    service_spans = [proto_span(bytes.fromhex("5b8efff798038103d269b633813fc60c")), proto_span(b"\x01")]
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    body = gzip.compress(proto_request(*service_spans))
    answer = requests.post(f"{bare_monitor.url}/v1/traces", data=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/x-protobuf"
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1 and "traceId" in partial.error_message


def test_a_refusal_from_a_default_install_is_a_google_rpc_status(bare_monitor):
    """The default install has no googleapis-common-protos: the Status body is its own."""
    headers = {"Content-Type": "application/x-protobuf"}
    answer = requests.post(f"{bare_monitor.url}/v1/logs", data=b"\xff\xff", headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(answer.content)
    assert (status.code, status.message) == (3, "malformed protobuf: not an ExportLogsServiceRequest")
    refused = requests.get(f"{bare_monitor.api}/status", timeout=10).json()["otlp"]["logs"]["refused"]
    assert refused["malformed"] >= 1
