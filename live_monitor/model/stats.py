"""Running aggregates over execution events: a quantile sketch and per-side statistics.

The monitor keeps these instead of rescanning its deques, so /data and /differences cost
the same with 100,000 stored events as with 1,000. The report CLI builds the same
aggregates from files, so the live view and the report agree figure for figure.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from live_monitor.vocabulary import ENDPOINT_COMPONENTS, SERVICES, STATUSES, Service

# Cap on distinct endpoint keys and component/action names kept per side; further names
# are folded into OTHER so memory stays bounded when a client sends unnormalised paths.
MAX_KEYS = 500
OTHER = "(other)"
# Cap on endpoint keys per side (and trace-gap endpoints) in the figures kept since the store
# began: Prometheus keeps every label value it ever saw, so these are fewer than MAX_KEYS.
MAX_SERIES_KEYS = 100
# Upper bounds (ms) of the cumulative histograms' buckets, and of the window's ``le`` figures.
DURATION_BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_MAX_PENDING = 4096  # values a sketch buffers before it buckets them anyway (bounded memory)
_FEW = 8  # values a Histogram bisects one by one: fewer steps than a bisection per bound


T = TypeVar("T")


class _Settled(Generic[T]):
    """A figure of a LatencySketch kept in the slot ``_<name>``, read and set only after the
    sketch has bucketed what it buffered (``_settle``)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, sketch: LatencySketch | None, owner: type | None = None) -> T:
        if sketch is None:  # looked up on the class (help(), introspection)
            return self  # type: ignore[return-value]
        sketch._settle()
        return getattr(sketch, self.slot)

    def __set__(self, sketch: LatencySketch, value: T) -> None:
        sketch._settle()
        setattr(sketch, self.slot, value)


