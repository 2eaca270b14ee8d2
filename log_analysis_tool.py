"""Historical analysis of execution events and backend JSON logs, offline and in constant memory.

Reads JSON Lines (backend_logging_config log lines or ExecutionEvents), JSON array event files
and saved monitor ``/data`` exports, then prints counts, error rates and p50/p95/p99 latencies
per service, component, action or endpoint, optionally per time bucket, the slowest
operations, or a comparison of two time windows. Percentiles come from the same mergeable
sketch the monitor uses, so figures agree with the live view. The command line only: the
analysis lives in live_monitor/tools/logs.py.
"""

from __future__ import annotations

import argparse
import os
import sys

from live_monitor.tools.files import InputError, parse_time, time_arg
from live_monitor.tools.logs import BUCKETS, GROUPS, Analysis, Progress, analyse, render


def _window(text: str) -> tuple[float, float]:
    start, sep, end = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START/END, got {text!r}")
    try:
        window = parse_time(start), parse_time(end)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if window[0] >= window[1]:
        raise argparse.ArgumentTypeError(f"window {text!r} ends before it starts")
    return window


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        description="Analyse execution events and backend JSON logs: counts, error rates and "
        "latency percentiles per group, time buckets, slowest operations, window comparison.",
        epilog="Files: JSON Lines (log lines or events), a JSON array of events, or a saved monitor "
        "/data export ('-' reads stdin). Timestamps: ISO 8601 (no zone = UTC) or epoch seconds. "
        "--format csv prints one table: the slowest operations with --slowest, else the main table.",
    )
    add = p.add_argument
    add("files", nargs="+", metavar="FILE")
    endpoint_help = "endpoint = service + action of api/http calls"
    add("--group-by", choices=list(GROUPS), default="service", help=endpoint_help)
    add("--since", type=time_arg, help="only events at or after this time")
    add("--until", type=time_arg, help="only events before this time")
    add("--bucket", choices=list(BUCKETS), help="also split the groups by time bucket")
    add("--slowest", type=_positive, metavar="N", help="list the N slowest operations")
    add(
        "--compare-windows",
        nargs=2,
        type=_window,
        metavar=("A_START/A_END", "B_START/B_END"),
        help="compare two windows per group",
    )
    add("--format", choices=("table", "markdown", "json", "csv"), default="table")
    add("--skip-bad-lines", action="store_true", help="skip and count malformed lines instead of stopping")
    add("--progress", action="store_true", help="show progress on stderr even when it is not a terminal")
    return p


def _usage_error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the analysis; returns the process exit code (2 usage, 1 unreadable input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.since is not None and args.until is not None and args.since >= args.until:
        return _usage_error("--since must be before --until")
    if args.compare_windows and args.bucket:
        return _usage_error("--compare-windows and --bucket cannot be combined")
    for path in args.files:
        if path != "-" and not os.path.isfile(path):
            return _usage_error(f"{'no such file' if not os.path.exists(path) else 'not a file'}: {path}")
    total = sum(os.path.getsize(p) for p in args.files if p != "-")
    progress = Progress(total, args.progress or sys.stderr.isatty())
    analysis = Analysis(
        group_by=args.group_by,
        bucket_s=BUCKETS[args.bucket] if args.bucket else None,
        since=args.since,
        until=args.until,
        windows=args.compare_windows,
        slowest_n=args.slowest or 0,
    )
    try:
        analyse(args.files, analysis, args.skip_bad_lines, progress)
    except (InputError, OSError) as exc:
        if progress.enabled:
            sys.stderr.write("\n")
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    progress.finish()
    try:
        sys.stdout.write(render(analysis, args.format, args.files))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
