"""The batch policy both stores follow, so the memory and Redis stores give the same figures.

- **Which events count**: every event but the monitor's own traffic (``vocabulary.is_own_traffic``);
  own traffic is stored and listed, never counted, compared or paired.
- **Which events pair**: counted endpoint events (browser ``api`` calls, server ``http``
  requests) with a trace id *and* a duration. An untimed half can never give a gap, so it is
  not offered; nor are the trace's other spans (a backend's outgoing ``http-client`` calls,
  internal spans), so none of them can break a pair.
- **How a pair is made** (``choose``): a trace may hold many halves, and an arriving half meets,
  among the waiting halves of the same trace from the other side,
  1. the one its span ties it to: a browser call meets the server request whose
     ``parent_span_id`` is the call's ``span_id``;
  2. failing that, one whose tie is unknown (no span id on the call or no parent id on the
     request) with the same endpoint key;
  3. failing that, when it is the trace's only waiting half, the tie is unknown, the server's
     half names no parent at all and the method (the key's first word) is the same, that one
     (one browser call and one server request: the old clients' traces, whose keys differ where
     the browser has a name the server's route holds as ``:name``).
  The oldest such half first. Spans that are tied elsewhere (a downstream service's request,
  whose parent is the backend's outgoing call) never meet a browser call; several calls in one
  trace each meet their own request. The pair's gap (browser minus server) counts under the
  **server's** key; a browser event that arrives second is re-keyed to it before it is counted
  (one that arrived first was counted under its own key, and stays so).
- **How long an unpaired half waits**: at most ``PENDING_TTL_S`` seconds, at most
  ``PENDING_MAX`` halves wait (past that the oldest are dropped), and at most ``TRACE_MAX`` of
  one trace (past that the trace's oldest is dropped).
- **The window's length in minutes**: from the later of the window's start and the first event
  to now, at least one bucket long (``window_minutes``).

The join rule is written here twice, once in Python for one process (``TraceJoin``, ``choose``)
and once in Lua for Redis (``JOIN_SCRIPT``, atomic across processes); a change of it is an edit
here, and tests/test_store.py holds both to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from live_monitor.vocabulary import ENDPOINT_COMPONENTS, OWN_TRAFFIC_TAG, SERVICES, Service

PENDING_MAX = 20_000  # unpaired halves that wait at most; the oldest are dropped first
PENDING_TTL_S = 600.0  # seconds an unpaired half waits for its other half at most
TRACE_MAX = 64  # unpaired halves of one trace that wait at most: a trace's halves are scanned on each arrival

_SIDE = {service[0]: service for service in SERVICES}


class Traced(Protocol):
    """What the policy reads of an event: the monitor's ``ExecutionEvent`` and the tools' ``Event``."""

    @property
    def service(self) -> Service: ...
    @property
    def component(self) -> str: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def details(self) -> Mapping[str, Any] | None: ...

    action: str  # a browser call arriving second is given its server request's key
    trace_id: str | None  # a pair's second half is given the first half's string
    span_id: str | None  # and, tied, the string of the span id that ties them
    parent_span_id: str | None


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
    link: str | None  # the span that ties a pair: a browser call's own, a server request's parent

    @classmethod
    def of(cls, event: Traced, at: float) -> Half:
        """The half a ``pairable`` event leaves waiting."""
        link = event.span_id if event.service == "frontend" else event.parent_span_id
        # tuple.__new__ skips the generated __new__: this runs for every offered event.
        return tuple.__new__(cls, (event.service, at, event.duration_ms, event.action, event.trace_id, link))

    def encode(self) -> str:
        """The half as ``JOIN_SCRIPT`` keeps it: ``side letter|at|duration|link|endpoint``."""
        return f"{self.service[0]}|{self.at!r}|{self.duration_ms!r}|{self.link or ''}|{self.endpoint}"

    @classmethod
    def decode(cls, value: str, trace_id: str) -> Half:
        """A half kept by ``JOIN_SCRIPT``."""
        side, at, ms, link, endpoint = value.split("|", 4)
        return cls(_SIDE[side], float(at), float(ms), endpoint, trace_id, link or None)


def choose(mine: Half, waiting: list[Half], now: float) -> int | None:
    """Which of a trace's ``waiting`` halves (in arrival order) the arriving half ``mine`` meets,
    by the three rules of the module's docstring; None when it meets none and waits itself."""
    live = [i for i, half in enumerate(waiting) if now - half.at <= PENDING_TTL_S]
    others = [i for i in live if waiting[i].service != mine.service]
    link = mine.link
    if link is not None:
        for i in others:
            if waiting[i].link == link:
                return i
    untied = [i for i in others if link is None or waiting[i].link is None]
    for i in untied:
        if waiting[i].endpoint == mine.endpoint:
            return i
    if len(live) == 1 and untied and _only_two_meet(mine, waiting[untied[0]]):
        return untied[0]
    return None


