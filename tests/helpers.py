"""What the tests share besides fixtures: real monitor and Redis processes on free ports, the
dashboard in headless Chromium, a stand-in ingest endpoint for backend_logging_config, event
builders, a fake clock and a fake psutil reader. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import venv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jsonschema_rs
import psutil
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client.parser import text_string_to_metric_families

from live_monitor.model.events import ExecutionEvent
from live_monitor.tools.render import SIDE_COLORS
from live_monitor.vocabulary import OPENAPI_PATH

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent


# -- processes ---------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Ask ``proc`` to stop with ``sig``, killing it when it has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


_SERVING = re.compile(r"serving on (http://\S+)")
GRPC_PORT_ENV = "LIVE_MONITOR_OTLP_GRPC_PORT"


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

    def stop(self) -> None:
        """Terminate the process (and kill it if it lingers)."""
        stop_process(self.proc, signal.SIGTERM)

    def post_events(self, events: list[dict[str, Any]]) -> None:
        """Ingest a batch through the REST API, as an instrumented app would; all must be accepted."""
        answer = requests.post(f"{self.api}/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(events), answer.text

    def get(self, path: str) -> Any:
        """GET an API path and return its JSON."""
        answer = requests.get(f"{self.api}{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()


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
    port: int = 0,
    restored: bool = True,
) -> Iterator[MonitorProcess]:
    """Start ``script`` (or a whole ``command``) on a free port, wait until it answers, stop it.

    ``env`` adds to this process's environment, or replaces it with ``replace_env``; ``port``
    restarts a monitor on the port a stopped one had. OTLP/gRPC is off unless ``env`` or
    ``args`` turn it on: its default port (4317) is one for the whole machine. With
    ``--persist`` the monitor serves at once and reads its journal back meanwhile: unless
    ``restored`` is False, this waits for ``/ready`` too, so the test sees every event.
    """
    command = command or [sys.executable, "-u", str(ROOT / script), "--port", str(port), *args]
    environ = dict(env or {}) if replace_env else {**os.environ, **(env or {})}
    environ.setdefault(GRPC_PORT_ENV, "0")
    proc = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ
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
        if restored and "--persist" in command:
            wait_for_http(url[0] + "/ready", timeout=60)
        yield MonitorProcess(proc, url[0], output)
    finally:
        stop_process(proc, signal.SIGTERM)


def bare_python(base: Path) -> Path:
    """The python of a fresh venv under ``base`` holding requirements.txt alone, as a user's
    first run installs it (pip's cache makes this a few seconds); nothing of this interpreter's
    packages is visible to it."""
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    command = [str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=bare_env(), check=False)
    assert result.returncode == 0, (
        f"pip install -r requirements.txt failed:\n{result.stdout}\n{result.stderr}"
    )
    return python


def bare_env() -> dict[str, str]:
    """This environment without what would let this interpreter's packages leak into a venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on."""
    return {
        c.laddr.port for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN
    }


def worker_pids(server: MonitorProcess) -> list[int]:
    """The worker processes of a ``--workers`` monitor."""
    return [child.pid for child in psutil.Process(server.proc.pid).children()]


def wait_for_workers(server: MonitorProcess, workers: int, port: int | None = None) -> list[int]:
    """The pids of all ``workers``, once each listens on ``port`` (the public one by default):
    the monitor says it is ready when its first worker is."""
    port = port or server.port
    assert wait_for(lambda: len(worker_pids(server)) == workers, timeout=20)
    pids = worker_pids(server)
    assert wait_for(lambda: all(port in listening_ports(pid) for pid in pids), timeout=20)
    return pids


@contextlib.contextmanager
def run_bare_monitor(python: Path, *args: str) -> Iterator[MonitorProcess]:
    """``python run_live_monitor.py`` (the README's first command) with ``python``, on a free
    port, without opening a browser or installing anything."""
    script = str(ROOT / "run_live_monitor.py")
    command = [str(python), "-u", script, "--no-browser", "--no-install", "--port", "0", *args]
    with run_monitor(command=command, env=bare_env(), replace_env=True) as server:
        yield server


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
def launch_chromium(*required: str) -> Iterator[Browser]:
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


# -- the dashboard in a real browser (test_dashboard*.py) -----------------------------------


def rgb(hex_colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as (red, green, blue)."""
    red, green, blue = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return red, green, blue


# the sides' colours, from the one palette (tests/test_palette.py: the dashboard's CSS and JS agree)
BACKEND_RGB = rgb(SIDE_COLORS["backend"])
FRONTEND_RGB = rgb(SIDE_COLORS["frontend"])


def stored_event(
    service: str = "backend",
    component: str = "http",
    action: str = "GET /x",
    duration: float | None = 10.0,
    status: str = "success",
    trace: str | None = None,
) -> ExecutionEvent:
    """One ExecutionEvent as a store keeps it, at a fixed time (the stores' tests use a fake clock)."""
    return ExecutionEvent(
        timestamp=1_800_000_000.0,
        service=service,  # type: ignore[arg-type]
        component=component,
        action=action,
        duration_ms=duration,
        status=status,  # type: ignore[arg-type]
        trace_id=trace,
    )


def event(
    service: str,
    component: str,
    action: str,
    duration_ms: float | None,
    status: str = "success",
    **details: Any,
) -> dict[str, Any]:
    """One ExecutionEvent as the API takes it, stamped now."""
    return {
        "timestamp": datetime.now(UTC).isoformat(),
        "service": service,
        "component": component,
        "action": action,
        "duration_ms": duration_ms,
        "status": status,
        "details": details,
    }


class Tab:
    """A page plus everything it logged, dialogs it opened and requests it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)
        page.on("request", lambda r: self.requests.append(r.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self, allow: re.Pattern[str] | None = None) -> None:
        """No console error (but those matching ``allow``), no uncaught exception, no dialog."""
        errors = [e for e in self.errors if not (allow and allow.search(e))]
        assert errors == [], errors
        assert self.dialogs == [], self.dialogs

    def assert_requests_only_to(self, *prefixes: str) -> None:
        """Every request the page made went to one of ``prefixes``."""
        strays = [u for u in self.requests if not u.startswith(prefixes)]
        assert strays == [], strays

    def chart_pixels(self, canvas_id: str, rgb: tuple[int, int, int]) -> dict[str, int]:
        """Painted pixels of a canvas and how many of them have colour ``rgb``."""
        return self.page.evaluate(
            """([id, rgb]) => {
                const c = document.getElementById(id);
                const {data} = c.getContext("2d").getImageData(0, 0, c.width, c.height);
                let painted = 0, colored = 0;
                for (let i = 0; i < data.length; i += 4) {
                    if (data[i + 3] > 0) painted++;
                    if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 8 &&
                        Math.abs(data[i + 1] - rgb[1]) < 8 && Math.abs(data[i + 2] - rgb[2]) < 8) colored++;
                }
                return {painted, colored, size: data.length / 4};
            }""",
            [canvas_id, list(rgb)],
        )

    def chart_data(self, canvas_id: str) -> dict[str, Any]:
        """Labels and datasets of the Chart.js chart drawn on a canvas."""
        return self.page.evaluate(
            """(id) => {
                const chart = Chart.getChart(document.getElementById(id));
                return {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data)};
            }""",
            canvas_id,
        )


def orders_batch(count: int = 20) -> list[dict[str, Any]]:
    """The README's example: backend calls at 125 ms, the same calls seen at 75 ms in the browser."""
    be = [event("backend", "http", "GET /api/orders/:id", 125.0, http_status=200) for _ in range(count)]
    fe = [event("frontend", "api", "GET /api/orders/:id", 75.0, http_status=200) for _ in range(count)]
    return be + fe


def table_row(page: Page, table_id: str, label: str) -> Any:
    """The row of table ``table_id`` whose text holds ``label``."""
    return page.locator(f"#{table_id} tbody tr", has_text=label)


# -- backend_logging_config (test_backend_logging_config*.py) -------------------------------

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # a W3C trace id and a parent span id, as a caller sends
PARENT = "00f067aa0ba902b7"


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class FakeMonitor:
    """A real HTTP server standing in for the monitor's ingest endpoint.

    ``script`` holds answers to give first, as ``(status, headers, json_body)``; after that
    every batch is accepted. ``stop()`` closes the port (connection refused), ``start()``
    reopens the same port.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, dict[str, Any]]] = []
        self.auth: list[str | None] = []
        self.script: list[tuple[int, dict[str, str], dict[str, Any] | None]] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with monitor.lock:
                    monitor.requests.append((time.monotonic(), self.path, body))
                    monitor.auth.append(self.headers.get("Authorization"))
                    status, headers, answer = monitor.script.pop(0) if monitor.script else (200, {}, None)
                if answer is None and status == 200:
                    answer = {"accepted": len(body["events"]), "rejected": 0, "errors": []}
                data = json.dumps(answer or {"error": "scripted"}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for _, _, body in self.requests for event in body["events"]]


class Recorder:
    """Stands in for a MonitorClient where only the recorded events matter."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def record(self, event: dict[str, Any]) -> bool:
        self.events.append(event)
        return True


# -- events, a fake clock and fake psutil readings ----------------------------------------------


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


# -- Redis -----------------------------------------------------------------------------------


class RedisServer:
    """A real redis-server (Debian's package) on a free port, with an append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
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
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)


class PrometheusServer:
    """A real Prometheus server (Debian's ``prometheus``) on a free port, its data in ``directory``,
    scraping what ``config`` (YAML text) names; ``query`` runs PromQL through its HTTP API."""

    def __init__(self, directory: Path, config: str) -> None:
        self.directory = directory
        self.config = config
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until ``/-/ready`` answers; fail when it is missing or dies."""
        import shutil

        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is missing: apt-get install -y prometheus (make test does it)")
        (self.directory / "prometheus.yml").write_text(self.config, encoding="utf-8")
        log = (self.directory / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ready = lambda: self.proc is None or self.proc.poll() is not None or _answers(f"{self.url}/-/ready")  # noqa: E731
        if not wait_for(ready, timeout=30) or self.proc.poll() is not None:
            raise AssertionError("prometheus did not start:\n" + self.log())

    def log(self) -> str:
        """What the server wrote so far."""
        return (self.directory / "prometheus.log").read_text(encoding="utf-8", errors="replace")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` gives now; a query Prometheus refuses fails the test."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- OTLP exports (test_web_otlp*.py) ---------------------------------------------------------------

API = "/api/live-execution"
KEY = "GET /api/orders/:id"
TRACE = "5b8efff798038103d269b633813fc60c"
START_NS = 1_800_000_000_123_000_000
SERVER, CLIENT, INTERNAL, PRODUCER = 2, 3, 1, 4  # OTLP span kinds


def attr(key, value):
    wrapped: dict[str, object]
    if isinstance(value, bool):
        wrapped = {"boolValue": value}
    elif isinstance(value, int):
        wrapped = {"intValue": str(value)}
    elif isinstance(value, float):
        wrapped = {"doubleValue": value}
    else:
        wrapped = {"stringValue": value}
    return {"key": key, "value": wrapped}


def span(kind, attrs, trace=TRACE, span_id="eee19b7ec3c1b174", duration_ms=12.5, **extra):
    body = {
        "traceId": trace,
        "spanId": span_id,
        "name": extra.pop("name", "GET"),
        "kind": kind,
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + round(duration_ms * 1e6)),
        "attributes": [attr(k, v) for k, v in attrs.items()],
    }
    body.update(extra)
    return body


def export(*spans, service="shop-api", browser=False):
    """An OTLP JSON trace export; ``browser``: from the web SDK (``telemetry.sdk.language`` webjs)."""
    resource = [attr("service.name", service)] + (
        [attr("telemetry.sdk.language", "webjs")] if browser else []
    )
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource},
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": list(spans)}],
            }
        ]
    }


def post(client, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body)
    headers.setdefault("Content-Type", "application/json")
    return client.post("/v1/traces", data=data, headers=headers)


def recent(client):
    return client.get(f"{API}/data?limit=50").json["recent_events"]


def span_counts(client):
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        if family.name == "live_monitor_otlp_spans":
            return {s.labels["outcome"]: s.value for s in family.samples}
    raise AssertionError("no live_monitor_otlp_spans in /metrics")


def proto_request(*spans):
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = resource_spans.resource.attributes.add(key="service.name")
    service.value.string_value = "proto-api"
    resource_spans.scope_spans.add().spans.extend(spans)
    return request.SerializeToString()


def proto_span(trace_id, kind=trace_pb2.Span.SpanKind.SPAN_KIND_SERVER):
    attrs = [
        common_pb2.KeyValue(key="http.request.method", value=common_pb2.AnyValue(string_value="PUT")),
        common_pb2.KeyValue(key="url.path", value=common_pb2.AnyValue(string_value="/api/orders/9")),
        common_pb2.KeyValue(key="http.response.status_code", value=common_pb2.AnyValue(int_value=502)),
    ]
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        name="PUT",
        kind=kind,
        start_time_unix_nano=START_NS,
        end_time_unix_nano=START_NS + 7_000_000,
        attributes=attrs,
    )


# -- a web app's own origin (test_web_otlp_browser.py) ----------------------------------------


class PageServer:
    """A web app's origin on a free port: ``files`` (path -> content type and bytes) and a small
    JSON API under ``/api/`` (GET and POST; a path ending in ``/0`` fails with 500), recording
    the ``traceparent`` of each API call."""

    def __init__(self, files: dict[str, tuple[str, bytes]]) -> None:
        self.files = files
        self.traceparents: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/api/"):
                    self._api()
                elif self.path in site.files:
                    self._send(200, *site.files[self.path])
                else:
                    self._send(404, "text/plain", b"not found")

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._api()

            def _api(self) -> None:
                site.traceparents.append(self.headers.get("traceparent") or "")
                status = 500 if self.path.split("?")[0].endswith("/0") else 200
                self._send(status, "application/json", json.dumps({"path": self.path}).encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def trace_ids(self) -> list[str]:
        """The trace ids the page's API calls carried (W3C traceparent: version-trace-span-flags)."""
        return [header.split("-")[1] for header in self.traceparents if header.count("-") == 3]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def log_record(attrs, severity=9, body="hello", trace=None, span_id=None, **extra):
    """One OTLP JSON log record (severity 9 is INFO, 17 ERROR)."""
    record = {
        "timeUnixNano": str(START_NS),
        "severityNumber": severity,
        "body": {"stringValue": body},
        "attributes": [attr(k, v) for k, v in attrs.items()],
    }
    if trace:
        record["traceId"] = trace
    if span_id:
        record["spanId"] = span_id
    record.update(extra)
    return record


def log_export(*records, service="shop-api", language="python"):
    """An ExportLogsServiceRequest in OTLP JSON."""
    resource = [attr("service.name", service), attr("telemetry.sdk.language", language)]
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource},
                "scopeLogs": [{"scope": {"name": "tests"}, "logRecords": list(records)}],
            }
        ]
    }


def post_logs(client, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body)
    headers.setdefault("Content-Type", "application/json")
    return client.post("/v1/logs", data=data, headers=headers)


def otlp_status(client):
    """The ``otlp`` field of /status: items by signal and outcome, refusals by reason."""
    return client.get(f"{API}/status").json["otlp"]


def refused_counts(text):
    """live_monitor_otlp_exports_refused_total samples of a /metrics text, by (signal, reason)."""
    for family in text_string_to_metric_families(text):
        if family.name == "live_monitor_otlp_exports_refused":
            return {(s.labels["signal"], s.labels["reason"]): s.value for s in family.samples}
    raise AssertionError("no live_monitor_otlp_exports_refused in /metrics")


def events_of(server, service_name):
    """The events a running monitor holds whose OTel resource was ``service_name``, oldest first."""
    answer = requests.get(f"{server.api}/data", params={"limit": 1000}, timeout=10)
    answer.raise_for_status()
    events = [e for e in answer.json()["recent_events"] if e["details"].get("service.name") == service_name]
    return sorted(events, key=lambda e: e["timestamp"])


# -- verdicts (test_core_monitor_verdicts.py, test_dashboard_verdicts.py) ----------------------

VERDICT_T0 = datetime.now(UTC)


def verdict_call(
    service: str, key: str, ms: float | None, i: int, trace: str | None, error: bool = False, **extra: Any
) -> dict[str, Any]:
    """One API call of a side (a server request or a browser call), ``i`` ms after ``VERDICT_T0``."""
    component = "http" if service == "backend" else "api"
    return {
        "timestamp": (VERDICT_T0 + timedelta(milliseconds=i)).isoformat(),
        "service": service,
        "component": component,
        "action": key,
        "duration_ms": ms,
        "status": "error" if error else "success",
        "trace_id": trace,
        "details": {"http_status": 500 if error else 200},
        **extra,
    }


def verdict_traffic() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(backend, frontend) events for the verdict tests: matched API calls with 7 hidden server
    errors in 120 on one endpoint and a tail-only slowdown on another, a browser-only endpoint,
    page noise on both sides."""
    backend: list[dict[str, Any]] = []
    frontend: list[dict[str, Any]] = []
    plan = [
        ("POST /api/cart", 120, 7, 0.0),
        ("GET /api/report", 100, 0, 1500.0),
        ("GET /api/items/:id", 40, 0, 0.0),
    ]
    n = 0
    for key, calls, errors, slow_ms in plan:
        for i in range(calls):
            n += 1
            trace = f"{n:032x}"
            backend.append(verdict_call("backend", key, 20.0 + i % 7, n, trace, error=i < errors))
            frontend.append(
                verdict_call("frontend", key, 60.0 + i % 7 + (slow_ms if i % 10 == 0 else 0.0), n, trace)
            )
    frontend += [verdict_call("frontend", "GET /api/legacy", 50.0, i, None) for i in range(30)]
    frontend += [
        {**verdict_call("frontend", "x", None, i, None), "component": "click", "action": "button"}
        for i in range(40)
    ]
    frontend += [
        {**verdict_call("frontend", "x", 2000.0, i, None), "component": "page", "action": "load"}
        for i in range(5)
    ]
    for path in ("/", "/static/app.js", "/favicon.ico"):
        backend += [verdict_call("backend", f"GET {path}", 3.0, i, None) for i in range(20)]
    return backend, frontend


# -- load and watchers for the fault suite (test_faults_*.py) ----------------------------------

FAULT_ID = "fault_id"  # the details key that carries each event's unique id


class IngestLoad:
    """``clients`` threads posting batches of ``batch`` backend events to ``base``'s ingest
    route until stopped, each event with a unique id in ``details[FAULT_ID]``.

    It keeps the ids an answer acknowledged (200 with every event accepted), how often each
    status came, and what must never happen (``failures``): a 5xx other than 503, a 503
    without Retry-After, another status, or no answer within ``timeout`` (a hang). A refused
    or reset connection is counted apart (``unanswered``): expected while a monitor is killed.
    """

    def __init__(
        self, base: str, *, clients: int = 4, batch: int = 10, tag: str = "c", timeout: float = 10.0
    ) -> None:
        self.url = f"{base}/api/live-execution/events"
        self.batch = batch
        self.timeout = timeout
        self.lock = threading.Lock()
        self.acked: set[str] = set()
        self.tried = 0
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self.unanswered = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(f"{tag}{i}",), daemon=True) for i in range(clients)
        ]

    def __enter__(self) -> IngestLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop posting and wait for the answers in flight (each bounded by ``timeout``)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
            if thread.is_alive():
                self.failures.append(f"{thread.name} still waiting for an answer: a hang")

    def wait_for_acks(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` more events than now are acknowledged, or fail the test."""
        target = len(self.acked) + count
        assert wait_for(lambda: len(self.acked) >= target, timeout=timeout), self.figures()

    def figures(self) -> str:
        """tried, acknowledged, unanswered, failed, and the statuses seen."""
        return (
            f"tried {self.tried}, acknowledged {len(self.acked)}, unanswered requests {self.unanswered}, "
            f"failed {len(self.failures)}, statuses {dict(sorted(self.statuses.items()))}"
        )

    def _run(self, name: str) -> None:
        with requests.Session() as session:
            for n in range(0, 1 << 62, self.batch):
                if self._stop.is_set():
                    return
                self._post(session, [f"{name}-{i}" for i in range(n, n + self.batch)])

    def _post(self, session: requests.Session, ids: list[str]) -> None:
        body = [{**event("backend", "fault", "post", 1.0), "details": {FAULT_ID: i}} for i in ids]
        with self.lock:
            self.tried += len(ids)
        try:
            answer = session.post(self.url, json=body, timeout=self.timeout)
        except requests.Timeout:
            with self.lock:
                self.failures.append(f"no answer within {self.timeout} s")
            return
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):  # refused, reset, cut
            with self.lock:
                self.unanswered += 1
            return
        status = answer.status_code
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200 and answer.json()["accepted"] == len(ids):
                self.acked.update(ids)
            elif status != 503:
                self.failures.append(f"{status}: {answer.text[:200]}")
            elif not answer.headers.get("Retry-After", "").isdigit():
                self.failures.append(f"503 without Retry-After: {answer.text[:200]}")


class RouteWatch:
    """A thread calling GET ``paths`` of ``base`` in turn until stopped, each on a fresh
    connection (spread over the workers), keeping the statuses each answered and what must
    never happen: a status outside ``allowed[path]``, a 503 without Retry-After, no answer
    within ``timeout``, a refused connection."""

    def __init__(self, base: str, allowed: dict[str, set[int]], timeout: float = 10.0) -> None:
        self.base = base
        self.allowed = allowed
        self.timeout = timeout
        self.seen: dict[str, dict[int, int]] = {path: {} for path in allowed}  # status -> times
        self.calls = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout * len(self.allowed) + 5)
        if self._thread.is_alive():
            self.failures.append("the watch is still waiting for an answer: a hang")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for path, allowed in self.allowed.items():
                self._call(path, allowed)

    def _call(self, path: str, allowed: set[int]) -> None:
        try:
            with requests.Session() as session:
                answer = session.get(f"{self.base}{path}", timeout=self.timeout)
        except requests.RequestException as exc:
            self.failures.append(f"GET {path}: {type(exc).__name__}")
            return
        self.calls += 1
        self.seen[path][answer.status_code] = self.seen[path].get(answer.status_code, 0) + 1
        if answer.status_code not in allowed:
            self.failures.append(f"GET {path}: {answer.status_code} {answer.text[:200]}")
        elif answer.status_code == 503 and not answer.headers.get("Retry-After", "").isdigit():
            self.failures.append(f"GET {path}: 503 without Retry-After")


def served_ids(base: str, limit: int = 100_000) -> set[str]:
    """The ``FAULT_ID``s of the events a monitor serves on ``/data`` (its own traffic left out)."""
    params: dict[str, str | int] = {"limit": limit, "include_self": "false", "history": 0}
    answer = requests.get(f"{base}/api/live-execution/data", params=params, timeout=30)
    answer.raise_for_status()
    return {e["details"][FAULT_ID] for e in answer.json()["recent_events"] if FAULT_ID in e["details"]}


class Receiver:
    """A webhook receiver: a tiny http.server on ``port`` (0: a free one) in a thread, recording
    every JSON body posted to it; ``answers`` are the statuses of the next posts (then 200)."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answers.pop(0) if receiver.answers else 200
                if status == 200:
                    receiver.posts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/T000/B000/secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# What the alert tests inject, and the ids of the two differences it opens.
SERVICE = "error_rate|service|"
ENDPOINT = "error_rate|endpoint|GET /api/pay"


def failing_payments(clock: FakeClock, n: int = 40) -> list[ExecutionEvent]:
    """An anomaly: the server fails half its GET /api/pay requests, the browser sees none fail."""
    events = []
    for i in range(n):
        status: Literal["success", "error"] = "error" if i % 2 else "success"
        events.append(
            ExecutionEvent(
                timestamp=clock(),
                service="backend",
                component="http",
                action="GET /api/pay",
                duration_ms=20.0,
                status=status,
            )
        )
        events.append(
            ExecutionEvent(
                timestamp=clock(),
                service="frontend",
                component="api",
                action="GET /api/pay",
                duration_ms=25.0,
            )
        )
    return events


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines file, one per line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def schema_validator(client: Any, name: str, closed: bool = False) -> Any:
    """A validator of the component ``name`` of the OpenAPI document the app serves; ``closed``:
    every object with properties takes no other field, so an answer's undescribed field fails."""
    components = client.get(OPENAPI_PATH).json["components"]
    if closed:
        close_schema(components)
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": components})


def close_schema(schema: Any) -> None:
    """Forbid other fields, in place, in every object schema of ``schema`` that lists properties."""
    if isinstance(schema, dict):
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            close_schema(value)
    elif isinstance(schema, list):
        for value in schema:
            close_schema(value)
