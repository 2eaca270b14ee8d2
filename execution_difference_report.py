"""Execution difference report: where the backend and the frontend differ, as a document.

Reads a running monitor (GET /data and /differences) or backend and frontend event files,
and writes Markdown, JSON or one self-contained HTML page. Files are streamed once into the
same aggregates and comparator the live monitor uses, so both give the same figures, and
memory stays flat for millions of events.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import html
import json
import os
import sys
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from execution_comparator import SEVERITIES, Thresholds, compare, comparison, endpoint_rows, summarize
from execution_events import iter_event_file, timestamp_to_epoch
from execution_stats import PairStats

DEFAULT_URL = "http://localhost:5001"
API = "/api/live-execution"
SERVICES = ("backend", "frontend")
ENDPOINT_COMPONENTS = {"backend": "http", "frontend": "api"}
MAX_PENDING_TRACES = 200_000
PROGRESS_EVERY = 100_000
TABLE_ROWS = 50
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_FAIL_ON = 0, 1, 2, 3
TITLES = {
    "activity": "ACTIVITY LEVEL DIFFERENCE",
    "performance": "PERFORMANCE DIFFERENCE",
    "error_rate": "ERROR RATE DIFFERENCE",
    "pattern": "EXECUTION PATTERN DIFFERENCE",
}
# One parsed event: (epoch s, service, component, action, duration ms, is error, trace id).
Row = tuple[float, str, str, str, float | None, bool, str | None]


class InputError(Exception):
    """Unusable input (a file, a line, the monitor): reported on stderr with exit code 1."""


# --- reading event files ----------------------------------------------------------------


def _parse(event: Any, where: str, side: str) -> Row | None:
    """Check one event's fields; None when it belongs to the other side (a shared export)."""
    if not isinstance(event, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(event).__name__}")
    service = event.get("service") or side
    if service not in SERVICES:
        raise InputError(f"{where}: service must be 'backend' or 'frontend', got {service!r}")
    if service != side:
        return None
    for name in ("component", "action"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}: missing or empty required field '{name}'")
    if event.get("timestamp") is None:
        raise InputError(f"{where}: missing required field 'timestamp'")
    try:
        ts = timestamp_to_epoch(event["timestamp"])
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: timestamp must be ISO 8601 or epoch seconds") from None
    duration = event.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration >= 0
    ):
        raise InputError(f"{where}: duration_ms must be a number >= 0 or null")
    status = event.get("status", "success")
    if status not in ("success", "error"):
        raise InputError(f"{where}: status must be 'success' or 'error', got {status!r}")
    trace = event.get("trace_id")
    return (
        ts,
        service,
        event["component"],
        event["action"],
        None if duration is None else float(duration),
        status == "error",
        trace if isinstance(trace, str) and trace else None,
    )


def _read(path: Path, side: str) -> Iterator[Row]:
    """Yield one side's events of a file, numbered for error messages."""
    number = kept = 0
    try:
        for number, event in enumerate(iter_event_file(path), 1):
            row = _parse(event, f"{path}: event #{number}", side)
            if row is not None:
                kept += 1
                yield row
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        message = str(exc)
        raise InputError(message if str(path) in message else f"{path}: {message}") from None
    if not kept:
        other = f" ({number:,} events of the other side skipped: are the files swapped?)" if number else ""
        print(f"warning: {path} holds no {side} events{other}", file=sys.stderr)


def build_stats(
    sources: list[tuple[Path, str]],
    progress: Callable[[dict[str, int]], None] | None = None,
) -> PairStats:
    """Stream the files once into the monitor's aggregates, joining requests by trace id.

    Files are merged by timestamp so a request's two halves meet soon after each other,
    and the pending halves are bounded, so memory stays flat whatever the file sizes.
    """
    pair = PairStats()
    pending: OrderedDict[str, tuple[str, str, float | None]] = OrderedDict()
    seen = {"backend": 0, "frontend": 0}
    merged = heapq.merge(*(_read(path, side) for path, side in sources), key=itemgetter(0))
    for ts, service, component, action, duration, is_error, trace in merged:
        pair.side(service).add(component, action, duration, is_error, ts)
        seen[service] += 1
        if trace is not None and component == ENDPOINT_COMPONENTS[service]:
            _join(pair, pending, trace, service, action, duration)
        if progress is not None and (seen["backend"] + seen["frontend"]) % PROGRESS_EVERY == 0:
            progress(seen)
    for side in (pair.backend, pair.frontend):
        first, last = side.total.first_ts, side.total.last_ts
        span = (last - first) / 60 if first is not None and last is not None else 0.0
        side.minutes = max(span, 1.0)
    return pair


