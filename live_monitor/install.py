"""First-run install: the Python packages and the browser assets the monitor needs.

Standard library only, so both entry files (the launcher and the monitor run directly) can
call it on a fresh machine before anything else is importable.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

DASHBOARD = "live_execution_dashboard.html"
_PACKAGE = Path(__file__).resolve().parent
# Where the dashboard page and static/ are. In a checkout they sit beside the package, with
# requirements.txt and package.json. An installed wheel carries them inside the package and has
# its requirements and built assets already, so nothing is ever installed or built there.
ROOT = _PACKAGE.parent if (_PACKAGE.parent / DASHBOARD).is_file() else _PACKAGE
REQUIRED_MODULES = (
    "flask",
    "flask_cors",
    "psutil",
    "msgspec",
    "waitress",
    "prometheus_client",
    "redis",
    "grpc",
    "opentelemetry.proto.collector.trace.v1",
)
BUILT_ASSETS = (ROOT / "static" / "live-monitor.js", ROOT / "static" / "vendor" / "chart.umd.js")


def missing_modules(modules: tuple[str, ...] = REQUIRED_MODULES) -> list[str]:
    """The required modules this interpreter cannot import (a dotted name whose parent package
    is missing counts as missing, where find_spec would raise)."""
    return [m for m in modules if not _importable(m)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def ensure_python_packages(run: bool = True) -> bool:
    """Install requirements.txt into this interpreter when a required module is missing."""
    missing = missing_modules()
    if not missing:
        return True
    if not run:
        print(f"missing Python packages: {', '.join(missing)}", file=sys.stderr)
        return False
    print(f"First run: installing {', '.join(missing)} from requirements.txt ...", flush=True)
    command = [sys.executable, "-m", "pip", "install", "-r", str(ROOT / "requirements.txt")]
    if subprocess.call(command) != 0:
        print("error: pip could not install requirements.txt (see above)", file=sys.stderr)
        return False
    importlib.invalidate_caches()
    return not missing_modules()


def ensure_assets(run: bool = True) -> bool:
    """Build the browser logger and fetch Chart.js with npm when the built files are missing."""
    if all(p.exists() for p in BUILT_ASSETS):
        return True
    npm = shutil.which("npm")
    if not run or npm is None:
        print(
            "warning: the dashboard's charts and the browser logger are not built "
            "(needs Node.js and npm: run `npm ci && npm run build`)",
            file=sys.stderr,
        )
        return False
    print("First run: building the dashboard assets with npm ...", flush=True)
    for step in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        if subprocess.call([npm, *step], cwd=ROOT) != 0:
            print(f"warning: `npm {' '.join(step)}` failed; charts will be missing", file=sys.stderr)
            return False
    return all(p.exists() for p in BUILT_ASSETS)
