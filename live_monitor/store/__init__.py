"""Where events are kept: in memory, in Redis, and the --persist journal.

``Store`` is the one contract the core and the web layer use; ``make_store`` picks the
implementation a ``--store`` value names. Both stores follow the batch policy of
``live_monitor.model.policy``. The implementations are imported only when a store is made,
so importing this package stays light.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from live_monitor.model.baseline import PinnedBaseline
    from live_monitor.model.events import ExecutionEvent
    from live_monitor.model.results import Episode
    from live_monitor.model.stats import PairStats, Tallies

__all__ = ["EPISODES_KEPT", "Store", "StoreUnavailable", "make_store", "store_kind"]

SHARED_STORE_SCHEMES = ("redis://", "rediss://", "unix://")
EPISODES_KEPT = 1000  # resolved episodes kept per book, the newest; open ones are all kept


class StoreUnavailable(Exception):
    """A shared store (Redis) cannot be reached; the API answers 503 with Retry-After."""


class Store(Protocol):
    """What the monitor and the web layer use of a store, in memory or in Redis."""

    @property
    def max_events(self) -> int:
        """How many events of each side are kept."""

    @property
    def window_s(self) -> float:
        """The length of the statistics window, in seconds."""

    @property
    def bucket_s(self) -> float:
        """The width of one time bucket of the window, in seconds."""

    def add(self, events: Iterable[ExecutionEvent]) -> int:
        """Store valid events; returns how many were accepted."""

    def restore(self, events: Iterable[ExecutionEvent]) -> int:
        """Put back events read from a journal, each in the bucket of its own time."""

    def reject(self, reasons: Iterable[str]) -> None:
        """Count refused events by the rule that refused them."""

    def monitoring_state(self) -> tuple[float | None, float]:
        """(started_at or None, seconds monitored before it)."""

    def set_monitoring(self, on: bool, now: float) -> bool:
        """Start or stop the monitoring clock; False when it already was so."""

    def window_stats(self) -> PairStats:
        """A copy of the window's statistics, with each side's window in minutes."""

    def recent(
        self, limit: int = 200, service: str | None = None, include_self: bool = True
    ) -> list[ExecutionEvent]:
        """The newest events first, at most ``limit``, across both sides unless one is named."""

    def events(self, service: str) -> list[ExecutionEvent]:
        """One side's stored events, oldest first."""

    def counts(self) -> dict[str, Any]:
        """Ingest counters: received, accepted, rejected (by reason), evicted, stored, totals."""

    def tallies(self) -> Tallies:
        """What was counted since the store began and only ever grows (window and eviction
        never take from it): events per side and status, duration histograms per side and
        per endpoint key, trace-gap histograms per endpoint. Shared by every process on Redis."""

    def take_tick_counts(self) -> dict[str, int]:
        """Counted events per side since the last call (one activity-chart point)."""

    @property
    def seq(self) -> int:
        """A number that grows with every stored event, own traffic included (for streaming)."""

    @property
    def counted(self) -> int:
        """Events counted so far; own traffic never moves it (the differences cache's key)."""

    def since(self, seq: int, limit: int = 500) -> tuple[int, list[ExecutionEvent]]:
        """Events stored after ``seq`` (oldest first, at most ``limit``) and the new seq."""

    def share_routes(self, keys: list[str]) -> list[str]:
        """Add the server route keys this process learned (``GET /api/users/:name``) to those
        every process shares and return them all; in memory no other process shares: ``keys``."""

    # Difference episodes, in books ("differences": the history; "alerts": the alerts sent).
    # Opening and closing are atomic, so with many processes exactly one wins each transition.

    def open_episode(self, book: str, episode: Episode) -> bool:
        """Record ``episode`` as open unless one of its id already is; True when this call opened it."""

    def update_episode(self, book: str, episode: Episode) -> bool:
        """Replace the open episode of ``episode.id`` (a higher severity reached); False when none is open."""

    def close_episode(self, book: str, episode_id: str, resolved_at: float) -> Episode | None:
        """Close the open episode ``episode_id``; the closed episode when this call closed it, else None."""

    def open_episodes(self, book: str) -> dict[str, Episode]:
        """The open episodes by id."""

    def episodes(self, book: str, limit: int) -> list[Episode]:
        """At most ``limit`` episodes, open and resolved, the newest opened first."""

    def restore_episodes(self, book: str, episodes: Iterable[Episode]) -> None:
        """Put back episodes read from a journal (the in-memory store's; Redis keeps its own)."""

    # The pinned baseline: one for the monitor, so with Redis every process compares with it.

    def baseline(self) -> PinnedBaseline | None:
        """The pinned baseline, or None when none is."""

    def set_baseline(self, baseline: PinnedBaseline) -> None:
        """Pin ``baseline`` in place of any pinned before."""

    def clear_baseline(self) -> bool:
        """Unpin the baseline; False when none was pinned."""


def store_kind(url: str) -> str | None:
    """``memory`` or ``redis`` for a ``--store`` value; None when it is neither."""
    if url in ("", "memory"):
        return "memory"
    return "redis" if url.startswith(SHARED_STORE_SCHEMES) else None


def make_store(
    url: str, *, max_events: int, window_s: float, clock: Callable[[], float] = time.time
) -> Store:
    """The store a ``--store`` value names: in memory (``memory`` or empty) or Redis (a URL)."""
    kind = store_kind(url)
    if kind == "memory":
        from live_monitor.store.memory import EventStore

        return EventStore(max_events=max_events, window_s=window_s, clock=clock)
    if kind == "redis":
        from live_monitor.store.redis import RedisEventStore

        return RedisEventStore(url, max_events=max_events, window_s=window_s, clock=clock)
    raise ValueError(f"--store must be 'memory' or a redis:// URL, not {url!r}")
