"""Reading event files: one parse of times and one streaming reader for the command-line tools.

The report, the log analysis and the sample generator read times and event files the same
way through these, in constant memory whatever the file's size.
"""

from __future__ import annotations

import argparse
import codecs
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

__all__ = ["parse_time", "time_arg", "decode_json", "iter_event_file", "iter_json_array"]

_json_decode = msgspec.json.Decoder().decode


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


def iter_event_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield event dicts from a JSON array, a JSON Lines file or a saved /data export.

    Arrays and JSON Lines are streamed in constant memory; a malformed element or line raises
    ValueError naming the file and line (and in an array the column and element number).
    """
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(64).lstrip()
        fh.seek(0)
        if head.startswith(b"["):
            yield from (event for _line, event in iter_json_array(fh, str(path)))
            return
        if head.startswith(b"{") and not _is_jsonl(fh):
            try:
                data = decode_json(fh.read())
            except ValueError as exc:
                raise ValueError(f"{path}: malformed JSON: {exc}") from None
            if "component" in data and "action" in data:
                data = [data]  # a JSON Lines file holding a single event
            elif (data := data.get("recent_events", data.get("events"))) is None:
                raise ValueError(f"{path}: a JSON object must hold 'recent_events' or 'events'")
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a JSON array of events")
            yield from data
            return
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    event = decode_json(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: malformed JSON line: {exc}") from None
                yield event


def _is_jsonl(fh: IO[bytes]) -> bool:
    """True when the file's first line is JSON on its own and a second line follows."""
    first, second = fh.readline(), fh.readline()
    fh.seek(0)
    try:
        return bool(second.strip()) and decode_json(first) is not None
    except ValueError:
        return False


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
        except (ValueError, RecursionError) as exc:
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
            reason = "nested too deeply" if isinstance(exc, RecursionError) else getattr(exc, "msg", exc)
            at = getattr(exc, "pos", pos)
            raise error(f"array element #{count + 1}: malformed JSON: {reason}", at) from None
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
