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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from live_monitor.model.baseline import PinnedBaseline
from live_monitor.model.events import BatchError, ExecutionEvent, decode_batch
from live_monitor.model.results import Episode
from live_monitor.store import EPISODES_KEPT, StoreUnavailable
from live_monitor.vocabulary import SERVICES

_episode = msgspec.json.Decoder(Episode)
_baseline = msgspec.json.Decoder(PinnedBaseline)
_encoder = msgspec.json.Encoder()
_SQLITE_HEADER = b"SQLite format 3\x00"
log = logging.getLogger("live_execution_monitor")
_COLUMNS = {"id", "service", "body"}
_TABLES = {"events", "episodes", "baseline"}  # events, the difference history (episodes by book), the pin
# Rows a restore reads at once: a few MB of JSON, decoded in one call of a few milliseconds (the
# monitor serves meanwhile, and a request waits for the GIL at most that long).
CHUNK_ROWS = 8192


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

    def snapshot(self, chunk_rows: int = CHUNK_ROWS) -> JournalSnapshot:
        """The newest ``keep`` events of each side as they are now, to be read back in chunks of
        ``chunk_rows`` (see JournalSnapshot); JournalError when the journal cannot be read."""
        return JournalSnapshot(self.path, self.keep, chunk_rows)

    def load(self) -> list[ExecutionEvent]:
        """The newest ``keep`` events of each side, oldest first, read at once.

        Rows that are unreadable, or break a rule added since they were written (a time out of
        range), are skipped with a warning; a damaged database raises JournalError.
        """
        events: list[ExecutionEvent] = []
        skipped: list[str] = []
        snapshot = self.snapshot()
        try:
            for chunk in snapshot.chunks():
                decoded = snapshot.decode(chunk)
                events += decoded.events
                skipped += decoded.skipped
        finally:
            snapshot.close()
        if skipped:
            log.warning("%s: skipped %d journaled event(s), e.g. %s", self.path, len(skipped), skipped[0])
        return events

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


class Chunk(NamedTuple):
    """Journaled events as read, not yet decoded: ``body`` is the JSON array of the ``rows``
    rows after ``after`` up to ``last`` (row ids), oldest first."""

    body: bytes
    rows: int
    after: int
    last: int


class Decoded(NamedTuple):
    """A chunk's events that can be read back, oldest first, and why the others cannot."""

    events: list[ExecutionEvent]
    skipped: list[str]


class JournalSnapshot:
    """The journal's newest ``keep`` events of each side as they stood when this was opened,
    read back oldest first in chunks of ``chunk_rows`` rows.

    It reads on a connection of its own inside one read transaction (WAL), so the batches
    journaled meanwhile, and the trims they cause, are not seen; it writes nothing, so a kill
    while it reads loses nothing. Reading costs SQLite's time, with the GIL released: a thread
    reads ahead while another decodes. ``total`` is how many rows it holds. JournalError
    when the database cannot be read.
    """

    def __init__(self, path: Path, keep: int, chunk_rows: int = CHUNK_ROWS) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        self._lock = threading.Lock()  # one statement at a time: chunks() and a decode's re-read
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"{path}: cannot read the journal: {exc}") from None
        try:
            self._db.execute("BEGIN")  # the first read below takes the snapshot
            counts = dict(
                self._db.execute("SELECT service, count(*) FROM events GROUP BY service").fetchall()
            )
            self._floors = {s: self._floor(s, keep) if counts.get(s, 0) > keep else 0 for s in SERVICES}
            self.total = sum(min(counts.get(s, 0), keep) for s in SERVICES)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(f"{path}: cannot read the journal: {exc}") from None
        # Rows of a side older than its newest ``keep`` are passed over (trims leave up to twice
        # as many); the services are the vocabulary's, never user input.
        self._where = " AND ".join(
            ["id > ?", "id >= ?"] + [f"(service != '{s}' OR id >= ?)" for s in SERVICES]
        )
        self._floor_args = (min(self._floors.values()), *self._floors.values())

    def _floor(self, service: str, keep: int) -> int:
        """The id of ``service``'s ``keep``-th newest row: older ones are not read back."""
        row = self._db.execute(
            "SELECT id FROM events WHERE service = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (service, keep - 1)
        ).fetchone()
        return int(row[0])

    def chunks(self) -> Iterator[Chunk]:
        """The rows as JSON arrays of up to ``chunk_rows`` events, oldest first, made by SQLite
        (one string per chunk, not a Python object per row); JournalError when it cannot read."""
        # Before SQLite 3.44 group_concat takes no ORDER BY: it joins in the order of the
        # subquery's rows, which a LIMIT keeps from being flattened into the aggregate.
        order = " ORDER BY id" if sqlite3.sqlite_version_info >= (3, 44) else ""
        query = (
            f"SELECT count(*), max(id), CAST('[' || group_concat(body, ','{order}) || ']' AS BLOB) "
            f"FROM (SELECT id, body FROM events WHERE {self._where} ORDER BY id LIMIT ?)"
        )
        after = 0
        while True:
            rows, last, body = self._read(query, (after, *self._floor_args, self.chunk_rows))[0]
            if not rows:
                return
            yield Chunk(body, rows, after, last)
            after = last

    def decode(self, chunk: Chunk) -> Decoded:
        """The chunk's events, decoded and checked as an ingested batch is (in one call); when
        a row is not JSON at all, the chunk's rows are read again and decoded one by one."""
        try:
            result = decode_batch(chunk.body, chunk.rows)
        except BatchError:
            return self._one_by_one(chunk)
        return Decoded(result.events, [error["error"] for error in result.errors])

    def _one_by_one(self, chunk: Chunk) -> Decoded:
        """Decode the chunk's rows one at a time, skipping those that cannot be read."""
        where = self._where.replace("id > ?", "id > ? AND id <= ?", 1)
        query = f"SELECT body FROM events WHERE {where} ORDER BY id"
        events: list[ExecutionEvent] = []
        skipped: list[str] = []
        for (body,) in self._read(query, (chunk.after, chunk.last, *self._floor_args)):
            raw = body.encode() if isinstance(body, str) else body
            try:
                result = decode_batch(b"[" + raw + b"]", 1)
            except BatchError as exc:
                skipped.append(str(exc))
                continue
            events += result.events
            skipped += [error["error"] for error in result.errors]
        return Decoded(events, skipped)

    def _read(self, query: str, args: tuple[int, ...]) -> list[Any]:
        """The rows of one query in the snapshot; JournalError when the database is damaged."""
        with self._lock:
            try:
                return self._db.execute(query, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"{self.path}: cannot read the journal: {exc}") from None

    def close(self) -> None:
        """End the read transaction and close the connection."""
        with self._lock:
            self._db.close()
