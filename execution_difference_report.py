"""Execution difference report: where the backend and the frontend differ, as a document.

Reads a running monitor (GET /data and /differences) or backend and frontend event files,
and writes Markdown, JSON or one self-contained HTML page; with --baseline, also what changed
since a saved run. The command line only: building
the report lives in live_monitor/tools/report.py, rendering in live_monitor/tools/render.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live_monitor.model.baseline import BaselineComparison, failures
from live_monitor.model.events import MAX_ENVIRONMENT, MAX_RELEASE, EventFilter
from live_monitor.tools.files import InputError
from live_monitor.tools.render import RENDERERS
from live_monitor.tools.report import (
    DEFAULT_URL,
    attach_baseline,
    build_stats,
    load_thresholds,
    report_from_files,
    report_from_monitor,
)
from live_monitor.vocabulary import SEVERITIES, Service, Severity, severity_rank

__all__ = ["InputError", "build_parser", "build_stats", "main", "report_from_files", "report_from_monitor"]

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_FAIL_ON = 0, 1, 2, 3


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
            "data files: a JSON array of events, JSON Lines (events, ingest batches or backend\n"
            "log lines) or a saved /api/live-execution/data export, read as log_analysis_tool.py\n"
            "reads them (each side keeps the events of its own service).\n\n"
            "exit codes:\n"
            "  0  ok\n"
            "  1  input error: missing file, malformed line, bad event, unreachable monitor\n"
            "  2  usage error\n"
            "  3  --fail-on: a difference at or above that severity was found (with --baseline:\n"
            "     a regression since the baseline, or a difference new since it)\n\n"
            "baseline: a report saved with --format json (from event files it keeps each\n"
            "endpoint's distributions, so every latency change is tested), a saved /data export,\n"
            "or event files: one file holding both sides' events, or a backend and a frontend file.\n\n"
            "releases: --release and --environment keep the events that carry that release and\n"
            "environment (the monitor is asked for those figures with ?release= and ?environment=);\n"
            "--baseline-release R compares with the events of release R: of the --baseline files,\n"
            "else of the same data files (the previous release as the baseline)."
        ),
    )
    parser.add_argument("--format", choices=sorted(RENDERERS), default="markdown", help="default: markdown")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: stdout)")
    parser.add_argument("--url", type=_monitor_url, help=f"the monitor to read (default {DEFAULT_URL})")
    parser.add_argument(
        "--token",
        default=os.environ.get("LIVE_MONITOR_TOKEN", ""),
        help="bearer token of the monitor (default: $LIVE_MONITOR_TOKEN)",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=10.0, help="seconds to wait for the monitor (default 10)"
    )
    parser.add_argument("--backend-data", metavar="FILE", help="backend events file")
    parser.add_argument("--frontend-data", metavar="FILE", help="frontend events file")
    parser.add_argument(
        "--thresholds", metavar="FILE", help="JSON thresholds (fields of live_monitor/model/thresholds.py)"
    )
    parser.add_argument("--min-samples", type=int, metavar="N", help="events needed on each side to flag")
    parser.add_argument(
        "--baseline",
        nargs="+",
        metavar="FILE",
        help="compare with a saved run: a JSON report, a /data export, or event files "
        "(FILE of both sides, or BACKEND FRONTEND); see below",
    )
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        help="exit 3 when a difference of this severity or higher is found; with --baseline, "
        "a regression since the baseline or a difference new since it (CI gate)",
    )
    parser.add_argument(
        "--release", type=_label(MAX_RELEASE), help="only the events of this release (an event's `release`)"
    )
    parser.add_argument(
        "--environment",
        type=_label(MAX_ENVIRONMENT),
        help="only the events of this environment (an event's `environment`), in the run and the baseline",
    )
    parser.add_argument(
        "--baseline-release",
        metavar="RELEASE",
        type=_label(MAX_RELEASE),
        help="compare with the events of this release: of the --baseline files, else of the data files",
    )
    parser.add_argument("--progress", action="store_true", help="progress on stderr even if not a TTY")
    return parser


def _monitor_url(text: str) -> str:
    """A --url: http(s)://host[:port], so a typo is a usage error rather than a failed request."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host, not {text!r}")
    return text.strip()


