"""The store contract: what the in-memory store and the Redis store both promise, tested on each.

Each test runs once per store: the memory store, and a Redis store on a real redis-server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import msgspec
import pytest

from live_monitor.model import policy
from live_monitor.model.comparator import summarize
from live_monitor.model.events import ExecutionEvent
from live_monitor.model.results import Difference, Episode
from live_monitor.model.stats import MAX_SERIES_KEYS, OTHER
from live_monitor.store import EPISODES_KEPT, Store
from live_monitor.store.memory import EventStore
from tests.helpers import stored_event

StoreMaker = Callable[..., Store]


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: Any) -> StoreMaker:
    """Makes stores of the kind under test (``store(window_s=60, bucket_s=10)``), all on one clock."""
    if request.param == "memory":
        return lambda **options: EventStore(clock=clock, **options)
    from live_monitor.store.redis import RedisEventStore

    url = request.getfixturevalue("redis_server").url
    return lambda **options: RedisEventStore(url, clock=clock, **options)


def half(side: str, trace: str, duration: float | None, action: str = "GET /x") -> ExecutionEvent:
    """One side's call of an endpoint, in a traced request."""
    component = "http" if side == "backend" else "api"
    return stored_event(service=side, component=component, action=action, duration=duration, trace=trace)


def own(e: ExecutionEvent) -> ExecutionEvent:
    e.details = {"self_monitor": True}
    return e


def test_both_stores_meet_the_store_contract(clock):
    """Checked by mypy (``make_store`` returns each as a ``Store``); here: the factory picks the kind."""
    from live_monitor.store import make_store

    memory: Store = make_store("memory", max_events=5, window_s=60, clock=clock)
    assert isinstance(memory, EventStore) and memory.max_events == 5 and memory.bucket_s == 1.0
    shared = make_store("redis://127.0.0.1:1/0", max_events=5, window_s=600, clock=clock)
    assert type(shared).__name__ == "RedisEventStore" and shared.bucket_s == 10.0
    with pytest.raises(ValueError, match="--store must be"):
        make_store("mysql://db", max_events=5, window_s=60, clock=clock)


# --- moved from the memory and Redis store tests: behaviour both stores promise ----------------


def test_rejections_are_counted_by_reason(store):
    s = store()
    s.add([stored_event()])
    s.reject(["duration_ms: must be >= 0", "duration_ms: must be >= 0", "malformed batch"])
    counts = s.counts()
    assert counts["received"] == 4
    assert counts["accepted"] == 1 and counts["rejected"] == 3
    assert counts["rejected_by_reason"] == {"duration_ms: must be >= 0": 2, "malformed batch": 1}


def test_figures_cover_a_sliding_window(store, clock):
    s = store(window_s=60, bucket_s=10)
    s.add([stored_event(duration=100.0) for _ in range(10)])
    clock.advance(30)
    s.add([stored_event(duration=10.0) for _ in range(10)])
    stats = s.window_stats()
    assert stats.backend.total.count == 20
    clock.advance(45)  # the first ten are now older than the window
    stats = s.window_stats()
    assert stats.backend.total.count == 10
    assert stats.backend.total.timed.mean == 10.0
    assert s.counts()["stored"]["backend"] == 20  # the raw events stay until evicted


def test_tallies_keep_counting_when_the_window_slides(store, clock):
    """What Prometheus' rate() needs: counts that only go up for the life of the store (eviction
    takes nothing from them either: test_web_metrics.py)."""
    s = store(window_s=60, bucket_s=10)
    s.add([stored_event(duration=d) for d in (4.0, 5.0, 30.0, 700.0)])
    clock.advance(120)  # the window has let go of them
    s.add([stored_event(duration=20_000.0, status="error"), own(stored_event(duration=1.0))])
    s.add([stored_event(service="frontend", component="click", duration=None) for _ in range(5)])
    assert s.window_stats().backend.total.count == 1
    tallies = s.tallies()
    assert tallies.events == {
        ("backend", "success"): 4,
        ("backend", "error"): 1,
        ("frontend", "success"): 5,
        ("frontend", "error"): 0,
    }
    backend = tallies.durations["backend"]  # bounds 5, 10, 25, 50, 100, 250, 500, 1000, ... 10000 ms
    assert backend.buckets == [2, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1] and backend.sum == 20_739.0
    assert tallies.endpoints["backend"]["GET /x"] == backend
    assert tallies.durations["frontend"].count == 0 and tallies.endpoints["frontend"] == {}


