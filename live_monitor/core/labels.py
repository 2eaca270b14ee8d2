"""The releases and environments the stored events carry: what the dashboard's filter offers.

Read from the stored events (both sides, the monitor's own traffic left out), as a filtered view
is: the running statistics hold no label. Each value comes with how many stored events carry it
and when the newest of them happened, newest first, so the release deployed last leads the list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from live_monitor.model.results import LabelsAnswer, LabelSeen
from live_monitor.vocabulary import SERVICES

if TYPE_CHECKING:
    from live_monitor.store import Store

__all__ = ["seen_labels"]


def seen_labels(store: Store) -> LabelsAnswer:
    """Each release and environment of the stored events, the most recently seen first."""
    seen: dict[str, dict[str, LabelSeen]] = {"release": {}, "environment": {}}
    scanned = 0
    for side in SERVICES:
        for event in store.events(side):
            scanned += 1
            if event.is_self:
                continue
            for name, values in seen.items():
                value = getattr(event, name)
                if value is not None:
                    _count(values, value, event.epoch)
    return {
        "releases": _newest_first(seen["release"]),
        "environments": _newest_first(seen["environment"]),
        "scanned": scanned,
    }


def _count(values: dict[str, LabelSeen], value: str, epoch: float) -> None:
    """One more event carrying ``value``, at ``epoch``."""
    label = values.setdefault(value, {"value": value, "events": 0, "last_seen": epoch})
    label["events"] += 1
    label["last_seen"] = max(label["last_seen"], epoch)


def _newest_first(values: dict[str, LabelSeen]) -> list[LabelSeen]:
    return sorted(values.values(), key=lambda label: (-label["last_seen"], label["value"]))
