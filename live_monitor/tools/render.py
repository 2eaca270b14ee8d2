"""Renderers of the difference report: Markdown, JSON and one self-contained HTML page.

Each takes the report dict (``{"summary", "differences"}``) and returns text; the recommendations
(what to look at next for each difference) live here too. Loading the data stays in
live_monitor/tools/report.py and the command line in execution_difference_report.py, which
keeps this module free of any I/O.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from live_monitor.vocabulary import ENDPOINT_COMPONENTS, SEVERITIES, DifferenceType, Service

TABLE_ROWS = 50
TITLES: dict[DifferenceType, str] = {
    "activity": "ACTIVITY LEVEL DIFFERENCE",
    "performance": "PERFORMANCE DIFFERENCE",
    "error_rate": "ERROR RATE DIFFERENCE",
    "pattern": "EXECUTION PATTERN DIFFERENCE",
}

# --- recommendations --------------------------------------------------------------------

# (type, scope, side that is worse) -> what to look at next; {on} names the endpoint.
RECOMMENDATIONS: dict[tuple[DifferenceType, str, Service], str] = {
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
_BACKEND, _FRONTEND = ENDPOINT_COMPONENTS["backend"], ENDPOINT_COMPONENTS["frontend"]


def recommendation(diff: dict[str, Any]) -> str:
    """What to look at next for one difference, by its type, scope and the side that is worse."""
    be, fe, key = diff["backend"], diff["frontend"], diff.get("key")
    worse: Service
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
    """The README's "Sample Output" block: a title, both sides' figures, the difference, the severity."""
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
    if diff.get("samples"):
        lines.append(evidence(diff))
    return lines


def evidence(diff: dict[str, Any]) -> str:
    """What a difference rests on and how sure it is: "Samples: 120 backend, 120 frontend; 97.9%
    sure it is not chance" (the dashboard's alert card says the same)."""
    samples = diff.get("samples") or {}
    counts = ", ".join(f"{_num(samples.get(s), 0)} {s}" for s in ("backend", "frontend"))
    sure = diff.get("confidence")
    how = _sure(sure) if sure is None else f"{_sure(sure)} sure it is not chance"
    return f"Samples: {counts}; {how}"


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
    """The report as Markdown: summary, comparison, endpoints, differences, recommendations, and
    what changed since the baseline when there is one."""
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
        out.append(f"No endpoint events (backend `{_BACKEND}`, frontend `{_FRONTEND}`) yet.")
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
    if report.get("baseline"):
        out += _baseline_markdown(report["baseline"])
    return "\n".join(out).rstrip() + "\n"


# --- the baseline section -----------------------------------------------------------------

FIGURE_NAMES = {
    "p50_ms": "p50",
    "p95_ms": "p95",
    "gap_p50_ms": "gap p50",
    "error_rate": "error rate",
    "calls_per_minute": "calls/min",
}
BASELINE_HEADERS = [
    "Endpoint",
    "Side",
    "Figure",
    "Baseline",
    "Now",
    "Change",
    "Verdict",
    "Sure",
    "Samples then / now",
]
_SHOWN_VERDICTS = ("regression", "improvement", "changed")


def _figure(metric: str, value: Any) -> str:
    if metric == "error_rate":
        return _rate(value)
    return _num(value, 2) if metric == "calls_per_minute" else _ms(value)


def _change_text(change: dict[str, Any]) -> str:
    delta, pct, metric = change.get("change"), change.get("change_pct"), change["metric"]
    if delta is None:
        return "n/a"
    if metric == "error_rate":
        return f"{delta:+.1f} points"
    unit = "/min" if metric == "calls_per_minute" else " ms"
    return f"{delta:+,.1f}{unit}" + ("" if pct is None else f" ({pct:+.0f}%)")


def _sure(confidence: Any) -> str:
    return "not tested" if confidence is None else f"{int(confidence * 1000) / 10:g}%"


def _baseline_cells(change: dict[str, Any]) -> list[str]:
    """A change's cells after its endpoint key, as plain text (each renderer escapes them)."""
    metric, verdict = change["metric"], str(change["verdict"])
    samples = change.get("samples") or {}
    return [
        str(change["side"]),
        FIGURE_NAMES.get(metric, metric),
        _figure(metric, change.get("baseline")),
        _figure(metric, change.get("current")),
        _change_text(change),
        f"{change['severity']} {verdict}" if change.get("severity") else verdict,
        _sure(change.get("confidence")),
        f"{_num(samples.get('baseline'), 0)} / {_num(samples.get('current'), 0)}",
    ]


