"""Comparing a run with a saved baseline: what changed per endpoint and per side since then.

A run is reduced to the same figures whatever it was read from (event files, a saved report,
a /data export, a running monitor): per endpoint key and side its calls, errors and latency
(with the whole distribution when the source keeps one), and per endpoint the browser-minus-
server gap. Two runs are then compared like with like, the same key and side only, with the
live comparator's honesty: nothing is called on fewer than ``min_samples`` calls, an error rate
moves when a two-proportion test is sure of it, a p50 or p95 when Mood's quantile test is (the
share of calls above the baseline's, this run's or the pooled figure), a volume when a test of
the two counts is, each test's confidence adjusted for the many figures compared at once; a
change at its high level that is not sure is ``not enough samples``, never ``unchanged``. Pure:
the report tool (live_monitor/tools/report.py reads the files, render.py renders) and the live
monitor's pinned baseline (core/monitor.py) both compare with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import msgspec

from live_monitor.model.comparator import (
    counts_confidence,
    level,
    lower_severity,
    pct_apart,
    proportions_confidence,
)
from live_monitor.model.results import (
    VERDICTS,
    BaselineComparison,
    Change,
    ChangeSide,
    Difference,
    Metric,
    PinnedEndpoint,
    PinnedSide,
    PinnedSummary,
    Presence,
    Verdict,
)
from live_monitor.model.stats import OTHER, Aggregate, LatencySketch, PairStats, SideStats
from live_monitor.model.thresholds import Levels, Thresholds
from live_monitor.vocabulary import SERVICES, Service, Severity, severity_rank

__all__ = [
    "LATENCY_CHANGE_MS",
    "LATENCY_CHANGE_PCT",
    "BaselineComparison",
    "Change",
    "Distributions",
    "PinnedBaseline",
    "Presence",
    "Run",
    "compare_runs",
    "distributions",
    "failures",
    "pin_window",
    "pinned_summary",
    "run_of_report",
    "since_baseline",
]

# Where a p50 or p95 change becomes a low, medium or high one: both the relative change (% of
# the smaller of the two figures, so a halving counts as a doubling) and the change in ms must
# reach a level, so 2 ms -> 4 ms on a cached endpoint is no alarm while 300 ms -> 900 ms is.
LATENCY_CHANGE_PCT: Levels = (20.0, 50.0, 100.0)
LATENCY_CHANGE_MS: Levels = (10.0, 50.0, 100.0)
DISTRIBUTIONS_VERSION = 1


# --- distributions: what a saved report keeps so that a later run can be tested against it ---


class SketchData(msgspec.Struct, frozen=True, kw_only=True):
    """A ``LatencySketch`` as JSON: its log buckets (index -> count; JSON keys are text) and its
    exact count, sum, min and max."""

    count: int
    zeros: int
    sum: float
    min: float | None
    max: float | None
    buckets: dict[str, int]


class SideDistribution(msgspec.Struct, frozen=True, kw_only=True):
    """One endpoint seen from one side: calls, errors, what sampled calls stand for, durations."""

    count: int
    errors: int
    estimated: float
    estimated_variance: float
    durations: SketchData


class EndpointDistribution(msgspec.Struct, frozen=True, kw_only=True):
    """One endpoint key: each side that saw it, and the gaps of requests joined by trace id."""

    backend: SideDistribution | None = None
    frontend: SideDistribution | None = None
    gaps: SketchData | None = None


class Distributions(msgspec.Struct, frozen=True, kw_only=True):
    """The distributions of a run, per endpoint and side: the ``distributions`` of a JSON report
    read from files, enough for a later ``--baseline`` to test every change."""

    version: int = DISTRIBUTIONS_VERSION
    minutes: dict[Service, float]
    endpoints: dict[str, EndpointDistribution]


def _sketch_data(sketch: LatencySketch) -> SketchData:
    empty = not sketch.count
    return SketchData(
        count=sketch.count,
        zeros=sketch.zeros,
        sum=sketch.sum,
        min=None if empty else sketch.min,
        max=None if empty else sketch.max,
        buckets={str(index): n for index, n in sorted(sketch.buckets.items())},
    )


def _sketch(data: SketchData) -> LatencySketch:
    """The sketch a ``SketchData`` was made of; ValueError when its counts do not add up."""
    try:
        buckets = {int(index): n for index, n in data.buckets.items()}
    except ValueError:
        raise ValueError("a distribution's bucket is not a whole number") from None
    if data.count < 0 or data.zeros < 0 or any(n <= 0 for n in buckets.values()):
        raise ValueError("a distribution holds a count below 1")
    if data.zeros + sum(buckets.values()) != data.count:
        raise ValueError("a distribution's buckets do not add up to its count")
    sketch = LatencySketch()
    sketch.buckets.update(buckets)
    sketch.count, sketch.zeros, sketch.sum = data.count, data.zeros, data.sum
    sketch.min = math.inf if data.min is None else data.min
    sketch.max = -math.inf if data.max is None else data.max
    return sketch


def _side_distribution(agg: Aggregate) -> SideDistribution:
    return SideDistribution(
        count=agg.count,
        errors=agg.errors,
        estimated=agg.estimated,
        estimated_variance=agg.estimated_variance,
        durations=_sketch_data(agg.timed),
    )


def distributions(pair: PairStats) -> Distributions:
    """The distributions of every endpoint key both sides (or one) saw, ``(other)`` left out."""
    keys = (set(pair.backend.endpoints) | set(pair.frontend.endpoints)) - {OTHER}

    def side(stats: SideStats, key: str) -> SideDistribution | None:
        agg = stats.endpoints.get(key)
        return None if agg is None else _side_distribution(agg)

    return Distributions(
        minutes={"backend": pair.backend.minutes, "frontend": pair.frontend.minutes},
        endpoints={
            key: EndpointDistribution(
                backend=side(pair.backend, key),
                frontend=side(pair.frontend, key),
                gaps=_sketch_data(pair.trace_gaps[key]) if key in pair.trace_gaps else None,
            )
            for key in sorted(keys)
        },
    )


# --- a run, whatever it was read from -------------------------------------------------------


@dataclass(frozen=True)
class SideRun:
    """One endpoint seen from one side in one run: the figures a change is judged on."""

    count: int
    errors: int
    timed: int
    p50: float | None
    p95: float | None
    minutes: float
    estimated: float
    estimated_variance: float
    sketch: LatencySketch | None  # None when the source kept figures only

    @property
    def per_minute(self) -> float | None:
        return self.estimated / self.minutes if self.minutes > 0 else None


@dataclass(frozen=True)
class GapRun:
    """An endpoint's browser-minus-server median gap, as the live endpoint rule measures it."""

    ms: float
    count: int  # requests (or, from medians, the fewer timed calls of the two sides) behind it
    sketch: LatencySketch | None  # the joined requests' gaps, when they measure it