def test_tallies_keep_the_first_endpoint_keys_and_count_the_rest_as_other(store):
    s = store()
    s.add([stored_event(action=f"GET /q{i}", duration=None) for i in range(MAX_SERIES_KEYS - 1)])
    s.add([stored_event(action=f"GET /late{i}") for i in range(3)] + [stored_event(action="GET /q0")])
    s.add([stored_event(service="frontend", component="api", action="GET /late2")])
    tallies = s.tallies()
    backend = tallies.endpoints["backend"]
    assert len(backend) == MAX_SERIES_KEYS + 1 and "GET /late0" in backend
    assert backend[OTHER].count == 2 and backend["GET /q0"].count == 1 and backend["GET /q1"].count == 0
    assert set(tallies.endpoints["frontend"]) == {"GET /late2"}  # each side has its own keys


def test_tallies_count_the_gaps_of_joined_requests(store):
    s = store()
    for i, (server, browser) in enumerate([(40.0, 250.0), (40.0, 30.0), (10.0, 20.0)]):
        trace = f"{i + 1:032x}"
        s.add([stored_event(service="frontend", component="api", duration=browser, trace=trace)])
        s.add([stored_event(duration=server, trace=trace)])
    gaps = s.tallies().gaps
    assert list(gaps) == ["GET /x"]  # a browser faster than the server counts as 0, as in the window
    assert gaps["GET /x"].buckets[:5] == [1, 1, 0, 0, 0] and gaps["GET /x"].buckets[5] == 1
    assert gaps["GET /x"].sum == 220.0


def test_requests_with_one_trace_id_are_joined_into_a_gap(store):
    s = store()
    trace = "ab" * 16
    s.add([stored_event(service="frontend", component="api", duration=250.0, trace=trace)])
    s.add([stored_event(service="backend", component="http", duration=40.0, trace=trace)])
    gaps = s.window_stats().trace_gaps
    assert gaps["GET /x"].count == 1
    assert abs(gaps["GET /x"].quantile(0.5) - 210.0) <= 2.1


def test_the_gap_is_browser_minus_server_whichever_half_arrives_first(store):
    s = store()
    trace = "cd" * 16
    s.add([stored_event(service="backend", component="http", duration=40.0, trace=trace)])
    s.add([stored_event(service="frontend", component="api", duration=250.0, trace=trace)])
    gap = s.window_stats().trace_gaps["GET /x"].quantile(0.5)
    assert abs(gap - 210.0) <= 2.1


def test_recent_is_newest_first_and_can_hide_self_monitoring(store):
    s = store()
    for i in range(3):
        e = stored_event(action=f"GET /{i}")
        e.timestamp = cast(datetime, e.timestamp).replace(second=i)
        s.add([e])
    mine = own(stored_event(action="GET /api/live-execution/data"))
    assert isinstance(mine.timestamp, datetime)  # an ExecutionEvent holds its time as a datetime
    mine.timestamp = mine.timestamp.replace(second=9)
    s.add([mine])
    assert [e.action for e in s.recent(10)][:2] == ["GET /api/live-execution/data", "GET /2"]
    assert [e.action for e in s.recent(10, include_self=False)] == ["GET /2", "GET /1", "GET /0"]


def test_the_stream_gets_each_new_event_once(store):
    s = store()
    seq = s.seq
    s.add([stored_event(service="backend"), stored_event(service="frontend", component="api")])
    seq, fresh = s.since(seq)
    assert len(fresh) == 2
    s.add([stored_event(service="frontend", component="api", action="GET /late")])
    seq, fresh = s.since(seq)
    assert [e.action for e in fresh] == ["GET /late"]


