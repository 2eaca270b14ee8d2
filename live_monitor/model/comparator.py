"""The comparator: where the backend and the frontend differ, as ``Difference`` values.

A pure function over two sides' statistics and a set of thresholds, shared by the live
monitor and the report CLI. Service scope compares whole services (the README's "Sample Output" figures);
endpoint scope compares the same endpoint key seen from the browser and from the server.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, cast

from live_monitor.model.results import Basis, Comparison, Difference, EndpointRow, Figures, SideSummary
from live_monitor.model.stats import OTHER, Aggregate, LatencySketch, PairStats, SideStats
from live_monitor.model.thresholds import Levels, Thresholds
from live_monitor.vocabulary import (
    OUTGOING_COMPONENT,
    SEVERITIES,
    DifferenceType,
    Severity,
    Work,
    severity_rank,
)

__all__ = [
    "API_CALLS",
    "DEPENDENCY_COMPONENTS",
    "ONE_SIDED",
    "OPERATIONS",
    "SEVERITIES",
    "Difference",
    "compare",
    "comparison",
    "endpoint_rows",
    "is_page_or_asset",
    "level",
    "summaries",
    "summarize",
]

# What the service-wide figures compare: the browser's API calls with the server requests they
# make when both sides have API calls (like for like), every event of each side when neither
# has any, and nothing when only one side has some (a browser sampled down to no session in the
# window, a logger that does not capture its calls): its requests are not the other's page noise.
API_CALLS: Literal["API calls"] = "API calls"
OPERATIONS: Literal["operations"] = "operations"
ONE_SIDED: Literal["none: one side has no API calls"] = "none: one side has no API calls"
# Calls to other services (a backend's outgoing calls, a browser's third-party calls): dependencies, never compared.
DEPENDENCY_COMPONENTS = frozenset({OUTGOING_COMPONENT})
# A server request is a page or an asset (not an API call) when its path is "/", lies under one
# of these first segments, or ends in one of these extensions -- unless the browser calls it too.
ASSET_DIRS = frozenset({"static", "assets", "public", "dist", "build", "_next", "images", "img", "fonts"})
ASSET_EXTENSIONS = frozenset(
    "html htm js mjs cjs css map ico png jpg jpeg gif svg webp avif bmp woff woff2 ttf otf eot "
    "txt xml webmanifest wasm mp3 mp4 webm pdf".split()
)


@functools.lru_cache(maxsize=1024)  # asked for each server key, several times a poll
def is_page_or_asset(key: str) -> bool:
    """True when an endpoint key ("METHOD /path") names a page or a static file, not an API call."""
    path = key.split(" ", 1)[-1].split("?", 1)[0]
    if path in ("", "/"):
        return True
    segments = path.strip("/").split("/")
    if segments[0] in ASSET_DIRS:
        return True
    _, dot, ext = segments[-1].rpartition(".")
    return bool(dot) and ext.lower() in ASSET_EXTENSIONS


def _confidence(z: float) -> float:
    """Two-sided confidence (1 - p-value) of a standard normal statistic, to 3 digits."""
    return round(math.erf(abs(z) / math.sqrt(2)), 3)


def proportions_confidence(x1: int, n1: int, x2: int, n2: int) -> float:
    """How sure a gap between two rates (x1/n1, x2/n2) is not chance: a two-proportion z-test
    with Yates' continuity correction, so a handful of calls stays unsure."""
    if not n1 or not n2:
        return 0.0
    pooled = (x1 + x2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 0.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    gap = abs(x1 / n1 - x2 / n2) - (1 / n1 + 1 / n2) / 2
    return _confidence(max(gap, 0.0) / se)


def counts_confidence(a: Aggregate, minutes_a: float, b: Aggregate, minutes_b: float) -> float:
    """How sure two event rates (estimated counts over their minutes) differ: a z-test whose
    variance is the sum of the squared weights (Poisson when nothing is sampled), so a count
    estimated from a 10% sample is as unsure as the events that came, not as those it stands for."""
    ra, rb = a.estimated / minutes_a, b.estimated / minutes_b
    var = a.estimated_variance / minutes_a**2 + b.estimated_variance / minutes_b**2
    return _confidence((ra - rb) / math.sqrt(var)) if var > 0 else 0.0


def means_confidence(a: LatencySketch, b: LatencySketch, shift: float = 0.0) -> float | None:
    """How sure two mean durations differ (``shift`` taken off b's first): Welch's z-test on the
    sketches' means and variances; None when either is empty."""
    if not a.count or not b.count:
        return None
    gap = (a.mean or 0.0) - ((b.mean or 0.0) - shift)
    se = math.sqrt((a.variance or 0.0) / a.count + (b.variance or 0.0) / b.count)
    if se <= 0:
        return 1.0 if abs(gap) > 0 else 0.0
    return _confidence(gap / se)


def level(value: float | None, levels: Levels) -> Severity | None:
    """Return the severity ``value`` reaches in ``levels`` (low, medium, high), or None."""
    if value is None:
        return None
    found: Severity | None = None
    for name, bound in zip(SEVERITIES, levels, strict=True):
        if value >= bound:
            found = name
    return found


def lower_severity(*severities: Severity | None) -> Severity | None:
    """The lesser of the severities (None, not reached, is the least)."""
    return min(severities, key=severity_rank)


def pct_apart(a: float | None, b: float | None) -> float | None:
    """Relative gap between two positive figures, against the smaller one, in percent."""
    if a is None or b is None:
        return None
    low = min(a, b)
    if low <= 0:
        return None if max(a, b) <= 0 else float("inf")
    return abs(a - b) / low * 100


def _diff(
    type_: DifferenceType,
    severity: Severity,
    key: str | None,
    backend: dict[str, Any],
    frontend: dict[str, Any],
    pct: float | None,
    message: str,
    samples: tuple[int, int],
    confidence: float | None,
) -> Difference:
    """A difference with what it rests on (events per side) and how sure it is not chance."""
    finite = pct is not None and pct != float("inf")
    return Difference(
        type=type_,
        severity=severity,
        scope="service" if key is None else "endpoint",
        key=key,
        backend=backend,
        frontend=frontend,
        difference_pct=round(pct, 1) if pct is not None and finite else None,
        message=message,
        samples={"backend": samples[0], "frontend": samples[1]},
        confidence=confidence,
    )


@dataclass(frozen=True)
class _Work:
    """What the service-wide checks compare (``basis``; the figures of all events when it is
    ``ONE_SIDED``, reported but never judged) and the server's page and asset keys."""

    backend: Aggregate
    frontend: Aggregate
    basis: Basis
    assets: frozenset[str]


def _assets(stats: PairStats) -> frozenset[str]:
    """The server's endpoint keys that are pages or static files the browser never calls."""
    fe = stats.frontend.endpoints
    return frozenset(k for k in stats.backend.endpoints if k not in fe and k != OTHER and is_page_or_asset(k))


def _api_calls(side: SideStats, assets: frozenset[str]) -> Aggregate:
    """A side's API calls: its endpoint events less the page and asset keys."""
    if not assets:
        return side.api
    calls = Aggregate()
    calls.merge(side.api)
    for key in assets:
        calls.subtract(side.endpoints[key])
    return calls


def _work(stats: PairStats) -> _Work:
    """Like for like: API calls on both sides when both have some, all events of each side when
    neither has any; when only one side has some, the other's clicks and page loads are not its
    requests, so nothing is compared (the figures of all events are still reported)."""
    assets = _assets(stats)
    be_calls = _api_calls(stats.backend, assets)
    if be_calls.count > 0 and stats.frontend.api.count > 0:
        return _Work(be_calls, stats.frontend.api, API_CALLS, assets)
    basis = OPERATIONS if be_calls.count == 0 and stats.frontend.api.count == 0 else ONE_SIDED
    return _Work(stats.backend.total, stats.frontend.total, basis, assets)


def summarize(side: SideStats, assets: frozenset[str] = frozenset()) -> SideSummary:
    """The per-service summary used by /data and the report.

    Every figure but ``api_calls`` covers all of the side's events (page loads and queries
    alike); ``api_calls`` covers only its API calls (the browser's api calls, the backend's http
    requests but for the page and asset keys in ``assets``), the same requests seen from both
    sides, so the two compare. ``work`` counts the events by kind of work.
    """
    total = side.total
    figures = total.figures(side.minutes)
    calls = _api_calls(side, assets)
    api = calls.timed
    pages = sum(side.endpoints[k].count for k in assets if k in side.endpoints)
    dependencies = sum(n for name, n in side.components.items() if name in DEPENDENCY_COMPONENTS)
    work: dict[Work, int] = {
        "api_calls": calls.count,
        "pages_and_assets": pages,
        "dependencies": dependencies,
        "other": max(total.count - calls.count - pages - dependencies, 0),
    }
    return {
        "total_events": total.count,
        "timed_events": total.timed.count,
        "error_count": total.errors,
        "avg_duration_ms": figures["avg_ms"],
        "p50_duration_ms": figures["p50_ms"],
        "p95_duration_ms": figures["p95_ms"],
        "p99_duration_ms": figures["p99_ms"],
        "success_rate": figures["success_rate"],
        "events_per_minute": figures["per_minute"],
        "components": dict(side.components.most_common(20)),
        "api_calls": {
            "count": calls.count,
            "avg_duration_ms": round_ms(api.mean),
            "p95_duration_ms": round_ms(api.quantile(0.95)),
        },
        "work": work,
        "estimated_events": round(total.estimated, 1),
    }


def summaries(stats: PairStats) -> tuple[SideSummary, SideSummary]:
    """Both sides' summaries, the backend's API calls without its page and asset requests."""
    return summarize(stats.backend, _assets(stats)), summarize(stats.frontend)


def comparison(stats: PairStats) -> Comparison:
    """Service-wide ratios over what the checks compare (``basis``; all events, never judged,
    when it is ``ONE_SIDED``): performance_ratio is the backend's average over the frontend's,
    activity_ratio its events per minute over theirs."""
    work = _work(stats)
    be, fe = work.backend, work.frontend
    be_avg, fe_avg = be.timed.mean, fe.timed.mean
    ratio = round(be_avg / fe_avg, 2) if be_avg is not None and fe_avg else None
    be_rate = be.estimated / stats.backend.minutes if stats.backend.minutes else None
    fe_rate = fe.estimated / stats.frontend.minutes if stats.frontend.minutes else None
    return {
        "performance_ratio": ratio,
        "avg_duration_diff_ms": round(be_avg - fe_avg, 2)
        if be_avg is not None and fe_avg is not None
        else None,
        "success_rate_diff": (
            round(be.success_rate - fe.success_rate, 4)
            if be.success_rate is not None and fe.success_rate is not None
            else None
        ),
        "activity_ratio": round(be_rate / fe_rate, 2) if be_rate is not None and fe_rate else None,
        "basis": work.basis,
    }


def endpoint_rows(stats: PairStats) -> list[EndpointRow]:
    """One row per endpoint key: frontend vs backend p50/p95, the gap in ms, error rates."""
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
    assets = _assets(stats)
    rows: list[EndpointRow] = []
    for key in sorted(set(be_eps) | set(fe_eps)):
        be, fe = be_eps.get(key), fe_eps.get(key)
        be_fig = cast("Figures", be.figures(stats.backend.minutes)) if be else None
        fe_fig = cast("Figures", fe.figures(stats.frontend.minutes)) if fe else None
        pairs = stats.trace_gaps.get(key)
        row: EndpointRow = {
            "key": key,
            "backend": be_fig,
            "frontend": fe_fig,
            "gap_p50_ms": _gap(fe_fig, be_fig, "p50_ms"),
            "gap_p95_ms": _gap(fe_fig, be_fig, "p95_ms"),
            "matched_requests": pairs.count if pairs else 0,
            "matched_gap_p50_ms": round_ms(pairs.quantile(0.5)) if pairs else None,
            "matched_gap_p95_ms": round_ms(pairs.quantile(0.95)) if pairs else None,
            "seen_by": "both" if be and fe else ("backend" if be else "frontend"),
            "work": "pages_and_assets" if key in assets else "api_calls",
        }
        rows.append(row)
    rows.sort(key=lambda r: -sum(side["count"] for side in (r["backend"], r["frontend"]) if side))
    return rows


def _gap(fe: Figures | None, be: Figures | None, name: Literal["p50_ms", "p95_ms"]) -> float | None:
    if not fe or not be:
        return None
    f, b = fe[name], be[name]
    return None if f is None or b is None else round(f - b, 2)


def round_ms(value: float | None) -> float | None:
    """A figure in ms to two decimals, as the answers give them."""
    return None if value is None else round(value, 2)


@dataclass(frozen=True)
class _Gap:
    """The browser-minus-server gap of one endpoint, as the endpoint rule judges it."""

    ms: float
    basis: str
    weight: int  # requests behind the figure
    be_p50: float
    fe_p50: float


def compare(stats: PairStats, thresholds: Thresholds | None = None) -> list[Difference]:
    """Every difference between the two sides, most severe first."""
    t = thresholds or Thresholds()
    gaps = _endpoint_gaps(stats, t)
    work = _work(stats)
    found = _service_differences(stats, t, gaps, work) + _endpoint_differences(stats, t, gaps, work)
    found.sort(key=lambda d: (-severity_rank(d.severity), d.scope != "service", d.key or ""))
    return found


def _endpoint_gaps(stats: PairStats, t: Thresholds) -> dict[str, _Gap]:
    """The gap of every endpoint seen by both sides on enough timed events.

    The median gap of requests joined by trace id when there are enough of them, else the
    browser's median minus the server's median.
    """
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
    gaps = {}
    for key in be_eps.keys() & fe_eps.keys():
        be, fe = be_eps[key], fe_eps[key]
        if key == OTHER or min(be.count, fe.count, be.timed.count, fe.timed.count) < t.min_samples:
            continue
        be_p50, fe_p50 = be.timed.quantile(0.5) or 0.0, fe.timed.quantile(0.5) or 0.0
        pairs = stats.trace_gaps.get(key)
        if pairs is not None and pairs.count >= t.min_samples:
            basis = f"{pairs.count:,} requests joined by trace id"
            gaps[key] = _Gap(pairs.quantile(0.5) or 0.0, basis, pairs.count, be_p50, fe_p50)
        else:
            weight = min(be.timed.count, fe.timed.count)
            gaps[key] = _Gap(fe_p50 - be_p50, "medians per endpoint", weight, be_p50, fe_p50)
    return gaps


def _network_allowance(stats: PairStats, gaps: dict[str, _Gap], t: Thresholds) -> float:
    """The usual browser-minus-server gap of an API call, which is network, not a difference.

    The request-weighted median of the endpoint gaps, so one slow endpoint does not raise it;
    with no endpoint busy enough for a gap of its own, the median gap of all requests joined by
    trace id. At most the gap the endpoint rule never flags (``endpoint_gap_ms`` low), so a
    browser 300 ms behind the server everywhere is not taken for the network.
    """
    if not gaps:
        pooled = LatencySketch()
        for sketch in stats.trace_gaps.values():
            pooled.merge(sketch)
        if pooled.count < t.min_samples:
            return 0.0
        return min(max(pooled.quantile(0.5) or 0.0, 0.0), t.endpoint_gap_ms[0])
    ordered = sorted((g.ms, g.weight) for g in gaps.values())
    half, seen = sum(w for _, w in ordered) / 2, 0
    median = ordered[-1][0]
    for ms, weight in ordered:
        seen += weight
        if seen >= half:
            median = ms
            break
    return min(max(median, 0.0), t.endpoint_gap_ms[0])


def _service_differences(
    stats: PairStats, t: Thresholds, gaps: dict[str, _Gap], work: _Work
) -> list[Difference]:
    """Activity, performance and error rate of what ``work`` compares, and the coverage pattern."""
    be, fe = work.backend, work.frontend
    out = _coverage(stats, t)
    if work.basis == ONE_SIDED or be.count < t.min_samples or fe.count < t.min_samples:
        return out
    out += _activity(stats, t, work)
    out += _performance(stats, t, gaps, work)
    out += _error_rate(None, be, fe, t.error_rate_points, t)
    return out


def _activity(stats: PairStats, t: Thresholds, work: _Work) -> list[Difference]:
    """The busier side, by events (or API calls) per minute, each sampled event counted as the
    1/sample_rate events it stands for; an estimate from a sample must also be ``t.confidence_level``
    sure (exact counts keep their relative thresholds alone)."""
    be, fe = work.backend, work.frontend
    be_min, fe_min = stats.backend.minutes, stats.frontend.minutes
    be_n, fe_n = be.estimated, fe.estimated
    be_rate, fe_rate = be_n / be_min, fe_n / fe_min
    pct = pct_apart(be_rate, fe_rate)
    sev = level(pct, t.activity_pct)
    sure = counts_confidence(be, be_min, fe, fe_min)
    if not sev or _sampling_noise(be, fe, sure, t):
        return []
    busier = "Backend" if be_rate > fe_rate else "Frontend"
    noun = "events" if work.basis == OPERATIONS else "API calls"
    figures = []
    for agg, n, rate in ((be, be_n, be_rate), (fe, fe_n, fe_rate)):
        side: dict[str, Any] = {"events": round(n), "events_per_minute": round(rate, 2), "basis": work.basis}
        if agg.extra:
            side["sampled_events"] = agg.count  # what came; "events" is what they stand for
        figures.append(side)
    sampled = " (sampled events counted as the events they stand for)" if be.extra or fe.extra else ""
    return [
        _diff(
            "activity",
            sev,
            None,
            figures[0],
            figures[1],
            pct,
            f"{busier} is more active: backend {be_n:,.0f} {noun} ({be_rate:,.1f}/min), "
            f"frontend {fe_n:,.0f} ({fe_rate:,.1f}/min){sampled}.",
            (be.count, fe.count),
            sure,
        )
    ]


def _sampling_noise(be: Aggregate, fe: Aggregate, sure: float, t: Thresholds) -> bool:
    """True when a side's count is an estimate from a sample and a gap this size could be the
    sample's chance (the test is less than ``t.confidence_level`` sure)."""
    return bool(be.extra or fe.extra) and sure < t.confidence_level


def _performance(stats: PairStats, t: Thresholds, gaps: dict[str, _Gap], work: _Work) -> list[Difference]:
    """The slower side on average, over what ``work`` compares, after the usual network gap, once
    a test of the two means is ``t.confidence_level`` sure the gap is not chance."""
    bt, ft, basis = work.backend.timed, work.frontend.timed, work.basis
    if bt.count < t.min_samples or ft.count < t.min_samples:
        return []
    be_avg, fe_avg = bt.mean or 0.0, ft.mean or 0.0
    # The browser's API calls wait for the network too: the usual gap is left out of their
    # average before both thresholds apply, as the endpoint rule lets it pass per endpoint.
    allowance = _network_allowance(stats, gaps, t) if basis == API_CALLS and fe_avg > be_avg else 0.0
    fe_net = max(be_avg, fe_avg - allowance) if allowance else fe_avg
    pct = pct_apart(be_avg, fe_net)
    sev = lower_severity(level(pct, t.performance_pct), level(abs(be_avg - fe_net), t.performance_ms))
    sure = means_confidence(bt, ft, allowance)
    if not sev or pct is None or (sure is not None and sure < t.confidence_level):
        return []  # a mean moved by a few outliers is not a difference yet
    slower = "Backend" if be_avg > fe_avg else "Frontend"
    frontend = {
        "avg_ms": round(fe_avg, 2),
        "p95_ms": round_ms(ft.quantile(0.95)),
        "count": ft.count,
        "basis": basis,
    }
    apart = f"{pct:.1f}% apart"
    if allowance:  # only where it was taken off: a figure with a reason in the message
        frontend["network_gap_ms"] = round(allowance, 2)
        apart = f"{allowance:,.0f} ms of it the usual network gap; {pct:.1f}% apart without it"
    return [
        _diff(
            "performance",
            sev,
            None,
            {
                "avg_ms": round(be_avg, 2),
                "p95_ms": round_ms(bt.quantile(0.95)),
                "count": bt.count,
                "basis": basis,
            },
            frontend,
            pct,
            f"{slower} {basis} take longer on average: backend {be_avg:,.1f} ms, "
            f"frontend {fe_avg:,.1f} ms ({apart}).",
            (bt.count, ft.count),
            sure,
        )
    ]


def _error_rate(
    key: str | None, be: Aggregate, fe: Aggregate, levels: Levels, t: Thresholds
) -> list[Difference]:
    """A gap in error rates: its points set the severity, once a two-proportion test is at least
    ``t.confidence_level`` sure it is not chance."""
    be_err, fe_err = be.error_rate or 0.0, fe.error_rate or 0.0
    points = abs(be_err - fe_err) * 100
    sev = level(points, levels)
    if not sev:
        return []
    sure = proportions_confidence(be.errors, be.count, fe.errors, fe.count)
    if sure < t.confidence_level:
        return []
    where = f"{key}: " if key else ""
    worse = "backend" if be_err > fe_err else "frontend"
    hint = ""
    if key and worse == "backend":
        hint = " The UI may be hiding server failures (retries or fallbacks)."
    elif key:
        hint = " Calls fail in the browser before or without reaching the backend."
    return [
        _diff(
            "error_rate",
            sev,
            key,
            {"error_rate": round(be_err, 4), "success_rate": round(1 - be_err, 4), "count": be.count},
            {"error_rate": round(fe_err, 4), "success_rate": round(1 - fe_err, 4), "count": fe.count},
            points,
            f"{where}the {worse} fails more often: backend {be_err:.1%} errors ({be.errors:,} of "
            f"{be.count:,}), frontend {fe_err:.1%} ({fe.errors:,} of {fe.count:,}).{hint}",
            (be.count, fe.count),
            sure,
        )
    ]


def _coverage(stats: PairStats, t: Thresholds) -> list[Difference]:
    """Service-scope pattern: the share of frontend API calls whose endpoint the backend never saw."""
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
    fe_calls = sum(a.count for a in fe_eps.values())
    if not be_eps or fe_calls < t.min_samples:
        return []
    unseen = {k: a.count for k, a in fe_eps.items() if k not in be_eps and k != OTHER}
    share = sum(unseen.values()) / fe_calls * 100
    sev = level(share, t.pattern_share_pct)
    if not sev:
        return []
    return [
        _diff(
            "pattern",
            sev,
            None,
            {"endpoints": len(be_eps)},
            {
                "endpoints": len(fe_eps),
                "calls": fe_calls,
                "unmatched_calls": sum(unseen.values()),
                "unmatched_endpoints": sorted(unseen)[:10],
            },
            share,
            f"{share:.1f}% of the browser's API calls go to {len(unseen)} endpoint(s) the backend never saw.",
            (sum(a.count for a in be_eps.values()), fe_calls),
            None,
        )
    ]


def _endpoint_differences(
    stats: PairStats, t: Thresholds, gaps: dict[str, _Gap], work: _Work
) -> list[Difference]:
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
    out: list[Difference] = []
    for key in sorted(set(be_eps) | set(fe_eps)):
        if key == OTHER or key in work.assets:
            continue
        be, fe = be_eps.get(key), fe_eps.get(key)
        if be is None or fe is None:
            out += _one_sided(key, be, fe, stats, t)
            continue
        if be.count < t.min_samples or fe.count < t.min_samples:
            continue
        gap = gaps.get(key)
        latency = _endpoint_latency(key, be, fe, gap, t) if gap else []
        out += latency or _endpoint_tail(key, be, fe, stats.trace_gaps.get(key), t)
        out += _error_rate(key, be, fe, t.endpoint_error_points, t)
        out += _endpoint_activity(key, be, fe, t)
    return out


def _endpoint_activity(key: str, be: Aggregate, fe: Aggregate, t: Thresholds) -> list[Difference]:
    """One side counting more calls of an endpoint (sampled calls weighted and tested as in
    ``_activity``)."""
    be_n, fe_n = be.estimated, fe.estimated
    pct = pct_apart(be_n, fe_n)
    sev = level(pct, t.endpoint_activity_pct)
    sure = counts_confidence(be, 1.0, fe, 1.0)
    if not sev or _sampling_noise(be, fe, sure, t):
        return []
    more = "backend" if be_n > fe_n else "browser"
    return [
        _diff(
            "activity",
            sev,
            key,
            {"count": round(be_n)},
            {"count": round(fe_n)},
            pct,
            f"{key}: the {more} counts more calls (backend {be_n:,.0f}, browser "
            f"{fe_n:,.0f}): retries, lost requests or calls from elsewhere.",
            (be.count, fe.count),
            sure,
        )
    ]


def _endpoint_latency(key: str, be: Aggregate, fe: Aggregate, found: _Gap, t: Thresholds) -> list[Difference]:
    """A gap needs both ``endpoint_gap_ms`` and ``endpoint_gap_pct`` (of the server's median)."""
    gap, basis, be_p50, fe_p50 = found.ms, found.basis, found.be_p50, found.fe_p50
    pct = gap / be_p50 * 100 if be_p50 > 0 else (float("inf") if gap > 0 else None)
    sev = lower_severity(level(gap, t.endpoint_gap_ms), level(pct, t.endpoint_gap_pct))
    if not sev:
        return []
    return [
        _diff(
            "performance",
            sev,
            key,
            {
                "p50_ms": round_ms(be_p50),
                "p95_ms": round_ms(be.timed.quantile(0.95)),
                "count": be.timed.count,
            },
            {
                "p50_ms": round_ms(fe_p50),
                "p95_ms": round_ms(fe.timed.quantile(0.95)),
                "count": fe.timed.count,
                "gap_p50_ms": round_ms(gap),
            },
            pct,
            f"{key}: the browser waits {fe_p50:,.0f} ms at the median while the backend spends "
            f"{be_p50:,.0f} ms; {gap:,.0f} ms go to network, queueing or the client ({basis}).",
            (be.timed.count, fe.timed.count),
            None,  # medians on min_samples calls: robust to outliers, no test of means applies
        )
    ]


@dataclass(frozen=True)
class _Tail:
    """An endpoint's browser-minus-server gap at the median, p95 and p99 (None on too few calls)."""

    p50: float
    p95: float
    p99: float | None
    slow: int  # calls at least the lowest tail gap longer in the browser
    calls: int
    basis: str


def _tail(be: Aggregate, fe: Aggregate, pairs: LatencySketch | None, t: Thresholds) -> _Tail | None:
    """The gaps of requests joined by trace id when there are enough, else browser minus server
    quantiles; None on fewer than ``tail_min_samples`` calls."""
    low = t.endpoint_tail_gap_ms[0]
    if pairs is not None and pairs.count >= t.tail_min_samples:
        p50, p95, p99 = pairs.quantiles((0.5, 0.95, 0.99))
        n = pairs.count
        return _Tail(
            p50 or 0.0,
            p95 or 0.0,
            p99 if n >= t.p99_min_samples else None,
            pairs.count_above(low),
            n,
            f"{n:,} requests joined by trace id",
        )
    n = min(be.timed.count, fe.timed.count)
    if n < t.tail_min_samples:
        return None
    b50, b95, b99 = (v or 0.0 for v in be.timed.quantiles((0.5, 0.95, 0.99)))
    f50, f95, f99 = (v or 0.0 for v in fe.timed.quantiles((0.5, 0.95, 0.99)))
    return _Tail(
        f50 - b50,
        f95 - b95,
        f99 - b99 if n >= t.p99_min_samples else None,
        fe.timed.count_above(b95 + low),
        fe.timed.count,
        "quantiles per endpoint",
    )


def _endpoint_tail(
    key: str, be: Aggregate, fe: Aggregate, pairs: LatencySketch | None, t: Thresholds
) -> list[Difference]:
    """A tail-only gap: the median is fine but the p95 gap (or, on 100+ calls, half the p99 gap)
    reaches ``endpoint_tail_gap_ms`` and ``endpoint_gap_pct`` of the server's p95."""
    tail = _tail(be, fe, pairs, t)
    if tail is None:
        return []
    be_p95 = be.timed.quantile(0.95) or 0.0

    def judged(gap: float) -> Severity | None:
        pct = gap / be_p95 * 100 if be_p95 > 0 else (float("inf") if gap > 0 else None)
        return lower_severity(level(gap, t.endpoint_tail_gap_ms), level(pct, t.endpoint_gap_pct))

    sev = max(judged(tail.p95), judged(tail.p99 / 2) if tail.p99 is not None else None, key=severity_rank)
    if not sev:
        return []
    p99 = f", p99 {tail.p99:,.0f} ms" if tail.p99 is not None else ""
    return [
        _diff(
            "performance",
            sev,
            key,
            {"p50_ms": round_ms(be.timed.quantile(0.5)), "p95_ms": round_ms(be_p95), "count": be.timed.count},
            {
                "p50_ms": round_ms(fe.timed.quantile(0.5)),
                "p95_ms": round_ms(fe.timed.quantile(0.95)),
                "count": fe.timed.count,
                "gap_p50_ms": round_ms(tail.p50),
                "gap_p95_ms": round_ms(tail.p95),
                "slow_calls": tail.slow,
            },
            tail.p95 / be_p95 * 100 if be_p95 > 0 else None,
            f"{key}: a tail-only slowdown: about {tail.slow:,} of {tail.calls:,} calls take "
            f"{t.endpoint_tail_gap_ms[0]:,.0f} ms or more longer in the browser than on the server "
            f"(gap p95 {tail.p95:,.0f} ms{p99}) while the median gap is {tail.p50:,.0f} ms ({tail.basis}).",
            (be.timed.count, fe.timed.count),
            None,
        )
    ]


def _one_sided(
    key: str, be: Aggregate | None, fe: Aggregate | None, stats: PairStats, t: Thresholds
) -> list[Difference]:
    if fe is not None and stats.backend.endpoints and fe.count >= t.min_samples:
        sev: Severity = "high" if fe.count >= 5 * t.min_samples else "medium"
        return [
            _diff(
                "pattern",
                sev,
                key,
                {"count": 0},
                {"count": fe.count, "error_rate": round_ms(fe.error_rate)},
                None,
                f"{key}: the browser called it {fe.count:,} times and the backend never saw it "
                "(wrong URL, a proxy, a cache or calls that never leave the browser).",
                (0, fe.count),
                None,
            )
        ]
    if be is not None and stats.frontend.endpoints and be.count >= t.min_samples:
        return [
            _diff(
                "pattern",
                "low",
                key,
                {"count": be.count},
                {"count": 0},
                None,
                f"{key}: served {be.count:,} times by the backend and never called from the browser "
                "(server-to-server traffic, scripts or an unused endpoint).",
                (be.count, 0),
                None,
            )
        ]
    return []
