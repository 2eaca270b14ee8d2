"""Installs of the project, each in a fresh venv, run as a real process: the wheel built from a
checkout with the browser assets; the sdist built from one, installed with npm not on PATH; a
clean git clone without the assets, which the build makes with npm. And a clean source with no
npm fails with one line that says what to run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import urllib.request
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_monitor

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILT = (
    ROOT / "static" / "live-monitor.js",
    ROOT / "static" / "live-monitor.mjs",
    ROOT / "static" / "vendor" / "chart.umd.js",
)
NPM_HINT = "run `npm ci --no-audit --no-fund && npm run build`"


def run(
    command: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output when it fails."""
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or clean_env()
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the checkout leak into the venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def without_npm(bin_dir: Path) -> dict[str, str]:
    """clean_env() with only the venv's scripts on PATH, so that npm cannot be found."""
    env = {**clean_env(), "PATH": str(bin_dir)}
    assert shutil.which("npm", path=env["PATH"]) is None
    return env


def ensure_assets() -> None:
    """The dashboard's built files, built with npm when missing (as `make assets` does)."""
    if all(p.exists() for p in BUILT):
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to build static/live-monitor.js and static/vendor/chart.umd.js"
    run([npm, "ci", "--no-audit", "--no-fund"], ROOT, timeout=600)
    run([npm, "run", "build"], ROOT, timeout=600)
    assert all(p.exists() for p in BUILT)


def copy_sources(target: Path, assets: bool = True) -> None:
    """What a source checkout holds for packaging, without tests, node_modules or build output;
    with the built browser assets unless ``assets`` is false (a clean clone)."""
    target.mkdir()
    for pattern in ("*.py", "*.toml", "*.txt", "*.md", "*.html", "*.json", "*.ts", "MANIFEST.in"):
        for path in ROOT.glob(pattern):
            shutil.copy2(path, target / path.name)
    built = () if assets else ("live-monitor.*", "vendor")
    shutil.copytree(ROOT / "static", target / "static", ignore=shutil.ignore_patterns(*built))
    for folder in ("live_monitor", "frontend", "scripts"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__"))


def make_venv(base: Path) -> Path:
    """A fresh venv that sees this interpreter's packages (the dependencies) after its own;
    returns its scripts folder."""
    env_dir = base / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    # Under CI's own venv "system" site-packages is not where the dependencies are.
    site = run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], base
    )
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.stdout.strip()) / "_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    # Python 3.11's venv brings an old setuptools of its own, which would shadow ours (pinned in
    # requirements-dev.txt) when pip builds with --no-build-isolation.
    run([str(bin_dir / "python"), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], base)
    return bin_dir


