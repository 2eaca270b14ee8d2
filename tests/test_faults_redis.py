"""Redis killed and restarted under load, against a real redis-server and a real monitor, with
one process and with ``--workers 2``: clients keep posting batches of uniquely numbered events
while Redis is killed (SIGKILL) and started again on the same port. Redis runs with
``appendonly yes`` and ``appendfsync always`` (tests.helpers.RedisServer): it answers a write
only once the write is on disk, so what it acknowledged survives its own crash.

Each run prints its figures; it fails on any acknowledged event missing afterwards, any answer
but 200 or 503 (with Retry-After), a /health that is not 200, an answer that does not come
(every request has a timeout), or a monitor that does not recover by itself.
"""

from __future__ import annotations

import pytest
import requests

from live_monitor.vocabulary import HEALTH_PATH, READY_PATH
from tests.helpers import (
    IngestLoad,
    MonitorProcess,
    RedisServer,
    RouteWatch,
    run_monitor,
    served_ids,
    wait_for,
    wait_for_workers,
)

pytestmark = pytest.mark.timeout(120)

ACKS = 1000  # events acknowledged before the kill, and again after the restart
OUTAGE_READS = 25  # /ready answers 503 this often (about 2 s) before Redis comes back
READY_IN_A_ROW = 6  # /ready answers 200 on this many fresh connections: every worker is back


def _ready_everywhere(server: MonitorProcess) -> bool:
    """/ready is 200 on several fresh connections, which the kernel spreads over the workers."""
    for _ in range(READY_IN_A_ROW):
        with requests.Session() as session:
            if session.get(f"{server.url}{READY_PATH}", timeout=10).status_code != 200:
                return False
    return True


@pytest.mark.parametrize("workers", [1, 2])
def test_redis_killed_and_restarted_under_load_loses_no_acknowledged_event(
    redis_server: RedisServer, workers: int
) -> None:
    flags = ["--store", redis_server.url, "--max-events", "100000", "--interval", "0.2"]
    with run_monitor(*flags, "--workers", str(workers)) as server:
        if workers > 1:
            wait_for_workers(server, workers)
        allowed = {HEALTH_PATH: {200}, READY_PATH: {200, 503}}
        with RouteWatch(server.url, allowed) as watch, IngestLoad(server.url, clients=4, batch=10) as load:
            load.wait_for_acks(ACKS)
            assert redis_server.proc is not None
            redis_server.proc.kill()  # SIGKILL: no shutdown, no last write
            redis_server.proc.wait(10)
            acked_at_kill = len(load.acked)
            down = lambda: watch.seen[READY_PATH].get(503, 0) >= OUTAGE_READS  # noqa: E731
            assert wait_for(down, timeout=30), watch.seen
            acked_during = len(load.acked) - acked_at_kill  # only answers already on their way
            redis_server.start()  # same port, same append-only file
            assert wait_for(lambda: _ready_everywhere(server), timeout=30), "the monitor did not recover"
            load.wait_for_acks(ACKS)
        served = served_ids(server.url)
        lost = load.acked - served
        print(
            f"\nRedis SIGKILL and restart, {workers} worker(s): {load.figures()}, acknowledged while "
            f"Redis was down {acked_during}, lost {len(lost)}; /health and /ready: {watch.seen}"
        )
        assert lost == set(), sorted(lost)[:10]
        assert load.failures == [], load.failures[:10]
        assert watch.failures == [], watch.failures[:10]
        assert set(watch.seen[READY_PATH]) == {200, 503}  # readiness followed the outage
        assert load.statuses.get(503, 0) > 0
        assert "Traceback" not in "".join(server.output)
