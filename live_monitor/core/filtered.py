"""Views filtered by release and environment: ``?release=`` and ``?environment=`` on /data,
/differences and the endpoint drill-down.

The window's running statistics hold all events together (time buckets of sketches, on both
stores): splitting them by every release and environment would multiply what each bucket holds,
and every event would pay for it. So a filtered view is computed when asked for, from the stored
events (at most ``max_events`` a side: the store's own bound). Those inside the window that match
are counted into the same aggregates, and paired by the same join rule, as ingest counts all
events. When the store has evicted events of the window, the view covers only the events kept,
and says so (``covers_window`` false).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from live_monitor.model import policy
from live_monitor.model.events import EventFilter
from live_monitor.model.results import FilterNote
from live_monitor.model.routes import RouteTemplates, key_by_routes
from live_monitor.model.stats import PairStats
from live_monitor.vocabulary import SERVICES

if TYPE_CHECKING:
    from live_monitor.model.events import ExecutionEvent
    from live_monitor.store import Store

__all__ = ["FilteredView"]


class FilteredView:
    """The window's figures of the events ``where`` matches, from one read of the stored events.

    ``stats`` is what ``Store.window_stats`` would give if only those events had come: the window
    read by the events' own timestamps (the store keeps no arrival time an event), rates over the
    unfiltered window's ``minutes``, so a release sending half the calls shows half the rate.
    ``events`` holds each side's matching stored events (oldest first, own traffic too) for the
    event lists.
    """

    def __init__(
        self, store: Store, routes: RouteTemplates, where: EventFilter, now: float, minutes: float
    ) -> None:
        self.where = where
        since = now - store.window_s
        stored = {side: store.events(side) for side in SERVICES}
        self.scanned = sum(len(events) for events in stored.values())
        # complete when no side has evicted an event, or what it keeps reaches back past the window
        evicted = store.counts()["evicted_by_service"]
        self.covers_window = all(
            not evicted.get(side) or bool(events and events[0].epoch <= since)
            for side, events in stored.items()
        )
        self.events: dict[str, list[ExecutionEvent]] = {
            side: [e for e in events if where.matches(e)] for side, events in stored.items()
        }
        window = [e for side in SERVICES for e in self.events[side] if e.epoch >= since]
        self.stats = _count(policy.counted(window), routes)
        self.stats.backend.minutes = self.stats.frontend.minutes = minutes

    def newest(
        self, limit: int, service: str | None = None, include_self: bool = True
    ) -> list[ExecutionEvent]:
        """The newest matching events first, at most ``limit`` (as ``Store.recent``)."""
        sides = [service] if service else list(SERVICES)
        merged = [e for side in sides for e in self.events[side] if include_self or not e.is_self]
        merged.sort(key=lambda e: e.epoch, reverse=True)
        return merged[:limit]

    def matched(self, service: str) -> int:
        """How many stored events of ``service`` match (in the window or not)."""
        return len(self.events[service])

    def note(self) -> FilterNote:
        """What the answer's figures were computed from, for the answer's ``filter``."""
        return {
            "release": self.where.release,
            "environment": self.where.environment,
            "scanned": self.scanned,
            "matched_backend": self.matched("backend"),
            "matched_frontend": self.matched("frontend"),
            "covers_window": self.covers_window,
        }


def _count(events: list[ExecutionEvent], routes: RouteTemplates) -> PairStats:
    """The statistics of ``events`` (counted ones of one window): the browser's calls keyed by
    the server's routes, each trace's halves offered to the joiner in time order, as ingest does.
    Copies are counted: the join re-keys and relinks what it is offered, and stored events are
    never changed by a read."""
    copies = [msgspec.structs.replace(e) for e in events]
    key_by_routes(routes, copies)
    copies.sort(key=lambda e: e.epoch)
    stats = PairStats()
    join = policy.TraceJoin()
    for event in policy.pairable(copies):
        gaps = join.offer([event], event.epoch)
        if gaps:
            stats.add_gaps(gaps)
    for side, mine in zip(SERVICES, policy.by_side(copies), strict=True):
        if mine:
            stats.side(side).add_events(mine, mine[0].epoch, mine[-1].epoch)
    return stats