@dataclass(frozen=True)
class Run:
    """A run reduced to what a baseline comparison needs."""

    source: dict[str, Any]
    endpoints: dict[tuple[str, Service], SideRun]
    gaps: dict[str, GapRun]
    differences: list[Difference]
    distributions: bool  # True when every latency figure comes with its distribution


def run_of_report(report: dict[str, Any], thresholds: Thresholds) -> Run:
    """The run a report describes (built now or saved with ``--format json``, or a /data answer
    shaped alike): from its ``distributions`` when it has them, else from its endpoint figures.
    Raises ValueError for a report whose parts are not what a report holds."""
    summary = report.get("summary", report)
    if not isinstance(summary, dict) or not isinstance(summary.get("endpoints", []), list):
        raise ValueError("not a report: no endpoint table")
    try:
        diffs = msgspec.convert(report.get("differences") or [], list[Difference])
    except msgspec.ValidationError as exc:
        raise ValueError(f"its differences: {exc}") from None
    source = summary.get("source") if isinstance(summary.get("source"), dict) else {}
    found = report.get("distributions")
    if found is None:
        return _run_of_figures(summary, thresholds, diffs, source or {})
    try:
        dist = msgspec.convert(found, Distributions)
    except msgspec.ValidationError as exc:
        raise ValueError(f"its distributions: {exc}") from None
    if dist.version != DISTRIBUTIONS_VERSION:
        raise ValueError(f"its distributions are of version {dist.version}, not {DISTRIBUTIONS_VERSION}")
    return _run_of_distributions(dist, thresholds, diffs, source or {})


