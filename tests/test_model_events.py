from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from live_monitor.model.events import (
    MAX_DETAILS_BYTES,
    MAX_DETAILS_DEPTH,
    BatchError,
    ExecutionEvent,
    convert_event,
    decode_batch,
    prepare_events,
    scrub_details,
)
from tests.helpers import ev


def test_readme_constructor_keeps_its_fields_and_reads_naive_iso_as_utc():
    event = ExecutionEvent(
        timestamp="2026-01-02T03:04:05",
        service="backend",
        component="custom_component",
        action="custom_action",
        duration_ms=100.0,
        status="success",
        details={"custom_metric": "value"},
    )
    assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    as_json = event.to_dict()
    assert as_json["timestamp"] == "2026-01-02T03:04:05Z"
    assert as_json["details"] == {"custom_metric": "value"}
    assert as_json["duration_ms"] == 100.0


def test_epoch_seconds_and_zoned_timestamps_are_accepted():
    result = decode_batch(
        json.dumps([ev(timestamp=1_700_000_000), ev(timestamp="2026-01-01T01:00:00+01:00")]).encode()
    )
    assert result.rejected == 0
    assert result.events[0].epoch == 1_700_000_000
    assert result.events[1].timestamp == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_both_batch_shapes_decode():
    events = [ev(), ev(service="backend", component="http")]
    assert decode_batch(json.dumps(events).encode()).accepted == 2
    assert decode_batch(json.dumps({"events": events}).encode()).accepted == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"duration_ms": -1}, "events[1].duration_ms: must be >= 0"),
        ({"duration_ms": "fast"}, "events[1].duration_ms: must be a number or null, got str"),
        ({"service": "database"}, "events[1].service: invalid value 'database'"),
        ({"status": "ok"}, "events[1].status: invalid value 'ok'"),
        ({"component": ""}, "events[1].component: must not be empty"),
        ({"component": "c" * 129}, "events[1].component: must be at most 128 characters"),
        ({"action": "a" * 257}, "events[1].action: must be at most 256 characters"),
        ({"trace_id": "ABC"}, "events[1].trace_id: must be 32 lowercase hex characters"),
        ({"trace_id": "Z" * 32}, "events[1].trace_id: must be 32 lowercase hex characters"),
        ({"span_id": "0123456789ABCDEF"}, "events[1].span_id: must be 16 lowercase hex characters"),
        ({"span_id": "0" * 15}, "events[1].span_id: must be 16 lowercase hex characters"),
        ({"timestamp": "yesterday"}, "events[1].timestamp: must be ISO 8601 or epoch seconds"),
        (
            {"details": {"blob": "x" * MAX_DETAILS_BYTES}},
            "events[1].details: must be at most 8192 bytes as JSON",
        ),
        ({"details": [1, 2]}, "events[1].details: must be object, got array"),
    ],
)
def test_a_mixed_batch_keeps_valid_events_and_names_index_field_and_rule(bad, message):
    result = decode_batch(json.dumps([ev(action="GET /first"), ev(**bad), ev(action="GET /third")]).encode())
    assert [e.action for e in result.events] == ["GET /first", "GET /third"]
    assert result.errors == [{"index": 1, "error": message}]


def test_a_missing_required_field_is_named():
    body = json.dumps([{"service": "backend", "component": "http"}]).encode()
    assert decode_batch(body).errors == [{"index": 0, "error": "events[0].action: required"}]


def test_an_item_that_is_not_an_object_is_rejected_alone():
    result = decode_batch(json.dumps([ev(), 5, "x"]).encode())
    assert result.accepted == 1
    assert [e["index"] for e in result.errors] == [1, 2]


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"{not json", b"[1, 2", b'{"events": 5}', b'{"other": []}', b"42", b'"text"'],
)
def test_a_body_that_is_no_batch_raises_batch_error(body):
    with pytest.raises(BatchError):
        decode_batch(body)