def _baseline_intro(section: dict[str, Any]) -> tuple[str, list[str]]:
    """The sentence saying what was compared with what, and the tally; then the notes."""
    src = section.get("baseline") or {}
    files = ", ".join(str(f) for f in src.get("files") or [])
    made = f", made {src['generated_at']}" if src.get("generated_at") else ""
    counts = section.get("counts") or {}
    tally = ", ".join(
        f"{counts.get(v, 0)} {label}"
        for v, label in (
            ("regression", "regressions"),
            ("improvement", "improvements"),
            ("changed", "volume changes"),
            ("not enough samples", "with not enough samples"),
            ("unchanged", "unchanged"),
        )
    )
    text = f"Compared with the {src.get('kind', 'baseline')} {files}{made}, per endpoint and side: {tally}."
    notes = [str(n) for n in [src.get("note"), *(section.get("notes") or [])] if n]
    return text, notes


def _presence_text(item: dict[str, Any]) -> str:
    rate = item.get("calls_per_minute")
    return f"{item['side']}: {_num(item.get('calls'), 0)} calls" + (
        "" if rate is None else f", {_num(rate, 2)}/min"
    )


def _baseline_markdown(section: dict[str, Any]) -> list[str]:
    """The Markdown of the report's ``baseline`` section."""
    changes = section.get("changes") or []
    text, notes = _baseline_intro(section)
    out = ["", "## Since the Baseline", "", _md(text), "", *(f"> Note: {_md(n)}\n" for n in notes)]
    shown = [c for c in changes if c["verdict"] in _SHOWN_VERDICTS]
    if shown:
        out += ["| " + " | ".join(BASELINE_HEADERS) + " |", "|---" * len(BASELINE_HEADERS) + "|"]
        out += ["| " + " | ".join([_md_code(c["key"]), *map(_md, _baseline_cells(c))]) + " |" for c in shown]
    else:
        out.append(
            "No regression, improvement or volume change: nothing moved beyond its level surely enough."
        )
    few = [c for c in changes if c["verdict"] == "not enough samples"]
    if few:
        out += ["", f"### Not enough samples ({len(few)})", ""]
        out += [f"- {_md(c['message'])}" for c in few[:TABLE_ROWS]]
        if len(few) > TABLE_ROWS:
            out.append(f"- {len(few) - TABLE_ROWS} more in --format json")
    for title, name in (("New endpoints", "new_endpoints"), ("Vanished endpoints", "vanished_endpoints")):
        items = section.get(name) or []
        if items:
            out += ["", f"### {title} ({len(items)})", ""]
            out += [f"- {_md_code(i['key'])} {_md(_presence_text(i))}" for i in items[:TABLE_ROWS]]
    new = section.get("new_differences") or []
    if new:
        out += ["", f"### Differences between the sides new since the baseline ({len(new)})", ""]
        out += [f"- **{_md(d['severity'])}** {_md(d['type'])}: {_md(d['message'])}" for d in new]
    return out


def _baseline_html(section: dict[str, Any]) -> list[str]:
    """The HTML of the report's ``baseline`` section: every text escaped."""
    e = html.escape
    changes = section.get("changes") or []
    text, notes = _baseline_intro(section)
    parts = ["<h2>Since the Baseline</h2>", f"<p>{e(text)}</p>"]
    parts += [f'<p class="muted">Note: {e(n)}</p>' for n in notes]
    shown = [c for c in changes if c["verdict"] in _SHOWN_VERDICTS]
    if shown:
        rows = []
        for c in shown:
            cells = [f"<code>{e(c['key'])}</code>", *map(e, _baseline_cells(c))]
            if c.get("severity"):
                sev = e(str(c["severity"]))
                cells[6] = f'<span class="badge {sev}">{sev}</span> {e(str(c["verdict"]))}'
            rows.append(cells)
        parts.append(_table(BASELINE_HEADERS, rows))
    else:
        parts.append(
            '<p class="muted">No regression, improvement or volume change: nothing moved beyond its '
            "level surely enough.</p>"
        )
    few = [c for c in changes if c["verdict"] == "not enough samples"]
    if few:
        parts.append(f"<h3>Not enough samples ({len(few)})</h3>")
        parts.append("<ul>" + "".join(f"<li>{e(c['message'])}</li>" for c in few[:TABLE_ROWS]) + "</ul>")
    for title, name in (("New endpoints", "new_endpoints"), ("Vanished endpoints", "vanished_endpoints")):
        items = section.get(name) or []
        if items:
            parts.append(f"<h3>{title} ({len(items)})</h3>")
            lis = "".join(
                f"<li><code>{e(i['key'])}</code> {e(_presence_text(i))}</li>" for i in items[:TABLE_ROWS]
            )
            parts.append(f"<ul>{lis}</ul>")
    new = section.get("new_differences") or []
    if new:
        parts.append(f"<h3>Differences between the sides new since the baseline ({len(new)})</h3>")
        lis = "".join(
            f'<li><span class="badge {e(str(d["severity"]))}">{e(str(d["severity"]))}</span> '
            f"{e(str(d['type']))}: {e(str(d['message']))}</li>"
            for d in new
        )
        parts.append(f"<ul>{lis}</ul>")
    return parts


