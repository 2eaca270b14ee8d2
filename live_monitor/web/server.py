"""Serving the monitor's WSGI app with waitress, and shutting down without dropping requests.

``serve(settings)`` builds the app and serves it in this process, with OTLP/gRPC on a second
port (``--otlp-grpc-port``); ``--workers N`` starts N such processes on the same two ports
(``serve_workers``).

On SIGTERM or Ctrl-C the server answers new requests with 503 and ``Retry-After``
for a short grace period, lets the requests in flight finish and flushes their responses,
then stops listening: a client sees a response or a 503, never a reset.

A body over --max-body-bytes is read and thrown away before the 413 (``_Parser``), so a client
still sending it reads the answer rather than a reset.

While no connection is open the server loop blocks without a timeout, so an idle
monitor does not wake for it (a new connection, stop() and signals wake it).
Slow clients cannot lock others out: the server loop polls (``select()`` fails past 1,024
descriptors), the open-file limit is raised to fit --max-connections, a request's headers are due
within --header-timeout and its body within --body-timeout (waitress's own timeout counts only
inactivity, which one byte every few seconds resets), and at the connection limit the connection
waiting longest for its request is closed to make room for a new one (``_Channel``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

try:
    import resource
except ImportError:  # Windows: no open-file limit to raise
    resource = None  # type: ignore[assignment]

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.trigger import trigger
from waitress.utilities import RequestEntityTooLarge

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import BY_NAME
from live_monitor.store.journal import JournalError
from live_monitor.vocabulary import is_own_path
from live_monitor.web.access import Access, cors_headers
from live_monitor.web.app import create_app
from live_monitor.web.otlp import SIGNALS
from live_monitor.web.otlp_grpc import OtlpGrpcServer, port_taken

log = logging.getLogger("live_execution_monitor")

GRACE_SECONDS = 1.0
DRAIN_SECONDS = 10.0
GIL_SWITCH_INTERVAL_S = 0.02
# A body over --max-body-bytes is read and thrown away, up to this many bytes beyond the limit
# and for this long (a lingering close, as nginx's lingering_time), so that its sender reads the
# 413; past either the 413 is sent at once and the connection closed (the kernel resets it if
# the client is still sending).
DISCARD_BYTES = 64 * 1_048_576
DISCARD_SECONDS = 30.0
# How often the loop looks for requests past their deadline (--header-timeout, --body-timeout).
DEADLINE_CHECK_SECONDS = 0.5
# Descriptors a process needs beyond its connections: files, the journal, Redis, OTLP/gRPC, pipes.
SPARE_DESCRIPTORS = 256
# waitress's inactivity timeout: a connection idle between requests is closed after it.
IDLE_SECONDS = 30
# At --max-connections, a warning at most this often (with the connections closed so far).
CROWDED_WARNING_SECONDS = 60.0


class _Sink:
    """A body buffer that keeps nothing: the chunks of a body being thrown away go here."""

    def append(self, data: bytes) -> None:
        """Forget ``data``."""

    def close(self) -> None:
        """Nothing to free."""


class _Parser(HTTPRequestParser):
    """waitress's request parser, except that a body over the limit is read and thrown away.

    waitress refuses such a body as soon as it knows, answers 413 and closes the connection with
    the rest of the body unread; the kernel then resets the connection, and a client still
    sending (any client not using ``Expect: 100-continue``) never reads the answer. Here the
    body is read to its end and discarded (within DISCARD_BYTES and DISCARD_SECONDS), then the
    request goes to the app with its length and no bytes: every route refuses a length over
    --max-body-bytes with its own 413 (JSON, protobuf for a protobuf OTLP export; CORS headers
    for an allowed Origin), and the connection closes after that answer. A client expecting
    ``100-continue`` gets the 413 at once, without the body.
    """

    expect_continue: bool  # waitress's, typed here
    body_rcv: Any  # waitress's receiver of the body (fixed length or chunked), None without a body
    # A request refused before its request line was read (a malformed one) has no path of its
    # own; without one, answering it (and waitress's logging of it) would raise, leaving the
    # client unanswered and the connection held for good.
    path = ""
    discarding = False
    deadline = 0.0
    body_since = 0.0  # when the headers were in: the body is due within --body-timeout

    def received(self, data: bytes) -> int:
        """Feed ``data`` to the request; the bytes consumed (see HTTPRequestParser.received)."""
        if self.discarding:
            return self._discard(data)
        consumed: int = super().received(data)
        if self.headers_finished and not self.body_since:
            self.body_since = time.monotonic()
        if isinstance(self.error, RequestEntityTooLarge):
            self._refuse()
        return consumed

    def _refuse(self) -> None:
        """The body is over the limit: hand the request over at once when the client waits for a
        100 Continue (it gets the 413 instead) or the chunked body has just ended, else discard
        the body first; keep waitress's 413 and close when its length is beyond reading."""
        expecting = self.expect_continue
        self.expect_continue = False  # waitress would send a 100 Continue for it
        receiver = self.body_rcv
        if expecting or (self.chunked and receiver.completed):
            self._hand_over()
        elif self.chunked and receiver.error is None:
            self._start_discarding()
            receiver.buf.close()  # what the receiver held is freed, and it reads on
            receiver.buf = _Sink()
        elif not self.chunked and self.content_length <= self._longest_read():
            self._start_discarding()

    def _longest_read(self) -> int:
        """The longest refused body read to its end: DISCARD_BYTES beyond --max-body-bytes."""
        limit: int = self.adj.max_request_body_size - 1  # see WaitressServer
        return limit + DISCARD_BYTES

    def _start_discarding(self) -> None:
        self.error, self.completed, self.discarding = None, False, True
        self.deadline = time.monotonic() + DISCARD_SECONDS

    def _discard(self, data: bytes) -> int:
        """Read ``data`` of the refused body and throw it away; the bytes consumed."""
        if self.chunked:
            receiver = self.body_rcv
            consumed = receiver.received(data)
            ended, broken = receiver.completed, receiver.error is not None
        else:
            consumed = min(len(data), self.content_length - self.body_bytes_received)
            ended, broken = self.body_bytes_received + consumed == self.content_length, False
        self.body_bytes_received += consumed
        if ended:
            self._hand_over()
        elif broken or self.body_bytes_received > self._longest_read() or time.monotonic() > self.deadline:
            return self._give_up(len(data))
        return consumed

    def _give_up(self, consumed: int) -> int:
        """Stop reading: waitress's own 413 (``_JsonErrorTask``), then the connection closes;
        the rest of ``data`` counts as consumed, so it is not read as a next request."""
        limit = self.adj.max_request_body_size
        self.error = RequestEntityTooLarge(f"exceeds max_body of {limit}")
        self.discarding, self.completed = False, True
        return consumed

    def _hand_over(self) -> None:
        """Complete the request without its body: its length (over the limit) tells the app
        to answer 413, and the connection closes after the answer."""
        if self.chunked:  # what was read of it: over the limit, as waitress counts
            self.headers["CONTENT_LENGTH"] = str(self.body_bytes_received)
        self.headers["CONNECTION"] = "close"
        receiver = self.body_rcv
        if receiver is not None:
            receiver.getbuf().close()
        self.body_rcv = None  # the app reads an empty body
        self.error, self.discarding, self.completed = None, False, True


