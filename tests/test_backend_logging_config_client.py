"""Tests of backend_logging_config.MonitorClient, the background thread that ships events.

Against a stand-in ingest endpoint: batching and the flush interval, retries and what is dropped
(and counted) when the monitor refuses or is down, a bounded queue, close() racing with threads
still adding events, and the flush at interpreter exit.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import backend_logging_config as blc
from tests.helpers import ROOT, FakeMonitor, wait_for

pytestmark = pytest.mark.usefixtures("restore_logging_globals")


def test_client_posts_batches_and_fills_defaults(fake_monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(fake_monitor.url, batch_size=3)
    original = {"component": "job", "action": "run", "duration_ms": 1.0, "status": "success"}
    snapshot = dict(original)
    for _ in range(7):
        assert client.record(original) is True
    assert client.flush(5) is True
    assert original == snapshot
    assert {path for _, path, _ in fake_monitor.requests} == {"/api/live-execution/events"}
    assert max(len(body["events"]) for _, _, body in fake_monitor.requests) <= 3
    events = fake_monitor.events()
    assert len(events) == 7 and all(event["service"] == "backend" for event in events)
    assert datetime.fromisoformat(events[0]["timestamp"]).utcoffset() == timedelta(0)
    stats = client.stats()
    assert (stats["sent"], stats["queued"], stats["dropped_total"]) == (7, 0, 0)
    assert stats["batches_sent"] == len(fake_monitor.requests) >= 3


def test_events_go_out_within_the_flush_interval_without_flush(
    fake_monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(fake_monitor.url, flush_interval=0.05)
    client.record({"component": "job", "action": "first"})
    assert wait_for(lambda: len(fake_monitor.events()) == 1, 2.0)
    client.record({"component": "job", "action": "second"})  # finds the sender thread idle
    assert wait_for(lambda: len(fake_monitor.events()) == 2, 2.0)


def test_retry_after_is_honoured_on_503(fake_monitor: FakeMonitor, make_client: Any) -> None:
    fake_monitor.script.append((503, {"Retry-After": "1"}, None))
    client = make_client(fake_monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    (first, *_), (second, *_) = fake_monitor.requests
    assert second - first >= 0.9
    stats = client.stats()
    assert (stats["sent"], stats["retried"], stats["dropped"]) == (1, 1, {})


@pytest.mark.parametrize("header", ["nan", "inf", "-5"])
def test_a_nonsense_retry_after_still_retries_the_batch(
    fake_monitor: FakeMonitor, make_client: Any, header: str
) -> None:
    fake_monitor.script.append((503, {"Retry-After": header}, None))
    client = make_client(fake_monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert (stats["sent"], stats["retried"], stats["dropped"]) == (1, 1, {})


def test_a_flush_waiting_on_another_thread_returns_when_close_drops_the_queue(make_client: Any) -> None:
    client = make_client("http://127.0.0.1:9", max_retries=50, backoff_base=5.0)  # nothing listens
    client.record({"component": "job", "action": "run"})
    client.record({"component": "job", "action": "run"})
    flushed: list[bool] = []
    waiter = threading.Thread(target=lambda: flushed.append(client.flush(30)))
    waiter.start()
    client.close(timeout=0.5)
    waiter.join(5)
    assert not waiter.is_alive(), "flush() still waits after close() dropped the queue"
    stats = client.stats()
    assert stats["sent"] + stats["dropped_total"] == 2


@pytest.mark.parametrize("status", [429, 502, 504])
def test_transient_statuses_are_retried(fake_monitor: FakeMonitor, make_client: Any, status: int) -> None:
    fake_monitor.script += [(status, {}, {"error": "busy"})] * 2
    client = make_client(fake_monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    assert len(fake_monitor.requests) == 3 and len(fake_monitor.events()) == 3
    assert (client.stats()["sent"], client.stats()["retried"]) == (1, 2)


@pytest.mark.parametrize("status", [400, 413])
def test_client_errors_are_dropped_without_retry(
    fake_monitor: FakeMonitor, make_client: Any, status: int
) -> None:
    fake_monitor.script.append((status, {}, {"error": "bad batch"}))
    client = make_client(fake_monitor.url)
    for _ in range(3):
        client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert stats["dropped"] == {f"http_{status}": 3} and stats["retried"] == 0
    assert len(fake_monitor.requests) == 1 and "bad batch" in stats["last_error"]
    client.record({"component": "job", "action": "after"})
    assert client.flush(5) and client.stats()["sent"] == 1


def test_rejected_events_are_counted_as_dropped(fake_monitor: FakeMonitor, make_client: Any) -> None:
    answer = {"accepted": 2, "rejected": 1, "errors": [{"index": 1, "error": "action is empty"}]}
    fake_monitor.script.append((200, {}, answer))
    client = make_client(fake_monitor.url)
    for action in ("a", "", "c"):
        client.record({"component": "job", "action": action})
    assert client.flush(5)
    stats = client.stats()
    assert (stats["sent"], stats["dropped"]) == (2, {"rejected": 1})
    assert "action is empty" in stats["last_error"]


def test_a_batch_rejected_whole_counts_as_rejected(fake_monitor: FakeMonitor, make_client: Any) -> None:
    answer = {"accepted": 0, "rejected": 2, "errors": [{"index": 0, "error": "status is bad"}]}
    fake_monitor.script.append((400, {}, answer))
    client = make_client(fake_monitor.url)
    client.record({"component": "job", "action": "a", "status": "odd"})
    client.record({"component": "job", "action": "b", "status": "odd"})
    assert client.flush(5)
    assert client.stats()["dropped"] == {"rejected": 2} and client.stats()["retried"] == 0


def test_token_is_sent_as_bearer(
    fake_monitor: FakeMonitor, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVE_MONITOR_TOKEN", "s3cret")
    client = make_client(fake_monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    assert fake_monitor.auth == ["Bearer s3cret"]


def test_monitor_down_keeps_queue_bounded_and_delivery_resumes(
    fake_monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(fake_monitor.url, max_queue=50, batch_size=10, max_retries=10_000)
    fake_monitor.stop()
    started = time.monotonic()
    results = [client.record({"component": "job", "action": f"a{n}"}) for n in range(500)]
    assert time.monotonic() - started < 2.0
    stats = client.stats()
    assert stats["queued"] <= 50
    assert results.count(True) == 50 and stats["dropped"] == {"queue_full": 450}
    assert wait_for(lambda: client.stats()["retried"] >= 3)
    assert client.flush(0.2) is False
    assert "cannot reach monitor" in client.stats()["last_error"]
    fake_monitor.start()
    assert client.flush(10) is True
    assert len(fake_monitor.events()) == 50 and client.stats()["sent"] == 50
    client.record({"component": "job", "action": "after"})
    assert client.flush(5) and fake_monitor.events()[-1]["action"] == "after"


def test_retries_are_exhausted_while_down(fake_monitor: FakeMonitor, make_client: Any) -> None:
    fake_monitor.stop()
    client = make_client(fake_monitor.url, max_retries=2)
    for _ in range(4):
        client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert stats["dropped"] == {"retries_exhausted": 4} and stats["sent"] == 0


def test_bad_events_never_raise_and_are_counted(fake_monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(fake_monitor.url)
    looped: dict[str, Any] = {"component": "job", "action": "loop"}
    looped["details"] = looped
    assert client.record("not an event") is False
    assert client.record(looped) is True
    assert client.record({"component": "job", "action": "fine"}) is True
    assert client.flush(5)
    assert [event["action"] for event in fake_monitor.events()] == ["fine"]
    assert client.stats()["dropped"] == {"invalid": 1, "unserializable": 1}


def test_drops_warn_at_most_once_a_minute(
    fake_monitor: FakeMonitor, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(fake_monitor.url, max_queue=1, flush_interval=5.0)
    with caplog.at_level(logging.WARNING, logger="live_monitor.internal"):
        for _ in range(5):
            client.record({"component": "job", "action": "run"})
    warnings = [r for r in caplog.records if r.name == "live_monitor.internal"]
    assert len(warnings) == 1 and "queue_full" in warnings[0].getMessage()
    assert client.stats()["dropped"] == {"queue_full": 4}


def test_drop_warnings_reach_the_logs_but_not_the_monitor(
    fake_monitor: FakeMonitor, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_monitor.script.append((400, {}, {"error": "bad batch"}))
    blc.configure_logging(monitor_url=fake_monitor.url)
    logging.getLogger("app").info("sent", extra={"component": "job", "action": "run"})
    client = blc.get_default_client()
    assert client is not None and client.flush(5)
    assert client.flush(0.3) and client.stats()["dropped"] == {"http_400": 1}
    [warning] = [json.loads(line) for line in capsys.readouterr().err.splitlines()][1:]
    assert warning["level"] == "WARNING" and "http_400" in warning["message"]
    assert len(fake_monitor.requests) == 1


def test_close_flushes_then_refuses_events(fake_monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(fake_monitor.url, flush_interval=30.0)
    client.record({"component": "job", "action": "last"})
    assert client.close(timeout=5) is True
    assert [event["action"] for event in fake_monitor.events()] == ["last"]
    assert client.record({"component": "job", "action": "late"}) is False
    assert client.stats()["dropped"] == {"closed": 1}


class HeldQueue(deque[Any]):
    """A client's queue that can hold chosen threads inside ``append`` until released: where a
    thread switch between ``_enqueue``'s look at the client and its append would leave them."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names, self.held = names, list[str]()
        self.hold, self.release = threading.Event(), threading.Event()

    def append(self, item: Any) -> None:
        name = threading.current_thread().name
        if self.hold.is_set() and not self.release.is_set() and name in self.names:
            self.held.append(name)
            self.release.wait(10)
        super().append(item)


