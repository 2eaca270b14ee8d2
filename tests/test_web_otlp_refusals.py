"""Whole OTLP exports refused: answered as OTLP says, counted by cause, logged once per cause."""

from __future__ import annotations

import logging

import pytest
from google.rpc import status_pb2

from live_monitor.web.otlp import rpc_status
from tests.helpers import (
    SERVER,
    export,
    log_export,
    log_record,
    otlp_status,
    post,
    post_logs,
    refused_counts,
    span,
)

BODY = export(span(SERVER, {"http.request.method": "GET", "url.path": "/a"}))


def test_a_retrying_exporter_is_logged_once_per_cause_and_every_refusal_counted(make_app, caplog):
    client = make_app({"token": "s3cret"}).test_client()
    auth = {"Authorization": "Bearer s3cret"}
    with caplog.at_level(logging.WARNING, logger="live_execution_monitor"):
        for _ in range(5):
            assert post(client, b"x", **{"Content-Type": "text/plain", **auth}).status_code == 415
        for _ in range(3):
            assert (
                post_logs(client, log_export(log_record({"component": "c", "action": "a"}))).status_code
                == 401
            )
        assert post(client, b"{not json", **auth).status_code == 400
    warnings = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 3, warnings
    assert any("traces" in w and "415" in w and "application/x-protobuf" in w for w in warnings)
    assert any("logs" in w and "401" in w and "credentials" in w for w in warnings)
    status = client.get("/api/live-execution/status", headers=auth).json["otlp"]
    assert status["traces"]["refused"] == {"unsupported_media_type": 5, "malformed": 1}
    assert status["logs"]["refused"] == {"unauthorized": 3}
    metrics = client.get("/metrics", headers=auth).get_data(as_text=True)
    assert refused_counts(metrics) == {
        ("traces", "unsupported_media_type"): 5.0,
        ("traces", "malformed"): 1.0,
        ("logs", "unauthorized"): 3.0,
    }


def test_a_refusal_before_the_route_is_answered_and_counted_the_same(make_app):
    client = make_app().test_client()
    headers = {"Content-Type": "application/x-protobuf", "Host": "evil.example"}
    response = client.post("/v1/logs", data=b"", headers=headers)
    assert response.status_code == 403 and response.mimetype == "application/x-protobuf"
    assert "Host" in status_pb2.Status.FromString(response.get_data()).message
    assert otlp_status(client)["logs"]["refused"] == {"forbidden": 1}


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs"])
def test_a_protobuf_refusal_is_a_google_rpc_status(make_app, path):
    client = make_app({"max_body_bytes": 1024}).test_client()
    headers = {"Content-Type": "application/x-protobuf"}
    response = client.post(path, data=b"\x0a" * 2048, headers=headers)
    assert response.status_code == 413 and response.mimetype == "application/x-protobuf"
    status = status_pb2.Status.FromString(response.get_data())
    assert status.code == 8 and "1,024 bytes" in status.message  # RESOURCE_EXHAUSTED


@pytest.mark.parametrize("message", ["", "x", "é" * 200, "y" * 20_000])
def test_the_hand_encoded_status_reads_back_with_googles_own_message(message):
    for code in (1, 3, 16, 300):
        status = status_pb2.Status.FromString(rpc_status(code, message))
        assert (status.code, status.message) == (code, message)


def test_only_unknown_content_types_are_a_415(make_app):
    client = make_app().test_client()
    for content_type, empty in (
        ("application/json", b"{}"),
        ("Application/JSON; charset=utf-8", b"{}"),
        ("application/x-protobuf", b""),
    ):
        assert post(client, empty, **{"Content-Type": content_type}).status_code == 200
    assert post(client, BODY, **{"Content-Type": "application/xml"}).status_code == 415
    assert post(client, b"{}", **{"Content-Encoding": "br"}).status_code == 415
    assert otlp_status(client)["traces"]["refused"] == {"unsupported_media_type": 2}