def test_events_beyond_the_batch_limit_are_rejected_with_a_reason():
    result = decode_batch(json.dumps([ev()] * 5).encode(), max_events=3)
    assert result.accepted == 3
    assert [e["index"] for e in result.errors] == [3, 4]
    assert "more than 3 events" in result.errors[0]["error"]


def test_untimed_events_are_allowed():
    (event,) = decode_batch(
        json.dumps([ev(component="click", action="button#buy", duration_ms=None)]).encode()
    ).events
    assert event.duration_ms is None


def test_secrets_in_details_are_filtered():
    details = {
        "password": "hunter2",
        "Authorization": "Bearer abc",
        "nested": {"api_key": "k", "ok": "fine"},
        "note": "paid with 4111 1111 1111 1111 today",
        "order": "order number 1234567890123",
    }
    clean = scrub_details(details)
    assert clean["password"] == "[Filtered]"
    assert clean["Authorization"] == "[Filtered]"
    assert clean["nested"] == {"api_key": "[Filtered]", "ok": "fine"}
    assert clean["note"] == "paid with [Filtered] today"
    assert clean["order"] == "order number 1234567890123"  # fails the Luhn check: not a card


def test_decoded_events_are_scrubbed_before_they_are_kept():
    body = json.dumps(
        [
            ev(details={"token": "t", "http_status": 200}),
            ev(details={"note": "card 4111-1111-1111-1111", "route": "/api/orders/:id"}),
            ev(details={"deep": [{"session": "s"}], "http_status": 500}),
            ev(details={"http_status": 200, "route": "/api/orders/:id"}),
            ev(details={"http_status": 201, "route": "/api/orders/:id"}),
        ]
    ).encode()
    events = decode_batch(body).events
    prepare_events(events)
    assert [e.details for e in events] == [
        {"token": "[Filtered]", "http_status": 200},
        {"note": "card [Filtered]", "route": "/api/orders/:id"},
        {"deep": [{"session": "[Filtered]"}], "http_status": 500},
        {"http_status": 200, "route": "/api/orders/:id"},
        {"http_status": 201, "route": "/api/orders/:id"},
    ]
    # Repeated names and short detail strings are kept once, not once per event.
    assert events[3].details["route"] is events[4].details["route"]
    assert events[0].action is events[3].action


def test_a_batch_with_one_bad_id_or_timestamp_keeps_the_others():
    good_ids = {"trace_id": "ab" * 16, "span_id": "cd" * 8}
    body = json.dumps(
        [
            ev(**good_ids),
            ev(trace_id="AB" * 16),
            ev(span_id="é" * 16),
            ev(timestamp=-5),
            ev(timestamp="2026-01-02T03:04:05"),
            ev(details={"blob": "x" * MAX_DETAILS_BYTES}),
        ]
    ).encode()
    result = decode_batch(body)
    assert [e["index"] for e in result.errors] == [1, 2, 3, 5]
    assert result.errors[0]["error"] == "events[1].trace_id: must be 32 lowercase hex characters"
    assert result.errors[1]["error"] == "events[2].span_id: must be 16 lowercase hex characters"
    assert result.errors[2]["error"].startswith("events[3].timestamp:")
    assert result.errors[3]["error"].startswith("events[5].details: must be at most")
    assert result.events[1].timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("size", "refused"), [(MAX_DETAILS_BYTES, []), (MAX_DETAILS_BYTES + 1, [0])])
def test_details_at_the_size_limit_in_a_batch_whose_details_together_pass_it(
    size: int, refused: list[int]
) -> None:
    # Together the details pass the limit, so each one's size is looked at: the limit itself is
    # kept, one byte more refused, as when the event comes alone.
    blob = {"blob": "x" * (size - len('{"blob":""}'))}
    body = json.dumps([ev(details=blob), ev(details={"note": "y" * 100})]).encode()
    result = decode_batch(body)
    assert [e["index"] for e in result.errors] == refused
    assert len(result.events) == 2 - len(refused)
    assert decode_batch(json.dumps([ev(details=blob)]).encode()).rejected == len(refused)  # alone alike


