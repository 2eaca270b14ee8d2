"""The batch policy both stores follow, so the memory and Redis stores give the same figures.

- **Which events count**: every event but the monitor's own traffic (``vocabulary.is_own_traffic``);
  own traffic is stored and listed, never counted, compared or paired.
- **Which events pair**: counted endpoint events with a trace id *and* a duration. An untimed
  half can never give a gap, so it is not offered: it cannot take the place of a timed half.
- **How a pair is made**: a half meets the waiting half of the same trace id from the other side
  (a half of the same side takes the waiting one's place); the two give the browser-minus-server
  gap when they are calls of the same endpoint.
- **How long an unpaired half waits**: at most ``PENDING_TTL_S`` seconds, and at most
  ``PENDING_MAX`` halves wait: past that the oldest are dropped.
- **The window's length in minutes**: from the later of the window's start and the first event
  to now, at least one bucket long (``window_minutes``).

The join rule is written here twice, once in Python for one process (``TraceJoin``) and once
in Lua for Redis (``JOIN_SCRIPT``, atomic across processes); a change of it is an edit here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from live_monitor.vocabulary import ENDPOINT_COMPONENTS, OWN_TRAFFIC_TAG, SERVICES, Service

PENDING_MAX = 20_000  # unpaired halves that wait at most; the oldest are dropped first
PENDING_TTL_S = 600.0  # seconds an unpaired half waits for its other half at most

_SIDE = {service[0]: service for service in SERVICES}


class Traced(Protocol):
    """What the policy reads of an event: the monitor's ``ExecutionEvent`` and the tools' ``Event``."""

    @property
    def service(self) -> Service: ...
    @property
    def component(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def details(self) -> Mapping[str, Any] | None: ...

    trace_id: str | None  # a pair's second half is given the first half's string


E = TypeVar("E", bound=Traced)


# Both rules below run on every stored event, so they are written for batches: one comprehension
# each, with the cheap tests first (an event without details is never own traffic).


def counted(events: Iterable[E]) -> list[E]:
    """The events of a batch that count in the figures, in order: all but the monitor's own traffic."""
    tag = OWN_TRAFFIC_TAG  # vocabulary.is_own_traffic, inlined: a call per event cost 5% of ingest
    return [e for e in events if not e.details or e.details.get(tag) is not True]


def pairable(counted_events: Iterable[E]) -> list[E]:
    """The ``counted`` events of a batch offered to the trace joiner, in order: timed endpoint
    events with a trace id."""
    return [
        e
        for e in counted_events
        if e.trace_id is not None
        and e.duration_ms is not None
        and e.component == ENDPOINT_COMPONENTS[e.service]
    ]


def by_side(events: list[E]) -> tuple[list[E], list[E]]:
    """(backend events, frontend events), in order; one pass when a batch holds one side."""
    backend = [e for e in events if e.service == "backend"]
    if len(backend) == len(events):
        return backend, []
    if not backend:
        return [], events
    return backend, [e for e in events if e.service == "frontend"]


class Half(NamedTuple):
    """An unpaired half of a traced request, as it waits: not the event, whose details would stay alive."""

    service: str
    at: float  # when it arrived, by the store's clock
    duration_ms: float
    endpoint: str
    trace_id: str

    @classmethod
    def of(cls, event: Traced, at: float) -> Half:
        """The half a ``pairable`` event leaves waiting."""
        # tuple.__new__ skips the generated __new__: this runs for every offered event.
        return tuple.__new__(cls, (event.service, at, event.duration_ms, event.action, event.trace_id))

    def encode(self) -> str:
        """The half as ``JOIN_SCRIPT`` keeps it: ``side letter|at|duration|endpoint``."""
        return f"{self.service[0]}|{self.at!r}|{self.duration_ms!r}|{self.endpoint}"

    @classmethod
    def decode(cls, value: str, trace_id: str) -> Half:
        """A half kept by ``JOIN_SCRIPT``."""
        side, at, ms, endpoint = value.split("|", 3)
        return cls(_SIDE[side], float(at), float(ms), endpoint, trace_id)


