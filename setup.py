"""Builds the browser assets before packaging when they are missing; the rest of the packaging is
declared in pyproject.toml.

static/live-monitor.js (the browser logger) and static/vendor/chart.umd.js (the dashboard's
charts) are built by npm from frontend_logging_config.ts and node_modules, and are not in git. A
build from a checkout or a git URL runs `npm ci` and `npm run build` when they are missing; the
sdist carries them, so an install from it needs no npm.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
BUILT = ("static/live-monitor.js", "static/live-monitor.mjs", "static/vendor/chart.umd.js")
NPM_STEPS = (["ci", "--no-audit", "--no-fund"], ["run", "build"])
HOW = "run `npm ci --no-audit --no-fund && npm run build` in the source tree first"


def missing_assets(root: Path = HERE) -> list[str]:
    """The built browser assets that are not there."""
    return [name for name in BUILT if not (root / name).is_file()]


def ensure_assets(root: Path = HERE) -> None:
    """Build the browser assets with npm when any is missing; raise SystemExit with one line
    that says what to run when npm or the sources to build from are not there."""
    missing = missing_assets(root)
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None or not (root / "package.json").is_file():
        reason = "npm is not on PATH" if npm is None else "package.json is not in the source tree"
        raise SystemExit(f"error: {', '.join(missing)} missing and {reason}: {HOW}")
    for step in NPM_STEPS:
        subprocess.run([npm, *step], cwd=root, check=True)
    if still := missing_assets(root):
        raise SystemExit(f"error: `npm run build` did not write {', '.join(still)}: {HOW}")


class BuildPyWithAssets(build_py):
    """build_py that builds the browser assets first, so that the wheel carries them."""

    def run(self) -> None:
        ensure_assets()
        self.data_files = self._get_data_files()  # list static/ again, with the assets now there
        super().run()


class SdistWithAssets(sdist):
    """sdist that builds the browser assets first, so that an install from it needs no npm."""

    def run(self) -> None:
        ensure_assets()
        super().run()


setup(cmdclass={"build_py": BuildPyWithAssets, "sdist": SdistWithAssets})