def test_the_stream_follows_arrival_whatever_the_events_timestamps(store):
    """/stream sends what arrived since the last read, in arrival order: a browser with a clock
    behind still gets its events streamed."""
    s = store()
    seq = s.seq
    behind = stored_event(service="frontend", component="api", action="GET /behind")
    behind.timestamp = cast(datetime, behind.timestamp).replace(year=2020)
    s.add([stored_event(action="GET /b1"), behind, stored_event(action="GET /b2")])
    seq, fresh = s.since(seq)
    assert [e.action for e in fresh] == ["GET /b1", "GET /behind", "GET /b2"]
    older = stored_event(service="frontend", component="api", action="GET /older")
    older.timestamp = cast(datetime, older.timestamp).replace(year=2019)
    s.add([older])
    assert [e.action for e in s.since(seq)[1]] == ["GET /older"]


def test_a_stream_behind_by_more_than_its_limit_gets_the_newest_in_order(store):
    s = store()
    seq = s.seq
    s.add([stored_event(service="backend", action=f"GET /n{i}") for i in range(10)])
    seq, fresh = s.since(seq, limit=3)
    assert [e.action for e in fresh] == ["GET /n7", "GET /n8", "GET /n9"]
    assert s.since(seq, limit=3) == (seq, [])


def test_each_side_keeps_its_newest_events_whatever_the_batch_sizes(store):
    """--max-events per side, exactly: batches larger and smaller than it, sides mixed."""
    s = store(max_events=5)
    s.add([stored_event(action=f"GET /a{i}") for i in range(7)])
    for i in range(4):
        s.add([stored_event(action=f"GET /b{i}"), stored_event(service="frontend", component="api")])
    s.add([stored_event(action="GET /c")])
    assert [e.action for e in s.events("backend")] == ["GET /b0", "GET /b1", "GET /b2", "GET /b3", "GET /c"]
    assert len(s.events("frontend")) == 4
    counts = s.counts()
    assert counts["stored"] == {"backend": 5, "frontend": 4}
    assert counts["evicted_by_service"] == {"backend": 7, "frontend": 0}
    assert [e.action for e in s.recent(3, service="backend")] == ["GET /c", "GET /b3", "GET /b2"]
    seq, fresh = s.since(s.seq - 3)
    assert [e.action for e in fresh] == ["GET /b3", "GET /x", "GET /c"]


def test_the_lists_reach_back_across_many_small_batches(store):
    s = store(max_events=40)
    for i in range(50):
        s.add([stored_event(action=f"GET /s{i}")])
    assert [e.action for e in s.events("backend")] == [f"GET /s{i}" for i in range(10, 50)]
    assert len(s.recent(30)) == 30 and len(s.recent(100)) == 40
    seq, fresh = s.since(s.seq - 25)
    assert [e.action for e in fresh] == [f"GET /s{i}" for i in range(25, 50)]


def test_a_batch_of_hundreds_of_endpoints_keeps_each_ones_fastest_and_slowest(store):
    """One batch may name more endpoints than a script call can take values at once (Redis):
    400 per side, each with a fastest and a slowest call, 1,600 values in all."""
    s = store(max_events=10)
    calls = [stored_event(action=f"GET /e{i}", duration=float(i + 1)) for i in range(400)]
    calls += [half("frontend", "", float(i + 1), action=f"GET /e{i}") for i in range(400)]
    for e in calls:
        e.trace_id = None
    s.add(calls)
    s.add([stored_event(action="GET /e7", duration=0.5), stored_event(action="GET /e399", duration=9e3)])
    stats = s.window_stats()
    backend, frontend = stats.backend.endpoints, stats.frontend.endpoints
    assert len(backend) == len(frontend) == 400
    assert (backend["GET /e7"].timed.min, backend["GET /e7"].timed.max) == (0.5, 8.0)
    assert (backend["GET /e399"].timed.min, backend["GET /e399"].timed.max) == (400.0, 9e3)
    assert (frontend["GET /e399"].timed.min, frontend["GET /e399"].timed.max) == (400.0, 400.0)


