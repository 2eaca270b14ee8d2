"""POST /v1/logs in this process: which OTLP log records become events, and how."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from live_monitor.web.otlp import OtlpError, logs_to_events
from tests.helpers import START_NS, TRACE, log_export, log_record, otlp_status, post_logs, recent
from tests.test_web_otlp_values import ANY_VALUES, JSON_VALUES, SCALARS

CHECKOUT = {"component": "checkout", "action": "pay"}
SPAN = "eee19b7ec3c1b174"


def test_a_record_with_component_and_action_becomes_an_event(make_app):
    client = make_app().test_client()
    attrs = {**CHECKOUT, "duration_ms": 42.5, "order_id": 7}
    record = log_record(attrs, body="paid", trace=TRACE, span_id=SPAN, severityText="INFO")
    response = post_logs(client, log_export(record))
    assert response.status_code == 200 and response.json == {}
    (event,) = recent(client)
    assert (event["service"], event["component"], event["action"]) == ("backend", "checkout", "pay")
    assert (event["status"], event["duration_ms"]) == ("success", 42.5)
    assert (event["trace_id"], event["span_id"]) == (TRACE, SPAN)
    assert event["timestamp"].startswith("2027-01-15T08:00:00.123")
    assert event["details"] == {"message": "paid", "level": "INFO", "order_id": 7, "service.name": "shop-api"}


@pytest.mark.parametrize(
    ("attrs", "severity", "expected"),
    [
        ({}, 9, "success"),
        ({}, 17, "error"),  # ERROR
        ({}, 21, "error"),  # FATAL
        ({"status": "error"}, 9, "error"),
        ({"status": "success"}, 18, "error"),  # the severity wins
        ({}, "SEVERITY_NUMBER_ERROR2", "error"),  # the enum's name, as protobuf's JSON mapping has it
        ({}, "SEVERITY_NUMBER_WARN", "success"),
    ],
)
def test_an_error_severity_or_a_status_attribute_marks_an_error(make_app, attrs, severity, expected):
    client = make_app().test_client()
    assert (
        post_logs(client, log_export(log_record({**CHECKOUT, **attrs}, severity=severity))).status_code == 200
    )
    assert recent(client)[0]["status"] == expected


@pytest.mark.parametrize(
    ("service_attr", "language", "expected"),
    [
        (None, "python", "backend"),
        (None, "webjs", "frontend"),
        ("frontend", "python", "frontend"),
        ("backend", "webjs", "backend"),
        ("billing", "python", "backend"),  # not a side: the resource decides
    ],
)
def test_the_side_comes_from_a_service_attribute_else_the_sdk_language(
    make_app, service_attr, language, expected
):
    client = make_app().test_client()
    attrs = {**CHECKOUT, **({"service": service_attr} if service_attr else {})}
    assert post_logs(client, log_export(log_record(attrs), language=language)).status_code == 200
    assert recent(client)[0]["service"] == expected


def test_an_error_in_a_trace_without_component_becomes_a_log_event_and_the_rest_is_skipped(make_app):
    client = make_app().test_client()
    records = [
        log_record({}, severity=17, body="db down", trace=TRACE, span_id=SPAN, severityText="ERROR"),
        log_record({}, severity=9, body="chatter in a trace", trace=TRACE, span_id=SPAN),
        log_record({}, severity=17, body="an error outside any trace"),
        log_record({"component": "checkout"}, severity=9, body="no action"),
    ]
    response = post_logs(client, log_export(*records))
    assert response.status_code == 200 and response.json == {}
    (event,) = recent(client)
    assert (event["service"], event["component"], event["action"]) == ("backend", "log", "ERROR")
    assert (event["status"], event["trace_id"], event["span_id"]) == ("error", TRACE, SPAN)
    assert event["details"]["message"] == "db down"
    assert otlp_status(client)["logs"] == {"accepted": 1, "skipped": 3, "rejected": 0, "refused": {}}


def test_a_record_without_a_time_takes_its_observed_time_else_now(make_app):
    client = make_app().test_client()
    observed = log_record(CHECKOUT, timeUnixNano="0", observedTimeUnixNano=str(START_NS + 10**9))
    assert post_logs(client, log_export(observed)).status_code == 200
    assert recent(client)[0]["timestamp"].startswith("2027-01-15T08:00:01.123")
    del observed["timeUnixNano"], observed["observedTimeUnixNano"]
    assert post_logs(client, log_export(observed)).status_code == 200
    days = sorted(e["timestamp"][:10] for e in recent(client))
    assert days == [datetime.now(UTC).strftime("%Y-%m-%d"), "2027-01-15"]


def test_invalid_records_get_a_partial_success_and_their_neighbours_are_kept(make_app):
    client = make_app().test_client()
    records = [
        log_record(CHECKOUT),
        log_record(CHECKOUT, trace="not-a-trace"),
        log_record({**CHECKOUT, "duration_ms": "slow"}),
        log_record({**CHECKOUT, "duration_ms": -1.0}),
        log_record({"component": "c" * 200, "action": "pay"}),
        "not a record",
    ]
    response = post_logs(client, log_export(*records))
    assert response.status_code == 200
    partial = response.json["partialSuccess"]
    assert partial["rejectedLogRecords"] == 5 and "rejectedSpans" not in partial
    assert partial["errorMessage"].startswith("5 log record(s) rejected")
    for reason in ("traceId", "duration_ms must be a number", "negative", "128 characters", "object"):
        assert reason in partial["errorMessage"]
    assert len(recent(client)) == 1
    assert otlp_status(client)["logs"]["rejected"] == 5


def test_protobuf_and_gzip_logs_are_read_and_answered_in_protobuf(make_app):
    client = make_app().test_client()
    request = logs_service_pb2.ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    good = scope.log_records.add(time_unix_nano=START_NS, severity_number=logs_pb2.SEVERITY_NUMBER_ERROR)
    good.body.string_value = "card declined"
    for key, value in CHECKOUT.items():
        good.attributes.add(key=key).value.string_value = value
    good.trace_id, good.span_id = bytes.fromhex(TRACE), bytes.fromhex(SPAN)
    bad = scope.log_records.add(time_unix_nano=START_NS, trace_id=b"\x01\x02")
    bad.attributes.extend(good.attributes)
    body = gzip.compress(request.SerializeToString())
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    response = post_logs(client, body, **headers)
    assert response.status_code == 200 and response.mimetype == "application/x-protobuf"
    answer = logs_service_pb2.ExportLogsServiceResponse.FromString(response.get_data())
    assert answer.partial_success.rejected_log_records == 1
    assert "traceId" in answer.partial_success.error_message
    (event,) = recent(client)
    assert (event["action"], event["status"], event["trace_id"]) == ("pay", "error", TRACE)
    assert event["details"]["message"] == "card declined" and event["details"]["level"] == "ERROR"


def test_a_gzip_json_export_is_read(make_app):
    client = make_app().test_client()
    body = gzip.compress(json.dumps(log_export(log_record(CHECKOUT))).encode())
    assert post_logs(client, body, **{"Content-Encoding": "gzip"}).json == {}
    assert recent(client)[0]["action"] == "pay"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"resourceLogs": {}}', b'{"resourceLogs": [{"scopeLogs": [{"logRecords": 1}]}]}'],
)
def test_a_malformed_logs_body_is_a_400(make_app, body):
    client = make_app().test_client()
    response = post_logs(client, body)
    assert response.status_code == 400 and response.json["code"] == 3 and response.json["message"]
    assert recent(client) == []
    if body != b"{not json":  # the converter alone says the same to the gRPC receiver
        with pytest.raises(OtlpError) as refused:
            logs_to_events(json.loads(body))
        assert refused.value.status == 400


LOG_KEYS = ["component", "action", "service", "duration_ms", "status", "trace_id"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "timeUnixNano",
                "observedTimeUnixNano",
                "traceId",
                "spanId",
                "severityNumber",
                "severityText",
                "body",
            ]
        ),
        JSON_VALUES,
        max_size=3,
    ),
    attributes=st.lists(st.tuples(st.sampled_from(LOG_KEYS) | SCALARS, ANY_VALUES), max_size=4),
)
def test_no_log_record_value_breaks_the_export_of_its_neighbours(fields, attributes):
    odd = {**log_record(CHECKOUT), **fields, "attributes": [{"key": k, "value": v} for k, v in attributes]}
    batch = logs_to_events(log_export(log_record(CHECKOUT), odd))
    assert batch.events[0].action == "pay"
    assert len(batch.events) + batch.skipped + len(batch.rejected) == 2
    for event in batch.events:
        msgspec.json.encode(event)  # what /data and the journal do with a stored event