def _run_of_distributions(
    dist: Distributions, t: Thresholds, diffs: list[Difference], source: dict[str, Any]
) -> Run:
    endpoints: dict[tuple[str, Service], SideRun] = {}
    gaps: dict[str, GapRun] = {}
    for key, ep in dist.endpoints.items():
        for service in SERVICES:
            side: SideDistribution | None = getattr(ep, service)
            if side is None:
                continue
            sketch = _sketch(side.durations)
            p50, p95 = sketch.quantiles((0.5, 0.95))
            endpoints[key, service] = SideRun(
                side.count,
                side.errors,
                sketch.count,
                p50,
                p95,
                dist.minutes.get(service, 0.0),
                side.estimated,
                side.estimated_variance,
                sketch,
            )
        gap = _gap(endpoints.get((key, "backend")), endpoints.get((key, "frontend")), ep.gaps, t)
        if gap is not None:
            gaps[key] = gap
    return Run(source, endpoints, gaps, diffs, True)


def _gap(be: SideRun | None, fe: SideRun | None, joined: SketchData | None, t: Thresholds) -> GapRun | None:
    """The live endpoint rule's gap: the median gap of requests joined by trace id when there are
    ``min_samples`` of them, else the browser's median minus the server's."""
    if be is None or fe is None or min(be.count, fe.count, be.timed, fe.timed) < t.min_samples:
        return None
    if joined is not None and joined.count >= t.min_samples:
        sketch = _sketch(joined)
        return GapRun(sketch.quantile(0.5) or 0.0, sketch.count, sketch)
    return GapRun((fe.p50 or 0.0) - (be.p50 or 0.0), min(be.timed, fe.timed), None)


def _run_of_figures(
    summary: dict[str, Any], t: Thresholds, diffs: list[Difference], source: dict[str, Any]
) -> Run:
    """A run from endpoint rows alone (a monitor's report, an older saved report, a /data answer
    that does not hold all its events): figures, no distributions, so latency is not tested."""
    endpoints: dict[tuple[str, Service], SideRun] = {}
    gaps: dict[str, GapRun] = {}
    for row in summary.get("endpoints") or []:
        key = row.get("key") if isinstance(row, dict) else None
        if not isinstance(key, str) or key == OTHER:
            continue
        for service in SERVICES:
            figures = row.get(service)
            if isinstance(figures, dict):
                endpoints[key, service] = _side_of_figures(figures, summary.get(service) or {})
        be, fe = endpoints.get((key, "backend")), endpoints.get((key, "frontend"))
        if be and fe and min(be.count, fe.count, be.timed, fe.timed) >= t.min_samples:
            matched = _int(row.get("matched_requests"))
            if matched >= t.min_samples and _num(row.get("matched_gap_p50_ms")) is not None:
                gaps[key] = GapRun(_num(row.get("matched_gap_p50_ms")) or 0.0, matched, None)
            elif be.p50 is not None and fe.p50 is not None:
                gaps[key] = GapRun(fe.p50 - be.p50, min(be.timed, fe.timed), None)
    return Run(source, endpoints, gaps, diffs, False)


