"""OTLP/gRPC on --otlp-grpc-port: the official Python SDK's gRPC exporter and the generated
stub of opentelemetry-proto against real monitor processes (one with --workers on Redis),
and the checks the HTTP route makes (credentials, size, load), in gRPC status codes."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import Compression, OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from live_monitor.core.settings import check_settings, defaults
from live_monitor.web.otlp_grpc import OtlpGrpcServer
from tests.helpers import (
    MonitorProcess,
    free_port,
    listening_ports,
    proto_request,
    proto_span,
    run_monitor,
    wait_for,
    worker_pids,
)

TOKEN = "grpc-sekrit"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUTH_METADATA = (("authorization", f"Bearer {TOKEN}"),)
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def monitor() -> Iterator[tuple[MonitorProcess, int]]:
    """One monitor with a token, a 64 KiB body cap and OTLP/gRPC on a free port."""
    port = free_port()
    flags = ("--no-self-monitor", "--token", TOKEN, "--max-body-bytes", "65536")
    with run_monitor(*flags, "--otlp-grpc-port", str(port)) as server:
        yield server, port


def sdk_export(port: int | None, *paths: str, compression: Compression | None = None, **headers: str) -> None:
    """One SERVER span per path through the SDK's OTLP/gRPC exporter (as opentelemetry-instrument
    sets it up), flushed before returning; port None: configured by OTEL_* variables alone."""
    exporter = (
        OTLPSpanExporter()
        if port is None
        else OTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{port}", insecure=True, compression=compression, headers=headers
        )
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    for path in paths:
        attributes: dict[str, str | int] = {
            "http.request.method": "GET",
            "url.path": path,
            "http.response.status_code": 200,
        }
        with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes=attributes):
            pass
    provider.shutdown()


def stored(server: MonitorProcess, prefix: str) -> list[dict[str, Any]]:
    """The stored events whose action starts with ``prefix``."""
    answer = requests.get(f"{server.api}/data?limit=500", headers=AUTH, timeout=10)
    return [e for e in answer.json()["recent_events"] if e["action"].startswith(prefix)]


def status(server: MonitorProcess, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{server.api}/status", headers=headers, timeout=10).json()
    return answer


@contextlib.contextmanager
def stub(port: int) -> Iterator[trace_service_pb2_grpc.TraceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield trace_service_pb2_grpc.TraceServiceStub(channel)


def export_code(port: int, request: Any, **options: Any) -> grpc.StatusCode:
    """The status code of one Export call made with the generated stub."""
    with stub(port) as client:
        try:
            client.Export(request, timeout=10, **options)
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    return grpc.StatusCode.OK


def good_request(trace: str = "ab" * 16) -> trace_service_pb2.ExportTraceServiceRequest:
    return trace_service_pb2.ExportTraceServiceRequest.FromString(
        proto_request(proto_span(bytes.fromhex(trace)))
    )


def test_the_sdk_grpc_exporter_gets_its_spans_stored_plain_and_gzip(monitor):
    server, port = monitor
    sdk_export(port, "/api/grpc-plain/1", "/api/grpc-plain/2", authorization=f"Bearer {TOKEN}")
    sdk_export(port, "/api/grpc-gzip/7", compression=Compression.Gzip, authorization=f"Bearer {TOKEN}")
    plain, gzipped = stored(server, "GET /api/grpc-plain/"), stored(server, "GET /api/grpc-gzip/")
    assert len(plain) == 2 and len(gzipped) == 1
    assert plain[0]["action"] == "GET /api/grpc-plain/:id" and plain[0]["service"] == "backend"
    assert gzipped[0]["details"]["service.name"] == "grpc-api"
    answer = status(server, AUTH)
    assert answer["otlp_grpc"] == {"port": port, "listening": True}
    metrics = requests.get(f"{server.url}/metrics", headers=AUTH, timeout=10).text
    assert 'live_monitor_otlp_spans_total{outcome="accepted"} 3.0' in metrics


def test_the_readmes_environment_variables_configure_the_sdk_exporter(monitor, monkeypatch):
    """What the README tells an opentelemetry-instrument user to set, token header included."""
    server, port = monitor
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://localhost:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    sdk_export(None, "/api/grpc-env/1")
    assert len(stored(server, "GET /api/grpc-env/")) == 1


def test_credentials_come_from_the_call_metadata(monitor):
    _, port = monitor
    assert export_code(port, good_request()) == grpc.StatusCode.UNAUTHENTICATED
    wrong = [("authorization", "Bearer nope")]
    assert export_code(port, good_request(), metadata=wrong) == grpc.StatusCode.UNAUTHENTICATED
    right = [("authorization", f"bearer {TOKEN}")]
    assert export_code(port, good_request(), metadata=right) == grpc.StatusCode.OK


def test_an_export_over_max_body_bytes_is_resource_exhausted_even_gzipped(monitor):
    """--max-body-bytes (64 KiB here) caps the message after decompression, as on /v1/traces."""
    server, port = monitor
    request = good_request()
    big = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="big")
    big.value.string_value = "x" * 100_000  # a gzip of a few hundred bytes
    metadata = [("authorization", f"Bearer {TOKEN}")]
    assert export_code(port, request, metadata=metadata) == grpc.StatusCode.RESOURCE_EXHAUSTED
    gzipped = export_code(port, request, metadata=metadata, compression=grpc.Compression.Gzip)
    assert gzipped == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_invalid_spans_come_back_as_partial_success_and_valid_ones_are_stored(monitor):
    server, port = monitor
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(
        proto_request(proto_span(bytes(16)), proto_span(bytes.fromhex("cd" * 16)))
    )
    with stub(port) as client:
        answer = client.Export(request, metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    assert answer.partial_success.rejected_spans == 1
    assert "traceId must not be all zeros" in answer.partial_success.error_message
    traces = [e["trace_id"] for e in stored(server, "PUT /api/orders/")]
    assert traces.count("cd" * 16) == 1 and "0" * 32 not in traces


def test_a_malformed_message_is_invalid_argument(monitor):
    _, port = monitor
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\x0a\xff\xff\xff", metadata=[("authorization", f"Bearer {TOKEN}")], timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in refused.value.details()


def test_an_overloaded_or_draining_monitor_answers_unavailable(make_app):
    """Load shedding and shutdown refuse gRPC exports as they refuse /v1/traces (503 there)."""
    app = make_app({"ingest_key": "pk"})
    server = OtlpGrpcServer(app, "127.0.0.1", free_port())
    assert server.start()
    try:
        assert export_code(server.port, good_request()) == grpc.StatusCode.OK
        app.config["BACKLOG"] = lambda: 10**6
        assert export_code(server.port, good_request()) == grpc.StatusCode.UNAVAILABLE
        del app.config["BACKLOG"]
        app.extensions["live_monitor"].begin_drain()
        assert export_code(server.port, good_request()) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
    assert not server.listening


def test_the_ingest_key_opens_grpc_export_as_it_opens_ingest(make_app):
    app = make_app({"token": "t", "ingest_key": "pk"})
    server = OtlpGrpcServer(app, "127.0.0.1", free_port())
    assert server.start()
    try:
        assert (
            export_code(server.port, good_request(), metadata=[("x-ingest-key", "pk")]) == grpc.StatusCode.OK
        )
        assert export_code(server.port, good_request(), metadata=[("x-ingest-key", "no")]) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    finally:
        server.stop()
    assert app.extensions["live_monitor.otlp"].counts()["accepted"] == 1


def test_port_0_turns_grpc_off():
    with run_monitor("--otlp-grpc-port", "0") as server:
        assert listening_ports(server.proc.pid) == {server.port}
        assert status(server)["otlp_grpc"] == {"port": 0, "listening": False}


def test_a_taken_grpc_port_leaves_http_serving_with_one_warning():
    """A local collector already on the port: the monitor still starts, says so once, shows it."""
    with socket.create_server(("127.0.0.1", 0)) as collector:
        port = collector.getsockname()[1]
        with run_monitor("--otlp-grpc-port", str(port)) as server:
            assert status(server)["otlp_grpc"] == {"port": port, "listening": False}
            server.post_events([{"service": "backend", "component": "http", "action": "GET /x"}])
        warnings = [line for line in server.output if "--otlp-grpc-port" in line]
        assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0] and "taken" in warnings[0]


def test_the_grpc_port_must_differ_from_the_http_port():
    settings = {**defaults(), "port": 4317}
    assert "--otlp-grpc-port must differ from --port" in (check_settings(settings) or "")


def test_every_worker_serves_the_grpc_port_and_each_span_is_stored_once(redis_server):
    port = free_port()
    flags = (
        "--no-self-monitor",
        "--store",
        redis_server.url,
        "--workers",
        "2",
        "--otlp-grpc-port",
        str(port),
    )
    with run_monitor(*flags) as server:
        children = worker_pids(server)
        assert len(children) == 2
        # each worker binds the port itself (the parent holds it bound, never listening),
        # the second perhaps a moment after the first answered
        assert wait_for(lambda: all(port in listening_ports(pid) for pid in children), timeout=20)
        for i in range(6):  # a new exporter, so a new connection, which the kernel may give either worker
            sdk_export(port, f"/api/workers/{i}")
        assert len(stored(server, "GET /api/workers/")) == 6
        assert status(server)["backend_events"] == 6
    assert not [line for line in server.output if "warning" in line.lower()]


def test_a_taken_grpc_port_with_workers_gives_one_warning_and_every_worker_says_so(redis_server):
    with socket.create_server(("127.0.0.1", 0)) as collector:
        port = collector.getsockname()[1]
        flags = ("--store", redis_server.url, "--workers", "2", "--otlp-grpc-port", str(port))
        with run_monitor(*flags) as server:
            for _ in range(4):  # a new connection each time, to either worker
                assert status(server)["otlp_grpc"] == {"port": port, "listening": False}
        assert len([line for line in server.output if "--otlp-grpc-port" in line]) == 1


def test_a_store_outage_answers_unavailable_so_the_exporter_retries(redis_server, make_app):
    app = make_app({"store": redis_server.url})
    server = OtlpGrpcServer(app, "127.0.0.1", free_port())
    assert server.start()
    try:
        assert export_code(server.port, good_request()) == grpc.StatusCode.OK
        redis_server.stop()
        assert export_code(server.port, good_request()) == grpc.StatusCode.UNAVAILABLE
        redis_server.start()  # back, the next export is stored (and the app can be stopped)
        assert export_code(server.port, good_request()) == grpc.StatusCode.OK
    finally:
        server.stop()


def test_the_sdk_grpc_log_exporter_gets_its_records_stored(monitor):
    """Logs take the same port as traces, as opentelemetry-instrument sends them."""
    server, port = monitor
    exporter = OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True, headers=AUTH_METADATA)
    logs = LoggerProvider(resource=Resource.create({"service.name": "grpc-logs"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("tests.grpc-logs")
    logger.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=logs)
    logger.addHandler(handler)
    try:
        logger.warning("paid", extra={"component": "grpc-checkout", "action": "pay", "duration_ms": 7.5})
    finally:
        logger.removeHandler(handler)
        logs.shutdown()
    (event,) = [e for e in stored(server, "pay") if e["component"] == "grpc-checkout"]
    assert (event["service"], event["duration_ms"], event["details"]["message"]) == ("backend", 7.5, "paid")
    assert status(server, AUTH)["otlp"]["logs"]["accepted"] >= 1


def test_a_refused_grpc_export_is_counted_by_reason_like_an_http_one(monitor):
    server, port = monitor
    before = status(server, AUTH)["otlp"]["traces"]["refused"].get("unauthorized", 0)
    assert export_code(port, good_request()) == grpc.StatusCode.UNAUTHENTICATED
    assert status(server, AUTH)["otlp"]["traces"]["refused"]["unauthorized"] == before + 1
