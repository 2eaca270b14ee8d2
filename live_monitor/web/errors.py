"""The errors the web layer answers as JSON ``{"error": message}``."""

from __future__ import annotations


class ApiError(Exception):
    """A client error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
