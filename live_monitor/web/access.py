"""The access policy in front of every route: shutdown, Host, Origin, credentials and load.

``Access.check`` runs before every request (Flask's and the ingest fast path's); routes
outside the REST API that take data or answer privately (OTLP, metrics) call its parts,
so a rule changes in one place.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import is_loopback, origin_allowed, parse_origins
from live_monitor.vocabulary import EVENTS_PATH, is_own_path
from live_monitor.web.errors import ApiError

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}

Header = Callable[[str], str | None]


# Headers a cross-origin caller may read: a browser hides the others. Both the monitor's own
# logger and the OpenTelemetry web exporter wait as long as Retry-After says on 429 and 503;
# Server-Timing is there for a page timing its calls to the monitor (a browser exposes it to
# Resource Timing and fetch only when listed).
EXPOSED_HEADERS = ("Retry-After", "Server-Timing")


class Access:
    """The checks in front of every request; each raises ApiError when the request may not go on."""

    def __init__(self, settings: Mapping[str, Any], monitor: LiveExecutionMonitor) -> None:
        self.monitor = monitor
        self.guard_loopback = is_loopback(settings["host"])
        self.origins = parse_origins(settings["cors_origins"])
        self.token, self.ingest_key = settings["token"], settings["ingest_key"]
        self.max_backlog = 4 * settings["threads"]
        # Browsers send a handful of origins; each is matched against the patterns once.
        self.origin_allowed: Callable[[str], bool] = lru_cache(maxsize=256)(
            lambda origin: origin_allowed(origin, self.origins)
        )

    def credentials_ok(self, header: Header, ingest: bool = False) -> bool:
        """True without a token, or with ``Authorization: Bearer <token>`` (the scheme in any case, as
        RFC 9110 has it); on an ingest route (``ingest``) the ingest key opens too."""
        if not self.token:
            return True
        scheme, _, credentials = (header("Authorization") or "").strip().partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode()
        )
        if ingest and self.ingest_key:
            given = (header("X-Ingest-Key") or "").encode()
            ok = hmac.compare_digest(given, self.ingest_key.encode()) or ok
        return ok

    def overloaded(self, config: Mapping[str, Any]) -> bool:
        """True when the server's queue (``config["BACKLOG"]``, set by serve()) is too long."""
        backlog = config.get("BACKLOG")
        return backlog is not None and backlog() > self.max_backlog

    def check(self, method: str, path: str, host: str, header: Header) -> None:
        """Every request: the monitor is open and the Host is allowed; on the REST API (not for
        CORS preflights) also the caller (``header`` reads a request header)."""
        self.check_open(host)
        if is_own_path(path) and method != "OPTIONS":
            self.check_caller(header, method=method, ingest=path == EVENTS_PATH)

    def check_open(self, host: str) -> None:
        """Refuse every request while shutting down, and a foreign Host on a loopback monitor
        (DNS rebinding)."""
        if self.monitor.draining:
            raise ApiError(503, "the monitor is shutting down", {"Retry-After": "5"})
        if self.guard_loopback and hostname(host) not in LOOPBACK_HOSTS:
            raise ApiError(403, "Host header not allowed: the monitor answers to localhost only")

    def check_caller(self, header: Header, *, method: str = "POST", ingest: bool = False) -> None:
        """Refuse a browser Origin not allowed to change data, and missing or wrong credentials
        (on an ingest route, ``ingest``, the ingest key opens too)."""
        origin = header("Origin")
        if origin and method != "GET" and not self.origin_allowed(origin):
            raise ApiError(403, f"origin {origin} is not allowed (see --cors-origins)")
        if not self.credentials_ok(header, ingest=ingest):
            raise ApiError(
                401,
                "missing or wrong credentials: send Authorization: Bearer <token>",
                {"WWW-Authenticate": "Bearer"},  # RFC 9110: a 401 names the scheme it wants
            )

    def check_load(self, config: Mapping[str, Any]) -> None:
        """Refuse data with 503 while the server's queue is too long (see ``overloaded``)."""
        if self.overloaded(config):
            raise ApiError(503, "the monitor is overloaded; retry shortly", {"Retry-After": "1"})


def hostname(host: str) -> str:
    """The host name of a Host header, without its port, in lower case (host names are
    case-insensitive, RFC 9110 section 4.2.3: ``LOCALHOST:5001`` is localhost)."""
    host = host.lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def cors_headers(access: Access, origin: str | None) -> list[tuple[str, str]]:
    """The CORS headers of an answer to a request from ``origin``, as flask-cors gives Flask's
    answers: none unless the origin is allowed (--cors-origins)."""
    if not origin or not access.origin_allowed(origin):
        return []
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Expose-Headers", ", ".join(EXPOSED_HEADERS)),
        ("Vary", "Origin"),
    ]