class _JsonErrorTask(ErrorTask):
    """waitress's own answers to requests it refuses before the app sees them (a body over
    --max-body-bytes, a malformed request line or Content-Length) in the monitor's JSON
    ``{"error": ...}`` rather than waitress's plain text."""

    def execute(self) -> None:
        error = self.request.error
        message = f"{error.reason}: {error.body}"
        if error.code == 413:
            limit = self.channel.server.adj.max_request_body_size - 1  # see WaitressServer
            message = f"request body over the {limit:,}-byte limit (see --max-body-bytes)"
        body = json.dumps({"error": message}).encode() + b"\n"
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
        )
        self.response_headers.extend(_cors_for(self.channel.server, self.request))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _cors_for(server: Any, request: Any) -> list[tuple[str, str]]:
    """The CORS headers the app would give an answer to ``request`` that waitress or the
    channel writes itself: on the routes where the app answers CORS, for an allowed Origin."""
    access: Access | None = getattr(server, "access", None)
    path = request.path or ""
    if access is None or not (is_own_path(path) or path in SIGNALS):
        return []
    return cors_headers(access, request.headers.get("ORIGIN"))


class _Channel(HTTPChannel):
    """waitress's connection, with deadlines for a request's headers and body.

    waitress closes a connection only after ``channel_timeout`` without a byte, so a client
    sending one header line every few seconds could hold it for ever. Here a request's headers
    are due within --header-timeout of its first byte (of the accept, for a connection's first
    request: a client that sends nothing is cut too), and its body within --body-timeout of its
    headers. Past either, a client that sent part of a request gets a 408 and the connection
    closes; one that sent nothing is closed without a word.
    """

    parser_class = _Parser
    error_task_class = _JsonErrorTask
    answered = False  # a request was handed to the app since the current request's clock started

    def __init__(self, server: Any, sock: socket.socket, addr: Any, adj: Any, map: Any = None) -> None:
        super().__init__(server, sock, addr, adj, map)
        self.reading_since = time.monotonic()  # the current request's start (the accept, at first)

    def received(self, data: bytes) -> bool:
        """Read ``data``: the first byte after an answered request starts the next one's clock."""
        if data and self.request is None and self.answered:
            self.reading_since, self.answered = time.monotonic(), False
        return bool(super().received(data))

    def service(self) -> None:
        """Answer the next request (in a worker thread)."""
        self.answered = True
        super().service()

    def waiting(self) -> bool:
        """True while the connection waits for (the rest of) a request: nothing in the app's hands,
        nothing to send, not closing."""
        return not (self.requests or self.total_outbufs_len or self.will_close or self.close_when_flushed)

    def idle(self) -> bool:
        """True between requests of a kept-alive connection (waitress's inactivity timeout rules)."""
        return self.request is None and self.answered

    def overdue(self, now: float, header_seconds: float, body_seconds: float) -> bool:
        """True when the request being read has let its deadline pass. A refused body being
        thrown away has its own bound (DISCARD_SECONDS)."""
        request: Any = self.request
        if not self.waiting() or self.idle() or (request is not None and request.discarding):
            return False
        if request is None or not request.headers_finished:
            return now - self.reading_since > header_seconds
        return now - request.body_since > body_seconds

    def time_out(self) -> None:
        """Close the connection: after a 408 when part of a request came, at once when none did
        (a browser's preconnected socket, a client that only holds a connection)."""
        if self.request is None:
            self.will_close = True
            return
        body = json.dumps({"error": "request not received in time (see --header-timeout, --body-timeout)"})
        cors = "".join(f"{name}: {value}\r\n" for name, value in _cors_for(self.server, self.request))
        answer = (
            "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\n{cors}Content-Length: {len(body) + 1}\r\n\r\n{body}\n"
        ).encode()
        self.write_soon(answer)  # nothing is buffered (waiting()): it neither waits nor flushes
        self.close_when_flushed = True