def _label(limit: int) -> Callable[[str], str]:
    """A --release or --environment value: text of 1 to ``limit`` characters, as events hold them."""

    def check(text: str) -> str:
        if not 0 < len(text) <= limit:
            raise argparse.ArgumentTypeError(f"must be 1 to {limit} characters")
        return text

    return check


def _seconds(text: str) -> float:
    """A --timeout: more than 0 and at most a day (socket timeouts overflow far beyond that)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400 seconds, not {text!r}")
    return value


def _sources(args: argparse.Namespace) -> list[tuple[Path, Service]] | None:
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
    if args.baseline and len(args.baseline) > 2:
        parser.print_usage(sys.stderr)
        print("error: --baseline takes one file, or a backend and a frontend file", file=sys.stderr)
        return EXIT_USAGE
    if args.baseline_release and not (args.baseline or sources):
        parser.print_usage(sys.stderr)
        print(
            "error: --baseline-release reads events: give --baseline files or --backend-data/--frontend-data",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.min_samples is not None and args.min_samples < 1:
        print("error: --min-samples must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    tty = sys.stderr.isatty()
    where = EventFilter(args.release, args.environment) or None
    try:
        if sources is None:
            if (args.thresholds or args.min_samples is not None) and not args.baseline:
                print(
                    "note: --thresholds and --min-samples apply to data files and --baseline; the "
                    "monitor reports with its own (start it with --thresholds/--min-samples)",
                    file=sys.stderr,
                )
            report = report_from_monitor(args.url or DEFAULT_URL, args.token, args.timeout, where)
        else:
            thresholds = load_thresholds(args.thresholds, args.min_samples)
            progress = _progress_printer(tty) if (tty or args.progress) else None
            report = report_from_files(sources, thresholds, progress, where)
            if progress is not None and tty:
                sys.stderr.write("\n")
        comparison = None
        if args.baseline or args.baseline_release:
            if sources is None:  # the data files' branch above has them already
                thresholds = load_thresholds(args.thresholds, args.min_samples)
            paths = [Path(p) for p in args.baseline] if args.baseline else [p for p, _ in sources or []]
            before = EventFilter(args.baseline_release, args.environment) if args.baseline_release else None
            comparison = attach_baseline(report, paths, thresholds, before)
        text = RENDERERS[args.format](report)
        if args.output:
            try:
                Path(args.output).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
            since = ""
            if comparison is not None:
                since = f", {comparison.counts['regression']} regressions since the baseline"
            print(
                f"wrote {args.format} report to {args.output} ({len(report['differences'])} differences{since})",
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
        return _gate(args.fail_on, report, comparison)
    return EXIT_OK


def _gate(floor: Severity, report: dict[str, Any], comparison: BaselineComparison | None) -> int:
    """--fail-on: without a baseline, any difference at or above ``floor``; with one, what got
    worse since it (regressions and new differences: improvements and standing differences never
    fail). Each finding is named on stderr."""
    if comparison is not None:
        hits = failures(comparison, floor)
        for line in hits:
            print(f"  {line}", file=sys.stderr)
        if hits:
            print(
                f"fail-on {floor}: {len(hits)} regression(s) since the baseline at or above it",
                file=sys.stderr,
            )
            return EXIT_FAIL_ON
        return EXIT_OK
    rank = severity_rank(floor)
    found = [d for d in report["differences"] if severity_rank(d["severity"]) >= rank]
    if found:
        print(f"fail-on {floor}: {len(found)} difference(s) at or above it", file=sys.stderr)
        return EXIT_FAIL_ON
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
