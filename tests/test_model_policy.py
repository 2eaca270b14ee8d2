"""TraceJoin decides a trace's common cases (no half waiting, one half waiting) without
``choose``: these tests hold it to ``choose``'s three rules, event by event, on random traces.
The rules themselves are pinned on both stores in tests/test_store.py."""

from __future__ import annotations

import random

import pytest

from live_monitor.model import policy
from live_monitor.model.events import ExecutionEvent
from tests.helpers import stored_event

TRACES = [f"{i:032x}" for i in range(1, 7)]
SPANS = [f"{i:016x}" for i in range(1, 6)]
KEYS = ["GET /a", "GET /b", "POST /a", "GET /users/:id", "GET /users/7"]


def _random_event(rng: random.Random) -> ExecutionEvent:
    side = rng.choice(["backend", "frontend"])
    e = stored_event(
        service=side,
        component="http" if side == "backend" else "api",
        action=rng.choice(KEYS),
        duration=round(rng.uniform(1, 500), 3),
        trace=rng.choice(TRACES),
    )
    if rng.random() < 0.6:
        e.span_id = rng.choice(SPANS)
    if side == "backend" and rng.random() < 0.5:
        e.parent_span_id = rng.choice(SPANS)
    return e


class _Reference:
    """The join as the module's docstring states it, with every trace's halves in a list and
    every decision made by ``choose`` (no bounds reached: a few traces, few halves)."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[policy.Half]] = {}

    def offer(self, events: list[ExecutionEvent], now: float) -> list[tuple[str, float]]:
        gaps = []
        for event in events:
            mine = policy.Half.of(event, now)
            halves = self.waiting.setdefault(mine.trace_id, [])
            index = policy.choose(mine, halves, now)
            if index is None:
                halves[:] = [h for h in halves if now - h.at <= policy.PENDING_TTL_S] + [mine]
            else:
                gaps.append(policy.pair(event, halves.pop(index)))
        return gaps


@pytest.mark.parametrize("seed", range(4))
def test_the_joins_fast_paths_pair_exactly_as_choose_does(seed: int) -> None:
    rng = random.Random(seed)
    join, reference, now = policy.TraceJoin(), _Reference(), 1_000.0
    for _ in range(300):
        batch = [_random_event(rng) for _ in range(rng.choice([1, 1, 2, 5]))]
        twins = [ExecutionEvent(**{f: getattr(e, f) for f in e.__struct_fields__}) for e in batch]
        # Halves leave after PENDING_TTL_S: now and then a step long enough for some to expire.
        now += rng.choice([1.0, 1.0, 1.0, policy.PENDING_TTL_S * 0.6])
        assert join.offer(batch, now) == reference.offer(twins, now)
        assert [e.action for e in batch] == [e.action for e in twins]  # browser calls re-keyed alike
    live = [h for halves in reference.waiting.values() for h in halves if now - h.at <= policy.PENDING_TTL_S]
    assert len(join) == len(live)


def test_a_trace_whose_one_half_expired_begins_waiting_anew_behind_the_others() -> None:
    join = policy.TraceJoin()
    old = stored_event(trace=TRACES[0])
    join.offer([old], 0.0)
    join.offer([stored_event(trace=TRACES[1])], 300.0)
    late = stored_event(service="frontend", component="api", trace=TRACES[0])
    assert join.offer([late], policy.PENDING_TTL_S + 1) == []  # the request left at 600 s: no pair
    assert len(join) == 2
    lone = [stored_event(trace=f"{i + 100:032x}") for i in range(policy.PENDING_MAX - 1)]
    join.offer(lone, policy.PENDING_TTL_S + 2)  # one too many: the front of the line is dropped
    assert len(join) == policy.PENDING_MAX
    server = stored_event(trace=TRACES[0])  # the browser call, at the back, still waits
    assert join.offer([server], policy.PENDING_TTL_S + 3) == [("GET /x", 0.0)]
    assert join.offer([stored_event(service="frontend", component="api", trace=TRACES[1])], 700.0) == []


@pytest.mark.parametrize("server_first", [True, False], ids=["server-first", "browser-first"])
def test_a_tied_pair_keeps_one_copy_of_the_trace_id_and_of_the_span_id_that_ties_it(
    server_first: bool,
) -> None:
    """Stored events are most of the monitor's memory: the second half takes the first's strings."""
    server = stored_event(trace="".join(["ab"] * 16))
    server.parent_span_id = "".join(["c1"] * 8)
    browser = stored_event(service="frontend", component="api", trace="".join(["ab"] * 16))
    browser.span_id = "".join(["c1"] * 8)
    assert browser.span_id is not server.parent_span_id
    join = policy.TraceJoin()
    first, second = (server, browser) if server_first else (browser, server)
    assert join.offer([first], 1.0) == []
    assert len(join.offer([second], 2.0)) == 1
    assert browser.trace_id is server.trace_id
    assert browser.span_id is server.parent_span_id


def test_a_single_waiting_half_past_its_time_is_not_met_though_the_line_kept_it() -> None:
    """Expiry drops halves from the front of the line and stops at the first one still alive, so
    a half re-queued behind a younger trace outlives PENDING_TTL_S in the line: the inline
    one-half path must still refuse it, as ``choose`` does."""

    def half(side: str, trace: str) -> ExecutionEvent:
        component, duration = ("http", 10.0) if side == "backend" else ("api", 20.0)
        return stored_event(
            service=side, component=component, action="GET /api/x", duration=duration, trace=trace
        )

    a, b = "a" * 32, "b" * 32
    join, reference = policy.TraceJoin(), _Reference()
    for now, batch in [
        (0.0, [("backend", a)]),
        (10.0, [("backend", a)]),
        (20.0, [("backend", b)]),
        (605.0, []),
    ]:
        events = [half(side, trace) for side, trace in batch]
        assert join.offer(events, now) == reference.offer([half(s, t) for s, t in batch], now)
    late = [half("frontend", a)]  # 605 s after the half it would meet
    assert join.offer(late, 615.0) == reference.offer([half("frontend", a)], 615.0) == []
