"""Where a 100-event ingest batch's time goes, in-process: the monitor's stages one by one
(CPU time of this thread, no profiler), beside the bare handler's json.loads + deque.extend.

The ingest rows print these beside the servers' CPU per request measured in the same run, so
a row that misses its target says which stages would have to shrink, and by how much.
"""

from __future__ import annotations

import io
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.common import EVENTS
from benchmarks.load import body_segments

STAGES = (
    ("decode", "decode + validate"),
    ("scrub", "scrub"),
    ("routes", "route keying"),
    ("join", "trace join"),
    ("stats", "window + tallies"),
    ("store", "rest of store.add"),
    ("wsgi", "ingest WSGI wrapper"),
)


def _fresh(bodies: list[bytes]) -> Iterator[bytes]:
    """The bodies in turn, forever, each time with new trace ids (as load.run_load sends them)."""
    cut = [body_segments(body, fresh_traces=True) for body in bodies]
    sent = 0
    while True:
        sent += 1
        yield (b"cafe%012x" % sent).join(cut[sent % len(cut)])


def _timed(acc: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.thread_time() - started

    return wrapper


def ingest_stages(bodies: list[bytes], batches: int) -> dict[str, float]:
    """Microseconds of this thread's CPU per batch in each of ``STAGES`` (and ``total``), over
    ``batches`` POSTs through the monitor's WSGI app (memory store, fresh trace ids)."""
    import live_monitor.core.monitor as monitor_module
    from live_monitor.web.app import create_app

    app = create_app({"autostart": False})
    monitor = app.extensions["live_monitor"]
    store = monitor.store
    acc: defaultdict[str, float] = defaultdict(float)
    decode = monitor_module.decode_batch
    monitor_module.decode_batch = _timed(acc, "decode", decode)
    try:
        monitor.scrubber.prepare = _timed(acc, "scrub", monitor.scrubber.prepare)
        monitor._key_by_routes = _timed(acc, "routes", monitor._key_by_routes)
        store.add = _timed(acc, "add", store.add)
        store._joiner.offer = _timed(acc, "join", store._joiner.offer)
        store._settle = _timed(acc, "settle", store._settle)
        call = _wsgi_caller(app.wsgi_app)
        fresh = _fresh(bodies)
        for _ in range(min(200, batches)):  # warm up: keys learned, the join's line filled
            call(next(fresh))
        acc.clear()
        started = time.thread_time()
        for _ in range(batches):
            call(next(fresh))
        total = time.thread_time() - started
    finally:
        monitor_module.decode_batch = decode
        monitor.close()
    # Gap stats run inside store.add, outside the join and _settle: counted with the rest of add.
    out: dict[str, float] = {
        "decode": acc["decode"],
        "scrub": acc["scrub"],
        "routes": acc["routes"],
        "join": acc["join"],
        "stats": acc["settle"],
        "store": acc["add"] - acc["join"] - acc["settle"],
    }
    out["wsgi"] = total - sum(out.values())
    out["total"] = total
    return {name: seconds / batches * 1e6 for name, seconds in out.items()}


def bare_work(bodies: list[bytes], batches: int) -> float:
    """Microseconds of CPU per batch of the bare handler's own work: json.loads + deque.extend."""
    store: deque[Any] = deque(maxlen=20_000)
    fresh = _fresh(bodies)
    data = [next(fresh) for _ in range(min(batches, 64))]
    started = time.thread_time()
    for i in range(batches):
        store.extend(json.loads(data[i % len(data)]))
    return (time.thread_time() - started) / batches * 1e6


def _wsgi_caller(app: Any) -> Callable[[bytes], None]:
    def call(body: bytes) -> None:
        environ = {
            "PATH_INFO": EVENTS,
            "REQUEST_METHOD": "POST",
            "HTTP_HOST": "127.0.0.1:5000",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5000",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        status: list[str] = []
        b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        if not status or not status[0].startswith("200"):
            raise RuntimeError(f"the monitor refused a valid batch in-process: {status}")

    return call