def test_events_count_in_the_bucket_they_arrived_in(store, clock):
    s = store(window_s=60, bucket_s=10)
    s.add([stored_event(duration=100.0) for _ in range(5)])  # queued, not yet counted
    clock.advance(15)  # the next add closes the first bucket, which counts them first
    s.add([stored_event(duration=1.0) for _ in range(5)])
    clock.advance(55)  # the first bucket has left the window; the second has not
    stats = s.window_stats()
    assert stats.backend.total.count == 5
    assert stats.backend.total.timed.max == pytest.approx(1.0, rel=0.01)  # the slow ones are gone


# --- the batch policy (live_monitor.store.policy), the same in both stores -------------------


def test_own_traffic_is_stored_and_streamed_but_never_counted(store):
    s = store()
    seq, counted = s.seq, s.counted
    s.add([own(stored_event(action="GET /api/live-execution/data")) for _ in range(3)])
    assert s.seq == seq + 3  # streamed and listed
    assert s.counted == counted  # but it moves nothing the figures depend on
    counts = s.counts()
    assert counts["self_events"] == 3 and counts["totals"] == {"backend": 0, "frontend": 0}
    assert s.window_stats().backend.total.count == 0
    s.add([stored_event()])
    assert s.counted == counted + 1 and s.seq == seq + 4


def test_own_traffic_never_takes_part_in_a_pair(store):
    s = store()
    trace = "0f" * 16
    s.add([half("backend", trace, 40.0)])
    s.add([own(half("frontend", trace, 900.0))])  # would pair, were it counted
    s.add([half("frontend", trace, 250.0)])
    gap = s.window_stats().trace_gaps["GET /x"]
    assert gap.count == 1 and abs(gap.quantile(0.5) - 210.0) <= 2.1


def test_an_untimed_half_is_not_offered_so_it_cannot_spoil_a_pair(store):
    """Rule: only timed endpoint halves are offered to the joiner (an untimed one has no gap to give)."""
    s = store()
    trace = "ef" * 16
    s.add([half("backend", trace, 40.0)])
    s.add([half("frontend", trace, None)])  # a browser call the logger could not time
    s.add([half("frontend", trace, 250.0)])
    gap = s.window_stats().trace_gaps["GET /x"]
    assert gap.count == 1 and abs(gap.quantile(0.5) - 210.0) <= 2.1


def test_an_unpaired_half_waits_at_most_ten_minutes(store, clock):
    """Rule: a half waits ``PENDING_TTL_S`` (600 s) for its other half, and no longer."""
    assert policy.PENDING_TTL_S == 600
    s = store(window_s=900)
    early, late = "a1" * 16, "b2" * 16
    s.add([half("frontend", early, 250.0), half("frontend", late, 250.0)])
    clock.advance(600)
    s.add([half("backend", early, 40.0)])  # 600 s: still waiting
    clock.advance(1)
    s.add([half("backend", late, 40.0)])  # 601 s: gone
    assert s.window_stats().trace_gaps["GET /x"].count == 1


def test_at_most_twenty_thousand_halves_wait_the_oldest_dropped_first(store):
    """Rule: past ``PENDING_MAX`` (20,000) waiting halves, the oldest is dropped."""
    assert policy.PENDING_MAX == 20_000
    s = store(max_events=100)
    traces = [f"{i:032x}" for i in range(policy.PENDING_MAX + 1)]
    s.add([half("frontend", t, 250.0) for t in traces])
    s.add([half("backend", traces[1], 40.0)])  # the oldest still waiting: a pair
    s.add([half("backend", traces[0], 40.0)])  # dropped when the 20,001st came
    assert s.window_stats().trace_gaps["GET /x"].count == 1


def test_the_window_in_minutes_runs_from_the_first_event_to_now(store, clock):
    """Rule: minutes = max(min(window, now - first event), one bucket) / 60, by the clock: not from
    bucket edges, and a quiet spell still counts as time watched."""
    s = store(window_s=60, bucket_s=10)
    clock.advance(5)  # mid-bucket
    s.add([stored_event() for _ in range(10)])
    clock.advance(20)
    stats = s.window_stats()
    assert stats.backend.minutes == pytest.approx(20 / 60)
    assert summarize(stats.backend)["events_per_minute"] == pytest.approx(30.0)
    clock.advance(200)  # a quiet spell, longer than the window
    s.add([stored_event()])
    clock.advance(5)
    stats = s.window_stats()
    assert stats.backend.total.count == 1
    assert stats.backend.minutes == 1.0
    assert summarize(stats.backend)["events_per_minute"] == pytest.approx(1.0)