def test_endpoint_is_the_action_of_http_and_api_events_only():
    assert ExecutionEvent(service="backend", component="http", action="GET /x").endpoint == "GET /x"
    assert ExecutionEvent(service="frontend", component="api", action="GET /x").endpoint == "GET /x"
    assert ExecutionEvent(service="frontend", component="click", action="button").endpoint is None


def test_deep_nesting_and_nan_are_refused_without_crashing():
    deep = (
        b'[{"service": "backend", "component": "a", "action": "b", "details": '
        + b'{"a":' * 10_000
        + b"1"
        + b"}" * 10_000
        + b"}]"
    )
    result = decode_batch(deep)  # deeper than msgspec decodes: the event alone is refused
    assert result.events == [] and result.errors == [
        {"index": 0, "error": f"events[0].details: must nest at most {MAX_DETAILS_DEPTH} levels deep"}
    ]
    with pytest.raises(BatchError):
        decode_batch(b'[{"service": "backend", "component": "a", "action": "b", "duration_ms": NaN}]')


def test_details_nest_at_most_the_limit_whether_decoded_or_built_in_python():
    base: dict[str, Any] = {"service": "backend", "component": "a", "action": "b"}
    at_limit = {**base, "details": {"a": _levels(MAX_DETAILS_DEPTH - 1)}}
    over = {**base, "details": {"a": _levels(MAX_DETAILS_DEPTH)}}
    result = decode_batch(json.dumps([at_limit, over, at_limit]).encode())
    assert result.accepted == 2
    assert result.errors == [
        {"index": 1, "error": f"events[1].details: must nest at most {MAX_DETAILS_DEPTH} levels deep"}
    ]
    assert ExecutionEvent(**at_limit).details == at_limit["details"]
    with pytest.raises(ValueError, match="levels deep"):
        ExecutionEvent(**over)


def _levels(depth: int) -> object:
    """A value of ``depth`` containers, lists and objects in turn, around 1."""
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    "bad",
    [
        {"service": "bogus"},
        {"status": "weird"},
        {"component": ""},
        {"duration_ms": -5.0},
        {"action": "a" * 300},
    ],
)
def test_events_built_in_python_follow_the_same_rules(bad):
    fields = {"service": "backend", "component": "c", "action": "a", "duration_ms": 1.0, **bad}
    with pytest.raises(ValueError):
        ExecutionEvent(**fields)


def test_a_secret_seen_before_is_filtered_every_time():
    names = ["GET /api/orders/4111111111111111", "hunter2-api"]
    first = ev(action=names[0], details={"password": "hunter2", "note": "ok"})
    batch = [first, ev(details={"password": "hunter2"}), ev(details={"api_key": names[1]})]
    for _ in range(2):  # within one batch, then again in a later one
        events = decode_batch(json.dumps(batch).encode()).events
        prepare_events(events)
        assert [e.details for e in events] == [
            {"password": "[Filtered]", "note": "ok"},
            {"password": "[Filtered]"},
            {"api_key": "[Filtered]"},
        ]
    # A clean value already shared, sent under a secret key, and a card that is also an action name.
    events = decode_batch(
        json.dumps([ev(details={"note": "ok"}), ev(details={"token": "ok", "ref": names[0]})]).encode()
    ).events
    prepare_events(events)
    assert events[1].details == {"token": "[Filtered]", "ref": "GET /api/orders/[Filtered]"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"trace_id": "AB" * 16}, "events[1].trace_id: must be 32 lowercase hex characters"),
        ({"span_id": "0123456789abcdeZ"}, "events[1].span_id: must be 16 lowercase hex characters"),
        ({"details": {"blob": "x" * MAX_DETAILS_BYTES}}, "events[1].details: must be at most"),
    ],
)
def test_one_bad_event_in_an_otherwise_clean_batch_is_named(bad, message):
    stamp = {"timestamp": "2026-01-02T03:04:05Z", "trace_id": "ab" * 16, "span_id": "cd" * 8}
    result = decode_batch(json.dumps([ev(**stamp), ev(**{**stamp, **bad}), ev(**stamp)]).encode())
    assert result.accepted == 2
    assert [e["index"] for e in result.errors] == [1]
    assert result.errors[0]["error"].startswith(message)


