"""The Redis store: the same figures as the in-memory store, shared by many processes."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import threading
import time
from typing import Any

import msgspec
import pytest
import requests

from live_execution_monitor import create_app
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model import policy
from live_monitor.model.comparator import compare, endpoint_rows, summarize
from live_monitor.model.events import ExecutionEvent
from live_monitor.store import StoreUnavailable
from live_monitor.store.memory import EventStore
from live_monitor.store.redis import RedisEventStore
from tests.helpers import FakeReader, reading

EVENT_FIELDS = ("backend", "frontend", "comparison", "endpoints", "recent_events", "differences_count")


def sample_events(n: int = 60) -> list[ExecutionEvent]:
    out = []
    for i in range(n):
        trace = f"{i:032x}"
        out.append(
            ExecutionEvent(
                service="backend",
                component="http",
                action="GET /api/orders/:id",
                duration_ms=20.0 + i % 7,
                status="error" if i % 10 == 0 else "success",
                trace_id=trace,
                timestamp=1_800_000_000 + i,
            )
        )
        out.append(
            ExecutionEvent(
                service="frontend",
                component="api",
                action="GET /api/orders/:id",
                duration_ms=900.0 + i % 7,
                trace_id=trace,
                timestamp=1_800_000_000 + i,
            )
        )
        out.append(
            ExecutionEvent(
                service="frontend", component="click", action="button#buy", timestamp=1_800_000_000 + i
            )
        )
    return out


def test_redis_figures_equal_the_in_memory_figures(redis_server, clock):
    memory = EventStore(window_s=600, bucket_s=10, clock=clock)
    shared = RedisEventStore(redis_server.url, window_s=600, bucket_s=10, clock=clock)
    events = sample_events()
    for chunk in range(0, len(events), 25):
        memory.add(events[chunk : chunk + 25])
        shared.add(events[chunk : chunk + 25])
    a, b = memory.window_stats(), shared.window_stats()
    assert summarize(a.backend) == summarize(b.backend)
    assert summarize(a.frontend) == summarize(b.frontend)
    assert endpoint_rows(a) == endpoint_rows(b)
    assert compare(a) == compare(b)
    assert endpoint_rows(b)[0]["matched_requests"] == 60
    counts = shared.counts()
    assert counts["accepted"] == 180 and counts["totals"] == {"backend": 60, "frontend": 120}
    assert [e.action for e in shared.recent(3)] == [e.action for e in memory.recent(3)]


def _timed_mix(n: int) -> list[ExecutionEvent]:
    """Calls of a few endpoints and timed events that are not calls (queries, renders), with
    some durations of 0 (no log bucket)."""
    out = []
    for i in range(n):
        side: Any = "backend" if i % 2 else "frontend"
        call = "http" if i % 2 else "api"
        component = call if i % 3 else ("db" if side == "backend" else "render")
        out.append(
            ExecutionEvent(
                service=side,
                component=component,
                action=f"GET /api/items/{i % 4}" if component == call else f"step {i % 3}",
                duration_ms=0.0 if i % 11 == 0 else 1.0 + (i * 7.3) % 400,
                status="error" if i % 13 == 0 else "success",
                timestamp=1_800_000_000 + i,
            )
        )
    return out


def _sides(stats):
    """Each side's total and API sketches and figures, exactly."""
    return [
        (
            agg.count,
            agg.errors,
            agg.timed.count,
            agg.timed.zeros,
            agg.timed.min,
            agg.timed.max,
            round(agg.timed.sum, 9),
            dict(agg.timed.buckets),
        )
        for side in (stats.backend, stats.frontend)
        for agg in (side.total, side.api)
    ]


