"""Event files and times as the command-line tools read them (live_monitor/tools/files.py)."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest

from live_monitor.tools.files import iter_event_file, iter_json_array, parse_time, to_event
from tests.helpers import ev


def test_event_files_in_three_shapes(tmp_path):
    events = [ev(action=f"GET /{i}") for i in range(3)]
    array = tmp_path / "a.json"
    array.write_text(json.dumps(events))
    lines = tmp_path / "b.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    export = tmp_path / "c.json"
    export.write_text(json.dumps({"backend": {}, "recent_events": events}))
    for path in (array, lines, export):
        assert [e["action"] for e in iter_event_file(path)] == ["GET /0", "GET /1", "GET /2"]


def test_a_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ev()) + "\n" + json.dumps(ev()) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:3: malformed JSON: "):
        list(iter_event_file(path))


DEEP = "{" + '"a":{' * 2000 + "}" * 2001


@pytest.mark.parametrize("lines", [[json.dumps(ev()), DEEP], [DEEP]], ids=["json-lines", "one-object"])
def test_a_record_nested_too_deeply_is_a_clear_error_not_a_recursion_error(tmp_path, lines):
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"deep.jsonl:[12]: malformed JSON: nested too deeply"):
        list(iter_event_file(path))


def test_a_json_lines_file_with_one_event(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(ev()) + "\n")
    assert [e["action"] for e in iter_event_file(path)] == ["GET /api/orders/:id"]


def test_a_malformed_json_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match=r"broken.json:1:3: array element #1: malformed JSON"):
        list(iter_event_file(path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-01-01T00:00:00Z", 1735689600.0),
        ("2025-01-01T00:00:00.250Z", 1735689600.25),
        ("2025-01-01T02:30:00+02:30", 1735689600.0),
        ("2024-12-31T19:00:00-05:00", 1735689600.0),
        ("2025-01-01T00:00:00", 1735689600.0),  # no zone means UTC
        ("2025-01-01", 1735689600.0),
        (" 2025-01-01T00:00:00Z\n", 1735689600.0),
        ("1735689600", 1735689600.0),
        ("1735689600.5", 1735689600.5),
        (" 1735689600 ", 1735689600.0),
        ("-100", -100.0),
        ("20250101", 1735689600.0),  # an ISO 8601 basic date, as the monitor reads it
        ("1735689600", 1735689600.0),  # digits that are no date: epoch seconds
        (1735689600, 1735689600.0),
        (1735689600.5, 1735689600.5),
    ],
)
def test_parse_time_reads_iso_8601_and_epoch_seconds(text, seconds):
    got = parse_time(text)
    assert got == seconds and type(got) is float


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "not a finite number"),
        ("-inf", "not a finite number"),
        ("nan", "not a finite number"),
        ("1e400", "not a finite number"),
        (float("nan"), "not a finite number"),
        ("1e20", "out of range"),
        ("-1e20", "out of range"),
        (1e20, "out of range"),
        pytest.param(10**400, "out of range", id="10**400"),
        ("9999-12-31T23:00:00-05:00", "out of range"),  # 10000-01-01 in UTC
        ("2026-13-40", r"not an ISO 8601 timestamp: '2026-13-40' \(month must be in 1..12\)"),
        ("yesterday", "not an ISO 8601 timestamp: 'yesterday'"),
        ("", "not an ISO 8601 timestamp"),
        (True, "not bool"),
        (None, "not NoneType"),
    ],
)
def test_parse_time_refuses_what_is_not_a_representable_time(value, message):
    with pytest.raises(ValueError, match=message):
        parse_time(value)


def big_events(n):
    """Events with multi-byte text, so chunk edges fall inside characters and elements."""
    return [
        ev(action=f"GET /api/{i}", duration_ms=i * 0.5, details={"note": "café €" * (i % 5)})
        for i in range(n)
    ]


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_array_file_streams_the_same_events_as_json_lines(tmp_path, indent):
    events = big_events(4000)  # ~0.6 MB: many 64 KiB chunks
    array = tmp_path / "events.json"
    array.write_text(json.dumps(events, indent=indent, ensure_ascii=False), encoding="utf-8")
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    from_array = list(iter_event_file(array))
    assert from_array == list(iter_event_file(lines)) == events


def test_a_json_array_file_is_read_in_constant_memory(tmp_path):
    path = tmp_path / "big.json"
    with path.open("w") as fh:
        fh.write("[" + ",\n".join(json.dumps(e) for e in big_events(20_000)) + "]")
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_event_file(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < path.stat().st_size / 4  # the file is ~5 MB


def test_numbers_split_across_chunks_are_read_whole():
    numbers = list(range(40_000))  # ~230 KB on one line: chunk edges fall inside numbers
    got = [value for _, value in iter_json_array(io.BytesIO(json.dumps(numbers).encode()), "n.json")]
    assert got == numbers


def test_a_malformed_array_element_is_named_by_line_column_and_number(tmp_path):
    path = tmp_path / "bad.json"
    good = [json.dumps(ev(action=f"GET /{i}")) for i in range(5000)]  # past the first 64 KiB chunk
    text = "[\n" + ",\n".join([*good, '{"service": "backend" "component": "x"}', *good[:2]]) + "\n]\n"
    path.write_text(text)
    column = len('{"service": "backend" ') + 1
    seen = []
    with pytest.raises(ValueError) as caught:
        for event in iter_event_file(path):
            seen.append(event)
    assert str(caught.value) == (
        f"{path}:5002:{column}: array element #5001: malformed JSON: Expecting ',' delimiter"
    )
    assert len(seen) == 5000  # the events before it were read, one at a time


def test_a_malformed_element_on_one_long_line_gives_its_true_column():
    good = json.dumps([ev(action=f"GET /{i}") for i in range(3000)])[:-1]  # ~300 KB, one line
    data = (good + ', {"a": tru}]').encode()
    column = data.index(b"tru") + 1
    with pytest.raises(ValueError, match=rf"^one.json:1:{column}: array element #3001: malformed JSON"):
        list(iter_json_array(io.BytesIO(data), "one.json"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2", r"a.json:1:6: the JSON array is not closed after element #2 \(truncated file\?\)"),
        ("[1, 2,]", r"a.json:1:7: a ',' after the last array element \(#2\)"),
        ("[1 2]", r"a.json:1:4: expected ',' or '\]' after array element #1"),
        ("[1]\n[2]", "a.json:2:1: unexpected data after the end of the JSON array"),
        ('{"a": 1}', "a.json:1:1: expected a JSON array"),
        ("[1, NaN]", "a.json:1:5: array element #2: malformed JSON: NaN is not valid JSON"),
        pytest.param(
            "[" * 100_000, "a.json:1:2: array element #1: malformed JSON: nested too deeply", id="deep"
        ),
    ],
)
def test_a_broken_json_array_says_where_and_why(text, message):
    with pytest.raises(ValueError, match=message):
        list(iter_json_array(io.BytesIO(text.encode()), "a.json"))


def test_a_json_array_that_is_not_utf8_is_refused():
    with pytest.raises(ValueError, match="a.json:1: not UTF-8 text"):
        list(iter_json_array(io.BytesIO(b'["caf\xe9"]'), "a.json"))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_any_chunk_edge_gives_the_same_elements_and_lines(monkeypatch, chunk):
    monkeypatch.setattr("live_monitor.tools.files.ARRAY_CHUNK", chunk)
    elements = [
        12345,
        -0.5e-3,
        "caf\u00e9 \u20ac \U0001f600",
        {"a": [1, {"b": None}], "c": True},
        [],
        "x" * 40,
    ]
    parts = [json.dumps(e, indent=1, ensure_ascii=False) for e in elements]
    text = "[\n" + ",\n".join(parts) + "\n]\n"
    lines = [2 + sum(p.count("\n") + 1 for p in parts[:i]) for i in range(len(parts))]
    got = list(iter_json_array(io.BytesIO(text.encode()), "a.json"))
    assert got == list(zip(lines, elements, strict=True))


def test_a_malformed_element_early_in_a_big_array_is_reported_at_once_with_its_reason():
    good = [json.dumps(ev(action=f"GET /{i}")) for i in range(40_000)]  # ~4 MiB after the bad one
    text = "[\n" + ",\n".join([good[0], '{"service": "backend" "component": "x"}', *good]) + "\n]\n"
    read: list[int] = []
    with pytest.raises(ValueError) as caught:
        list(iter_json_array(io.BytesIO(text.encode()), "big.json", on_read=read.append))
    column = len('{"service": "backend" ') + 1
    assert (
        str(caught.value) == f"big.json:3:{column}: array element #2: malformed JSON: Expecting ',' delimiter"
    )
    assert sum(read) <= 2 * 65536  # not buffered up to the 4 MiB element limit first


def test_bytes_that_are_not_utf8_are_reported_on_their_own_line():
    text = "[\n" + ",\n".join(json.dumps(ev(action=f"GET /{i}")) for i in range(40)) + "\n]\n"
    lines = text.encode().split(b"\n")
    lines[30] = lines[30].replace(b"GET", b"G\xe9T")
    with pytest.raises(ValueError, match=r"^bad\.json:31: not UTF-8 text"):
        list(iter_json_array(io.BytesIO(b"\n".join(lines)), "bad.json"))


def test_the_reader_takes_span_ids_and_sample_rate_as_the_monitor_stores_them():
    """A /data export carries them: the report joins and weighs files as the live monitor does."""
    record = ev(timestamp=1.0, trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="b1" * 8)
    record.update(parent_span_id="00f067aa0ba902b7", sample_rate=0.25)
    e = to_event(record, "f:1")
    assert e is not None
    assert (e.span_id, e.parent_span_id, e.sample_rate) == ("b1" * 8, "00f067aa0ba902b7", 0.25)
    old = to_event(ev(timestamp=1.0), "f:2")  # an old client's: none of them
    assert old is not None and (old.span_id, old.parent_span_id, old.sample_rate) == (None, None, None)


@pytest.mark.parametrize("rate", [0, 1.5, -0.1, "0.5", True, float("nan")])
def test_a_sample_rate_out_of_range_is_a_clear_error_naming_the_field(rate):
    with pytest.raises(ValueError, match=r"'sample_rate' must be a number from 0.0001 to 1, or null, not "):
        to_event(ev(timestamp=1.0, sample_rate=rate), "f:1")


def test_an_id_that_is_not_text_joins_nothing_and_refuses_nothing():
    e = to_event(ev(timestamp=1.0, trace_id=7, span_id=["x"], parent_span_id=""), "f:1")
    assert e is not None and (e.trace_id, e.span_id, e.parent_span_id) == (None, None, None)