def test_monitoring_starts_and_stops_once_and_keeps_the_time(store):
    s = store()
    assert s.monitoring_state() == (None, 0.0)
    assert s.set_monitoring(True, 100.0) is True
    assert s.set_monitoring(True, 101.0) is False
    assert s.monitoring_state() == (100.0, 0.0)
    assert s.set_monitoring(False, 130.0) is True
    assert s.set_monitoring(False, 131.0) is False
    assert s.monitoring_state() == (None, 30.0)


def test_the_store_package_imports_no_store_until_one_is_made():
    """``live_monitor.store`` is imported by every layer above it: it must not pull in redis-py."""
    import subprocess
    import sys

    code = (
        "import sys, live_monitor.store as s; "
        "print(sorted(m for m in ('redis', 'live_monitor.store.memory', 'live_monitor.store.redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_events_parent_span_and_sample_rate_come_back_as_sent(store):
    s = store()
    e = half("backend", "ab" * 16, 12.0)
    e.parent_span_id, e.sample_rate = "00f067aa0ba902b7", 0.25
    s.add([e])
    (back,) = s.recent(1)
    assert (back.parent_span_id, back.sample_rate) == ("00f067aa0ba902b7", 0.25)


def test_sampled_calls_keep_their_weights_and_squared_weights_in_the_window(store, clock):
    """What the comparator needs to weigh a sampled side and to know how unsure its estimate is:
    each call at sample_rate 0.25 stands for 4 calls and adds 16 to the estimate's variance."""
    s = store(window_s=60, bucket_s=10)
    sampled = [half("frontend", f"{i:032x}", 30.0) for i in range(3)]
    for e in sampled:
        e.sample_rate = 0.25
    s.add([*sampled, half("frontend", "f" * 32, 30.0)])
    clock.advance(30)
    s.add([half("frontend", "e" * 32, 30.0)])
    for agg in (s.window_stats().frontend.api, s.window_stats().frontend.endpoints["GET /x"]):
        assert (agg.count, agg.estimated, agg.estimated_variance) == (5, 14.0, 50.0)
    clock.advance(45)  # the sampled calls leave the window
    api = s.window_stats().frontend.api
    assert (api.count, api.estimated, api.estimated_variance) == (1, 1.0, 1.0)


# --- the trace join on real traces: many spans in one trace (policy.choose) -------------------


def call(
    side: str, ms: float, action: str = "GET /x", span: str | None = None, parent: str | None = None
) -> ExecutionEvent:
    """One span of the trace ``TRACE``: a browser call (``span``: its own span id) or a server
    request (``parent``: the span it was made in)."""
    e = half(side, TRACE, ms, action)
    e.span_id, e.parent_span_id = span, parent
    return e


def matched(s: Store) -> dict[str, tuple[int, float | None, float | None]]:
    """The joined requests by key: (how many, smallest gap, largest gap), both kept exact."""
    gaps = s.window_stats().trace_gaps
    return {key: (g.count, g.quantile(0.0), g.quantile(1.0)) for key, g in gaps.items()}


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
B1, B2, S1, S2, C1 = "b1" * 8, "b2" * 8, "51" * 8, "52" * 8, "c1" * 8


@pytest.mark.parametrize(
    "order", ["servers first", "browsers first", "one batch"], ids=lambda o: o.replace(" ", "-")
)
def test_each_browser_call_meets_the_server_request_made_in_its_span(store, order):
    """Two calls of one endpoint in one trace: only the parent span tells their requests apart
    (by key alone the first call would meet the first request to arrive, the wrong one)."""
    s = store()
    browsers = [call("frontend", 300.0, span=B1), call("frontend", 500.0, span=B2)]
    servers = [call("backend", 50.0, span=S2, parent=B2), call("backend", 100.0, span=S1, parent=B1)]
    if order == "one batch":
        s.add([servers[0], browsers[0], browsers[1], servers[1]])
    else:
        for e in servers + browsers if order == "servers first" else browsers + servers:
            s.add([e])
    assert matched(s) == {"GET /x": (2, 200.0, 450.0)}


def test_several_calls_in_one_trace_without_span_ids_meet_by_endpoint_key(store):
    """Old clients send no parent ids: then the server request of the same key is the one."""
    s = store()
    s.add([call("frontend", 300.0, "GET /a"), call("frontend", 500.0, "GET /b")])
    s.add([call("backend", 50.0, "GET /b")])
    s.add([call("backend", 100.0, "GET /a"), call("backend", 70.0, "GET /c")])
    assert matched(s) == {"GET /a": (1, 200.0, 200.0), "GET /b": (1, 450.0, 450.0)}


@pytest.mark.parametrize("tied", [True, False], ids=["parent-ids", "no-parent-ids"])
def test_downstream_calls_internal_spans_and_other_services_never_break_the_pair(store, tied):
    """Browser -> server -> payment provider: the backend's outgoing call, an internal span and
    the provider's own server request (another service reporting here, on its own schedule,
    so after the request it served) leave the browser call to its request."""
    s = store()

    def span(parent: str) -> str | None:
        return parent if tied else None

    outgoing = call("backend", 95.0, "POST payments.example.com/v1/charges", span=C1, parent=span(S1))
    outgoing.component = "http-client"
    internal = call("backend", 5.0, "charge", parent=span(S1))
    internal.component = "db"
    s.add([outgoing, internal, call("backend", 150.0, "POST /api/pay", span=S1, parent=span(B1))])
    s.add([call("backend", 80.0, "POST /v1/charges", parent=span(C1))])
    s.add([call("frontend", 400.0, "POST /api/pay", span=B1)])
    assert matched(s) == {"POST /api/pay": (1, 250.0, 250.0)}


def test_a_server_request_whose_browser_call_never_came_takes_no_other_call(store):
    """The request made in span B1 waits for that call; the trace's next call meets its own."""
    s = store()
    s.add([call("backend", 60.0, span=S1, parent=B1)])  # the page closed before B1 was sent
    s.add([call("frontend", 900.0, span=B2)])
    assert matched(s) == {}
    s.add([call("backend", 100.0, span=S2, parent=B2)])
    assert matched(s) == {"GET /x": (1, 800.0, 800.0)}


@pytest.mark.parametrize("tied", [True, False], ids=["parent-ids", "no-parent-ids"])
def test_a_pair_of_different_keys_counts_under_the_servers_and_so_does_a_browser_call_that_comes_second(
    store, tied
):
    """The browser knows the URL, the server its route. Tied by span or, without ids, as the
    trace's only two halves, the pair counts under the route; the browser call, arriving
    second, is counted and stored under it too."""
    s = store()
    s.add([call("backend", 100.0, "GET /api/users/:name", span=S1, parent=B1 if tied else None)])
    s.add([call("frontend", 300.0, "GET /api/users/alice", span=B1 if tied else None)])
    assert matched(s) == {"GET /api/users/:name": (1, 200.0, 200.0)}
    stats = s.window_stats()
    assert set(stats.frontend.endpoints) == set(stats.backend.endpoints) == {"GET /api/users/:name"}
    assert [e.action for e in s.events("frontend")] == ["GET /api/users/:name"]
    assert set(s.tallies().endpoints["frontend"]) == {"GET /api/users/:name"}


def test_a_browser_call_that_came_first_keeps_its_own_key_and_the_pair_takes_the_servers(store):
    """Counted before its request came, the browser call stays under its URL's key."""
    s = store()
    s.add([call("frontend", 300.0, "GET /api/users/alice", span=B1)])
    s.add([call("backend", 100.0, "GET /api/users/:name", span=S1, parent=B1)])
    assert matched(s) == {"GET /api/users/:name": (1, 200.0, 200.0)}
    assert set(s.window_stats().frontend.endpoints) == {"GET /api/users/alice"}


def test_without_ids_a_trace_of_more_halves_pairs_no_two_of_different_keys(store):
    """The last rule (the trace's only two halves) is for one call and its request: with more
    halves waiting and nothing to tell them apart, none of different keys are paired."""
    s = store()
    s.add([call("backend", 80.0, "GET /internal/a"), call("backend", 90.0, "GET /internal/b")])
    s.add([call("frontend", 400.0, "GET /api/page")])
    assert matched(s) == {}


def test_without_ids_a_traces_only_two_halves_of_different_methods_are_two_requests(store):
    """A browser DELETE is not the server's POST, whatever trace they share."""
    s = store()
    s.add([call("backend", 80.0, "POST /api/users/:id/cart")])
    s.add([call("frontend", 400.0, "DELETE /api/users/:id")])
    assert matched(s) == {}
    assert [e.action for e in s.events("frontend")] == ["DELETE /api/users/:id"]


def test_a_browser_call_without_a_span_id_never_meets_a_downstream_request(store):
    """The payment service's request (parent: the backend's outgoing call) arrives first and is
    the trace's only waiting half; a browser call with no span id of the same method is not it:
    the call waits for the backend's own request, and meets that one."""
    s = store()
    s.add([call("backend", 600.0, "GET /v1/charges/:id", parent="00f067aa0ba902b7")])
    s.add([call("frontend", 700.0, "GET /api/checkout")])
    assert matched(s) == {}
    s.add([call("backend", 500.0, "GET /api/checkout")])
    assert matched(s) == {"GET /api/checkout": (1, 200.0, 200.0)}
    assert [e.action for e in s.events("frontend")] == ["GET /api/checkout"]


def test_at_most_sixty_four_halves_of_one_trace_wait_the_oldest_dropped_first(store):
    """Rule: past ``TRACE_MAX`` (64) waiting halves of one trace, the trace's oldest is dropped,
    so a client that sends one trace id for everything costs a bounded scan per event."""
    assert policy.TRACE_MAX == 64
    s = store()
    parents = [f"{i + 1:016x}" for i in range(policy.TRACE_MAX + 1)]
    s.add([call("backend", 10.0, parent=p) for p in parents])
    s.add([call("frontend", 40.0, span=parents[1]), call("frontend", 30.0, span=parents[0])])
    assert matched(s) == {"GET /x": (1, 30.0, 30.0)}  # the call made in the first span found none


def test_each_half_of_a_trace_waits_its_own_ten_minutes(store, clock):
    """A trace's halves that arrived at different times leave at different times."""
    s = store(window_s=900)
    s.add([call("backend", 10.0, span=S1, parent=B1)])
    clock.advance(300)
    s.add([call("backend", 20.0, span=S2, parent=B2)])
    clock.advance(301)  # the first request waited 601 s, the second 301 s
    s.add([call("frontend", 110.0, span=B1), call("frontend", 220.0, span=B2)])
    assert matched(s) == {"GET /x": (1, 200.0, 200.0)}


# --- difference episodes: the history and the alerts ---------------------------------------------


def episode(episode_id: str, opened_at: float, severity: str = "high") -> Episode:
    difference = Difference(
        type="error_rate",
        severity=severity,  # type: ignore[arg-type]
        scope="endpoint",
        key=episode_id,
        backend={"error_rate": 0.5},
        frontend={"error_rate": 0.0, "unmatched_endpoints": []},
        difference_pct=50.0,
        message=f"{episode_id} fails",
    )
    return Episode(id=episode_id, opened_at=opened_at, severity=difference.severity, difference=difference)


def test_an_episode_opens_once_and_closes_once(store):
    s = store()
    first = episode("GET /a", 100.0, "medium")
    assert s.open_episode("alerts", first) is True
    assert s.open_episode("alerts", episode("GET /a", 105.0)) is False  # already open
    assert s.open_episodes("alerts") == {"GET /a": first}
    assert s.open_episodes("differences") == {}  # books are apart
    raised = msgspec.structs.replace(first, severity="high")
    assert s.update_episode("alerts", raised) is True
    closed = s.close_episode("alerts", "GET /a", 160.5)
    assert closed == msgspec.structs.replace(raised, resolved_at=160.5)
    assert s.close_episode("alerts", "GET /a", 170.0) is None  # closed once
    assert s.update_episode("alerts", first) is False  # a closed episode stays as it closed
    assert s.open_episodes("alerts") == {}
    assert s.open_episode("alerts", episode("GET /a", 200.0)) is True  # back: a new episode
    assert [(e.opened_at, e.resolved_at, e.severity) for e in s.episodes("alerts", 10)] == [
        (200.0, None, "high"),
        (160.5 - 60.5, 160.5, "high"),
    ]


def test_episodes_come_newest_first_and_only_the_newest_resolved_are_kept(store, monkeypatch):
    import live_monitor.store.memory
    import live_monitor.store.redis

    assert EPISODES_KEPT == 1000
    for module in (live_monitor.store.memory, live_monitor.store.redis):
        monkeypatch.setattr(module, "EPISODES_KEPT", 5)  # the rule, at a size quick to reach
    s = store()
    for n in range(8):
        s.open_episode("differences", episode(f"GET /{n}", float(n)))
        s.close_episode("differences", f"GET /{n}", n + 0.5)
    s.open_episode("differences", episode("GET /open", 1.0))
    kept = s.episodes("differences", 100)
    assert [e.id for e in kept] == ["GET /7", "GET /6", "GET /5", "GET /4", "GET /3", "GET /open"]
    assert [e.resolved_at for e in kept] == [7.5, 6.5, 5.5, 4.5, 3.5, None]
    assert [e.id for e in s.episodes("differences", 1)] == ["GET /7"]


def test_of_many_threads_opening_and_closing_one_episode_exactly_one_wins_each(store):
    """What lets --workers send each alert once: the open and the close are atomic."""
    stores = [store() for _ in range(8)]  # one client each, as processes would have
    start = threading.Barrier(len(stores))
    opened: list[bool] = []
    closed: list[Episode | None] = []

    def race(s: Store, n: int) -> None:
        start.wait()
        opened.append(s.open_episode("alerts", episode("GET /a", float(n))))
        start.wait()
        closed.append(s.close_episode("alerts", "GET /a", 100.0 + n))

    threads = [threading.Thread(target=race, args=(s, n)) for n, s in enumerate(stores)]
    if isinstance(stores[0], EventStore):  # in memory, one store is all the processes there are
        threads = [threading.Thread(target=race, args=(stores[0], n)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened.count(True) == 1 and sum(c is not None for c in closed) == 1
    assert len(stores[0].episodes("alerts", 10)) == 1


# --- the pinned baseline -------------------------------------------------------------------------


def test_a_pinned_baseline_is_kept_whole_replaced_and_unpinned(store):
    """One pin per monitor: what is pinned comes back as it was (its distributions too), a new
    pin replaces it, and unpinning says whether there was one."""
    from live_monitor.model.baseline import pin_window

    s = store()
    assert s.baseline() is None and s.clear_baseline() is False
    s.add([stored_event(duration=d) for d in (5.0, 50.0, 500.0)])
    first = pin_window(s.window_stats(), [episode("GET /x", 1.0).difference], 1_800_000_000.0, s.window_s)
    s.set_baseline(first)
    assert s.baseline() == first
    sketch = first.distributions.endpoints["GET /x"].backend
    assert sketch is not None and sketch.count == 3 and sketch.durations.max == 500.0
    second = pin_window(s.window_stats(), [], 1_800_000_060.0, s.window_s)
    s.set_baseline(second)
    assert s.baseline() == second
    assert s.clear_baseline() is True
    assert s.baseline() is None and s.clear_baseline() is False


def test_every_redis_store_sees_the_baseline_one_pinned(redis_server, clock):
    """What --workers and several monitors on one Redis share: one pin, whoever pinned it."""
    from live_monitor.model.baseline import pin_window
    from live_monitor.store.redis import RedisEventStore

    one, other = (RedisEventStore(redis_server.url, clock=clock) for _ in range(2))
    one.add([stored_event(duration=20.0)])
    pinned = pin_window(one.window_stats(), [], 1_800_000_000.0, one.window_s)
    one.set_baseline(pinned)
    assert other.baseline() == pinned
    assert other.clear_baseline() is True and one.baseline() is None
