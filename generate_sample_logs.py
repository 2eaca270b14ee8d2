"""Generate realistic backend and frontend sample logs for the Live Execution Monitor.

Writes ``backend_events``, ``frontend_events`` (ExecutionEvent schema), ``backend.log``
(backend_logging_config's JSON log lines) and ``ground_truth.json`` (per injected shape,
anomaly or healthy real traffic, what a correct monitor reports). Events are generated and written as a
stream, so tens of millions of events cost no more memory than a thousand. With ``--post``
the same events are replayed into a running monitor at a steady rate. The command line only:
generation lives in live_monitor/tools/samples.py.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

from live_monitor.model.events import MIN_SAMPLE_RATE
from live_monitor.tools.files import parse_time, time_arg
from live_monitor.tools.samples import REAL_TRAFFIC, SHAPES, Plan, generate

# The options that go into the Plan as they are (the span is worked out first, by _span_ms).
_PLANNED = "events seed inject out_dir format post rate token progress browser_sample_rate".split()


def _timestamp_ms(text: str) -> int:
    """--start as epoch milliseconds, read like every tool's times."""
    return int(time_arg(text) * 1000)


def _at_least(low: float, kind: type = float) -> Any:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}")
        return value

    return convert


def _share(text: str) -> float:
    """A sample rate, from the monitor's smallest (MIN_SAMPLE_RATE) to 1."""
    value = _at_least(0.0)(text)
    if not MIN_SAMPLE_RATE <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from {MIN_SAMPLE_RATE} to 1: {text!r}")
    return float(value)


def build_parser() -> argparse.ArgumentParser:
    """The command line; the shapes and their default endpoints are listed in --help."""
    defaults = "; ".join(
        f"{n}{'' if s.endpoint is None else ':' + s.endpoint} ({s.what})" for n, s in SHAPES.items()
    )
    p = argparse.ArgumentParser(
        description="Generate matching backend and frontend sample events, a backend JSON log "
        "and a ground-truth file of the injected shapes; optionally replay them into a monitor.",
        epilog="Output is identical for the same --seed, --events, --start and --duration-s.",
    )
    add = p.add_argument
    add("--events", type=_at_least(0, int), default=10_000, help="total events, both sides")
    add("--seed", type=int, default=42)
    add("--out-dir", default="sample_logs", help="default: sample_logs/")
    add("--format", choices=("jsonl", "json"), default="jsonl", help="JSON Lines or one JSON array")
    add("--start", type=_timestamp_ms, help="first timestamp, ISO 8601 or epoch s (default: now - duration)")
    add(
        "--duration-s",
        type=_at_least(0.001),
        help="timestamp span (default 3600; with --post and a rate: events/rate from now)",
    )
    add("--inject", action="append", default=[], metavar="NAME[:ENDPOINT]", help=f"shape: {defaults}")
    add("--real-traffic", action="store_true", help=f"inject all of: {', '.join(REAL_TRAFFIC)}")
    add(
        "--browser-sample-rate",
        type=_share,
        default=1.0,
        metavar="RATE",
        help="the share of page sessions whose API calls the browser reports (events carry sample_rate)",
    )
    add("--post", metavar="URL", help="also replay the events into the monitor at URL")
    token = os.environ.get("LIVE_MONITOR_TOKEN")
    add("--token", default=token, help="bearer token of a monitor run with --token [env LIVE_MONITOR_TOKEN]")
    add("--rate", type=_at_least(0), default=500.0, help="events/s with --post (0 = no pacing)")
    add("--progress", action="store_true", help="progress on stderr even when it is not a terminal")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the generator; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        start_ms, duration_ms = _span_ms(args)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    options = {name: getattr(args, name) for name in _PLANNED}
    if args.real_traffic:
        options["inject"] = [*REAL_TRAFFIC, *(i for i in args.inject if i not in REAL_TRAFFIC)]
    try:
        return generate(Plan(**options, start_ms=start_ms, duration_ms=duration_ms))
    except (ValueError, OSError) as exc:  # ConnectionError is an OSError
        sys.stderr.write(f"\nerror: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130


def _span_ms(args: argparse.Namespace) -> tuple[int, int]:
    """The first timestamp and the span of the events in ms; ValueError if they leave years 1-9999."""
    live = bool(args.post and args.rate and args.duration_s is None)  # a replay in real time
    duration_s = args.events / args.rate if live else args.duration_s or 3600.0
    start_s = args.start / 1000 if args.start is not None else time.time() - (0 if live else duration_s)
    try:
        parse_time(start_s), parse_time(start_s + duration_s)
    except ValueError:
        raise ValueError("--start and --duration-s put the events outside years 1 to 9999") from None
    return (args.start if args.start is not None else int(start_s * 1000)), max(1, int(1000 * duration_s))


if __name__ == "__main__":
    sys.exit(main())