def close_while_adding(client: blc.MonitorClient, release: str) -> list[list[bool]]:
    """Four threads add events (two through ``record``, two straight to ``_enqueue`` as the WSGI
    layer and MonitorHandler do) until after ``client.close()``; one of each kind is held inside
    its append until close() returned (or began). Returns what each thread's calls returned."""
    queue = client._queue = HeldQueue({"adder-0", "adder-1"})
    results: list[list[bool]] = [[] for _ in range(4)]
    done = threading.Event()

    def add(n: int) -> None:
        add_one = client.record if n % 2 else client._enqueue
        while not done.is_set():
            event = {"component": "stress", "action": f"adder-{n}", "details": {"seq": len(results[n])}}
            results[n].append(add_one(event))

    def release_once_closing() -> None:
        wait_for(lambda: client.closed)
        queue.release.set()

    adders = [threading.Thread(target=add, args=(n,), name=f"adder-{n}", daemon=True) for n in range(4)]
    for thread in adders:
        thread.start()
    try:
        assert wait_for(lambda: min(map(len, results)) >= 20)
        queue.hold.set()
        assert wait_for(lambda: len(queue.held) == 2)
        if release == "while_closing":
            threading.Thread(target=release_once_closing, daemon=True).start()
        client.close(timeout=5)
        queue.release.set()
        calls = sum(map(len, results))
        assert wait_for(lambda: sum(map(len, results)) > calls + 60)  # calls after close() returned
    finally:
        done.set()
        queue.release.set()
        for thread in adders:
            thread.join(5)
    return results


