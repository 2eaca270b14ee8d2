from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from typing import Any

import pytest
import requests

from live_monitor.model.events import ExecutionEvent
from live_monitor.store.journal import EventJournal, JournalError
from live_monitor.vocabulary import Service


def event(n: int, service: Service = "backend") -> ExecutionEvent:
    return ExecutionEvent(
        service=service,
        component="http" if service == "backend" else "api",
        action="POST /api/orders",
        duration_ms=float(n),
        details={"n": n},
    )


def test_appended_events_come_back_oldest_first(tmp_path):
    journal = EventJournal(tmp_path / "j.db")
    journal.append([event(1), event(2, "frontend"), event(3)])
    journal.close()
    again = EventJournal(tmp_path / "j.db")
    assert [e.details["n"] for e in again.load()] == [1, 2, 3]
    assert again.load()[1].service == "frontend"


def test_the_journal_keeps_the_newest_per_side(tmp_path):
    journal = EventJournal(tmp_path / "j.db", keep=5)
    for n in range(12):
        journal.append([event(n)])
    journal.append([event(100, "frontend")])
    kept = journal.load()
    assert [e.details["n"] for e in kept if e.service == "backend"][-5:] == [7, 8, 9, 10, 11]
    assert journal.count() <= 5 * 2 + 5


def test_an_unreadable_row_is_skipped_not_fatal(tmp_path):
    journal = EventJournal(tmp_path / "j.db")
    journal.append([event(1)])
    journal.close()
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("INSERT INTO events (service, body) VALUES ('backend', 'not json')")
    db.commit()
    db.close()
    assert [e.details["n"] for e in EventJournal(tmp_path / "j.db").load()] == [1]


def test_the_journal_uses_wal(tmp_path):
    EventJournal(tmp_path / "j.db")
    mode = sqlite3.connect(tmp_path / "j.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _stream(api: str, first: int, acked: list[int], stop: threading.Event, batch: int = 10) -> None:
    n = first
    session = requests.Session()
    while not stop.is_set():
        numbers = list(range(n, n + batch))
        body: list[dict[str, Any]] = [
            {
                "service": "backend",
                "component": "http",
                "action": "POST /api/orders",
                "duration_ms": 1.0,
                "details": {"n": i},
            }
            for i in numbers
        ]
        try:
            response = session.post(f"{api}/events", json=body, timeout=5)
        except requests.RequestException:
            return
        if response.status_code == 200 and response.json()["accepted"] == batch:
            acked.extend(numbers)
        n += batch


def _stored_numbers(api: str) -> list[int]:
    events = requests.get(f"{api}/data", params={"limit": 20000}).json()["recent_events"]
    return [e["details"]["n"] for e in events if "n" in e["details"]]


def test_acknowledged_events_survive_kill_9_and_restart(tmp_path, start_monitor):
    db = str(tmp_path / "events.db")
    rng = random.Random(7)
    acked: list[int] = []
    first = 0
    for round_ in range(3):
        with start_monitor("--no-self-monitor", "--persist", db) as server:
            stored = _stored_numbers(server.api)
            missing = set(acked) - set(stored)
            assert not missing, f"round {round_}: {len(missing)} acknowledged events lost"
            assert len(stored) - len(set(stored)) == 0
            extra = set(stored) - set(acked)
            assert len(extra) <= 10, "more than the last batch was stored without being acknowledged"
            target = len(acked) + rng.randint(50, 400)
            stop = threading.Event()
            sender = threading.Thread(target=_stream, args=(server.api, first, acked, stop))
            sender.start()
            while len(acked) < target and sender.is_alive():
                sender.join(0.01)
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
            stop.set()
            sender.join(10)
            first = max(acked + list(extra) + [first]) + 1000
    with start_monitor("--no-self-monitor", "--persist", db) as server:
        kept = set(_stored_numbers(server.api))
        assert set(acked) <= kept
        assert len(acked) >= 150
        status = requests.get(f"{server.api}/status").json()
        assert status["restored"] == len(kept)
        assert requests.get(f"{server.api}/data").json()["backend"]["total_events"] == len(kept)


def test_a_path_that_cannot_be_a_journal_is_a_clear_error_and_is_left_untouched(tmp_path):
    other = tmp_path / "shop.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    for path, phrase in [
        (tmp_path, "is a folder"),
        (tmp_path / "missing" / "j.db", "no such folder"),
        (text, "not an SQLite database"),
        (other, "it holds the table users"),
    ]:
        with pytest.raises(JournalError, match=phrase):
            EventJournal(path)
    assert text.read_text() == "hello\n"
    with sqlite3.connect(other) as db:
        assert [name for (name,) in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_a_journal_whose_events_table_is_foreign_is_refused(tmp_path):
    path = tmp_path / "j.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (name TEXT)")
    with pytest.raises(JournalError, match="events table"):
        EventJournal(path)


def test_a_fifo_or_a_place_nobody_may_write_is_a_clear_error_not_a_hang_or_traceback(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(JournalError, match="not a regular file"):
        EventJournal(fifo)  # reading its header would block for ever
    with pytest.raises(JournalError, match="cannot open a journal there"):
        EventJournal("/proc/events.db")  # not even root may create a file there


def test_a_damaged_journal_is_a_journal_error_on_load(tmp_path):
    path = tmp_path / "j.db"
    journal = EventJournal(path)
    journal.append([event(n) for n in range(3000)])
    journal.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[2 * page :] = random.Random(7).randbytes(len(data) - 2 * page)  # the schema page survives
    path.write_bytes(bytes(data))
    damaged = EventJournal(path)
    with pytest.raises(JournalError, match="cannot read the journal"):
        damaged.load()


def test_events_journaled_before_a_rule_was_added_are_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "j.db"
    journal = EventJournal(path)
    journal.append([event(1)])
    journal.close()
    old = (
        b'{"timestamp":"9999-12-31T23:59:59-14:00","service":"backend","component":"http","action":"GET /a"}'
    )
    with sqlite3.connect(path) as db:  # as an earlier version accepted and journaled it
        db.execute("INSERT INTO events (service, body) VALUES ('backend', ?)", (old,))
    with caplog.at_level("WARNING"):
        kept = EventJournal(path).load()
    assert [e.details["n"] for e in kept] == [1]
    assert "skipped 1 journaled event(s)" in caplog.text and "out of range" in caplog.text
