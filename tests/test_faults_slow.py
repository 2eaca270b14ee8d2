"""Slow clients against a real monitor process: they cannot lock anybody else out.

A crowd of half-open connections, some trickling one header line at a time (each line resets
waitress's inactivity timeout), some having sent nothing at all, used to fill waitress's 200
connections and keep ``/health`` from answering for as long as they stayed. Now the monitor
holds far more connections (2,048, on poll rather than select), cuts a request whose headers are
not in within --header-timeout, and at --max-connections closes the connection that has waited
longest for its request so that a new one gets in.
"""

from __future__ import annotations

import contextlib
import re
import resource
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import (
    ROOT,
    MonitorProcess,
    RedisServer,
    event,
    run_monitor,
    wait_for,
    worker_pids,
)

CROWD = 1100  # slow connections held at once: past select()'s 1,024 descriptors
HEADER_TIMEOUT = 5.0  # --header-timeout for these tests (the default is 10 s)
DRIP_SECONDS = 0.5  # a dripping client sends one header line this often
SILENT_SHARE = 4  # one connection in this many sends nothing at all
PAGE_ORIGIN = "http://localhost:3000"  # a page's origin the default --cors-origins allows


@pytest.fixture(autouse=True, scope="module")
def enough_open_files() -> None:
    """This test process holds the whole crowd: raise its own open-file soft limit (a hard limit
    too low for that fails the test: it could not show what it is about)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CROWD + 512
    if soft != resource.RLIM_INFINITY and soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, f"open-file hard limit {hard} < {needed}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class SlowCrowd:
    """``count`` slow clients of one monitor: most have sent a request line and then drip one
    header line every DRIP_SECONDS, never ending their headers; the rest sent nothing at all.
    Each records when the monitor closed it and what it was told first."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.opened: dict[socket.socket, float] = {}
        self.closed: dict[socket.socket, float] = {}
        self.answers: dict[socket.socket, bytes] = {}
        self._stop = threading.Event()
        for number in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.opened[sock] = time.monotonic()
            if number % SILENT_SHARE:
                sock.sendall(
                    f"POST /api/live-execution/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
                )
            sock.setblocking(False)
            self.sockets.append(sock)
        self._dripper = threading.Thread(target=self._drip, daemon=True)
        self._dripper.start()

    def dripping(self, sock: socket.socket) -> bool:
        return self.sockets.index(sock) % SILENT_SHARE != 0

    def _drip(self) -> None:
        """One more header line to every dripping client still open, every DRIP_SECONDS."""
        line = 0
        while not self._stop.wait(DRIP_SECONDS):
            line += 1
            for sock in self.sockets:
                if self.dripping(sock) and sock not in self.closed:
                    with contextlib.suppress(OSError):  # closed by the monitor meanwhile
                        sock.send(f"X-Drip-{line}: {'x' * 20}\r\n".encode())

    def read_closes(self, timeout: float, until: int) -> None:
        """Read what the monitor sends until ``until`` connections are closed or ``timeout``."""
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            if sock not in self.closed:
                selector.register(sock, selectors.EVENT_READ, sock)
        deadline = time.monotonic() + timeout
        while len(self.closed) < until and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                sock = key.data
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                self.answers[sock] = self.answers.get(sock, b"") + data
                if not data:
                    self.closed[sock] = time.monotonic()
                    selector.unregister(sock)
        selector.close()

    def close(self) -> None:
        self._stop.set()
        self._dripper.join(5)
        for sock in self.sockets:
            sock.close()


@contextlib.contextmanager
def slow_crowd(port: int, count: int) -> Iterator[SlowCrowd]:
    crowd = SlowCrowd(port, count)
    try:
        yield crowd
    finally:
        crowd.close()