def test_the_api_and_total_sketches_added_up_at_read_time_equal_the_memory_stores(redis_server, clock):
    """Redis keeps no bins for the API and total sketches (the endpoints' and the other timed
    events' bins add up to them when read): the figures stay the memory store's, exactly."""
    memory = EventStore(window_s=600, bucket_s=10, clock=clock)
    shared = RedisEventStore(redis_server.url, window_s=600, bucket_s=10, clock=clock)
    events = _timed_mix(200)
    for chunk in range(0, len(events), 40):
        memory.add(msgspec.structs.replace(e) for e in events[chunk : chunk + 40])
        shared.add(msgspec.structs.replace(e) for e in events[chunk : chunk + 40])
        clock.advance(7)
    a, b = memory.window_stats(), shared.window_stats()
    assert _sides(a) == _sides(b)
    assert summarize(a.backend) == summarize(b.backend) and summarize(a.frontend) == summarize(b.frontend)
    assert b.backend.total.count == 100 and b.backend.total.timed.count > b.backend.api.timed.count


def test_a_window_written_by_an_earlier_version_is_read_with_the_new_one(redis_server, clock):
    """Earlier versions kept each bucket in ``{lem}:agg:<start>``, every sketch with its bins:
    a monitor started on their Redis reads those buckets beside its own."""
    import redis

    from live_monitor.store import redis as store_module

    memory = EventStore(window_s=600, bucket_s=10, clock=clock)
    shared = RedisEventStore(redis_server.url, window_s=600, bucket_s=10, clock=clock)
    older, newer = _timed_mix(60), _timed_mix(90)[60:]
    memory.add(older)
    stats = memory.window_stats()
    ops: list = []  # the earlier layout: the total and API sketches with their bins
    for side in (stats.backend, stats.frontend):
        letter = side.service[0]
        store_module._aggregate_ops(ops, f"{letter}|t", side.total)
        store_module._aggregate_ops(ops, f"{letter}|api", side.api)
        for name, agg in side.endpoints.items():
            store_module._aggregate_ops(ops, f"{letter}|e|{name}", agg)
        for name, count in side.components.items():
            ops += ["i", f"{letter}|c|{name}", str(count)]
    start = int(clock() - clock() % 10)
    old = redis.Redis.from_url(redis_server.url)
    old.hset(f"{{lem}}:agg:{start}", mapping={ops[i + 1]: ops[i + 2] for i in range(0, len(ops), 3)})
    memory.add(msgspec.structs.replace(e) for e in newer)
    shared.add(msgspec.structs.replace(e) for e in newer)
    a, b = memory.window_stats(), shared.window_stats()
    assert _sides(a) == _sides(b) and endpoint_rows(a) == endpoint_rows(b)
    assert b.backend.total.count == 45
    old.close()


def _pairs_across_batches() -> list[list[ExecutionEvent]]:
    """Halves that meet within a batch and across batches, browser calls that arrive second under
    another key than their server request's (re-keyed), and gaps below 0 (counted as 0)."""
    batches: list[list[ExecutionEvent]] = [[], [], []]
    for i in range(90):
        trace, key = f"{i:032x}", f"GET /api/items/{i % 4}"
        server = ExecutionEvent(
            service="backend",
            component="http",
            action=key,
            duration_ms=10.0 + i * 0.37,
            trace_id=trace,
            timestamp=1_800_000_000 + i,
        )
        call = ExecutionEvent(
            service="frontend",
            component="api",
            action=key if i % 5 else "GET /items",
            trace_id=trace,
            duration_ms=(5.0 if i % 9 == 0 else 30.0 + i * 1.1),
            timestamp=1_800_000_000 + i,
        )
        first, second = (server, call) if i % 2 else (call, server)
        batches[i % 3].append(first)
        batches[(i % 3) + (i % 6 > 2) if i % 3 < 2 else 2].append(second)
    return batches


def _sketches(stats, tallies):
    """Every gap sketch's state and every gap histogram: what both stores must agree on (the sums
    to 9 places: Redis adds each batch's sum in long double, the memory store in double)."""
    sketches = {
        key: (s.count, round(s.sum, 9), s.min, s.max, s.zeros, dict(s.buckets))
        for key, s in stats.trace_gaps.items()
    }
    endpoints = {
        (side, key): (a.count, round(a.timed.sum, 9), dict(a.timed.buckets))
        for side in ("backend", "frontend")
        for key, a in stats.side(side).endpoints.items()
    }
    return sketches, endpoints, {key: (h.buckets, round(h.sum, 9)) for key, h in tallies.gaps.items()}