def _meets_one(event: Traced, other: Half) -> bool:
    """``choose`` for a trace whose only waiting half is ``other``, live and of the other side:
    whether the arriving ``event`` meets it (the tied half; else, one of them untied, the same
    key, or the same method when the server's half names no parent)."""
    if event.service == "frontend":
        link, server_link = event.span_id, other.link
    else:
        link = server_link = event.parent_span_id
    if link is not None and other.link is not None:
        return link == other.link  # rule 1 (both tied: to each other, or elsewhere)
    endpoint = event.action
    if other.endpoint == endpoint:  # rule 2
        return True
    return server_link is None and _method(other.endpoint) == _method(endpoint)  # rule 3


def _only_two_meet(mine: Half, other: Half) -> bool:
    """Rule 3: a trace's only two halves meet when they are calls of one method and the server's
    half names no parent: one that does was made in another span (a downstream service's
    request, child of the backend's outgoing call), never in a browser call without a span id."""
    server = mine if mine.service == "backend" else other
    return server.link is None and _method(other.endpoint) == _method(mine.endpoint)


def _method(endpoint: str) -> str:
    """An endpoint key's method (``GET`` of ``GET /api/users/:id``)."""
    return endpoint.partition(" ")[0]


def pair(event: Traced, other: Half) -> tuple[str, float]:
    """The pair an offered ``event`` makes with the waiting half it met: (the server's key, the
    browser-minus-server milliseconds).

    A browser event takes the server's key (it is not counted yet), and the event is given the
    waiting half's trace-id string, so the two stored events share one copy of it; a tied pair
    shares the span id that ties it too (the call's ``span_id``, the request's ``parent_span_id``).
    """
    event.trace_id = other.trace_id
    ms = event.duration_ms
    assert ms is not None  # pairable events are timed
    link = other.link
    if event.service == "backend":
        if link is not None and event.parent_span_id == link:
            event.parent_span_id = link
        return event.action, other.duration_ms - ms
    if link is not None and event.span_id == link:
        event.span_id = link
    if event.action != other.endpoint:
        event.action = other.endpoint
    return other.endpoint, ms - other.duration_ms


def window_minutes(now: float, first_event_at: float | None, window_s: float, bucket_s: float) -> float:
    """How many minutes the window's figures cover: since the window's start or the first event,
    whichever is later, and at least one bucket (so a first event is not a rate per 0 minutes)."""
    first = now if first_event_at is None else first_event_at
    return max(min(window_s, now - first), bucket_s) / 60


def _held(halves: list[Half]) -> Half | list[Half]:
    """A trace's entry while it waits: its one half, or the list of several."""
    return halves[0] if len(halves) == 1 else halves


