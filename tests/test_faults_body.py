"""Oversized bodies against a real monitor process: every sender reads the 413, never a reset.

A client that does not send ``Expect: 100-continue`` (most do not) writes its whole body
before it reads: the monitor must read that body to its end (and throw it away) before it
answers and closes, or the kernel resets the connection and the answer is lost.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator

import pytest
import requests
from google.rpc import status_pb2

from live_monitor.web import server as server_module
from live_monitor.web.app import create_app
from tests.helpers import MonitorProcess, run_monitor

MIB = 1_048_576
LIMIT = MIB  # the default --max-body-bytes
ORIGIN = "http://localhost:5173"  # allowed by the default --cors-origins
EVENTS = "/api/live-execution/events"
ATTEMPTS = {4 * MIB: 10, 64 * MIB: 3}
ROUTES = [
    (EVENTS, "application/json"),
    ("/v1/traces", "application/json"),
    ("/v1/traces", "application/x-protobuf"),
]

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def monitor() -> Iterator[MonitorProcess]:
    with run_monitor("--no-self-monitor") as server:
        yield server


def exchange(port: int, head: bytes, body: Iterable[bytes] = ()) -> tuple[bytes, Answer]:
    """Send ``head`` then every piece of ``body`` (without waiting for an answer, as most clients
    do), then read until the server closes: what came before the final answer, and the answer.

    A reset on the way raises ConnectionResetError or BrokenPipeError: the test fails on it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for piece in body:
            sock.sendall(piece)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    before, _, answer = received.rpartition(b"HTTP/1.1 ")
    head_text, _, content = answer.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    assert len(content) == int(headers["content-length"]), "the answer was cut short"
    return before, (int(lines[0].split()[0]), headers, content)


def request_head(path: str, content_type: str, framing: str) -> bytes:
    """A POST's request line and headers; ``framing`` is a Content-Length header line or chunked."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:1\r\nOrigin: {ORIGIN}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n"
    ).encode()


def whole(size: int) -> Iterator[bytes]:
    """``size`` bytes of body, a MiB at a time (the same buffer: the test holds no big body)."""
    piece = b" " * MIB
    for start in range(0, size, MIB):
        yield piece[: size - start] if size - start < MIB else piece


def chunked(size: int) -> Iterator[bytes]:
    """``size`` bytes in chunked transfer coding, a MiB a chunk, then the last chunk."""
    for piece in whole(size):
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def assert_refused_as_too_large(answer: Answer, content_type: str) -> None:
    """The monitor's own 413: its error body in the request's format, CORS for the allowed
    Origin, and the connection closed after it."""
    status, headers, content = answer
    assert status == 413, content
    assert headers["access-control-allow-origin"] == ORIGIN and headers["vary"] == "Origin"
    assert headers["connection"] == "close"
    if content_type == "application/x-protobuf":  # an OTLP exporter reads a google.rpc.Status
        message = status_pb2.Status.FromString(content).message
    else:
        message = json.loads(content)["error"]
    assert message == f"body too large: at most {LIMIT:,} bytes"


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
@pytest.mark.parametrize("size", sorted(ATTEMPTS))
@pytest.mark.parametrize("encoding", ["content-length", "chunked"])
def test_every_sender_of_a_body_over_the_limit_reads_the_413(monitor, path, content_type, size, encoding):
    if encoding == "chunked":
        head, body = request_head(path, content_type, "Transfer-Encoding: chunked\r\n"), chunked
    else:
        head, body = request_head(path, content_type, f"Content-Length: {size}\r\n"), whole
    refused = otlp_refused(monitor)
    for _ in range(ATTEMPTS[size]):
        before, answer = exchange(monitor.port, head, body(size))
        assert before == b""  # no 100 Continue: the client did not ask for one
        assert_refused_as_too_large(answer, content_type)
    if path != EVENTS:  # each reached the OTLP route, which counts it as refused
        assert otlp_refused(monitor) == refused + ATTEMPTS[size]


def otlp_refused(monitor: MonitorProcess) -> int:
    """OTLP trace exports refused as too large, as /status counts them."""
    return int(monitor.get("/status")["otlp"]["traces"]["refused"].get("too_large", 0))


def test_a_client_expecting_100_continue_gets_the_413_instead(monitor):
    """It waits for ``100 Continue`` before sending the body: it gets the 413 without sending it,
    whatever the length it announced."""
    for size in (4 * MIB, 64 * MIB, 1024 * MIB):
        head = request_head(EVENTS, "application/json", f"Content-Length: {size}\r\nExpect: 100-continue\r\n")
        before, answer = exchange(monitor.port, head)
        assert before == b""
        assert_refused_as_too_large(answer, "application/json")


def test_a_length_beyond_what_is_worth_reading_is_refused_at_once(monitor):
    """A body announced as longer than the limit plus 64 MiB is not read: the 413 comes at once
    (a client still sending may then be reset)."""
    head = request_head(EVENTS, "application/json", f"Content-Length: {LIMIT + 64 * MIB + 1}\r\n")
    before, (status, headers, content) = exchange(monitor.port, head)
    assert status == 413 and headers["access-control-allow-origin"] == ORIGIN
    assert (
        json.loads(content)["error"] == f"request body over the {LIMIT:,}-byte limit (see --max-body-bytes)"
    )


def test_a_body_of_exactly_the_limit_is_taken(monitor):
    event = {"service": "backend", "component": "api", "action": "GET /exact", "status": "success"}
    batch = json.dumps([event]).encode()
    batch += b" " * (LIMIT - len(batch))
    head = request_head(EVENTS, "application/json", f"Content-Length: {LIMIT}\r\nConnection: close\r\n")
    _, (status, _, content) = exchange(monitor.port, head, [batch])
    assert status == 200 and json.loads(content)["accepted"] == 1
    _, answer = exchange(
        monitor.port, head.replace(str(LIMIT).encode(), str(LIMIT + 1).encode()), [batch, b" "]
    )
    assert_refused_as_too_large(answer, "application/json")


def test_requests_reads_the_413_of_a_body_over_the_limit(monitor):
    """The ``requests`` library sends its body before it reads (no 100-continue), as most do."""
    for _ in range(5):
        answer = requests.post(
            monitor.url + EVENTS,
            data=b" " * (4 * MIB),
            headers={"Origin": ORIGIN, "Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 413 and answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.json() == {"error": f"body too large: at most {LIMIT:,} bytes"}


def test_a_body_still_arriving_at_the_deadline_is_cut_short_with_the_413(monkeypatch):
    """Past DISCARD_SECONDS the refused body is no longer read: what has come is dropped, the
    413 sent and the connection closed (set in the past here, so the first bytes are too late)."""
    monkeypatch.setattr(server_module, "DISCARD_SECONDS", -1.0)
    server = server_module.WaitressServer(create_app({"self_monitor": False}), "127.0.0.1", 0, 1, LIMIT)
    serving = threading.Thread(target=server.serve_forever, kwargs={"handle_signals": False}, daemon=True)
    serving.start()
    try:
        head = request_head(EVENTS, "application/json", f"Content-Length: {4 * MIB}\r\n")
        _, (status, headers, content) = exchange(server.port, head, [b" " * 1000])
    finally:
        server.stop()
        serving.join(30)
    assert status == 413 and headers["access-control-allow-origin"] == ORIGIN
    assert (
        json.loads(content)["error"] == f"request body over the {LIMIT:,}-byte limit (see --max-body-bytes)"
    )
