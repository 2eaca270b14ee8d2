"""The event store: bounded deques, ingest counters and windowed running aggregates.

One small class owns the lock and hands out copies, so readers always see a consistent
snapshot and no caller can mutate shared state behind its back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from live_monitor.model import policy
from live_monitor.model.baseline import PinnedBaseline
from live_monitor.model.events import ExecutionEvent
from live_monitor.model.results import Episode
from live_monitor.model.stats import PairStats, Tallies, group_events, group_gaps
from live_monitor.store import EPISODES_KEPT
from live_monitor.vocabulary import SERVICES, is_own_traffic

MAX_REASONS = 100
STREAM_LOG = 2_000
SETTLE_EVERY = 2_048  # events queued before they are counted even if nobody reads the figures


class EventStore:
    """Thread-safe store of the latest events of each side plus their running statistics.

    Statistics cover a sliding window (``window_s``) kept as time buckets: each event is
    added to the current bucket only; a bucket that closes is merged into the total of
    closed buckets and subtracted again when it leaves the window. Reading the figures
    merges that total with the current bucket, so it never rescans the stored events.
    """

    def __init__(
        self,
        max_events: int = 10_000,
        window_s: float = 900.0,
        bucket_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.max_events = max_events
        self.window_s = window_s
        self.bucket_s = bucket_s or max(window_s / 60, 1.0)
        self._events: dict[str, deque[ExecutionEvent]] = {s: deque(maxlen=max_events) for s in SERVICES}
        self._buckets: deque[tuple[float, PairStats]] = deque()  # closed, oldest first
        self._current: tuple[float, PairStats] | None = None
        self._closed = PairStats()
        self._tallies = Tallies()  # since the store began: the window never takes from it
        self._joiner = policy.TraceJoin()
        self._counters: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        self._since_tick: Counter[str] = Counter()
        self._seq = 0
        self._counted = 0
        self._log: deque[ExecutionEvent] = deque(maxlen=STREAM_LOG)  # for /stream: the last is number _seq
        # Kept, not yet counted in the current bucket: per side, as add() already split them.
        self._pending: tuple[list[ExecutionEvent], list[ExecutionEvent]] = ([], [])
        self._pending_count = 0
        self._pending_since = self._pending_until = 0.0
        self._first_event_at: float | None = None
        self._started_at: float | None = None
        self._elapsed = 0.0
        self._books: dict[str, _Book] = {}
        self._baseline: PinnedBaseline | None = None

    # --- writing -------------------------------------------------------------------------

    def add(self, events: Iterable[ExecutionEvent]) -> int:
        """Store valid events; returns how many were accepted."""
        events = events if isinstance(events, list) else list(events)
        now = self._clock()
        with self._lock:
            self._counters["received"] += len(events)
            self._counters["accepted"] += len(events)
            if self._first_event_at is None and events:
                self._first_event_at = now
            self._add_locked(events, now, self._bucket(now))
        return len(events)

    def restore(self, events: Iterable[ExecutionEvent]) -> int:
        """Put back events read from a journal, oldest first, each in the bucket of its own time.

        They count in the figures (those still inside the window) and the totals, and in the
        ``restored`` counter rather than ``accepted``; not in the activity chart, as they are not
        new. A time before the current bucket counts in it, one to come counts as now. A long
        journal may come back in several calls, oldest first, before anything else is added or
        the window read (the monitor sees to that): each bucket is closed by the next events'.
        The events of one bucket are kept and counted as one batch arriving at the newest of
        their times, so a million events come back in seconds rather than a dozen Python
        steps each; those of buckets already out of the window are tallied but never counted
        in a bucket, which would only be taken out of the window's figures again.
        """
        events = events if isinstance(events, list) else list(events)
        now, width = self._clock(), self.bucket_s
        gone = now - self.window_s - width  # a bucket that starts by then is out of the window

        def flush(group: list[ExecutionEvent], start: float, newest: datetime) -> None:
            if not group:
                return
            at = newest.timestamp()
            if start > gone or self._current is not None:
                self._add_locked(group, at, self._bucket(at))
                return
            self._add_locked(group, at, PairStats())  # no bucket: _settle leaves the queue
            pending, self._pending, self._pending_count = self._pending, ([], []), 0
            for service, mine in zip(SERVICES, pending, strict=True):
                self._tallies.add_events(service, mine)

        # Times compared as the aware datetimes events keep: a conversion per bucket, not per event.
        stamps = cast("list[datetime]", [e.timestamp for e in events])
        with self._lock:
            ticks = self._since_tick.copy()
            floor = start = self._current[0] if self._current is not None else -math.inf
            latest, end, newest = _moment(now), _moment(start + width), _moment(start)
            first = 0
            for i, at in enumerate(stamps):
                if at > latest:
                    at = latest
                if at >= end:
                    flush(events[first:i], start, newest)
                    first, epoch = i, at.timestamp()
                    start = epoch - epoch % width
                    end, newest = _moment(start + width), at
                elif at > newest:
                    newest = at
            flush(events[first:], start, newest)
            if self._first_event_at is None and events:
                self._first_event_at = max(min(events[0].epoch, now), floor)
            self._counters["restored"] += len(events)
            self._since_tick = ticks
        return len(events)

    def _add_locked(self, events: list[ExecutionEvent], now: float, bucket: PairStats) -> None:
        """Keep a batch and queue it for the current bucket's figures (lock held).

        Counting waits for the next read, the bucket's end or ``SETTLE_EVERY`` queued
        events, and is then done for the whole queue at once (``_settle``). Trace halves are
        paired on arrival, so the age of a waiting half is measured exactly, and a browser call
        that meets its server request is re-keyed to the server's key before it is counted.
        """
        self._log.extend(events)
        self._seq += len(events)
        counted = policy.counted(events)
        self._counted += len(counted)
        self._counters["self_events"] += len(events) - len(counted)
        sides = policy.by_side(events)
        for service, mine in zip(SERVICES, sides, strict=True):
            if not mine:
                continue
            store = self._events[service]
            overflow = len(store) + len(mine) - (store.maxlen or 0)
            if overflow > 0:
                self._counters[f"evicted_{service}"] += overflow
            store.extend(mine)
        if len(counted) < len(events):  # the monitor's own traffic: listed, never counted or compared
            sides = policy.by_side(counted)
        for service, mine in zip(SERVICES, sides, strict=True):
            self._totals[service] += len(mine)
            self._since_tick[service] += len(mine)
        joined = policy.pairable(counted)
        if joined and (gaps := self._joiner.offer(joined, now)):
            grouped = group_gaps(gaps)  # once, for the window and the tallies
            bucket.add_gap_groups(grouped)
            self._tallies.add_gap_groups(grouped)
        if not self._pending_count:
            self._pending_since = now
        for queued, mine in zip(self._pending, sides, strict=True):
            queued.extend(mine)
        self._pending_count += len(counted)
        self._pending_until = now
        if self._pending_count >= SETTLE_EVERY:
            self._settle()

    def _settle(self) -> None:
        """Count the queued events into the current bucket and the tallies."""
        pending = self._pending
        if not self._pending_count or self._current is None:
            return
        self._pending, self._pending_count = ([], []), 0
        bucket = self._current[1]
        first, last = self._pending_since, self._pending_until
        for service, mine in zip(SERVICES, pending, strict=True):
            groups = group_events(service, mine)  # once, for the window and the tallies
            bucket.side(service).add_groups(groups, first, last)
            self._tallies.add_groups(service, groups)

    def reject(self, reasons: Iterable[str]) -> None:
        """Count refused events (a malformed body counts as one) by the rule that refused them."""
        with self._lock:
            for reason in reasons:
                self._counters["received"] += 1
                self._counters["rejected"] += 1
                if reason not in self._rejected and len(self._rejected) >= MAX_REASONS:
                    reason = "(other)"
                self._rejected[reason] += 1

    def _bucket(self, now: float) -> PairStats:
        """The bucket for ``now``, expiring buckets older than the window (lock held)."""
        start = now - now % self.bucket_s
        current = self._current
        if current is None or current[0] < start:
            self._settle()
            if current is not None:
                self._buckets.append(current)
                self._closed.merge(current[1])
            self._current = current = (start, PairStats())
        while self._buckets and self._buckets[0][0] <= now - self.window_s - self.bucket_s:
            _, old = self._buckets.popleft()
            self._closed.subtract(old)
        return current[1]

    # --- monitoring state ------------------------------------------------------------------

    def monitoring_state(self) -> tuple[float | None, float]:
        """(started_at or None, seconds monitored before it)."""
        with self._lock:
            return self._started_at, self._elapsed

    def set_monitoring(self, on: bool, now: float) -> bool:
        """Start or stop the monitoring clock; False when it already was so."""
        with self._lock:
            if on == (self._started_at is not None):
                return False
            if on:
                self._started_at = now
            else:
                assert self._started_at is not None
                self._elapsed += now - self._started_at
                self._started_at = None
            return True

    # --- reading -------------------------------------------------------------------------

    def window_stats(self) -> PairStats:
        """A copy of the current window's statistics, with each side's window in minutes."""
        now = self._clock()
        with self._lock:
            current = self._bucket(now)
            self._settle()
            stats = PairStats()
            stats.merge(self._closed)
            stats.merge(current)
            first = self._first_event_at
        minutes = policy.window_minutes(now, first, self.window_s, self.bucket_s)
        stats.backend.minutes = stats.frontend.minutes = minutes
        return stats

    def recent(
        self, limit: int = 200, service: str | None = None, include_self: bool = True
    ) -> list[ExecutionEvent]:
        """The newest events first, at most ``limit``, across both sides unless one is named."""
        with self._lock:
            sides = [service] if service else list(SERVICES)
            merged: list[ExecutionEvent] = []
            for side in sides:
                merged.extend(_newest(self._events[side], limit, include_self))
        merged.sort(key=lambda e: e.epoch, reverse=True)
        return merged[:limit]

    def events(self, service: str) -> list[ExecutionEvent]:
        """A copy of one side's stored events, oldest first."""
        with self._lock:
            return list(self._events[service])

    def counts(self) -> dict[str, Any]:
        """Ingest counters: received, accepted, rejected (by reason), evicted, stored."""
        with self._lock:
            stored = {s: len(self._events[s]) for s in SERVICES}
            evicted = {s: self._counters[f"evicted_{s}"] for s in SERVICES}
            return {
                "received": self._counters["received"],
                "accepted": self._counters["accepted"],
                "rejected": self._counters["rejected"],
                "rejected_by_reason": dict(self._rejected.most_common(20)),
                "evicted": sum(evicted.values()),
                "evicted_by_service": evicted,
                "restored": self._counters["restored"],
                "self_events": self._counters["self_events"],
                "stored": stored,
                "totals": {s: self._totals[s] for s in SERVICES},
            }

    def tallies(self) -> Tallies:
        """A copy of what was counted since the store began (events, durations, gaps)."""
        with self._lock:
            self._settle()
            return self._tallies.copy()

    def take_tick_counts(self) -> dict[str, int]:
        """Events added per side since the last call (one activity-chart point)."""
        with self._lock:
            counts: dict[str, int] = {s: self._since_tick[s] for s in SERVICES}
            self._since_tick.clear()
        return counts

    @property
    def seq(self) -> int:
        """A number that grows with every stored event (for streaming new events)."""
        return self._seq

    @property
    def counted(self) -> int:
        """Events counted so far (stored or restored); own traffic never moves it."""
        return self._counted

    def since(self, seq: int, limit: int = 500) -> tuple[int, list[ExecutionEvent]]:
        """Events stored after ``seq`` (oldest first, at most ``limit``) and the new seq."""
        with self._lock:
            log = self._log
            new = min(self._seq - seq, len(log), limit)  # the newest, taken from the end: no copy of the log
            return self._seq, [log[-i] for i in range(new, 0, -1)]

    def share_routes(self, keys: list[str]) -> list[str]:
        """One process: nothing to share, the monitor's registry holds what it learned."""
        return list(keys)

    # --- difference episodes ---------------------------------------------------------------

    def _book(self, name: str) -> _Book:
        """The book ``name``, made on first use (lock held)."""
        return self._books.setdefault(name, _Book())

    def open_episode(self, book: str, episode: Episode) -> bool:
        """Record ``episode`` as open unless one of its id already is; True when this call opened it."""
        with self._lock:
            opened = self._book(book).open
            if episode.id in opened:
                return False
            opened[episode.id] = episode
            return True

    def update_episode(self, book: str, episode: Episode) -> bool:
        """Replace the open episode of ``episode.id``; False when none is open."""
        with self._lock:
            opened = self._book(book).open
            if episode.id not in opened:
                return False
            opened[episode.id] = episode
            return True

    def close_episode(self, book: str, episode_id: str, resolved_at: float) -> Episode | None:
        """Close the open episode ``episode_id``; the closed episode, or None when none was open."""
        with self._lock:
            kept = self._book(book)
            episode = kept.open.pop(episode_id, None)
            if episode is None:
                return None
            closed = msgspec.structs.replace(episode, resolved_at=resolved_at)
            kept.closed.append(closed)
            return closed

    def open_episodes(self, book: str) -> dict[str, Episode]:
        """A copy of the open episodes by id."""
        with self._lock:
            return dict(self._book(book).open)

    def episodes(self, book: str, limit: int) -> list[Episode]:
        """At most ``limit`` episodes, open and resolved, the newest opened first."""
        with self._lock:
            kept = self._book(book)
            found = [*kept.open.values(), *kept.closed]
        found.sort(key=lambda e: e.opened_at, reverse=True)
        return found[:limit]

    def restore_episodes(self, book: str, episodes: Iterable[Episode]) -> None:
        """Put back journaled episodes, oldest first: open ones open again, the others resolved."""
        with self._lock:
            kept = self._book(book)
            for episode in episodes:
                if episode.resolved_at is None:
                    kept.open[episode.id] = episode
                else:
                    kept.closed.append(episode)

    # --- the pinned baseline ---------------------------------------------------------------

    def baseline(self) -> PinnedBaseline | None:
        """The pinned baseline, or None (it is never changed, only replaced: no copy needed)."""
        with self._lock:
            return self._baseline

    def set_baseline(self, baseline: PinnedBaseline) -> None:
        """Pin ``baseline`` in place of any pinned before."""
        with self._lock:
            self._baseline = baseline

    def clear_baseline(self) -> bool:
        """Unpin the baseline; False when none was pinned."""
        with self._lock:
            had, self._baseline = self._baseline is not None, None
            return had


class _Book:
    """One book of episodes: the open ones by id and the newest resolved ones."""

    def __init__(self) -> None:
        self.open: dict[str, Episode] = {}
        self.closed: deque[Episode] = deque(maxlen=EPISODES_KEPT)


def _moment(epoch: float) -> datetime:
    """``epoch`` as an aware datetime; the earliest one for minus infinity (no bucket yet)."""
    return datetime.fromtimestamp(epoch, UTC) if epoch > -math.inf else datetime.min.replace(tzinfo=UTC)


def _newest(store: deque[ExecutionEvent], limit: int, include_self: bool) -> Iterator[ExecutionEvent]:
    taken = 0
    for event in reversed(store):
        if taken >= limit:
            return
        if not include_self and is_own_traffic(event.details):
            continue
        taken += 1
        yield event