def pip_install(bin_dir: Path, target: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    """pip install ``target`` into the venv; --no-index: nothing is downloaded, the dependencies
    (and setuptools, with --no-build-isolation) are this interpreter's."""
    command = [str(bin_dir / "python"), "-m", "pip", "install", "--no-index", "--no-build-isolation"]
    run([*command, target], cwd, env=env)


def build(hook: str, src: Path, out: Path, env: dict[str, str] | None = None) -> Path:
    """Call the PEP 517 hook (build_wheel, build_sdist) as a frontend would; returns the file."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    result = run([sys.executable, "-c", code], src, env=env)
    return out / result.stdout.strip().splitlines()[-1]


@dataclass
class Install:
    """An install in a fresh venv: its scripts folder, and the archive it came from if any."""

    bin_dir: Path
    archive: Path | None = None


def install_wheel(base: Path) -> Install:
    """A wheel built by pip from a copy of the checkout with its browser assets."""
    copy_sources(base / "src")
    dist = base / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    run([*pip_wheel, "--wheel-dir", str(dist), str(base / "src")], base)
    (wheel,) = dist.glob("*.whl")
    bin_dir = make_venv(base)
    pip_install(bin_dir, str(wheel), base)
    return Install(bin_dir, wheel)


def install_sdist(base: Path) -> Install:
    """The sdist of a copy of the checkout with its assets, installed where npm is not on PATH."""
    copy_sources(base / "src")
    sdist = build("build_sdist", base / "src", base / "dist")
    bin_dir = make_venv(base)
    pip_install(bin_dir, str(sdist), base, env=without_npm(bin_dir))
    return Install(bin_dir, sdist)


def install_git(base: Path) -> Install:
    """pip install git+file:// of a clean clone: no built assets, npm on PATH builds them."""
    repo = base / "repo"
    copy_sources(repo, assets=False)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clean clone"]):
        run([*git, *command], repo)
    bin_dir = make_venv(base)
    pip_install(bin_dir, f"git+{repo.as_uri()}", base)
    return Install(bin_dir)


INSTALLERS = {"wheel": install_wheel, "sdist": install_sdist, "git": install_git}
_installs: dict[str, Install] = {}


def get_install(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The install of ``kind``, made once for the session."""
    if kind not in _installs:
        ensure_assets()
        _installs[kind] = INSTALLERS[kind](tmp_path_factory.mktemp(kind))
    return _installs[kind]


@pytest.fixture(scope="module", params=sorted(INSTALLERS))
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Install:
    """Each way of installing the project, in its own fresh venv."""
    return get_install(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a checkout with the browser assets."""
    archive = get_install("wheel", tmp_path_factory).archive
    assert archive is not None
    return archive


def test_the_wheel_holds_every_module_the_dashboard_and_the_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.name for p in ROOT.glob("*.py")} - {"setup.py"}
    assert modules - names == set(), "add the missing modules to py-modules in pyproject.toml"
    # The page and static/ ride inside the package: nothing generic lands in site-packages.
    assert "live_monitor/live_execution_dashboard.html" in names
    static = {f"live_monitor/{p.relative_to(ROOT)}" for p in (ROOT / "static").rglob("*") if p.is_file()}
    assert static - names == set()
    assert {f"live_monitor/{p.relative_to(ROOT)}" for p in BUILT} <= names
    assert not {n for n in names if n.startswith("static/") or n == "live_execution_dashboard.html"}


def test_the_wheel_requires_exactly_requirements_txt(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    required = {line.split(": ", 1)[1] for line in lines if line.startswith("Requires-Dist: ")}
    required = {r for r in required if "extra ==" not in r}
    listed = {
        line.split("#", 1)[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    }
    assert required == listed


def test_the_sdist_carries_the_built_assets_and_what_they_are_built_from(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    sdist = get_install("sdist", tmp_path_factory).archive
    assert sdist is not None
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    built = {str(p.relative_to(ROOT)) for p in BUILT}
    sources = {
        "package.json",
        "package-lock.json",
        "frontend_logging_config.ts",
        "scripts/build-frontend.mjs",
    }
    assert built | sources | {"setup.py", "live_execution_dashboard.html"} <= names
    assert not any(name.startswith(("tests/", "node_modules/")) for name in names)


def test_a_clean_source_without_npm_fails_with_one_line_that_says_what_to_run(tmp_path: Path) -> None:
    copy_sources(tmp_path / "src", assets=False)
    empty = tmp_path / "no-npm-here"
    empty.mkdir()
    env = without_npm(empty)
    code = f"from setuptools import build_meta; build_meta.build_wheel({str(tmp_path / 'dist')!r})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "src",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "static/vendor/chart.umd.js" in errors[0] and "npm is not on PATH" in errors[0]
    assert NPM_HINT in errors[0]
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").glob("*.whl"))


def test_the_installed_modules_come_from_the_venv_not_the_checkout(
    installed: Install, tmp_path: Path
) -> None:
    result = run(
        [str(installed.bin_dir / "python"), "-c", "import live_execution_monitor as m; print(m.__file__)"],
        tmp_path,
    )
    location = Path(result.stdout.strip())
    assert location.parent.name == "site-packages"
    assert installed.bin_dir.parent in location.parents


@pytest.mark.parametrize("script", sorted(PYPROJECT["project"]["scripts"]))
def test_each_console_script_runs(installed: Install, tmp_path: Path, script: str) -> None:
    result = run([str(installed.bin_dir / script), "--help"], tmp_path, timeout=60)
    assert "usage:" in result.stdout


def test_live_monitor_serves_the_dashboard_and_its_assets_from_the_install(
    installed: Install, tmp_path: Path
) -> None:
    """The built assets served are byte for byte the checkout's (esbuild's output is
    deterministic, so a clean clone's build gives the same files)."""
    command = [str(installed.bin_dir / "live-monitor"), "--no-browser", "--no-install", "--port", "0"]
    env = without_npm(installed.bin_dir)
    with run_monitor(command=command, cwd=tmp_path, env=env, replace_env=True) as server:
        page = fetch(f"{server.url}/")
        assert page == (ROOT / "live_execution_dashboard.html").read_bytes()
        for asset in ("static/vendor/chart.umd.js", "static/live-monitor.js", "static/dashboard.js"):
            assert fetch(f"{server.url}/{asset}") == (ROOT / asset).read_bytes(), asset
        status = fetch(f"{server.api}/status")
        assert b'"monitoring":false' in status.replace(b" ", b"")


def fetch(url: str) -> bytes:
    """GET ``url``, which must answer 200; returns the body."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200, url
        return response.read()