def test_pairs_made_in_the_write_script_count_as_in_the_memory_store(redis_server, clock):
    """The Redis store pairs halves and counts their gaps inside its one write script (Lua); the
    gap sketches, the endpoint figures and the tallies' gap histograms equal the memory store's,
    re-keyed browser calls (counted again by the client) included."""
    memory = EventStore(window_s=600, bucket_s=10, clock=clock)
    shared = RedisEventStore(redis_server.url, window_s=600, bucket_s=10, clock=clock)
    for batch in _pairs_across_batches():
        memory.add(msgspec.structs.replace(e) for e in batch)
        shared.add(msgspec.structs.replace(e) for e in batch)
        clock.advance(0.5)
    a, b = (
        _sketches(memory.window_stats(), memory.tallies()),
        _sketches(shared.window_stats(), shared.tallies()),
    )
    assert a == b
    assert sum(count for count, *_ in b[0].values()) == 90 and b[0]["GET /api/items/0"][4] > 0


@pytest.mark.parametrize("seed", range(2))
def test_random_traces_pair_in_redis_exactly_as_in_memory(redis_server, clock, seed):
    """The write script reads each trace's waiting halves once and writes them back once per
    batch: on random batches (halves that wait and are met in one batch, several halves of a
    trace, expiries) both stores make the same pairs and hold the same halves afterwards."""
    from tests.test_model_policy import _random_event

    rng = random.Random(seed)
    memory = EventStore(window_s=3600, bucket_s=10, clock=clock)
    shared = RedisEventStore(redis_server.url, window_s=3600, bucket_s=10, clock=clock)
    shared.redis.flushdb()
    for _ in range(60):
        batch = [_random_event(rng) for _ in range(rng.choice([1, 2, 5, 9]))]
        memory.add(msgspec.structs.replace(e) for e in batch)
        shared.add(msgspec.structs.replace(e) for e in batch)
        clock.advance(rng.choice([1.0, 1.0, 1.0, policy.PENDING_TTL_S * 0.6]))
    a, b = (
        _sketches(memory.window_stats(), memory.tallies()),
        _sketches(shared.window_stats(), shared.tallies()),
    )
    # min and max left out: the memory store's window can report a gap sketch's bucket value
    # where Redis keeps the exact one, with either join script (a difference outside the join)
    assert {k: (n, total, zeros, bins) for k, (n, total, _, _, zeros, bins) in a[0].items()} == {
        k: (n, total, zeros, bins) for k, (n, total, _, _, zeros, bins) in b[0].items()
    }
    assert a[1:] == b[1:]
    mine, theirs = _live_halves(memory, shared, clock())
    assert mine == theirs


def _live_halves(memory: EventStore, shared: RedisEventStore, now: float) -> list[set[tuple[str, str]]]:
    """Each store's waiting halves that are still live, as (trace id, Half.encode())."""
    mine = set()
    for held in memory._joiner._waiting.values():
        for half in held if isinstance(held, list) else [held]:
            if now - half.at <= policy.PENDING_TTL_S:
                mine.add((half.trace_id, half.encode()))
    theirs = set()
    members: Any = shared.redis.zrange("{lem}:waiting", 0, -1)
    for member in members:
        key, _, field = member.decode().rpartition("#")
        raw: Any = shared.redis.hget(key, field)
        value = raw.decode()
        assert 0 < shared.redis.ttl(key) <= policy.PENDING_TTL_S  # a trace left alone expires by itself
        if now - float(value.split("|")[1]) <= policy.PENDING_TTL_S:
            theirs.add((key.removeprefix("{lem}:halves:"), value))
    assert mine  # the batches leave halves waiting
    return [mine, theirs]


