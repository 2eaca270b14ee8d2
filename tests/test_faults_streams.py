"""50 live streams (``GET /api/live-execution/stream``, Server-Sent Events) open on a real
monitor while clients post events: every stream client receives events all along and the last
batch posted, ingest and the other routes keep answering (no 5xx, every request within its
timeout), and closing the clients frees their streams (``live_streams`` in /status goes back
to 0). A stream is a live view: it sends at most 200 events a tick (the newest), so under a
heavy load it skips some, and /data is where all of them are.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest
import requests

from live_monitor.vocabulary import HEALTH_PATH, STATUS_PATH, STREAM_PATH
from tests.helpers import FAULT_ID, IngestLoad, MonitorProcess, RouteWatch, event, run_monitor, wait_for

pytestmark = pytest.mark.timeout(120)

STREAMS = 50
ACKS = 3000  # events acknowledged while the streams are open
RECEIVED = 200  # of them, each stream gets at least this many (200 a tick at most)
CALLS = 30  # calls to /health and /status answered meanwhile
READ_TIMEOUT = 10.0  # s without a byte on a stream: a hang (the monitor writes at every tick)


class StreamClient:
    """One live stream read on its own thread: the ``FAULT_ID``s of the events it received.

    ``close`` shuts the socket down, which ends a read blocked on it at once."""

    def __init__(self, server: MonitorProcess) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=READ_TIMEOUT)
        self.conn.request("GET", STREAM_PATH, headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.ids: set[str] = set()
        self.opened = threading.Event()
        self.error: str | None = None
        self.closing = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            if self.response.status != 200:
                self.error = f"{self.response.status}: {self.response.read()[:200]!r}"
                return
            for raw in self.response:
                line = raw.decode()
                if line.startswith("retry:"):
                    self.opened.set()
                elif line.startswith("data: "):
                    items = json.loads(line[6:])
                    self.ids.update(
                        item["details"][FAULT_ID] for item in items if FAULT_ID in item.get("details", {})
                    )
            if not self.closing:
                self.error = "the stream ended"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if not self.closing:
                self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.closing = True
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(READ_TIMEOUT)
        self.conn.close()


def _live_streams(server: MonitorProcess) -> int:
    answer = requests.get(f"{server.url}{STATUS_PATH}", timeout=10)
    answer.raise_for_status()
    return int(answer.json()["live_streams"])


def test_50_live_streams_during_ingest_get_every_event_and_are_freed_when_closed() -> None:
    threads = str(STREAMS + 12)  # each stream holds a thread
    flags = ("--no-self-monitor", "--interval", "0.2", "--max-events", "100000")
    with run_monitor("--threads", threads, *flags) as server:
        requests.post(f"{server.api}/start", timeout=10).raise_for_status()  # a tick every interval
        clients = [StreamClient(server) for _ in range(STREAMS)]
        try:
            assert all(c.opened.wait(READ_TIMEOUT) for c in clients), [c.error for c in clients if c.error]
            assert _live_streams(server) == STREAMS
            allowed = {HEALTH_PATH: {200}, STATUS_PATH: {200}}
            with (
                RouteWatch(server.url, allowed, timeout=5) as watch,
                IngestLoad(server.url, clients=2) as load,
            ):
                load.wait_for_acks(ACKS, timeout=60)
                assert wait_for(lambda: watch.calls >= CALLS, timeout=30), watch.seen
            last = {f"last-{i}" for i in range(10)}
            server.post_events(
                [{**event("backend", "fault", "post", 1.0), "details": {FAULT_ID: i}} for i in last]
            )
            every = lambda: all(last <= c.ids for c in clients)  # noqa: E731
            assert wait_for(every, timeout=30), [c.error for c in clients if c.error]
            received = sorted(len(load.acked & c.ids) for c in clients)
            errors = [c.error for c in clients if c.error]
        finally:
            for client in clients:
                client.close()
        assert wait_for(lambda: _live_streams(server) == 0, timeout=10), _live_streams(server)
        print(
            f"\n{STREAMS} live streams during ingest: {load.figures()}; acknowledged events each stream "
            f"received: {received[0]} to {received[-1]}, and the last batch on every stream; "
            f"/health and /status meanwhile: {watch.seen}; streams open after closing: 0"
        )
        assert received[0] >= RECEIVED, received
        assert errors == [], errors[:5]
        assert load.failures == [], load.failures[:10]
        assert load.statuses == {200: load.statuses[200]}  # nothing refused: no 503 either
        assert watch.failures == [], watch.failures[:10]
        assert "Traceback" not in "".join(server.output)
