"""Log analysis: counts, error rates and latency percentiles of event files, in one streaming pass.

Reads JSON Lines (backend_logging_config log lines or ExecutionEvents), JSON array event files
and saved monitor ``/data`` exports, and builds per-group figures, time buckets, the slowest
operations or a comparison of two time windows. Percentiles come from the same mergeable
sketch the monitor uses, so figures agree with the live view. The command line lives in
log_analysis_tool.py.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from live_monitor.model.stats import Aggregate
from live_monitor.tools.files import BadRecord, Event, InputError, iter_records, to_event
from live_monitor.vocabulary import ENDPOINT_COMPONENTS

GROUPS = {
    "service": ("service",),
    "component": ("service", "component"),
    "action": ("service", "component", "action"),
    "endpoint": ("service", "endpoint"),
}
BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}
FIGURES = tuple("count error_count error_rate timed_count avg_ms p50_ms p95_ms p99_ms max_ms".split())
COMPARED = ("count", "error_rate", "p95_ms")
SLOWEST_COLUMNS = tuple("timestamp service component action duration_ms status trace_id source".split())


def iso(ts: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Progress:
    """Bytes read of all inputs, redrawn on stderr at most five times a second."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done = total, enabled, 0
        self.started = self._last = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.2:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        mb_s = self.done / 1e6 / max(now - self.started, 1e-9)
        bar = "#" * int(pct / 5)
        sys.stderr.write(
            f"\rreading [{bar:<20}] {pct:5.1f}% {self.done / 1e6:,.1f}/{self.total / 1e6:,.1f} MB {mb_s:.1f} MB/s"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            sys.stderr.write("\n")


@dataclass
class Analysis:
    """Aggregates built in one pass over the inputs."""

    group_by: str = "service"
    bucket_s: int | None = None
    since: float | None = None
    until: float | None = None
    windows: list[tuple[float, float]] | None = None
    slowest_n: int = 0
    groups: dict[tuple[Any, ...], Aggregate] = field(default_factory=dict)
    compared: list[dict[tuple[Any, ...], Aggregate]] = field(default_factory=list)
    slowest: list[tuple[float, int, Event]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None

    def __post_init__(self) -> None:
        self.compared = [{} for _ in self.windows or ()]
        for name in ("records", "events", "log_lines", "filtered", "not_grouped", "bad"):
            self.counts[name] = 0

    def key(self, e: Event) -> tuple[Any, ...] | None:
        if self.group_by == "service":
            return (e.service,)
        if self.group_by == "component":
            return (e.service, e.component)
        if self.group_by == "action":
            return (e.service, e.component, e.action)
        return (e.service, e.action) if ENDPOINT_COMPONENTS[e.service] == e.component else None

    def add(self, e: Event) -> None:
        if (self.since is not None and e.ts < self.since) or (self.until is not None and e.ts >= self.until):
            self.counts["filtered"] += 1
            return
        key = self.key(e)
        if key is None:
            self.counts["not_grouped"] += 1
            return
        if self.windows:
            tables = [
                t for (start, end), t in zip(self.windows, self.compared, strict=True) if start <= e.ts < end
            ]
            if not tables:
                self.counts["filtered"] += 1
                return
        else:
            tables = [self.groups]
            if self.bucket_s:
                key = (math.floor(e.ts / self.bucket_s) * self.bucket_s, *key)
        for table in tables:
            table.setdefault(key, Aggregate()).add(e.duration_ms, e.is_error, e.ts)
        self.counts["events"] += 1
        self.first_ts = e.ts if self.first_ts is None else min(self.first_ts, e.ts)
        self.last_ts = e.ts if self.last_ts is None else max(self.last_ts, e.ts)
        if self.slowest_n and e.duration_ms is not None:
            item = (e.duration_ms, -self.counts["events"], e)
            if len(self.slowest) < self.slowest_n:
                heapq.heappush(self.slowest, item)
            elif item[:2] > self.slowest[0][:2]:
                heapq.heapreplace(self.slowest, item)


def analyse(paths: list[str], analysis: Analysis, skip_bad: bool, progress: Progress) -> Analysis:
    """Feed every record of every file to the analysis, streaming."""
    for path in paths:
        for where, record in iter_records(path, progress.advance):
            analysis.counts["records"] += 1
            try:
                if isinstance(record, BadRecord):
                    raise ValueError(record.reason)
                event = to_event(record, where)
            except ValueError as exc:
                if not skip_bad:
                    raise InputError(f"{where}: {exc} (use --skip-bad-lines to skip such lines)") from None
                analysis.counts["bad"] += 1
                continue
            if event is None:
                analysis.counts["log_lines"] += 1
            else:
                analysis.add(event)
    return analysis


def group_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per group (and bucket), biggest groups first within a bucket."""
    columns = (("bucket",) if analysis.bucket_s else ()) + GROUPS[analysis.group_by]
    rows = []
    for key, agg in analysis.groups.items():
        row: dict[str, Any] = dict(zip(columns, key, strict=True))
        if analysis.bucket_s:
            row["bucket"] = iso(row["bucket"])
        figures = agg.figures()
        rows.append(row | {name: figures[name] for name in FIGURES})
    rows.sort(key=lambda r: (r.get("bucket", ""), -r["count"], [str(r[c]) for c in columns]))
    return rows


def comparison_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """Per group: count, error rate and p95 in window A and B, and B minus A."""
    columns = GROUPS[analysis.group_by]
    a, b = analysis.compared
    rows = []
    for key in sorted(set(a) | set(b), key=lambda k: [str(x) for x in k]):
        fa, fb = (t.get(key, Aggregate()).figures() for t in (a, b))
        row: dict[str, Any] = dict(zip(columns, key, strict=True))
        for name in COMPARED:
            va, vb = fa[name], fb[name]
            delta = None if va is None or vb is None else round(vb - va, 4)
            row |= {f"{name}_a": va, f"{name}_b": vb, f"{name}_delta": delta}
        rows.append(row)
    rows.sort(key=lambda r: -(r["count_a"] + r["count_b"]))
    return rows


def slowest_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """The slowest timed events, slowest first."""
    return [
        {
            "timestamp": iso(e.ts),
            "service": e.service,
            "component": e.component,
            "action": e.action,
            "duration_ms": round(ms, 2),
            "status": "error" if e.is_error else "success",
            "trace_id": e.trace_id,
            "source": e.where,
        }
        for ms, _, e in sorted(analysis.slowest, key=lambda item: item[:2], reverse=True)
    ]


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.startswith("error_rate"):
        return f"{value * 100:+.2f}%" if name.endswith("_delta") else f"{value * 100:.2f}%"
    if isinstance(value, float):
        return f"{value:+,.1f}" if name.endswith("_delta") else f"{value:,.1f}"
    if isinstance(value, int) and name.endswith("_delta"):
        return f"{value:+,}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render_text(title: str, columns: list[str], rows: list[dict[str, Any]], markdown: bool) -> str:
    """An aligned plain-text table, or a Markdown pipe table."""
    if not rows:
        return f"## {title}\n\n(no events)\n" if markdown else f"{title}\n(no events)\n"
    cells = [[_cell(c, row[c]) for c in columns] for row in rows]
    numeric = [all(_is_number(row[c]) for row in rows) for c in columns]
    if markdown:
        escape = [[v.replace("|", "\\|") for v in line] for line in cells]
        lines = [
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
        ]
        lines += ["| " + " | ".join(line) + " |" for line in escape]
        return f"## {title}\n\n" + "\n".join(lines) + "\n"
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]

    def fmt(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [fmt(columns), fmt(["-" * w for w in widths]), *(fmt(line) for line in cells)]
    return f"{title}\n" + "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def render(analysis: Analysis, fmt: str, files: list[str]) -> str:
    """The whole report in the chosen format."""
    counts = analysis.counts
    summary = {
        "files": files,
        "records": counts["records"],
        "events": counts["events"],
        "first_timestamp": None if analysis.first_ts is None else iso(analysis.first_ts),
        "last_timestamp": None if analysis.last_ts is None else iso(analysis.last_ts),
        "filtered_out": counts["filtered"],
        "not_grouped": counts["not_grouped"],
        "log_lines_without_event": counts["log_lines"],
        "bad_lines_skipped": counts["bad"],
        "group_by": analysis.group_by,
    }
    group_columns = list(GROUPS[analysis.group_by])
    sections: list[tuple[str, str, list[str], list[dict[str, Any]]]] = []
    if analysis.windows:
        (a0, a1), (b0, b1) = analysis.windows
        title = (
            f"Window B ({iso(b0)} .. {iso(b1)}) vs window A ({iso(a0)} .. {iso(a1)}) by {analysis.group_by}"
        )
        columns = group_columns + [f"{n}_{s}" for n in COMPARED for s in ("a", "b", "delta")]
        sections.append(("comparison", title, columns, comparison_rows(analysis)))
    else:
        columns = (["bucket"] if analysis.bucket_s else []) + group_columns + list(FIGURES)
        sections.append(("groups", f"By {analysis.group_by}", columns, group_rows(analysis)))
    if analysis.slowest_n:
        title = f"Slowest {analysis.slowest_n}"
        sections.append(("slowest", title, list(SLOWEST_COLUMNS), slowest_rows(analysis)))
    if fmt == "json":
        tables = {name: rows for name, _, _, rows in sections}
        return json.dumps({"summary": summary, **tables}, indent=2) + "\n"
    if fmt == "csv":  # one table: the slowest operations when asked for, else the main table
        _, _, columns, rows = sections[-1]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    first, last = summary["first_timestamp"], summary["last_timestamp"]
    span = "" if analysis.first_ts is None else f" from {first} to {last}"
    notes = [f"{counts['events']:,} events{span} in {len(files)} file(s)"]
    for name, label in (
        ("filtered", "outside the time range"),
        ("not_grouped", "not endpoint calls"),
        ("log_lines", "log lines without event fields"),
        ("bad", "bad lines skipped"),
    ):
        if counts[name]:
            notes.append(f"{counts[name]:,} {label}")
    header = ("" if fmt == "table" else "# Log analysis\n\n") + "; ".join(notes) + "\n"
    markdown = fmt == "markdown"
    return header + "".join("\n" + render_text(t, c, rows, markdown) for _, t, c, rows in sections)
