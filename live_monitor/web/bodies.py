"""Request bodies: read, decompressed and refused beyond the size limit, before any decoding.

The ingest fast path reads from the WSGI environ, the OTLP route from Flask's request; both
end in ``inflate``, so a body is measured the same way on every route.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from live_monitor.web.errors import ApiError

__all__ = ["PayloadError", "inflate", "read_request_body", "read_wsgi_body"]


class PayloadError(ApiError):
    """A request body the monitor cannot read: ``status`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded from its Content-Encoding, refused beyond ``limit`` bytes.

    The size is checked after decompression, without ever inflating more than ``limit``
    bytes, so a gzip bomb costs nothing.
    """
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        if len(body) > limit:
            raise _too_large(limit)
        return body
    if encoding not in ("gzip", "deflate"):
        raise PayloadError(415, f"unsupported Content-Encoding {encoding}: use gzip, deflate or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise PayloadError(400, f"body is not valid {encoding} data") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise PayloadError(413, f"body too large after decompression: at most {limit:,} bytes")
    return inflated


def read_wsgi_body(environ: Mapping[str, Any], limit: int) -> bytes:
    """The body of a WSGI request, decompressed; a declared length over ``limit`` is refused
    before reading, and a body without one is read only when the server ended it."""
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise PayloadError(400, "Content-Length must be a whole number") from None
    if length > limit:
        raise _too_large(limit)
    if length >= 0:
        raw = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        raw = stream.read(limit + 1)
    else:
        raw = b""
    return inflate(raw, environ.get("HTTP_CONTENT_ENCODING") or "", limit)


def read_request_body(limit: int) -> bytes:
    """The body of the current Flask request, decompressed (Flask refuses a declared length
    over the app's MAX_CONTENT_LENGTH)."""
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    return inflate(body, request.headers.get("Content-Encoding", ""), limit)


def _too_large(limit: int) -> PayloadError:
    return PayloadError(413, f"body too large: at most {limit:,} bytes")
