"""The real server under load and at shutdown: every event accounted for, no request reset."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from tests.helpers import ROOT, wait_for

BATCH = json.dumps(
    [{"service": "frontend", "component": "api", "action": "GET /api/items/:id", "duration_ms": 20.0}] * 50
).encode()


def post(port: int) -> int:
    """One POST on a fresh connection; returns the status (raises on a reset or a dropped response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/live-execution/events", BATCH, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_bounded_load_leaves_no_event_unaccounted(start_monitor):
    with start_monitor("--no-self-monitor", "--max-events", "1000") as server:
        sent = [0] * 8
        latencies: list[list[float]] = [[] for _ in range(8)]
        statuses: list[int] = []
        deadline = time.monotonic() + 3.0

        def client(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            for _ in range(400):
                if time.monotonic() > deadline:
                    break
                began = time.perf_counter()
                conn.request(
                    "POST", "/api/live-execution/events", BATCH, {"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                body = json.loads(response.read())
                latencies[i].append(time.perf_counter() - began)
                statuses.append(response.status)
                if response.status == 200:
                    sent[i] += body["accepted"]
            conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        conn.request("GET", "/api/live-execution/status")
        status = json.loads(conn.getresponse().read())
        all_latencies = sorted(x for per in latencies for x in per)
        p99 = all_latencies[int(0.99 * (len(all_latencies) - 1))] * 1000
        print(
            f"\nload: {sum(sent) / elapsed:,.0f} events/s, p99 {p99:.1f} ms, "
            f"median {statistics.median(all_latencies) * 1000:.1f} ms over {len(all_latencies)} requests"
        )
        assert set(statuses) <= {200, 503}
        assert status["accepted"] == sum(sent) > 0
        assert status["accepted"] == status["evicted"] + sum(status["stored"].values())
        assert status["received"] == status["accepted"] + status["rejected"]


def test_sigterm_mid_traffic_gives_responses_or_503_never_a_reset(start_monitor):
    with start_monitor("--no-self-monitor") as server:
        outcomes: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    code = post(server.port)
                except ConnectionRefusedError:
                    outcome = "refused"  # after the listener closed: no request was taken
                except OSError as exc:
                    outcome = f"reset: {exc!r}"
                except http.client.HTTPException as exc:
                    outcome = f"dropped: {exc!r}"
                else:
                    outcome = str(code)
                with lock:
                    outcomes.append(outcome)
                if outcome != "200":
                    return

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        while len(outcomes) < 60:
            time.sleep(0.005)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        stop.set()
        for t in threads:
            t.join()
        bad = [o for o in outcomes if o not in {"200", "503", "refused"}]
        assert bad == [], bad
        assert "503" in outcomes or "refused" in outcomes


WORKER = """
import os, signal, socket, sys
if "{env}" in os.environ:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    server.bind(("127.0.0.1", int(os.environ["{env}"])))
else:
    server = socket.socket(fileno=int(os.environ["{fd_env}"]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.listen()
os.write(1, b"WORKER up\\n")  # one write: print's two could interleave with the other worker's
while True:
    server.accept()[0].close()
"""
DRIVER = """
import sys
from live_monitor.web import server as monitor_server
ready = lambda base: print("READY", base, flush=True)
sys.exit(monitor_server.run_workers(sys.argv[1], [], "127.0.0.1", 0, 2, ready=ready))
"""


def test_workers_announce_the_port_once_it_answers_and_stop_on_ctrl_c(tmp_path):
    """run_workers, for real: two processes on one port, ``ready`` told once it accepts, and
    Ctrl-C followed at once by SIGTERM (as a terminal and a supervisor may send) stops it cleanly."""
    from live_monitor.web.server import LISTEN_FD_ENV, REUSEPORT_ENV

    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(env=REUSEPORT_ENV, fd_env=LISTEN_FD_ENV))
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(worker)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        lines: list[str] = []  # the parent's banner, READY, and each worker's "up", in any order
        while len([line for line in lines if line.startswith(("READY", "WORKER"))]) < 3:
            lines.append(driver.stdout.readline())
            assert lines[-1], f"the driver ended early: {lines}"
        ready = [line.split()[1] for line in lines if line.startswith("READY")]
        assert len(ready) == 1, lines
        port = int(ready[0].rsplit(":", 1)[1])
        assert port > 0 and ready[0] == f"http://127.0.0.1:{port}"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # it answers when announced
        driver.send_signal(signal.SIGINT)
        driver.send_signal(signal.SIGTERM)
        out, _ = driver.communicate(timeout=20)
        assert driver.returncode == 0 and "stopped" in out and "READY" not in out  # ready told once
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


def test_workers_on_a_port_in_use_get_a_clear_error(capsys):
    from live_monitor.web.server import run_workers

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert run_workers("never-started.py", [], "127.0.0.1", port, 2) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
        and "--port 0" in err
    )


def port_in_time_wait() -> int:
    """A port whose server closed a connection first and then stopped: the connection lingers
    in TIME_WAIT for a minute, as after stopping any monitor that had clients."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()
        assert client.recv(1) == b""
        client.close()
    return port


def test_workers_can_serve_a_port_a_stopped_server_just_used(monkeypatch):
    from live_monitor.web.server import REUSEPORT_ENV, inherited_socket

    port = port_in_time_wait()
    monkeypatch.setenv(REUSEPORT_ENV, str(port))
    sock = inherited_socket("127.0.0.1")  # what each --workers process binds
    assert sock is not None
    try:
        sock.listen()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        sock.close()


def test_a_signal_arriving_inside_the_stop_handler_cannot_deadlock_the_server():
    """Ctrl-C reaches every --workers process and the parent forwards a SIGTERM too: a second
    signal can run the handler again while the first is inside it, on the same thread. The
    handler must take no lock then; here the stop Event's own lock is held around the call."""
    from live_monitor.web.server import WaitressServer

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    server = WaitressServer(app, "127.0.0.1", 0, 1, 1024)
    returned = threading.Event()
    try:
        with server._stopping._cond:  # type: ignore[attr-defined]  # as if the first handler were inside Event.set
            worker = threading.Thread(
                target=lambda: (server._on_signal(signal.SIGTERM, None), returned.set()), daemon=True
            )
            worker.start()
            assert returned.wait(5), "the signal handler waited on a lock"
    finally:
        server.serve_forever(handle_signals=False)  # the signal stops it, after a drain, and closes it


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes): status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_requests_the_server_refuses_get_the_json_error_of_every_other_answer(start_monitor):
    with start_monitor("--no-self-monitor", "--max-body-bytes", "2000") as server:
        start = b"POST /api/live-execution/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        cases = [
            (start + b"Content-Length: 5000\r\n\r\n" + b" " * 5000, 413, "at most 2,000 bytes"),
            (
                start + b"Transfer-Encoding: chunked\r\n\r\n1000\r\n" + b" " * 4096 + b"\r\n0\r\n\r\n",
                413,
                "2,000",
            ),
            (start + b"Content-Length: abc\r\n\r\n", 400, "Bad Request"),
        ]
        for request, status, says in cases:
            got, headers, body = raw_exchange(server.port, request)
            assert got == status and headers["content-type"] == "application/json"
            assert says in json.loads(body)["error"]
        assert post(server.port) == 413  # BATCH is over 2,000 bytes: refused whole, nothing half-kept
        small = json.dumps([json.loads(BATCH)[0]]).encode()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/api/live-execution/events", small, {"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["accepted"] == 1
        conn.close()