def _side_of_figures(figures: dict[str, Any], side: dict[str, Any]) -> SideRun:
    """An endpoint row's figures of one side (``results.Figures``); its minutes from its calls
    per minute, or from the side's window."""
    count = _int(figures.get("count"))
    per_minute = _num(figures.get("per_minute"))
    minutes = count / per_minute if per_minute else (_num(side.get("window_minutes")) or 0.0)
    return SideRun(
        count,
        _int(figures.get("error_count")),
        _int(figures.get("timed_count", count)),
        _num(figures.get("p50_ms")),
        _num(figures.get("p95_ms")),
        minutes,
        float(count),
        float(count),
        None,
    )


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _int(value: Any) -> int:
    number = _num(value)
    return max(int(number), 0) if number is not None else 0


# --- the comparison -------------------------------------------------------------------------


def compare_runs(baseline: Run, current: Run, t: Thresholds) -> BaselineComparison:
    """Every change from ``baseline`` to ``current``, per endpoint key and side."""
    changes: list[Change] = []
    new: list[Presence] = []
    vanished: list[Presence] = []
    for key, service in sorted(baseline.endpoints.keys() | current.endpoints.keys()):
        then, now = baseline.endpoints.get((key, service)), current.endpoints.get((key, service))
        if then is None or now is None:
            seen = now or then
            assert seen is not None
            shown = Presence(key=key, side=service, calls=seen.count, calls_per_minute=_rnd(seen.per_minute))
            (new if then is None else vanished).append(shown)
            continue
        changes += _side_changes(key, service, then, now, t)
    for key in sorted(baseline.gaps.keys() & current.gaps.keys()):
        changes.append(_gap_change(key, baseline.gaps[key], current.gaps[key], t))
    changes = _adjusted(changes, t)
    changes.sort(key=_order)
    notes = []
    if not (baseline.distributions and current.distributions):
        which = " and ".join(
            name for name, run in (("the baseline", baseline), ("this run", current)) if not run.distributions
        )
        notes.append(
            f"{which[0].upper()}{which[1:]} keeps figures, not distributions: how sure a latency "
            "change is comes from a log-normal fit of its p50 and p95, an estimate (give event "
            "files, or a report saved with --format json from event files, to count it)"
        )
    return BaselineComparison(
        baseline=baseline.source,
        distributions=baseline.distributions and current.distributions,
        changes=changes,
        new_endpoints=new,
        vanished_endpoints=vanished,
        new_differences=_new_differences(baseline.differences, current.differences),
        counts={v: sum(c.verdict == v for c in changes) for v in VERDICTS},
        levels={
            "latency_change_pct": LATENCY_CHANGE_PCT,
            "latency_change_ms": LATENCY_CHANGE_MS,
            "gap_change_ms": t.endpoint_gap_ms,
            "error_rate_points": t.endpoint_error_points,
            "volume_pct": t.endpoint_activity_pct,
            "min_samples": t.min_samples,
            "tail_min_samples": t.tail_min_samples,
            "confidence_level": t.confidence_level,
        },
        notes=notes,
    )


def _adjusted(changes: list[Change], t: Thresholds) -> list[Change]:
    """The changes with each test's confidence adjusted for how many figures were tested at once
    (Benjamini-Hochberg: a hundred figures at 95% each would call five changes by chance alone),
    then judged: a change no longer sure enough is ``unchanged``, within what chance moves; but
    one at its high level (a p95 sixteen times higher on a few dozen calls) is ``not enough
    samples``, never ``unchanged``: these samples can neither confirm nor rule it out."""
    tested = sorted((1 - c.confidence, i) for i, c in enumerate(changes) if c.confidence is not None)
    adjusted: dict[int, float] = {}
    smallest = 1.0
    for rank in range(len(tested), 0, -1):  # q(i) = min over j >= i of m / j * p(j)
        p, index = tested[rank - 1]
        smallest = min(smallest, p * len(tested) / rank)
        adjusted[index] = round(1 - smallest, 3)
    out = []
    for index, change in enumerate(changes):
        sure = adjusted.get(index)
        if sure is None:
            out.append(change)
        elif change.verdict not in _FLAGGED or sure >= t.confidence_level:
            out.append(msgspec.structs.replace(change, confidence=sure))
        elif change.severity == "high":
            message = (
                f"{change.message}; not sure with these samples: {change.confidence:.1%} confident "
                f"alone, {sure:.1%} for one of {len(tested)} figures tested, {t.confidence_level:.0%} needed"
            )
            out.append(
                msgspec.structs.replace(
                    change, confidence=sure, verdict="not enough samples", severity=None, message=message
                )
            )
        else:
            out.append(msgspec.structs.replace(change, confidence=sure, verdict="unchanged", severity=None))
    return out


