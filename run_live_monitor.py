"""Launcher: installs what the monitor needs on first use, starts it and opens the dashboard.

``python run_live_monitor.py`` is the one command a newcomer runs. It uses only the
standard library until the requirements are in place, so it works on a fresh machine.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
import webbrowser

from live_monitor.install import ensure_assets, ensure_python_packages
from live_monitor.vocabulary import API, HEALTH_PATH


def wait_until_up(base: str, timeout: float = 15.0) -> bool:
    """Poll /health until the monitor answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}{HEALTH_PATH}", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def banner(base: str) -> str:
    """What the user sees once the monitor is up: the dashboard URL and curl lines to try."""
    api = f"{base}{API}"
    return "\n".join(
        [
            "",
            f"  Dashboard:  {base}/",
            "  Try:",
            f"    curl -X POST {api}/start",
            f"    curl {api}/data",
            f"    curl {api}/differences",
            f"    curl -X POST {api}/stop",
            "  Press Ctrl-C to stop.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Install on first use, serve the monitor and open the dashboard."""
    parser = argparse.ArgumentParser(
        prog="run_live_monitor.py",
        description="Start the Live Execution Monitor and open its dashboard. "
        "Every flag of live_execution_monitor.py is accepted too (listed below).",
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and the monitor's flags")
    parser.add_argument("--no-browser", action="store_true", help="do not open the dashboard")
    parser.add_argument("--no-install", action="store_true", help="never run pip or npm")
    args, rest = parser.parse_known_args(argv)
    if args.help:
        return _help(parser)
    if not ensure_python_packages(run=not args.no_install):
        return 1
    ensure_assets(run=not args.no_install)

    import live_execution_monitor as lem

    def ready(base: str) -> None:
        def announce() -> None:
            if not wait_until_up(base):
                return
            print(banner(base), flush=True)
            if not args.no_browser:
                webbrowser.open(f"{base}/")

        threading.Thread(target=announce, daemon=True).start()

    # The monitor's own main: same checks, warnings and --workers handling as its CLI.
    return lem.main(rest, ready=ready)


def _help(parser: argparse.ArgumentParser) -> int:
    """The launcher's flags, then the monitor's (once its requirements are installed)."""
    parser.print_help()
    if not ensure_python_packages(run=False):
        print("\nThe monitor's flags are listed once its requirements are installed (a first run).")
        return 0
    import live_execution_monitor as lem

    print("\nThe monitor's flags:\n")
    print(lem.build_parser().format_help().split("\n\n", 1)[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
