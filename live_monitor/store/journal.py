"""Opt-in persistence (``--persist FILE``): an SQLite journal in WAL mode.

Each accepted batch is committed before the monitor acknowledges it, so an acknowledged
event survives ``kill -9`` and a restart; on start the newest events of each side are
read back into the store. SQLite ships with Python, so nothing new is installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import msgspec

from live_monitor.model.baseline import PinnedBaseline
from live_monitor.model.events import ExecutionEvent, event_problem
from live_monitor.model.results import Episode
from live_monitor.store import EPISODES_KEPT, StoreUnavailable
from live_monitor.vocabulary import SERVICES

_decoder = msgspec.json.Decoder(ExecutionEvent)
_episode = msgspec.json.Decoder(Episode)
_baseline = msgspec.json.Decoder(PinnedBaseline)
_encoder = msgspec.json.Encoder()
_SQLITE_HEADER = b"SQLite format 3\x00"
log = logging.getLogger("live_execution_monitor")
_COLUMNS = {"id", "service", "body"}
_TABLES = {"events", "episodes", "baseline"}  # events, the difference history (episodes by book), the pin


class JournalError(ValueError):
    """The path cannot hold a journal; the message says why in one line."""


def journal_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be (or become) an event journal, else None; reads, never writes.

    A new file in an existing folder, an empty file and a journal written before are fine;
    another program's SQLite database is refused so that no table is added to it.
    """
    path = Path(path)
    if path.is_dir():
        return f"is a folder; give a file in it, e.g. {path / 'events.db'}"
    if not path.exists():
        folder = path.parent
        if folder.exists() and not folder.is_dir():
            return f"{folder} is not a folder"
        if not folder.is_dir():
            return f"no such folder {folder}"
        return None if os.access(folder, os.W_OK) else f"cannot create a file in {folder}"
    if not path.is_file():  # a FIFO would block the read below for ever
        return "not a regular file"
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if not header:
        return None
    if header != _SQLITE_HEADER:
        return "not an event journal (not an SQLite database)"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"cannot read it as SQLite: {exc}"
    tables = sorted(name for (name,) in rows if name not in _TABLES and not name.startswith("sqlite_"))
    if tables:
        held = ("the table " if len(tables) == 1 else "the tables ") + ", ".join(tables)
        return f"not an event journal (it holds {held})"
    if columns and not _COLUMNS <= columns:
        return "not an event journal (its events table has other columns)"
    return None


