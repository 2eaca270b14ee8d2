from __future__ import annotations

import threading

import pytest

from live_monitor.model.events import ExecutionEvent
from live_monitor.store.memory import EventDeque, EventStore


def event(service="backend", component="http", action="GET /x", duration=10.0, status="success", trace=None):
    return ExecutionEvent(
        timestamp=1_800_000_000.0,
        service=service,
        component=component,
        action=action,
        duration_ms=duration,
        status=status,
        trace_id=trace,
    )


def test_deques_are_bounded_and_evictions_counted(clock):
    store = EventStore(max_events=5, clock=clock)
    store.add([event() for _ in range(8)])
    store.add([event(service="frontend", component="api") for _ in range(3)])
    counts = store.counts()
    assert counts["stored"] == {"backend": 5, "frontend": 3}
    assert counts["evicted_by_service"] == {"backend": 3, "frontend": 0}
    assert counts["accepted"] == counts["evicted"] + sum(counts["stored"].values())
    assert counts["totals"] == {"backend": 8, "frontend": 3}


def test_rejections_are_counted_by_reason(clock):
    store = EventStore(clock=clock)
    store.add([event()])
    store.reject(["duration_ms: must be >= 0", "duration_ms: must be >= 0", "malformed batch"])
    counts = store.counts()
    assert counts["received"] == 4
    assert counts["accepted"] == 1 and counts["rejected"] == 3
    assert counts["rejected_by_reason"] == {"duration_ms: must be >= 0": 2, "malformed batch": 1}


def test_figures_cover_a_sliding_window(clock):
    store = EventStore(window_s=60, bucket_s=10, clock=clock)
    store.add([event(duration=100.0) for _ in range(10)])
    clock.advance(30)
    store.add([event(duration=10.0) for _ in range(10)])
    stats = store.window_stats()
    assert stats.backend.total.count == 20
    clock.advance(45)  # the first ten are now older than the window
    stats = store.window_stats()
    assert stats.backend.total.count == 10
    assert stats.backend.total.timed.mean == 10.0
    assert store.counts()["stored"]["backend"] == 20  # the raw events stay until evicted


def test_requests_with_one_trace_id_are_joined_into_a_gap(clock):
    store = EventStore(clock=clock)
    trace = "ab" * 16
    store.add([event(service="frontend", component="api", duration=250.0, trace=trace)])
    store.add([event(service="backend", component="http", duration=40.0, trace=trace)])
    gaps = store.window_stats().trace_gaps
    assert gaps["GET /x"].count == 1
    assert abs((gaps["GET /x"].quantile(0.5) or 0) - 210.0) <= 2.1


def test_recent_is_newest_first_and_can_hide_self_monitoring(clock):
    store = EventStore(clock=clock)
    for i in range(3):
        e = event(action=f"GET /{i}")
        e.timestamp = e.timestamp.replace(second=i)
        store.add([e])
    own = event(action="GET /api/live-execution/data")
    own.details = {"self_monitor": True}
    own.timestamp = own.timestamp.replace(second=9)
    store.add([own])
    assert [e.action for e in store.recent(10)][:2] == ["GET /api/live-execution/data", "GET /2"]
    assert [e.action for e in store.recent(10, include_self=False)] == ["GET /2", "GET /1", "GET /0"]


def test_the_seed_deque_view_goes_through_the_store(clock):
    store = EventStore(clock=clock)
    backend = EventDeque(store, "backend")
    backend.append(event())
    backend.append({"component": "db", "action": "query", "duration_ms": 3.0})
    assert len(backend) == 2
    assert [e.component for e in backend] == ["http", "db"]
    assert store.window_stats().backend.total.count == 2
    try:
        backend.append(event(service="frontend"))
    except ValueError as exc:
        assert "frontend event" in str(exc)
    else:
        raise AssertionError("a frontend event went into backend_events")


def test_accounting_holds_under_concurrent_writers_and_readers():
    store = EventStore(max_events=500)
    stop = threading.Event()
    problems: list[str] = []

    def writer(n: int) -> None:
        for i in range(200):
            store.add(
                [event(service="backend" if i % 2 else "frontend", component="http" if i % 2 else "api")]
            )
            if i % 50 == 0:
                store.reject(["bad"])

    def reader() -> None:
        while not stop.is_set():
            c = store.counts()
            if c["accepted"] < c["evicted"] + sum(c["stored"].values()) - 0:
                problems.append(f"inconsistent snapshot {c}")
            store.window_stats()
            store.recent(50)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    c = store.counts()
    assert problems == []
    assert c["accepted"] == 1600
    assert c["rejected"] == 32
    assert c["received"] == c["accepted"] + c["rejected"]
    assert c["accepted"] == c["evicted"] + sum(c["stored"].values())
    stats = store.window_stats()
    assert stats.backend.total.count + stats.frontend.total.count == 1600


from hypothesis import settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule  # noqa: E402

from live_monitor.core.monitor import LiveExecutionMonitor  # noqa: E402


