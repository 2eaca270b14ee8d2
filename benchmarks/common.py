"""What every benchmark group shares: rows and targets, the run context, server processes,
realistic event batches and the machine description.

The machine is shared and noisy, so groups alternate the variants they compare within each
round and report medians of rounds; only ratios are judged against targets.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the probes of bench_system.py import this module: keep their imports lean
    import psutil

    from benchmarks.load import LoadResult

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SERVING = re.compile(r"serving on (http://\S+)", re.I)
API = "/api/live-execution"
EVENTS = API + "/events"
STATUS = API + "/status"
OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}


class BenchError(Exception):
    """A benchmark could not run (a tool missing, a server that did not start)."""


@dataclass(frozen=True)
class Target:
    """A bound on a row's ratio, e.g. ``Target(">=", 0.9)`` printed as ``>= 0.9x``."""

    op: str
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        """True when ``value`` satisfies the bound."""
        return bool(OPS[self.op](value, self.bound))

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"


@dataclass
class Row:
    """One line of the results table: what was measured, against what, and the verdict."""

    name: str
    what: str
    figure: str
    baseline: str
    ratio: float | None
    target: Target | None
    unit: str = "x"
    note: str = ""
    error: str = ""

    @property
    def verdict(self) -> str:
        """PASS, FAIL, ERROR, or "info" for a row printed without a target."""
        if self.error:
            return "ERROR"
        if self.target is None or self.ratio is None:
            return "info"
        return "PASS" if self.target.met(self.ratio) else "FAIL"

    @property
    def ratio_text(self) -> str:
        """The ratio as printed: ``1.23x`` (or ``0.04%`` for a share of a core)."""
        if self.ratio is None:
            return "-"
        number = f"{self.ratio:.3g}" if self.ratio < 100 else f"{self.ratio:,.0f}"
        return number + self.unit


