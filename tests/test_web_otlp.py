from __future__ import annotations

import gzip
import json
import threading

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from waitress.server import create_server

from tests.helpers import (
    API,
    CLIENT,
    INTERNAL,
    KEY,
    PRODUCER,
    SERVER,
    START_NS,
    TRACE,
    export,
    post,
    proto_request,
    proto_span,
    recent,
    span,
    span_counts,
)


@pytest.fixture
def serve():
    """Serve an app with a real waitress server on a free loopback port; returns its base URL."""
    servers = []

    def start(app):
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.effective_port}"

    yield start
    for server, thread in servers:
        server.close()
        thread.join(5)


def test_server_and_client_spans_become_backend_and_frontend_events(make_app):
    client = make_app().test_client()
    server_span = span(
        SERVER,
        {
            "http.request.method": "GET",
            "url.path": "/api/orders/42",
            "http.route": "/api/orders/{order_id}",
            "http.response.status_code": 200,
        },
        trace=TRACE.upper(),
        name="GET /api/orders/{order_id}",
    )
    client_span = span(
        "SPAN_KIND_CLIENT",
        {"http.request.method": "get", "url.full": "http://localhost:3000/api/orders/42?expand=1"},
        span_id="00f067aa0ba902b7",
        duration_ms=48.25,
    )
    client_span["startTimeUnixNano"] = START_NS  # integers are fine too
    client_span["endTimeUnixNano"] = START_NS + 48_250_000
    for body in (export(server_span), export(client_span, browser=True)):
        response = post(client, body)
        assert response.status_code == 200 and response.json == {}

    events = {e["service"]: e for e in recent(client)}
    backend, frontend = events["backend"], events["frontend"]
    assert (backend["component"], backend["action"], backend["status"]) == ("http", KEY, "success")
    assert backend["duration_ms"] == 12.5
    assert backend["trace_id"] == TRACE and backend["span_id"] == "eee19b7ec3c1b174"
    assert backend["details"] == {
        "http_status": 200,
        "otel_span_name": "GET /api/orders/{order_id}",
        "service.name": "shop-api",
        "route": "/api/orders/{order_id}",
        "url_path": "/api/orders/42",
    }
    assert backend["timestamp"].startswith("2027-01-15T08:00:00.123")
    assert (frontend["component"], frontend["action"], frontend["duration_ms"]) == ("api", KEY, 48.25)
    assert frontend["trace_id"] == TRACE and frontend["span_id"] == "00f067aa0ba902b7"
    assert frontend["details"]["http_status"] is None


def test_old_http_semantic_conventions_work_too(make_app):
    client = make_app().test_client()
    spans = [
        span(
            SERVER, {"http.method": "POST", "http.target": "/api/users/7/cart?x=1", "http.status_code": 201}
        ),
        span(CLIENT, {"http.method": "DELETE", "http.url": "https://shop.test/api/users/7"}),
    ]
    assert post(client, export(*spans, browser=True)).status_code == 200
    actions = {(e["service"], e["action"], e["details"]["http_status"]) for e in recent(client)}
    assert actions == {
        ("backend", "POST /api/users/:id/cart", 201),
        ("frontend", "DELETE /api/users/:id", None),
    }


def test_a_route_template_alone_gives_the_shared_endpoint_key(make_app):
    client = make_app().test_client()
    attrs = {"http.request.method": "GET", "http.route": "/api/orders/<int:order_id>"}
    assert post(client, export(span(SERVER, attrs))).status_code == 200
    assert recent(client)[0]["action"] == KEY


@pytest.mark.parametrize(
    ("status", "http_status", "expected"),
    [
        ({"code": 2, "message": "boom"}, 200, "error"),
        ({"code": "STATUS_CODE_ERROR"}, None, "error"),
        ({}, 503, "error"),
        ({"code": 1}, 404, "success"),
        ({}, 200, "success"),
    ],
)
def test_span_status_error_or_a_5xx_marks_an_error(make_app, status, http_status, expected):
    client = make_app().test_client()
    attrs = {"http.request.method": "GET", "url.path": "/api/orders/1"}
    if http_status is not None:
        attrs["http.response.status_code"] = http_status
    assert post(client, export(span(SERVER, attrs, status=status))).status_code == 200
    assert recent(client)[0]["status"] == expected


def test_spans_that_are_not_http_server_or_client_are_skipped_and_counted(make_app):
    client = make_app().test_client()
    http = {"http.request.method": "GET", "url.path": "/api/orders/1"}
    spans = [
        span(INTERNAL, http),
        span(PRODUCER, http),
        span(SERVER, {"db.system": "sqlite"}),
        span(CLIENT, {"http.request.method": "GET"}),  # no URL or route to key on
        span(SERVER, http),
    ]
    response = post(client, export(*spans))
    assert response.status_code == 200 and response.json == {}
    assert [e["action"] for e in recent(client)] == ["GET /api/orders/:id"]
    assert span_counts(client) == {"accepted": 1, "skipped": 4, "rejected": 0}