def test_retention_is_enforced_in_redis(redis_server, clock):
    shared = RedisEventStore(redis_server.url, max_events=50, window_s=60, bucket_s=10, clock=clock)
    for _ in range(10):
        shared.add(sample_events(10))
    counts = shared.counts()
    assert counts["accepted"] == 300
    assert counts["stored"] == {"backend": 50, "frontend": 50}
    assert counts["accepted"] == counts["evicted"] + sum(counts["stored"].values())
    clock.advance(200)
    assert shared.window_stats().backend.total.count == 0


def test_a_store_started_on_an_earlier_versions_events_carries_on(redis_server, clock):
    """Earlier versions kept one stream entry per event (``{lem}:events:<side>``); those are left
    alone, the counts go on from theirs, and new events are stored, listed and streamed."""
    import redis

    old = redis.Redis.from_url(redis_server.url)
    old.xadd("{lem}:events:backend", {"e": msgspec.json.encode(sample_events(1)[0]), "n": 1})
    old.hset("{lem}:counters", mapping={"received": 1, "accepted": 1, "accepted_backend": 1})
    shared = RedisEventStore(redis_server.url, clock=clock)
    seq = shared.seq
    assert shared.recent(5) == [] and shared.since(0) == (1, [])
    shared.add(sample_events(2))
    counts = shared.counts()
    assert counts["accepted"] == 7 and counts["stored"] == {"backend": 2, "frontend": 4}
    assert counts["evicted"] == 1  # the earlier version's event is no longer listed
    assert [e.action for e in shared.since(seq)[1]] == [e.action for e in sample_events(2)]
    assert len(shared.recent(10)) == 6
    old.close()


def test_a_stream_deleted_by_hand_starts_again_with_the_next_batch(redis_server, clock):
    shared = RedisEventStore(redis_server.url, max_events=50, clock=clock)
    shared.add(sample_events(20))
    shared.redis.delete("{lem}:log:backend")
    shared.add(sample_events(3))
    assert shared.counts()["stored"] == {"backend": 3, "frontend": 46}
    assert len(shared.events("backend")) == 3


def test_counters_deleted_by_hand_start_again_and_ingest_goes_on(redis_server, clock):
    shared = RedisEventStore(redis_server.url, max_events=50, clock=clock)
    shared.add(sample_events(20))
    shared.redis.delete("{lem}:counters")
    assert shared.add(sample_events(3)) == 9
    assert shared.counts()["accepted"] == 9 and shared.seq == 9
    assert len(shared.events("backend")) == 23


def test_an_unreachable_redis_is_a_503_not_a_500():
    app = create_app({"store": "redis://127.0.0.1:1/0", "self_monitor": False})
    client = app.test_client()
    body = [{"service": "backend", "component": "http", "action": "GET /x"}]
    response = client.post("/api/live-execution/events", json=body)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "unreachable" in response.json["error"]
    assert client.get("/api/live-execution/data").status_code == 503
    with pytest.raises(StoreUnavailable):
        RedisEventStore("redis://127.0.0.1:1/0").counts()


def test_shutting_down_while_redis_is_down_warns_without_a_traceback(caplog):
    monitor = LiveExecutionMonitor({"store": "redis://127.0.0.1:1/0", "self_monitor": False})
    with caplog.at_level(logging.WARNING, logger="live_execution_monitor"):
        monitor.close()  # what serve() does on SIGTERM
    assert not monitor.sampler.running
    assert "shared store (Redis) is unreachable" in caplog.text


def _batch(first: int, n: int, service: str = "backend") -> list[dict]:
    component = "http" if service == "backend" else "api"
    return [
        {
            "service": service,
            "component": component,
            "action": "POST /api/orders",
            "duration_ms": 10.0 + i % 5,
            "details": {"n": i},
        }
        for i in range(first, first + n)
    ]


def _event_figures(api: str) -> dict:
    data = requests.get(f"{api}/data", params={"limit": 50}).json()
    return {k: data[k] for k in EVENT_FIELDS}


