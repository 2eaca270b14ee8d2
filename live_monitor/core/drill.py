"""One endpoint drilled into: both sides' latency distributions, the gaps of its matched
requests, the slowest of them as waterfalls, HTTP statuses, differences and calls over time.

The distributions and figures come from the statistics window (the sketches the endpoint rows
are made of), so they cost the same however many events are stored. The event-level figures
(statuses, waterfalls, calls per minute) come from one pass over the newest ``SCAN_LIMIT``
events of each side, a bounded read on both stores, with the browser's calls keyed by the
server's routes and paired by trace id by the one join rule (``policy.choose``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, cast

from live_monitor.model import policy
from live_monitor.model.comparator import round_ms
from live_monitor.model.results import (
    Distribution,
    EndpointDrill,
    Figures,
    GapDrill,
    MinuteCalls,
    Scanned,
    SideDrill,
    Waterfall,
)
from live_monitor.model.stats import Aggregate, LatencySketch
from live_monitor.vocabulary import ENDPOINT_COMPONENTS, SERVICES

if TYPE_CHECKING:
    from live_monitor.core.filtered import FilteredView
    from live_monitor.core.monitor import LiveExecutionMonitor
    from live_monitor.model.events import EventFilter, ExecutionEvent

__all__ = ["SCAN_LIMIT", "SLOWEST", "STEPS_PER_DECADE", "endpoint_drill"]

SCAN_LIMIT = 500  # newest events of each side read for the event-level figures
SLOWEST = 10  # matched requests shown as waterfalls
MAX_MINUTES = 120  # calls-over-time points at most (the newest minutes)
STEPS_PER_DECADE = 10  # log-scale bins per factor of ten: 1, 1.26, 1.58, 2, 2.51 ... 10 ms
# LatencySketch's bucket i holds values in (gamma^(i-1), gamma^i], gamma from its default accuracy.
_SKETCH_GAMMA = (1 + 0.01) / (1 - 0.01)


def endpoint_drill(
    monitor: LiveExecutionMonitor, key: str, where: EventFilter | None = None
) -> EndpointDrill | None:
    """The drill-down of endpoint ``key`` (a server route key, ``GET /api/orders/:id``), or None
    when neither the window nor the newest events know it. With ``where``, of the events of one
    release and/or environment only (``core.filtered``: from the stored events)."""
    view = monitor.view(where) if where else None
    stats = view.stats if view else monitor.window_stats()
    scan = _Scan(monitor, key, view)
    known = key in stats.backend.endpoints or key in stats.frontend.endpoints or key in stats.trace_gaps
    if not known and not scan.server and not scan.browser:
        return None
    pairs = scan.pairs()
    sides = {side: stats.side(side).endpoints.get(key) for side in SERVICES}
    edges, latencies = _shared_scale([agg.timed for agg in sides.values() if agg is not None])
    latency = iter(latencies)
    mine = {"backend": scan.server, "frontend": scan.browser}
    drilled = {
        side: _side(agg, next(latency), mine[side], stats.side(side).minutes) if agg else None
        for side, agg in sides.items()
    }
    gap_sketch = stats.trace_gaps.get(key) or LatencySketch()
    gap_edges, [gaps] = _shared_scale([gap_sketch])
    scanned: Scanned = {
        "limit": SCAN_LIMIT,
        "backend": scan.read["backend"],
        "frontend": scan.read["frontend"],
        "since": scan.since,
        "matched": len(pairs),
    }
    slowest = sorted(pairs, key=lambda pair: -(pair[0].duration_ms or 0.0))[:SLOWEST]
    gap_drill: GapDrill = {"edges_ms": gap_edges, "distribution": gaps}
    found = monitor.filtered_differences(view) if view else monitor.differences(stats)
    answer: EndpointDrill = {
        "key": key,
        "window_seconds": monitor.store.window_s,
        "edges_ms": edges,
        "backend": drilled["backend"],
        "frontend": drilled["frontend"],
        "gaps": gap_drill,
        "slowest": [waterfall(b, s) for b, s in slowest],
        "differences": [d for d in found if d.key == key],
        "calls_per_minute": _per_minute(scan.server, scan.browser),
        "scanned": scanned,
    }
    if view:
        answer["filter"] = view.note()
    return answer


class _Scan:
    """The newest ``SCAN_LIMIT`` events of each side, read once, and what of them is ``key``'s:
    the server's requests keyed so, the browser's calls keyed so by the server's routes as now
    known (the stored events are left as they are), and the traces they share.

    Each event costs a step of a comprehension; only the endpoint's own traces go further."""

    def __init__(self, monitor: LiveExecutionMonitor, key: str, view: FilteredView | None = None) -> None:
        self.key = key
        server, browser = (self._calls(monitor, side, view) for side in SERVICES)
        self.read = {"backend": len(server), "frontend": len(browser)}
        epochs = [e.epoch for e in (server[:1] + browser[:1])]  # each side's oldest read
        self.since = min(epochs) if epochs else None
        key_for = monitor.routes.key_for if len(monitor.routes) else None
        self.keyed = {a: (key_for(a) or a) if key_for else a for a in {e.action for e in browser}}
        self.server = [e for e in server if e.action == key]
        keyed = self.keyed
        self.browser = [e for e in browser if keyed[e.action] == key]
        traces = {e.trace_id for e in self.server} | {e.trace_id for e in self.browser}
        traces.discard(None)
        # every half of those traces: a trace's other requests may be the ones its calls met
        self.traced = [e for e in browser + server if e.trace_id in traces]

    @staticmethod
    def _calls(monitor: LiveExecutionMonitor, side: str, view: FilteredView | None) -> list[ExecutionEvent]:
        """One side's newest counted endpoint events (at most ``SCAN_LIMIT`` read; of a filtered
        view, its newest matching ones), oldest first."""
        component = ENDPOINT_COMPONENTS[side]  # type: ignore[index]
        if view is not None:
            newest = view.newest(SCAN_LIMIT, service=side, include_self=False)
        else:
            newest = monitor.store.recent(SCAN_LIMIT, service=side, include_self=False)
        events = [e for e in policy.counted(newest) if e.component == component]
        events.reverse()
        return events

    def pairs(self) -> list[tuple[ExecutionEvent, ExecutionEvent]]:
        """(browser call, server request) pairs of the endpoint among the events read, by the
        store's join rule (``policy.choose``), each trace's halves offered in time order."""
        by_trace: dict[str, list[ExecutionEvent]] = defaultdict(list)
        for event in policy.pairable(self.traced):
            assert event.trace_id is not None
            by_trace[event.trace_id].append(event)
        pairs = []
        for events in by_trace.values():
            if len({e.service for e in events}) == 2:
                pairs += self._join(sorted(events, key=lambda e: e.epoch))
        return [(b, s) for b, s in pairs if s.action == self.key]

    def _join(self, events: list[ExecutionEvent]) -> list[tuple[ExecutionEvent, ExecutionEvent]]:
        """The pairs one trace's halves make, offered in order."""
        waiting: list[tuple[policy.Half, ExecutionEvent]] = []
        pairs = []
        for event in events:
            mine = policy.Half.of(event, event.epoch)
            if event.service == "frontend":
                mine = mine._replace(endpoint=self.keyed.get(event.action, event.action))
            index = policy.choose(mine, [half for half, _ in waiting], event.epoch)
            if index is None:
                waiting.append((mine, event))
                continue
            _, other = waiting.pop(index)
            pairs.append((event, other) if event.service == "frontend" else (other, event))
        return pairs