def held(server: MonitorProcess) -> int:
    """Connections to the monitor's port that its serving process(es) hold open (accepted)."""
    pids = worker_pids(server) or [server.proc.pid]
    total = 0
    for pid in pids:
        for conn in psutil.Process(pid).net_connections("tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == server.port:
                total += 1
    return total


def health_and_ingest(server: MonitorProcess) -> tuple[int, int, int]:
    """A normal client's /health and one-event ingest: the two statuses and the events accepted."""
    health = requests.get(f"{server.url}/health", timeout=10)
    ingest = requests.post(
        f"{server.api}/events", json=[event("backend", "slow-test", "GET /orders", 12.0)], timeout=10
    )
    accepted = ingest.json().get("accepted", 0) if ingest.status_code == 200 else 0
    return health.status_code, ingest.status_code, accepted


@pytest.fixture(params=[1, 2], ids=["one-process", "workers-2"])
def slow_monitor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MonitorProcess]:
    """A monitor with a short --header-timeout: one process, or two workers on a real Redis."""
    args = ["--no-self-monitor", "--header-timeout", str(HEADER_TIMEOUT)]
    redis = None
    if request.param > 1:
        redis = RedisServer(tmp_path)
        redis.start()
        args += ["--workers", str(request.param), "--store", redis.url]
    try:
        with run_monitor(*args) as server:
            if request.param > 1:
                assert wait_for(lambda: len(worker_pids(server)) == request.param, timeout=20)
            yield server
    finally:
        if redis is not None:
            redis.stop()


def test_over_a_thousand_slow_connections_leave_health_and_ingest_answering_then_are_cut(slow_monitor):
    server = slow_monitor
    with slow_crowd(server.port, CROWD) as crowd:
        assert wait_for(lambda: held(server) >= CROWD, timeout=HEADER_TIMEOUT), (
            f"the monitor accepted {held(server)} of {CROWD} slow connections"
        )
        health, ingest, accepted = health_and_ingest(server)
        holding = held(server)  # the crowd is still held once the normal client is answered
        assert (health, ingest, accepted) == (200, 200, 1)
        assert holding >= CROWD
        crowd.read_closes(timeout=HEADER_TIMEOUT + 20, until=CROWD)
        lived = [crowd.closed[s] - crowd.opened[s] for s in crowd.closed]
        told = [crowd.answers[s] for s in crowd.closed if crowd.dripping(s)]
        silent = [crowd.answers[s] for s in crowd.closed if not crowd.dripping(s)]
        print(
            f"\n{CROWD} slow connections, {holding} held by the monitor at once: /health {health}, "
            f"ingest {ingest} ({accepted} accepted); cut at the {HEADER_TIMEOUT:g} s header deadline: "
            f"{len(crowd.closed)} ({len(told)} dripping, {len(silent)} silent), "
            f"after {min(lived):.1f}-{max(lived):.1f} s"
        )
    assert len(crowd.closed) == CROWD, f"{CROWD - len(crowd.closed)} slow connections still open"
    assert min(lived) >= HEADER_TIMEOUT  # none cut before its deadline
    assert all(answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for answer in told)
    assert all(b'{"error": "request not received in time' in answer for answer in told)
    assert silent == [b""] * len(silent)  # a client that sent nothing is closed without a word


def test_at_the_connection_limit_the_longest_waiting_make_room_for_a_new_client():
    """--max-connections 64, a header deadline far off, 200 slow connections: the monitor
    accepts them all in turn, each time closing the connection that has waited longest, so a
    normal client still gets in and is answered."""
    limit, crowd_size = 64, 200
    with (
        run_monitor(
            "--no-self-monitor", "--max-connections", str(limit), "--header-timeout", "600"
        ) as server,
        slow_crowd(server.port, crowd_size) as crowd,
    ):
        health, ingest, accepted = health_and_ingest(server)
        crowd.read_closes(timeout=20, until=crowd_size - limit)
        holding = held(server)
        print(
            f"\n{crowd_size} slow connections against --max-connections {limit}: /health {health}, "
            f"ingest {ingest} ({accepted} accepted); {len(crowd.closed)} oldest closed, "
            f"{holding} held"
        )
        assert (health, ingest, accepted) == (200, 200, 1)
        assert len(crowd.closed) >= crowd_size - limit
        assert holding <= limit
    # the first ones in (the longest waiting) went first, closed without a word
    assert set(crowd.closed) == set(crowd.sockets[: len(crowd.closed)])
    assert all(crowd.answers[s] == b"" for s in crowd.closed)
    warnings = [line for line in server.output if "closing the connections waiting longest" in line]
    assert len(warnings) == 1, server.output


