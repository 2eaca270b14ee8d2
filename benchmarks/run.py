"""The Live Execution Monitor's benchmark: the monitor side by side with the alternatives.

``python benchmarks/run.py`` measures every row in one run on this machine, alternating the
compared variants and taking medians of rounds, prints progress on stderr and a table of
figures, ratios and PASS/FAIL per target on stdout, writes benchmarks/RESULTS.md with the
machine's description and, beside it, results.svg (a chart of each row against its target,
embedded in RESULTS.md), and exits 1 when a target is missed (2 on bad usage).
``--quick`` uses smaller counts; ``--only NAME`` runs one group or row (see ``--list``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    bench_browser,
    bench_inprocess,
    bench_restart,
    bench_scaleout,
    bench_scrub,
    bench_server,
    bench_system,
    bench_tools,
    bench_wsgi,
)
from benchmarks.chart import results_svg  # noqa: E402
from benchmarks.common import BenchError, Context, Row, machine  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"
CHART_NAME = "results.svg"  # written beside RESULTS.md, which embeds it
GroupFn = Callable[[Context, set[str]], list[Row]]

# Run order: cheap in-process rows first, loaded servers and the browser last.
GROUPS: dict[str, tuple[GroupFn, tuple[str, ...]]] = {
    "decode": (bench_inprocess.decode_rows, ("decode",)),
    "sketch": (bench_inprocess.sketch_rows, ("sketch",)),
    "handler": (bench_inprocess.handler_rows, ("handler",)),
    "scrub": (bench_scrub.scrub_rows, ("scrub-linear",)),
    "middleware": (bench_inprocess.middleware_rows, ("middleware",)),
    "data": (bench_inprocess.data_rows, ("data-scaling", "differences-scaling", "endpoint-scaling")),
    "memory": (bench_system.memory_rows, ("memory", "rss")),
    "idle": (bench_system.idle_rows, bench_system.IDLE_ROWS),
    "ingest": (bench_server.ingest_rows, bench_server.INGEST_ROWS),
    "middleware-load": (bench_server.middleware_load_rows, ("middleware-load",)),
    "redis": (bench_scaleout.scaleout_rows, bench_scaleout.ROWS),
    "wsgi": (bench_wsgi.wsgi_rows, bench_wsgi.ROWS),
    "tools": (bench_tools.tools_rows, bench_tools.ROWS),
    "restart": (bench_restart.restart_rows, bench_restart.ROWS),
    "bundle": (bench_browser.bundle_rows, ("bundle-vs-web-vitals", "bundle-vs-sentry", "bundle-vs-otel")),
    "overhead": (bench_browser.overhead_rows, bench_browser.OVERHEAD_ROWS),
    "chart": (bench_browser.chart_rows, ("chart",)),
}
ROW_GROUP = {row: group for group, (_, rows) in GROUPS.items() for row in rows}


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Benchmark the Live Execution Monitor side by side with the alternatives.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts and fewer rounds")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this group or row (repeatable, or comma-separated); see --list",
    )
    parser.add_argument("--list", action="store_true", help="list the groups and rows, then exit")
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator for the server rows (auto: wrk when installed)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write RESULTS.md (results.svg goes in the same folder)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table but write no file")
    return parser


def select(names: list[str]) -> dict[str, set[str]]:
    """The groups to run and, for each, the rows wanted; raises ValueError on an unknown name."""
    wanted: dict[str, set[str]] = {}
    parts = [p.strip() for name in names for p in name.split(",") if p.strip()]
    if not parts:
        return {group: set(rows) for group, (_, rows) in GROUPS.items()}
    for part in parts:
        if part in GROUPS:
            wanted.setdefault(part, set()).update(GROUPS[part][1])
        elif part in ROW_GROUP:
            wanted.setdefault(ROW_GROUP[part], set()).add(part)
        else:
            known = ", ".join(sorted({*GROUPS, *ROW_GROUP}))
            raise ValueError(f"unknown benchmark {part!r}; known: {known}")
    return {group: wanted[group] for group in GROUPS if group in wanted}


def run_groups(ctx: Context, plan: dict[str, set[str]]) -> list[Row]:
    """Run the planned groups; a group that cannot run gives ERROR rows, not a traceback."""
    rows: list[Row] = []
    try:
        for group, wanted in plan.items():
            fn = GROUPS[group][0]
            ctx.log(f"== {group} ==")
            started = time.monotonic()
            try:
                got = fn(ctx, wanted)
            except (BenchError, RuntimeError, OSError, ImportError, ValueError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                ctx.log(f"{group}: could not run: {message}")
                order = GROUPS[group][1]
                got = [
                    Row(name, group, "", "", None, None, error=message) for name in order if name in wanted
                ]
            rows.extend(got)
            ctx.log(f"{group}: done in {time.monotonic() - started:.0f} s")
    finally:
        ctx.close()
    return rows


def table(rows: list[Row]) -> str:
    """The plain-text results table printed on stdout."""
    lines = [f"{'row':<22} {'ratio':>9}  {'target':<10} {'verdict':<7} figure | compared with"]
    for row in rows:
        if row.error:
            lines.append(f"{row.name:<22} {'-':>9}  {'-':<10} ERROR   {row.error}")
            continue
        target = str(row.target) if row.target else "-"
        lines.append(
            f"{row.name:<22} {row.ratio_text:>9}  {target:<10} {row.verdict:<7} {row.figure} | {row.baseline}"
        )
        if row.note:
            lines.append(f"{'':<22} {'':>9}  {'':<10} {'':<7} ({row.note})")
    counts = {v: sum(r.verdict == v for r in rows) for v in ("PASS", "FAIL", "ERROR", "info")}
    lines.append(
        f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['ERROR']} could not run, "
        f"{counts['info']} printed without a target"
    )
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(
    rows: list[Row],
    info: dict[str, str],
    argv: list[str],
    notes: dict[str, str],
    quick: bool,
) -> str:
    """RESULTS.md: how it was run, the machine, the chart (results.svg beside it), the table and
    the notes."""
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    kind = "quick run (smaller counts)" if quick else "full run"
    out = [
        "# Benchmark results",
        "",
        f"Written by `{command}` ({kind}) on {info['date']}. Every ratio compares variants measured",
        "side by side in this one run: the variants alternate within each round and a ratio is the",
        "median of the rounds' ratios, since absolute times drift on a shared machine while ratios",
        "hold. Reproduce with `make bench` or the command above; `--only NAME` runs one row.",
        "Where the time goes, from profiles taken before and after each change: [PROFILES.md](PROFILES.md).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {_cell(value)} |" for key, value in info.items()],
        "",
        "## Results",
        "",
        f"![Each row against its target]({CHART_NAME})",
        "",
        "| row | what | figure | compared with | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.error:
            out.append(f"| {row.name} | {_cell(row.what)} | {_cell(row.error)} | | | | ERROR |")
            continue
        target = str(row.target) if row.target else "-"
        out.append(
            f"| {row.name} | {_cell(row.what)} | {_cell(row.figure)} | {_cell(row.baseline)} | "
            f"{row.ratio_text} | {target} | **{row.verdict}** |"
        )
    extra = [f"- `{row.name}`: {row.note}" for row in rows if row.note]
    extra += [f"- {note}" for note in notes.values()]
    if extra:
        out += ["", "## Notes", "", *extra]
    return "\n".join(out) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_results(
    output: Path, rows: list[Row], info: dict[str, str], argv: list[str], notes: dict[str, str], quick: bool
) -> Path:
    """Write ``output`` (RESULTS.md) and the chart it embeds, results.svg, in the same folder;
    returns the chart's path. Raises OSError when either cannot be written."""
    chart_path = output.parent / CHART_NAME
    if output.name == CHART_NAME:
        raise OSError(f"the chart is written as {CHART_NAME} beside the output; name the output otherwise")
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(chart_path, results_svg(rows))
    _write_atomic(output, markdown(rows, info, argv, notes, quick))
    return chart_path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met, 1 when one is missed, 2 on bad usage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for group, (_, names) in GROUPS.items():
            print(f"{group}: {', '.join(names)}")
        return 0
    try:
        plan = select(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = Context(quick=args.quick, client=args.client)
    try:
        rows = run_groups(ctx, plan)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(table(rows), flush=True)
    if not args.no_write:
        try:
            chart_path = write_results(args.output, rows, machine(), argv, ctx.notes, args.quick)
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.output} and {chart_path}", file=sys.stderr)
    return 1 if any(row.verdict in ("FAIL", "ERROR") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