class LatencySketch:
    """Mergeable quantile sketch with a bounded relative error (DDSketch's log buckets).

    ``quantile(q)`` is within ``relative_accuracy`` of the exact value for any input, and
    the sketch holds one counter per populated bucket (a few hundred at most for latencies
    between a microsecond and an hour). ``add`` only appends to a buffer; the buffer is
    bucketed in bulk (a few passes in C) the first time a figure is read, so the ingest
    path pays almost nothing per value.
    """

    __slots__ = (
        "_gamma_log",
        "_relative_accuracy",
        "_sorted",
        "_pending",
        "_buckets",
        "_zeros",
        "_count",
        "_sum",
        "_min",
        "_max",
    )

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be between 0 and 1")
        self._relative_accuracy = relative_accuracy
        gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._gamma_log = math.log(gamma)
        self._pending: list[float] = []  # added, not yet bucketed
        self._buckets: dict[int, int] = {}
        self._sorted: list[int] | None = None  # bucket indexes in order, until the next change
        self._zeros = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def add(self, value: float) -> None:
        """Count one non-negative value."""
        self._pending.append(value)
        if len(self._pending) >= _MAX_PENDING:
            self._settle()

    def extend(self, values: list[float]) -> None:
        """Count several non-negative values."""
        self._pending.extend(values)
        if len(self._pending) >= _MAX_PENDING:
            self._settle()

    def _settle(self) -> None:
        values = self._pending
        if not values:
            return
        self._pending = []
        self._count += len(values)
        self._sum += sum(values)
        low, high = min(values), max(values)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        if low <= 1e-9:
            positive = [v for v in values if v > 1e-9]
            self._zeros += len(values) - len(positive)
            values = positive
        g, log, ceil = self._gamma_log, math.log, math.ceil
        counts = Counter([ceil(log(v) / g) for v in values])
        buckets = self._buckets
        if not buckets:  # a fresh sketch (a batch's group): the counts are its buckets, copied in C
            self._buckets = dict(counts)
            self._sorted = None
            return
        before = len(buckets)
        get = buckets.get
        for index, n in counts.items():
            buckets[index] = get(index, 0) + n
        if len(buckets) != before:
            self._sorted = None

    @property
    def buckets(self) -> dict[int, int]:
        """Bucket index -> count (the index of value v is ceil(log(v) / log(gamma)))."""
        self._settle()
        return self._buckets

    # Figures read (or restored, as the Redis store does) through _Settled: buffered values first.
    count: _Settled[int] = _Settled("How many values were added.")
    zeros: _Settled[int] = _Settled("How many values were (close to) zero: they have no log bucket.")
    sum: _Settled[float] = _Settled("The sum of the values.")
    min: _Settled[float] = _Settled("The smallest value (inf when empty).")
    max: _Settled[float] = _Settled("The largest value (-inf when empty).")

    def merge(self, other: LatencySketch) -> None:
        """Fold another sketch of the same accuracy into this one."""
        if other._gamma_log != self._gamma_log:
            raise ValueError("cannot merge sketches of different accuracy")
        self._settle()
        other._settle()
        if not self._buckets:  # into an empty sketch (a copy): copy the dict in C
            self._buckets = dict(other._buckets)
            if other._sorted is None and len(other._buckets) > 1:
                other._sorted = sorted(other._buckets)  # kept there for the next copy too
            self._sorted = other._sorted
        else:
            buckets = self._buckets
            before = len(buckets)
            get = buckets.get
            for index, n in other._buckets.items():
                buckets[index] = get(index, 0) + n
            if len(buckets) != before:  # the order holds while no bucket is new
                self._sorted = None
        self._zeros += other._zeros
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def subtract(self, other: LatencySketch) -> None:
        """Remove a sketch previously merged in (an expired time bucket).

        Counts are exact; min and max fall back to the bounds of the buckets left.
        """
        self._settle()
        other._settle()
        buckets = self._buckets
        before = len(buckets)
        for index, n in other._buckets.items():
            left = buckets.get(index, 0) - n
            if left > 0:
                buckets[index] = left
            else:
                buckets.pop(index, None)
        if len(buckets) != before:
            self._sorted = None
        self._zeros = max(0, self._zeros - other._zeros)
        self._count = max(0, self._count - other._count)
        self._sum = self._sum - other._sum if self._count else 0.0
        if not self._count:
            self._min, self._max = math.inf, -math.inf
        else:
            self._min = 0.0 if self._zeros else self._bucket_value(min(buckets))
            self._max = self._bucket_value(max(buckets)) if buckets else 0.0

    def _bucket_value(self, index: int) -> float:
        return 2 * math.exp(index * self._gamma_log) / (1 + math.exp(self._gamma_log))

    def copy(self) -> LatencySketch:
        """Return an independent copy."""
        clone = LatencySketch(self._relative_accuracy)
        clone.merge(self)
        return clone

    @property
    def mean(self) -> float | None:
        """Arithmetic mean, or None when empty."""
        return self.sum / self.count if self.count else None

    @property
    def variance(self) -> float | None:
        """The variance of the values from their buckets (within the sketch's accuracy), or None
        when empty: what a test of two means needs."""
        mean = self.mean
        if mean is None:
            return None
        spread = self._zeros * mean * mean
        for index, n in self._buckets.items():
            spread += n * (self._bucket_value(index) - mean) ** 2
        return spread / self._count

    def count_above(self, value: float) -> int:
        """About how many values are above ``value`` (those in buckets wholly above it)."""
        self._settle()
        if value < 1e-9:
            return self._count - self._zeros if value >= 0 else self._count
        edge = math.ceil(math.log(value) / self._gamma_log)
        return sum(n for index, n in self._buckets.items() if index > edge)

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile (0..1), or None when empty; clamped to the seen min/max."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Several quantiles (ascending ``qs``) in one pass over the sorted buckets."""
        self._settle()
        if not self._count:
            return [None] * len(qs)
        low, high = self._min, self._max
        out: list[float | None] = []
        ranks = [round(q * (self._count - 1)) for q in qs]
        seen = self._zeros
        pending = iter(ranks)
        rank = next(pending)
        while rank < seen:
            out.append(max(0.0, low))
            rank = next(pending, -1)
            if rank < 0:
                return out
        if self._sorted is None:
            self._sorted = sorted(self._buckets)
        buckets = self._buckets
        for index in self._sorted:
            seen += buckets[index]
            while seen > rank:
                out.append(min(max(self._bucket_value(index), low), high))
                rank = next(pending, -1)
                if rank < 0:
                    return out
        return out + [high] * (len(qs) - len(out))