def meets(waiting: Half | None, service: str, now: float) -> bool:
    """True when a half of ``service`` arriving at ``now`` pairs with the ``waiting`` half."""
    return waiting is not None and waiting.service != service and now - waiting.at <= PENDING_TTL_S


def gap(event: Traced, waiting: Half) -> float | None:
    """The browser-minus-server milliseconds of a pair, or None when the halves are different calls."""
    if waiting.endpoint != event.action or event.duration_ms is None:
        return None
    if event.service == "frontend":
        return event.duration_ms - waiting.duration_ms
    return waiting.duration_ms - event.duration_ms


def window_minutes(now: float, first_event_at: float | None, window_s: float, bucket_s: float) -> float:
    """How many minutes the window's figures cover: since the window's start or the first event,
    whichever is later, and at least one bucket (so a first event is not a rate per 0 minutes)."""
    first = now if first_event_at is None else first_event_at
    return max(min(window_s, now - first), bucket_s) / 60


class TraceJoin:
    """The halves waiting in one process (the memory store's), by trace id, oldest first."""

    def __init__(self) -> None:
        self._waiting: dict[str, Half] = {}  # insertion order is arrival order

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, events: list[E], now: float) -> list[tuple[str, float]]:
        """Offer ``pairable`` events that arrived at ``now``, in order; (endpoint, gap) per pair.

        A completed pair's second half is given the first half's trace-id string, so the two
        stored events share one copy of it.
        """
        waiting = self._waiting
        oldest = now - PENDING_TTL_S
        while waiting and waiting[first := next(iter(waiting))].at < oldest:
            del waiting[first]
        gaps = []
        pop = waiting.pop
        for event in events:
            trace = event.trace_id
            assert trace is not None
            other = pop(trace, None)
            if other is not None and meets(other, event.service, now):
                event.trace_id = other.trace_id
                found = gap(event, other)
                if found is not None:
                    gaps.append((event.action, found))
                continue
            waiting[trace] = Half.of(event, now)
            if len(waiting) > PENDING_MAX:
                del waiting[next(iter(waiting))]
        return gaps


# The same rule for Redis, atomic whichever process receives each half. KEYS: the halves'
# trace keys, then the sorted set of waiting keys in arrival order and its arrival counter.
# ARGV: the halves (Half.encode), then now, PENDING_TTL_S and PENDING_MAX. Returns, per half,
# the waiting half it met, or false. A key also expires by itself (EX), in case none follows.
JOIN_SCRIPT = """
local n = #KEYS - 2
local index, counter = KEYS[n + 1], KEYS[n + 2]
local now, ttl, most = tonumber(ARGV[n + 1]), tonumber(ARGV[n + 2]), tonumber(ARGV[n + 3])
local function age(value)
  local at = value and tonumber(string.match(value, '^%a|([^|]*)|'))
  return at and now - at or math.huge
end
local function drop(key)
  redis.call('DEL', key)
  redis.call('ZREM', index, key)
end
repeat  -- the oldest first, until one is young enough to wait on
  local oldest = redis.call('ZRANGE', index, 0, 0)[1]
  local expired = oldest and age(redis.call('GET', oldest)) > ttl
  if expired then drop(oldest) end
until not expired
local arrival = redis.call('INCRBY', counter, n) - n
local out = {}
for i = 1, n do
  local key, mine = KEYS[i], ARGV[i]
  local other = redis.call('GETDEL', key)
  if other and string.sub(other, 1, 1) ~= string.sub(mine, 1, 1) and age(other) <= ttl then
    redis.call('ZREM', index, key)
    out[i] = other
  else
    redis.call('SET', key, mine, 'EX', math.ceil(ttl))
    redis.call('ZADD', index, arrival + i, key)
    out[i] = false
  end
end
local excess = redis.call('ZCARD', index) - most
if excess > 0 then
  for _, key in ipairs(redis.call('ZRANGE', index, 0, excess - 1)) do drop(key) end
end
return out
"""