class WaitressServer:
    """A waitress server whose loop this class runs, so it can drain before closing, enforce the
    read deadlines and make room at the connection limit."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        threads: int,
        max_body_bytes: int,
        sock: socket.socket | None = None,
        *,
        max_connections: int = BY_NAME["max_connections"].default,
        header_timeout: float = BY_NAME["header_timeout"].default,
        body_timeout: float = BY_NAME["body_timeout"].default,
    ) -> None:
        where: dict[str, Any] = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
        self._server: Any = create_server(
            app,
            **where,
            threads=threads,
            ident="live-execution-monitor",
            max_request_body_size=max_body_bytes + 1,  # waitress refuses a body of this size
            channel_timeout=IDLE_SECONDS,
            connection_limit=max_connections,
            asyncore_use_poll=True,  # select() fails past 1,024 descriptors
        )
        access = getattr(app, "extensions", {}).get("live_monitor.access")  # the monitor's app
        for listener in [self._server, *self._server._map.values()]:  # one, or one per address
            if hasattr(listener, "channel_class"):
                listener.channel_class = _Channel
                listener.access = access
        self.max_connections = max_connections
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self._next_check = 0.0
        self._polled_at = 0.0  # when the loop last began waiting (and then read what had come)
        self._not_connections = 0  # entries of the map beyond waitress's own that are no connection
        self._made_room = 0  # connections closed at the limit
        self._next_warning = 0.0
        self._stopping = threading.Event()
        self._signalled = False  # set by the signal handler, which must take no lock
        self.on_drain: Callable[[], None] | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.effective_port)

    def backlog(self) -> int:
        """Requests waiting for a worker thread: the overload signal."""
        return len(self._server.task_dispatcher.queue)

    def stop(self) -> None:
        """Ask the loop to drain and stop (safe from a signal handler or another thread)."""
        self._stopping.set()
        self._server.pull_trigger()

    def serve_forever(self, handle_signals: bool = True) -> None:
        """Serve until stop() (or SIGTERM/SIGINT when ``handle_signals``), then drain."""
        server = self._server
        adj = server.adj
        previous_wakeup: int | None = None  # the wakeup fd before ours, while ours is set
        signals = handle_signals and threading.current_thread() is threading.main_thread()
        if signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
            previous_wakeup = self._wake_on_signals()
        may_block = not signals or previous_wakeup is not None  # a signal can wake the loop
        try:
            while not (self._signalled or self._stopping.is_set()):
                self._make_room()
                timeout = self._loop_timeout(may_block)
                self._polled_at = time.monotonic()
                wasyncore.loop(timeout=timeout, map=server._map, use_poll=adj.asyncore_use_poll, count=1)
                self._enforce_deadlines()
        finally:
            if previous_wakeup is not None:
                signal.set_wakeup_fd(previous_wakeup)
        self._drain()

    def _loop_timeout(self, may_block: bool) -> float | None:
        """How long the loop may wait: for good while no connection is open (an idle monitor
        then wakes only for its sampler): a new connection, stop() and a signal wake it (the
        listener, the trigger pipes). With a connection open, waitress's timeout: the read
        deadlines and its inactivity timeout are enforced between waits, and waitress counts
        on it after some transitions (an answer whose client left does not wake the loop)."""
        if may_block and not self._server.active_channels:
            return None
        return float(self._server.adj.asyncore_loop_timeout)

    def _wake_on_signals(self) -> int | None:
        """Have a signal wake the loop, whichever thread the OS hands it to: Python runs the
        handler on the main thread only once its wait returns, so the signal's byte is written
        to a pipe the loop polls (``signal.set_wakeup_fd``); the wakeup fd this replaced. None
        where that cannot be done (not POSIX): the loop then keeps waitress's timeout."""
        if os.name != "posix":
            return None
        server = self._server
        wakeup = trigger(server._map)  # read and emptied by the loop; closed with the map
        # The map holds one more entry that is no connection: the limits count the map.
        server.adj.connection_limit += 1
        self._not_connections += 1
        os.set_blocking(wakeup.trigger, False)
        return signal.set_wakeup_fd(wakeup.trigger, warn_on_full_buffer=False)

    def _channels(self) -> list[_Channel]:
        return [ch for ch in list(self._server._map.values()) if isinstance(ch, _Channel)]

    def _enforce_deadlines(self) -> None:
        """Cut every connection whose request is overdue (at most every DEADLINE_CHECK_SECONDS)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + DEADLINE_CHECK_SECONDS
        for channel in self._channels():
            if channel.overdue(now, self.header_timeout, self.body_timeout):
                channel.time_out()

    def _make_room(self) -> None:
        """At the connection limit, where waitress would stop accepting (and a crowd of slow
        clients would keep everyone else out), close the connection that has waited longest for
        its request (between requests first) so that the next one is accepted. Connections whose
        request the app holds are never closed: when all are such, waitress stops accepting. Nor
        is one accepted since the loop last read: its request may be in, unread (closing it
        would reset a client that did nothing wrong)."""
        server = self._server
        if (
            len(server._map) - self._not_connections < self.max_connections
        ):  # waitress counts its listeners too
            return
        waiting = [ch for ch in self._channels() if ch.waiting() and ch.reading_since < self._polled_at]
        if not waiting:
            return
        oldest = min(waiting, key=lambda ch: (not ch.idle(), ch.reading_since))
        oldest.handle_close()
        self._made_room += 1
        if time.monotonic() >= self._next_warning:  # at most one line a minute under a flood
            self._next_warning = time.monotonic() + CROWDED_WARNING_SECONDS
            log.warning(
                "at --max-connections %d: closing the connections waiting longest for a request (%d so far)",
                self.max_connections,
                self._made_room,
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Not stop(): Event.set takes a lock, and a second signal (Ctrl-C reaches every worker
        # and the --workers parent forwards a SIGTERM too) arriving while the handler holds it
        # runs the handler again on the same thread, which then waits on that lock for ever.
        self._signalled = True
        self._server.pull_trigger()  # without a thunk, a write to the wake-up pipe: no lock

    def _busy(self) -> bool:
        return any(ch.requests or ch.total_outbufs_len for ch in list(self._server.active_channels.values()))

    def _drain(self) -> None:
        server = self._server
        if self.on_drain is not None:
            self.on_drain()
        grace_ends = time.monotonic() + GRACE_SECONDS
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and (time.monotonic() < grace_ends or self._busy()):
            wasyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        wasyncore.dispatcher.close(server)  # stop listening
        while time.monotonic() < deadline and self._busy():
            wasyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        server.task_dispatcher.shutdown(timeout=1)
        wasyncore.close_all(server._map)


LISTEN_FD_ENV = "LIVE_MONITOR_LISTEN_FD"
REUSEPORT_ENV = "LIVE_MONITOR_REUSEPORT"
# The OTLP/gRPC port a --workers parent holds for its workers ("": it could not, and said so)
GRPC_REUSEPORT_ENV = "LIVE_MONITOR_GRPC_REUSEPORT"


def inherited_socket(host: str) -> socket.socket | None:
    """The socket a ``--workers`` parent arranged for this process, if any.

    With SO_REUSEPORT each worker binds its own socket to the parent's port, and the kernel
    spreads new connections across them; elsewhere the workers share one inherited socket.
    """
    port = os.environ.get(REUSEPORT_ENV)
    if port:
        return _shared_port_socket(host, int(port))
    fd = os.environ.get(LISTEN_FD_ENV)
    return socket.socket(fileno=int(fd)) if fd else None


def _shared_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``port`` that other processes of ours may bind too (SO_REUSEPORT).

    SO_REUSEADDR as well, as every server sets it: without it the bind fails for a minute after
    any server on that port closed connections (they linger in TIME_WAIT).
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_workers(
    script: str,
    argv: list[str],
    host: str,
    port: int,
    workers: int,
    ready: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Bind once, start ``workers`` processes serving the same socket, stop them on a signal.

    Each worker is an ordinary monitor process (they share state through the Redis store);
    SIGTERM or Ctrl-C here is passed on, and every worker drains before it exits. ``ready``
    gets the public URL once a worker accepts connections on it; ``env`` adds to theirs.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    command = [sys.executable, script, *argv, "--workers", "1"]
    reuseport = hasattr(socket, "SO_REUSEPORT")
    try:
        if reuseport:  # hold the port (bound, never listening) so --port 0 is fixed for every worker
            holder = _shared_port_socket(host, port)
        else:
            holder = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        print(listen_error(host, port, exc), file=sys.stderr)
        return 2
    bound = holder.getsockname()[1]
    # A plain list, not a threading.Event: setting an Event inside a signal handler can deadlock
    # on the lock the interrupted main thread holds in Event.wait.
    stopping: list[int] = []
    children: list[subprocess.Popen[bytes]] = []
    told: set[int] = set()  # each worker gets one SIGTERM: a second could cut its drain short

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.pid not in told and child.poll() is None:
                told.add(child.pid)
                child.send_signal(signal.SIGTERM)

    # Before any worker starts: a signal from now on stops them all, none is left holding the port.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if reuseport:
        environ = {**os.environ, **(env or {}), REUSEPORT_ENV: str(bound)}
        children += [subprocess.Popen(command, env=environ) for _ in range(workers)]
    else:
        holder.set_inheritable(True)
        environ = {**os.environ, **(env or {}), LISTEN_FD_ENV: str(holder.fileno())}
        children += [
            subprocess.Popen(command, env=environ, pass_fds=(holder.fileno(),)) for _ in range(workers)
        ]
        holder.close()
    base = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
    print(f"Live Execution Monitor serving on {base} with {workers} worker processes", flush=True)
    if ready is not None:
        threading.Thread(target=_when_listening, args=(host, bound, base, ready), daemon=True).start()
    while not stopping and all(c.poll() is None for c in children):
        time.sleep(0.2)
    signalled = bool(stopping)
    for signum in (signal.SIGTERM, signal.SIGINT):  # later signals only wait for the drain
        signal.signal(signum, lambda signum, frame: None)
    forward(signal.SIGTERM, None)
    codes = [c.wait() for c in children]
    holder.close()
    print("Live Execution Monitor stopped.", flush=True)
    return 0 if signalled and all(code == 0 for code in codes) else 1


def listen_error(host: str, port: int, exc: OSError) -> str:
    """The one line a user sees when the monitor cannot listen (most often: the port is taken)."""
    hint = " (another monitor? choose one with --port, or --port 0 for any free port)"
    busy = exc.errno == errno.EADDRINUSE
    return f"error: cannot listen on {host}:{port}: {exc.strerror or exc}{hint if busy else ''}"


def _when_listening(
    host: str, port: int, base: str, ready: Callable[[str], None], timeout: float = 60.0
) -> None:
    """Call ``ready(base)`` once ``host:port`` accepts connections (workers take a while to start)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((target, port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
            continue
        ready(base)
        return


def serve(
    settings: Mapping[str, Any],
    monitor: LiveExecutionMonitor | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve until interrupted; ``ready`` gets the base URL once the socket listens."""
    try:
        # The journal (--persist) is read back once the socket listens: serving comes first.
        monitor = monitor or LiveExecutionMonitor(settings, restore_later=True)
        app = create_app(settings, monitor)
    except JournalError as exc:  # the file changed since check_settings looked, or is read-only
        print(f"error: --persist {exc}", file=sys.stderr)
        return 2
    monitor = app.extensions["live_monitor"]
    host = settings["host"]
    if settings["debug"]:
        logging.basicConfig(level=logging.DEBUG)
        port = settings["port"] or _free_port(host)
        base = f"http://{host}:{port}"
        otlp_grpc = start_otlp_grpc(app, settings)
        print(f"Live Execution Monitor (debug) serving on {base}", flush=True)
        monitor.restore_in_background()
        if ready:
            ready(base)
        try:
            app.run(host=host, port=port, debug=True, use_reloader=False, threaded=True)
        finally:
            otlp_grpc.stop(GRACE_SECONDS)
        return 0
    sock = inherited_socket(host)
    try:
        server = WaitressServer(
            app,
            host,
            settings["port"],
            settings["threads"],
            settings["max_body_bytes"],
            sock,
            max_connections=connections_that_fit(settings["max_connections"]),
            header_timeout=settings["header_timeout"],
            body_timeout=settings["body_timeout"],
        )
    except OSError as exc:
        monitor.close()
        print(listen_error(host, settings["port"], exc), file=sys.stderr)
        return 2
    app.config["BACKLOG"] = server.backlog
    otlp_grpc = start_otlp_grpc(app, settings)

    def drain() -> None:
        monitor.begin_drain()
        otlp_grpc.stop(GRACE_SECONDS, wait=False)  # gRPC calls in flight finish meanwhile

    server.on_drain = drain
    base = f"http://{'[' + host + ']' if ':' in host else host}:{server.port}"
    monitor.served_at(base)  # the dashboard's address in alert messages
    if sock is None:
        print(f"Live Execution Monitor serving on {base}", flush=True)
    monitor.restore_in_background()
    if ready:
        ready(base)
    # Ingest threads take the store's lock while they count a queue of events (a few ms);
    # at Python's default 5 ms switch interval the GIL was taken from them mid-count and
    # the other threads queued on the lock: 8 threads spent ~40% more CPU per batch than
    # one. A 20 ms interval lets a count finish; requests still yield at every socket read.
    # The setting is the process's, which serving takes over for good.
    sys.setswitchinterval(max(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    try:
        server.serve_forever()
    finally:
        otlp_grpc.stop(GRACE_SECONDS)
        monitor.close()
    print("Live Execution Monitor stopped.", flush=True)
    return 0


def connections_that_fit(wanted: int) -> int:
    """Raise this process's open-file soft limit toward its hard limit until ``wanted``
    connections fit (plus SPARE_DESCRIPTORS); the connections that fit: ``wanted``, or fewer
    with one warning (past the open-file limit every accept would fail, and waitress would
    retry it in a busy loop)."""
    if resource is None:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass  # soft stays; the warning below says what that allows
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    fits = max(soft - SPARE_DESCRIPTORS, soft // 2)
    log.warning(
        "--max-connections %d needs %d open files, but the limit is %d (hard %d): serving at most "
        "%d connections; raise it with `ulimit -n` or LimitNOFILE=",
        wanted,
        needed,
        soft,
        hard,
        fits,
    )
    return fits


def start_otlp_grpc(app: Any, settings: Mapping[str, Any]) -> OtlpGrpcServer:
    """The app's OTLP/gRPC server (``/status`` shows it), started on ``--otlp-grpc-port``, or on
    the port a ``--workers`` parent holds for all its workers (SO_REUSEPORT)."""
    shared = os.environ.get(GRPC_REUSEPORT_ENV)
    port = int(shared) if shared else settings["otlp_grpc_port"]
    otlp_grpc = OtlpGrpcServer(app, settings["host"], port, shared=bool(shared))
    app.extensions["live_monitor.otlp_grpc"] = otlp_grpc
    if shared != "":  # "": the parent could not bind the port and has said so once
        otlp_grpc.start()
    return otlp_grpc


def _free_port(host: str) -> int:
    """A port nobody listens on now (Flask's debug server cannot report the one it picked)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def serve_workers(
    script: str, settings: Mapping[str, Any], argv: list[str], ready: Callable[[str], None] | None
) -> int:
    """Start ``--workers`` processes of ``script`` (the monitor's entry file) on one public port."""
    rest = _without_option(_without_option(argv, "--workers"), "--port")
    host, port, workers = settings["host"], settings["port"], settings["workers"]
    env: dict[str, str] = {}
    grpc_holder = None
    # Without SO_REUSEPORT (Windows) the workers bind the gRPC port in turn: the first serves it.
    if settings["otlp_grpc_port"] and hasattr(socket, "SO_REUSEPORT"):
        grpc_holder = _hold_grpc_port(host, settings["otlp_grpc_port"])
        # "": taken, and said so once; the workers show it as not listening without a word
        env[GRPC_REUSEPORT_ENV] = str(grpc_holder.getsockname()[1]) if grpc_holder else ""
    try:
        return run_workers(script, [*rest, "--port", "0"], host, port, workers, ready=ready, env=env)
    finally:
        if grpc_holder is not None:
            grpc_holder.close()


def _hold_grpc_port(host: str, port: int) -> socket.socket | None:
    """The OTLP/gRPC port, bound (never listening) so that every worker may bind it too, as the
    HTTP port is; None after one warning when it is taken, and the workers serve HTTP only.
    """
    try:
        return _shared_port_socket(host, port)
    except OSError:
        print(port_taken(f"{host}:{port}"), file=sys.stderr, flush=True)
        return None


def _without_option(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` or ``flag=VALUE``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out
