"""Backend instrumentation for the Live Execution Monitor.

Runs inside users' applications, so it imports the standard library only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LONG_HEX = re.compile(r"^[0-9a-fA-F]{16,}$")


def normalize_route(path: str) -> str:
    """Return the endpoint route for a path or URL: no query, ids replaced by ``:id``.

    Purely numeric segments, UUIDs and hex strings of 16 or more characters become
    ``:id`` so that ``/api/orders/42`` from the browser and from the server meet on
    ``/api/orders/:id``. Empty segments and a trailing slash are dropped.
    """
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0].split("#", 1)[0]
    segments = []
    for segment in path.split("/"):
        if not segment:
            continue
        if (segment.isascii() and segment.isdigit()) or _UUID.match(segment) or _LONG_HEX.match(segment):
            segment = ":id"
        segments.append(segment)
    return "/" + "/".join(segments)


def endpoint_key(method: str, path: str) -> str:
    """Return the endpoint key both sides share, e.g. ``GET /api/orders/:id``."""
    return f"{method.upper()} {normalize_route(path)}"