def _join(
    pair: PairStats,
    pending: OrderedDict[str, tuple[str, str, float | None]],
    trace: str,
    service: str,
    key: str,
    duration: float | None,
) -> None:
    """Pair a request's frontend and backend halves (as execution_store.EventStore._join)."""
    other = pending.pop(trace, None)
    if other is None or other[0] == service:
        pending[trace] = (service, key, duration)
        if len(pending) > MAX_PENDING_TRACES:
            pending.popitem(last=False)
        return
    _, other_key, other_ms = other
    if other_key != key or other_ms is None or duration is None:
        return
    pair.add_gap(key, duration - other_ms if service == "frontend" else other_ms - duration)


def report_from_files(
    sources: list[tuple[Path, str]],
    thresholds: Thresholds,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """The report (``{"summary", "differences"}``) of event files."""
    for path, _ in sources:
        if not path.is_file():
            raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    pair = build_stats(sources, progress)
    backend, frontend = summarize(pair.backend), summarize(pair.frontend)
    backend["window_minutes"] = round(pair.backend.minutes, 2)
    frontend["window_minutes"] = round(pair.frontend.minutes, 2)
    summary = {
        "source": {"kind": "files", "files": [{"path": str(p), "side": s} for p, s in sources]},
        **{"generated_at": _now_iso(), "backend": backend, "frontend": frontend},
        **{
            "comparison": comparison(pair),
            "endpoints": endpoint_rows(pair),
            "thresholds": thresholds.as_dict(),
        },
    }
    return {"summary": summary, "differences": compare(pair, thresholds)}


# --- reading a live monitor -------------------------------------------------------------


def _get_json(url: str, token: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = " (pass --token or set LIVE_MONITOR_TOKEN)" if exc.code == 401 else ""
        raise InputError(f"the monitor at {url} answered HTTP {exc.code} {exc.reason}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(
            f"cannot reach the monitor at {url}: {reason}. Is the monitor running? "
            "Start it with python run_live_monitor.py (or pass --url, or use "
            "--backend-data/--frontend-data files)"
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        raise InputError(f"{url} did not answer JSON: is --url a Live Execution Monitor?") from None


def report_from_monitor(url: str, token: str = "", timeout: float = 10.0) -> dict[str, Any]:
    """The report of a running monitor, from its /data and /differences endpoints."""
    base = url.rstrip("/")
    if base.endswith(API):
        base = base[: -len(API)]
    data = _get_json(f"{base}{API}/data?limit=0&history=0", token, timeout)
    found = _get_json(f"{base}{API}/differences", token, timeout)
    if not isinstance(data, dict) or not isinstance(found, dict) or "differences" not in found:
        raise InputError(f"{base}{API} answered an unexpected shape: is it a Live Execution Monitor?")
    source = {"kind": "monitor", "url": base, **{k: data.get(k) for k in ("monitoring", "window_seconds")}}
    summary = {
        "source": source,
        "generated_at": data.get("generated_at") or _now_iso(),
        **{k: data.get(k) or {} for k in ("backend", "frontend", "comparison")},
        "endpoints": data.get("endpoints") or [],
        "thresholds": found.get("thresholds") or {},
    }
    return {"summary": summary, "differences": list(found["differences"])}


# --- recommendations --------------------------------------------------------------------

# (type, scope, side that is worse) -> what to look at next; {on} names the endpoint.
RECOMMENDATIONS = {
    ("performance", "endpoint", "frontend"): "The {gap} ms the browser waits beyond the server's time{on} "
    "is spent outside the backend: check payload size and compression, caching, the CDN and connection "
    "reuse (keep-alive, HTTP/2); compare the browser's timing with the backend's Server-Timing header.",
    ("performance", "service", "backend"): "The backend is slower on average: profile its slowest "
    "endpoints and queries (see the endpoint table), add caching or indexes, and keep jobs off requests.",
    ("performance", "service", "frontend"): "The browser's work is slower on average: look at render and "
    "component timings, long tasks, bundle size and the slowest calls in the endpoint table.",
    ("error_rate", "any", "backend"): "Hidden backend errors{on}: the server fails more than users see, "
    "so the UI retries or falls back. Surface retries in the frontend logs and alert on server 5xx.",
    ("error_rate", "any", "frontend"): "Calls fail in the browser{on} without a server failure: check "
    "network errors, timeouts, CORS, proxies and cancelled requests; log details.http_status (0 = none).",
    ("pattern", "any", "frontend"): "Calls the backend never saw{on}{listed}: check the URL and base "
    "path, proxies and rewrites, service workers and HTTP caches, and the backend middleware's coverage.",
    ("pattern", "endpoint", "backend"): "Server-to-server or scripted traffic{on}: if browsers should "
    "call it, check the frontend logger's tracePropagationTargets and sampleRate.",
    ("activity", "endpoint", "backend"): "The server counts more calls{on} than the browser makes: look "
    "for client or proxy retries, other clients, and whether the handler is idempotent.",
    ("activity", "endpoint", "frontend"): "Browser calls{on} that never reach the server: lost or "
    "cancelled requests, caches or proxies answering, or backend sampling; match both sides by trace id.",
    ("activity", "service", "backend"): "The backend does work the browser does not trigger (jobs, "
    "crawlers, other clients, retries): break it down by component; check the frontend sampleRate.",
    ("activity", "service", "frontend"): "The browser records more than reaches the backend (client-side "
    "work, caches, lost requests, backend sampling): check that every backend route is instrumented.",
}
_COMPARED = ("avg_ms", "p50_ms", "error_rate", "events_per_minute", "count")


def recommendation(diff: dict[str, Any]) -> str:
    """What to look at next for one difference, by its type, scope and the side that is worse."""
    be, fe, key = diff["backend"], diff["frontend"], diff.get("key")
    if diff["type"] == "pattern":
        worse = "backend" if be.get("count") else "frontend"
    else:
        name = next((n for n in _COMPARED if n in be and n in fe), None)
        worse = "backend" if name and (be[name] or 0) > (fe[name] or 0) else "frontend"
    scope = "endpoint" if key else "service"
    text = RECOMMENDATIONS.get((diff["type"], scope, worse)) or RECOMMENDATIONS.get(
        (diff["type"], "any", worse), "Compare both sides' figures and recent events in the dashboard."
    )
    listed = ", ".join(fe.get("unmatched_endpoints") or [])
    return text.format(
        on=f" for {key}" if key else "",
        gap=_num(fe.get("gap_p50_ms")),
        listed=f" ({listed})" if listed else "",
    )


# --- rendering --------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    text = f"{float(value):,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{_num(value)}ms"


def _rate(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f}%"


def _seed_lines(diff: dict[str, Any]) -> list[str]:
    """The seed README's block: a title, both sides' figures, the difference, the severity."""
    be, fe, kind = diff["backend"], diff["frontend"], diff["type"]
    if kind == "activity":
        unit = "events" if diff.get("key") is None else "calls"
        b, f = be.get("events", be.get("count")), fe.get("events", fe.get("count"))
        figures = f"Backend: {_num(b, 0)} {unit}, Frontend: {_num(f, 0)} {unit}"
    elif kind == "performance" and diff.get("key") is None:
        figures = f"Backend: {_ms(be.get('avg_ms'))}, Frontend: {_ms(fe.get('avg_ms'))}"
    elif kind == "performance":
        figures = (
            f"Backend: p50 {_ms(be.get('p50_ms'))}, Frontend: p50 {_ms(fe.get('p50_ms'))} "
            f"(gap {_ms(fe.get('gap_p50_ms'))})"
        )
    elif kind == "error_rate":
        figures = (
            f"Backend: {_rate(be.get('error_rate'))} errors, Frontend: {_rate(fe.get('error_rate'))} errors"
        )
    elif diff.get("key") is not None:
        figures = f"Backend: {_num(be.get('count'), 0)} calls, Frontend: {_num(fe.get('count'), 0)} calls"
    else:
        figures = (
            f"Backend: {_num(be.get('endpoints'), 0)} endpoints, Frontend: "
            f"{_num(fe.get('unmatched_calls'), 0)} of {_num(fe.get('calls'), 0)} calls unmatched"
        )
    lines = [TITLES.get(kind, kind.upper() + " DIFFERENCE"), figures]
    pct = diff.get("difference_pct")
    if pct is not None:
        lines.append(f"Difference: {pct:.1f}" + (" points" if kind == "error_rate" else "%"))
    lines.append(f"Severity: {str(diff['severity']).capitalize()}")
    return lines


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    be, fe = summary["backend"], summary["frontend"]
    specs: list[tuple[str, str, Callable[[Any], str]]] = [
        ("Events", "total_events", lambda v: _num(v, 0)),
        ("Timed events", "timed_events", lambda v: _num(v, 0)),
        ("Avg duration", "avg_duration_ms", _ms),
        ("p50 duration", "p50_duration_ms", _ms),
        ("p95 duration", "p95_duration_ms", _ms),
        ("Success rate", "success_rate", _rate),
        ("Events/min", "events_per_minute", _num),
    ]
    return [(label, fmt(be.get(k)), fmt(fe.get(k))) for label, k, fmt in specs]


def _comparison_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    c = summary["comparison"]
    diff_sr = c.get("success_rate_diff")
    return [
        ("Performance ratio (backend avg / frontend avg)", _num(c.get("performance_ratio"), 2)),
        ("Avg duration difference (backend - frontend)", _ms(c.get("avg_duration_diff_ms"))),
        (
            "Success rate difference (backend - frontend)",
            "n/a" if diff_sr is None else f"{diff_sr * 100:+.1f} points",
        ),
        ("Activity ratio (backend / frontend events per minute)", _num(c.get("activity_ratio"), 2)),
    ]


def _endpoint_cells(row: dict[str, Any]) -> list[str]:
    be, fe = row.get("backend") or {}, row.get("frontend") or {}
    return [
        str(row.get("seen_by", "")),
        _ms(fe.get("p50_ms")),
        _ms(be.get("p50_ms")),
        _ms(fe.get("p95_ms")),
        _ms(be.get("p95_ms")),
        _ms(row.get("matched_gap_p50_ms", row.get("gap_p50_ms"))),
        _rate(fe.get("error_rate")),
        _rate(be.get("error_rate")),
        f"{_num(fe.get('count') or 0, 0)} / {_num(be.get('count') or 0, 0)}",
        _num(row.get("matched_requests"), 0),
    ]


ENDPOINT_HEADERS = [
    "Endpoint", "Seen by", "FE p50", "BE p50", "FE p95", "BE p95", "Gap p50",
    "FE errors", "BE errors", "Calls FE / BE", "Matched",
]  # fmt: skip


def _source_text(summary: dict[str, Any]) -> str:
    src = summary["source"]
    if src.get("kind") == "monitor":
        window = src.get("window_seconds")
        return f"live monitor at {src.get('url')}" + (f" (window {_num(window / 60)} min)" if window else "")
    files = ", ".join(f"{f['path']} ({f['side']})" for f in src.get("files", []))
    minutes = summary["backend"].get("window_minutes")
    return f"files {files}" + (f" (backend window {_num(minutes)} min)" if minutes else "")


def _by_severity(diffs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(s, [d for d in diffs if d["severity"] == s]) for s in reversed(SEVERITIES)]


def _md(text: Any) -> str:
    """Markdown-safe text: no raw HTML, no table breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _md_code(text: Any) -> str:
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: summary, comparison, endpoints, differences, recommendations."""
    summary, diffs = report["summary"], report["differences"]
    out = [
        "# Execution Difference Report",
        "",
        f"Generated {_md(summary['generated_at'])} from {_md(_source_text(summary))}.",
        "",
        "## Summary",
        "",
        "| Metric | Backend | Frontend |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in _summary_rows(summary)),
        "",
        "## Performance Comparison",
        "",
        "```",
        f"Backend Events: {_num(summary['backend'].get('total_events'), 0)}",
        f"Frontend Events: {_num(summary['frontend'].get('total_events'), 0)}",
        f"Differences Found: {len(diffs)}",
        "",
        f"Backend Avg Duration: {_ms(summary['backend'].get('avg_duration_ms'))}",
        f"Frontend Avg Duration: {_ms(summary['frontend'].get('avg_duration_ms'))}",
        f"Performance Ratio: {_num(summary['comparison'].get('performance_ratio'), 2)}",
        "```",
        "",
        *(f"- {label}: {value}" for label, value in _comparison_rows(summary)),
        "",
        "## Endpoints: Frontend vs Backend",
        "",
    ]
    rows = summary.get("endpoints") or []
    if rows:
        out += ["| " + " | ".join(ENDPOINT_HEADERS) + " |", "|---" * len(ENDPOINT_HEADERS) + "|"]
        for row in rows[:TABLE_ROWS]:
            out.append("| " + " | ".join([_md_code(row["key"]), *_endpoint_cells(row)]) + " |")
        if len(rows) > TABLE_ROWS:
            out.append(f"\n{len(rows) - TABLE_ROWS} more endpoints in --format json.")
    else:
        out.append("No endpoint events (backend `http`, frontend `api`) yet.")
    out += ["", f"## Execution Differences ({len(diffs)})", ""]
    if not diffs:
        need = (summary.get("thresholds") or {}).get("min_samples", 10)
        out.append(f"No differences detected (each check needs at least {need} events on each side).")
    number = 0
    for severity, group in _by_severity(diffs):
        if not group:
            continue
        out += [f"### {severity.capitalize()} ({len(group)})", ""]
        for diff in group:
            number += 1
            where = _md_code(diff["key"]) if diff.get("key") else "whole service"
            out += [
                f"#### {number}. {TITLES.get(diff['type'], diff['type'])}: {where}",
                "",
                "```",
                *_seed_lines(diff),
                "```",
                "",
                _md(diff["message"]),
                "",
                f"**Recommendation:** {_md(recommendation(diff))}",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def render_json(report: dict[str, Any]) -> str:
    """The report as ``{"summary": {...}, "differences": [...]}``."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


BACKEND_COLOR, FRONTEND_COLOR = "#0f766e", "#7c3aed"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2937;padding:0 1rem}h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;margin:.5rem 0;font-size:13px}th,td{padding:.3rem .6rem;border:1px solid #e5e7eb;
text-align:right}th:first-child,td:first-child{text-align:left}code{font-size:12px;word-break:break-all}
.muted{color:#6b7280}.diff{border-left:4px solid;padding:.4rem .9rem;margin:.7rem 0;background:#f9fafb}
.high{border-color:#b91c1c}.medium{border-color:#b45309}.low{border-color:#2563eb}
.badge{font-weight:600;text-transform:uppercase;font-size:11px;padding:.1rem .4rem;border-radius:3px;color:#fff}
.badge.high{background:#b91c1c}.badge.medium{background:#b45309}.badge.low{background:#2563eb}
pre{background:#111827;color:#f9fafb;padding:.5rem .8rem;border-radius:4px}.rec{margin:.3rem 0}
svg{display:block;margin:.5rem 0}svg text{font:12px system-ui,sans-serif;fill:#374151}
"""


def _svg_bars(
    title: str, rows: list[tuple[str, list[float | None]]], series: list[tuple[str, str]], unit: str
) -> str:
    """A grouped horizontal bar chart as inline SVG: one group of bars per row label."""
    label_w, bars_w, bar_h, gap, top = 280, 520, 11, 9, 34
    values = [v for _, vals in rows for v in vals if v is not None]
    vmax = max(values, default=0.0) or 1.0
    group_h = bar_h * len(series) + gap
    height, width = top + group_h * len(rows) + 6, label_w + bars_w + 90
    e = html.escape
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
        f'<text x="0" y="14" font-weight="600">{e(title)}</text>',
    ]
    for i, (name, color) in enumerate(series):
        x = label_w + i * 110
        parts.append(f'<rect x="{x}" y="20" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="29">{e(name)}</text>')
    for r, (label, vals) in enumerate(rows):
        y = top + r * group_h
        short = label if len(label) <= 40 else label[:37] + "..."
        parts.append(
            f'<text x="0" y="{y + bar_h * len(series) / 2 + 4:.0f}"><title>{e(label)}</title>{e(short)}</text>'
        )
        for i, ((name, color), value) in enumerate(zip(series, vals, strict=True)):
            by = y + i * bar_h
            w = 0.0 if value is None else max(value / vmax * bars_w, 1.0)
            shown = "n/a" if value is None else f"{_num(value)}{unit}"
            parts.append(
                f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" fill="{color}">'
                f"<title>{e(label)} {e(name)}: {e(shown)}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 2}" font-size="10">{e(shown)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _charts(rows: list[dict[str, Any]]) -> str:
    top = rows[:15]
    sides = [("frontend", FRONTEND_COLOR), ("backend", BACKEND_COLOR)]
    charts = []
    for q in ("p50", "p95"):
        data = [(r["key"], [(r.get(s) or {}).get(f"{q}_ms") for s, _ in sides]) for r in top]
        charts.append(_svg_bars(f"{q} duration per endpoint (ms)", data, sides, "ms"))
    rates = [(r["key"], [(r.get(s) or {}).get("error_rate") for s, _ in sides]) for r in top]
    errors = [(key, [None if v is None else v * 100 for v in vals]) for key, vals in rates]
    charts.append(_svg_bars("Error rate per endpoint (%)", errors, sides, "%"))
    return "\n".join(charts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page: inline CSS and SVG charts, no script, no external request."""
    e = html.escape
    summary, diffs = report["summary"], report["differences"]
    rows = summary.get("endpoints") or []
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Execution Difference Report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Execution Difference Report</h1>",
        f'<p class="muted">Generated {e(str(summary["generated_at"]))} from {e(_source_text(summary))}.</p>',
        "<h2>Summary</h2>",
        _table(["Metric", "Backend", "Frontend"], [[e(a), e(b), e(c)] for a, b, c in _summary_rows(summary)]),
        "<h2>Performance Comparison</h2>",
        _table(["Comparison", "Value"], [[e(a), e(b)] for a, b in _comparison_rows(summary)]),
        "<h2>Endpoints: Frontend vs Backend</h2>",
    ]
    if rows:
        parts.append(_charts(rows))
        cells = [[f"<code>{e(r['key'])}</code>", *map(e, _endpoint_cells(r))] for r in rows[:TABLE_ROWS]]
        parts.append(_table(ENDPOINT_HEADERS, cells))
        if len(rows) > TABLE_ROWS:
            parts.append(f'<p class="muted">{len(rows) - TABLE_ROWS} more endpoints in --format json.</p>')
    else:
        parts.append('<p class="muted">No endpoint events (backend http, frontend api) yet.</p>')
    parts.append(f"<h2>Execution Differences ({len(diffs)})</h2>")
    if not diffs:
        parts.append('<p class="muted">No differences detected.</p>')
    for severity, group in _by_severity(diffs):
        if not group:
            continue
        parts.append(f"<h3>{e(severity.capitalize())} ({len(group)})</h3>")
        for diff in group:
            sev = e(str(diff["severity"]))
            where = f"<code>{e(diff['key'])}</code>" if diff.get("key") else "whole service"
            parts.append(
                f'<div class="diff {sev}"><p><span class="badge {sev}">{sev}</span> '
                f"<strong>{e(TITLES.get(diff['type'], str(diff['type'])))}</strong>: {where}</p>"
                f"<pre>{e(chr(10).join(_seed_lines(diff)))}</pre><p>{e(diff['message'])}</p>"
                f'<p class="rec"><strong>Recommendation:</strong> {e(recommendation(diff))}</p></div>'
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "markdown": render_markdown,
    "json": render_json,
    "html": render_html,
}


# --- command line -----------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_parser() -> argparse.ArgumentParser:
    """The report's command line."""
    parser = argparse.ArgumentParser(
        prog="execution_difference_report.py",
        description=(
            "Report where the backend and the frontend differ: from a running Live Execution "
            "Monitor (default) or from backend and frontend event files."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "data files: a JSON array of events, JSON Lines (one event a line) or a saved\n"
            "/api/live-execution/data export (each side keeps the events of its own service).\n\n"
            "exit codes:\n"
            "  0  ok\n"
            "  1  input error: missing file, malformed line, bad event, unreachable monitor\n"
            "  2  usage error\n"
            "  3  --fail-on: a difference at or above that severity was found"
        ),
    )
    parser.add_argument("--format", choices=sorted(RENDERERS), default="markdown", help="default: markdown")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: stdout)")
    parser.add_argument("--url", help=f"the monitor to read (default {DEFAULT_URL})")
    parser.add_argument(
        "--token",
        default=os.environ.get("LIVE_MONITOR_TOKEN", ""),
        help="bearer token of the monitor (default: $LIVE_MONITOR_TOKEN)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the monitor (default 10)"
    )
    parser.add_argument("--backend-data", metavar="FILE", help="backend events file")
    parser.add_argument("--frontend-data", metavar="FILE", help="frontend events file")
    parser.add_argument(
        "--thresholds", metavar="FILE", help="JSON thresholds (execution_comparator.Thresholds)"
    )
    parser.add_argument("--min-samples", type=int, metavar="N", help="events needed on each side to flag")
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        help="exit 3 when a difference of this severity or higher is found (CI gate)",
    )
    parser.add_argument("--progress", action="store_true", help="progress on stderr even if not a TTY")
    return parser


def _load_thresholds(path: str | None, min_samples: int | None) -> Thresholds:
    """The default thresholds, or a JSON file's, checked so a typo fails here and not mid-report."""
    thresholds = Thresholds()
    if path:
        try:
            thresholds = Thresholds.from_file(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(
                f"{path}: not a usable thresholds file: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    return thresholds if min_samples is None else dataclasses.replace(thresholds, min_samples=min_samples)


def _sources(args: argparse.Namespace) -> list[tuple[Path, str]] | None:
    """The files to read, or None for the live monitor; raises ValueError on a bad combination."""
    if not (args.backend_data or args.frontend_data):
        return None
    if args.url:
        raise ValueError("--url reads a monitor; do not combine it with data files")
    if not (args.backend_data and args.frontend_data):
        raise ValueError(
            "give both --backend-data and --frontend-data (a /data export holding both sides may be given to both)"
        )
    return [(Path(args.backend_data), "backend"), (Path(args.frontend_data), "frontend")]


def _progress_printer(tty: bool) -> Callable[[dict[str, int]], None]:
    def show(seen: dict[str, int]) -> None:
        be, fe = seen["backend"], seen["frontend"]
        text = f"read {be + fe:,} events ({be:,} backend, {fe:,} frontend)"
        sys.stderr.write(("\r" + text) if tty else text + "\n")
        sys.stderr.flush()

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the report; returns the exit code (0 ok, 1 input error, 2 usage, 3 --fail-on)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        sources = _sources(args)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.min_samples is not None and args.min_samples < 1:
        print("error: --min-samples must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    tty = sys.stderr.isatty()
    try:
        if sources is None:
            if args.thresholds or args.min_samples is not None:
                print(
                    "note: --thresholds and --min-samples apply to data files; the monitor "
                    "reports with its own (start it with --thresholds/--min-samples)",
                    file=sys.stderr,
                )
            report = report_from_monitor(args.url or DEFAULT_URL, args.token, args.timeout)
        else:
            thresholds = _load_thresholds(args.thresholds, args.min_samples)
            progress = _progress_printer(tty) if (tty or args.progress) else None
            report = report_from_files(sources, thresholds, progress)
            if progress is not None and tty:
                sys.stderr.write("\n")
        text = RENDERERS[args.format](report)
        if args.output:
            try:
                Path(args.output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
            print(
                f"wrote {args.format} report to {args.output} ({len(report['differences'])} differences)",
                file=sys.stderr,
            )
        else:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:  # e.g. piped into head: not an error
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.fail_on:
        floor = SEVERITIES.index(args.fail_on)
        hits = [d for d in report["differences"] if SEVERITIES.index(d["severity"]) >= floor]
        if hits:
            print(f"fail-on {args.fail_on}: {len(hits)} difference(s) at or above it", file=sys.stderr)
            return EXIT_FAIL_ON
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