_FLAGGED = ("regression", "improvement", "changed")


def _order(change: Change) -> tuple[int, int, bool, str, str, str]:
    """Worst news first: by verdict and severity, then (among ``not enough samples``) the changes
    that moved but are unsure before the figures with too few calls to test."""
    return (
        VERDICTS.index(change.verdict),
        -severity_rank(change.severity),
        change.confidence is None,
        change.key,
        change.side,
        change.metric,
    )


def _side_changes(key: str, side: Service, then: SideRun, now: SideRun, t: Thresholds) -> list[Change]:
    return [
        _latency_change(key, side, "p50_ms", then, now, t.min_samples),
        _latency_change(key, side, "p95_ms", then, now, max(t.min_samples, t.tail_min_samples)),
        _error_change(key, side, then, now, t),
        _volume_change(key, side, then, now, t),
    ]


_QUANTILE = {"p50_ms": 0.5, "p95_ms": 0.95}


def _latency_change(
    key: str, side: Service, metric: Metric, then: SideRun, now: SideRun, need: int
) -> Change:
    """A p50 or p95 that moved: by ``LATENCY_CHANGE_PCT`` and ``LATENCY_CHANGE_MS``, and, with
    both distributions, surely: the share of each run's calls above the two runs' pooled p50 or
    p95 is compared by a two-proportion test (``_quantile_test``)."""
    samples = (then.timed, now.timed)
    before, after = (then.p50, now.p50) if metric == "p50_ms" else (then.p95, now.p95)
    if min(samples) < need or before is None or after is None:
        return _too_few(key, side, metric, before, after, samples, need)
    delta = after - before
    apart = pct_apart(before, after)
    severity = lower_severity(level(abs(delta), LATENCY_CHANGE_MS), level(apart, LATENCY_CHANGE_PCT))
    confidence, test = _quantile_test(then, now, _QUANTILE[metric])
    verdict = _verdict(severity, delta)
    name = f"{side} {metric[:3]}"
    message = (
        f"{key}: {name} {_ms(before)} -> {_ms(after)} ({_signed(delta)} ms, {_signed_pct(before, after)})"
    )
    return _change(
        key, side, metric, verdict, severity, before, after, delta, samples, confidence, test, message
    )


def _quantile_test(then: SideRun, now: SideRun, q: float) -> tuple[float | None, str]:
    """How sure a p50 or p95 moved. If both runs share their q-quantile, they have the same share
    of calls above it (half, or 5%): Mood's test compares the two shares at an estimate of it
    by a two-proportion test. Which estimate finds a change depends on its shape: a run slower
    throughout shows at the baseline's figure (or at this run's, when it got faster), while a
    tail that moved far (one call in ten 1.5 s slower) barely moves the share above either's p95
    and shows at the pooled one, above which nearly no baseline call lies. So all three are
    tried and the surest kept, its doubt tripled (Bonferroni) for the three tries. Counted in
    the two distributions when both runs keep one; else estimated from each run's p50 and p95
    as a log-normal (latencies nearly are), and said so."""
    name = f"p{round(q * 100)}"
    if then.sketch is not None and now.sketch is not None:
        a, b = then.sketch, now.sketch
        edges = [a.quantile(q), b.quantile(q), _pooled_quantile(a, b, q)]
        tables = [(a.count_above(edge), b.count_above(edge)) for edge in edges if edge is not None]
        test = f"share of calls above the baseline's, this run's and the pooled {name} (Mood's test, two proportions)"
    else:
        found = _lognormal_tables(then, now, q)
        if found is None:
            return None, "none: figures without their distributions"
        tables = found
        test = (
            f"share of calls above the baseline's, this run's and the pooled {name} (Mood's test), "
            "estimated from p50 and p95 (log-normal)"
        )
    doubt = min(1 - proportions_confidence(x, then.timed, y, now.timed) for x, y in tables)
    return round(max(0.0, 1 - len(tables) * doubt), 3), test


