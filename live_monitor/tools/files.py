"""Reading event files: one parse of times, one streaming reader and one validator for the tools.

The report, the log analysis and the sample generator read times, event files and events the
same way through these, in constant memory whatever the file's size, and call every unusable
input an ``InputError``.
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from live_monitor.model.events import MIN_SAMPLE_RATE
from live_monitor.model.scrub import Scrubber
from live_monitor.vocabulary import SERVICES, STATUSES, Service

__all__ = [
    "BadRecord",
    "Event",
    "InputError",
    "decode_json",
    "iter_event_file",
    "iter_json_array",
    "iter_records",
    "parse_time",
    "read_document",
    "time_arg",
    "to_event",
]

_json_decode = msgspec.json.Decoder().decode
SCRUBBER = Scrubber()  # the monitor's built-in rules, with caches of the tools' own


def decode_json(data: bytes) -> Any:
    """One JSON document; for anything that is not one, ValueError saying why, nesting too deep
    for the decoder included (msgspec raises RecursionError there, which no caller expects)."""
    try:
        return _json_decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_time(value: str | float) -> float:
    """Epoch seconds for an ISO 8601 time (no zone means UTC) or epoch seconds, as text or a number.

    The one reading of times for every tool; a time that datetime cannot hold (inf, nan, 1e20,
    year 10000) raises ValueError like any other non-time, so nothing downstream fails on it.
    """
    if isinstance(value, str):
        seconds = _text_seconds(value)
    elif value.__class__ in (float, int) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        seconds = value
    else:
        raise ValueError(f"a time must be ISO 8601 or epoch seconds, not {type(value).__name__}")
    if -62135596800 <= seconds < 253402300800:  # 0001-01-01 to 10000-01-01 UTC: what datetime holds
        return float(seconds)
    if seconds != seconds or abs(seconds) == math.inf:
        raise ValueError(f"not a finite number of epoch seconds: {value!r:.60}")
    raise ValueError(f"time out of range (years 1 to 9999 UTC): {value!r:.60}")


def time_arg(text: str) -> float:
    """``parse_time`` as an argparse ``type=``: a bad time is a usage error naming the flag."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _text_seconds(value: str) -> float:
    text = value.strip()
    try:  # ISO first, as the monitor reads a string: 20250101 is 2025-01-01, 1735689600 is epoch
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        try:
            return float(text)
        except ValueError:
            reason = "" if str(exc).startswith("Invalid isoformat") else f" ({exc})"
            raise ValueError(f"not an ISO 8601 timestamp: {value!r:.60}{reason}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


MAX_DOCUMENT = 64 << 20  # a JSON document that is not an array is decoded whole: at most 64 MiB
CONTAINERS = ("recent_events", "events")  # a saved /data export, an ingest batch
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL"})
_BLANK_BYTES = b" \t\r\n"


class InputError(ValueError):
    """An input the tools cannot use (a file, a line, a record, the monitor's answer).

    The message names the place (``file:line`` where known); the command lines print it as
    ``error: ...`` and exit with 1.
    """


@dataclass(slots=True)
class BadRecord:
    """A line that is not JSON, and why: a tool stops on it or, when asked to, counts it."""

    reason: str


@dataclass(slots=True)
class Event:
    """The fields of one record that the tools use, and where it was read."""

    ts: float
    service: Service
    component: str
    action: str
    duration_ms: float | None
    is_error: bool
    trace_id: str | None
    where: str
    details: dict[str, Any] | None = None
    span_id: str | None = None
    parent_span_id: str | None = None  # the span it was made in: a server request's caller
    sample_rate: float | None = None  # the share of such events the client sent (None: all)
    release: str | None = None  # the build that sent it (None: not said)
    environment: str | None = None  # the deployment that sent it


def iter_records(path: str | Path, on_read: Callable[[int], None] | None = None) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record of an event file, in file order; ``-`` reads stdin.

    The tools' one format rule. The first character that is not blank decides, however many
    blank lines come before it: ``[`` is a JSON array, streamed; ``{`` starting a first line
    that is not JSON on its own is one JSON document of at most ``MAX_DOCUMENT`` bytes (a
    pretty-printed /data export), read as JSON Lines when it does not decode; anything else
    is JSON Lines (so is stdin). Every object without a ``timestamp`` that holds a list under
    ``recent_events`` or ``events`` stands for those events, whether it is the whole file or
    one line. A line that is not JSON comes as a ``BadRecord``; a broken array, an oversized
    document or an unreadable file raises ``InputError``. ``where`` is ``file:line``.
    """
    for where, record in _iter_raw(str(path), on_read or (lambda _n: None)):
        if isinstance(record, dict) and "timestamp" not in record:
            name = next((n for n in CONTAINERS if isinstance(record.get(n), list)), None)
            if name is not None:
                yield from ((f"{where} {name}[{i}]", event) for i, event in enumerate(record[name]))
                continue
        yield where, record


def iter_event_file(path: str | Path) -> Iterator[Any]:
    """The records of an event file (see ``iter_records``); a line that is not JSON raises InputError."""
    for where, record in iter_records(path):
        if isinstance(record, BadRecord):
            raise InputError(f"{where}: {record.reason}")
        yield record


def read_document(path: str | Path) -> dict[str, Any] | None:
    """The JSON object a file holds as a whole (a saved report or a /data export, pretty-printed
    or on one line), or None for anything else: an event stream, which ``iter_records`` reads.

    Decided by the same rules as ``iter_records`` (the first character that is not blank, at
    most ``MAX_DOCUMENT`` bytes), so a file is never a document here and a stream there.
    """
    name = str(path)
    try:
        with open(name, "rb") as fh:
            if _first_char(fh) != b"{" or os.fstat(fh.fileno()).st_size > MAX_DOCUMENT:
                return None
            data = fh.read()
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        document = decode_json(data)
    except ValueError:
        return None  # JSON Lines (or a malformed file, which the stream reader names by line)
    return document if isinstance(document, dict) else None


def _iter_raw(name: str, on_read: Callable[[int], None]) -> Iterator[tuple[str, Any]]:
    if name == "-":
        yield from _iter_lines(sys.stdin.buffer, "<stdin>", on_read)
        return
    try:
        with open(name, "rb") as fh:
            first = _first_char(fh)
            if first == b"[":
                try:
                    yield from (
                        (f"{name}:{line}", element) for line, element in iter_json_array(fh, name, on_read)
                    )
                except ValueError as exc:
                    raise InputError(str(exc)) from None
                return
            if first == b"{" and not _first_line_is_json(fh):
                size = os.fstat(fh.fileno()).st_size
                if size > MAX_DOCUMENT:
                    raise InputError(
                        f"{name}: a JSON document over {MAX_DOCUMENT >> 20} MiB; "
                        "save the events as a JSON array or JSON Lines to stream them"
                    )
                try:
                    document = decode_json(fh.read())
                except ValueError:
                    fh.seek(0)  # not one document: JSON Lines, so each bad line is named
                else:
                    on_read(size)
                    yield name, document
                    return
            yield from _iter_lines(fh, name, on_read)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _iter_lines(fh: IO[bytes], name: str, on_read: Callable[[int], None]) -> Iterator[tuple[str, Any]]:
    """JSON Lines, one line at a time; blank lines are skipped but counted in the line numbers."""
    for number, raw in enumerate(fh, 1):
        on_read(len(raw))
        if not raw.strip():
            continue
        try:
            record = decode_json(raw)
        except ValueError as exc:
            record = BadRecord(f"malformed JSON: {exc}")
        yield f"{name}:{number}", record


def _first_char(fh: IO[bytes]) -> bytes:
    """The first byte that is not blank (b"" for a blank file), wherever it is; rewinds ``fh``."""
    while chunk := fh.read(ARRAY_CHUNK):
        if text := chunk.lstrip(_BLANK_BYTES):
            fh.seek(0)
            return text[:1]
    fh.seek(0)
    return b""


def _first_line_is_json(fh: IO[bytes]) -> bool:
    """True when the first line that is not blank is JSON on its own; rewinds ``fh``."""
    line = b""
    for line in fh:
        if line.strip():
            break
    fh.seek(0)
    try:
        decode_json(line)
    except ValueError:
        return False
    return True


def to_event(record: Any, where: str, side: Service | None = None) -> Event | None:
    """The event one record stands for, checked; None for a log line without event fields.

    The tools' one validator. ``side`` is the service of a record that names none (a file of
    one side's events); without it a log line (``level`` or ``logger``) is the backend's. A
    missing ``status`` is an error when a log line's level is ERROR or worse. Raises ValueError
    saying why a record is not a usable event.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    is_log = "level" in record or "logger" in record
    component, action = record.get("component"), record.get("action")
    if not (component.__class__ is str and component and action.__class__ is str and action):
        component, action = _text(record, "component"), _text(record, "action")
    if component is None or action is None:
        if is_log:
            return None
        raise ValueError(
            f"missing or empty required field '{'component' if component is None else 'action'}'"
        )
    if (stamp := record.get("timestamp")) is None:
        raise ValueError("missing required field 'timestamp'")
    ts = parse_time(stamp)
    service = record.get("service") or side or ("backend" if is_log else None)
    if service not in SERVICES:
        expected = " or ".join(f"'{s}'" for s in SERVICES)
        raise ValueError(f"'service' must be {expected}, not {service!r}")
    duration = record.get("duration_ms")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise ValueError(f"'duration_ms' must be a number or null, not {duration!r}")
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"'duration_ms' must be >= 0, not {duration!r}")
    status = record.get("status")
    if status is not None and status not in STATUSES:
        raise ValueError(f"'status' must be 'success' or 'error', not {status!r}")
    level_error = status is None and str(record.get("level", "")).upper() in ERROR_LEVELS
    event = Event(
        ts,
        service,
        component,
        action,
        None if duration is None else float(duration),
        status == "error" or level_error,
        _id(record, "trace_id"),
        where,
        details if isinstance(details := record.get("details"), dict) else None,
        _id(record, "span_id"),
        _id(record, "parent_span_id"),
        _sample_rate(record),
        _id(record, "release"),
        _id(record, "environment"),
    )
    SCRUBBER.prepare((event,))  # secrets filtered as the monitor filters them
    return event


def _id(record: dict[str, Any], name: str) -> str | None:
    """A trace or span id as written; None when missing, empty or not text (the ids only join
    events, so one that cannot is no reason to refuse the record)."""
    value = record.get(name)
    return value if value.__class__ is str and value else None


def _sample_rate(record: dict[str, Any]) -> float | None:
    """The record's ``sample_rate`` (MIN_SAMPLE_RATE to 1, as the monitor takes it), or None;
    ValueError for anything else, since it weighs what the event counts for."""
    rate = record.get("sample_rate")
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not MIN_SAMPLE_RATE <= rate <= 1:
        raise ValueError(f"'sample_rate' must be a number from {MIN_SAMPLE_RATE} to 1, or null, not {rate!r}")
    return float(rate)


def _text(record: dict[str, Any], name: str) -> str | None:
    """A record's text field; None when missing or empty, ValueError when not text."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, not {type(value).__name__}")
    return value


ARRAY_CHUNK = 1 << 16
MAX_ARRAY_ELEMENT = 4 << 20  # an element over 4 MiB is reported, not buffered
_BLANK = re.compile(r"[ \t\n\r]*")
_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def iter_json_array(
    fh: IO[bytes], name: str, on_read: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """(line, element) for each element of the JSON array in ``fh``, decoded one at a time.

    Read in 64 KiB chunks, so memory stays flat whatever the size; ``on_read`` gets each read's
    byte count (progress). A malformed, truncated or oversized array raises ValueError starting
    ``name:line:column:`` and naming the element.
    """
    decode = json.JSONDecoder(parse_constant=_no_constant).raw_decode
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf, pos, eof, count = "", 0, False, 0
    line, line_start = 1, 0  # the line of buf[pos], and where in buf it starts (< 0 once dropped)

    def more(size: int = ARRAY_CHUNK) -> bool:
        nonlocal buf, pos, eof, line_start
        chunk = fh.read(size)
        if on_read is not None:
            on_read(len(chunk))
        try:
            buf = buf[pos:] + utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            at = line + buf.count("\n", pos) + chunk[: exc.start].count(b"\n")
            raise ValueError(f"{name}:{at}: not UTF-8 text ({exc.reason})") from None
        line_start, pos, eof = line_start - pos, 0, not chunk
        return not eof

    def move(end: int) -> None:
        nonlocal pos, line, line_start
        if newlines := buf.count("\n", pos, end):
            line, line_start = line + newlines, buf.rfind("\n", pos, end) + 1
        pos = end

    def peek() -> str:  # the next character that is not blank, "" at the end of the file
        while True:
            move(_BLANK.match(buf, pos).end())  # type: ignore[union-attr]
            if pos < len(buf) or not more():
                return buf[pos : pos + 1]

    def error(message: str, at: int | None = None) -> ValueError:
        at = pos if at is None else at
        newlines = buf.count("\n", pos, at)
        start = buf.rfind("\n", pos, at) + 1 if newlines else line_start
        return ValueError(f"{name}:{line + newlines}:{at - start + 1}: {message}")

    if peek() != "[":
        if pos == len(buf):
            return  # an empty file
        raise error("expected a JSON array")
    move(pos + 1)
    char = peek()
    while char != "]":
        if not char:
            raise error(f"the JSON array is not closed after element #{count} (truncated file?)")
        try:
            element, end = decode(buf, pos)
            if not eof and (end == len(buf) or (buf[end] in ".eE" and element.__class__ in (int, float))):
                raise ValueError("a number may go on in the next chunk")  # 12 of 12.5 or 12e3
        except RecursionError:  # too deep for the decoder: skipped as a bad record when it ends here
            if (skip_to := _element_end(buf, pos)) is not None:
                element, end = BadRecord("malformed JSON: nested too deeply"), skip_to
            elif not eof and len(buf) - pos < MAX_ARRAY_ELEMENT:
                more(max(ARRAY_CHUNK, len(buf) - pos))
                continue
            else:
                raise error(f"array element #{count + 1}: malformed JSON: nested too deeply") from None
        except ValueError as exc:
            # An error well before the end of what was read is one more data cannot mend
            # (an unterminated string reports where it starts, so it may still go on).
            if (
                isinstance(exc, json.JSONDecodeError)
                and exc.pos < len(buf) - 16
                and exc.msg[:12] != "Unterminated"
            ):
                raise error(f"array element #{count + 1}: malformed JSON: {exc.msg}", exc.pos) from None
            if not eof and len(buf) - pos < MAX_ARRAY_ELEMENT:
                more(max(ARRAY_CHUNK, len(buf) - pos))  # the element may go on in the next chunk
                continue
            if not eof:
                raise error(f"array element #{count + 1} is over 4 MiB or malformed") from None
            at = getattr(exc, "pos", pos)
            raise error(
                f"array element #{count + 1}: malformed JSON: {getattr(exc, 'msg', exc)}", at
            ) from None
        count += 1
        yield line, element
        comma = _COMMA.match(buf, end)
        if comma and comma.end() < len(buf) and buf[comma.end()] != "]":  # the usual case, made quick
            move(comma.end())
            char = buf[pos]
            continue
        move(end)
        if (char := peek()) == ",":
            move(pos + 1)
            if (char := peek()) == "]":
                raise error(f"a ',' after the last array element (#{count})")
        elif char and char != "]":
            raise error(f"expected ',' or ']' after array element #{count}")
    move(pos + 1)
    if peek():
        raise error("unexpected data after the end of the JSON array")


# A whole JSON string, a quote that opens one not yet read, or a bracket.
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|["\[\]{}]')


def _element_end(text: str, start: int) -> int | None:
    """Where the array element at ``text[start]`` ends, found by one loop over its brackets (no
    recursion, for an element too deep to decode); None when it goes on past ``text``."""
    depth = 0
    for match in _NESTING.finditer(text, start):
        token = match.group()
        if token == '"':
            return None  # a string not closed in what was read
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth <= 0:
                return match.end()
    return None
