"""The monitoring core: ``LiveExecutionMonitor`` ties the store, the sampler and the comparator.

It knows nothing of HTTP; ``live_execution_monitor.create_app`` puts the Flask API in
front of it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import msgspec

from live_monitor.core.alerts import AlertLoop
from live_monitor.core.filtered import FilteredView
from live_monitor.core.history import History
from live_monitor.core.restore import JournalRestore
from live_monitor.core.sampler import SystemSampler
from live_monitor.core.settings import defaults
from live_monitor.model.baseline import PinnedBaseline, pin_window, pinned_summary, since_baseline
from live_monitor.model.comparator import compare, comparison, endpoint_rows, summaries
from live_monitor.model.events import BatchResult, EventFilter, ExecutionEvent, decode_batch, prepare_events
from live_monitor.model.results import (
    ActivityPoint,
    BaselineAnswer,
    BaselineComparison,
    DataAnswer,
    Difference,
    SystemSample,
)
from live_monitor.model.routes import RouteTemplates, key_by_routes, learn_routes
from live_monitor.model.scrub import Scrubber
from live_monitor.model.stats import PairStats
from live_monitor.model.thresholds import Thresholds
from live_monitor.store import Store, StoreUnavailable, make_store
from live_monitor.store.journal import EventJournal
from live_monitor.store.memory import EventStore
from live_monitor.vocabulary import API, ENDPOINT_COMPONENTS, OWN_TRAFFIC_TAG, SERVICES, is_own_path

log = logging.getLogger("live_execution_monitor")
ROUTE_SYNC_S = 5.0  # how often a process reads the route templates other processes learned

__all__ = ["LiveExecutionMonitor", "ExecutionEvent"]


class LiveExecutionMonitor:
    """Collects both sides' events and system samples and says where the two differ.

    ``backend_events`` and ``frontend_events`` behave like the deques the README's integration example appends to, but an
    ``append`` goes through the store, so such an event counts in every figure.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        reader: Callable[[], dict[str, float]] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        restore_later: bool = False,
    ) -> None:
        """With ``persist`` the journal is read back here, unless ``restore_later``: then
        ``restore_in_background()`` reads it while the monitor serves (as ``serve`` does)."""
        self.settings = {**defaults(), **(settings or {})}
        s = self.settings
        self._clock = clock
        self.scrubber = Scrubber.from_setting(s["scrub_keys"])  # the built-in rules and --scrub-keys
        self.store: Store = make_store(
            s["store"], max_events=s["max_events"], window_s=s["window"], clock=clock
        )
        # no other process adds events: its counts are asked for only when they moved
        self._private_store = isinstance(self.store, EventStore)
        self.backend_events = EventDeque(self, "backend")
        self.frontend_events = EventDeque(self, "frontend")
        self.sampler = SystemSampler(
            reader, interval=s["interval"], history=s["history"], on_tick=self._on_tick, clock=clock
        )
        thresholds = Thresholds.from_file(s["thresholds"]) if s["thresholds"] else Thresholds()
        if s["min_samples"] is not None:  # given by flag or env: it wins over the file's
            thresholds = Thresholds(**{**thresholds.as_dict(), "min_samples": s["min_samples"]})
        self.thresholds = thresholds
        self.activity: deque[dict[str, Any]] = deque(maxlen=s["history"])
        self.routes = RouteTemplates()  # the server's route templates, to key the browser's calls by
        self._routes_synced = -math.inf  # when the shared store's templates were last read
        self._lock = threading.Lock()
        # (counted, time bucket, restoring), what was found, whether the window was empty then
        self._differences: tuple[tuple[int, int, bool], list[Difference], bool] | None = None
        self._since: tuple[tuple[int, int, float], BaselineComparison] | None = None
        self._tick_lock = threading.Lock()
        self._tick = threading.Condition(self._tick_lock)
        self._tick_number = 0
        self._tick_waiters = 0  # threads in wait_for_tick (under self._tick)
        self.draining = False
        self.self_events_dropped = 0  # own API calls not recorded because the store was down
        self._dropped_lock = threading.Lock()
        self.journal: EventJournal | None = None
        self.journal_restore: JournalRestore | None = None
        if s["persist"]:
            self.journal = EventJournal(s["persist"], keep=s["max_events"])
            pinned = self.journal.load_baseline()
            if pinned is not None:
                self.store.set_baseline(pinned)  # the baseline pinned before the restart
            self.journal_restore = JournalRestore(self.journal, self.store, self._prepare_restored)
            if not restore_later:
                self.journal_restore.run()
        self.url = s["public_url"] or f"http://{s['host']}:{s['port']}/"  # the dashboard, for alerts
        self.history = History(self.store, self.journal)  # restored from the journal with --persist
        private = self._private_store  # no other process opens or closes an episode
        self._tick_counted = -1  # the store's counted when the last tick took its counts
        self.alerts = AlertLoop.from_settings(
            s, self._differences_to_check, self.history, clock, lambda: self.url, private=private
        )

    # --- the journal read back (--persist) ---------------------------------------------------

    def _prepare_restored(self, events: list[ExecutionEvent]) -> None:
        """Make journaled events fit to keep again: scrubbed by today's rules (--scrub-keys may
        have grown since), their repeated strings shared, the server's routes learned."""
        prepare_events(events, self.scrubber)
        learn_routes(self.routes, events)

    def restore_in_background(self) -> None:
        """Read the journal back in a thread while the monitor serves (nothing without --persist,
        or when it was read back on construction)."""
        if self.journal_restore is not None and not self.journal_restore.done:
            self.journal_restore.start()

    @property
    def restoring(self) -> bool:
        """True while the journal is read back: new events wait, the window's figures are empty
        (its buckets are filled oldest first; reading them now would close them too early),
        alert checks and pinning wait too."""
        return self.journal_restore is not None and not self.journal_restore.done

    def first_live_seq(self) -> int:
        """The store's seq after the events read back from the journal: they were stored, not
        received, so the live stream starts after them (0 without a restore)."""
        restore = self.journal_restore
        if restore is None:
            return 0
        journal_seq = restore.journal_seq
        return self.store.seq if journal_seq is None else journal_seq  # while restoring: all so far

    def not_ready(self) -> str | None:
        """Why ``/ready`` answers 503 though the store answers (the journal is not all read
        back, or could not be), else None."""
        return self.journal_restore.not_ready() if self.journal_restore is not None else None

    def _keep(self, events: list[ExecutionEvent]) -> None:
        """Store a batch, or hand it to a restore still running: it stores them after the
        journal's events, in the order they came."""
        restore = self.journal_restore
        if restore is None or not restore.defer(events):
            self.store.add(events)

    def _differences_to_check(self) -> list[Difference]:
        """The alert loop's differences; while the journal is read back a check fails (and is
        tried again): the window is not all in, and an empty one would resolve open alerts."""
        if self.restoring:
            raise StoreUnavailable("the journal (--persist) is being read back; checks begin once it is")
        return self.differences()

    # --- control -------------------------------------------------------------------------

    @property
    def monitoring(self) -> bool:
        """True between start() and stop() (with Redis: started by any process)."""
        return self.store.monitoring_state()[0] is not None

    def start(self) -> bool:
        """Start sampling and the monitoring clock; False when already monitoring.

        The activity chart's first point counts from here: events that came while stopped are
        stored and counted, but would otherwise all land in that one point as a spike.
        """
        with self._lock:
            changed = self.store.set_monitoring(True, self._clock())
            if changed:
                self.store.take_tick_counts()
            self.sampler.start()  # its ticks run the alert checks too
            return changed

    def stop(self) -> bool:
        """Stop sampling; stored data stays. False when not monitoring."""
        with self._lock:
            changed = self.store.set_monitoring(False, self._clock())
            self.sampler.stop()
        with self._tick:
            self._tick.notify_all()
        return changed

    def uptime(self) -> float:
        """Seconds spent monitoring, across start/stop cycles."""
        return self._uptime(*self.store.monitoring_state())

    def monitoring_clock(self) -> tuple[bool, float]:
        """(monitoring, uptime) from one read of the monitoring state (a Redis round trip)."""
        started, elapsed = self.store.monitoring_state()
        return started is not None, self._uptime(started, elapsed)

    def _uptime(self, started: float | None, elapsed: float) -> float:
        return elapsed + (self._clock() - started if started is not None else 0.0)

    def _follow_shared_state(self) -> tuple[float | None, float]:
        """Read the monitoring state once (a Redis round trip with a shared store) and sample
        here too when another process started monitoring; returns (started_at, elapsed)."""
        started, elapsed = self.store.monitoring_state()
        if started is not None and not self.sampler.running and not self.draining:
            self.store.take_tick_counts()  # as start() does: no spike of what came while stopped
            self.sampler.start()
        elif started is None and self.sampler.running:
            self.sampler.stop()
        return started, elapsed

    # --- ingest --------------------------------------------------------------------------

    def ingest(self, body: bytes, max_events: int | None = None) -> BatchResult:
        """Decode, validate and store one batch; raises live_monitor.model.events.BatchError."""
        result = decode_batch(body, max_events or self.settings["max_batch_events"])
        if result.events:
            self.accept(result.events)
        if result.errors:
            self.store.reject(_reason(e["error"]) for e in result.errors)
        return result

    def accept(self, events: list[ExecutionEvent]) -> None:
        """Store events received from a client: journaled first (with --persist), then kept.

        Browser calls to the monitor's own API (the dashboard polling) are tagged as the
        monitor's own traffic, like the backend side of them, so they are not compared.
        """
        prepare_events(events, self.scrubber)
        tag_own_traffic(events)
        self._key_by_routes(events)
        if self.journal is not None:
            self.journal.append(events)
        self._keep(events)

    def begin_drain(self) -> None:
        """The server is shutting down: new requests get 503 and open streams end."""
        self.draining = True
        with self._tick:
            self._tick.notify_all()

    def close(self) -> None:
        """Stop monitoring and close the journal; a shared store that is down only gets a warning
        (it keeps its state, and shutting down must not end in a traceback)."""
        try:
            self.stop()
        except StoreUnavailable as exc:
            self.sampler.stop()
            log.warning("stopping: %s; the shared monitoring state was left as it was", exc)
        finally:
            self.alerts.close()
            if self.journal_restore is not None:
                self.journal_restore.stop()
            if self.journal is not None:
                self.journal.close()

    def _key_by_routes(self, events: list[ExecutionEvent]) -> None:
        """Learn the server's route templates from ``events`` and key the browser's calls by
        them. With a shared store, what this process learned is shared and what the others
        learned is read: at once when a template is new here, else every ``ROUTE_SYNC_S``."""
        self._sync_routes(learn_routes(self.routes, events))
        key_by_routes(self.routes, events)

    def _sync_routes(self, learned: list[str]) -> None:
        """Share the templates learned here and read the others': at once when there are new
        ones, else at most every ``ROUTE_SYNC_S`` (also on reads, so a process that only
        serves the dashboard keys calls by what the others learned)."""
        now = self._clock()
        if learned or now - self._routes_synced >= ROUTE_SYNC_S:
            self._routes_synced = now
            self.routes.learn_keys(self.store.share_routes(learned))

    def record(self, *events: ExecutionEvent) -> None:
        """Store events built in Python (self-monitoring, integrations, ``backend_events``),
        scrubbed and tagged as ``accept`` does; they are not journaled."""
        batch = list(events)
        prepare_events(batch, self.scrubber)
        tag_own_traffic(batch)
        self._key_by_routes(batch)
        self._keep(batch)

    def record_own(self, event: ExecutionEvent) -> None:
        """Record one of the monitor's own API calls, a side effect that must never change the
        call's answer: while the store is down the event is dropped and counted instead."""
        try:
            self.record(event)
        except StoreUnavailable:
            with self._dropped_lock:
                self.self_events_dropped += 1

    def served_at(self, base: str) -> None:
        """The server listens at ``base``: the dashboard's address for alerts, unless --public-url gave one."""
        if not self.settings["public_url"]:
            self.url = base.rstrip("/") + "/"

    def ready(self) -> None:
        """Readiness: one round trip to the store; raises StoreUnavailable while it is down."""
        self.store.monitoring_state()

    # --- periodic work -------------------------------------------------------------------

    def _on_tick(self, sample: dict[str, Any]) -> None:
        """After each sample: an activity point, the differences and the alert check on them
        (one wake-up a second for all three); open streams are woken even when the store is
        down (they end with a retry hint then), and the alert check counts the outage."""
        found: list[Difference] | StoreUnavailable | None = None
        restoring = self.restoring  # read once: a restore ending mid-tick must not pass its empty window on
        try:
            now, counted = sample["timestamp"], self.store.counted
            self.activity.append({"timestamp": now, **self._tick_counts(counted)})
            found = self._found(restoring, now=now, counted=counted)
        except StoreUnavailable as exc:
            found = exc  # the check counts this outage instead of waiting on the store again
            raise
        finally:
            with self._tick_lock:  # the Condition's lock taken directly: no Python frame
                self._tick_number += 1
                if self._tick_waiters:  # notify_all's Python code only when a stream waits
                    self._tick.notify_all()
            # while the journal is read back the check reads for itself, and fails: see below
            self.alerts.on_tick(None if restoring else found)  # never raises

    def _tick_counts(self, counted: int) -> dict[str, int]:
        """The store's counts since the last tick; with this process's own store, not asked when
        nothing was counted since the last tick's ``counted`` (read before it took the counts:
        every count the store adds moves ``counted`` first, under the same lock)."""
        if self._private_store and counted == self._tick_counted:
            return _NO_COUNTS
        self._tick_counted = counted
        return self.store.take_tick_counts()

    def wait_for_tick(self, after: int, timeout: float) -> int:
        """Block until a tick newer than ``after`` (or timeout); returns the tick number."""
        with self._tick:
            self._tick_waiters += 1
            try:
                self._tick.wait_for(lambda: self._tick_number > after or self.draining, timeout)
            finally:
                self._tick_waiters -= 1
            return self._tick_number

    # --- reading -------------------------------------------------------------------------

    def window_stats(self) -> PairStats:
        """The store's window, the browser's calls keyed by the server's routes as now known
        (also those counted before their route was learned); empty while the journal is read back."""
        if self.restoring:
            stats = PairStats()
            stats.backend.minutes = stats.frontend.minutes = self.store.window_s / 60
            return stats
        stats = self.store.window_stats()
        self._sync_routes([])
        if len(self.routes):
            stats.frontend.rekey(self.routes.key_for)
        return stats

    def _keyed(self, events: list[ExecutionEvent]) -> list[ExecutionEvent]:
        """``events`` with the browser's calls keyed by the server's routes as now known, as
        ``window_stats`` counts them (copies: the store's events are never changed by a read)."""
        if not len(self.routes):
            return events
        calls = ENDPOINT_COMPONENTS["frontend"]  # what key_by_routes may change: the browser's calls
        copies = [
            msgspec.structs.replace(e) if e.component == calls and e.service == "frontend" else e
            for e in events
        ]
        key_by_routes(self.routes, copies)
        return copies

    def view(self, where: EventFilter) -> FilteredView:
        """The window's figures of the events of one release and/or environment, computed from
        the stored events (``core.filtered``: the running statistics hold all events together)."""
        minutes = self.window_stats().backend.minutes  # rates per minute of the same window
        return FilteredView(self.store, self.routes, where, self._clock(), minutes)

    def filtered_differences(self, view: FilteredView) -> list[Difference]:
        """The differences of a filtered view (never cached: each view is read once)."""
        return compare(view.stats, self.thresholds)

    def differences(self, stats: PairStats | None = None) -> list[Difference]:
        """The differences now detected, recomputed only when a counted event arrived or a time
        bucket entered the window (and the oldest left it): never for a poll or own traffic.

        ``stats`` saves reading the window twice when the caller already has it.
        """
        return self._found(self.restoring, stats)

    def _found(
        self,
        restoring: bool,
        stats: PairStats | None = None,
        now: float | None = None,
        counted: int | None = None,
    ) -> list[Difference]:
        """``differences()`` with what the tick has already read: ``restoring``, the time and
        the store's ``counted`` (each read once per tick)."""
        cached = self._differences
        store = self.store
        if now is None:
            now = self._clock()
        if counted is None:
            counted = store.counted
        # while restoring the window is empty: what is found then must not outlive the restore
        key = (counted, int(now // store.bucket_s), restoring)
        if cached is not None and (cached[0] == key or cached[2] and cached[0][::2] == key[::2]):
            return cached[1]  # (an empty window of our own store stays empty until an event is counted)
        stats = stats or self.window_stats()
        found = compare(stats, self.thresholds)
        self._differences = (key, found, self._private_store and _empty(stats))
        return found

    # --- the pinned baseline -------------------------------------------------------------

    def pin_baseline(self) -> BaselineAnswer:
        """Pin the window as it is now as the baseline (journaled with --persist; shared by every
        process on Redis); the answer compares the window with it, so nothing has changed yet."""
        if self.restoring:
            raise StoreUnavailable("the journal (--persist) is being read back; pin once it is")
        stats = self.window_stats()
        pinned = pin_window(stats, self.differences(stats), self._clock(), self.store.window_s)
        if self.journal is not None:
            self.journal.save_baseline(pinned)
        self.store.set_baseline(pinned)
        return self._baseline_answer(pinned, stats)

    def unpin_baseline(self) -> bool:
        """Unpin the baseline; False when none was pinned."""
        if self.journal is not None:
            self.journal.save_baseline(None)
        return self.store.clear_baseline()

    def baseline(self) -> BaselineAnswer:
        """The pinned baseline's figures and what changed since, per endpoint key and side."""
        pinned = self.store.baseline()
        if pinned is None:
            return {"pinned": False, "baseline": None, "since_baseline": None}
        return self._baseline_answer(pinned, self.window_stats())

    def _baseline_answer(self, pinned: PinnedBaseline, stats: PairStats) -> BaselineAnswer:
        """The answer of /baseline; the comparison is recomputed only when the differences would
        be (a counted event, a time bucket) or another baseline was pinned."""
        key = (self.store.counted, int(self._clock() // self.store.bucket_s), pinned.pinned_at)
        cached = self._since
        if cached is None or cached[0] != key:
            cached = (key, since_baseline(pinned, stats, self.differences(stats), self.thresholds))
            self._since = cached
        return {
            "pinned": True,
            "baseline": pinned_summary(pinned, self.thresholds),
            "since_baseline": cached[1],
        }

    def status(self) -> dict[str, Any]:
        """Monitoring state, uptime, counts and ingest counters."""
        started, elapsed = self._follow_shared_state()
        counts = self.store.counts()
        last = self.sampler.last_sample_at
        return {
            "monitoring": started is not None,
            "uptime_seconds": round(self._uptime(started, elapsed), 1),
            "started_at": _iso(started),
            "interval_seconds": self.sampler.interval,
            "last_sample_age_seconds": round(self._clock() - last, 2) if last else None,
            "sampler_errors": self.sampler.errors,
            "backend_events": counts["totals"]["backend"],
            "frontend_events": counts["totals"]["frontend"],
            "differences_found": len(self.differences()),
            "self_events_dropped": self.self_events_dropped,
            **counts,
            "alerts": self.alerts.status(),
            "restoring": self.restoring,
            "restore": self.journal_restore.status() if self.journal_restore is not None else None,
        }

    def data(
        self,
        limit: int | None = None,
        include_self: bool = True,
        history: int = 300,
        where: EventFilter | None = None,
    ) -> DataAnswer:
        """Everything the dashboard draws: summaries, comparison, endpoints, system, events;
        with ``where``, the figures and events of one release and/or environment only (the
        system and activity samples are the process's, whatever sent the events)."""
        started, elapsed = self._follow_shared_state()
        view = self.view(where) if where else None
        stats = view.stats if view else self.window_stats()
        limit = self.settings["recent_limit"] if limit is None else limit
        backend, frontend = summaries(stats)
        if view:
            totals = {side: view.matched(side) for side in ("backend", "frontend")}
            differences = self.filtered_differences(view)
            recent = view.newest(limit, include_self=include_self)
        else:
            totals = self.store.counts()["totals"]
            differences = self.differences(stats)
            recent = self.store.recent(limit, include_self=include_self)
        backend["total_events"], frontend["total_events"] = totals["backend"], totals["frontend"]
        backend["window_events"], frontend["window_events"] = (
            stats.backend.total.count,
            stats.frontend.total.count,
        )
        answer: DataAnswer = {
            "monitoring": started is not None,
            "uptime_seconds": round(self._uptime(started, elapsed), 1),
            "window_seconds": self.store.window_s,
            "generated_at": _iso(self._clock()),
            "backend": backend,
            "frontend": frontend,
            "comparison": comparison(stats),
            "endpoints": endpoint_rows(stats),
            "differences_count": len(differences),
            "differences": differences,  # the page's alerts: one request per poll, not two
            "thresholds": self.thresholds.as_dict(),
            "system": cast("SystemSample | None", self.sampler.latest() or self.sampler.peek()),
            "system_history": cast("list[SystemSample]", self.sampler.recent(history)),
            "activity_history": cast(
                "list[ActivityPoint]", list(self.activity)[-history:] if history > 0 else []
            ),
            "recent_events": [e.to_dict() for e in self._keyed(recent)],
        }
        if view:
            answer["filter"] = view.note()
        return answer


_NO_COUNTS: dict[str, int] = dict.fromkeys(SERVICES, 0)  # an idle tick's activity point (copied into it)


def _empty(stats: PairStats) -> bool:
    """No event in the window: a time bucket leaving it changes nothing then."""
    return not (stats.backend.total.count or stats.frontend.total.count or stats.trace_gaps)


def tag_own_traffic(events: list[ExecutionEvent]) -> None:
    """Tag endpoint events of the monitor's own API as its own traffic: the one place that decides
    it; stores and readers only read the tag (``vocabulary.is_own_traffic``)."""
    for event in events:
        if API not in event.action or event.endpoint is None or event.is_self:
            continue  # the substring test first: it alone settles almost every event, cheaply
        if is_own_path(event.action.split(" ", 1)[-1]):
            event.details = {**event.details, OWN_TRAFFIC_TAG: True}


def _reason(error: str) -> str:
    """The rule of a rejection for the rejected-by-reason counter: no event index and no
    value the client sent, so the counter's keys stay a small, fixed vocabulary."""
    head, _, rule = error.partition(": ")
    field = head.split("]", 1)[1].lstrip(".") if "]" in head else ""
    rule = re.sub(r"'[^']*'|\"[^\"]*\"", "…", rule)[:120]
    return f"{field}: {rule}" if field else rule


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class EventDeque:
    """The README's ``monitor.backend_events``: a deque-like view whose appends go through the
    monitor's ``record``, so ``monitor.backend_events.append(event)`` counts in every figure."""

    def __init__(self, monitor: LiveExecutionMonitor, service: str) -> None:
        self._monitor = monitor
        self._store = monitor.store
        self._service = service

    def append(self, event: ExecutionEvent | dict[str, Any]) -> None:
        """Store one event of this side."""
        self.extend([event])

    def extend(self, events: Iterable[ExecutionEvent | dict[str, Any]]) -> None:
        """Store several events of this side."""
        checked = []
        for event in events:
            if isinstance(event, dict):
                event = ExecutionEvent(**{"service": self._service, **event})
            if event.service != self._service:
                raise ValueError(f"a {event.service} event cannot go into {self._service}_events")
            checked.append(event)
        self._monitor.record(*checked)  # scrubbed and tagged like any other event

    @property
    def maxlen(self) -> int:
        """How many events of this side are kept."""
        return self._store.max_events

    def __len__(self) -> int:
        return self._store.counts()["stored"][self._service]

    def __iter__(self) -> Iterator[ExecutionEvent]:
        return iter(self._store.events(self._service))

    def __getitem__(self, index: int) -> ExecutionEvent:
        return self._store.events(self._service)[index]