class TraceJoin:
    """The halves waiting in one process (the memory store's, the report's), by trace id.

    A trace's entry holds its one waiting half or, when several wait, their list in arrival
    order (one half per trace is the common case, and costs no list). Traces stand in line in
    the order their waiting began, and the bounds take from the front. A trace whose oldest
    halves leave while younger ones stay goes to the back, so those may be kept a while past
    their ten minutes (``choose`` skips them: they never pair) or outlast younger halves at
    ``PENDING_MAX``; ``JOIN_SCRIPT`` keeps each half's own place in line.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, Half | list[Half]] = {}  # insertion order is arrival order
        self._count = 0  # halves waiting

    def __len__(self) -> int:
        return self._count

    def offer(self, events: list[E], now: float) -> list[tuple[str, float]]:
        """Offer ``pairable`` events that arrived at ``now``, in order; (server's key, gap) per pair.

        The common cases are decided inline, without ``choose``'s lists: no half of the trace
        waits (this one waits), or one does (``_meets_one``, the same three rules for a single
        half); a trace with several waiting halves goes through ``choose``.
        """
        waiting = self._waiting
        self._expire(now - PENDING_TTL_S)
        gaps: list[tuple[str, float]] = []
        get = waiting.get
        for event in events:
            trace = event.trace_id
            assert trace is not None  # pairable events have one
            held = get(trace)
            service = event.service
            if held is None:  # the trace's first half: it waits (Half.of, inlined)
                link = event.span_id if service == "frontend" else event.parent_span_id
                waiting[trace] = tuple.__new__(
                    Half, (service, now, event.duration_ms, event.action, trace, link)
                )
                self._count += 1
                if self._count > PENDING_MAX:
                    self._drop_oldest()
                continue
            if type(held) is Half:  # one waiting half: met, or this one waits beside it
                if held.service != service and now - held.at <= PENDING_TTL_S and _meets_one(event, held):
                    del waiting[trace]
                    self._count -= 1
                    gaps.append(pair(event, held))
                    continue
                self._wait(Half.of(event, now), [held], now)
            else:
                assert isinstance(held, list)
                mine = Half.of(event, now)
                index = choose(mine, held, now)
                if index is None:
                    self._wait(mine, held, now)
                else:
                    gaps.append(pair(event, self._take(trace, held, index)))
            if self._count > PENDING_MAX:
                self._drop_oldest()
        return gaps

    def _take(self, trace: str, halves: list[Half], index: int) -> Half:
        """Take the half at ``index`` out of a trace's several waiting halves."""
        rest = halves[:index] + halves[index + 1 :]
        self._waiting[trace] = _held(rest)
        self._count -= 1
        return halves[index]

    def _wait(self, mine: Half, halves: list[Half], now: float) -> None:
        """Add an unpaired half to its trace's waiting ones, which the expired leave, and the
        oldest past ``TRACE_MAX``."""
        trace = mine.trace_id
        live = [half for half in halves if now - half.at <= PENDING_TTL_S][-(TRACE_MAX - 1) :]
        self._count += len(live) + 1 - len(halves)
        if live:
            self._waiting[trace] = [*live, mine]
        else:  # the trace's waiting begins anew: to the back of the line
            del self._waiting[trace]
            self._waiting[trace] = mine

    def _expire(self, oldest: float) -> None:
        """Drop the halves that arrived before ``oldest``, from the front of the line."""
        waiting = self._waiting
        while waiting:
            trace = next(iter(waiting))
            held = waiting[trace]
            if not isinstance(held, list):
                if held.at >= oldest:
                    return
                del waiting[trace]
                self._count -= 1
                continue
            live = [half for half in held if half.at >= oldest]
            if len(live) == len(held):
                return
            self._count -= len(held) - len(live)
            del waiting[trace]
            if live:
                waiting[trace] = _held(live)

    def _drop_oldest(self) -> None:
        """Drop the half at the front of the line (past ``PENDING_MAX``)."""
        trace = next(iter(self._waiting))
        held = self._waiting.pop(trace)
        self._count -= 1
        if isinstance(held, list):
            rest = held[1:]
            self._waiting[trace] = _held(rest)


# The same rule for Redis, atomic whichever process receives each half. A trace's waiting
# halves are the fields of one hash (field: the half's arrival number, value: Half.encode), and
# a sorted set lists every waiting half (``trace key#arrival``) in arrival order, for the bounds.
# KEYS: the halves' trace keys, then that sorted set and the arrival counter. ARGV: the halves,
# then now, PENDING_TTL_S, PENDING_MAX and TRACE_MAX. Returns, per half, the waiting half it
# met, or false. A trace's hash also expires by itself (EX), in case no half follows. Each trace's
# hash is read once a call and written back once at its end (HDEL, HSET, one ZREM and one ZADD
# for all): a half that waits and is met within one call costs no write at all.
JOIN_SCRIPT = """
local n = #KEYS - 2
local index, counter = KEYS[n + 1], KEYS[n + 2]
local now, ttl = tonumber(ARGV[n + 1]), tonumber(ARGV[n + 2])
local most, per_trace = tonumber(ARGV[n + 3]), tonumber(ARGV[n + 4])
local function parse(value)  -- side letter, arrival time, link ('' for none), endpoint key
  local side, at, link, endpoint = string.match(value, '^(%a)|([^|]*)|[^|]*|([^|]*)|(.*)$')
  return side, tonumber(at), link, endpoint
end
local function age(value)
  local at = value and tonumber(string.match(value, '^%a|([^|]*)|'))
  return at and now - at or math.huge
end
local function drop(member)
  local key, field = string.match(member, '^(.*)#(%d+)$')
  redis.call('HDEL', key, field)
  redis.call('ZREM', index, member)
end
local function choose(mine, fields)
  -- Returns the position in fields of the half mine meets (or nil), the trace's live halves,
  -- and the position of its oldest live half. Rule 1: the tied half; 2: an untied one with
  -- the same key; 3: the trace's only live half, untied, of the same method. The oldest first
  -- (lowest arrival).
  local side, _, link, endpoint = parse(mine)
  local tied, keyed, untied, oldest, live = nil, nil, nil, nil, 0
  local method = string.match(endpoint, '^[^ ]*')
  local first = {}  -- arrival number by position, for "the oldest first"
  for j = 1, #fields, 2 do
    local s, at, l, e = parse(fields[j + 1])
    if now - at <= ttl then
      local f = tonumber(fields[j])
      first[j], live = f, live + 1
      if not oldest or f < first[oldest] then oldest = j end
      if s ~= side then
        if link ~= '' and l == link then
          if not tied or f < first[tied] then tied = j end
        elseif link == '' or l == '' then
          if e == endpoint and (not keyed or f < first[keyed]) then keyed = j end
          local server_link = (side == 'b') and link or l  -- rule 3: the server's half names no parent
          if string.match(e, '^[^ ]*') == method and server_link == '' then untied = j end
        end
      end
    end
  end
  local found = tied or keyed or (live == 1 and untied) or nil
  return found, live, oldest
end
repeat  -- the oldest first, until one is young enough to wait on
  local oldest = redis.call('ZRANGE', index, 0, 0)[1]
  local expired = false
  if oldest then
    local key, field = string.match(oldest, '^(.*)#(%d+)$')
    expired = age(redis.call('HGET', key, field)) > ttl
    if expired then drop(oldest) end
  end
until not expired
local arrival = redis.call('INCRBY', counter, n) - n
-- Each trace's hash is read once and written once, after the loop: a half that waits and is met
-- in the same call never reaches Redis (cache: a trace's halves as HGETALL lists them, kept
-- current; added: the fields the call adds, in order, with their values in value; gone: the
-- fields that were in Redis and leave).
local cache, traces, added, value, gone, touched = {}, {}, {}, {}, {}, {}
local function forget(key, field)
  if value[key] and value[key][field] then value[key][field] = nil return end
  gone[key] = gone[key] or {}
  gone[key][#gone[key] + 1] = field
end
local function bulk(command, key, list, step)  -- unpack() takes a few thousand values at most
  for first = 1, #list, step do
    redis.call(command, key, unpack(list, first, math.min(first + step - 1, #list)))
  end
end
local out = {}
for i = 1, n do
  local key, mine = KEYS[i], ARGV[i]
  local fields = cache[key]
  if not fields then
    fields = redis.call('HGETALL', key)
    cache[key], traces[#traces + 1], added[key], value[key] = fields, key, {}, {}
  end
  local found, live, oldest = nil, 0, nil
  if #fields > 0 then found, live, oldest = choose(mine, fields) end
  if found then
    forget(key, fields[found])
    out[i] = fields[found + 1]
    table.remove(fields, found + 1)
    table.remove(fields, found)
  else
    local kept = {}
    for j = 1, #fields, 2 do  -- the trace's expired halves leave, and its oldest past TRACE_MAX
      if age(fields[j + 1]) > ttl or (live >= per_trace and j == oldest) then
        forget(key, fields[j])
      else
        kept[#kept + 1], kept[#kept + 2] = fields[j], fields[j + 1]
      end
    end
    local number = tostring(arrival + i)
    kept[#kept + 1], kept[#kept + 2] = number, mine
    cache[key], touched[key] = kept, true
    added[key][#added[key] + 1], value[key][number] = number, mine
    out[i] = false
  end
end
local left, scored = {}, {}
for _, key in ipairs(traces) do
  if gone[key] then
    bulk('HDEL', key, gone[key], 1000)
    for _, field in ipairs(gone[key]) do left[#left + 1] = key .. '#' .. field end
  end
  local set = {}
  for _, number in ipairs(added[key]) do
    if value[key][number] then
      set[#set + 1], set[#set + 2] = number, value[key][number]
      scored[#scored + 1], scored[#scored + 2] = number, key .. '#' .. number
    end
  end
  bulk('HSET', key, set, 1000)
  if touched[key] and #cache[key] > 0 then redis.call('EXPIRE', key, math.ceil(ttl)) end
end
bulk('ZREM', index, left, 1000)
bulk('ZADD', index, scored, 1000)
local excess = redis.call('ZCARD', index) - most
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', index, 0, excess - 1)) do drop(member) end
end
return out
"""