def test_two_processes_behind_one_redis_answer_the_same_figures(redis_server, start_monitor):
    flags = ("--no-self-monitor", "--store", redis_server.url)
    with start_monitor(*flags) as one, start_monitor(*flags) as two:
        requests.post(f"{one.api}/start")
        assert requests.get(f"{two.api}/status").json()["monitoring"] is True
        for i in range(10):
            target = one if i % 2 else two
            assert (
                requests.post(f"{target.api}/events", json=_batch(i * 20, 20, "backend")).status_code == 200
            )
            assert (
                requests.post(f"{target.api}/events", json=_batch(i * 20, 20, "frontend")).status_code == 200
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            a, b = _event_figures(one.api), _event_figures(two.api)
            if a == b:
                break
            time.sleep(0.1)
        assert a == b
        assert a["backend"]["total_events"] == 200 and a["frontend"]["total_events"] == 200
        assert requests.get(f"{one.api}/differences").json() == requests.get(f"{two.api}/differences").json()
        requests.post(f"{two.api}/stop")
        assert requests.get(f"{one.api}/status").json()["monitoring"] is False


def test_workers_share_one_port(redis_server, start_monitor):
    with start_monitor("--no-self-monitor", "--store", redis_server.url, "--workers", "2") as server:
        children = subprocess.run(
            ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        session = requests.Session()
        for i in range(20):
            assert session.post(f"{server.api}/events", json=_batch(i * 10, 10)).status_code == 200
        assert requests.get(f"{server.api}/status").json()["accepted"] == 200


def test_a_redis_restart_mid_ingest_loses_no_acknowledged_event(redis_server, start_monitor):
    with start_monitor("--no-self-monitor", "--store", redis_server.url) as server:
        acked: list[int] = []
        refused = [0]
        stop = threading.Event()

        def client() -> None:
            n = 0
            while not stop.is_set():
                try:
                    response = requests.post(f"{server.api}/events", json=_batch(n, 10), timeout=10)
                except requests.RequestException:
                    continue
                if response.status_code == 200:
                    acked.extend(range(n, n + 10))
                    n += 10
                elif response.status_code == 503:
                    refused[0] += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")) / 10)

        sender = threading.Thread(target=client)
        sender.start()
        while len(acked) < 300:
            time.sleep(0.01)
        redis_server.stop()
        while refused[0] == 0:
            time.sleep(0.01)
        redis_server.start()
        target = len(acked) + 300
        while len(acked) < target:
            time.sleep(0.01)
        stop.set()
        sender.join(20)
        status = requests.get(f"{server.api}/status").json()
        stored = requests.get(f"{server.api}/data", params={"limit": 20000}).json()["recent_events"]
        numbers = [e["details"]["n"] for e in stored]
        assert set(acked) <= set(numbers)
        assert len(numbers) - len(acked) <= 10  # at most the batch in flight when Redis went away
        assert status["accepted"] == len(numbers)
        assert refused[0] >= 1


def test_redis_rejections_are_counted_for_every_process(redis_server):
    app = create_app({"store": redis_server.url, "self_monitor": False})
    client = app.test_client()
    client.post("/api/live-execution/events", json=[{"service": "x", "component": "a", "action": "b"}])
    other = create_app({"store": redis_server.url, "self_monitor": False}).test_client()
    status = other.get("/api/live-execution/status").json
    assert status["rejected"] == 1 and status["received"] == 1
    assert json.dumps(status["rejected_by_reason"]).count("service") == 1


def test_stopping_from_two_processes_counts_the_time_once(redis_server):
    one, two = RedisEventStore(redis_server.url), RedisEventStore(redis_server.url)
    assert one.set_monitoring(True, 100.0) is True
    assert two.set_monitoring(True, 101.0) is False
    assert [one.set_monitoring(False, 130.0), two.set_monitoring(False, 130.0)].count(True) == 1
    assert two.monitoring_state() == (None, 30.0)


def test_a_process_following_a_start_elsewhere_does_not_spike_its_activity(redis_server):
    """With --workers, only one process is asked to start; the others follow the shared state and
    must not put what came while monitoring was stopped into their first activity point."""
    settings = {"store": redis_server.url, "interval": 60, "self_monitor": False}
    one = LiveExecutionMonitor(dict(settings), reader=FakeReader([reading()]))
    two = LiveExecutionMonitor(dict(settings), reader=FakeReader([reading()]))
    batch = [{"service": "backend", "component": "http", "action": "GET /a", "duration_ms": 5}]
    try:
        one.start()
        two.data()  # follows: its sampler starts and ticks once
        ticks = two.wait_for_tick(0, timeout=10)
        one.stop()
        two.data()  # follows the stop
        one.ingest(json.dumps(batch * 200).encode())
        one.start()
        two.data()
        two.wait_for_tick(ticks, timeout=10)
        assert two.data()["activity_history"][-1]["backend"] == 0
        assert two.status()["backend_events"] == 200
    finally:
        one.close()
        two.close()


def test_processes_share_one_tally_and_one_endpoint_cap(redis_server, clock):
    """With --workers, each process's /metrics reads the same counters and the same kept keys:
    the first MAX_SERIES_KEYS keys seen by any process, whichever process sees a later one."""
    from live_monitor.model.stats import MAX_SERIES_KEYS, OTHER
    from tests.helpers import stored_event

    first = RedisEventStore(redis_server.url, clock=clock)
    second = RedisEventStore(redis_server.url, clock=clock)
    first.add([stored_event(action=f"GET /a{i}") for i in range(MAX_SERIES_KEYS - 1)])
    second.add([stored_event(action="GET /b"), stored_event(action="GET /c", status="error")])
    first.add([stored_event(action="GET /b"), stored_event(action="GET /d")])
    one, other = first.tallies(), second.tallies()
    assert one == other
    assert one.events[("backend", "success")] == MAX_SERIES_KEYS + 2
    assert one.endpoints["backend"]["GET /b"].count == 2
    assert one.endpoints["backend"][OTHER].count == 2  # /c from one process, /d from the other
    assert len(one.endpoints["backend"]) == MAX_SERIES_KEYS + 1


def test_halves_of_one_trace_received_by_different_processes_each_meet_their_own(redis_server, clock):
    """With --workers, a trace's browser calls and server requests reach different processes at
    once; the join is one script call per batch, so every call still meets its own request."""
    from tests.helpers import stored_event

    def spans(trace: int) -> tuple[list[ExecutionEvent], list[ExecutionEvent]]:
        """Two calls of one key in a trace, their requests, and a downstream service's request."""
        browsers, servers = [], []
        for call in (1, 2):
            browser = stored_event("frontend", "api", duration=100.0 * call + 300.0, trace=f"{trace:032x}")
            server = stored_event(duration=100.0 * call, trace=f"{trace:032x}")
            browser.span_id = server.parent_span_id = f"{trace:08x}{call:08x}"
            browsers.append(browser)
            servers.append(server)
        downstream = stored_event(action="GET /inventory", duration=5.0, trace=f"{trace:032x}")
        downstream.parent_span_id = f"{trace:08x}{0:08x}"
        return browsers, [downstream, *servers]

    traces = [spans(t) for t in range(1, 201)]
    stores = [RedisEventStore(redis_server.url, clock=clock) for _ in range(2)]

    def send(store: RedisEventStore, side: int) -> None:
        for first in range(0, len(traces), 5):
            store.add([e for halves in traces[first : first + 5] for e in halves[side]])

    workers = [threading.Thread(target=send, args=(store, side)) for side, store in enumerate(stores)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    gaps = stores[0].window_stats().trace_gaps
    assert list(gaps) == ["GET /x"]
    assert (gaps["GET /x"].count, gaps["GET /x"].quantile(0.0), gaps["GET /x"].quantile(1.0)) == (
        400,
        300.0,
        300.0,
    )