def _pooled_quantile(a: LatencySketch, b: LatencySketch, q: float) -> float:
    """The q-quantile of two sketches' values taken together (0 for two empty ones)."""
    pooled = a.copy()
    pooled.merge(b)
    return pooled.quantile(q) or 0.0


def _lognormal_tables(then: SideRun, now: SideRun, q: float) -> list[tuple[int, int]] | None:
    """Each run's calls above the baseline's, this run's and the pooled q-quantile, their
    durations taken as log-normals with their p50 and p95; None when either cannot fit one.
    The pooled quantile lies between the two runs' own: found by bisection, on a log scale."""
    fits = _lognormal(then), _lognormal(now)
    if fits[0] is None or fits[1] is None:
        return None
    mu, sigma = zip(fits[0], fits[1], strict=True)
    weights = then.timed / (then.timed + now.timed), now.timed / (then.timed + now.timed)
    own = [m + NormalDist().inv_cdf(q) * s for m, s in zip(mu, sigma, strict=True)]
    low, high = min(own), max(own)
    for _ in range(60):
        middle = (low + high) / 2
        pooled = sum(w * _above(middle, m, s) for w, m, s in zip(weights, mu, sigma, strict=True))
        low, high = (middle, high) if pooled > 1 - q else (low, middle)
    return [
        (round(_above(edge, mu[0], sigma[0]) * then.timed), round(_above(edge, mu[1], sigma[1]) * now.timed))
        for edge in (*own, (low + high) / 2)
    ]


def _lognormal(run: SideRun) -> tuple[float, float] | None:
    """The log-normal (mu, sigma of the log durations) with a run's p50 and p95; None when those
    cannot fit one (missing, zero, or no spread)."""
    if run.p50 is None or run.p95 is None or run.p50 <= 0 or run.p95 <= run.p50:
        return None
    return math.log(run.p50), math.log(run.p95 / run.p50) / _Z95


def _above(log_edge: float, mu: float, sigma: float) -> float:
    """The share of a log-normal's values above ``exp(log_edge)``."""
    return 0.5 * math.erfc((log_edge - mu) / sigma / math.sqrt(2))


_Z95 = NormalDist().inv_cdf(0.95)  # 1.645: the standard normal's 95th percentile


def _error_change(key: str, side: Service, then: SideRun, now: SideRun, t: Thresholds) -> Change:
    """An error rate that moved by ``endpoint_error_points``, surely by a two-proportion test."""
    samples = (then.count, now.count)
    before = then.errors / then.count if then.count else None
    after = now.errors / now.count if now.count else None
    if min(samples) < t.min_samples or before is None or after is None:
        return _too_few(key, side, "error_rate", before, after, samples, t.min_samples)
    points = (after - before) * 100
    severity = level(abs(points), t.endpoint_error_points)
    confidence = proportions_confidence(then.errors, then.count, now.errors, now.count)
    verdict = _verdict(severity, points)
    message = (
        f"{key}: {side} errors {before:.1%} ({then.errors:,} of {then.count:,}) -> {after:.1%} "
        f"({now.errors:,} of {now.count:,}), {points:+.1f} points"
    )
    test = "two proportions"
    return _change(
        key, side, "error_rate", verdict, severity, before, after, points, samples, confidence, test, message
    )


