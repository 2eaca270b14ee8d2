"""The ``--persist`` journal read back while the monitor serves (``core.restore``): reads answer
with what is in so far, ``/ready`` answers 503 with the reason until it is all in, and events
that come meanwhile are journaled and kept, after the journal's, so the store ends as a restore
before serving would have left it. The restore is held half done by a hook, never timed."""

from __future__ import annotations

import random
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.restore import JournalRestore
from live_monitor.model.events import ExecutionEvent
from live_monitor.store.journal import CHUNK_ROWS, EventJournal
from live_monitor.vocabulary import API, SERVICES, Service
from tests.helpers import FakeClock, FakeReader, reading

NOW = 1_800_000_000.0
KEEP = 10_000  # --max-events: the journal holds more backend events than that
JOURNALED = {"backend": 12_000, "frontend": 8_000}
POSTED = [30, 200, 70]  # backend events per batch posted during the restore


class Held:
    """Holds every restore of this test before its second chunk until ``release()``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        held = self

        def before_chunk(restore: JournalRestore) -> None:
            if restore.loaded and not held.go.is_set():
                held.reached.set()
                assert held.go.wait(30), "the test never released the restore"

        monkeypatch.setattr(JournalRestore, "before_chunk", before_chunk)

    def release(self) -> None:
        self.go.set()


def journaled(path: Path) -> None:
    """A journal of realistic traffic over the last 20 minutes (part of it out of the window):
    server requests and the browser's calls of the same traces, 3% errors."""
    rng = random.Random(3)
    journal = EventJournal(path, keep=1_000_000)
    events = []
    total = sum(JOURNALED.values())
    for n in range(total):
        service: Service = "backend" if n % 5 < 3 else "frontend"
        trace = f"{n // 2 * 7919:032x}"
        events.append(
            ExecutionEvent(
                timestamp=NOW - 1200 + 1200 * n / total,
                service=service,
                component="http" if service == "backend" else "api",
                action=rng.choice(["GET /api/orders", "POST /api/cart", "GET /api/users/me"]),
                duration_ms=round(rng.lognormvariate(3, 0.6) + (8 if service == "frontend" else 0), 3),
                status="error" if rng.random() < 0.03 else "success",
                details={"n": n},
                trace_id=trace,
            )
        )
    for start in range(0, total, 1000):
        journal.append(events[start : start + 1000])
    journal.close()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    journaled(path)
    return path


def monitor_on(path: Path, *, later: bool) -> LiveExecutionMonitor:
    settings = {"persist": str(path), "max_events": KEEP, "self_monitor": False, "autostart": False}
    reader = FakeReader([reading()])
    return LiveExecutionMonitor(settings, reader=reader, clock=FakeClock(NOW), restore_later=later)


def post(app: Flask, first: int, count: int) -> None:
    body = [
        {
            "timestamp": NOW,
            "service": "backend",
            "component": "http",
            "action": "POST /api/late",
            "details": {"n": n},
        }
        for n in range(first, first + count)
    ]
    answer = app.test_client().post(f"{API}/events", json=body)
    assert answer.status_code == 200 and answer.json["accepted"] == count


def numbers(monitor: LiveExecutionMonitor, service: str) -> list[int]:
    return [e.details["n"] for e in monitor.store.events(service)]


def comparable(monitor: LiveExecutionMonitor) -> dict[str, Any]:
    """What a user can read of the store: its events, counters, figures and differences."""
    data: dict[str, Any] = dict(monitor.data(limit=100, history=0))
    for moving in ("generated_at", "system", "uptime_seconds"):
        data.pop(moving)
    return {
        "events": {s: [e.to_dict() for e in monitor.store.events(s)] for s in SERVICES},
        "counts": monitor.store.counts(),
        "data": data,
        "tallies": repr(monitor.store.tallies()),
    }


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    hold = Held(monkeypatch)
    yield hold
    hold.release()  # a failed test leaves no thread waiting