def idle_server(header_timeout: float = 10.0) -> Any:
    """A WaitressServer on a free port answering 200, not yet serving."""
    from live_monitor.web.server import WaitressServer

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return WaitressServer(app, "127.0.0.1", 0, 2, 1024, header_timeout=header_timeout)


def test_an_idle_server_stops_on_a_signal_whichever_thread_the_signal_lands_on():
    """With no connection open the loop waits without a timeout (an idle monitor does not wake
    for it); a SIGTERM the OS hands to another thread must still wake it and stop it."""
    server = idle_server()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    rescued = threading.Event()

    def signal_another_thread() -> None:
        raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert wait_for(lambda: not server._server.active_channels)  # idle: nothing open
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # lands on this thread, not the loop's
        if not stopped.wait(10):  # the loop never woke: stop it so the test fails rather than hangs
            rescued.set()
            server.stop()

    stopped = threading.Event()
    signaller = threading.Thread(target=signal_another_thread, daemon=True)
    try:
        signaller.start()
        server.serve_forever()  # on the main thread: it handles SIGTERM
        stopped.set()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    signaller.join(15)
    assert not rescued.is_set(), "the SIGTERM did not wake the idle server loop"
    assert server._signalled


def test_a_deadline_is_enforced_for_a_connection_that_arrives_after_the_server_was_idle():
    """The loop waits for good while idle, yet a client that then sends half a request is
    still cut by --header-timeout (with the 408) and the server stops at once when asked."""
    server = idle_server(header_timeout=0.3)
    loop = threading.Thread(target=server.serve_forever, kwargs={"handle_signals": False}, daemon=True)
    loop.start()
    try:
        status, _, body = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (status, body) == (200, b"ok")
        assert wait_for(lambda: not server._server.active_channels)  # idle: the loop waits for good
        status, _, body = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert status == 408 and b"request not received in time" in body
        assert wait_for(lambda: not server._server.active_channels)
    finally:
        server.stop()
        loop.join(10)
    assert not loop.is_alive()
