"""Load generation against 127.0.0.1 only, bounded in time (and count for the Python client).

``wrk`` (Debian's package; a Lua script sends the POST body and prints a JSON summary) is
used when installed: it is C and light, which matters with two cores. Otherwise a small
Python client runs in its own process: threads on persistent ``http.client`` connections.
``python benchmarks/load.py --url ... --seconds 3`` runs that client alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRK_REQUEST = """
wrk.method = "@METHOD@"
wrk.headers["Content-Type"] = "application/json"
"""
WRK_BODY = """
local f = assert(io.open("@BODY_FILE@", "rb"))
wrk.body = f:read("*a")
f:close()
"""
WRK_SUMMARY = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass
class LoadResult:
    """What one load run saw: good (2xx) answers, errors, wall seconds, latency figures."""

    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def rate(self) -> float:
        """Good answers per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def pick_client(preference: str) -> str:
    """``wrk`` when asked for (or ``auto`` and installed), else ``python``."""
    if preference == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install -y wrk), use --client python")
    if preference == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return preference


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load is only ever sent to loopback, not {host!r}")


def run_load(
    url: str,
    client: str,
    seconds: float,
    connections: int = 8,
    method: str = "GET",
    body: bytes | None = None,
    max_requests: int = 2_000_000,
) -> LoadResult:
    """Send requests to ``url`` for ``seconds`` on ``connections`` keep-alive connections."""
    if client == "wrk":  # run_wrk checks the URL is loopback
        data = run_wrk(url, seconds, connections, WRK_SUMMARY, method, body)
        return LoadResult(
            ok=data["requests"] - data["status_errors"],
            errors=data["status_errors"] + data["socket_errors"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1e3,
            p99_ms=data["p99_us"] / 1e3,
            mean_ms=data["mean_us"] / 1e3,
        )
    _check_loopback(url)
    argv = [sys.executable, str(Path(__file__).resolve()), "--url", url, "--seconds", str(seconds)]
    argv += ["--connections", str(connections), "--method", method, "--max-requests", str(max_requests)]
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        if body:
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
            argv += ["--body-file", str(body_file)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load client failed: {done.stderr.strip()[-400:]}")
        return LoadResult(**json.loads(done.stdout))


def run_wrk(
    url: str, seconds: float, connections: int, script: str, method: str = "GET", body: bytes | None = None
) -> dict[str, Any]:
    """Run ``wrk -t1`` for ``seconds`` on ``connections`` connections, sending ``method`` with
    ``body``; ``script`` is Lua whose ``done()`` prints one ``WRKJSON {...}`` line: that JSON."""
    _check_loopback(url)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = WRK_REQUEST.replace("@METHOD@", method)
        if body:
            body_file = Path(tmp) / "body.json"
            body_file.write_bytes(body)
            lua += WRK_BODY.replace("@BODY_FILE@", str(body_file))
        script_file = Path(tmp) / "bench.lua"
        script_file.write_text(lua + script)
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
        argv += ["-s", str(script_file), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            return data
    raise RuntimeError(f"wrk gave no summary: {(done.stdout + done.stderr).strip()[-400:]}")


def python_client(
    url: str, seconds: float, connections: int, method: str, body: bytes | None, max_requests: int
) -> LoadResult:
    """Threads on persistent connections; stops at ``seconds`` or ``max_requests``."""
    _check_loopback(url)
    parts = urlsplit(url)
    path = parts.path or "/"
    headers = {"Content-Type": "application/json"} if body else {}
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    lock = threading.Lock()
    budget = [max_requests]
    started = time.perf_counter()
    deadline = started + seconds

    def worker(slot: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
        mine = latencies[slot]
        while time.perf_counter() < deadline:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                errors[slot] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    merged = sorted(x for slot in latencies for x in slot)
    if not merged:
        return LoadResult(0, sum(errors), elapsed, 0.0, 0.0, 0.0)

    def pct(q: float) -> float:
        return merged[min(len(merged) - 1, int(q * len(merged)))] * 1e3

    mean = sum(merged) / len(merged) * 1e3
    return LoadResult(len(merged), sum(errors), elapsed, pct(0.5), pct(0.99), mean)


def main(argv: list[str] | None = None) -> int:
    """Run the Python load client and print its result as JSON."""
    parser = argparse.ArgumentParser(prog="load.py", description="Bounded loopback load client.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file")
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    body = Path(args.body_file).read_bytes() if args.body_file else None
    try:
        result = python_client(args.url, args.seconds, args.connections, args.method, body, args.max_requests)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
