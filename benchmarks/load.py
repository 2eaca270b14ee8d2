"""Load generation against 127.0.0.1 only, bounded in time (and count for the Python client).

``wrk`` (Debian's package; a Lua script sends the POST bodies and prints a JSON summary) is
used when installed: it is C and light, which matters with two cores. Otherwise a small
Python client runs in its own process: threads on persistent ``http.client`` connections.
``python benchmarks/load.py --url ... --seconds 3`` runs that client alone.

Both clients send one body, or rotate among several (one per request, in turn). With
``fresh_traces`` they also renew every ``"trace_id"`` on each request: its first 16 hex digits
become the run's random nonce and the request's number, so no trace id comes back during a
run (real traffic never repeats one) while a batch's halves of one trace still share theirs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRK_REQUEST = """
wrk.method = "@METHOD@"
wrk.headers["Content-Type"] = "application/json"
"""
WRK_BODIES = """
-- The bodies, each as its segments: table.concat(segments, id) puts the request's id in the
-- trace ids' first 16 hex digits (one segment and no id when the traces are not renewed).
-- Its locals stay in this block: the script appended below may use the same names.
do
  local bodies = {}
  local f = assert(io.open("@BODIES_FILE@", "rb"))
  local data = f:read("*a")
  f:close()
  local at = 1
  for _, lengths in ipairs(@LENGTHS@) do
    local segments = {}
    for j, n in ipairs(lengths) do
      segments[j] = data:sub(at, at + n - 1)
      at = at + n
    end
    bodies[#bodies + 1] = segments
  end
  wrk.body = table.concat(bodies[1], "@NONCE@00000000")  -- for a script's own wrk.format()
  local heads, turn, sent = {}, 0, 0
  function rotate()  -- the next request: a script's own request() may return rotate()
    turn = turn % #bodies + 1
    sent = sent + 1
    local body = table.concat(bodies[turn], string.format("@NONCE@%08x", sent % 4294967296))
    if not heads[turn] then heads[turn] = string.sub(wrk.format(nil, nil, nil, body), 1, -#body - 1) end
    return heads[turn] .. body
  end
end
request = rotate
"""
TRACE_ID = re.compile(rb'"trace_id": ?"()[0-9a-f]{16}()[0-9a-f]{16}"')
Bodies = bytes | Sequence[bytes] | None


def body_segments(body: bytes, fresh_traces: bool) -> list[bytes]:
    """``body`` cut where each trace id's first 16 hex digits go (which are left out), so that
    ``id.join(segments)`` is the body with every trace id renewed by ``id``; ``[body]`` when
    the traces are not renewed."""
    if not fresh_traces:
        return [body]
    segments, at = [], 0
    for match in TRACE_ID.finditer(body):
        segments.append(body[at : match.start(1)])
        at = match.start(2)
    segments.append(body[at:])
    return segments


def _as_list(body: Bodies) -> list[bytes]:
    if body is None:
        return []
    return [body] if isinstance(body, bytes) else list(body)


def _write_bodies(folder: Path, bodies: list[bytes], fresh_traces: bool) -> tuple[Path, list[list[int]]]:
    """The bodies' segments in one file, and each body's segment lengths."""
    cut = [body_segments(body, fresh_traces) for body in bodies]
    path = folder / "bodies.bin"
    path.write_bytes(b"".join(b"".join(segments) for segments in cut))
    return path, [[len(segment) for segment in segments] for segments in cut]


def _read_bodies(path: Path, lengths: list[list[int]]) -> list[list[bytes]]:
    data, at, out = path.read_bytes(), 0, []
    for sizes in lengths:
        segments = []
        for size in sizes:
            segments.append(data[at : at + size])
            at += size
        out.append(segments)
    return out


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
    body: Bodies = None,
    max_requests: int = 2_000_000,
    fresh_traces: bool = False,
) -> LoadResult:
    """Send requests to ``url`` for ``seconds`` on ``connections`` keep-alive connections, with
    ``body`` (one, or several sent in turn), renewing the trace ids on each request when
    ``fresh_traces`` (see the module's docstring)."""
    if client == "wrk":  # run_wrk checks the URL is loopback
        data = run_wrk(url, seconds, connections, WRK_SUMMARY, method, body, fresh_traces)
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
        bodies = _as_list(body)
        if bodies:
            path, lengths = _write_bodies(Path(tmp), bodies, fresh_traces)
            (Path(tmp) / "lengths.json").write_text(json.dumps(lengths))
            argv += ["--bodies-file", str(path), "--lengths-file", str(Path(tmp) / "lengths.json")]
            if fresh_traces:
                argv += ["--nonce", secrets.token_hex(4)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load client failed: {done.stderr.strip()[-400:]}")
        return LoadResult(**json.loads(done.stdout))


def run_wrk(
    url: str,
    seconds: float,
    connections: int,
    script: str,
    method: str = "GET",
    body: Bodies = None,
    fresh_traces: bool = False,
) -> dict[str, Any]:
    """Run ``wrk -t1`` for ``seconds`` on ``connections`` connections, sending ``method`` with
    ``body`` (one, or several in turn; trace ids renewed per request when ``fresh_traces``);
    ``script`` is Lua whose ``done()`` prints one ``WRKJSON {...}`` line: that JSON. A ``script``
    that defines its own ``request()`` sends the rotation's by returning ``rotate()`` (with
    ``wrk.format()`` it sends the first body, trace ids not renewed)."""
    _check_loopback(url)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = WRK_REQUEST.replace("@METHOD@", method)
        bodies = _as_list(body)
        if bodies:
            path, lengths = _write_bodies(Path(tmp), bodies, fresh_traces)
            table = "{" + ", ".join("{" + ", ".join(map(str, sizes)) + "}" for sizes in lengths) + "}"
            nonce = secrets.token_hex(4) if fresh_traces else ""
            lua += WRK_BODIES.replace("@BODIES_FILE@", str(path)).replace("@LENGTHS@", table)
            lua = lua.replace("@NONCE@", nonce)
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


class _Turns:
    """The Python client's bodies, handed out in turn to its threads, each with its request's
    trace-id prefix (the nonce and the request's number) when the traces are renewed."""

    def __init__(self, bodies: list[list[bytes]], nonce: str) -> None:
        self._bodies = bodies or [[b""]]
        self._nonce = nonce.encode()
        self._sent = 0

    def next(self) -> bytes:
        """The next request's body (called under the client's lock)."""
        self._sent += 1
        segments = self._bodies[self._sent % len(self._bodies) - 1]
        if len(segments) == 1:
            return segments[0]
        return (b"%s%08x" % (self._nonce, self._sent % 4294967296)).join(segments)


def python_client(
    url: str,
    seconds: float,
    connections: int,
    method: str,
    body: bytes | list[list[bytes]] | None,
    max_requests: int,
    nonce: str = "",
) -> LoadResult:
    """Threads on persistent connections; stops at ``seconds`` or ``max_requests``. ``body`` is
    one body or, as ``body_segments`` cut them, several sent in turn."""
    _check_loopback(url)
    parts = urlsplit(url)
    path = parts.path or "/"
    turns = _Turns([[body]] if isinstance(body, bytes) else body or [], nonce)
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
                data = turns.next() if body else None
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=data, headers=headers)
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
    parser.add_argument("--body-file", help="one body, sent on every request")
    parser.add_argument("--bodies-file", help="several bodies' segments (run_load writes it), sent in turn")
    parser.add_argument("--lengths-file", help="JSON: each body's segment lengths in --bodies-file")
    parser.add_argument("--nonce", default="", help="8 hex digits: renew the trace ids on each request")
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    body: bytes | list[list[bytes]] | None = None
    if args.body_file:
        body = Path(args.body_file).read_bytes()
    elif args.bodies_file:
        body = _read_bodies(Path(args.bodies_file), json.loads(Path(args.lengths_file).read_text()))
    try:
        result = python_client(
            args.url, args.seconds, args.connections, args.method, body, args.max_requests, args.nonce
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