def test_invalid_spans_are_rejected_with_a_partial_success_and_the_rest_kept(make_app):
    client = make_app().test_client()
    http = {"http.request.method": "GET", "url.path": "/api/orders/1"}
    spans = [
        span(SERVER, http),
        span(SERVER, http, trace="not-a-trace-id"),
        span(SERVER, http, trace="0" * 32),
        span(CLIENT, http, span_id=None),
        span(CLIENT, http, endTimeUnixNano=str(START_NS - 1)),
        span(CLIENT, {"http.request.method": "GET", "url.path": "/x" * 200}),
    ]
    response = post(client, export(*spans))
    assert response.status_code == 200
    partial = response.json["partialSuccess"]
    assert partial["rejectedSpans"] == 5
    for reason in ("traceId", "all zeros", "spanId is missing", "endTimeUnixNano", "256"):
        assert reason in partial["errorMessage"]
    assert len(recent(client)) == 1
    status = client.get(f"{API}/status").json
    assert status["rejected"] == 5 and status["accepted"] == 1
    assert any(reason.startswith("otlp: traceId") for reason in status["rejected_by_reason"])
    assert span_counts(client) == {"accepted": 1, "skipped": 0, "rejected": 5}


def test_proto3_json_base64_ids_are_read_as_hex(make_app):
    client = make_app().test_client()
    attrs = {"http.request.method": "GET", "url.path": "/api/orders/1"}
    trace_b64 = "W47/95gDgQPSabYzgT/GDA=="  # the bytes of TRACE
    body = export(span(SERVER, attrs, trace=trace_b64, span_id="7uGbfsPBsXQ="))
    assert post(client, body).status_code == 200
    event = recent(client)[0]
    assert (event["trace_id"], event["span_id"]) == (TRACE, "eee19b7ec3c1b174")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"resourceSpans"',
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [{"scopeSpans": 5}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}',
    ],
)
def test_a_malformed_body_is_a_400_with_a_message(make_app, body):
    client = make_app().test_client()
    response = post(client, body)
    assert response.status_code == 400
    assert response.json["code"] == 3 and response.json["message"]
    assert recent(client) == []


def test_an_empty_export_is_accepted(make_app):
    client = make_app().test_client()
    assert post(client, {}).json == {}
    assert post(client, {"resourceSpans": []}).json == {}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_other_content_types_are_a_415(make_app, content_type):
    client = make_app().test_client()
    body = json.dumps(export(span(SERVER, {"http.request.method": "GET", "url.path": "/a"})))
    response = post(client, body.encode(), **{"Content-Type": content_type})
    assert response.status_code == 415 and "application/json" in response.json["message"]


