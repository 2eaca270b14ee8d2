"""Route templates learned from the server, applied to the browser's URLs.

The browser only knows the URL it called (``GET /api/users/alice``); the server reports the
route that answered it (``http.route`` ``/api/users/<name>``, keyed ``GET /api/users/:name``).
``RouteTemplates`` keeps the templates the server's events carried and re-keys a browser call
whose path fits one, segment by segment, so both sides meet under the server's key even for
ids that do not look like ids (names, slugs). Bounded, and safe to share between threads.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

__all__ = ["MAX_TEMPLATES", "RouteTemplates"]

MAX_TEMPLATES = 1000  # an app has tens of routes; past this, what is sent is not templates


class _Template(NamedTuple):
    literals: int  # how many segments are literal: the more, the more specific
    key: str  # "GET /api/users/:name", the action a matching call is re-keyed to
    segments: tuple[str, ...]  # "" marks a parameter segment (a real segment is never empty)


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


class RouteTemplates:
    """The server's route templates, by method and segment count, most specific first."""

    def __init__(self, limit: int = MAX_TEMPLATES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        # (method, segment count) -> templates; replaced, never changed, so readers take no lock
        self._shapes: dict[tuple[str, int], tuple[_Template, ...]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """The learned keys (``GET /api/users/:name``), sorted."""
        return sorted(self._keys)

    def learn(self, method: str, template_key: str) -> bool:
        """Keep ``template_key`` (a ``route_key`` such as ``/api/users/:name``) for ``method``;
        True when it is new and kept, False when known or the registry is full."""
        key = f"{method.upper()} {template_key}"
        if key in self._keys:
            return False
        segments = tuple("" if s.startswith(":") else s for s in _segments(template_key))
        template = _Template(sum(1 for s in segments if s), key, segments)
        shape = (method.upper(), len(segments))
        with self._lock:
            if key in self._keys or len(self._keys) >= self.limit:
                return False
            self._keys.add(key)
            known = self._shapes.get(shape, ())
            self._shapes[shape] = tuple(sorted((*known, template), key=lambda t: (-t.literals, t.key)))
        return True

    def learn_keys(self, keys: list[str]) -> None:
        """Keep keys as ``keys()`` gives them (``GET /api/users/:name``), e.g. from another process."""
        for key in keys:
            method, _, template_key = key.partition(" ")
            if template_key.startswith("/"):
                self.learn(method, template_key)

    def key_for(self, action: str) -> str | None:
        """The server's key for a browser call's ``action`` (``GET /api/users/alice`` ->
        ``GET /api/users/:name``): the most specific template whose literal segments equal the
        call's and whose parameters each take one segment; None when none fits or it is the same."""
        method, _, path = action.partition(" ")
        parts = _segments(path)
        for template in self._shapes.get((method, len(parts)), ()):
            if all(not t or t == p for t, p in zip(template.segments, parts, strict=True)):
                return None if template.key == action else template.key
        return None
