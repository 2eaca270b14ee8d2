"""The in-memory store: what only it promises (exact bounds, batching, shared trace-id strings)."""

from __future__ import annotations

import threading

from live_monitor.store.memory import EventStore
from tests.helpers import stored_event


def test_deques_are_bounded_and_evictions_counted(clock):
    store = EventStore(max_events=5, clock=clock)
    store.add([stored_event() for _ in range(8)])
    store.add([stored_event(service="frontend", component="api") for _ in range(3)])
    counts = store.counts()
    assert counts["stored"] == {"backend": 5, "frontend": 3}
    assert counts["evicted_by_service"] == {"backend": 3, "frontend": 0}
    assert counts["accepted"] == counts["evicted"] + sum(counts["stored"].values())
    assert counts["totals"] == {"backend": 8, "frontend": 3}


def test_accounting_holds_under_concurrent_writers_and_readers():
    store = EventStore(max_events=500)
    stop = threading.Event()
    problems: list[str] = []

    def writer(n: int) -> None:
        for i in range(200):
            store.add(
                [
                    stored_event(
                        service="backend" if i % 2 else "frontend", component="http" if i % 2 else "api"
                    )
                ]
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

    from live_monitor.model.policy import TraceJoin, pairable
    from live_monitor.model.stats import PairStats

    rng = random.Random(7)
    events = []
    for _ in range(3000):
        side = rng.choice(["backend", "frontend"])
        kind = rng.random()
        component = ("http" if side == "backend" else "api") if kind < 0.8 else rng.choice(["db", "click"])
        events.append(
            stored_event(
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

    expected, join = PairStats(), TraceJoin()
    for e in events:  # one at a time
        expected.side(e.service).add(e.component, e.action, e.duration_ms, e.is_error, clock())
        for endpoint, gap in join.offer(pairable([e]), clock()):
            expected.add_gap(endpoint, gap)
    for side in ("backend", "frontend"):
        assert _figures(batched.side(side)) == _figures(expected.side(side))
    assert sorted(batched.trace_gaps) == sorted(expected.trace_gaps)
    for key, sketch in expected.trace_gaps.items():
        assert batched.trace_gaps[key].count == sketch.count
        assert batched.trace_gaps[key].quantiles((0.5, 0.99)) == sketch.quantiles((0.5, 0.99))


def test_both_halves_of_a_request_share_one_trace_id_string(clock):
    store = EventStore(clock=clock)
    trace = "ab" * 16
    store.add([stored_event(trace=trace)])
    frontend = stored_event(service="frontend", component="api", trace="".join(["ab"] * 16))
    assert frontend.trace_id == trace and frontend.trace_id is not trace
    store.add([frontend])
    store.window_stats()
    (backend_half,) = store.events("backend")
    (frontend_half,) = store.events("frontend")
    assert frontend_half.trace_id is backend_half.trace_id