def render_json(report: dict[str, Any]) -> str:
    """The report as ``{"summary": {...}, "differences": [...]}``."""
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


# The sides' one palette in Python, as static/dashboard.css's :root has it in CSS and
# dashboard-charts.js's COLORS in JavaScript (tests/test_palette.py checks the three agree): the
# Okabe-Ito colour-blind-safe server sky blue, browser orange and gap bluish green. They fill the
# bars; on this page's white they are too light for text (about 2.3:1), so the sides' words and
# the bars' outlines take the darker SIDE_TEXT_COLORS (4.5:1 and more).
SIDE_COLORS = {"backend": "#56b4e9", "frontend": "#e69f00", "gap": "#009e73"}
SIDE_TEXT_COLORS = {"backend": "#0072b2", "frontend": "#8a5a00", "gap": "#00795a"}
# Severities keep clear of the sides' hues, so no side reads as a severity: red, dark yellow, slate.
SEVERITY_COLORS = {"high": "#b91c1c", "medium": "#a16207", "low": "#475569"}
CSS = (
    """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1f2937;padding:0 1rem}h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #e5e7eb}
table{border-collapse:collapse;margin:.5rem 0;font-size:13px}th,td{padding:.3rem .6rem;border:1px solid #e5e7eb;
text-align:right}th:first-child,td:first-child{text-align:left}code{font-size:12px;word-break:break-all}
.muted{color:#6b7280}.diff{border-left:4px solid;padding:.4rem .9rem;margin:.7rem 0;background:#f9fafb}
.badge{font-weight:600;text-transform:uppercase;font-size:11px;padding:.1rem .4rem;border-radius:3px;color:#fff}
pre{background:#111827;color:#f9fafb;padding:.5rem .8rem;border-radius:4px}.rec{margin:.3rem 0}
svg{display:block;margin:.5rem 0}svg text{font:12px system-ui,sans-serif;fill:#374151}
"""
    + "".join(
        f".{name}{{border-color:{c}}}.badge.{name}{{background:{c}}}" for name, c in SEVERITY_COLORS.items()
    )
    + "".join(f"svg text.side-{side}{{fill:{c};font-weight:600}}" for side, c in SIDE_TEXT_COLORS.items())
    + "\n"
)


def _svg_bars(title: str, rows: list[tuple[str, list[float | None]]], series: list[str], unit: str) -> str:
    """A grouped horizontal bar chart as inline SVG: one group of bars per row label, one bar
    per side in ``series`` (in that side's colours)."""
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
    for i, name in enumerate(series):
        x = label_w + i * 110
        parts.append(f'<rect x="{x}" y="20" width="10" height="10" {_paint(name)}/>')
        parts.append(f'<text x="{x + 14}" y="29" class="side-{name}">{e(name)}</text>')
    for r, (label, vals) in enumerate(rows):
        y = top + r * group_h
        short = label if len(label) <= 40 else label[:37] + "..."
        parts.append(
            f'<text x="0" y="{y + bar_h * len(series) / 2 + 4:.0f}"><title>{e(label)}</title>{e(short)}</text>'
        )
        for i, (name, value) in enumerate(zip(series, vals, strict=True)):
            by = y + i * bar_h
            w = 0.0 if value is None else max(value / vmax * bars_w, 1.0)
            shown = "n/a" if value is None else f"{_num(value)}{unit}"
            parts.append(
                f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" {_paint(name)}>'
                f"<title>{e(label)} {e(name)}: {e(shown)}</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 2}" font-size="10">{e(shown)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _paint(side: str) -> str:
    """A side's bar or swatch: its palette colour, outlined in its darker text colour so the
    shape stands out from the white page (3:1) as well as the colour tells the side."""
    return f'fill="{SIDE_COLORS[side]}" stroke="{SIDE_TEXT_COLORS[side]}" stroke-width="1"'


def _charts(rows: list[dict[str, Any]]) -> str:
    top = rows[:15]
    sides = ["frontend", "backend"]
    charts = []
    for q in ("p50", "p95"):
        data = [(r["key"], [(r.get(s) or {}).get(f"{q}_ms") for s in sides]) for r in top]
        charts.append(_svg_bars(f"{q} duration per endpoint (ms)", data, sides, "ms"))
    rates = [(r["key"], [(r.get(s) or {}).get("error_rate") for s in sides]) for r in top]
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
        parts.append(
            f'<p class="muted">No endpoint events (backend {_BACKEND}, frontend {_FRONTEND}) yet.</p>'
        )
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
    if report.get("baseline"):
        parts += _baseline_html(report["baseline"])
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "markdown": render_markdown,
    "json": render_json,
    "html": render_html,
}