@pytest.mark.parametrize(
    ("soft", "hard", "raised", "connections"),
    [(256, 4096, 2048 + 256, 2048), (512, 512, 512, 256)],
    ids=["raised-to-fit", "hard-limit-too-low"],
)
def test_the_open_file_limit_is_raised_to_fit_the_connections_or_they_are_lowered_once(
    soft, hard, raised, connections
):
    """The soft limit goes up toward the hard one as far as --max-connections (2,048) needs;
    where the hard limit is lower, the monitor serves fewer connections and says so once."""
    command = [
        "prlimit",
        f"--nofile={soft}:{hard}",
        sys.executable,
        "-u",
        str(ROOT / "live_execution_monitor.py"),
    ]
    with run_monitor(command=[*command, "--port", "0", "--no-self-monitor"]) as server:
        assert psutil.Process(server.proc.pid).rlimit(psutil.RLIMIT_NOFILE) == (raised, hard)
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        warnings = [line for line in server.output if "open files, but the limit is" in line]
    if connections == 2048:
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"serving at most {connections} connections" in warnings[0]


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (headers and Content-Length body) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"<closed>"
        assert not data.endswith(b"<closed>"), data
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_body_dripped_past_the_body_deadline_is_cut_and_an_idle_kept_alive_client_is_not():
    """--body-timeout 1: a client that sent its headers and drips its body gets a 408 once the
    body is a second late. A kept-alive client idle between requests for longer than both
    deadlines is still answered: idleness is waitress's inactivity timeout (30 s) alone."""
    with run_monitor("--no-self-monitor", "--header-timeout", "1", "--body-timeout", "1") as server:
        head = (
            f"POST /api/live-execution/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Origin: {PAGE_ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n["
        ).encode()
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=20) as kept,
            socket.create_connection(("127.0.0.1", server.port), timeout=20) as dripper,
        ):
            health = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
            kept.sendall(health)
            assert read_answer(kept).startswith(b"HTTP/1.1 200 ")
            dripper.sendall(head)
            started = time.monotonic()
            answer, drips = b"", 0
            dripper.settimeout(0.2)
            while time.monotonic() - started < 20:
                try:
                    chunk = dripper.recv(65536)
                except TimeoutError:
                    with contextlib.suppress(OSError):
                        dripper.sendall(b" ")  # one byte of body every 0.2 s
                        drips += 1
                    continue
                except ConnectionResetError:
                    break
                answer += chunk
                if not chunk:
                    break
            lived = time.monotonic() - started
            kept.sendall(health)  # after more than both deadlines of idleness
            again = read_answer(kept)
        print(f"\nbody dripped {drips} bytes, cut after {lived:.1f} s; idle kept-alive client answered")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    # a browser page reads the 408 (not a network error): it carries the CORS headers
    assert f"Access-Control-Allow-Origin: {PAGE_ORIGIN}\r\n".encode() in answer, answer
    assert lived >= 1.0
    assert again.startswith(b"HTTP/1.1 200 ")


MALFORMED = {
    "request line": b"GARBAGE\r\nHost: localhost\r\n\r\n",
    "header without a colon": b"GET /health HTTP/1.1\r\nHost: localhost\r\nNoColonHere\r\n\r\n",
    "space before a colon": b"GET /health HTTP/1.1\r\nHost : localhost\r\n\r\n",
    "Content-Length": b"POST /api/live-execution/events HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
}


def test_malformed_requests_are_answered_400_and_never_hold_a_connection():
    """A request waitress refuses before it has a path used to get no answer and keep its
    connection for good, past every deadline: enough of them refused every client. Each now
    gets a JSON 400 at once, and 60 of them against a limit of 16 connections leave /health up."""
    with run_monitor("--no-self-monitor", "--max-connections", "16") as server:
        for name, raw in MALFORMED.items():
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(raw)
                answer = read_answer(sock)
            assert re.match(rb"HTTP/1\.[01] 400 ", answer), (name, answer)
            assert b'{"error": ' in answer, (name, answer)
        for _ in range(15):
            socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
            for sock in socks:
                sock.sendall(MALFORMED["request line"])
                sock.close()
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        assert wait_for(lambda: not kept_sockets(server), timeout=10), kept_sockets(server)


def kept_sockets(server: MonitorProcess) -> list[str]:
    """The states of the sockets the monitor still holds on its port, the closed ones its
    clients left (CLOSE_WAIT) included; its listening socket aside."""
    return [
        conn.status
        for conn in psutil.Process(server.proc.pid).net_connections("tcp")
        if conn.laddr.port == server.port and conn.status not in (psutil.CONN_LISTEN, psutil.CONN_TIME_WAIT)
    ]
