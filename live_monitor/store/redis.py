"""The Redis store (``--store redis://host:port/db``): many monitor processes, one view.

Events go to two Redis Streams (one per side, one entry per batch, trimmed to ``--max-events``); the running
aggregates go to one hash per time bucket that expires with the window, and the ingest
counters to a hash. Every process reads the same keys, so all of them answer /data and
/differences with the same figures. An event is acknowledged only after Redis has it
(one atomic Lua script call per batch); when Redis is unreachable the API answers 503 with
Retry-After, and redis-py reconnects on the next call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import msgspec
import redis

from live_monitor.model import policy
from live_monitor.model.baseline import PinnedBaseline
from live_monitor.model.events import ExecutionEvent
from live_monitor.model.results import Episode
from live_monitor.model.routes import MAX_TEMPLATES
from live_monitor.model.stats import (
    DURATION_BOUNDS_MS,
    MAX_KEYS,
    MAX_SERIES_KEYS,
    OTHER,
    Aggregate,
    Histogram,
    LatencySketch,
    PairStats,
    Tallies,
    group_events,
    group_gaps,
)
from live_monitor.store import EPISODES_KEPT, StoreUnavailable
from live_monitor.vocabulary import SERVICES

_decoder = msgspec.json.Decoder(ExecutionEvent)
_batch = msgspec.json.Decoder(list[ExecutionEvent])
_raw_batch = msgspec.json.Decoder(list[msgspec.Raw])
_matches = msgspec.json.Decoder(list[str | bool])
_episode = msgspec.json.Decoder(Episode)
_closed = msgspec.json.Decoder(tuple[float, Episode])
_baseline = msgspec.json.Decoder(PinnedBaseline)
_encoder = msgspec.json.Encoder()
log = logging.getLogger("live_execution_monitor")
_GAMMA_LOG = LatencySketch()._gamma_log  # the sketches' bucket width, which _INGEST's gap buckets use

# One batch in one script call (atomic, and one round trip). ARGV: --max-events, the bucket's
# expiry, now, the batch's backend and frontend event counts, how many of each are the
# monitor's own, the batch's side letters in arrival order ('' when it holds one side), each
# side's events as one JSON array, and the statistics as one JSON array of (op, field, value)
# triples. Each side's events become ONE stream entry (none for a side without events): its id
# is ``<arrival number of its first event>-<its event count>``, and it holds the events
# (``e``), the arrival number before the batch (``n``) and the side letters (``s``), from which
# a reader numbers every event. The counters hash keeps how many events each stream holds
# (``held_<side>``); the oldest entries leave while the rest still hold --max-events.
# Statistics ops (every value a JSON string: a JSON number would be parsed by cjson, then
# printed again with %.17g for each command it goes to): "i" adds an integer to the bucket hash,
# "f" a float, "min"/"max" keep the smaller/larger value exact as the in-memory sketch does. The tallies (counted since the
# store began, never expired) go to their own hash: "ti"/"tf" add an integer/float to a field;
# "k" names the endpoint key (side letter, or "g" for gaps) that the "ki"/"kf" ops after it add
# to, or OTHER once MAX_KEYS keys are kept, the same cap for every process. KEYS: backend
# stream, frontend stream, bucket hash, counters hash, tallies hash, and the sets of the
# backend's, frontend's and gaps' kept endpoint keys; ARGV[12..17] and KEYS[9..10] are the trace
# join's, which ``_JOINED`` (the script's start) runs first.
_INGEST = """
local max, nb, nf = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local sides = ARGV[8]
local arrival = tonumber(redis.call('HGET', KEYS[4], 'accepted') or '0')
local function append(stream, letter, count, events)
  if count == 0 then return end
  local first = sides == '' and 1 or string.find(sides, letter, 1, true)
  local id = (arrival + first) .. '-' .. count
  if type(redis.pcall('XADD', stream, id, 'e', events, 'n', arrival, 's', sides)) == 'table' then
    -- the counters were deleted, not the stream: the entry goes after the stream's last one
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1][1]
    id = (tonumber(string.match(last, '^(%d+)')) + 1) .. '-' .. count
    redis.call('XADD', stream, id, 'e', events, 'n', arrival, 's', sides)
  end
  local field, held = letter == 'b' and 'held_backend' or 'held_frontend', count
  if redis.call('XLEN', stream) == 1 then  -- a new stream (or one deleted by hand) holds this alone
    redis.call('HSET', KEYS[4], field, count)
  else
    held = redis.call('HINCRBY', KEYS[4], field, count)
  end
  while held > max do  -- the oldest entries leave while the others still hold --max-events
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1][1]
    local size = tonumber(string.match(oldest, '-(%d+)$'))
    if held - size < max then break end
    redis.call('XDEL', stream, oldest)
    held = redis.call('HINCRBY', KEYS[4], field, -size)
  end
