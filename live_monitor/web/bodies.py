"""Request bodies: decompressing them within the size limit."""

from __future__ import annotations

import zlib


class PayloadError(ValueError):
    """A request body the monitor cannot read: ``status`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decoded from its Content-Encoding, refused beyond ``limit`` bytes.

    The size is checked after decompression, without ever inflating more than ``limit``
    bytes, so a gzip bomb costs nothing.
    """
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        if len(body) > limit:
            raise PayloadError(413, f"body too large: at most {limit:,} bytes")
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