@dataclass
class Context:
    """Run-wide settings and shared resources (servers, a temp dir) of one benchmark run."""

    quick: bool = False
    client: str = "auto"
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)
    notes: dict[str, str] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _shared: dict[str, Any] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick or the full value of a count."""
        return quick if self.quick else full

    def shared(self, key: str, make: Callable[[], contextlib.AbstractContextManager[Any]]) -> Any:
        """A resource made once per run (a sink monitor, an npm dir), closed at the end."""
        if key not in self._shared:
            self._shared[key] = self._stack.enter_context(make())
        return self._shared[key]

    def close(self) -> None:
        """Stop every shared server and remove temp dirs."""
        self._stack.close()
        self._shared.clear()


def median(values: Sequence[float]) -> float:
    """The median (the rounds' figures are noisy, the median is robust)."""
    return float(statistics.median(values))


def median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """The median over rounds of ``a[i] / b[i]``: both figures of a round were measured seconds
    apart, so the shared machine's slow drift cancels in each ratio (not in a ratio of medians)."""
    return median([x / y for x, y in zip(a, b, strict=True)])


def rotated(items: Sequence[Any], round_no: int) -> list[Any]:
    """``items`` rotated by the round number, so no variant always runs first."""
    k = round_no % len(items)
    return list(items[k:]) + list(items[:k])


def fmt_rate(value: float) -> str:
    """Events or requests per second, readable."""
    return f"{value:,.0f}/s"


def fmt_time(seconds: float) -> str:
    """A duration with a fitting unit."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


# --- realistic events ------------------------------------------------------------------------

ROUTES = [
    "GET /api/orders/:id",
    "GET /api/orders",
    "POST /api/orders",
    "GET /api/products",
    "GET /api/products/:id",
    "POST /api/cart",
    "DELETE /api/cart/:id",
    "GET /api/users/me",
    "POST /api/login",
    "GET /api/search",
]
COMPONENTS = ["Cart", "Checkout", "ProductList", "SearchBox", "OrderHistory"]


def make_events(n: int, seed: int = 1, start: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` realistic ExecutionEvents as JSON-ready dicts: backend requests, most of them with
    the browser's view of the same call (same route and trace id, a longer duration, and the
    server request's ``parent_span_id`` is the call's ``span_id``, as OpenTelemetry ties them),
    clicks without a duration, 3% errors, details with the HTTP status and route. Half of the
    requests without a browser call name an upstream caller's span as their parent."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC)
    out: list[dict[str, Any]] = []
    i = 0

    def stamp() -> str:
        ts = (start + timedelta(milliseconds=7 * i)).isoformat(timespec="milliseconds")
        return ts.replace("+00:00", "Z")

    while len(out) < n:
        i += 1
        if rng.random() < 0.1:
            component = rng.choice(COMPONENTS)
            target = f"button#{component.lower()}-submit"
            out.append(
                {
                    "timestamp": stamp(),
                    "service": "frontend",
                    "component": component,
                    "action": "click",
                    "status": "success",
                    "details": {"target": target},
                }
            )
            continue
        route = rng.choice(ROUTES)
        failed = rng.random() < 0.03
        trace = f"{rng.getrandbits(128):032x}"
        server_ms = round(rng.lognormvariate(3.2, 0.8), 3)
        call_span = f"{rng.getrandbits(64):016x}"
        browser = rng.random() < 0.8 and len(out) + 1 < n
        upstream = f"{rng.getrandbits(64):016x}" if rng.random() < 0.5 else None
        backend = {
            "timestamp": stamp(),
            "service": "backend",
            "component": "http",
            "action": route,
            "duration_ms": server_ms,
            "status": "error" if failed else "success",
            "details": {"http_status": 500 if failed else 200, "route": route.split(" ", 1)[1]},
            "trace_id": trace,
            "span_id": f"{rng.getrandbits(64):016x}",
        }
        parent = call_span if browser else upstream
        if parent is not None:
            backend["parent_span_id"] = parent
        out.append(backend)
        if browser:
            path = route.split(" ", 1)[1].replace(":id", str(rng.randint(1, 99999)))
            call = {
                **backend,
                "service": "frontend",
                "component": "api",
                "duration_ms": round(server_ms + rng.lognormvariate(2.5, 0.6), 3),
                "details": {"http_status": 500 if failed else 200, "url": path},
                "span_id": call_span,
            }
            call.pop("parent_span_id", None)
            out.append(call)
    return out


def batch_body(n: int = 100, seed: int = 1) -> bytes:
    """One ingest body: a JSON array of ``n`` realistic events."""
    return json.dumps(make_events(n, seed)).encode()


def batch_bodies(n_events: int, count: int, seed: int = 0) -> list[bytes]:
    """``count`` ingest bodies of ``n_events`` realistic events each, with distinct trace and
    span ids (and routes, timings): what a load run rotates among, so the server does not see
    one batch over and over. ``load.run_load(..., fresh_traces=True)`` renews the trace ids on
    every request too, since rotating alone still repeats them once per cycle."""
    return [batch_body(n_events, seed=(seed << 20) + k) for k in range(count)]


# --- server processes ------------------------------------------------------------------------


@dataclass
class Server:
    """A server started as a subprocess on a free port; ``url`` is its base URL."""

    name: str
    proc: subprocess.Popen[str]
    url: str

    def post(self, path: str, body: bytes = b"", timeout: float = 10.0) -> Any:
        """POST JSON and return the decoded answer."""
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str, timeout: float = 10.0) -> Any:
        """GET and return the decoded JSON answer."""
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read() or b"null")


def _wait_http(url: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise BenchError(f"{url} did not answer in time: {last}")


@contextlib.contextmanager
def start_server(name: str, argv: list[str], health: str = "/health") -> Iterator[Server]:
    """Run ``argv`` (which prints ``serving on http://...``), wait until ``health`` answers
    200, and stop it (SIGINT, then kill) on exit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(output) < 200:
                output.append(line)
            match = SERVING.search(line)
            if match and not found.is_set():
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True, name=f"pump-{name}").start()
    try:
        if not found.wait(30) or not url:
            raise BenchError(f"{name} did not start: {''.join(output)[-500:]}")
        _wait_http(url[0] + health, time.monotonic() + 20)
        yield Server(name, proc, url[0])
    finally:
        stop_process(proc, signal.SIGINT)


def stop_process(proc: subprocess.Popen[Any], sig: int) -> None:
    """Ask ``proc`` to stop with ``sig`` (SIGINT drains a waitress server), killing it when it
    has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds ``proc`` (all its threads) has used so far; a difference of two
    readings is what a server spent on a load run, whatever else the machine was doing."""
    times = proc.cpu_times()
    return float(times.user + times.system)


@dataclass
class Measured:
    """One load run and the CPU seconds the server's processes spent during it."""

    load: LoadResult
    server_cpu: float

    @property
    def per_cpu(self) -> float:
        """Good answers per CPU second of the server (robust to other processes' load)."""
        return self.load.ok / self.server_cpu if self.server_cpu > 0 else 0.0


def measure_load(
    procs: Sequence[psutil.Process],
    url: str,
    client: str,
    seconds: float,
    connections: int,
    method: str = "GET",
    body: bytes | Sequence[bytes] | None = None,
    fresh_traces: bool = False,
) -> Measured:
    """``run_load`` against a server whose processes are ``procs``, and the CPU they spent;
    ``body`` is one body or several sent in turn, see ``load.run_load``."""
    from benchmarks.load import run_load

    before = sum(cpu_seconds(p) for p in procs)
    load = run_load(url, client, seconds, connections, method, body, fresh_traces=fresh_traces)
    return Measured(load, sum(cpu_seconds(p) for p in procs) - before)


def vm_hwm(pid: int | str = "self") -> int:
    """A process's peak resident memory so far (VmHWM, in bytes), 0 once it is gone. Not
    ru_maxrss: a spawned child's starts at its parent's peak."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def monitor_argv(*flags: str) -> list[str]:
    """The real monitor CLI on a free port."""
    return [PYTHON, str(ROOT / "live_execution_monitor.py"), "--port", "0", *flags]


def sink_monitor(ctx: Context) -> Server:
    """The run's one monitor that instrumented apps ship their events to (self-monitoring off)."""
    return ctx.shared("sink-monitor", lambda: start_server("sink monitor", monitor_argv("--no-self-monitor")))


def helper_argv(kind: str, *flags: str) -> list[str]:
    """One of benchmarks/servers.py's comparison servers on a free port."""
    return [PYTHON, str(HERE / "servers.py"), kind, "--port", "0", *flags]


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory removed at the end of the run."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the machine -----------------------------------------------------------------------------

PY_PACKAGES = [
    "flask",
    "werkzeug",
    "flask-cors",
    "waitress",
    "msgspec",
    "psutil",
    "prometheus-client",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-wsgi",
    "numpy",
    "playwright",
]


def _run_text(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "not found"


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python and tool/package versions, date and commit."""
    from importlib import metadata

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = []
    for name in PY_PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "ram": ram,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python packages": ", ".join(versions),
        "node": _run_text(["node", "--version"]),
        "npm": _run_text(["npm", "--version"]),
        "wrk": _run_text(["wrk", "--version"]) if shutil.which("wrk") else "not installed",
        "chromium": _run_text(["/usr/bin/chromium", "--version"]),
        "commit": _run_text(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
    }
    return info