def _volume_change(key: str, side: Service, then: SideRun, now: SideRun, t: Thresholds) -> Change:
    """Calls per minute that moved by ``endpoint_activity_pct`` (% of the smaller rate), surely by
    a test of the two counts (sampled calls weighted as the live comparator weighs them). The
    counts are the samples: the busier run needs ``min_samples`` calls."""
    samples = (then.count, now.count)
    before, after = then.per_minute, now.per_minute
    if max(samples) < t.min_samples or before is None or after is None:
        return _too_few(key, side, "calls_per_minute", before, after, samples, t.min_samples)
    a, b = _counted(then), _counted(now)
    confidence = counts_confidence(a, then.minutes, b, now.minutes)
    severity = level(pct_apart(before, after), t.endpoint_activity_pct)
    verdict: Verdict = "unchanged" if severity is None else "changed"
    message = f"{key}: {side} calls {before:,.2f}/min -> {after:,.2f}/min ({_signed_pct(before, after)})"
    test = "two counts (Poisson)"
    return _change(
        key, side, "calls_per_minute", verdict, severity,
        before, after, after - before, samples, confidence, test, message,
    )  # fmt: skip


def _gap_change(key: str, then: GapRun, now: GapRun, t: Thresholds) -> Change:
    """The browser-minus-server median gap that moved by ``endpoint_gap_ms``; with requests
    joined by trace id in both runs, surely by Mood's median test on their gaps."""
    samples = (then.count, now.count)
    delta = now.ms - then.ms
    severity = level(abs(delta), t.endpoint_gap_ms)
    confidence, test = None, "none: medians per side, no joined requests"
    if then.sketch is not None and now.sketch is not None:
        edge = _pooled_quantile(then.sketch, now.sketch, 0.5)
        confidence = proportions_confidence(
            then.sketch.count_above(edge),
            then.sketch.count,
            now.sketch.count_above(edge),
            now.sketch.count,
        )
        test = "share of joined requests above the two runs' pooled median gap (two proportions: Mood's test)"
    verdict = _verdict(severity, delta)
    message = f"{key}: gap p50 (browser minus server) {_ms(then.ms)} -> {_ms(now.ms)} ({_signed(delta)} ms)"
    return _change(
        key,
        "both",
        "gap_p50_ms",
        verdict,
        severity,
        then.ms,
        now.ms,
        delta,
        samples,
        confidence,
        test,
        message,
    )


def _verdict(severity: Severity | None, delta: float) -> Verdict:
    """Worse or better when the change reaches a level; ``_adjusted`` then keeps the verdict
    only where its test, adjusted, is sure enough."""
    if severity is None:
        return "unchanged"
    return "regression" if delta > 0 else "improvement"


def _too_few(
    key: str,
    side: Service,
    metric: Metric,
    before: float | None,
    after: float | None,
    samples: tuple[int, int],
    need: int,
) -> Change:
    message = (
        f"{key}: {side} {metric}: not enough samples ({samples[0]:,} in the baseline, "
        f"{samples[1]:,} now; {need:,} needed in each)"
    )
    return _change(
        key, side, metric, "not enough samples", None, before, after, None, samples, None, "none", message
    )


def _change(
    key: str,
    side: ChangeSide,
    metric: Metric,
    verdict: Verdict,
    severity: Severity | None,
    before: float | None,
    after: float | None,
    delta: float | None,
    samples: tuple[int, int],
    confidence: float | None,
    test: str,
    message: str,
) -> Change:
    if verdict in ("unchanged", "not enough samples"):
        severity = None
    pct = (
        None
        if before is None or after is None or before == 0
        else _rnd((after - before) / abs(before) * 100, 1)
    )
    return Change(
        key=key,
        side=side,
        metric=metric,
        verdict=verdict,
        severity=severity,
        baseline=_rnd(before, 4 if metric == "error_rate" else 2),
        current=_rnd(after, 4 if metric == "error_rate" else 2),
        change=_rnd(delta, 2),
        change_pct=pct,
        samples={"baseline": samples[0], "current": samples[1]},
        confidence=confidence,
        test=test,
        message=message,
    )


def _counted(run: SideRun) -> Aggregate:
    """An aggregate holding only a side's counts, as ``counts_confidence`` takes them."""
    return Aggregate(
        count=run.count, extra=run.estimated - run.count, extra_sq=run.estimated_variance - run.count
    )


