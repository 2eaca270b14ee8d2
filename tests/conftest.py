"""Shared fixtures: a real monitor process on a free port, a fake clock and a fake psutil reader."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_SERVING = re.compile(r"serving on (http://\S+)")


class MonitorProcess:
    """A monitor started as a real process; ``url`` is its base, ``api`` its API base."""

    def __init__(self, proc: subprocess.Popen[str], url: str, output: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.api = f"{url}/api/live-execution"
        self.output = output

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def wait_for_http(url: str, timeout: float = 15.0) -> None:
    """Poll ``url`` until it answers 200, or fail the test."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def run_monitor(
    *args: str,
    script: str = "live_execution_monitor.py",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    cwd: Path = ROOT,
    replace_env: bool = False,
) -> Iterator[MonitorProcess]:
    """Start ``script`` (or a whole ``command``) on a free port, wait until it answers, stop it.

    ``env`` adds to this process's environment, or replaces it with ``replace_env``.
    """
    command = command or [sys.executable, "-u", str(ROOT / script), "--port", "0", *args]
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(env or {}) if replace_env else {**os.environ, **(env or {})},
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            match = _SERVING.search(line)
            if match and not found.is_set():
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not found.wait(30) or not url:
            raise AssertionError("monitor did not start:\n" + "".join(output))
        wait_for_http(url[0] + "/health")
        yield MonitorProcess(proc, url[0], output)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def monitor_server() -> Iterator[MonitorProcess]:
    """A real monitor process (waitress) with self-monitoring off, so counts are exact."""
    with run_monitor("--no-self-monitor") as server:
        yield server


@pytest.fixture
def start_monitor() -> Callable[..., contextlib.AbstractContextManager[MonitorProcess]]:
    """Start a real monitor process with the given flags (use as a context manager)."""
    return run_monitor


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@contextlib.contextmanager
def launch_chromium(*required: str) -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright; fails (never skips) when it is missing.

    ``required`` names built files (relative to the repo) the test cannot run without.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does it)")
    for name in required:
        if not (ROOT / name).exists():
            pytest.fail(f"{name} is missing: run npm ci && npm run build")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeReader:
    """Scripted psutil readings: each call returns the next one (the last one repeats)."""

    def __init__(self, readings: list[dict[str, float]]) -> None:
        self.readings = readings
        self.calls = 0

    def __call__(self) -> dict[str, float]:
        reading = self.readings[min(self.calls, len(self.readings) - 1)]
        self.calls += 1
        return dict(reading)


def ev(**fields: Any) -> dict[str, Any]:
    """One valid event as a client would send it (a frontend API call), with ``fields`` changed."""
    base = {"service": "frontend", "component": "api", "action": "GET /api/orders/:id", "duration_ms": 12.5}
    base.update(fields)
    return base


def reading(**overrides: float) -> dict[str, float]:
    """One fake psutil reading with every counter the sampler expects."""
    base = {
        "cpu_percent": 10.0,
        "memory_percent": 50.0,
        "disk_read_bytes": 0.0,
        "disk_write_bytes": 0.0,
        "net_sent_bytes": 0.0,
        "net_recv_bytes": 0.0,
        "process_cpu_percent": 1.0,
        "process_rss_bytes": 50_000_000.0,
    }
    base.update(overrides)
    return base


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class RedisServer:
    """A real redis-server (Debian's package) on a free port, with an append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(
                "redis-server is missing: apt-get install -y redis-server (make test does it)"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis server for this test, stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