class IngestAccounting(RuleBasedStateMachine):
    """Whatever mix of batches arrives, every event is accepted, rejected or evicted, once."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor = LiveExecutionMonitor({"max_events": 7})
        self.valid = 0
        self.invalid = 0
        self.malformed = 0

    @rule(
        good=st.lists(st.sampled_from(["backend", "frontend"]), max_size=12),
        bad=st.integers(min_value=0, max_value=5),
    )
    def post_a_batch(self, good, bad):
        import json

        events = [
            {
                "service": s,
                "component": "http" if s == "backend" else "api",
                "action": "GET /x",
                "duration_ms": 1.0,
            }
            for s in good
        ]
        events += [{"service": "backend", "component": "", "action": "GET /x"}] * bad
        result = self.monitor.ingest(json.dumps(events).encode())
        assert (result.accepted, result.rejected) == (len(good), bad)
        self.valid += len(good)
        self.invalid += bad

    @rule(body=st.binary(max_size=40))
    def post_garbage(self, body):
        from live_monitor.model.events import BatchError

        try:
            result = self.monitor.ingest(b"{" + body)
        except BatchError:
            self.monitor.store.reject(["malformed batch"])
            self.malformed += 1
        else:
            self.valid += result.accepted
            self.invalid += result.rejected

    @rule()
    def read(self):
        self.monitor.data(limit=5)
        self.monitor.differences()

    @invariant()
    def everything_is_accounted_for(self):
        c = self.monitor.store.counts()
        assert c["accepted"] == self.valid
        assert c["rejected"] == self.invalid + self.malformed
        assert c["received"] == c["accepted"] + c["rejected"]
        assert c["accepted"] == c["evicted"] + sum(c["stored"].values())
        assert all(n <= 7 for n in c["stored"].values())


TestIngestAccounting = IngestAccounting.TestCase
TestIngestAccounting.settings = hsettings(max_examples=40, stateful_step_count=25, deadline=None)


def test_the_stream_gets_each_new_event_once(clock):
    store = EventStore(clock=clock)
    seq = store.seq
    store.add([event(service="backend"), event(service="frontend", component="api")])
    seq, fresh = store.since(seq)
    assert len(fresh) == 2
    store.add([event(service="frontend", component="api", action="GET /late")])
    seq, fresh = store.since(seq)
    assert [e.action for e in fresh] == ["GET /late"]


def test_a_stream_behind_by_more_than_its_limit_gets_the_newest_in_order(clock):
    store = EventStore(clock=clock)
    seq = store.seq
    store.add([event(service="backend", action=f"GET /n{i}") for i in range(10)])
    seq, fresh = store.since(seq, limit=3)
    assert [e.action for e in fresh] == ["GET /n7", "GET /n8", "GET /n9"]
    assert store.since(seq, limit=3) == (seq, [])


def test_the_gap_is_browser_minus_server_whichever_half_arrives_first(clock):
    store = EventStore(clock=clock)
    trace = "cd" * 16
    store.add([event(service="backend", component="http", duration=40.0, trace=trace)])
    store.add([event(service="frontend", component="api", duration=250.0, trace=trace)])
    gap = store.window_stats().trace_gaps["GET /x"].quantile(0.5)
    assert gap is not None and abs(gap - 210.0) <= 2.1


def _figures(side):
    """Everything a reader sees of one side's statistics, rounded as /data rounds it."""
    return {
        "total": side.total.figures(),
        "api": side.api.figures(),
        "endpoints": {key: agg.figures() for key, agg in sorted(side.endpoints.items())},
        "components": dict(side.components),
    }


def test_batched_figures_equal_event_by_event_figures(clock):
    import random

    from live_monitor.model.stats import PairStats, TraceJoiner

    rng = random.Random(7)
    events = []
    for _ in range(3000):
        side = rng.choice(["backend", "frontend"])
        kind = rng.random()
        component = ("http" if side == "backend" else "api") if kind < 0.8 else rng.choice(["db", "click"])
        events.append(
            event(
                service=side,
                component=component,
                action=f"GET /r{rng.randrange(12)}",
                duration=None if kind > 0.95 else rng.lognormvariate(3, 1) * (kind > 0.02),
                status="error" if rng.random() < 0.05 else "success",
                trace=f"{rng.randrange(400):032x}" if rng.random() < 0.9 else None,
            )
        )
    store = EventStore(window_s=900, clock=clock)
    at = 0
    while at < len(events):  # batches of every size, across the settle threshold
        size = rng.choice([1, 7, 100, 999, 2500])
        store.add(events[at : at + size])
        at += size
    batched = store.window_stats()

    expected, joiner = PairStats(), TraceJoiner(20_000)
    for e in events:
        expected.side(e.service).add(e.component, e.action, e.duration_ms, e.is_error, clock())
        if e.trace_id and e.endpoint is not None:
            gap = joiner.offer(e.trace_id, e.service, e.endpoint, e.duration_ms)
            if gap is not None:
                expected.add_gap(e.endpoint, gap)
    for side in ("backend", "frontend"):
        assert _figures(batched.side(side)) == _figures(expected.side(side))
    assert sorted(batched.trace_gaps) == sorted(expected.trace_gaps)
    for key, sketch in expected.trace_gaps.items():
        assert batched.trace_gaps[key].count == sketch.count
        assert batched.trace_gaps[key].quantiles((0.5, 0.99)) == sketch.quantiles((0.5, 0.99))


def test_events_count_in_the_bucket_they_arrived_in(clock):
    store = EventStore(window_s=60, bucket_s=10, clock=clock)
    store.add([event(duration=100.0) for _ in range(5)])  # queued, not yet counted
    clock.advance(15)  # the next add closes the first bucket, which counts them first
    store.add([event(duration=1.0) for _ in range(5)])
    clock.advance(55)  # the first bucket has left the window; the second has not
    stats = store.window_stats()
    assert stats.backend.total.count == 5
    assert stats.backend.total.timed.max == pytest.approx(1.0, rel=0.01)  # the slow ones are gone


def test_both_halves_of_a_request_share_one_trace_id_string(clock):
    store = EventStore(clock=clock)
    trace = "ab" * 16
    store.add([event(trace=trace)])
    frontend = event(service="frontend", component="api", trace="".join(["ab"] * 16))
    assert frontend.trace_id == trace and frontend.trace_id is not trace
    store.add([frontend])
    store.window_stats()
    (backend_half,) = store.events("backend")
    (frontend_half,) = store.events("frontend")
    assert frontend_half.trace_id is backend_half.trace_id
