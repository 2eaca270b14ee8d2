"""The ExecutionEvent model: one validated record of work seen by the backend or the frontend.

Batches are decoded and validated in one pass by msgspec against a typed schema; when a
batch holds invalid events, each event is decoded alone so the valid ones are kept and
every rejection names its index, field and rule (``events[3].duration_ms: must be >= 0``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import msgspec

from live_monitor import vocabulary
from live_monitor.model.scrub import DEFAULT, Scrubber, scrub_details
from live_monitor.vocabulary import MAX_ACTION, MAX_COMPONENT, Service, Status, is_own_traffic

__all__ = [
    "ExecutionEvent",
    "BatchResult",
    "BatchError",
    "decode_batch",
    "convert_event",
    "IncomingEvent",
    "scrub_details",
    "prepare_events",
    "EventFilter",
]

MAX_DETAILS_BYTES = 8 * 1024
# How deep details may nest (the details object itself is level 1): far more than any client
# needs, and far less than a recursive walk in Python or msgspec (about 1,000 frames) can take.
MAX_DETAILS_DEPTH = 32
TOO_DEEP = f"details: must nest at most {MAX_DETAILS_DEPTH} levels deep"
MAX_BATCH_EVENTS = 1000

Component = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_COMPONENT)]
Action = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ACTION)]
Duration = Annotated[float, msgspec.Meta(ge=0, le=1e10)]
# Lengths are checked by msgspec in C; the hex digits by the batch check (_batch_ok, then
# event_problem for the one refused), cheaper than a regex, so the pattern is for the schema alone.
TraceId = Annotated[
    str,
    msgspec.Meta(
        min_length=32,
        max_length=32,
        description="32 lowercase hex",
        extra_json_schema={"pattern": "^[0-9a-f]{32}$"},
    ),
]
SpanId = Annotated[
    str,
    msgspec.Meta(
        min_length=16,
        max_length=16,
        description="16 lowercase hex",
        extra_json_schema={"pattern": "^[0-9a-f]{16}$"},
    ),
]
# The smallest sample rate taken: an event then stands for 10,000. Below it the weights would
# overflow the figures (1e-320 is infinity), and no client samples that thinly.
MIN_SAMPLE_RATE = 1e-4
SampleRate = Annotated[
    float,
    msgspec.Meta(
        ge=MIN_SAMPLE_RATE,
        le=1,
        description="the share of such events this client sends: each stands for 1/rate of them",
    ),
]
# Which build and which deployment sent an event (Sentry's release and environment): free text,
# as bounded as a component, so views can be filtered and a baseline be "the previous release".
MAX_RELEASE, MAX_ENVIRONMENT = 200, 64  # Sentry's limits
Release = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_RELEASE,
        description="the build that sent the event (a version or a commit), e.g. 1.4.2",
    ),
]
Environment = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_ENVIRONMENT,
        description="the deployment that sent the event, e.g. production or staging",
    ),
]
_HEX_BYTES = b"0123456789abcdef"
_SERVICES = vocabulary.SERVICES
_STATUSES = vocabulary.STATUSES
# Every timestamp, however sent, must fall strictly between these (UTC): the reports and the
# log tools read any time in years 1 to 9999 UTC, and nothing live predates 1970 or follows 3000.
MAX_EPOCH = 32503680000  # 3000-01-01T00:00:00Z
# The smallest epoch seconds after the epoch: a time is kept to the microsecond, so less would
# round to 1970-01-01T00:00:00 itself (0 means "now").
MIN_EPOCH = 1e-6
_EARLIEST = datetime.fromtimestamp(0, UTC)
_LATEST = datetime.fromtimestamp(MAX_EPOCH, UTC)
_OUT_OF_RANGE = "timestamp: out of range: must be after 1970-01-01 and before 3000-01-01 UTC"


# Decoding a batch takes zoned ISO 8601 (what the loggers send) straight; epoch seconds and
# naive times send the batch event by event through IncomingEvent, which settles them.
if TYPE_CHECKING:  # what Python callers may pass; the constructor settles it to a zoned datetime
    Timestamp = datetime | float | str
else:
    Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _ValidatedOnConstruction(msgspec.StructMeta):
    """Checks events built in Python (the README's keyword constructor) as decoding would.

    Decoding does not call the metaclass, so a batch is checked once as a whole in
    ``decode_batch`` instead of event by event: that is what makes ingest cheap.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        event = super().__call__(*args, **kwargs)
        event._check_built()
        return event


class ExecutionEvent(msgspec.Struct, kw_only=True, gc=False, metaclass=_ValidatedOnConstruction):
    """One execution event, as the README's event schema has it; its keyword constructor works as is.

    ``timestamp`` may be given as an ISO 8601 string (no zone means UTC), epoch seconds or a
    datetime; it is kept as an aware datetime and written out as ISO 8601.
    """

    timestamp: Timestamp = msgspec.field(default_factory=_utc_now)
    service: Service
    component: Component
    action: Action
    duration_ms: Duration | None = None
    status: Status = "success"
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    trace_id: TraceId | None = None
    span_id: SpanId | None = None
    parent_span_id: SpanId | None = None  # the span this request was made in (its caller's)
    sample_rate: SampleRate | None = None  # None: every such event is sent
    release: Release | None = None  # None: not said (older clients)
    environment: Environment | None = None

    def _check_built(self) -> None:
        self.timestamp = _to_datetime(self.timestamp)
        if self.duration_ms is not None and not (math.isfinite(self.duration_ms) and self.duration_ms >= 0):
            raise ValueError("duration_ms: must be a finite number >= 0")
        # msgspec checks these when decoding; an event built in Python gets the same rules here.
        if self.service not in _SERVICES or self.status not in _STATUSES:
            raise ValueError("service must be backend or frontend, status success or error")
        if not (0 < len(self.component) <= MAX_COMPONENT and 0 < len(self.action) <= MAX_ACTION):
            raise ValueError(f"component: 1 to {MAX_COMPONENT} characters, action: 1 to {MAX_ACTION}")
        if self.release is not None or self.environment is not None:  # usually neither: no loop
            _check_labels(self)
        problem = event_problem(self)
        if problem:
            raise ValueError(problem)
        prepare_events([self])

    @property
    def epoch(self) -> float:
        """The timestamp as epoch seconds."""
        ts = self.timestamp
        return ts.timestamp() if isinstance(ts, datetime) else float(ts)

    @property
    def is_error(self) -> bool:
        """True when the event failed."""
        return self.status == "error"

    @property
    def is_self(self) -> bool:
        """True for the monitor's own traffic (tagged ``vocabulary.OWN_TRAFFIC_TAG``)."""
        return is_own_traffic(self.details)

    @property
    def endpoint(self) -> str | None:
        """The endpoint key (``GET /api/orders/:id``) for backend http and frontend api events."""
        if (self.service, self.component) in (("backend", "http"), ("frontend", "api")):
            return self.action
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-ready builtins."""
        return msgspec.to_builtins(self)


def _check_labels(event: ExecutionEvent) -> None:
    """Raise ValueError unless the event's release and environment are text the schema allows."""
    for name, limit in (("release", MAX_RELEASE), ("environment", MAX_ENVIRONMENT)):
        value = getattr(event, name)
        if value is not None and not (value.__class__ is str and 0 < len(value) <= limit):
            raise ValueError(f"{name}: must be text of 1 to {limit} characters")


def _iso_pattern() -> str:
    """The ISO 8601 times msgspec decodes (RFC 3339, also naive, ``t``/space, ``+hhmm``), in years
    1970 to 2999 and real calendar dates: the schema's word for what ``_to_datetime`` takes.

    1970-01-01 and 2999-12-31 are left out: whether a time on them is in range depends on its
    offset, which a pattern cannot weigh. ``[0-9]``, not ``\\d``: Python's matches other digits.
    """
    d31, d30, d28 = "(?:0[1-9]|[12][0-9]|3[01])", "(?:0[1-9]|[12][0-9]|30)", "(?:0[1-9]|1[0-9]|2[0-8])"
    short = f"(?:0[469]|11)-{d30}|02-{d28}"
    common = f"(?:(?:0[13578]|1[02])-{d31}|{short})"
    leap = "(?:19(?:7[26]|8[048]|9[26])|2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00)-02-29"
    years = "(?:19(?:7[1-9]|[89][0-9])|2[0-8][0-9]{2}|29[0-8][0-9]|299[0-8])"
    first = f"1970-(?:01-(?:0[2-9]|[12][0-9]|3[01])|(?:0[3578]|1[02])-{d31}|{short})"
    last = f"2999-(?:12-{d30}|(?:0[13578]|10)-{d31}|{short})"
    time = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]+)?"
    zone = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?"
    return f"^(?:{years}-{common}|{leap}|{first}|{last})[Tt ]{time}{zone}$"