def waterfall(browser: ExecutionEvent, server: ExecutionEvent) -> Waterfall:
    """One matched request on the browser's clock: the server's span, of the duration the
    browser read in ``Server-Timing`` (else the server's own), centred in the browser's span."""
    browser_ms = browser.duration_ms or 0.0
    timing = (browser.details or {}).get("backend_ms")
    measured = isinstance(timing, int | float) and not isinstance(timing, bool) and timing >= 0
    server_ms = float(timing) if measured and timing is not None else (server.duration_ms or 0.0)
    start = browser.epoch
    lead_ms = max(browser_ms - server_ms, 0.0) / 2
    server_start = start + lead_ms / 1000
    server_end = server_start + min(server_ms, browser_ms) / 1000
    status = (browser.details or {}).get("http_status")
    return {
        "trace_id": str(browser.trace_id),
        "browser_action": _own_key(browser),
        "browser_start": round(start, 6),
        "browser_end": round(start + browser_ms / 1000, 6),
        "server_start": round(server_start, 6),
        "server_end": round(server_end, 6),
        "browser_ms": round(browser_ms, 3),
        "server_ms": round(server_ms, 3),
        "server_ms_from": "server_timing" if measured else "server_event",
        "estimated": ["server_start", "server_end"],
        "server_clock_offset_ms": round((server.epoch - server_start) * 1000, 3),
        "http_status": status if isinstance(status, int) and not isinstance(status, bool) else None,
        "status": browser.status,
    }


