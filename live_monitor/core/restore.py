"""Reading the ``--persist`` journal back into the store at start, while the monitor serves.

A journal of a million events takes seconds to read back; the monitor answers meanwhile
(``/health``, ``/data``, ``/status`` with what is in so far; ``/ready`` 503 until it is all in).
The journal is read in chunks, oldest first, from a snapshot taken when the restore begins:
one thread reads the next chunk from SQLite (which releases the GIL) while another decodes,
checks, scrubs and stores the last one, so the two cores share the work.

Events that arrive during the restore are journaled and acknowledged as always, then wait here;
when the journal's events are all in, the waiting ones join the store after them, in the order
they came. The store then holds what it would have held had the journal been read before
serving: the journal's events, then the new ones, the newest ``--max-events`` of each side.
The restore writes nothing, so a ``kill -9`` during it loses nothing: the next start reads the
same journal, new events included.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from live_monitor.model.events import ExecutionEvent
from live_monitor.store import Store
from live_monitor.store.journal import Chunk, EventJournal, JournalError, JournalSnapshot

log = logging.getLogger("live_execution_monitor")
READ_AHEAD = 2  # chunks read from SQLite before they are decoded: enough to keep both cores busy


class JournalRestore:
    """One restore of ``journal`` into ``store``; ``prepare`` makes each chunk fit to keep
    (scrubbed by today's rules, strings shared, routes learned) before it is stored.

    ``run()`` restores in the calling thread (JournalError when the journal cannot be read);
    ``start()`` in a thread of its own, which logs such an error and keeps it for ``/ready``.
    ``defer(events)`` is the store's door while it runs: events that arrive wait for the end.
    """

    def __init__(
        self,
        journal: EventJournal,
        store: Store,
        prepare: Callable[[list[ExecutionEvent]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._store = store
        self._prepare = prepare
        self._clock = clock
        self._lock = threading.Lock()  # the waiting events and the switch to "done"
        self._waiting: list[ExecutionEvent] = []
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = False  # the journal's events are in (or could not be read) and the waiting joined them
        self.journal_seq: int | None = None  # the store's seq once the journal's events were in
        self.loaded = 0  # journaled events stored so far
        self.total: int | None = None  # journaled events to read back, once the snapshot is taken
        self.skipped = 0  # journaled events that could not be read back
        self._skip_reason = ""  # why the first of them could not
        self.error: str | None = None  # why the restore stopped short (a damaged journal)
        self._began: float | None = None
        self._ended: float | None = None

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Restore in a thread of its own (once); ``wait`` or ``done`` tell when it has ended."""
        if self._thread is not None or self.done:
            return
        self._thread = threading.Thread(target=self._run_logged, name="journal-restore", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Restore in this thread; raises JournalError when the journal cannot be read (nothing
        is waiting then: nothing was served before)."""
        try:
            self._restore()
        finally:
            self._finish()

    def _run_logged(self) -> None:
        """The thread's work: a journal that cannot be read stops the restore with one line in
        the log; what was read stays, and new events are stored from then on."""
        try:
            self._restore()
        except JournalError as exc:
            self.error = str(exc)
            log.error("--persist: the journal could not be read back: %s; serving what was read", exc)
        except Exception as exc:  # noqa: BLE001 - the monitor must go on storing new events
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("--persist: reading the journal back failed; serving what was read")
        finally:
            self._finish()

    def _restore(self) -> None:
        """Read the journal's snapshot back, chunk by chunk, oldest first."""
        self._began = self._clock()
        snapshot = self._journal.snapshot()
        self.total = snapshot.total
        chunks = _read_ahead(snapshot.chunks(), READ_AHEAD, self._stop)
        try:
            for chunk in chunks:
                self.before_chunk()
                if self._stop.is_set():
                    return
                self._store_chunk(snapshot, chunk)
        finally:
            chunks.close()  # the reading thread has ended: its connection may close
            snapshot.close()
        if self.skipped:
            path, reason = self._journal.path, self._skip_reason
            log.warning("%s: skipped %d journaled event(s), e.g. %s", path, self.skipped, reason)

    def before_chunk(self) -> None:
        """Called before each chunk is stored (tests hold a restore here, half done)."""

    def _store_chunk(self, snapshot: JournalSnapshot, chunk: Chunk) -> None:
        decoded = snapshot.decode(chunk)
        if decoded.skipped:
            self._skip_reason = self._skip_reason or decoded.skipped[0]
            self.skipped += len(decoded.skipped)
        events = decoded.events
        self._prepare(events)
        self._store.restore(events)
        self.loaded += len(events)

    def _finish(self) -> None:
        """Store the events that waited, in their order, then open the door: the last of them
        are stored under the lock, so none can slip in ahead of them."""
        self.journal_seq = self._store.seq  # what the live stream starts after
        while True:
            with self._lock:
                waiting, self._waiting = self._waiting, []
                if len(waiting) < 1000:  # few enough to store while new ones wait
                    if waiting:
                        self._store.add(waiting)
                    self.done = True
                    break
            self._store.add(waiting)  # meanwhile more may come: they wait for the next round
        self._ended = self._clock()
        self._finished.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop a restore running in its thread (shutting down); the journal is left as it is."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the restore has ended (True) or ``timeout`` seconds passed (False)."""
        return self._finished.wait(timeout)

    # --- the store's door ------------------------------------------------------------------

    def defer(self, events: list[ExecutionEvent]) -> bool:
        """Keep ``events`` (already journaled) until the journal's are in; False once the restore
        has ended: the caller stores them itself."""
        if self.done:
            return False
        with self._lock:
            if self.done:
                return False
            self._waiting += events
            return True

    # --- reporting -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """How far the restore is (``results.RestoreStatus``)."""
        began, ended = self._began, self._ended
        seconds = 0.0 if began is None else (ended if ended is not None else self._clock()) - began
        state = "restoring" if not self.done else "failed" if self.error else "restored"
        return {
            "state": state,
            "loaded": self.loaded,
            "total": self.total,
            "waiting": len(self._waiting),
            "skipped": self.skipped,
            "seconds": round(seconds, 3),
            "error": self.error,
        }

    def not_ready(self) -> str | None:
        """Why the monitor is not ready yet (for ``/ready``), or None once the journal is all in."""
        if not self.done:
            total = "?" if self.total is None else f"{self.total:,}"
            return (
                f"restoring the journal (--persist): {self.loaded:,} of {total} events read back; "
                "ready when all are in"
            )
        if self.error:
            return f"the journal (--persist) could not be read back: {self.error}"
        return None


def _read_ahead(chunks: Iterator[Chunk], depth: int, stop: threading.Event) -> Generator[Chunk, None, None]:
    """``chunks``, produced by a thread of their own up to ``depth`` ahead of the consumer; an
    error of the producer is raised here, in its place. The producer has ended when this does."""
    ahead: queue.Queue[Chunk | BaseException | None] = queue.Queue(depth)
    halt = threading.Event()  # the consumer is gone, or the restore stops

    def put(item: Chunk | BaseException | None) -> bool:
        while not (halt.is_set() or stop.is_set()):
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(exc)
            return
        put(None)

    producer = threading.Thread(target=produce, name="journal-read", daemon=True)
    producer.start()
    try:
        while not stop.is_set():
            try:
                item = ahead.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        halt.set()
        producer.join()  # at most one query: then the snapshot may be closed