ISO_PATTERN = _iso_pattern()
# The forms a client may send, for the schema (the decoder and ``_to_datetime`` enforce them).
IncomingTimestamp = Annotated[
    Annotated[datetime, msgspec.Meta(extra_json_schema={"pattern": ISO_PATTERN})]
    | Annotated[
        float,
        msgspec.Meta(
            extra_json_schema={"anyOf": [{"const": 0}, {"minimum": MIN_EPOCH, "exclusiveMaximum": MAX_EPOCH}]}
        ),
    ],
    msgspec.Meta(
        description="ISO 8601 (no zone means UTC) or epoch seconds (0 or absent: now), "
        "after 1970-01-01 and before 3000-01-01 UTC"
    ),
]


class IncomingEvent(ExecutionEvent):
    """An event as a client may send it: epoch seconds or a naive ISO time allowed."""

    timestamp: IncomingTimestamp = 0.0


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Which events a view counts: those of ``release`` and of ``environment`` (None: any). The
    live views and the report's files filter alike (anything with the two attributes)."""

    release: str | None = None
    environment: str | None = None

    def __bool__(self) -> bool:
        return self.release is not None or self.environment is not None

    def matches(self, event: Any) -> bool:
        """True when ``event`` is of the release and the environment asked for."""
        return (self.release is None or event.release == self.release) and (
            self.environment is None or event.environment == self.environment
        )

    def as_dict(self) -> dict[str, str]:
        """The values asked for (those given), e.g. for a report's summary."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _settled(event: ExecutionEvent) -> ExecutionEvent:
    """The ExecutionEvent of a checked ``IncomingEvent`` (``event_problem`` has settled its time)."""
    fields = {name: getattr(event, name) for name in ExecutionEvent.__struct_fields__}
    return msgspec.StructMeta.__call__(ExecutionEvent, **fields)


class _Envelope(msgspec.Struct):
    events: list[ExecutionEvent]


class _RawEnvelope(msgspec.Struct):
    events: list[msgspec.Raw]


class BatchError(ValueError):
    """The body as a whole is unusable (not JSON, not a batch); maps to HTTP 400."""


class BatchResult(msgspec.Struct):
    """Outcome of decoding one batch: the valid events and why the others were refused."""

    events: list[ExecutionEvent]
    errors: list[dict[str, Any]]

    @property
    def accepted(self) -> int:
        """How many events were valid."""
        return len(self.events)

    @property
    def rejected(self) -> int:
        """How many events were refused."""
        return len(self.errors)


_list_decoder = msgspec.json.Decoder(list[ExecutionEvent])
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_raw_envelope_decoder = msgspec.json.Decoder(_RawEnvelope)
_event_decoder = msgspec.json.Decoder(IncomingEvent)
_encoder = msgspec.json.Encoder()


def decode_batch(body: bytes, max_events: int = MAX_BATCH_EVENTS) -> BatchResult:
    """Decode a JSON array of events or ``{"events": [...]}``, keeping every valid event.

    The events are validated, not yet scrubbed: ``prepare_events`` filters their secrets
    before anything keeps them. Raises BatchError when the body is not JSON or not a batch.
    """
    start = body.lstrip()[:1]
    fast: msgspec.json.Decoder[Any]
    raw_decoder: msgspec.json.Decoder[Any]
    if start == b"[":
        fast, raw_decoder = _list_decoder, _raw_list_decoder
    elif start == b"{":
        fast, raw_decoder = _envelope_decoder, _raw_envelope_decoder
    else:
        raise BatchError('body must be a JSON array of events or {"events": [...]}')
    try:
        decoded = fast.decode(body)
        events = decoded if isinstance(decoded, list) else decoded.events
        if len(events) <= max_events and _batch_ok(events):
            return BatchResult(events=events, errors=[])
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        pass
    raw: list[msgspec.Raw] | _RawEnvelope | list[bytes | None]
    try:
        raw = raw_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchError(_friendly(str(exc), prefix="body")) from None
    except msgspec.DecodeError as exc:
        repaired = _replace_lone_surrogates(body)
        if repaired is not body:
            return decode_batch(repaired, max_events)
        raise BatchError(f"malformed JSON: {exc}") from None
    except RecursionError:
        raw = _shallow_items(_replace_lone_surrogates(body))  # too deep for msgspec: no recursion
    except UnicodeDecodeError:
        raise BatchError("body is not valid UTF-8") from None
    items = raw if isinstance(raw, list) else raw.events
    events, errors = [], []
    for index, item in enumerate(items):
        if index >= max_events:
            errors.append(
                {"index": index, "error": f"events[{index}]: batch holds more than {max_events} events"}
            )
            continue
        if item is None:
            errors.append({"index": index, "error": f"events[{index}].{TOO_DEEP}"})
            continue
        try:
            event = _event_decoder.decode(item)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            errors.append({"index": index, "error": _friendly(str(exc), prefix=f"events[{index}]")})
            continue
        problem = event_problem(event)
        if problem:
            errors.append({"index": index, "error": f"events[{index}].{problem}"})
        else:
            events.append(_settled(event))
    return BatchResult(events=events, errors=errors)


# A JSON string (its escapes included) or a byte that opens, closes or separates a value.
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _shallow_items(body: bytes) -> list[bytes | None]:
    """The events of a batch too deep for msgspec, each as its JSON text, None for one nesting
    deeper than an event may: found by one loop over the body's structure, without recursion.

    Raises BatchError when the batch's array is not closed. Only such hostile bodies come here.
    """
    envelope = body.lstrip()[:1] == b"{"
    items: list[bytes | None] = []
    depth, level, start, deepest, previous = 0, -1, 0, 0, b""
    for match in _STRUCTURE.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            if (
                level == -1
                and token == b"["
                and (depth == 1 and previous == b'"events"' if envelope else depth == 0)
            ):
                level, start, deepest = depth + 1, match.end(), depth + 1
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}") or (token == b"," and depth == level):
            if depth == level:
                item = body[start : match.start()]
                if item.strip() or token == b",":
                    items.append(None if deepest - level > MAX_DETAILS_DEPTH + 1 else item)
                start, deepest = match.end(), level
                if token != b",":
                    return items
            depth -= token != b","
        previous = token
    raise BatchError("malformed JSON: the batch's array is not closed")


# An escaped backslash (kept, so the ``u`` after it is text), a valid surrogate pair (kept), a lone one.
_SURROGATE_ESCAPES = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)


def _replace_lone_surrogates(body: bytes) -> bytes:
    """``body`` with each lone UTF-16 surrogate escape made ``\\ufffd``, or ``body`` itself if none.

    RFC 8259 allows them and our clients write them (a file name from os.fsdecode, an emoji
    cut in two by a slice), but msgspec refuses the whole body; Go's encoding/json does the
    same replacement. Each escape keeps its length, so error positions still hold.
    """
    if b"\\u" not in body:
        return body
    repaired = _SURROGATE_ESCAPES.sub(_replacement, body)
    return repaired if repaired != body else body


def _replacement(match: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if match.group(1) else match.group()


def convert_event(fields: dict[str, Any]) -> ExecutionEvent:
    """An event from builtins (as msgspec.convert would), checked like a decoded one.

    Raises ValueError (msgspec.ValidationError is one) naming the field; like decoded
    events, it is scrubbed by ``prepare_events`` when the monitor keeps it.
    """
    event = msgspec.convert(fields, IncomingEvent)
    problem = event_problem(event)
    if problem:
        raise ValueError(problem)
    return _settled(event)


def _batch_ok(events: list[ExecutionEvent]) -> bool:
    """Check a decoded batch as a whole for what the schema cannot say; False sends it event by event.

    A few passes in C over the whole batch cost less than one Python call per event.
    """
    # All ids in one string (each of the length the schema says), checked in one pass in C.
    ids = "".join([e.trace_id for e in events if e.trace_id is not None])
    ids += "".join([e.span_id for e in events if e.span_id is not None])
    ids += "".join([e.parent_span_id for e in events if e.parent_span_id is not None])
    if not (ids.isascii() and not ids.encode().translate(None, _HEX_BYTES)):
        return False
    times = cast("list[datetime]", [e.timestamp for e in events])  # decoded: all aware datetimes
    times.sort()  # about one comparison an event: a batch is mostly in time order already
    if times and not (_EARLIEST < times[0] and times[-1] < _LATEST):
        return False
    # Every event's details within the limit when all of them together are (empty ones add "{}").
    details = [e.details for e in events]
    encoded = _encoder.encode(details)
    # Each event's details open one object; fewer other brackets than the limit (counted in C in
    # one pass, those inside strings too) and no event can nest too deep.
    brackets = len(encoded) - len(encoded.translate(None, b"{["))
    if brackets - len(details) > MAX_DETAILS_DEPTH and any(_too_deep(d) for d in details):
        return False
    if len(encoded) > MAX_DETAILS_BYTES:
        # Each event's details as it was encoded in the list (msgspec writes no spaces), split
        # off in C: one scan instead of encoding every event's details once more.
        return max(map(len, _raw_list_decoder.decode(encoded))) <= MAX_DETAILS_BYTES
    return True


def _too_deep(details: dict[str, Any]) -> bool:
    """True when ``details`` nests more than MAX_DETAILS_DEPTH levels: a walk with a stack of its
    own, as any depth may come in (events built in Python included)."""
    stack: list[tuple[Any, int]] = [(details, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DETAILS_DEPTH:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))
    return False


def event_problem(event: ExecutionEvent) -> str | None:
    """Settle one event's timestamp and name the first rule the schema could not check, or None.

    Also for events read back from storage, which did not come through ``decode_batch``."""
    try:
        event.timestamp = _to_datetime(event.timestamp)
    except (ValueError, TypeError) as exc:
        return str(exc)
    if event.trace_id is not None and not _is_hex(event.trace_id):
        return "trace_id: must be 32 lowercase hex characters"
    if event.span_id is not None and not _is_hex(event.span_id):
        return "span_id: must be 16 lowercase hex characters"
    if event.parent_span_id is not None and not _is_hex(event.parent_span_id):
        return "parent_span_id: must be 16 lowercase hex characters"
    if event.sample_rate is not None and not MIN_SAMPLE_RATE <= event.sample_rate <= 1:  # NaN fails too
        return f"sample_rate: must be at least {MIN_SAMPLE_RATE} and at most 1"
    if event.details and _too_deep(event.details):
        return TOO_DEEP
    if event.details and len(_encoder.encode(event.details)) > MAX_DETAILS_BYTES:
        return f"details: must be at most {MAX_DETAILS_BYTES} bytes as JSON"
    return None


def _is_hex(text: str) -> bool:
    return text.isascii() and not text.encode().translate(None, _HEX_BYTES)


def prepare_events(events: list[ExecutionEvent], scrubber: Scrubber = DEFAULT) -> None:
    """Make validated events fit to keep, in place: secrets scrubbed, repeated strings shared.

    The monitor calls this on every batch before it journals or stores it, with the scrubber
    of its ``--scrub-keys`` (events built in Python get the built-in rules on construction):
    every source (``/events``, OTLP, the Python API) goes through here. Sharing the few
    component, action and short detail strings that repeat across thousands of events is
    most of a stored event's memory; the scrubber's caches hold the shared copies.
    """
    scrubber.prepare(events)


_FIELDS = {
    "timestamp",
    "service",
    "component",
    "action",
    "duration_ms",
    "status",
    "details",
    "trace_id",
    "span_id",
    "parent_span_id",
    "sample_rate",
    "release",
    "environment",
}
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_RULES = [
    (re.compile(r"Expected `str` of length [<>]= (32|16)$"), r"must be \1 lowercase hex characters"),
    (re.compile(r"Expected `str` of length >= 1$"), "must not be empty"),
    (re.compile(r"Expected `str` of length <= (\d+)"), r"must be at most \1 characters"),
    (re.compile(r"Expected `float` >= 0\.0001$"), f"must be at least {MIN_SAMPLE_RATE}"),
    (re.compile(r"Expected `float` >= 0(\.0)?"), "must be >= 0"),
    (re.compile(r"Expected `float` <= 1(\.0)?$"), "must be at most 1"),
    (re.compile(r"Expected `float` <= .*"), "is too large"),
    (
        re.compile(r"Expected `str` matching regex '\^\[0-9a-f\]\{(\d+)\}\$'"),
        r"must be \1 lowercase hex characters",
    ),
    (re.compile(r"Invalid enum value '(.*)'"), r"invalid value '\1'"),
    (re.compile(r"Invalid RFC3339 encoded datetime"), "must be ISO 8601 or epoch seconds"),
    (re.compile(r"Expected `float \| null`, got `(\w+)`"), r"must be a number or null, got \1"),
    (re.compile(r"Expected `str \| null`, got `(\w+)`"), r"must be text or null, got \1"),
    (re.compile(r"Expected `(\w+)`, got `(\w+)`"), r"must be \1, got \2"),
    (re.compile(r"Object missing required field `(\w+)`"), r"\1: required"),
]


def _friendly(message: str, prefix: str) -> str:
    """Turn msgspec's message into ``events[3].duration_ms: must be >= 0``."""
    path = ""
    match = _PATH.search(message)
    if match:
        path = match.group("path")
        message = message[: match.start()]
    if message.split(": ", 1)[0] in _FIELDS:
        field_name, _, message = message.partition(": ")
        path = f"{path}.{field_name}"
    for pattern, replacement in _RULES:
        if pattern.search(message):
            message = pattern.sub(replacement, message)
            break
    if message.endswith(": required") and ":" in message:
        field_name, _, message = message.partition(": ")
        path = f"{path}.{field_name}"
    return f"{prefix}{path}: {message}"


def _to_datetime(value: Any) -> datetime:
    """An aware datetime in the accepted range from any accepted form; ValueError or TypeError if not."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not _EARLIEST < aware < _LATEST:
            raise ValueError(_OUT_OF_RANGE)
        return aware
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("timestamp: must be ISO 8601 or epoch seconds") from None
        return _to_datetime(parsed)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == 0.0:
            return datetime.now(UTC)
        if not math.isfinite(value) or not MIN_EPOCH <= value < MAX_EPOCH:
            raise ValueError(_OUT_OF_RANGE)
        return _to_datetime(datetime.fromtimestamp(value, UTC))  # 1e-7 rounds to the epoch itself
    raise TypeError("timestamp: must be ISO 8601 or epoch seconds")