def test_events_decoded_from_epoch_or_naive_times_are_plain_execution_events():
    body = json.dumps([ev(timestamp=1_767_323_045), ev(timestamp="2026-01-02T03:04:05")]).encode()
    built = ExecutionEvent(**{**ev(), "timestamp": "2026-01-02T03:04:05Z"})
    for event in decode_batch(body).events:
        assert type(event) is ExecutionEvent
        assert event == built  # the same instant, however it was sent


# --- lone UTF-16 surrogate escapes: valid JSON (RFC 8259) that msgspec refuses -------------------

REPLACEMENT = "\ufffd"


def _json(events: list[dict]) -> bytes:
    """The body Python's own json module writes: a lone surrogate becomes a ``\\udXXX`` escape."""
    return json.dumps(events).encode()


def test_a_lone_surrogate_escape_keeps_the_batch_and_becomes_the_replacement_character():
    body = _json(
        [
            ev(action="GET /a"),
            ev(action="GET /b \ud83d"),  # an emoji cut by the browser logger's slice(0, 300)
            ev(component="file", action="open", details={"path": "/tmp/caf\udce9"}),  # os.fsdecode
            ev(action="GET /c \ud83d\ud83d\ude00", details={"k\udc00": "\ud83dx"}),
        ]
    )
    assert b"\\ud83d" in body and b"\\udce9" in body
    result = decode_batch(body)
    assert result.errors == []
    assert [e.action for e in result.events] == ["GET /a", f"GET /b {REPLACEMENT}", "open", "GET /c \ufffd😀"]
    assert result.events[2].details == {"path": f"/tmp/caf{REPLACEMENT}"}
    assert result.events[3].details == {f"k{REPLACEMENT}": f"{REPLACEMENT}x"}


def test_an_escaped_backslash_before_u_is_text_not_a_surrogate_escape():
    # The action is the 12 characters `GET /\ud83d` (a literal backslash), next to a real lone surrogate.
    body = (
        b'[{"service":"frontend","component":"api","action":"GET /\\\\ud83d"},'
        + _json([ev(action="\ud83d")])[1:]
    )
    result = decode_batch(body)
    assert [e.action for e in result.events] == ["GET /\\ud83d", REPLACEMENT]


def test_the_recovered_path_keeps_per_event_errors_and_the_batch_limit():
    body = _json([ev(action="x\udce9"), ev(duration_ms=-1), ev(action="y"), ev(action="z")])
    result = decode_batch(body, max_events=3)
    assert [e.action for e in result.events] == [f"x{REPLACEMENT}", "y"]
    assert result.errors[0] == {"index": 1, "error": "events[1].duration_ms: must be >= 0"}
    assert [e["index"] for e in result.errors] == [1, 3]
    assert "more than 3 events" in result.errors[1]["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"action": "\\ud83d"}, {"action": "\\ud83"}]', "malformed JSON"),  # json.loads refuses too
        (b'[{"action": "\\ud83d", "duration_ms": NaN}]', "malformed JSON"),
        (b'[{"action": "\\ud83d"}, Infinity]', "malformed JSON"),
        (b'[{"action": "\\ud83d"}, {"a": "b"]', "malformed JSON"),
    ],
    ids=["bad-hex-escape", "nan", "infinity", "unbalanced"],
)
def test_a_body_still_broken_once_surrogates_are_replaced_is_refused_as_before(body, message):
    with pytest.raises(BatchError, match=message) as refused:
        decode_batch(body)
    assert "surrogate" not in str(refused.value) and "truncated" not in str(refused.value)  # the real fault