end
append(KEYS[1], 'b', nb, ARGV[9])
append(KEYS[2], 'f', nf, ARGV[10])
-- The statistics hashes hold hundreds of fields, each op adding to one: a field value longer than
-- hash-max-listpack-value makes Redis keep them as hash tables (one lookup per op), never as
-- listpacks (a scan of every field per op, below hash-max-listpack-entries: 512 in Redis 7).
redis.call('HSETNX', KEYS[3], TABLE, TABLE_VALUE)
redis.call('HSETNX', KEYS[5], TABLE, TABLE_VALUE)
local ops = cjson.decode(ARGV[11])
for _, x in ipairs(gap_ops) do ops[#ops + 1] = x end
local tallied, kept_fields, kept_ops, kept_values = '', {}, {}, {}
for i = 1, #ops, 3 do
  local op, field, value = ops[i], ops[i + 1], ops[i + 2]
  if op == 'i' then
    redis.call('HINCRBY', KEYS[3], field, value)
  elseif op == 'f' then
    redis.call('HINCRBYFLOAT', KEYS[3], field, value)
  elseif op == 'ti' or op == 'ki' then
    redis.call('HINCRBY', KEYS[5], (op == 'ki' and tallied or '') .. field, value)
  elseif op == 'tf' or op == 'kf' then
    redis.call('HINCRBYFLOAT', KEYS[5], (op == 'kf' and tallied or '') .. field, value)
  elseif op == 'k' then
    local kept = KEYS[field == 'b' and 6 or (field == 'f' and 7 or 8)]
    local key = value
    if key ~= OTHER and redis.call('SISMEMBER', kept, key) == 0 then
      if redis.call('SCARD', kept) < MAX_KEYS then
        redis.call('SADD', kept, key)
      else
        key = OTHER
      end
    end
    tallied = (field == 'g' and 'g|' or ('e|' .. field .. '|')) .. key .. '|'
  else  -- min or max: all read in one HMGET and written in one HSET below
    local at = #kept_fields + 1
    kept_fields[at], kept_ops[at], kept_values[at] = field, op, value
  end
end
for first = 1, #kept_fields, 1000 do  -- unpack() takes a few thousand values at most
  local last = math.min(first + 999, #kept_fields)
  local current, changed = redis.call('HMGET', KEYS[3], unpack(kept_fields, first, last)), {}
  for j = first, last do
    local cur, v = tonumber(current[j - first + 1]), tonumber(kept_values[j])
    if not cur or (kept_ops[j] == 'min' and v < cur) or (kept_ops[j] == 'max' and v > cur) then
      changed[#changed + 1], changed[#changed + 2] = kept_fields[j], kept_values[j]
    end
  end
  if #changed > 0 then redis.call('HSET', KEYS[3], unpack(changed)) end
end
redis.call('EXPIRE', KEYS[3], ARGV[2])
if nb + nf > 0 then
  redis.call('HINCRBY', KEYS[4], 'received', nb + nf)
  redis.call('HINCRBY', KEYS[4], 'accepted', nb + nf)
  redis.call('HINCRBY', KEYS[4], 'accepted_backend', nb)
  redis.call('HINCRBY', KEYS[4], 'accepted_frontend', nf)
  redis.call('HINCRBY', KEYS[4], 'self_backend', ARGV[6])
  redis.call('HINCRBY', KEYS[4], 'self_frontend', ARGV[7])
  redis.call('HSETNX', KEYS[4], 'first_at', ARGV[3])
end
return nb + nf
""".replace("MAX_KEYS", str(MAX_SERIES_KEYS)).replace("OTHER", repr(OTHER))
_INGEST = _INGEST.replace("TABLE_VALUE", repr("=" * 80)).replace("TABLE", repr("~"))


# The trace join, ``policy.JOIN_SCRIPT`` unchanged, run at the start of the same ``_INGEST`` call
# (one round trip and one atomic step per batch), called with a handful of arguments in place of
# two per half. ARGV[12]: the halves as one JSON array of [trace id, Half.encode()] ('' for none),
# ARGV[13] the trace keys' prefix, ARGV[14..16] PENDING_TTL_S, PENDING_MAX and TRACE_MAX, ARGV[17]
# the sketches' log(gamma); KEYS[9], KEYS[10]: the join's sorted set and arrival counter. Each pair
# made adds its gap (browser minus server, under the server's key) to the statistics as ops of
# their own, the ones _stat_ops and _tally_ops would have written: the sketch ``g|key`` (its buckets
# ceil(log(gap) / log(gamma)), as LatencySketch's; at most MAX_KEYS keys a batch, as PairStats's) and
# the tallies' histogram of the key (DURATION_BOUNDS_MS, a value equal to a bound in its bucket;
# its sum over the sorted gaps, as Histogram.extend's). A browser call paired with a server request
# of another key is re-keyed, and the batch's statistics with it: then nothing is written, and the
# script answers with the join's matches (per half, the waiting half it met, or false) for the
# client to count the batch again and write it without a join (ARGV[12] '').
_JOINED = (
    (
        "local function join(KEYS, ARGV)\n"
        + policy.JOIN_SCRIPT
        + """
end
local gap_ops = {}
if ARGV[12] ~= '' then
  local halves, keys, args = cjson.decode(ARGV[12]), {}, {}
  for i, half in ipairs(halves) do keys[i], args[i] = ARGV[13] .. half[1], half[2] end
  local n = #keys
  keys[n + 1], keys[n + 2] = KEYS[9], KEYS[10]
  args[n + 1], args[n + 2], args[n + 3], args[n + 4] = ARGV[3], ARGV[14], ARGV[15], ARGV[16]
  local matches = join(keys, args)
  local order, values = {}, {}
  for i = 1, n do
    local other = matches[i]
    if other then
      local side, ms, endpoint = string.match(args[i], '^(%a)|[^|]*|([^|]*)|[^|]*|(.*)$')
      local their_ms, their_endpoint = string.match(other, '^%a|[^|]*|([^|]*)|[^|]*|(.*)$')
      local key, gap = endpoint, tonumber(their_ms) - tonumber(ms)
      if side == 'f' then
        if their_endpoint ~= endpoint then return cjson.encode(matches) end
        key, gap = their_endpoint, tonumber(ms) - tonumber(their_ms)
      end
      if not (gap > 0) then gap = 0.0 end
      if not values[key] then order[#order + 1], values[key] = key, {} end
      local v = values[key]
      v[#v + 1] = gap
    end
  end
  local gamma, bounds = tonumber(ARGV[17]), {BOUNDS}
  local function float(x)  -- as Python's repr: the shortest that reads back (HINCRBYFLOAT adds it in long double)
    for _, digits in ipairs({'%.15g', '%.16g'}) do
      local text = string.format(digits, x)
      if tonumber(text) == x then return text end
    end
    return string.format('%.17g', x)
  end
  local function put(...)
    for _, x in ipairs({...}) do gap_ops[#gap_ops + 1] = x end
  end
  for k, key in ipairs(order) do
    local v = values[key]
    if k <= STAT_KEYS then  -- the sketch, as _sketch_ops writes it
      local f = 'g|' .. key .. '|'
      local sum, low, high, zeros, bins = 0, math.huge, -math.huge, 0, {}
      for _, x in ipairs(v) do
        sum = sum + x
        if x < low then low = x end
        if x > high then high = x end
        if x <= 1e-9 then
          zeros = zeros + 1
        else
          local b = math.ceil(math.log(x) / gamma)
          bins[b] = (bins[b] or 0) + 1
        end
      end
      put('i', f .. 'tn', #v, 'f', f .. 'sum', float(sum))
      put('min', f .. 'min', float(low), 'max', f .. 'max', float(high))
      if zeros > 0 then put('i', f .. 'z', zeros) end
      for b, count in pairs(bins) do put('i', f .. 'b' .. b, count) end
    end
    local sorted, sum, counts = {}, 0, {}  -- the tallies' histogram, as _histogram_ops writes it
    for i, x in ipairs(v) do sorted[i] = x end
    table.sort(sorted)
    for _, x in ipairs(sorted) do
      sum = sum + x
      local slot = #bounds
      for i, bound in ipairs(bounds) do
        if x <= bound then slot = i - 1; break end
      end
      counts[slot] = (counts[slot] or 0) + 1
    end
    put('k', 'g', key, 'kf', 'sum', float(sum))
    for slot = 0, #bounds do
      if counts[slot] then put('ki', slot, counts[slot]) end
    end
  end
end
"""
    )
    .replace("STAT_KEYS", str(MAX_KEYS))
    .replace("BOUNDS", ", ".join(repr(float(b)) for b in DURATION_BOUNDS_MS))
)
_INGEST = _JOINED + _INGEST


# Add route template keys to the shared set while it holds fewer than ARGV[1]; return the set.
_SHARE_ROUTES = """
for i = 2, #ARGV do  -- routes with parameters in KEYS[1], those without in KEYS[2]: two budgets
  local set = string.find(ARGV[i], '/:', 1, true) and KEYS[1] or KEYS[2]
  if redis.call('SCARD', set) < tonumber(ARGV[1]) then redis.call('SADD', set, ARGV[i]) end
end
return redis.call('SUNION', KEYS[1], KEYS[2])
"""


# Stop the shared monitoring clock once, however many processes ask at the same moment.
_STOP = """
local started = redis.call('HGET', KEYS[1], 'started_at')
if not started then return 0 end
redis.call('HDEL', KEYS[1], 'started_at')
redis.call('HINCRBYFLOAT', KEYS[1], 'elapsed', tonumber(ARGV[1]) - tonumber(started))
return 1
"""


# Close an open episode once, however many processes ask at the same moment: take it out of the
# open hash (KEYS[1]) and push [resolved_at, episode] onto the resolved list (KEYS[2]), trimmed.
_CLOSE_EPISODE = """
local episode = redis.call('HGET', KEYS[1], ARGV[1])
if not episode then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], '[' .. ARGV[2] .. ',' .. episode .. ']')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return episode
"""

# Replace an open episode (a higher severity reached); one closed meanwhile stays closed.
_UPDATE_EPISODE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class _OneSend(redis.connection.Connection):
    """A connection that sends a command in one ``sendall``: redis-py packs each argument
    longer than 6,000 bytes as a buffer of its own and sends them one by one, and with
    TCP_NODELAY each became a segment that woke redis-server (and this process) again."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not isinstance(command, str | bytes) and len(command) > 1:
            command = [b"".join(command)]
        super().send_packed_command(command, check_health)


class RedisEventStore:
    """The ``Store`` contract on Redis, with the in-memory ``EventStore``'s semantics."""

    def __init__(
        self,
        url: str,
        max_events: int = 10_000,
        window_s: float = 900.0,
        bucket_s: float | None = None,
        clock: Callable[[], float] = time.time,
        prefix: str = "{lem}",
    ) -> None:
        self.redis = redis.Redis.from_url(
            url, socket_timeout=3, socket_connect_timeout=2, connection_class=_OneSend
        )
        self.max_events = max_events
        self.window_s = window_s
        self.bucket_s = bucket_s or max(window_s / 60, 1.0)
        self._clock = clock
        self._p = prefix
        self._ingest = self.redis.register_script(_INGEST)
        self._stop = self.redis.register_script(_STOP)
        self._share_routes = self.redis.register_script(_SHARE_ROUTES)
        self._close_episode = self.redis.register_script(_CLOSE_EPISODE)
        self._update_episode = self.redis.register_script(_UPDATE_EPISODE)
        self._cache: tuple[float, PairStats] | None = None
        self._last_totals: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._pending_rejects: Counter[str] = Counter()  # refusals not yet written: Redis was down

    def _stream(self, service: str) -> str:
        """One side's stream of batch entries (``:log:``: the one-event-per-entry ``:events:``
        streams of earlier versions are left alone, never read)."""
        return f"{self._p}:log:{service}"

    def _bucket_key(self, start: float) -> str:
        """A time bucket's statistics hash (``:bucket:``, whose API and total sketches keep no
        bins of their own: see ``_stat_ops``)."""
        return f"{self._p}:bucket:{int(start)}"

    def _old_bucket_key(self, start: float) -> str:
        """The same bucket as earlier versions kept it (``:agg:``, every sketch with its bins):
        still read, never written, so a monitor started on their Redis counts their window too."""
        return f"{self._p}:agg:{int(start)}"

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the shared store (Redis) is unreachable: {exc}") from None

    # --- writing -------------------------------------------------------------------------

    def add(self, events: Iterable[ExecutionEvent]) -> int:
        """Store events and their aggregates in one transaction; raises StoreUnavailable.

        Trace halves are paired first, in the same script call, so that the gaps go into the same
        write as the events (a reader never sees the events counted without their pairs). A
        browser call that meets a server request of another key is stored and counted under the
        server's key: the script then writes nothing and answers with the pairs, and the batch,
        counted again, is written by a second call without a join.
        """
        events = list(events)
        if not events:
            return 0
        now = self._clock()
        bucket = self._bucket_key(self._clock_bucket(now))
        counted = policy.counted(events)
        traced = policy.pairable(counted)
        halves = (
            _encoder.encode([(e.trace_id, policy.Half.of(e, now).encode()) for e in traced])
            if traced
            else b""
        )
        sides, ops, own = _figures(events, counted, [], now)
        write = partial(self._write, bucket, sides, now, own)
        matches = self._call(lambda: write(ops, halves))
        if matches:  # a browser call re-keyed by its pair: counted again, with the pairs' gaps
            gaps = [
                policy.pair(event, policy.Half.decode(other, event.trace_id or ""))
                for event, other in zip(traced, _matches.decode(matches), strict=True)
                if isinstance(other, str)
            ]
            sides, ops, own = _figures(events, counted, gaps, now)
            self._call(lambda: write(ops, b""))
        self._cache = None
        self._flush_rejects()
        return len(events)

    def _clock_bucket(self, now: float) -> float:
        """The start of the time bucket ``now`` falls in."""
        return now - now % self.bucket_s

    def _write(
        self, bucket: str, sides: tuple[Any, ...], now: float, own: list[int], ops: list[Any], halves: bytes
    ) -> Any:
        """One ``_INGEST`` call of a few dozen arguments, each side's events, the halves to join
        and the statistics packed as JSON (argument by argument, redis-py's encoding was 40% of
        the batch's CPU); its answer: None, or the join's matches when the batch must be counted
        again (see ``_JOINED``). ``letters`` says, letter by letter, whose a mixed batch's events
        were, so that each is numbered by its place in the batch (the arrival order ``since``
        keeps)."""
        backend, frontend, letters = sides
        keys = [self._stream("backend"), self._stream("frontend"), bucket, f"{self._p}:counters"]
        keys += [f"{self._p}:tally", *(f"{self._p}:tally:keys:{kind}" for kind in "bfg")]
        keys += [f"{self._p}:waiting", f"{self._p}:arrivals"]
        expire = int(self.window_s + 2 * self.bucket_s)
        args: list[str | int | float | bytes] = [
            self.max_events,
            expire,
            repr(now),
            len(backend),
            len(frontend),
            *own,
            letters,
            _encoder.encode(backend),
            _encoder.encode(frontend),
            _encoder.encode(ops),
            halves,
            f"{self._p}:halves:",
            policy.PENDING_TTL_S,
            policy.PENDING_MAX,
            policy.TRACE_MAX,
            repr(_GAMMA_LOG),
        ]
        found = self._ingest(keys=keys, args=args)
        return found if isinstance(found, bytes) and found else None

    def reject(self, reasons: Iterable[str]) -> None:
        """Count refused events by reason. While Redis is down the refusals are kept here and
        written with the next write or read that reaches it, so the counters still balance."""
        with self._lock:
            self._pending_rejects.update(reason[:200] for reason in reasons)
        self._flush_rejects()

    def _flush_rejects(self) -> None:
        """Write the refusals kept here in one transaction; kept again when Redis is down."""
        with self._lock:
            pending, self._pending_rejects = self._pending_rejects, Counter()
        if not pending:
            return
        total = pending.total()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(f"{self._p}:counters", "received", total)
        pipe.hincrby(f"{self._p}:counters", "rejected", total)
        for reason, count in pending.items():
            pipe.hincrby(f"{self._p}:rejected", reason, count)
        try:
            pipe.execute()
        except redis.RedisError:
            with self._lock:
                self._pending_rejects.update(pending)

    def restore(self, events: Iterable[ExecutionEvent]) -> int:
        """Not used with Redis: Redis keeps the events itself."""
        raise StoreUnavailable("--persist is for the in-memory store; Redis keeps the events itself")

    # --- shared monitoring state ----------------------------------------------------------

    def monitoring_state(self) -> tuple[float | None, float]:
        """(started_at or None, seconds monitored before it) as every process sees them."""
        started, elapsed = self._call(lambda: self.redis.hmget(f"{self._p}:state", "started_at", "elapsed"))
        return (float(started) if started else None, float(elapsed) if elapsed else 0.0)

    def set_monitoring(self, on: bool, now: float) -> bool:
        """Start or stop monitoring for every process; False when it already was so."""
        key = f"{self._p}:state"
        if on:
            return bool(self._call(lambda: self.redis.hsetnx(key, "started_at", repr(now))))
        return bool(self._call(lambda: self._stop(keys=[key], args=[repr(now)])))

    # --- reading -------------------------------------------------------------------------

    def window_stats(self) -> PairStats:
        """The window's statistics from the bucket hashes (cached for a quarter second)."""
        now = self._clock()
        cached = self._cache
        if cached is None or now - cached[0] > 0.25:
            starts = _bucket_starts(now - self.window_s, now, self.bucket_s)

            def read() -> list[Any]:
                pipe = self.redis.pipeline(transaction=False)
                for s in starts:
                    pipe.hgetall(self._bucket_key(s))
                    pipe.hgetall(self._old_bucket_key(s))
                pipe.hget(f"{self._p}:counters", "first_at")
                return pipe.execute()

            *hashes, first_at = self._call(read)
            stats = PairStats()
            for i, fields in enumerate(hashes):
                if fields:
                    stats.merge(_read_stats(fields, derived=i % 2 == 0))
            first_event = float(first_at) if first_at else None
            minutes = policy.window_minutes(now, first_event, self.window_s, self.bucket_s)
            stats.backend.minutes = stats.frontend.minutes = minutes
            self._cache = cached = (now, stats)
        copy = PairStats()
        copy.merge(cached[1])
        copy.backend.minutes = copy.frontend.minutes = cached[1].backend.minutes
        return copy

    def recent(
        self, limit: int = 200, service: str | None = None, include_self: bool = True
    ) -> list[ExecutionEvent]:
        """The newest events first across both sides (or one), from the streams."""
        sides = [service] if service else list(SERVICES)
        fetch = limit * 3 if not include_self else limit
        merged = []
        for side in sides:
            newest = self._newest(side, min(fetch, self.max_events))
            merged += [e for _, e in newest if include_self or not e.is_self]
        merged.sort(key=lambda e: e.epoch, reverse=True)
        return merged[:limit] if limit else []

    def events(self, service: str) -> list[ExecutionEvent]:
        """One side's retained events in the order they arrived, as the in-memory store keeps them."""
        return [event for _, event in reversed(self._newest(service, self.max_events))]

    def _newest(self, side: str, want: int, after: int = 0) -> list[tuple[int, ExecutionEvent]]:
        """(arrival number, event) of one side's newest ``want`` events numbered above
        ``after``, newest first. Entries are read newest first, and decoded only while more are
        wanted; each page asks for as many entries as the last one's sizes (the second part of
        an entry's id) say are still needed."""
        stream, end, count = self._stream(side), "+", 2
        out: list[tuple[int, ExecutionEvent]] = []
        while want > 0:
            entries = self._call(partial(self.redis.xrevrange, stream, end, "-", count=count))
            for entry_id, fields in entries:
                out += [ne for ne in reversed(_unpack(fields, side[0])) if ne[0] > after]
                if len(out) >= want or int(entry_id.partition(b"-")[0]) <= after:
                    return out[:want]  # enough, or the entries before it are older still
            if len(entries) < count:
                break
            size = sum(int(entry_id.rpartition(b"-")[2]) for entry_id, _ in entries) / len(entries)
            end, count = f"({entries[-1][0].decode()}", math.ceil((want - len(out)) / max(size, 1)) + 1
        return out[:want]

    def counts(self) -> dict[str, Any]:
        """Ingest counters shared by every process, in EventStore.counts()'s shape."""
        self._flush_rejects()  # refusals kept while Redis was down count from now on

        def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(f"{self._p}:counters")
            pipe.hgetall(f"{self._p}:rejected")
            return pipe.execute()

        raw, rejected = self._call(read)
        c = {k.decode(): v.decode() for k, v in raw.items()}
        stored = {s: min(int(c.get(f"held_{s}", 0)), self.max_events) for s in SERVICES}
        accepted = {s: int(c.get(f"accepted_{s}", 0)) for s in SERVICES}
        own = {s: int(c.get(f"self_{s}", 0)) for s in SERVICES}
        totals = {s: accepted[s] - own[s] for s in SERVICES}
        evicted = {s: max(0, accepted[s] - stored[s]) for s in SERVICES}
        by_reason = sorted(((k.decode(), int(v)) for k, v in rejected.items()), key=lambda kv: -kv[1])
        return {
            "received": int(c.get("received", 0)),
            "accepted": int(c.get("accepted", 0)),
            "rejected": int(c.get("rejected", 0)),
            "rejected_by_reason": dict(by_reason[:20]),
            "evicted": sum(evicted.values()),
            "evicted_by_service": evicted,
            "restored": 0,
            "self_events": sum(own.values()),
            "stored": stored,
            "totals": totals,
        }

    def tallies(self) -> Tallies:
        """What every process counted since the store began, from the shared tallies hash."""
        fields = self._call(lambda: self.redis.hgetall(f"{self._p}:tally"))
        return _read_tallies(fields)

    def take_tick_counts(self) -> dict[str, int]:
        """Events accepted per side, by all processes, since this process's last call."""
        try:
            totals = self.counts()["totals"]
        except StoreUnavailable:
            return {s: 0 for s in SERVICES}
        last = self._last_totals or totals
        self._last_totals = totals
        return {s: max(0, totals[s] - last[s]) for s in SERVICES}

    @property
    def seq(self) -> int:
        """Events accepted so far by all processes (for streaming new events)."""
        try:
            return int(self._call(lambda: self.redis.hget(f"{self._p}:counters", "accepted")) or 0)
        except StoreUnavailable:
            return 0

    @property
    def counted(self) -> int:
        """Events counted so far by all processes; own traffic never moves it."""
        key = f"{self._p}:counters"
        accepted, *own = self._call(
            lambda: self.redis.hmget(key, "accepted", "self_backend", "self_frontend")
        )
        return int(accepted or 0) - sum(int(n or 0) for n in own)

    def since(self, seq: int, limit: int = 500) -> tuple[int, list[ExecutionEvent]]:
        """Events accepted after ``seq`` (at most ``limit``, the newest, oldest first) and the new seq."""
        current = self.seq
        take = min(current - seq, limit)
        if take <= 0:
            return current, []
        numbered = [ne for side in SERVICES for ne in self._newest(side, take, seq) if ne[0] <= current]
        numbered.sort(key=lambda ne: ne[0])
        return current, [event for _, event in numbered[-take:]]

    def share_routes(self, keys: list[str]) -> list[str]:
        """Add route keys to the sets every process shares (at most ``MAX_TEMPLATES`` with
        parameters and as many without) and return all of them: one script call."""
        sets = [f"{self._p}:routes", f"{self._p}:routes:plain"]
        found = self._call(lambda: self._share_routes(keys=sets, args=[MAX_TEMPLATES, *keys]))
        return [key.decode() for key in found]

    # --- difference episodes ---------------------------------------------------------------

    def _book(self, book: str) -> tuple[str, str]:
        """The keys of a book: its open episodes' hash and its resolved episodes' list."""
        return f"{self._p}:episodes:{book}:open", f"{self._p}:episodes:{book}:resolved"

    def open_episode(self, book: str, episode: Episode) -> bool:
        """HSETNX: of processes opening one id at once, exactly one gets True."""
        opened, _ = self._book(book)
        return bool(self._call(lambda: self.redis.hsetnx(opened, episode.id, _encoder.encode(episode))))

    def update_episode(self, book: str, episode: Episode) -> bool:
        """Replace the open episode of ``episode.id``; False when none is open (one script call)."""
        opened, _ = self._book(book)
        args: list[str | bytes] = [episode.id, _encoder.encode(episode)]
        return bool(self._call(lambda: self._update_episode(keys=[opened], args=args)))

    def close_episode(self, book: str, episode_id: str, resolved_at: float) -> Episode | None:
        """Close it in one script call: of processes closing one id at once, one gets the episode."""
        keys = list(self._book(book))
        args: list[str | int] = [episode_id, repr(resolved_at), EPISODES_KEPT]
        found = self._call(lambda: self._close_episode(keys=keys, args=args))
        if not found:
            return None
        return msgspec.structs.replace(_episode.decode(found), resolved_at=resolved_at)

    def open_episodes(self, book: str) -> dict[str, Episode]:
        """The open episodes by id, as every process sees them."""
        opened, _ = self._book(book)
        found = self._call(lambda: self.redis.hgetall(opened))
        return {key.decode(): _episode.decode(value) for key, value in found.items()}

    def episodes(self, book: str, limit: int) -> list[Episode]:
        """At most ``limit`` episodes, open and resolved, the newest opened first."""
        opened, resolved = self._book(book)

        def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hvals(opened)
            pipe.lrange(resolved, 0, max(limit, 1) - 1)
            return pipe.execute()

        open_now, closed = self._call(read)
        found = [_episode.decode(raw) for raw in open_now]
        for raw in closed:
            at, episode = _closed.decode(raw)
            found.append(msgspec.structs.replace(episode, resolved_at=at))
        found.sort(key=lambda e: e.opened_at, reverse=True)
        return found[:limit]

    def restore_episodes(self, book: str, episodes: Iterable[Episode]) -> None:
        """Not used with Redis: Redis keeps the episodes itself."""
        raise StoreUnavailable("--persist is for the in-memory store; Redis keeps the episodes itself")

    # --- the pinned baseline: one key, so every process compares with the same one ---------

    def baseline(self) -> PinnedBaseline | None:
        """The pinned baseline, as every process sees it; one that cannot be read (written by
        another version) counts as none, with a warning."""
        found = self._call(lambda: self.redis.get(f"{self._p}:baseline"))
        if found is None:
            return None
        try:
            return _baseline.decode(found)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.warning("the pinned baseline in Redis cannot be read (%s); pin one again", exc)
            return None

    def set_baseline(self, baseline: PinnedBaseline) -> None:
        """Pin ``baseline`` for every process, in place of any pinned before."""
        self._call(lambda: self.redis.set(f"{self._p}:baseline", _encoder.encode(baseline)))

    def clear_baseline(self) -> bool:
        """Unpin the baseline for every process; False when none was pinned."""
        return bool(self._call(lambda: self.redis.delete(f"{self._p}:baseline")))


def _unpack(fields: dict[bytes, bytes], letter: str) -> list[tuple[int, ExecutionEvent]]:
    """(arrival number, event) of one side's batch entry, oldest first: the events of a batch
    of one side are numbered on from ``n``, those of a mixed one by their letters' places in
    ``s``. An event that does not decode is skipped; an entry that does not is, whole."""
    try:
        base, sides, raw = int(fields[b"n"]), fields.get(b"s", b"").decode(), fields[b"e"]
        try:
            events: list[ExecutionEvent | None] = list(_batch.decode(raw))
        except msgspec.ValidationError:
            events = [_one(item) for item in _raw_batch.decode(raw)]
    except (msgspec.ValidationError, msgspec.DecodeError, KeyError, ValueError, UnicodeDecodeError):
        return []
    if sides:
        numbers = [base + pos for pos, side in enumerate(sides, 1) if side == letter]
    else:
        numbers = list(range(base + 1, base + 1 + len(events)))
    return [(n, e) for n, e in zip(numbers, events, strict=False) if e is not None]


def _one(raw: msgspec.Raw) -> ExecutionEvent | None:
    """One event of an entry, or None when it does not decode (written by another version)."""
    try:
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _bucket_starts(first: float, now: float, width: float) -> list[float]:
    start = first - first % width
    out = []
    while start <= now:
        out.append(start)
        start += width
    return out


def _figures(
    events: list[ExecutionEvent], counted: list[ExecutionEvent], gaps: list[tuple[str, float]], now: float
) -> tuple[tuple[list[ExecutionEvent], list[ExecutionEvent], str], list[Any], list[int]]:
    """A batch as ``_INGEST`` takes it: (each side's events and the side letters of a mixed
    batch), its statistics as op triples, and how many of each side's events are own traffic.
    Each side is grouped once for the figures and the tallies (the grouping was half of each's work)."""
    batch, tallies = PairStats(), Tallies(max_keys=None)  # the script caps the keys
    own = []
    for service, mine, kept in zip(SERVICES, policy.by_side(events), policy.by_side(counted), strict=True):
        if kept:
            groups = group_events(service, kept)
            batch.side(service).add_groups(groups, now, now)
            tallies.add_groups(service, groups)
        own.append(len(mine) - len(kept))
    if gaps:
        by_key = group_gaps(gaps)
        batch.add_gap_groups(by_key)
        tallies.add_gap_groups(by_key)
    backend, frontend = policy.by_side(events)
    letters = "".join([e.service[0] for e in events]) if backend and frontend else ""
    return (backend, frontend, letters), _stat_ops(batch) + _tally_ops(tallies), own


def _stat_ops(stats: PairStats) -> list[Any]:
    """A batch's statistics as (op, field, value) triples for the _INGEST script. The API
    sketch's bins are the sum of the endpoints' (every call is counted under one endpoint key,
    OTHER past the cap) and the total's are those plus the bins of the events that are not calls
    (``r``): neither is written, ``_read_stats`` adds them up (a third of a batch's HINCRBYs)."""
    ops: list[Any] = []
    for side in (stats.backend, stats.frontend):
        s = side.service[0]
        _aggregate_ops(ops, f"{s}|t", side.total, bins=False)
        _aggregate_ops(ops, f"{s}|api", side.api, bins=False)
        calls = side.api.timed.buckets
        for index, n in side.total.timed.buckets.items():
            if n != calls.get(index, 0):
                ops += ["i", f"{s}|r|b{index}", str(n - calls.get(index, 0))]
        for name, agg in side.endpoints.items():
            _aggregate_ops(ops, f"{s}|e|{name}", agg)
        for name, n in side.components.items():
            ops += ["i", f"{s}|c|{name}", str(n)]
    for name, sketch in stats.trace_gaps.items():
        _sketch_ops(ops, f"g|{name}", sketch)
    return ops


def _tally_ops(tallies: Tallies) -> list[Any]:
    """A batch's tallies as (op, field, value) triples for the _INGEST script: fields
    ``s|side|status``, ``d|side|bucket`` (and ``|sum``), ``e|side|key|bucket``, ``g|key|bucket``."""
    ops: list[Any] = []
    for (service, status), n in tallies.events.items():
        if n:
            ops += ["ti", f"s|{service[0]}|{status}", str(n)]
    for service, histogram in tallies.durations.items():
        ops += _histogram_ops("t", f"d|{service[0]}|", histogram)
    for service, keys in tallies.endpoints.items():
        for key, histogram in keys.items():
            ops += ["k", service[0], key, *_histogram_ops("k", "", histogram)]
    for key, histogram in tallies.gaps.items():
        ops += ["k", "g", key, *_histogram_ops("k", "", histogram)]
    return ops


def _histogram_ops(kind: str, prefix: str, histogram: Histogram) -> list[Any]:
    """The sum (even 0: an endpoint key is read back from it) and the non-empty buckets."""
    ops: list[Any] = [f"{kind}f", f"{prefix}sum", repr(histogram.sum)]
    for index, n in enumerate(histogram.buckets):
        if n:
            ops += [f"{kind}i", f"{prefix}{index}", str(n)]
    return ops


def _read_tallies(fields: dict[bytes, bytes]) -> Tallies:
    """Rebuild the tallies from their hash fields (see ``_tally_ops``)."""
    tallies = Tallies()
    side = {s[0]: s for s in SERVICES}
    fields.pop(b"~", None)  # the field that keeps the hash a hash table (_INGEST)
    for raw_field, raw_value in fields.items():
        kind, _, rest = raw_field.decode().partition("|")
        value = raw_value.decode()
        if kind == "s":
            letter, _, status = rest.partition("|")
            tallies.events[(side[letter], status)] = int(value)
            continue
        where, _, slot = rest.rpartition("|")
        if kind == "d":
            histogram = tallies.durations[side[where]]
        elif kind == "e":
            letter, _, key = where.partition("|")
            histogram = tallies.endpoints[side[letter]].setdefault(key, Histogram())
        else:
            histogram = tallies.gaps.setdefault(where, Histogram())
        if slot == "sum":
            histogram.sum = float(value)
        else:
            histogram.buckets[int(slot)] = int(value)
    return tallies


def _aggregate_ops(ops: list[Any], prefix: str, agg: Aggregate, bins: bool = True) -> None:
    ops += ["i", f"{prefix}|n", str(agg.count)]
    if agg.errors:
        ops += ["i", f"{prefix}|err", str(agg.errors)]
    if agg.extra:  # sampled events: what they stand for beyond themselves, and their squares
        ops += ["f", f"{prefix}|x", repr(agg.extra), "f", f"{prefix}|x2", repr(agg.extra_sq)]
    _sketch_ops(ops, prefix, agg.timed, bins)


def _sketch_ops(ops: list[Any], prefix: str, sketch: LatencySketch, bins: bool = True) -> None:
    if not sketch.count:
        return
    ops += ["i", f"{prefix}|tn", str(sketch.count), "f", f"{prefix}|sum", repr(sketch.sum)]
    ops += ["min", f"{prefix}|min", repr(sketch.min), "max", f"{prefix}|max", repr(sketch.max)]
    if sketch.zeros:
        ops += ["i", f"{prefix}|z", str(sketch.zeros)]
    if bins:
        for index, n in sketch.buckets.items():
            ops += ["i", f"{prefix}|b{index}", str(n)]


def _read_stats(fields: dict[bytes, bytes], derived: bool = True) -> PairStats:
    """Rebuild a bucket's PairStats from its hash fields; ``derived``: the API and total
    sketches' bins are to be added up from the endpoints' and the other events' (see
    ``_stat_ops``), as they are in every bucket but those of earlier versions."""
    stats = PairStats()
    rest: dict[str, Counter[int]] = {"b": Counter(), "f": Counter()}
    fields.pop(b"~", None)  # the field that keeps the hash a hash table (_INGEST)
    for raw_field, raw_value in fields.items():
        field = raw_field.decode()
        value = float(raw_value)
        if field.startswith("g|"):
            name, _, metric = field[2:].rpartition("|")
            sketch = stats.trace_gaps.setdefault(name, LatencySketch())
            _read_sketch_field(sketch, metric, value)
            continue
        side_code, kind, what = field.split("|", 2)
        side = stats.backend if side_code == "b" else stats.frontend
        if kind == "c":
            side.components[what] += int(value)
        elif kind == "t":
            _read_aggregate_field(side.total, what, value)
        elif kind == "api":
            _read_aggregate_field(side.api, what, value)
        elif kind == "e":
            name, _, metric = what.rpartition("|")
            _read_aggregate_field(side.endpoints.setdefault(name, Aggregate()), metric, value)
        elif kind == "r":
            rest[side_code][int(what[1:])] += int(value)
    if derived:
        for side in (stats.backend, stats.frontend):
            calls: Counter[int] = Counter()
            for agg in side.endpoints.values():
                calls.update(agg.timed.buckets)
            side.api.timed.buckets.update(calls)  # empty until now: no bins are written for them
            side.total.timed.buckets.update(calls + rest[side.service[0]])
    for side in (stats.backend, stats.frontend):
        for agg in [side.total, side.api, *side.endpoints.values()]:
            _settle(agg.timed)
    for sketch in stats.trace_gaps.values():
        _settle(sketch)
    return stats


def _read_aggregate_field(agg: Aggregate, metric: str, value: float) -> None:
    if metric == "n":
        agg.count = int(value)
    elif metric == "err":
        agg.errors = int(value)
    elif metric == "x":
        agg.extra = value
    elif metric == "x2":
        agg.extra_sq = value
    else:
        _read_sketch_field(agg.timed, metric, value)


def _read_sketch_field(sketch: LatencySketch, metric: str, value: float) -> None:
    if metric == "tn":
        sketch.count = int(value)
    elif metric == "sum":
        sketch.sum = value
    elif metric == "z":
        sketch.zeros = int(value)
    elif metric == "min":
        sketch.min = value
    elif metric == "max":
        sketch.max = value
    elif metric.startswith("b"):
        sketch.buckets[int(metric[1:])] = int(value)


def _settle(sketch: LatencySketch) -> None:
    """Fill min and max from the populated buckets when the hash lacks them."""
    if not sketch.count:
        return
    if math.isinf(sketch.min):
        sketch.min = 0.0 if sketch.zeros or not sketch.buckets else sketch._bucket_value(min(sketch.buckets))
    if math.isinf(sketch.max):
        sketch.max = sketch._bucket_value(max(sketch.buckets)) if sketch.buckets else 0.0
