"""Tests of backend_logging_config.track, the decorator and context manager that time a piece of
work (plain or async) and send it as one event, to a given client or the default one.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest

import backend_logging_config as blc
from tests.helpers import Recorder

pytestmark = pytest.mark.usefixtures("restore_logging_globals")


def test_track_as_decorator_times_and_reraises() -> None:
    recorder = Recorder()

    @blc.track("pricing", "quote", client=recorder, details={"plan": "pro"})  # type: ignore[arg-type]
    def quote(amount: float) -> float:
        if amount < 0:
            raise ValueError("negative")
        time.sleep(0.02)  # the work being timed
        return amount * 2

    assert quote(2.0) == 4.0 and quote.__name__ == "quote"
    with pytest.raises(ValueError, match="negative"):
        quote(-1.0)
    ok, failed = recorder.events
    assert (ok["component"], ok["action"], ok["status"]) == ("pricing", "quote", "success")
    assert ok["duration_ms"] >= 20 and ok["details"] == {"plan": "pro"}
    assert failed["status"] == "error" and failed["details"]["error"] == "ValueError"


def test_track_as_context_manager_uses_the_default_client() -> None:
    recorder = Recorder()
    blc.set_default_client(recorder)  # type: ignore[arg-type]
    with blc.track("cache", "warm"):
        pass
    with pytest.raises(KeyError), blc.track("cache", "read"):
        raise KeyError("gone")
    assert [(e["action"], e["status"]) for e in recorder.events] == [
        ("warm", "success"),
        ("read", "error"),
    ]
    assert all(e["service"] == "backend" and e["duration_ms"] >= 0 for e in recorder.events)


def test_track_without_any_client_only_runs_the_code() -> None:
    assert blc.track("job", "noop")(lambda: 7)() == 7


def test_track_decorates_coroutines() -> None:
    recorder = Recorder()

    @blc.track("io", "fetch", client=recorder)  # type: ignore[arg-type]
    async def fetch() -> str:
        await asyncio.sleep(0.01)
        return "done"

    assert asyncio.run(fetch()) == "done"
    [event] = recorder.events
    assert event["action"] == "fetch" and event["duration_ms"] >= 10


def test_decorated_functions_send_the_same_events_as_the_context_manager() -> None:
    recorder = Recorder()
    timer = blc.track("pricing", "quote", client=recorder, details={"plan": "pro"})  # type: ignore[arg-type]

    @timer
    def quote(amount: float) -> float:
        if amount < 0:
            raise ValueError("negative")
        return amount * 2

    @timer
    async def fetch(amount: float) -> float:
        await asyncio.sleep(0)
        return quote(amount)

    before = time.time()
    assert quote(1.0) == 2.0 and asyncio.run(fetch(2.0)) == 4.0
    with pytest.raises(ValueError, match="negative"):
        asyncio.run(fetch(-1.0))
    with timer:
        pass
    with pytest.raises(ValueError), timer:
        raise ValueError("by hand")
    after = time.time()
    assert fetch.__name__ == "fetch" and asyncio.iscoroutinefunction(fetch)
    events = recorder.events
    assert [(e["status"], e["details"]) for e in events] == [
        ("success", {"plan": "pro"}),
        ("success", {"plan": "pro"}),  # quote inside fetch ends first
        ("success", {"plan": "pro"}),
        ("error", {"plan": "pro", "error": "ValueError"}),
        ("error", {"plan": "pro", "error": "ValueError"}),
        ("success", {"plan": "pro"}),
        ("error", {"plan": "pro", "error": "ValueError"}),
    ]
    for event in events:
        assert set(event) == set("timestamp service component action status details duration_ms".split())
        assert (event["service"], event["component"], event["action"]) == ("backend", "pricing", "quote")
        assert (
            before - 0.001 <= event["timestamp"] <= after
            and 0 <= event["duration_ms"] < 1000 * (after - before) + 1
        )
    assert timer.details == {"plan": "pro"}  # an error's name goes into the event only


def test_decorated_calls_are_timed_each_on_its_own_without_a_new_track(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[blc.track] = []
    init = blc.track.__init__

    def counted(self: blc.track, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(blc.track, "__init__", counted)
    recorder = Recorder()

    @blc.track("math", "depth", client=recorder)  # type: ignore[arg-type]
    def depth(n: int) -> int:
        time.sleep(0.01)  # the work being timed, at every level
        return depth(n - 1) + 1 if n else 0

    @blc.track("job", "step", client=recorder)  # type: ignore[arg-type]
    def step(name: str, entered: threading.Event, leave: threading.Event) -> str:
        entered.set()
        assert leave.wait(5)
        return name

    @blc.track("io", "wait", client=recorder)  # type: ignore[arg-type]
    async def wait(name: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return name

    assert depth(3) == 3
    levels = [e["duration_ms"] for e in recorder.events]  # the innermost call ends first
    assert levels[0] >= 10 and all(outer - inner >= 9.99 for inner, outer in itertools.pairwise(levels))
    assert len(levels) == 4 and [e["timestamp"] for e in recorder.events] == sorted(
        (e["timestamp"] for e in recorder.events), reverse=True
    )

    recorder.events.clear()  # two threads in the same function, the first ending first
    gates = [(threading.Event(), threading.Event()) for _ in range(2)]
    threads = [
        threading.Thread(target=step, args=(name, *gate)) for name, gate in zip("ab", gates, strict=True)
    ]
    threads[0].start()
    assert gates[0][0].wait(5)
    time.sleep(0.05)  # the first call's work before the second starts
    threads[1].start()
    assert gates[1][0].wait(5)
    time.sleep(0.05)  # both calls at work
    gates[0][1].set()
    threads[0].join(5)
    time.sleep(0.05)  # the second call alone
    gates[1][1].set()
    threads[1].join(5)
    assert [e["duration_ms"] >= 100 for e in recorder.events] == [True, True]

    recorder.events.clear()  # two coroutines on one thread: the first started ends first

    async def overlap() -> list[str]:
        first = asyncio.ensure_future(wait("first", 0.1))
        await asyncio.sleep(0.05)
        return list(await asyncio.gather(first, wait("second", 0.1)))

    assert asyncio.run(overlap()) == ["first", "second"]
    assert [e["duration_ms"] >= 100 for e in recorder.events] == [True, True]
    assert len(made) == 3  # one track per decoration, none per call