def test_a_monitor_serves_while_it_reads_its_journal_back_and_ends_as_a_restore_before_serving(
    journal: Path, make_app: Any, held: Held
) -> None:
    before = journal.with_name("copy.db")
    shutil.copy(journal, before)  # the same journal, for a monitor that reads it before serving
    monitor = monitor_on(journal, later=True)
    app = make_app(monitor=monitor)
    client = app.test_client()
    monitor.restore_in_background()
    assert held.reached.wait(30)
    total = KEEP + JOURNALED["frontend"]  # the newest --max-events of each side

    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
    assert f"{CHUNK_ROWS:,} of {total:,} events read back" in ready.json["error"]
    assert client.get("/health").status_code == 200
    status = client.get(f"{API}/status").json
    assert status["restoring"] is True
    assert status["restore"]["state"] == "restoring"
    assert (status["restore"]["loaded"], status["restore"]["total"]) == (CHUNK_ROWS, total)
    data = client.get(f"{API}/data").json
    assert data["backend"]["total_events"] + data["frontend"]["total_events"] == CHUNK_ROWS
    assert len(data["recent_events"]) > 0  # what is in so far
    assert data["backend"]["window_events"] == 0  # the window's figures wait for the newest events
    assert client.get(f"{API}/differences").status_code == 200
    assert client.post(f"{API}/baseline").status_code == 503  # an empty window is no baseline

    first = 100_000
    for count in POSTED:  # acknowledged at once, kept until the journal's events are in
        post(app, first, count)
        first += count
    assert client.get(f"{API}/status").json["restore"]["waiting"] == sum(POSTED)

    held.release()
    assert monitor.journal_restore is not None and monitor.journal_restore.wait(30)
    assert client.get("/ready").json == {"status": "ready"}
    status = client.get(f"{API}/status").json
    assert status["restoring"] is False and status["restore"]["state"] == "restored"
    assert status["restore"]["loaded"] == total and status["restore"]["waiting"] == 0

    # Journal first, then the posted events in the order they came; the newest KEEP of a side.
    late = list(range(100_000, first))
    journal_backend = [n for n in range(sum(JOURNALED.values())) if n % 5 < 3][-KEEP:]
    assert numbers(monitor, "backend") == (journal_backend + late)[-KEEP:]
    assert numbers(monitor, "frontend") == [n for n in range(sum(JOURNALED.values())) if n % 5 >= 3]

    synchronous = monitor_on(before, later=False)  # read back before serving, then the same posts
    first = 100_000
    for count in POSTED:
        post(make_app(monitor=synchronous), first, count)
        first += count
    assert comparable(monitor) == comparable(synchronous)


def test_a_journal_found_damaged_while_serving_keeps_ready_503_with_the_reason(
    tmp_path: Path, make_app: Any
) -> None:
    path = tmp_path / "events.db"
    journaled(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    middle = len(data) // 2 // page * page  # the schema, the pin and the history survive
    data[middle:] = random.Random(7).randbytes(len(data) - middle)
    path.write_bytes(bytes(data))
    monitor = monitor_on(path, later=True)  # the damage is found once serving
    app = make_app(monitor=monitor)
    monitor.restore_in_background()
    assert monitor.journal_restore is not None and monitor.journal_restore.wait(30)
    ready = app.test_client().get("/ready")
    assert ready.status_code == 503
    assert (
        "could not be read back" in ready.json["error"] and "cannot read the journal" in ready.json["error"]
    )
    status = app.test_client().get(f"{API}/status").json
    assert status["restore"]["state"] == "failed" and status["restore"]["error"]
    refused = app.test_client().post(
        f"{API}/events", json=[{"service": "backend", "component": "c", "action": "a"}]
    )
    assert (
        refused.status_code == 503 and refused.headers["Retry-After"]
    )  # nothing acknowledged it cannot keep


def test_alerts_are_not_checked_on_a_window_half_read_back(journal: Path, held: Held) -> None:
    """A check on the empty window of a restore would resolve the alerts open before it."""
    monitor = monitor_on(journal, later=True)
    monitor.restore_in_background()
    assert held.reached.wait(30)
    assert monitor.alerts.check() == []
    assert monitor.alerts.status()["check_errors"] == 1
    held.release()
    assert monitor.journal_restore is not None and monitor.journal_restore.wait(30)
    monitor.alerts.check()
    assert monitor.alerts.status()["check_errors"] == 1
    monitor.close()


def test_a_live_stream_opened_during_the_restore_carries_what_came_not_the_journal(
    journal: Path, make_app: Any, held: Held
) -> None:
    """The journal's events are read back, not received: a dashboard that reconnects right after
    a restart gets the events posted since, those held during the restore first, and none of the
    journal's as if new."""
    import json

    from live_monitor.web.api import _sse_events

    monitor = monitor_on(journal, later=True)
    app = make_app(monitor=monitor)
    monitor.restore_in_background()
    assert held.reached.wait(30)
    stream = _sse_events(monitor)
    next(stream)  # connected half way through the restore
    post(app, 0, 3)  # held until the journal is in
    held.release()
    assert monitor.journal_restore is not None and monitor.journal_restore.wait(30)
    post(app, 3, 2)
    sent = next(stream)
    assert sent.startswith("event: events\n")
    assert [e["details"]["n"] for e in json.loads(sent.split("data: ", 1)[1])] == [0, 1, 2, 3, 4]


def test_differences_found_while_restoring_are_not_kept_past_the_restore(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick that lands between the journal's last chunk and the restore's end finds an empty
    window: what it found must not stand for the whole window until the next event or bucket."""
    monitor = monitor_on(journal, later=True)
    finish = JournalRestore._finish

    def tick_then_finish(restore: JournalRestore) -> None:
        assert monitor.differences() == []  # the window is empty while restoring
        finish(restore)

    monkeypatch.setattr(JournalRestore, "_finish", tick_then_finish)
    monitor.restore_in_background()
    assert monitor.journal_restore is not None and monitor.journal_restore.wait(30)
    assert monitor.differences() != []  # read again once the journal is in