def _new_differences(before: list[Difference], after: list[Difference]) -> list[Difference]:
    """The differences between the sides found now that the baseline did not have, or had at a
    lower severity (one is the same when its type, scope and key are)."""
    had = {(d.type, d.scope, d.key): severity_rank(d.severity) for d in before}
    return [d for d in after if severity_rank(d.severity) > had.get((d.type, d.scope, d.key), 0)]


def failures(comparison: BaselineComparison, floor: Severity) -> list[str]:
    """What ``--fail-on floor`` fails on with a baseline: regressions and new differences at or
    above ``floor``, one line each (improvements and volume changes never fail)."""
    rank = severity_rank(floor)
    found = [
        f"{c.severity} regression: {c.message}"
        for c in comparison.changes
        if c.verdict == "regression" and severity_rank(c.severity) >= rank
    ]
    found += [
        f"new {d.severity} difference: {d.message}"
        for d in comparison.new_differences
        if severity_rank(d.severity) >= rank
    ]
    return found


def _rnd(value: float | None, digits: int = 2) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def _signed(value: float) -> str:
    return f"{value:+,.1f}"


def _signed_pct(before: float, after: float) -> str:
    return "new from 0" if before == 0 else f"{(after - before) / abs(before) * 100:+.0f}%"


# --- the live monitor's pinned baseline -----------------------------------------------------


class PinnedBaseline(msgspec.Struct, frozen=True, kw_only=True):
    """A window of the live monitor pinned as its baseline (``POST /baseline``): its
    distributions per endpoint and side, so a later window is tested against it as a saved
    report is, and the differences between the sides it had. Kept in the store."""

    pinned_at: float  # Unix seconds
    window_seconds: float
    distributions: Distributions
    differences: list[Difference]


def pin_window(pair: PairStats, differences: list[Difference], now: float, window_s: float) -> PinnedBaseline:
    """The window ``pair`` pinned at ``now`` (``differences``: those it has between the sides)."""
    return PinnedBaseline(
        pinned_at=now, window_seconds=window_s, distributions=distributions(pair), differences=differences
    )


def since_baseline(
    pinned: PinnedBaseline, pair: PairStats, differences: list[Difference], t: Thresholds
) -> BaselineComparison:
    """What changed from the pinned window to the window ``pair`` (``differences``: its own), with
    every latency change tested on both distributions."""
    then = _run_of_pinned(pinned, t)
    now = _run_of_distributions(distributions(pair), t, differences, {"kind": "the monitor's window"})
    return compare_runs(then, now, t)


def pinned_summary(pinned: PinnedBaseline, t: Thresholds) -> PinnedSummary:
    """The pinned window's figures per endpoint key and side, as ``GET /baseline`` shows them."""
    run = _run_of_pinned(pinned, t)

    def side(key: str, service: Service) -> PinnedSide | None:
        found = run.endpoints.get((key, service))
        if found is None:
            return None
        return PinnedSide(
            calls=found.count,
            errors=found.errors,
            p50_ms=_rnd(found.p50),
            p95_ms=_rnd(found.p95),
            calls_per_minute=_rnd(found.per_minute),
        )

    gaps = run.gaps
    return PinnedSummary(
        pinned_at=pinned.pinned_at,
        window_seconds=pinned.window_seconds,
        endpoints=[
            PinnedEndpoint(
                key=key,
                backend=side(key, "backend"),
                frontend=side(key, "frontend"),
                gap_p50_ms=_rnd(gaps[key].ms) if key in gaps else None,
            )
            for key in sorted(pinned.distributions.endpoints)
        ],
        differences=pinned.differences,
    )


def _run_of_pinned(pinned: PinnedBaseline, t: Thresholds) -> Run:
    source = {"kind": "pinned window", "pinned_at": pinned.pinned_at, "window_seconds": pinned.window_seconds}
    return _run_of_distributions(pinned.distributions, t, pinned.differences, source)
