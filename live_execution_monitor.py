"""The Live Execution Monitor's command line, and the names the README imports from it.

``main`` checks the settings and serves the monitor with waitress (``--debug`` uses Flask's
debugger, on loopback only). Run ``python live_execution_monitor.py --help`` for every setting.
"""

from __future__ import annotations

if __name__ == "__main__":  # run directly: install what is missing on first use, as the launcher does
    from live_monitor.install import ensure_python_packages

    if not ensure_python_packages():
        raise SystemExit(1)

import argparse
import sys
from collections.abc import Callable

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import add_arguments, check_settings, is_loopback, resolve
from live_monitor.model.events import ExecutionEvent
from live_monitor.web.app import create_app
from live_monitor.web.server import serve, serve_workers

__all__ = ["LiveExecutionMonitor", "ExecutionEvent", "build_parser", "create_app", "main", "serve"]


def build_parser() -> argparse.ArgumentParser:
    """The monitor's command line: one flag per setting of the settings table (SETTINGS)."""
    parser = argparse.ArgumentParser(
        prog="live_execution_monitor.py",
        description="Serve the Live Execution Monitor: REST API, dashboard and event ingest.",
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None, *, ready: Callable[[str], None] | None = None) -> int:
    """Run the monitor from the command line; ``ready`` gets the public URL once it accepts connections.

    The launcher (run_live_monitor.py) calls this too, so both check and serve the same way.
    """
    args = build_parser().parse_args(argv)
    try:
        settings = resolve(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = check_settings(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(settings["host"]):
        print(f"warning: listening on {settings['host']}: every API call needs the token", file=sys.stderr)
    if settings["workers"] > 1:
        return serve_workers(__file__, settings, list(argv if argv is not None else sys.argv[1:]), ready)
    return serve(settings, ready=ready)


if __name__ == "__main__":
    sys.exit(main())
