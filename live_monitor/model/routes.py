"""Route templates learned from the server, applied to the browser's URLs.

The browser only knows the URL it called (``GET /api/users/alice``); the server reports the
route that answered it (``http.route`` ``/api/users/<name>``, keyed ``GET /api/users/:name``).
``RouteTemplates`` keeps the templates the server's events carried and re-keys a browser call
whose path fits one, segment by segment, so both sides meet under the server's key even for
ids that do not look like ids (names, slugs). Bounded, and safe to share between threads.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from backend_logging_config import route_key
from live_monitor.vocabulary import ENDPOINT_COMPONENTS, OWN_TRAFFIC_TAG

if TYPE_CHECKING:
    from live_monitor.model.events import ExecutionEvent

__all__ = ["MAX_TEMPLATES", "RouteTemplates", "key_by_routes", "learn_routes"]

_route_key = functools.lru_cache(maxsize=1024)(route_key)


class Routed(Protocol):
    """What learning reads of an event: the monitor's ``ExecutionEvent`` and the tools' ``Event``."""

    @property
    def service(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def details(self) -> Mapping[str, Any] | None: ...


MAX_TEMPLATES = 1000  # an app has tens of routes; past this, what is sent is not templates
MAX_ANSWERS = 4096  # browser keys whose answer is remembered (all forgotten when a template is learned)


class _Template(NamedTuple):
    literals: int  # how many segments are literal: the more, the more specific
    key: str  # "GET /api/users/:name", the action a matching call is re-keyed to


class _Node:
    """One segment position of the templates: literal children, one parameter child, and the
    template that ends here."""

    __slots__ = ("end", "literal", "param")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.end: _Template | None = None


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _matches(node: _Node, parts: list[str], at: int) -> list[_Template]:
    """The templates under ``node`` that ``parts[at:]`` fits: literal segments equal, each
    parameter one segment."""
    if at == len(parts):
        return [node.end] if node.end is not None else []
    found = []
    child = node.literal.get(parts[at])
    if child is not None:
        found = _matches(child, parts, at + 1)
    if node.param is not None:
        found += _matches(node.param, parts, at + 1)
    return found


class RouteTemplates:
    """The server's route templates, in a tree of segments per method. Learning takes a lock;
    reading does not (each step it takes is one dict or attribute read)."""

    def __init__(self, limit: int = MAX_TEMPLATES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._kept = {True: 0, False: 0}  # routes kept, without parameters (True) and with
        self._roots: dict[str, _Node] = {}
        self._answers: dict[str, str | None] = {}  # key_for's answers: a call's key repeats
        # (action, route template) pairs already learned or refused: a batch repeats them, and
        # an answer never changes (a kept key stays, a spent budget stays spent).
        self.seen: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """The learned keys (``GET /api/users/:name``), sorted."""
        return sorted(self._keys)

    def learn(self, method: str, template_key: str) -> bool:
        """Keep ``template_key`` (a ``route_key`` such as ``/api/users/:name``) for ``method``;
        True when it is new and kept, False when known or its budget (``limit`` routes with
        parameters, as many without) is spent."""
        method = method.upper()
        key = f"{method} {template_key}"
        if key in self._keys:
            return False
        segments = _segments(template_key)
        # Routes without parameters (/api/users/me) only keep a call from a template that would
        # take it (/api/users/:name); they have their own budget, so a backend sending raw paths
        # as routes cannot crowd the templates out.
        literal = not any(s.startswith(":") for s in segments)
        with self._lock:
            if key in self._keys or self._kept[literal] >= self.limit:
                return False
            self._kept[literal] += 1
            node = self._roots.setdefault(method, _Node())
            for segment in segments:
                if segment.startswith(":"):
                    node.param = node.param or _Node()
                    node = node.param
                else:
                    node = node.literal.setdefault(segment, _Node())
            node.end = _Template(sum(1 for s in segments if not s.startswith(":")), key)
            self._keys.add(key)
            self._answers = {}
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
        call's and whose parameters each take one segment (of equals, the first key in order);
        None when none fits or it is the call's own key."""
        answers = self._answers
        known = answers.get(action, "")  # "" is never an answer: not asked yet
        if known != "":
            return known
        method, _, path = action.partition(" ")
        root = self._roots.get(method)
        found = _matches(root, _segments(path), 0) if root is not None else []
        best = min(found, key=lambda t: (-t.literals, t.key)).key if found else None
        answer = None if best == action else best
        if len(answers) >= MAX_ANSWERS:
            answers.clear()
        answers[action] = answer
        return answer


def learn_routes(routes: RouteTemplates, events: Iterable[Routed]) -> list[str]:
    """Learn the route templates the server's ``http`` events carry (``details.route``);
    returns the keys new to ``routes``. The monitor's own traffic teaches nothing."""
    server = ENDPOINT_COMPONENTS["backend"]
    sources = {  # a batch repeats a few (action, template) pairs: each is learned once
        (event.action, template)
        for event in events
        if event.component == server
        and event.service == "backend"
        and event.details
        and isinstance(template := event.details.get("route"), str)
        and template
        and event.details.get(OWN_TRAFFIC_TAG) is not True
    }
    learned = []
    seen = routes.seen
    for pair in sources - seen if seen else sources:
        action, template = pair
        method, template_key = action.partition(" ")[0], _route_key(template)
        if routes.learn(method, template_key):
            learned.append(f"{method.upper()} {template_key}")
        if len(seen) >= MAX_ANSWERS:
            seen.clear()
        seen.add(pair)
    return learned


def key_by_routes(routes: RouteTemplates, events: Iterable[ExecutionEvent]) -> None:
    """Key the browser's ``api`` calls by the server's templates: ``GET /api/users/alice``
    becomes ``GET /api/users/:name``, the browser's own key kept in ``details.url_key``."""
    if not len(routes):
        return
    browser, tag, key_for = ENDPOINT_COMPONENTS["frontend"], OWN_TRAFFIC_TAG, routes.key_for
    for event in events:
        details = event.details  # not event.is_self, inlined: a call per event
        if (
            event.component == browser
            and event.service == "frontend"
            and (not details or details.get(tag) is not True)
        ):
            key = key_for(event.action)
            if key is not None:
                event.details = {**event.details, "url_key": event.action}
                event.action = key