class EventJournal:
    """An append-only table of events, trimmed to the newest ``keep`` per side."""

    def __init__(self, path: str | Path, keep: int = 10_000) -> None:
        """Open or create the journal; JournalError when ``path`` cannot be one (see journal_problem)."""
        self.path = Path(path)
        self.keep = keep
        problem = journal_problem(self.path)
        if problem:
            raise JournalError(f"{self.path}: {problem}")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:  # e.g. a folder only root could write, or /proc
            raise JournalError(f"{self.path}: cannot open a journal there: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS events "
                "(id INTEGER PRIMARY KEY, service TEXT NOT NULL, body BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS events_by_service ON events (service, id)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS episodes (book TEXT NOT NULL, id TEXT NOT NULL, "
                "opened_at REAL NOT NULL, resolved INTEGER NOT NULL, body BLOB NOT NULL, "
                "PRIMARY KEY (book, id, opened_at))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS baseline (id INTEGER PRIMARY KEY CHECK (id = 1), body BLOB NOT NULL)"
            )
        except sqlite3.Error as exc:  # e.g. a read-only file or folder
            self._db.close()
            raise JournalError(f"{self.path}: cannot write a journal there: {exc}") from None
        self._appended = 0
        self._failing = False  # the last append could not be written

    def append(self, events: list[ExecutionEvent]) -> None:
        """Commit ``events``; when this returns they are on disk.

        Raises StoreUnavailable when the journal cannot be written (a full disk, a file-size
        limit, an I/O error): nothing of the batch is journaled then, so the monitor answers
        503 with Retry-After and acknowledges nothing it could not keep.
        """
        rows = [(e.service, _encoder.encode(e)) for e in events]
        with self._lock:
            try:
                self._commit(rows)
            except sqlite3.Error as exc:
                if not self._failing:  # once per outage, not once per refused batch
                    log.warning(
                        "%s: cannot write to the journal (%s); ingest answers 503 until it can",
                        self.path,
                        exc,
                    )
                self._failing = True
                raise StoreUnavailable(f"the event journal (--persist) cannot be written: {exc}") from None
            if self._failing:
                log.warning("%s: the journal takes writes again", self.path)
                self._failing = False
            self._appended += len(rows)
            if self._appended >= self.keep:
                self._trim()

    def _commit(self, rows: Sequence[tuple[str, bytes]]) -> None:
        """Insert ``rows`` in one transaction, rolled back when it fails (SQLite has already
        rolled back after some errors, such as a failed write: then there is nothing to undo)."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT INTO events (service, body) VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    def _trim(self) -> None:
        """Delete all but the newest ``keep`` events of each side; when that fails (a full disk)
        the batch is journaled all the same, and the next append tries again."""
        try:
            for service in SERVICES:
                self._db.execute(
                    "DELETE FROM events WHERE service = ? AND id <= "
                    "(SELECT id FROM events WHERE service = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (service, service, self.keep),
                )
        except sqlite3.Error as exc:
            log.warning("%s: cannot trim the journal (%s); trying again with the next batch", self.path, exc)
            return
        self._appended = 0

    def load(self) -> list[ExecutionEvent]:
        """The newest ``keep`` events of each side, oldest first.

        Rows that are unreadable, or break a rule added since they were written (a time out of
        range), are skipped with a warning; a damaged database raises JournalError.
        """
        events: list[tuple[int, ExecutionEvent]] = []
        skipped: list[str] = []
        with self._lock:
            try:
                for service in SERVICES:
                    cursor = self._db.execute(
                        "SELECT id, body FROM events WHERE service = ? ORDER BY id DESC LIMIT ?",
                        (service, self.keep),
                    )
                    for row_id, body in cursor:
                        try:
                            event = _decoder.decode(body)
                        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
                            skipped.append(str(exc))
                            continue
                        problem = event_problem(event)
                        if problem:
                            skipped.append(problem)
                        else:
                            events.append((row_id, event))
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"{self.path}: cannot read the journal: {exc}") from None
        if skipped:
            log.warning("%s: skipped %d journaled event(s), e.g. %s", self.path, len(skipped), skipped[0])
        events.sort(key=lambda pair: pair[0])
        return [e for _, e in events]

    def save_episode(self, book: str, episode: Episode) -> None:
        """Commit an episode as it now is (opened, raised or resolved); the newest
        ``EPISODES_KEPT`` resolved ones of the book are kept. StoreUnavailable when the journal
        cannot be written (a full disk): saving it again later is harmless."""
        row = (book, episode.id, episode.opened_at, episode.resolved_at is not None, _encoder.encode(episode))
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO episodes (book, id, opened_at, resolved, body) VALUES (?, ?, ?, ?, ?)",
                    row,
                )
                if episode.resolved_at is not None:
                    self._db.execute(
                        "DELETE FROM episodes WHERE book = ? AND resolved AND rowid NOT IN (SELECT rowid "
                        "FROM episodes WHERE book = ? AND resolved ORDER BY opened_at DESC LIMIT ?)",
                        (book, book, EPISODES_KEPT),
                    )
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event journal (--persist) cannot be written: {exc}") from None

    def load_episodes(self) -> dict[str, list[Episode]]:
        """The journaled episodes by book, oldest opened first; unreadable rows are skipped."""
        books: dict[str, list[Episode]] = {}
        with self._lock:
            try:
                rows = self._db.execute("SELECT book, body FROM episodes ORDER BY opened_at").fetchall()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"{self.path}: cannot read the journal: {exc}") from None
        for book, body in rows:
            try:
                books.setdefault(book, []).append(_episode.decode(body))
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.warning("%s: skipped a journaled difference episode: %s", self.path, exc)
        return books

    def save_baseline(self, baseline: PinnedBaseline | None) -> None:
        """Commit the pinned baseline (one row), or its removal (None); StoreUnavailable when the
        journal cannot be written, so the pin is refused with 503 rather than lost at a restart."""
        with self._lock:
            try:
                if baseline is None:
                    self._db.execute("DELETE FROM baseline")
                else:
                    body = _encoder.encode(baseline)
                    self._db.execute("INSERT OR REPLACE INTO baseline (id, body) VALUES (1, ?)", (body,))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event journal (--persist) cannot be written: {exc}") from None

    def load_baseline(self) -> PinnedBaseline | None:
        """The journaled pinned baseline, or None; an unreadable one is skipped with a warning."""
        with self._lock:
            try:
                row = self._db.execute("SELECT body FROM baseline").fetchone()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"{self.path}: cannot read the journal: {exc}") from None
        if row is None:
            return None
        try:
            return _baseline.decode(row[0])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.warning("%s: skipped the journaled baseline: %s", self.path, exc)
            return None

    def count(self) -> int:
        """Rows in the journal."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
