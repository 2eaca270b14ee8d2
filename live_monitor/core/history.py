"""The difference history: when each difference opened and resolved, kept in the store.

Episodes live in books: ``differences`` (every difference, at any severity: what
``GET /differences/history`` lists) and ``alerts`` (those at ``--alert-min-severity`` or
above: what the webhooks were told). The store opens and closes an episode atomically, so with
many processes on Redis exactly one wins each transition and sends its message; with
``--persist`` every transition is journaled too, and comes back after a restart.
"""

from __future__ import annotations

from typing import Final

from live_monitor.model.results import Episode
from live_monitor.store import Store
from live_monitor.store.journal import EventJournal

DIFFERENCES: Final = "differences"
ALERTS: Final = "alerts"
BOOKS: Final = (DIFFERENCES, ALERTS)


class History:
    """The store's episodes, journaled with ``--persist``; restored from the journal when made."""

    def __init__(self, store: Store, journal: EventJournal | None = None) -> None:
        self.store = store
        self.journal = journal
        if journal is not None:
            for book, episodes in journal.load_episodes().items():
                store.restore_episodes(book, episodes)

    def open(self, book: str, episode: Episode) -> bool:
        """Open ``episode`` unless its difference already has one open; True when this call did."""
        opened = self.store.open_episode(book, episode)
        if opened:
            self._journal(book, episode)
        return opened

    def update(self, book: str, episode: Episode) -> None:
        """Replace an open episode (its difference reached a higher severity)."""
        if self.store.update_episode(book, episode):
            self._journal(book, episode)

    def close(self, book: str, episode_id: str, resolved_at: float) -> Episode | None:
        """Close an open episode; the closed episode when this call closed it, else None."""
        closed = self.store.close_episode(book, episode_id, resolved_at)
        if closed is not None:
            self._journal(book, closed)
        return closed

    def open_now(self, book: str) -> dict[str, Episode]:
        """The open episodes by id."""
        return self.store.open_episodes(book)

    def recent(self, limit: int, book: str = DIFFERENCES) -> list[Episode]:
        """At most ``limit`` episodes, the newest opened first."""
        return self.store.episodes(book, limit)

    def _journal(self, book: str, episode: Episode) -> None:
        if self.journal is not None:
            self.journal.save_episode(book, episode)