def _own_key(browser: ExecutionEvent) -> str:
    """The browser's own key of a call (``GET /api/orders/42``), kept when it was re-keyed."""
    own = (browser.details or {}).get("url_key")
    return own if isinstance(own, str) else browser.action


def _side(agg: Aggregate, latency: Distribution, events: list[ExecutionEvent], minutes: float) -> SideDrill:
    """One side: the window's figures and distribution, the statuses of its scanned calls."""
    statuses: Counter[str] = Counter()
    for event in events:
        code = (event.details or {}).get("http_status")
        statuses[str(code) if isinstance(code, int) and not isinstance(code, bool) else "none"] += 1
    return {
        "figures": cast("Figures", agg.figures(minutes)),
        "latency": latency,
        "statuses": dict(statuses.most_common()),
        "errors_scanned": len([e for e in events if e.status == "error"]),
    }


def _bin(index: int) -> int:
    """The log-scale bin of a sketch bucket: bin k holds values in (10^((k-1)/S), 10^(k/S)]."""
    value = 2 * _SKETCH_GAMMA**index / (1 + _SKETCH_GAMMA)  # the bucket's value, as the sketch reads it
    return math.ceil(STEPS_PER_DECADE * math.log10(value) - 1e-9)


def _shared_scale(sketches: list[LatencySketch]) -> tuple[list[float], list[Distribution]]:
    """One log scale covering every sketch's values, and each sketch counted on it."""
    binned = []
    for sketch in sketches:
        bins: Counter[int] = Counter()
        for index, n in sketch.buckets.items():
            bins[_bin(index)] += n
        binned.append(bins)
    used = [k for bins in binned for k in bins]
    if not used:
        return [], [_distribution(s, [], Counter()) for s in sketches]
    low, high = min(used), max(used)
    edges = [_edge(k) for k in range(low - 1, high + 1)]
    return edges, [
        _distribution(s, list(range(low, high + 1)), b) for s, b in zip(sketches, binned, strict=True)
    ]


def _edge(k: int) -> float:
    """The upper edge of bin ``k``, to four significant digits."""
    value = 10 ** (k / STEPS_PER_DECADE)
    return float(f"{value:.4g}")


def _distribution(sketch: LatencySketch, ks: list[int], bins: Counter[int]) -> Distribution:
    """A sketch's counts in bins ``ks`` of the scale, and its percentiles."""
    p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99))
    return {
        "count": sketch.count,
        "zeros": sketch.zeros,
        "counts": [bins.get(k, 0) for k in ks],
        "p50_ms": round_ms(p50),
        "p95_ms": round_ms(p95),
        "p99_ms": round_ms(p99),
    }


def _per_minute(backend: list[ExecutionEvent], frontend: list[ExecutionEvent]) -> list[MinuteCalls]:
    """Calls per side per minute, every minute from the first call to the last (the newest
    ``MAX_MINUTES`` at most), quiet minutes as zeros."""
    counts: dict[str, Counter[int]] = {
        "backend": Counter(int(e.epoch // 60) for e in backend),
        "frontend": Counter(int(e.epoch // 60) for e in frontend),
    }
    minutes = [m for side in counts.values() for m in side]
    if not minutes:
        return []
    last = max(minutes)
    first = max(min(minutes), last - MAX_MINUTES + 1)
    return [
        {"minute": float(m * 60), "backend": counts["backend"][m], "frontend": counts["frontend"][m]}
        for m in range(first, last + 1)
    ]
