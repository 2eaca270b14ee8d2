"""Running aggregates over execution events: a quantile sketch and per-side statistics.

The monitor keeps these instead of rescanning its deques, so /data and /differences cost
the same with 100,000 stored events as with 1,000. The report CLI builds the same
aggregates from files, so the live view and the report agree figure for figure.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

# Cap on distinct endpoint keys and component/action names kept per side; further names
# are folded into OTHER so memory stays bounded when a client sends unnormalised paths.
MAX_KEYS = 500
OTHER = "(other)"
TIMED_API_COMPONENTS = {"backend": "http", "frontend": "api"}


class LatencySketch:
    """Mergeable quantile sketch with a bounded relative error (DDSketch's log buckets).

    ``quantile(q)`` is within ``relative_accuracy`` of the exact value for any input, and
    the sketch holds one counter per populated bucket (a few hundred at most for latencies
    between a microsecond and an hour).
    """

    __slots__ = (
        "_gamma_log",
        "_relative_accuracy",
        "_sorted",
        "buckets",
        "zeros",
        "count",
        "sum",
        "min",
        "max",
    )

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be between 0 and 1")
        self._relative_accuracy = relative_accuracy
        gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._gamma_log = math.log(gamma)
        self.buckets: dict[int, int] = {}
        self._sorted: list[int] | None = None  # bucket indexes in order, until the next change
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Count one non-negative value."""
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 1e-9:
            self.zeros += 1
            return
        index = math.ceil(math.log(value) / self._gamma_log)
        n = self.buckets.get(index)
        if n is None:
            self.buckets[index] = 1
            self._sorted = None
        else:
            self.buckets[index] = n + 1

    def merge(self, other: LatencySketch) -> None:
        """Fold another sketch of the same accuracy into this one."""
        if other._gamma_log != self._gamma_log:
            raise ValueError("cannot merge sketches of different accuracy")
        if not self.buckets:  # into an empty sketch (a copy): copy the dict in C
            self.buckets = dict(other.buckets)
            self._sorted = other._sorted
        else:
            buckets = self.buckets
            get = buckets.get
            for index, n in other.buckets.items():
                buckets[index] = get(index, 0) + n
            self._sorted = None
        self.zeros += other.zeros
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def subtract(self, other: LatencySketch) -> None:
        """Remove a sketch previously merged in (an expired time bucket).

        Counts are exact; min and max fall back to the bounds of the buckets left.
        """
        for index, n in other.buckets.items():
            left = self.buckets.get(index, 0) - n
            if left > 0:
                self.buckets[index] = left
            else:
                self.buckets.pop(index, None)
        self._sorted = None
        self.zeros = max(0, self.zeros - other.zeros)
        self.count = max(0, self.count - other.count)
        self.sum = self.sum - other.sum if self.count else 0.0
        if not self.count:
            self.min, self.max = math.inf, -math.inf
        else:
            self.min = 0.0 if self.zeros else self._bucket_value(min(self.buckets))
            self.max = self._bucket_value(max(self.buckets)) if self.buckets else 0.0

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

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile (0..1), or None when empty; clamped to the seen min/max."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Several quantiles (ascending ``qs``) in one pass over the sorted buckets."""
        if not self.count:
            return [None] * len(qs)
        out: list[float | None] = []
        ranks = [round(q * (self.count - 1)) for q in qs]
        seen = self.zeros
        pending = iter(ranks)
        rank = next(pending)
        while rank < seen:
            out.append(max(0.0, self.min))
            rank = next(pending, -1)
            if rank < 0:
                return out
        if self._sorted is None:
            self._sorted = sorted(self.buckets)
        buckets = self.buckets
        for index in self._sorted:
            seen += buckets[index]
            while seen > rank:
                out.append(min(max(self._bucket_value(index), self.min), self.max))
                rank = next(pending, -1)
                if rank < 0:
                    return out
        return out + [self.max] * (len(qs) - len(out))


@dataclass
class Aggregate:
    """Counts and durations of one group of events (a side, an endpoint, a time bucket)."""

    count: int = 0
    errors: int = 0
    timed: LatencySketch = field(default_factory=LatencySketch)
    first_ts: float | None = None
    last_ts: float | None = None

    def add(self, duration_ms: float | None, is_error: bool, ts: float) -> None:
        """Count one event; untimed events (duration None) stay out of the durations."""
        self.count += 1
        if is_error:
            self.errors += 1
        if duration_ms is not None:
            self.timed.add(duration_ms)
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def merge(self, other: Aggregate) -> None:
        """Fold another aggregate into this one."""
        self.count += other.count
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
        """Return the JSON figures of this aggregate; a rate needs the window in minutes."""
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


class TraceJoiner:
    """Pairs a request's backend and frontend halves by trace id, in bounded memory.

    ``offer`` keeps an unmatched half (at most ``limit``, oldest dropped first) and, when
    the other half of the same endpoint arrives, returns the browser-minus-server gap.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: OrderedDict[str, tuple[str, str, float | None]] = OrderedDict()

    def offer(self, trace: str, service: str, key: str, duration_ms: float | None) -> float | None:
        """Record one half; the gap in ms when it completes a pair, else None."""
        other = self._pending.pop(trace, None)
        if other is None or other[0] == service:
            self._pending[trace] = (service, key, duration_ms)
            if len(self._pending) > self.limit:
                self._pending.popitem(last=False)
            return None
        _, other_key, other_ms = other
        if other_key != key or other_ms is None or duration_ms is None:
            return None
        return duration_ms - other_ms if service == "frontend" else other_ms - duration_ms

    def clear(self) -> None:
        """Forget every unmatched half."""
        self._pending.clear()


@dataclass
class SideStats:
    """Everything the comparator needs about one side: totals, endpoints, components.

    ``api`` sums every endpoint event, so a service-wide comparison of API calls needs no
    merge of the endpoint sketches on each read.
    """

    service: str
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
    ) -> None:
        """Count one event of this side."""
        self.total.add(duration_ms, is_error, ts)
        _count_bounded(self.components, component)
        if component == TIMED_API_COMPONENTS.get(self.service):
            key = action if action in self.endpoints or len(self.endpoints) < MAX_KEYS else OTHER
            agg = self.endpoints.get(key)
            if agg is None:
                agg = self.endpoints[key] = Aggregate()
            agg.add(duration_ms, is_error, ts)
            self.api.add(duration_ms, is_error, ts)

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


def _count_bounded(counter: Counter[str], name: str) -> None:
    if name in counter or len(counter) < MAX_KEYS:
        counter[name] += 1
    else:
        counter[OTHER] += 1


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or math.isinf(value) else round(value, digits)
