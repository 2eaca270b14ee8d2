"""Hostile values in OTLP spans: each span stands or falls alone, and no value is a 500.

A value that cannot become part of an event (a time past the events' year-3000 bound, a
negative time) rejects its span by name in ``partialSuccess`` while its neighbours are stored;
a value that is merely unreadable (an HTTP status of ``"OK"``, a method of ``true``) is
ignored, the span kept.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from live_monitor.web import otlp as otlp_ingest
from tests.helpers import (
    API,
    CLIENT,
    KEY,
    SERVER,
    START_NS,
    TRACE,
    attr,
    export,
    post,
    proto_request,
    proto_span,
    recent,
    span,
    span_counts,
)

HUGE = "1" + "0" * 400
YEAR_3000_NS = 32_503_680_000 * 10**9  # 3000-01-01T00:00:00Z, the first instant events refuse
OUT_OF_RANGE = "is out of range (must be before 3000-01-01 UTC)"
GOOD_ATTRS = {"http.request.method": "GET", "url.path": "/api/orders/1"}


def bad_span(attributes=(), **fields):
    """A SERVER span on GET /api/bad, with raw OTLP ``attributes`` added and ``fields`` replaced."""
    body = span(SERVER, {"http.request.method": "GET", "url.path": "/api/bad"}, span_id="00f067aa0ba902b7")
    body["attributes"] += list(attributes)
    body.update(fields)
    return body


def url_span(name, url):
    """A span whose only route source is attribute ``name`` = ``url``."""
    return {**bad_span(), "attributes": [attr("http.request.method", "GET"), attr(name, url)]}


def status_span(value, name="http.response.status_code", **fields):
    return bad_span([{"key": name, "value": value}], **fields)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (bad_span(startTimeUnixNano=HUGE, endTimeUnixNano=HUGE + "0"), f"startTimeUnixNano {OUT_OF_RANGE}"),
        (bad_span(endTimeUnixNano=HUGE), f"endTimeUnixNano {OUT_OF_RANGE}"),
        (bad_span(endTimeUnixNano=str(253_402_300_800 * 10**9)), f"endTimeUnixNano {OUT_OF_RANGE}"),
        (bad_span(endTimeUnixNano=str(YEAR_3000_NS)), f"endTimeUnixNano {OUT_OF_RANGE}"),
        (
            bad_span(startTimeUnixNano=str(YEAR_3000_NS), endTimeUnixNano=str(YEAR_3000_NS + 10**6)),
            f"startTimeUnixNano {OUT_OF_RANGE}",
        ),
        (bad_span(startTimeUnixNano="-5"), "startTimeUnixNano must not be negative"),
        (bad_span(endTimeUnixNano=str(START_NS + 10**17)), "the duration is too long"),  # 3 years,
    ],
)
def test_a_span_with_a_value_that_cannot_convert_is_rejected_and_its_neighbours_kept(make_app, bad, reason):
    client = make_app().test_client()
    good = span(SERVER, GOOD_ATTRS)
    response = post(client, export(good, bad, {**good, "spanId": "1111111111111111"}))
    assert response.status_code == 200
    assert response.json["partialSuccess"]["rejectedSpans"] == 1
    assert reason in response.json["partialSuccess"]["errorMessage"]
    assert [e["action"] for e in recent(client)] == [KEY, KEY]
    status = client.get(f"{API}/status").json
    assert (status["accepted"], status["rejected"]) == (2, 1)
    assert f"otlp: {reason}" in "".join(status["rejected_by_reason"])


def test_a_span_just_before_the_year_3000_is_stored(make_app):
    client = make_app().test_client()
    start = YEAR_3000_NS - 86_400 * 10**9  # 2999-12-31T00:00:00Z
    body = export(bad_span(startTimeUnixNano=str(start), endTimeUnixNano=str(start + 10**6)))
    assert post(client, body).json == {}
    assert recent(client)[0]["timestamp"].startswith("2999-12-31T00:00:00")


@pytest.mark.parametrize("name", ["url.full", "http.url", "url.path", "http.target", "http.route"])
def test_a_url_with_a_host_urlsplit_refuses_keeps_its_path_as_the_browser_does(make_app, name):
    client = make_app().test_client()
    assert post(client, export(url_span(name, "http://[::1/api/orders/7"))).status_code == 200
    assert [e["action"] for e in recent(client)] == ["GET /api/orders/:id"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"intValue": "404"}, 404),
        ({"intValue": 404}, 404),
        ({"doubleValue": 503.0}, 503),
        ({"stringValue": "201"}, 201),
    ],
)
def test_a_status_code_sent_as_any_number_or_a_numeric_string_is_read(make_app, value, expected):
    client = make_app().test_client()
    assert post(client, export(status_span(value))).json == {}
    assert recent(client)[0]["details"]["http_status"] == expected


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"intValue": "0"}, "http.response.status_code"),
        ({"intValue": 0}, "http.response.status_code"),
        ({"doubleValue": 0.0}, "http.response.status_code"),
        ({"intValue": "0"}, "http.status_code"),
    ],
)
def test_a_client_call_with_status_0_got_no_response_and_is_stored_as_an_error(make_app, value, name):
    """The browser instrumentations send status 0 for a network or CORS error: a call that got no answer."""
    client = make_app().test_client()
    call = {**status_span(value, name), "kind": CLIENT}
    assert post(client, export(call, browser=True)).json == {}
    [event] = recent(client)
    assert (event["service"], event["action"], event["status"]) == ("frontend", "GET /api/bad", "error")
    assert event["details"]["http_status"] == 0


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ({"doubleValue": "Infinity"}, "http.response.status_code"),
        ({"doubleValue": "-Infinity"}, "http.response.status_code"),
        ({"doubleValue": "NaN"}, "http.response.status_code"),
        ({"doubleValue": 1e308}, "http.response.status_code"),
        ({"doubleValue": 200.5}, "http.response.status_code"),
        ({"intValue": "99999999999999999999"}, "http.response.status_code"),
        ({"intValue": "-1"}, "http.response.status_code"),
        ({"intValue": "9" * 5000}, "http.response.status_code"),
        ({"intValue": "abc"}, "http.response.status_code"),
        ({"doubleValue": [200]}, "http.response.status_code"),
        ({"stringValue": "OK"}, "http.response.status_code"),
        ({"stringValue": "²00"}, "http.response.status_code"),
        ({"boolValue": True}, "http.response.status_code"),
        ({"intValue": "42"}, "http.response.status_code"),
        ({"doubleValue": "Infinity"}, "http.status_code"),
    ],
)
def test_an_unreadable_status_code_is_ignored_and_the_span_kept(make_app, value, name):
    """Such a span is stored without http_status, its outcome read from the span status alone."""
    client = make_app().test_client()
    plain = status_span(value, name)
    failed = status_span(value, name, spanId="1111111111111111", status={"code": 2})
    response = post(client, export(plain, failed))
    assert response.status_code == 200 and response.json == {}
    events = {e["span_id"]: e for e in recent(client)}
    assert events.keys() == {"00f067aa0ba902b7", "1111111111111111"}
    assert events["00f067aa0ba902b7"]["status"] == "success"
    assert events["1111111111111111"]["status"] == "error"
    assert all(e["details"].get("http_status") is None for e in events.values())
    assert span_counts(client) == {"accepted": 2, "skipped": 0, "rejected": 0}


def test_an_unreadable_status_code_gives_way_to_a_readable_old_one(make_app):
    client = make_app().test_client()
    both = bad_span(
        [
            {"key": "http.response.status_code", "value": {"stringValue": "OK"}},
            {"key": "http.status_code", "value": {"intValue": "404"}},
        ]
    )
    assert post(client, export(both)).json == {}
    assert recent(client)[0]["details"]["http_status"] == 404


def test_attribute_values_of_the_wrong_type_are_ignored_not_taken_as_text(make_app):
    client = make_app().test_client()
    path = {"key": "url.path", "value": {"stringValue": "/api/orders/1"}}
    odd_routes = [
        {"key": "http.request.method", "value": {"stringValue": "GET"}},
        {"key": "url.path", "value": {"arrayValue": {"values": [{"stringValue": "/a"}]}}},
        {"key": "http.route", "value": {"kvlistValue": {"values": []}}},
        {"key": "url.full", "value": {"bytesValue": "aGVsbG8="}},
        {"key": "http.target", "value": {"intValue": "9" * 5000}},
    ]
    spans = [
        {**bad_span(), "attributes": [{"key": "http.request.method", "value": {"boolValue": "GET"}}, path]},
        {**bad_span(), "attributes": [{"key": "http.method", "value": {"stringValue": 5}}, path]},
        {**bad_span(), "attributes": odd_routes},
        span(CLIENT, GOOD_ATTRS),
    ]
    response = post(client, export(*spans, browser=True))
    assert response.status_code == 200 and response.json == {}
    assert [(e["service"], e["action"]) for e in recent(client)] == [("frontend", KEY)]
    assert span_counts(client) == {"accepted": 1, "skipped": 3, "rejected": 0}


def test_protobuf_spans_with_bad_values_are_rejected_alone(make_app):
    client = make_app().test_client()
    infinite = proto_span(bytes.fromhex(TRACE))
    infinite.span_id = bytes.fromhex("1111111111111111")
    infinite.attributes[2].value.double_value = float("inf")
    bad_url = proto_span(bytes.fromhex(TRACE), kind=trace_pb2.Span.SpanKind.SPAN_KIND_CLIENT)
    bad_url.attributes[1].key = "url.full"
    bad_url.attributes[1].value.string_value = "http://[::1/x"
    bad_id = proto_span(bytes.fromhex(TRACE))
    bad_id.span_id = b"\x01\x02\x03"
    body = proto_request(proto_span(bytes.fromhex(TRACE)), infinite, bad_url, bad_id)
    response = post(client, body, **{"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    answer = trace_service_pb2.ExportTraceServiceResponse.FromString(response.get_data())
    assert answer.partial_success.rejected_spans == 1
    assert "spanId must be 16 hex characters" in answer.partial_success.error_message
    # the infinite status is ignored; the url.full with a broken host is keyed by its path
    stored = {(e["action"], e["span_id"], e["details"]["http_status"]) for e in recent(client)}
    assert stored == {
        ("PUT /api/orders/:id", "eee19b7ec3c1b174", 502),
        ("PUT /api/orders/:id", "1111111111111111", None),
        ("PUT /x", "eee19b7ec3c1b174", 502),
    }


TRICKY: list[str | float]
TRICKY = ["", "Infinity", "-Infinity", "NaN", "1" + "0" * 400, "-5", "404", "0", "http://[::1/x", "²00"]
TRICKY += [1e308, -1, 0]
SCALARS = st.one_of(
    st.sampled_from(TRICKY),
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)
ANY_VALUES = st.one_of(
    st.builds(
        lambda kind, value: {kind: value},
        st.sampled_from(
            ["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"]
        ),
        SCALARS,
    ),
    JSON_VALUES,
)
ATTRIBUTE_KEYS = ["http.request.method", "http.method", "url.path", "http.target", "url.full", "http.url"]
ATTRIBUTE_KEYS += [
    "http.route",
    "http.response.status_code",
    "http.status_code",
    "http.request.method_original",
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["startTimeUnixNano", "endTimeUnixNano", "traceId", "spanId", "kind", "name", "status"]
        ),
        JSON_VALUES,
        max_size=3,
    ),
    attributes=st.lists(st.tuples(st.sampled_from(ATTRIBUTE_KEYS) | SCALARS, ANY_VALUES), max_size=3),
)
def test_no_span_value_breaks_the_export_of_its_neighbours(fields, attributes):
    odd = bad_span([{"key": key, "value": value} for key, value in attributes], **fields)
    batch = otlp_ingest.spans_to_events(export(span(SERVER, GOOD_ATTRS), odd))
    assert batch.events[0].action == KEY
    assert len(batch.events) + batch.skipped + len(batch.rejected) == 2
    for event in batch.events:
        msgspec.json.encode(event)  # what /data and the journal do with a stored event