@dataclass
class Aggregate:
    """Counts and durations of one group of events (a side, an endpoint, a time bucket)."""

    count: int = 0
    errors: int = 0
    timed: LatencySketch = field(default_factory=LatencySketch)
    first_ts: float | None = None
    last_ts: float | None = None
    # The events that sampled events stand for beyond themselves: sum of 1/sample_rate - 1.
    extra: float = 0.0
    # The same for the squared weights: sum of 1/sample_rate**2 - 1 (see ``estimated_variance``).
    extra_sq: float = 0.0

    @property
    def estimated(self) -> float:
        """How many events this aggregate stands for: each sampled one counts 1/sample_rate."""
        return self.count + self.extra

    @property
    def estimated_variance(self) -> float:
        """The variance of ``estimated`` as a count: the sum of the squared weights, so that 20
        events sampled at 0.1 are as unsure as 20 events, not as sure as 200 (``count`` when
        nothing was sampled, as for a Poisson count)."""
        return self.count + self.extra_sq

    def add(
        self, duration_ms: float | None, is_error: bool, ts: float, sample_rate: float | None = None
    ) -> None:
        """Count one event; untimed events (duration None) stay out of the durations, and an
        event sampled at ``sample_rate`` stands for 1/sample_rate events in ``estimated``."""
        self.count += 1
        if sample_rate is not None:
            weight = 1 / sample_rate
            self.extra += weight - 1
            self.extra_sq += weight * weight - 1
        if is_error:
            self.errors += 1
        if duration_ms is not None:
            self.timed.add(duration_ms)
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def add_many(
        self,
        count: int,
        errors: int,
        timed: LatencySketch,
        first: float,
        last: float,
        extra: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """Count a batch at once: ``count`` events seen from ``first`` to ``last``, ``errors``
        failed, the durations of the timed ones in ``timed``, ``extra`` what its sampled ones
        add to ``extra`` and ``extra_sq`` (see ``_extra``)."""
        self.count += count
        self.extra += extra[0]
        self.extra_sq += extra[1]
        self.errors += errors
        self.timed.merge(timed)
        if self.first_ts is None or first < self.first_ts:
            self.first_ts = first
        if self.last_ts is None or last > self.last_ts:
            self.last_ts = last

    def merge(self, other: Aggregate) -> None:
        """Fold another aggregate into this one."""
        self.count += other.count
        self.extra += other.extra
        self.extra_sq += other.extra_sq
        self.errors += other.errors
        self.timed.merge(other.timed)
        for ts in (other.first_ts, other.last_ts):
            if ts is not None:
                self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
                self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def subtract(self, other: Aggregate) -> None:
        """Remove an aggregate previously merged in; first/last timestamps stay as they were."""
        self.count -= other.count
        self.errors -= other.errors
        self.extra = max(0.0, self.extra - other.extra) if self.count > 0 else 0.0
        self.extra_sq = max(0.0, self.extra_sq - other.extra_sq) if self.count > 0 else 0.0
        self.timed.subtract(other.timed)

    @property
    def success_rate(self) -> float | None:
        """Share of events that succeeded (0..1), or None with no events."""
        return (self.count - self.errors) / self.count if self.count else None

    @property
    def error_rate(self) -> float | None:
        """Share of events that failed (0..1), or None with no events."""
        return self.errors / self.count if self.count else None

    def figures(self, minutes: float | None = None) -> dict[str, Any]:
        """Return the JSON figures of this aggregate, shaped as ``results.Figures``; a rate needs
        the window in minutes."""
        t = self.timed
        p50, p95, p99 = t.quantiles((0.50, 0.95, 0.99))
        out: dict[str, Any] = {
            "count": self.count,
            "timed_count": t.count,
            "error_count": self.errors,
            "success_rate": _round(self.success_rate, 4),
            "error_rate": _round(self.error_rate, 4),
            "avg_ms": _round(t.mean),
            "p50_ms": _round(p50),
            "p95_ms": _round(p95),
            "p99_ms": _round(p99),
            "max_ms": _round(t.max if t.count else None),
        }
        if minutes is not None:
            out["per_minute"] = _round(self.count / minutes if minutes > 0 else None)
        return out


@dataclass
class SideStats:
    """Everything the comparator needs about one side: totals, endpoints, components.

    ``api`` sums every endpoint event, so a service-wide comparison of API calls needs no
    merge of the endpoint sketches on each read.
    """

    service: Service
    total: Aggregate = field(default_factory=Aggregate)
    api: Aggregate = field(default_factory=Aggregate)
    endpoints: dict[str, Aggregate] = field(default_factory=dict)
    components: Counter[str] = field(default_factory=Counter)
    minutes: float = 1.0

    def add(
        self,
        component: str,
        action: str,
        duration_ms: float | None,
        is_error: bool,
        ts: float,
        sample_rate: float | None = None,
    ) -> None:
        """Count one event of this side (sampled at ``sample_rate``, None when not sampled)."""
        self.total.add(duration_ms, is_error, ts, sample_rate)
        _count_bounded(self.components, component)
        if component == ENDPOINT_COMPONENTS.get(self.service):
            key = action if action in self.endpoints or len(self.endpoints) < MAX_KEYS else OTHER
            agg = self.endpoints.get(key)
            if agg is None:
                agg = self.endpoints[key] = Aggregate()
            agg.add(duration_ms, is_error, ts, sample_rate)
            self.api.add(duration_ms, is_error, ts, sample_rate)

    def rekey(self, key_for: Callable[[str], str | None]) -> None:
        """Fold each endpoint that ``key_for`` names another key into that key: a browser call
        counted before the server's route was known (``GET /api/users/alice``) then counts
        under the server's key (``GET /api/users/:name``), whatever order the two arrived in."""
        for key in [k for k in self.endpoints if k != OTHER]:
            target = key_for(key)
            if target is None or target == key:
                continue
            moved = self.endpoints.pop(key)
            into = self.endpoints.get(target)
            if into is None:
                self.endpoints[target] = moved
            else:
                into.merge(moved)

    def add_events(self, events: list[Any], first: float, last: float) -> None:
        """Count a batch of this side's events (``ExecutionEvent``), seen from ``first`` to ``last``.

        The figures are those of ``add`` called for each event, at a few passes in C per
        endpoint rather than a dozen Python calls per event.
        """
        self.add_groups(group_events(self.service, events), first, last)

    def add_groups(self, groups: EventGroups, first: float, last: float) -> None:
        """``add_events`` for a batch already grouped (``group_events``), which ``Tallies`` counts too."""
        if not groups.events:
            return
        # Each duration is bucketed once, in its endpoint's sketch; the API-call and total
        # sketches merge those (one step per populated bucket, not per event).
        api = ENDPOINT_COMPONENTS.get(self.service)
        rest = groups.rest
        calls, call_errors, call_extra = LatencySketch(), 0, (0.0, 0.0)
        sampled = groups.sampled
        endpoints = self.endpoints
        for action, group in groups.calls.items():
            key = action if action in endpoints or len(endpoints) < MAX_KEYS else OTHER
            agg = endpoints.get(key)
            if agg is None:
                agg = endpoints[key] = Aggregate()
            timed = LatencySketch()
            timed.extend(groups.durations[action])
            errors = groups.errors[action]
            extra = _extra(group) if sampled else (0.0, 0.0)
            agg.add_many(len(group), errors, timed, first, last, extra)
            calls.merge(timed)
            call_errors += errors
            call_extra = (call_extra[0] + extra[0], call_extra[1] + extra[1])
        n_events, n_calls = len(groups.events), len(groups.events) - len(rest)
        names = Counter([e.component for e in rest])
        if groups.calls:
            self.api.add_many(n_calls, call_errors, calls, first, last, call_extra)
            names[api] += n_calls
        components = self.components
        for name, n in names.items():
            if name in components or len(components) < MAX_KEYS:
                components[name] += n
            else:
                components[OTHER] += n
        if rest:
            calls.extend(groups.rest_durations)
        errors = call_errors + groups.rest_errors
        more = _extra(rest) if sampled else (0.0, 0.0)
        self.total.add_many(
            n_events, errors, calls, first, last, (call_extra[0] + more[0], call_extra[1] + more[1])
        )

    def merge(self, other: SideStats) -> None:
        """Fold another side's statistics (e.g. a time bucket) into this one.

        The cap on distinct keys holds for the merged result too, not only per bucket.
        """
        self.total.merge(other.total)
        self.api.merge(other.api)
        for key, agg in other.endpoints.items():
            mine = self.endpoints.get(key)
            if mine is None:
                if len(self.endpoints) >= MAX_KEYS and key != OTHER:
                    key = OTHER
                    mine = self.endpoints.get(key)
                if mine is None:
                    mine = self.endpoints[key] = Aggregate()
            mine.merge(agg)
        for name, n in other.components.items():
            if name not in self.components and len(self.components) >= MAX_KEYS:
                name = OTHER
            self.components[name] += n

    def subtract(self, other: SideStats) -> None:
        """Remove statistics previously merged in (an expired time bucket)."""
        self.total.subtract(other.total)
        self.api.subtract(other.api)
        for key, agg in other.endpoints.items():
            mine = self.endpoints.get(key)
            if mine is not None:
                mine.subtract(agg)
                if mine.count <= 0:
                    del self.endpoints[key]
        self.components.subtract(other.components)
        for name in [n for n, c in self.components.items() if c <= 0]:
            del self.components[name]


@dataclass
class PairStats:
    """Both sides of one window plus the per-endpoint gaps of requests joined by trace id."""

    backend: SideStats = field(default_factory=lambda: SideStats("backend"))
    frontend: SideStats = field(default_factory=lambda: SideStats("frontend"))
    trace_gaps: dict[str, LatencySketch] = field(default_factory=dict)

    def side(self, service: str) -> SideStats:
        """The statistics of ``service``."""
        return self.backend if service == "backend" else self.frontend

    def add_gap(self, key: str, gap_ms: float) -> None:
        """Count the browser-minus-server time of one request seen from both sides."""
        sketch = self.trace_gaps.get(key)
        if sketch is None:
            if len(self.trace_gaps) >= MAX_KEYS:
                return
            sketch = self.trace_gaps[key] = LatencySketch()
        sketch.add(max(gap_ms, 0.0))

    def add_gaps(self, gaps: list[tuple[str, float]]) -> None:
        """``add_gap`` for each (endpoint, gap ms), a sketch update per endpoint."""
        self.add_gap_groups(group_gaps(gaps))

    def add_gap_groups(self, groups: dict[str, list[float]]) -> None:
        """``add_gaps`` for gaps already grouped (``group_gaps``), which ``Tallies`` counts too."""
        for key, values in groups.items():
            sketch = self.trace_gaps.get(key)
            if sketch is None:
                if len(self.trace_gaps) >= MAX_KEYS:
                    continue
                sketch = self.trace_gaps[key] = LatencySketch()
            sketch.extend(values)

    def merge(self, other: PairStats) -> None:
        """Fold another window (a time bucket) into this one."""
        self.backend.merge(other.backend)
        self.frontend.merge(other.frontend)
        for key, sketch in other.trace_gaps.items():
            mine = self.trace_gaps.get(key)
            if mine is None:
                self.trace_gaps[key] = sketch.copy()
            else:
                mine.merge(sketch)

    def subtract(self, other: PairStats) -> None:
        """Remove a window previously merged in."""
        self.backend.subtract(other.backend)
        self.frontend.subtract(other.frontend)
        for key, sketch in other.trace_gaps.items():
            mine = self.trace_gaps.get(key)
            if mine is not None:
                mine.subtract(sketch)
                if not mine.count:
                    del self.trace_gaps[key]


class EventGroups:
    """One side's batch of counted events grouped once, for every aggregate that counts it
    (``SideStats.add_groups``, ``Tallies.add_groups``): its endpoint calls by key with their
    timed durations and errors, and the other events (``rest``) with theirs."""

    __slots__ = ("events", "calls", "durations", "errors", "rest", "rest_durations", "rest_errors", "sampled")

    def __init__(self, service: str, events: list[Any]) -> None:
        api = ENDPOINT_COMPONENTS.get(service)  # type: ignore[call-overload]
        calls: dict[str, list[Any]] = {}
        rest: list[Any] = []
        get = calls.get
        for event in events:
            if event.component != api:
                rest.append(event)
                continue
            group = get(event.action)
            if group is None:
                calls[event.action] = [event]
            else:
                group.append(event)
        self.events = events
        self.calls = calls
        self.durations = {
            k: [e.duration_ms for e in g if e.duration_ms is not None] for k, g in calls.items()
        }
        self.errors = {k: len([e for e in g if e.status == "error"]) for k, g in calls.items()}
        self.rest = rest
        self.rest_durations = [e.duration_ms for e in rest if e.duration_ms is not None]
        self.rest_errors = len([e for e in rest if e.status == "error"])
        # Sampled events are rare: one pass finds them, and only then does a group pay for weights.
        self.sampled = any([e.sample_rate is not None for e in events])


def group_events(service: str, events: list[Any]) -> EventGroups:
    """``events`` (``ExecutionEvent``, all of ``service``) grouped once for the aggregates."""
    return EventGroups(service, events)


def group_gaps(gaps: list[tuple[str, float]]) -> dict[str, list[float]]:
    """(endpoint, browser-minus-server ms) pairs grouped by endpoint, a negative gap as 0 (as
    every figure counts it), in order: for ``PairStats.add_gap_groups`` and ``Tallies.add_gap_groups``."""
    by_key: dict[str, list[float]] = {}
    get = by_key.get
    for key, gap in gaps:
        values = get(key)
        if values is None:
            by_key[key] = [gap if gap > 0.0 else 0.0]
        else:
            values.append(gap if gap > 0.0 else 0.0)
    return by_key


def _extra(events: list[Any]) -> tuple[float, float]:
    """What a group's sampled events add to ``Aggregate.extra`` and ``extra_sq``: the events they
    stand for beyond themselves (1/sample_rate - 1 each) and the same for the squared weights."""
    weights = [1 / e.sample_rate for e in events if e.sample_rate is not None]
    return sum([w - 1 for w in weights]), sum([w * w - 1 for w in weights])


def _count_bounded(counter: Counter[str], name: str) -> None:
    if name in counter or len(counter) < MAX_KEYS:
        counter[name] += 1
    else:
        counter[OTHER] += 1


def _round(value: float | None, digits: int = 2) -> float | None:
    """``value`` to ``digits`` decimals, the same whatever order its sum was added in: the float
    noise of the order (time buckets merged live, one pass in the report) is dropped first, so a
    mean of exactly 14.225 never shows as 14.23 on the dashboard and 14.22 in the report."""
    if value is None or math.isinf(value):
        return None
    return round(round(value, 9), digits)


@dataclass
class Histogram:
    """Values counted by the fixed ``DURATION_BOUNDS_MS``: one count per bucket (not cumulative;
    the last is above every bound) and their sum, in milliseconds. Exact, and it only grows."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_MS) + 1))
    sum: float = 0.0

    @property
    def count(self) -> int:
        """How many values were counted."""
        return sum(self.buckets)

    def extend(self, values: list[float]) -> None:
        """Count values (ms); a value equal to a bound is in that bound's bucket (``le``).

        The values are sorted once and each bound found by bisection: a dozen steps in C
        rather than one Python step per value; a few values are placed one by one, in fewer."""
        if not values:
            return
        ordered = sorted(values)
        buckets, below = self.buckets, 0
        if len(ordered) <= _FEW:  # a few values (a key's calls or gaps in one batch): one bisection each
            for value in ordered:
                buckets[bisect_left(DURATION_BOUNDS_MS, value)] += 1
            self.sum += sum(ordered)
            return
        for index, bound in enumerate(DURATION_BOUNDS_MS):
            upto = bisect_right(ordered, bound)
            buckets[index] += upto - below
            below = upto
        buckets[-1] += len(ordered) - below
        self.sum += sum(ordered)

    def merge(self, other: Histogram) -> None:
        """Fold another histogram into this one."""
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.sum += other.sum


@dataclass
class Tallies:
    """What a store counted since it began, never reset by the window: events per side and
    status, the durations of each side's timed events, of its endpoint calls per endpoint key,
    and the browser-minus-server gaps per endpoint (what Prometheus counters and histograms
    expose). Endpoint keys are kept for the first ``max_keys`` seen per side (and for gaps);
    later keys are counted under ``OTHER``. ``max_keys=None`` keeps every key (one batch, to be
    capped where it is added: the Redis script does that for all processes at once).
    """

    events: dict[tuple[str, str], int] = field(
        default_factory=lambda: {(s, status): 0 for s in SERVICES for status in STATUSES}
    )
    durations: dict[str, Histogram] = field(default_factory=lambda: {s: Histogram() for s in SERVICES})
    endpoints: dict[str, dict[str, Histogram]] = field(default_factory=lambda: {s: {} for s in SERVICES})
    gaps: dict[str, Histogram] = field(default_factory=dict)
    max_keys: int | None = MAX_SERIES_KEYS

    def add_events(self, service: str, events: list[Any]) -> None:
        """Count counted events (``ExecutionEvent``) of one side; an untimed endpoint call takes
        its key's place too (its histogram stays empty)."""
        if events:
            self.add_groups(service, group_events(service, events))

    def add_groups(self, service: str, groups: EventGroups) -> None:
        """``add_events`` for one side's batch already grouped (``group_events``)."""
        if not groups.events:
            return
        errors = groups.rest_errors + sum(groups.errors.values())
        self.events[(service, "error")] += errors
        self.events[(service, "success")] += len(groups.events) - errors
        every = list(groups.rest_durations)
        endpoints = self.endpoints[service]
        for key, values in groups.durations.items():
            every += values
            self._histogram(endpoints, key).extend(values)
        self.durations[service].extend(every)

    def add_gaps(self, gaps: list[tuple[str, float]]) -> None:
        """Count (endpoint, browser-minus-server ms) pairs; a negative gap counts as 0, as in
        the window's figures."""
        self.add_gap_groups(group_gaps(gaps))

    def add_gap_groups(self, groups: dict[str, list[float]]) -> None:
        """``add_gaps`` for gaps already grouped (``group_gaps``)."""
        for key, values in groups.items():
            self._histogram(self.gaps, key).extend(values)

    def _histogram(self, table: dict[str, Histogram], key: str) -> Histogram:
        """The histogram of ``key`` in ``table`` (one side's endpoints, or the gaps), or that of
        ``OTHER`` once the table holds ``max_keys`` keys."""
        found = table.get(key)
        if found is None:
            if self.max_keys is not None and len(table) - (OTHER in table) >= self.max_keys:
                key = OTHER
                found = table.get(key)
            if found is None:
                found = table[key] = Histogram()
        return found

    def copy(self) -> Tallies:
        """An independent copy (the snapshot a reader gets)."""
        return Tallies(
            events=dict(self.events),
            durations={k: _copied(h) for k, h in self.durations.items()},
            endpoints={s: {k: _copied(h) for k, h in keys.items()} for s, keys in self.endpoints.items()},
            gaps={k: _copied(h) for k, h in self.gaps.items()},
            max_keys=self.max_keys,
        )


def _copied(histogram: Histogram) -> Histogram:
    return Histogram(list(histogram.buckets), histogram.sum)
