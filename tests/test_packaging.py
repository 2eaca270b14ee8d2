"""The wheel: built from the project, installed in a fresh venv, run as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import run_monitor

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILT = (ROOT / "static" / "live-monitor.js", ROOT / "static" / "vendor" / "chart.umd.js")


def run(command, cwd, timeout=300, env=None):
    """Run a command; fail the test with its output when it fails."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or clean_env()
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env():
    """The environment without anything that would let the checkout leak into the venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def ensure_assets():
    """The dashboard's built files, built with npm when missing (as `make assets` does)."""
    if all(p.exists() for p in BUILT):
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to build static/live-monitor.js and static/vendor/chart.umd.js"
    run([npm, "ci", "--no-audit", "--no-fund"], ROOT, timeout=600)
    run([npm, "run", "build"], ROOT, timeout=600)
    assert all(p.exists() for p in BUILT)


def copy_sources(target: Path) -> None:
    """What a source checkout holds for packaging, without tests, node_modules or build output."""
    target.mkdir()
    for pattern in ("*.py", "*.toml", "*.txt", "*.md", "*.html"):
        for path in ROOT.glob(pattern):
            shutil.copy2(path, target / path.name)
    shutil.copytree(ROOT / "static", target / "static")
    shutil.copytree(
        ROOT / "live_monitor", target / "live_monitor", ignore=shutil.ignore_patterns("__pycache__")
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built from a copy of the project, installed in a fresh venv.

    Returns (wheel path, the venv's bin dir, the copy the wheel was built from).
    """
    ensure_assets()
    base = tmp_path_factory.mktemp("packaging")
    copy_sources(base / "src")
    dist = base / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--wheel-dir", str(dist), str(base / "src")],
        base,
    )
    (wheel,) = dist.glob("*.whl")
    env_dir = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    # Under CI's own venv "system" site-packages is not where the dependencies are: let the
    # new venv see this interpreter's packages too, after its own.
    site = run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], base
    )
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.stdout.strip()) / "_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    # --no-index: the dependencies must already be satisfied, nothing is downloaded
    run([str(bin_dir / "python"), "-m", "pip", "install", "--no-index", str(wheel)], base)
    return wheel, bin_dir, base / "src"


def test_the_wheel_holds_every_module_the_dashboard_and_the_static_files(installed):
    wheel, _, src = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.name for p in src.glob("*.py")}
    assert modules - names == set(), "add the missing modules to py-modules in pyproject.toml"
    assert "live_execution_dashboard.html" in names
    static = {str(p.relative_to(src)) for p in (src / "static").rglob("*") if p.is_file()}
    assert static - names == set()


def test_the_wheel_requires_exactly_requirements_txt(installed):
    wheel, _, src = installed
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    required = {line.split(": ", 1)[1] for line in lines if line.startswith("Requires-Dist: ")}
    required = {r for r in required if "extra ==" not in r}
    listed = {
        line.split("#", 1)[0].strip()
        for line in (src / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    assert required == listed


def test_the_installed_modules_come_from_the_venv_not_the_checkout(installed, tmp_path):
    _, bin_dir, _ = installed
    result = run(
        [str(bin_dir / "python"), "-c", "import live_execution_monitor as m; print(m.__file__)"], tmp_path
    )
    location = Path(result.stdout.strip())
    assert location.parent.name == "site-packages"
    assert bin_dir.parent in location.parents


@pytest.mark.parametrize("script", sorted(PYPROJECT["project"]["scripts"]))
def test_each_console_script_runs(installed, tmp_path, script):
    _, bin_dir, _ = installed
    result = run([str(bin_dir / script), "--help"], tmp_path, timeout=60)
    assert "usage:" in result.stdout


def test_live_monitor_serves_the_dashboard_and_its_assets_from_the_installed_wheel(installed, tmp_path):
    _, bin_dir, src = installed
    command = [str(bin_dir / "live-monitor"), "--no-browser", "--no-install", "--port", "0"]
    with run_monitor(command=command, cwd=tmp_path, env=clean_env(), replace_env=True) as server:
        page = fetch(f"{server.url}/")
        assert page == (src / "live_execution_dashboard.html").read_bytes()
        for asset in ("static/vendor/chart.umd.js", "static/live-monitor.js", "static/dashboard.js"):
            assert fetch(f"{server.url}/{asset}") == (src / asset).read_bytes(), asset
        status = fetch(f"{server.api}/status")
        assert b'"monitoring":false' in status.replace(b" ", b"")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, url
        return response.read()