@pytest.mark.parametrize("release", ["after_close", "while_closing"])
def test_every_event_added_while_closing_is_counted_once(make_client: Any, release: str) -> None:
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the racing appends land anywhere in close()
    try:
        for attempt in range(10):
            monitor = FakeMonitor()  # a fresh one per attempt, so its events are this attempt's
            try:
                client = make_client(monitor.url, max_queue=1000, flush_interval=0.01)
                results = close_while_adding(client, release)
                stats, events = client.stats(), monitor.events()
            finally:
                monitor.stop()
            assert stats["queued"] == 0, f"attempt {attempt}: events left on the queue"
            assert stats["sent"] + stats["dropped_total"] == sum(map(len, results)), f"attempt {attempt}"
            assert stats["sent"] == len(events)
            for n, returned in enumerate(results):  # sent once at most, and only if record() said so
                sent = [event["details"]["seq"] for event in events if event["action"] == f"adder-{n}"]
                assert len(sent) == len(set(sent)) and all(returned[seq] for seq in sent)
    finally:
        sys.setswitchinterval(switch)


def test_exit_flushes_pending_events(fake_monitor: FakeMonitor) -> None:
    script = (
        "import sys, backend_logging_config as blc\n"
        "client = blc.MonitorClient(sys.argv[1], flush_interval=30.0)\n"
        "client.record({'component': 'job', 'action': 'at_exit'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, fake_monitor.url], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [event["action"] for event in fake_monitor.events()] == ["at_exit"]


def test_events_wait_for_the_interval_unless_half_the_queue_is_full(
    fake_monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(fake_monitor.url, batch_size=4, flush_interval=30.0, max_queue=20)
    client.record({"component": "job", "action": "a0"})  # the first one starts the sender, and goes
    assert wait_for(lambda: len(fake_monitor.events()) == 1)
    for n in range(1, 10):
        client.record({"component": "job", "action": f"a{n}"})
    assert client.stats()["queued"] == 9 and len(fake_monitor.requests) == 1  # waiting for the interval
    for n in range(10, 13):  # the tenth waiting event fills half the queue: the sender wakes
        client.record({"component": "job", "action": f"a{n}"})
    assert wait_for(lambda: len(fake_monitor.events()) >= 11)
    assert client.close(timeout=5)
    assert [event["action"] for event in fake_monitor.events()] == [f"a{n}" for n in range(13)]
    assert max(len(body["events"]) for _, _, body in fake_monitor.requests) == 4


def test_large_events_are_split_into_bodies_the_monitor_accepts(
    fake_monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(fake_monitor.url, flush_interval=30.0)
    for n in range(200):
        client.record({"component": "job", "action": f"a{n}", "details": {"blob": "x" * 6000}})
    assert client.flush(10)
    assert [event["action"] for event in fake_monitor.events()] == [f"a{n}" for n in range(200)]
    sizes = [len(json.dumps(body, separators=(",", ":"))) for _, _, body in fake_monitor.requests]
    assert len(sizes) >= 3 and max(sizes) <= 1024 * 1024  # the monitor's default body limit
    assert client.stats()["sent"] == 200


@given(st.floats(min_value=-1e9, max_value=4e9))
def test_timestamps_are_written_as_datetime_writes_them(epoch: float) -> None:
    expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert blc._iso(epoch) == expected


def test_bad_monitor_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="http"):
        blc.MonitorClient("localhost:5001")
    with pytest.raises(ValueError, match="batch_size"):
        blc.MonitorClient("http://localhost:5001", batch_size=0)
