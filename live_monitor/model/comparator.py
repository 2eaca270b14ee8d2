"""The comparator: where the backend and the frontend differ, as ``Difference`` values.

A pure function over two sides' statistics and a set of thresholds, shared by the live
monitor and the report CLI. Service scope compares whole services (the README's "Sample Output" figures);
endpoint scope compares the same endpoint key seen from the browser and from the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from live_monitor.model.results import Comparison, Difference, EndpointRow, Figures, SideSummary
from live_monitor.model.stats import OTHER, Aggregate, LatencySketch, PairStats, SideStats
from live_monitor.model.thresholds import Levels, Thresholds
from live_monitor.vocabulary import SEVERITIES, DifferenceType, Severity, severity_rank

__all__ = [
    "SEVERITIES",
    "Difference",
    "compare",
    "comparison",
    "endpoint_rows",
    "level",
    "summarize",
]

API_CALLS = "API calls"


def level(value: float | None, levels: Levels) -> Severity | None:
    """Return the severity ``value`` reaches in ``levels`` (low, medium, high), or None."""
    if value is None:
        return None
    found: Severity | None = None
    for name, bound in zip(SEVERITIES, levels, strict=True):
        if value >= bound:
            found = name
    return found


def _lower(*severities: Severity | None) -> Severity | None:
    return min(severities, key=severity_rank)


def _pct(a: float | None, b: float | None) -> float | None:
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
) -> Difference:
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
    )


def summarize(side: SideStats) -> SideSummary:
    """The per-service summary used by /data and the report.

    Every figure but ``api_calls`` covers all of the side's events (page loads and queries
    alike); ``api_calls`` covers only its API calls (the backend's http requests, the
    browser's api calls), the same requests seen from both sides, so the two compare.
    """
    total = side.total
    figures = total.figures(side.minutes)
    api = side.api.timed
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
            "count": side.api.count,
            "avg_duration_ms": _round(api.mean),
            "p95_duration_ms": _round(api.quantile(0.95)),
        },
    }


def comparison(stats: PairStats) -> Comparison:
    """Service-wide ratios: performance_ratio is backend average over frontend average."""
    be, fe = stats.backend.total, stats.frontend.total
    be_avg, fe_avg = be.timed.mean, fe.timed.mean
    ratio = round(be_avg / fe_avg, 2) if be_avg is not None and fe_avg else None
    be_rate = be.count / stats.backend.minutes if stats.backend.minutes else None
    fe_rate = fe.count / stats.frontend.minutes if stats.frontend.minutes else None
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
    }


def endpoint_rows(stats: PairStats) -> list[EndpointRow]:
    """One row per endpoint key: frontend vs backend p50/p95, the gap in ms, error rates."""
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
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
            "matched_gap_p50_ms": _round(pairs.quantile(0.5)) if pairs else None,
            "matched_gap_p95_ms": _round(pairs.quantile(0.95)) if pairs else None,
            "seen_by": "both" if be and fe else ("backend" if be else "frontend"),
        }
        rows.append(row)
    rows.sort(key=lambda r: -sum(side["count"] for side in (r["backend"], r["frontend"]) if side))
    return rows


def _gap(fe: Figures | None, be: Figures | None, name: Literal["p50_ms", "p95_ms"]) -> float | None:
    if not fe or not be:
        return None
    f, b = fe[name], be[name]
    return None if f is None or b is None else round(f - b, 2)


def _round(value: float | None) -> float | None:
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
    found = _service_differences(stats, t, gaps) + _endpoint_differences(stats, t, gaps)
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


def _network_allowance(gaps: dict[str, _Gap], t: Thresholds) -> float:
    """The usual browser-minus-server gap of an API call, which is network, not a difference.

    The request-weighted median of the endpoint gaps, so one slow endpoint does not raise it,
    and at most the gap the endpoint rule never flags (``endpoint_gap_ms`` low), so a browser
    300 ms behind the server everywhere is not taken for the network.
    """
    if not gaps:
        return 0.0
    ordered = sorted((g.ms, g.weight) for g in gaps.values())
    half, seen = sum(w for _, w in ordered) / 2, 0
    median = ordered[-1][0]
    for ms, weight in ordered:
        seen += weight
        if seen >= half:
            median = ms
            break
    return min(max(median, 0.0), t.endpoint_gap_ms[0])


def _service_differences(stats: PairStats, t: Thresholds, gaps: dict[str, _Gap]) -> list[Difference]:
    be, fe = stats.backend, stats.frontend
    if be.total.count < t.min_samples or fe.total.count < t.min_samples:
        return []
    out = []
    be_rate, fe_rate = be.total.count / be.minutes, fe.total.count / fe.minutes
    pct = _pct(be_rate, fe_rate)
    sev = level(pct, t.activity_pct)
    if sev:
        busier = "Backend" if be_rate > fe_rate else "Frontend"
        out.append(
            _diff(
                "activity",
                sev,
                None,
                {"events": be.total.count, "events_per_minute": round(be_rate, 2)},
                {"events": fe.total.count, "events_per_minute": round(fe_rate, 2)},
                pct,
                f"{busier} is more active: backend {be.total.count:,} events "
                f"({be_rate:,.1f}/min), frontend {fe.total.count:,} ({fe_rate:,.1f}/min).",
            )
        )
    bt, ft, basis = _like_with_like(stats, t)
    if bt.count >= t.min_samples and ft.count >= t.min_samples:
        be_avg, fe_avg = bt.mean or 0.0, ft.mean or 0.0
        # The browser's API calls wait for the network too: the usual gap is left out of their
        # average before both thresholds apply, as the endpoint rule lets it pass per endpoint.
        allowance = _network_allowance(gaps, t) if basis == API_CALLS and fe_avg > be_avg else 0.0
        fe_net = max(be_avg, fe_avg - allowance) if allowance else fe_avg
        pct = _pct(be_avg, fe_net)
        sev = _lower(level(pct, t.performance_pct), level(abs(be_avg - fe_net), t.performance_ms))
        if sev:
            slower = "Backend" if be_avg > fe_avg else "Frontend"
            frontend = {
                "avg_ms": round(fe_avg, 2),
                "p95_ms": _round(ft.quantile(0.95)),
                "count": ft.count,
                "basis": basis,
            }
            apart = f"{pct:.1f}% apart"
            if allowance:  # only where it was taken off: a figure with a reason in the message
                frontend["network_gap_ms"] = round(allowance, 2)
                apart = f"{allowance:,.0f} ms of it the usual network gap; {pct:.1f}% apart without it"
            out.append(
                _diff(
                    "performance",
                    sev,
                    None,
                    {
                        "avg_ms": round(be_avg, 2),
                        "p95_ms": _round(bt.quantile(0.95)),
                        "count": bt.count,
                        "basis": basis,
                    },
                    frontend,
                    pct,
                    f"{slower} {basis} take longer on average: backend {be_avg:,.1f} ms, "
                    f"frontend {fe_avg:,.1f} ms ({apart}).",
                )
            )
    out += _error_rate(None, be.total, fe.total, t.error_rate_points)
    out += _coverage(stats, t)
    return out


def _like_with_like(stats: PairStats, t: Thresholds) -> tuple[LatencySketch, LatencySketch, str]:
    """Service-wide durations to compare: API calls on both sides when there are enough.

    A page load or a render is not comparable with a database query, so once both sides
    have timed endpoint events, backend http requests are compared with browser api calls;
    otherwise every timed event of each side (the README's whole-service averages).
    """
    be_api, fe_api = stats.backend.api.timed, stats.frontend.api.timed
    if be_api.count >= t.min_samples and fe_api.count >= t.min_samples:
        return be_api, fe_api, API_CALLS
    return stats.backend.total.timed, stats.frontend.total.timed, "operations"


def _error_rate(key: str | None, be: Aggregate, fe: Aggregate, levels: Levels) -> list[Difference]:
    be_err, fe_err = be.error_rate or 0.0, fe.error_rate or 0.0
    points = abs(be_err - fe_err) * 100
    sev = level(points, levels)
    if not sev:
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
            f"{where}the {worse} fails more often: backend {be_err:.1%} errors, frontend {fe_err:.1%}.{hint}",
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
        )
    ]


def _endpoint_differences(stats: PairStats, t: Thresholds, gaps: dict[str, _Gap]) -> list[Difference]:
    be_eps, fe_eps = stats.backend.endpoints, stats.frontend.endpoints
    out: list[Difference] = []
    for key in sorted(set(be_eps) | set(fe_eps)):
        if key == OTHER:
            continue
        be, fe = be_eps.get(key), fe_eps.get(key)
        if be is None or fe is None:
            out += _one_sided(key, be, fe, stats, t)
            continue
        if be.count < t.min_samples or fe.count < t.min_samples:
            continue
        gap = gaps.get(key)
        out += _endpoint_latency(key, be, fe, gap, t) if gap else []
        out += _error_rate(key, be, fe, t.endpoint_error_points)
        pct = _pct(be.count, fe.count)
        sev = level(pct, t.endpoint_activity_pct)
        if sev:
            more = "backend" if be.count > fe.count else "browser"
            out.append(
                _diff(
                    "activity",
                    sev,
                    key,
                    {"count": be.count},
                    {"count": fe.count},
                    pct,
                    f"{key}: the {more} counts more calls (backend {be.count:,}, browser "
                    f"{fe.count:,}): retries, lost requests or calls from elsewhere.",
                )
            )
    return out


def _endpoint_latency(key: str, be: Aggregate, fe: Aggregate, found: _Gap, t: Thresholds) -> list[Difference]:
    """A gap needs both ``endpoint_gap_ms`` and ``endpoint_gap_pct`` (of the server's median)."""
    gap, basis, be_p50, fe_p50 = found.ms, found.basis, found.be_p50, found.fe_p50
    pct = gap / be_p50 * 100 if be_p50 > 0 else (float("inf") if gap > 0 else None)
    sev = _lower(level(gap, t.endpoint_gap_ms), level(pct, t.endpoint_gap_pct))
    if not sev:
        return []
    return [
        _diff(
            "performance",
            sev,
            key,
            {"p50_ms": _round(be_p50), "p95_ms": _round(be.timed.quantile(0.95)), "count": be.timed.count},
            {
                "p50_ms": _round(fe_p50),
                "p95_ms": _round(fe.timed.quantile(0.95)),
                "count": fe.timed.count,
                "gap_p50_ms": _round(gap),
            },
            pct,
            f"{key}: the browser waits {fe_p50:,.0f} ms at the median while the backend spends "
            f"{be_p50:,.0f} ms; {gap:,.0f} ms go to network, queueing or the client ({basis}).",
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
                {"count": fe.count, "error_rate": _round(fe.error_rate)},
                None,
                f"{key}: the browser called it {fe.count:,} times and the backend never saw it "
                "(wrong URL, a proxy, a cache or calls that never leave the browser).",
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
            )
        ]
    return []