def test_bodies_over_max_body_bytes_are_a_413_even_when_compressed(make_app):
    client = make_app({"max_body_bytes": 4096}).test_client()
    big = export(*[span(SERVER, {"http.request.method": "GET", "url.path": f"/a/{i}"}) for i in range(40)])
    raw = json.dumps(big).encode()
    assert len(raw) > 4096
    assert post(client, raw).status_code == 413
    packed = gzip.compress(raw)
    assert len(packed) < 4096
    response = post(client, packed, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompression" in response.json["message"]
    assert recent(client) == []


def test_a_gzip_body_is_accepted(make_app):
    client = make_app().test_client()
    body = gzip.compress(
        json.dumps(export(span(SERVER, {"http.method": "GET", "http.target": "/a"}))).encode()
    )
    assert post(client, body, **{"Content-Encoding": "gzip"}).json == {}
    assert recent(client)[0]["action"] == "GET /a"


def test_with_a_token_the_sender_needs_the_token_or_the_ingest_key(make_app):
    client = make_app({"token": "s3cret", "ingest_key": "pub-key"}).test_client()
    body = export(span(SERVER, {"http.request.method": "GET", "url.path": "/a"}))
    response = post(client, body)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert post(client, body, Authorization="Bearer wrong").status_code == 401
    assert post(client, body, Authorization="Bearer s3cret").status_code == 200
    assert post(client, body, **{"X-Ingest-Key": "pub-key"}).status_code == 200
    assert client.get("/metrics").status_code == 401
    assert (
        len(client.get(f"{API}/data", headers={"Authorization": "Bearer s3cret"}).json["recent_events"]) == 2
    )


def test_browsers_from_allowed_origins_get_cors_and_others_a_403(make_app):
    client = make_app().test_client()
    body = export(span(CLIENT, {"http.request.method": "GET", "url.full": "http://localhost:8000/a"}))
    preflight = client.options(
        "/v1/traces",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    ok = post(client, body, Origin="http://localhost:3000")
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    refused = post(client, body, Origin="https://evil.example")
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    assert len(recent(client)) == 1


def test_protobuf_exports_are_accepted_and_answered_in_protobuf(make_app):
    client = make_app().test_client()
    body = proto_request(proto_span(bytes.fromhex(TRACE)), proto_span(b"\x01\x02\x03"))
    response = post(client, body, **{"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200 and response.mimetype == "application/x-protobuf"
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.get_data())
    assert answer.partial_success.rejected_spans == 1
    assert "traceId" in answer.partial_success.error_message
    event = recent(client)[0]
    assert (event["action"], event["status"], event["duration_ms"]) == ("PUT /api/orders/:id", "error", 7.0)
    assert event["trace_id"] == TRACE and event["details"]["service.name"] == "proto-api"


def test_malformed_protobuf_is_a_400(make_app):
    client = make_app().test_client()
    response = post(client, b"\xff\xff\xff", **{"Content-Type": "application/x-protobuf"})
    assert response.status_code == 400 and response.mimetype == "application/x-protobuf"
    assert recent(client) == []


def sdk_provider(url, resource=None, **exporter_options):
    attributes = {"service.name": "sdk-shop", **(resource or {})}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=10, **exporter_options)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_opentelemetry_sdk_exports_to_a_running_monitor(make_app, serve, compression):
    """A browser (the web SDK's resource) calls the server, which calls a payment provider: the
    browser's call and the server's request meet on one key; the downstream call is the backend's."""
    app = make_app()
    url = serve(app)
    browser_provider = sdk_provider(url, {"telemetry.sdk.language": "webjs"}, compression=compression)
    server_provider = sdk_provider(url, compression=compression)
    browser_tracer, tracer = browser_provider.get_tracer("tests"), server_provider.get_tracer("tests")
    client_attrs = {"http.request.method": "GET", "url.full": "http://localhost:3000/api/orders/42"}
    with browser_tracer.start_as_current_span(
        "GET", kind=SpanKind.CLIENT, attributes=client_attrs
    ) as browser:
        server_attrs = {
            "http.request.method": "GET",
            "url.path": "/api/orders/42",
            "http.route": "/api/orders/<int:order_id>",
        }
        with tracer.start_as_current_span(
            "GET /api/orders", kind=SpanKind.SERVER, attributes=server_attrs
        ) as srv:
            with tracer.start_as_current_span("SELECT orders"):
                pass
            charge = {"http.request.method": "POST", "url.full": "https://payments.example.com/v1/charges"}
            with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=charge):
                pass
            srv.set_attribute("http.response.status_code", 500)
            srv.set_status(StatusCode.ERROR)
        browser.set_attribute("http.response.status_code", 500)
    try:
        assert browser_provider.force_flush(10_000) and server_provider.force_flush(10_000)
    finally:
        browser_provider.shutdown()
        server_provider.shutdown()

    client = app.test_client()
    events = {(e["service"], e["component"]): e for e in recent(client)}
    trace_id = format(srv.get_span_context().trace_id, "032x")
    for side, otel_span in ((("backend", "http"), srv), (("frontend", "api"), browser)):
        event = events[side]
        assert (event["action"], event["status"]) == (KEY, "error")
        assert event["trace_id"] == trace_id
        assert event["span_id"] == format(otel_span.get_span_context().span_id, "016x")
        assert event["duration_ms"] == pytest.approx(
            (otel_span.end_time - otel_span.start_time) / 1e6, abs=0.001
        )
        assert event["details"]["service.name"] == "sdk-shop"
        assert event["details"]["http_status"] == 500
    outgoing = events["backend", "http-client"]
    assert (outgoing["action"], outgoing["trace_id"]) == ("POST payments.example.com/v1/charges", trace_id)
    assert span_counts(client) == {"accepted": 3, "skipped": 1, "rejected": 0}
    row = next(r for r in client.get(f"{API}/data").json["endpoints"] if r["key"] == KEY)
    assert row["seen_by"] == "both" and row["matched_requests"] == 1  # joined by trace id


def test_the_sdk_exporter_needs_the_token_when_one_is_set(make_app, serve):
    app = make_app({"token": "s3cret"})
    url = serve(app)
    for headers in ({}, {"Authorization": "Bearer s3cret"}):
        provider = TracerProvider(resource=Resource.create({"service.name": "sdk-shop"}))
        exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers, timeout=10)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        attrs = {"http.request.method": "GET", "url.path": "/api/orders/1"}
        with provider.get_tracer("tests").start_as_current_span(
            "GET", kind=SpanKind.SERVER, attributes=attrs
        ):
            pass
        provider.shutdown()
    counts = app.extensions["live_monitor"].store.counts()
    assert counts["totals"] == {"backend": 1, "frontend": 0}
