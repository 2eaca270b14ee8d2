"""Replay of generated sample events into a running Live Execution Monitor (``--post``).

MonitorPoster sends events in batches to the monitor's ingest endpoint at a steady rate,
slowing down when the monitor asks it to (429/503), and counts what was accepted, so
the sample generator can stream events to a file and to a monitor in the same pass.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from live_monitor.vocabulary import EVENTS_PATH, STATUS_PATH

INGEST_PATH = EVENTS_PATH


class MonitorPoster:
    """Posts events in batches to a monitor's ingest endpoint, paced to a steady rate."""

    def __init__(self, url: str, rate: float, token: str | None = None, batch_size: int = 100) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--post: not an http(s) URL: {url!r}")
        self.url, self.rate, self.batch_size, self.timeout = parts, rate, batch_size, 10.0
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.batch: list[dict[str, Any]] = []
        self.sent = self.accepted = self.rejected = 0
        self.errors: list[str] = []
        self._conn: http.client.HTTPConnection | None = None
        self._started: float | None = None

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, str | None]:
        for attempt in (1, 2):  # one reconnect: a kept-alive connection may have been closed
            if self._conn is None:
                https = self.url.scheme == "https"
                cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
                self._conn = cls(self.url.hostname or "", self.url.port, timeout=self.timeout)
            try:
                self._conn.request(method, self.url.path.rstrip("/") + path, body, self.headers)
                response = self._conn.getresponse()
                return response.status, response.read(), response.getheader("Retry-After")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    raise ConnectionError(f"monitor at {self.url.geturl()}: {exc}") from None
        raise AssertionError("unreachable")

    def check(self) -> None:
        """Raise ConnectionError with a clear message when the monitor cannot be reached."""
        try:
            status, _, _ = self._request("GET", STATUS_PATH, None)
        except ConnectionError as exc:
            raise ConnectionError(f"cannot reach the {exc}; is it running?") from None
        if status == 401:
            raise ConnectionError(f"the monitor at {self.url.geturl()} wants --token (or LIVE_MONITOR_TOKEN)")

    def add(self, event: dict[str, Any]) -> None:
        """Queue one event; a full batch is sent at once."""
        self.batch.append(event)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Send the pending batch once the pace allows it; count accepted and rejected events."""
        if not self.batch:
            return
        self._started = self._started or time.monotonic()
        if self.rate > 0:
            time.sleep(max(0.0, self._started + (self.sent + len(self.batch)) / self.rate - time.monotonic()))
        body = json.dumps({"events": self.batch}).encode()
        for _ in range(10):  # the monitor may ask us to slow down (429) or wait (503)
            status, raw, retry_after = self._request("POST", INGEST_PATH, body)
            if status not in (429, 503):
                break
            wait = retry_after or ""
            time.sleep(min(30.0, float(wait)) if wait.isdigit() else 1.0)
        n, self.batch = len(self.batch), []
        self.sent += n
        try:
            answer = json.loads(raw)
            accepted, rejected = int(answer["accepted"]), int(answer["rejected"])
        except (ValueError, KeyError, TypeError):
            accepted, rejected = (n, 0) if 200 <= status < 300 else (0, n)
        self.accepted += accepted
        self.rejected += rejected
        if status >= 400 and len(self.errors) < 5:
            self.errors.append(f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")

    def close(self) -> None:
        """Close the kept-alive connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