def test_a_too_deep_event_beside_a_lone_surrogate_is_refused_alone_for_its_depth():
    deep = b'{"details": "\\udce9", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    kept = b'{"service": "backend", "component": "a", "action": "\\udce9"}'
    result = decode_batch(b"[" + deep + b"," + kept + b"]")
    assert [e.action for e in result.events] == ["\ufffd"]
    assert result.errors == [
        {"index": 0, "error": f"events[0].details: must nest at most {MAX_DETAILS_DEPTH} levels deep"}
    ]


# --- one time range for every form of timestamp --------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC: the reports could not read it
        "9999-12-31T23:59:59",
        "3000-01-01T00:00:00Z",
        "2999-12-31T23:30:00-01:00",  # 3000-01-01T00:30Z
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "1969-12-31T23:59:59Z",
        32_503_680_000,  # 3000-01-01T00:00Z as epoch seconds, refused already
        1e-7,  # rounds to the epoch itself, which the range leaves out
    ],
)
def test_a_time_out_of_range_is_refused_alone_whatever_its_form(stamp):
    body = _json(
        [ev(action="GET /a"), ev(timestamp=stamp), ev(action="GET /c", timestamp="2999-12-31T23:59:59Z")]
    )
    result = decode_batch(body)
    assert [e.action for e in result.events] == ["GET /a", "GET /c"]
    assert len(result.errors) == 1
    assert result.errors[0]["index"] == 1
    assert result.errors[0]["error"].startswith("events[1].timestamp: out of range")
    assert "3000" in result.errors[0]["error"]


@pytest.mark.parametrize(
    "stamp", [datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))), "3000-01-01T00:00:00Z", 4e10]
)
def test_events_built_in_python_or_converted_get_the_same_time_range(stamp):
    with pytest.raises(ValueError, match="timestamp: out of range"):
        ExecutionEvent(**{**ev(), "timestamp": stamp})
    with pytest.raises(ValueError, match="timestamp: out of range"):
        convert_event({**ev(), "timestamp": stamp})


def test_a_parent_span_and_a_sample_rate_are_optional_and_checked():
    """Old clients send neither; a bad one is that event's error, the batch's others are kept.
    A rate so small its weight would overflow the figures (1e-320: infinity) is refused."""
    base = {"service": "backend", "component": "http", "action": "GET /x"}
    extras = [{"parent_span_id": "00f067aa0ba902b7", "sample_rate": 0.1}, {}]
    extras += [{"sample_rate": 1e-320}, {"sample_rate": 1.5}, {"parent_span_id": "XYZ"}]
    body = json.dumps([{**base, **extra} for extra in extras])
    result = decode_batch(body.encode())
    assert [(e.parent_span_id, e.sample_rate) for e in result.events] == [
        ("00f067aa0ba902b7", 0.1),
        (None, None),
    ]
    assert [error["error"] for error in result.errors] == [
        "events[2].sample_rate: must be at least 0.0001",
        "events[3].sample_rate: must be at most 1",
        "events[4].parent_span_id: must be 16 lowercase hex characters",
    ]


@pytest.mark.parametrize("field", ["trace_id", "span_id", "parent_span_id"])
def test_an_id_of_the_right_length_but_not_hex_is_refused_in_a_batch_otherwise_valid(field):
    """The ids' hex digits are checked for the whole batch at once: each id, the parent span's too."""
    base = {"service": "backend", "component": "http", "action": "GET /x"}
    ids = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    ids["parent_span_id"] = "53995c3f42cd8ad8"
    bad = {**ids, field: "Z" * len(ids[field])}
    result = decode_batch(json.dumps([{**base, **ids}, {**base, **bad}]).encode())
    assert [e.span_id for e in result.events] == [ids["span_id"]]
    assert [error["error"] for error in result.errors] == [
        f"events[1].{field}: must be {len(ids[field])} lowercase hex characters"
    ]
