"""One mapping from errors to JSON answers, for the Flask app and the WSGI fast path alike.

Every error a client can meet is answered as ``{"error": message}`` with its status and
headers: the client errors the web layer raises (``ApiError``), a store outage (503 with
Retry-After), Flask's own HTTP errors (with their headers: ``Allow`` on a 405), and anything unexpected (a 500 without a traceback;
the traceback goes to the log).
"""

from __future__ import annotations

import logging

from werkzeug.exceptions import HTTPException

from live_monitor.store import StoreUnavailable

INTERNAL_ERROR = "internal error; the monitor's log has the details"
log = logging.getLogger("live_execution_monitor")

Answer = tuple[int, dict[str, str], dict[str, str]]


class ApiError(Exception):
    """A client error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_answer(exc: BaseException, *, where: str, body_limit: int) -> Answer:
    """The status, JSON body and headers a client gets for ``exc``, raised answering ``where``.

    ``where`` ("METHOD /path") goes to the log with the traceback of an unexpected error;
    ``body_limit`` is the --max-body-bytes the 413 answer names.
    """
    if isinstance(exc, ApiError):
        return exc.status, {"error": exc.message}, exc.headers
    if isinstance(exc, StoreUnavailable):
        return 503, {"error": str(exc)}, {"Retry-After": "1"}
    if isinstance(exc, HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"body too large: at most {body_limit:,} bytes"
        return exc.code or 400, {"error": message}, _http_headers(exc)
    log.error("unexpected error on %s", where, exc_info=exc)
    return 500, {"error": INTERNAL_ERROR}, {}


def _http_headers(exc: HTTPException) -> dict[str, str]:
    """The headers werkzeug gives ``exc`` but its HTML Content-Type: ``Allow`` on a 405 (RFC 9110
    requires it), ``Retry-After`` or ``WWW-Authenticate`` where the exception carries them."""
    return {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
