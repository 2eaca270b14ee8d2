"""The difference history: when each difference opened and resolved, kept in the store.

Episodes live in books: ``differences`` (every difference, at any severity: what
``GET /differences/history`` lists) and ``alerts`` (those at ``--alert-min-severity`` or
above: what the webhooks were told). The store opens and closes an episode atomically, so with
many processes on Redis exactly one wins each transition and sends its message; with
``--persist`` every transition is journaled too, and comes back after a restart.

A transition the store made stands even when the journal cannot be written (a full disk): its
message still goes out, and the episode is journaled by a later write or ``flush`` once it can.
"""

from __future__ import annotations

from typing import Final

from live_monitor.model.results import Episode
from live_monitor.store import EPISODES_KEPT, Store, StoreUnavailable
from live_monitor.store.journal import EventJournal

DIFFERENCES: Final = "differences"
ALERTS: Final = "alerts"
UNJOURNALED_KEPT: Final = 2 * EPISODES_KEPT  # episodes waiting for the journal; the oldest go first


class History:
    """The store's episodes, journaled with ``--persist``; restored from the journal when made."""

    def __init__(self, store: Store, journal: EventJournal | None = None) -> None:
        self.store = store
        self.journal = journal
        self._unjournaled: dict[tuple[str, str, float], Episode] = {}  # (book, id, opened_at): newest
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

    def flush(self) -> None:
        """Journal the episodes a failed journal write left behind; StoreUnavailable while the
        journal still cannot be written (they wait for the next try)."""
        while self.journal is not None and self._unjournaled:
            key, episode = next(iter(self._unjournaled.items()))
            self.journal.save_episode(key[0], episode)
            del self._unjournaled[key]

    def _journal(self, book: str, episode: Episode) -> None:
        """Journal a transition the store made; never raises: when the journal cannot be
        written the episode waits for ``flush`` (the caller's message must not be lost)."""
        if self.journal is None:
            return
        key = (book, episode.id, episode.opened_at)
        self._unjournaled.pop(key, None)  # its newest state goes last
        self._unjournaled[key] = episode
        while len(self._unjournaled) > UNJOURNALED_KEPT:
            del self._unjournaled[next(iter(self._unjournaled))]
        try:
            self.flush()
        except StoreUnavailable:
            pass  # the alert loop's next flush fails too, and counts and logs it
