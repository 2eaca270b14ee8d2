"""Tests for backend_logging_config: logging setup, the event client, Flask hooks and track."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_monitor import FakeMonitor, Recorder, wait_for
from flask import Flask, abort
from flask_cors import CORS
from hypothesis import given
from hypothesis import strategies as st

import backend_logging_config as blc

ROOT = Path(__file__).resolve().parent.parent
ROUTE_KEYS = json.loads((ROOT / "tests" / "fixtures" / "route_keys.json").read_text())
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
FAST = {"flush_interval": 0.05, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 2.0}


@pytest.fixture
def monitor() -> Iterator[FakeMonitor]:
    server = FakeMonitor()
    yield server
    server.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., blc.MonitorClient]]:
    clients: list[blc.MonitorClient] = []

    def make(url: str, **options: Any) -> blc.MonitorClient:
        client = blc.MonitorClient(url, **{**FAST, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0.5)


@pytest.fixture(autouse=True)
def clean_globals() -> Iterator[None]:
    """Restore the root logger and the module's default client after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    blc.set_default_client(None)
    if blc._logging_client is not None:
        blc._logging_client.close(timeout=0.5)
        blc._logging_client = None
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# -- route keys and import ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "route"), ROUTE_KEYS)
def test_route_keys_match_the_shared_table(path: str, route: str) -> None:
    assert blc.normalize_route(path) == route
    assert blc.endpoint_key("get", path) == f"GET {route}"


def test_import_needs_only_the_standard_library() -> None:
    script = """
import sys
class BlockFlask:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "flask":
            raise ImportError("flask is blocked")
sys.meta_path.insert(0, BlockFlask())
before = set(sys.modules)
import backend_logging_config as blc
added = {name.split(".")[0] for name in set(sys.modules) - before}
print(sorted(n for n in added if n not in sys.stdlib_module_names and n != "backend_logging_config"))
with blc.track("job", "run"):
    pass
blc.MonitorClient("http://127.0.0.1:9").close(timeout=0)
print("flask" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "False"]


# -- configure_logging ----------------------------------------------------------------------


def test_json_lines_carry_timestamp_level_logger_message_and_event_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "app.log"
    logger = blc.configure_logging(level="INFO", log_file=log_file)
    assert logger is logging.getLogger()
    fields = dict(service="backend", component="db", action="load", duration_ms=12.5)
    fields.update(status="success", details={"rows": 3}, trace_id=TRACE, span_id=PARENT)
    logging.getLogger("shop.orders").info("loaded %d orders", 3, extra=fields)
    logging.getLogger("shop").debug("not at INFO")
    logging.getLogger("shop").warning("plain")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["loaded 3 orders", "plain"]
    first, second = lines
    assert first["level"] == "INFO" and first["logger"] == "shop.orders"
    assert {key: first[key] for key in fields} == fields
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=30)
    assert set(second) == {"timestamp", "level", "logger", "message"}
    console = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in console] == ["loaded 3 orders", "plain"]


def test_calling_twice_adds_no_duplicate_handlers(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    blc.configure_logging(log_file=log_file)
    count = len(logging.getLogger().handlers)
    blc.configure_logging(log_file=log_file)
    assert len(logging.getLogger().handlers) == count
    logging.getLogger("x").warning("once")
    assert len(log_file.read_text().splitlines()) == 1


def test_named_logger_and_text_format(tmp_path: Path) -> None:
    log_file = tmp_path / "named.log"
    logger = blc.configure_logging(log_file=log_file, json_format=False, logger_name="myapp")
    assert logger.name == "myapp"
    logger.info("hello text")
    line = log_file.read_text().strip()
    assert line.endswith("INFO myapp: hello text") and not line.startswith("{")


def test_log_file_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "rot.log"
    blc.configure_logging(log_file=log_file, max_bytes=1000, backup_count=2)
    for number in range(100):
        logging.getLogger("rot").info("line %d %s", number, "x" * 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rot.log", "rot.log.1", "rot.log.2"]
    rotated = (tmp_path / "rot.log.1").read_text().splitlines()
    assert rotated and all(json.loads(line)["logger"] == "rot" for line in rotated)


def test_environment_overrides_level_file_and_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env.log"
    monkeypatch.setenv("LIVE_MONITOR_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("LIVE_MONITOR_LOG_FILE", str(env_file))
    monkeypatch.setenv("LIVE_MONITOR_LOG_FORMAT", "text")
    blc.configure_logging(level="DEBUG", log_file=tmp_path / "ignored.log", json_format=True)
    logging.getLogger("env").info("hidden")
    logging.getLogger("env").warning("shown")
    assert not (tmp_path / "ignored.log").exists()
    assert env_file.read_text().strip().endswith("WARNING env: shown")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LIVE_MONITOR_LOG_FORMAT", "xml", "json or text"),
        ("LIVE_MONITOR_LOG_LEVEL", "LOUD", "LOUD"),
    ],
)
def test_bad_settings_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        blc.configure_logging()


def test_configure_logging_forwards_event_records_to_the_monitor(monitor: FakeMonitor) -> None:
    blc.configure_logging(monitor_url=monitor.url)
    logging.getLogger("app").info("plain line")
    logging.getLogger("app").info(
        "charged", extra={"component": "payments", "action": "charge", "duration_ms": 42.0}
    )
    client = blc.get_default_client()
    assert client is not None and client.flush(5)
    [event] = monitor.events()
    assert (event["component"], event["action"], event["duration_ms"]) == ("payments", "charge", 42)
    assert event["service"] == "backend" and event["status"] == "success"
    assert event["details"]["message"] == "charged"


# -- MonitorClient --------------------------------------------------------------------------


def test_client_posts_batches_and_fills_defaults(monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(monitor.url, batch_size=3)
    original = {"component": "job", "action": "run", "duration_ms": 1.0, "status": "success"}
    snapshot = dict(original)
    for _ in range(7):
        assert client.record(original) is True
    assert client.flush(5) is True
    assert original == snapshot
    assert {path for _, path, _ in monitor.requests} == {"/api/live-execution/events"}
    assert max(len(body["events"]) for _, _, body in monitor.requests) <= 3
    events = monitor.events()
    assert len(events) == 7 and all(event["service"] == "backend" for event in events)
    assert datetime.fromisoformat(events[0]["timestamp"]).utcoffset() == timedelta(0)
    stats = client.stats()
    assert (stats["sent"], stats["queued"], stats["dropped_total"]) == (7, 0, 0)
    assert stats["batches_sent"] == len(monitor.requests) >= 3


def test_events_go_out_within_the_flush_interval_without_flush(
    monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(monitor.url, flush_interval=0.05)
    client.record({"component": "job", "action": "first"})
    assert wait_for(lambda: len(monitor.events()) == 1, 2.0)
    client.record({"component": "job", "action": "second"})  # finds the sender thread idle
    assert wait_for(lambda: len(monitor.events()) == 2, 2.0)


def test_retry_after_is_honoured_on_503(monitor: FakeMonitor, make_client: Any) -> None:
    monitor.script.append((503, {"Retry-After": "1"}, None))
    client = make_client(monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    (first, *_), (second, *_) = monitor.requests
    assert second - first >= 0.9
    stats = client.stats()
    assert (stats["sent"], stats["retried"], stats["dropped"]) == (1, 1, {})


@pytest.mark.parametrize("header", ["nan", "inf", "-5"])
def test_a_nonsense_retry_after_still_retries_the_batch(
    monitor: FakeMonitor, make_client: Any, header: str
) -> None:
    monitor.script.append((503, {"Retry-After": header}, None))
    client = make_client(monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert (stats["sent"], stats["retried"], stats["dropped"]) == (1, 1, {})


def test_a_flush_waiting_on_another_thread_returns_when_close_drops_the_queue(make_client: Any) -> None:
    client = make_client("http://127.0.0.1:9", max_retries=50, backoff_base=5.0)  # nothing listens
    client.record({"component": "job", "action": "run"})
    client.record({"component": "job", "action": "run"})
    flushed: list[bool] = []
    waiter = threading.Thread(target=lambda: flushed.append(client.flush(30)))
    waiter.start()
    client.close(timeout=0.5)
    waiter.join(5)
    assert not waiter.is_alive(), "flush() still waits after close() dropped the queue"
    stats = client.stats()
    assert stats["sent"] + stats["dropped_total"] == 2


@pytest.mark.parametrize("status", [429, 502, 504])
def test_transient_statuses_are_retried(monitor: FakeMonitor, make_client: Any, status: int) -> None:
    monitor.script += [(status, {}, {"error": "busy"})] * 2
    client = make_client(monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    assert len(monitor.requests) == 3 and len(monitor.events()) == 3
    assert (client.stats()["sent"], client.stats()["retried"]) == (1, 2)


@pytest.mark.parametrize("status", [400, 413])
def test_client_errors_are_dropped_without_retry(monitor: FakeMonitor, make_client: Any, status: int) -> None:
    monitor.script.append((status, {}, {"error": "bad batch"}))
    client = make_client(monitor.url)
    for _ in range(3):
        client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert stats["dropped"] == {f"http_{status}": 3} and stats["retried"] == 0
    assert len(monitor.requests) == 1 and "bad batch" in stats["last_error"]
    client.record({"component": "job", "action": "after"})
    assert client.flush(5) and client.stats()["sent"] == 1


def test_rejected_events_are_counted_as_dropped(monitor: FakeMonitor, make_client: Any) -> None:
    answer = {"accepted": 2, "rejected": 1, "errors": [{"index": 1, "error": "action is empty"}]}
    monitor.script.append((200, {}, answer))
    client = make_client(monitor.url)
    for action in ("a", "", "c"):
        client.record({"component": "job", "action": action})
    assert client.flush(5)
    stats = client.stats()
    assert (stats["sent"], stats["dropped"]) == (2, {"rejected": 1})
    assert "action is empty" in stats["last_error"]


def test_a_batch_rejected_whole_counts_as_rejected(monitor: FakeMonitor, make_client: Any) -> None:
    answer = {"accepted": 0, "rejected": 2, "errors": [{"index": 0, "error": "status is bad"}]}
    monitor.script.append((400, {}, answer))
    client = make_client(monitor.url)
    client.record({"component": "job", "action": "a", "status": "odd"})
    client.record({"component": "job", "action": "b", "status": "odd"})
    assert client.flush(5)
    assert client.stats()["dropped"] == {"rejected": 2} and client.stats()["retried"] == 0


def test_token_is_sent_as_bearer(
    monitor: FakeMonitor, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVE_MONITOR_TOKEN", "s3cret")
    client = make_client(monitor.url)
    client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    assert monitor.auth == ["Bearer s3cret"]


def test_monitor_down_keeps_queue_bounded_and_delivery_resumes(
    monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(monitor.url, max_queue=50, batch_size=10, max_retries=10_000)
    monitor.stop()
    started = time.monotonic()
    results = [client.record({"component": "job", "action": f"a{n}"}) for n in range(500)]
    assert time.monotonic() - started < 2.0
    stats = client.stats()
    assert stats["queued"] <= 50
    assert results.count(True) == 50 and stats["dropped"] == {"queue_full": 450}
    assert wait_for(lambda: client.stats()["retried"] >= 3)
    assert client.flush(0.2) is False
    assert "cannot reach monitor" in client.stats()["last_error"]
    monitor.start()
    assert client.flush(10) is True
    assert len(monitor.events()) == 50 and client.stats()["sent"] == 50
    client.record({"component": "job", "action": "after"})
    assert client.flush(5) and monitor.events()[-1]["action"] == "after"


def test_retries_are_exhausted_while_down(monitor: FakeMonitor, make_client: Any) -> None:
    monitor.stop()
    client = make_client(monitor.url, max_retries=2)
    for _ in range(4):
        client.record({"component": "job", "action": "run"})
    assert client.flush(5)
    stats = client.stats()
    assert stats["dropped"] == {"retries_exhausted": 4} and stats["sent"] == 0


def test_bad_events_never_raise_and_are_counted(monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(monitor.url)
    looped: dict[str, Any] = {"component": "job", "action": "loop"}
    looped["details"] = looped
    assert client.record("not an event") is False
    assert client.record(looped) is True
    assert client.record({"component": "job", "action": "fine"}) is True
    assert client.flush(5)
    assert [event["action"] for event in monitor.events()] == ["fine"]
    assert client.stats()["dropped"] == {"invalid": 1, "unserializable": 1}


def test_drops_warn_at_most_once_a_minute(
    monitor: FakeMonitor, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(monitor.url, max_queue=1, flush_interval=5.0)
    with caplog.at_level(logging.WARNING, logger="live_monitor.internal"):
        for _ in range(5):
            client.record({"component": "job", "action": "run"})
    warnings = [r for r in caplog.records if r.name == "live_monitor.internal"]
    assert len(warnings) == 1 and "queue_full" in warnings[0].getMessage()
    assert client.stats()["dropped"] == {"queue_full": 4}


def test_drop_warnings_reach_the_logs_but_not_the_monitor(
    monitor: FakeMonitor, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor.script.append((400, {}, {"error": "bad batch"}))
    blc.configure_logging(monitor_url=monitor.url)
    logging.getLogger("app").info("sent", extra={"component": "job", "action": "run"})
    client = blc.get_default_client()
    assert client is not None and client.flush(5)
    assert client.flush(0.3) and client.stats()["dropped"] == {"http_400": 1}
    [warning] = [json.loads(line) for line in capsys.readouterr().err.splitlines()][1:]
    assert warning["level"] == "WARNING" and "http_400" in warning["message"]
    assert len(monitor.requests) == 1


def test_close_flushes_then_refuses_events(monitor: FakeMonitor, make_client: Any) -> None:
    client = make_client(monitor.url, flush_interval=30.0)
    client.record({"component": "job", "action": "last"})
    assert client.close(timeout=5) is True
    assert [event["action"] for event in monitor.events()] == ["last"]
    assert client.record({"component": "job", "action": "late"}) is False
    assert client.stats()["dropped"] == {"closed": 1}


class HeldQueue(deque[Any]):
    """A client's queue that can hold chosen threads inside ``append`` until released: where a
    thread switch between ``_enqueue``'s look at the client and its append would leave them."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self.names, self.held = names, list[str]()
        self.hold, self.release = threading.Event(), threading.Event()

    def append(self, item: Any) -> None:
        name = threading.current_thread().name
        if self.hold.is_set() and not self.release.is_set() and name in self.names:
            self.held.append(name)
            self.release.wait(10)
        super().append(item)


def close_while_adding(client: blc.MonitorClient, release: str) -> list[list[bool]]:
    """Four threads add events (two through ``record``, two straight to ``_enqueue`` as the WSGI
    layer and MonitorHandler do) until after ``client.close()``; one of each kind is held inside
    its append until close() returned (or began). Returns what each thread's calls returned."""
    queue = client._queue = HeldQueue({"adder-0", "adder-1"})
    results: list[list[bool]] = [[] for _ in range(4)]
    done = threading.Event()

    def add(n: int) -> None:
        add_one = client.record if n % 2 else client._enqueue
        while not done.is_set():
            event = {"component": "stress", "action": f"adder-{n}", "details": {"seq": len(results[n])}}
            results[n].append(add_one(event))

    def release_once_closing() -> None:
        wait_for(lambda: client.closed)
        queue.release.set()

    adders = [threading.Thread(target=add, args=(n,), name=f"adder-{n}", daemon=True) for n in range(4)]
    for thread in adders:
        thread.start()
    try:
        assert wait_for(lambda: min(map(len, results)) >= 20)
        queue.hold.set()
        assert wait_for(lambda: len(queue.held) == 2)
        if release == "while_closing":
            threading.Thread(target=release_once_closing, daemon=True).start()
        client.close(timeout=5)
        queue.release.set()
        calls = sum(map(len, results))
        assert wait_for(lambda: sum(map(len, results)) > calls + 60)  # calls after close() returned
    finally:
        done.set()
        queue.release.set()
        for thread in adders:
            thread.join(5)
    return results


@pytest.mark.parametrize("release", ["after_close", "while_closing"])
def test_every_event_added_while_closing_is_counted_once(make_client: Any, release: str) -> None:
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the racing appends land anywhere in close()
    try:
        for attempt in range(10):
            monitor = FakeMonitor()  # a fresh one per attempt, so its events are this attempt's
            try:
                client = make_client(monitor.url, max_queue=1000, flush_interval=0.01)
                results = close_while_adding(client, release)
                stats, events = client.stats(), monitor.events()
            finally:
                monitor.stop()
            assert stats["queued"] == 0, f"attempt {attempt}: events left on the queue"
            assert stats["sent"] + stats["dropped_total"] == sum(map(len, results)), f"attempt {attempt}"
            assert stats["sent"] == len(events)
            for n, returned in enumerate(results):  # sent once at most, and only if record() said so
                sent = [event["details"]["seq"] for event in events if event["action"] == f"adder-{n}"]
                assert len(sent) == len(set(sent)) and all(returned[seq] for seq in sent)
    finally:
        sys.setswitchinterval(switch)


def test_exit_flushes_pending_events(monitor: FakeMonitor) -> None:
    script = (
        "import sys, backend_logging_config as blc\n"
        "client = blc.MonitorClient(sys.argv[1], flush_interval=30.0)\n"
        "client.record({'component': 'job', 'action': 'at_exit'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, monitor.url], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert [event["action"] for event in monitor.events()] == ["at_exit"]


def test_events_wait_for_the_interval_unless_half_the_queue_is_full(
    monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(monitor.url, batch_size=4, flush_interval=30.0, max_queue=20)
    client.record({"component": "job", "action": "a0"})  # the first one starts the sender, and goes
    assert wait_for(lambda: len(monitor.events()) == 1)
    for n in range(1, 10):
        client.record({"component": "job", "action": f"a{n}"})
    assert client.stats()["queued"] == 9 and len(monitor.requests) == 1  # waiting for the interval
    for n in range(10, 13):  # the tenth waiting event fills half the queue: the sender wakes
        client.record({"component": "job", "action": f"a{n}"})
    assert wait_for(lambda: len(monitor.events()) >= 11)
    assert client.close(timeout=5)
    assert [event["action"] for event in monitor.events()] == [f"a{n}" for n in range(13)]
    assert max(len(body["events"]) for _, _, body in monitor.requests) == 4


def test_large_events_are_split_into_bodies_the_monitor_accepts(
    monitor: FakeMonitor, make_client: Any
) -> None:
    client = make_client(monitor.url, flush_interval=30.0)
    for n in range(200):
        client.record({"component": "job", "action": f"a{n}", "details": {"blob": "x" * 6000}})
    assert client.flush(10)
    assert [event["action"] for event in monitor.events()] == [f"a{n}" for n in range(200)]
    sizes = [len(json.dumps(body, separators=(",", ":"))) for _, _, body in monitor.requests]
    assert len(sizes) >= 3 and max(sizes) <= 1024 * 1024  # the monitor's default body limit
    assert client.stats()["sent"] == 200


@given(st.floats(min_value=-1e9, max_value=4e9))
def test_timestamps_are_written_as_datetime_writes_them(epoch: float) -> None:
    expected = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert blc._iso(epoch) == expected


def test_bad_monitor_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="http"):
        blc.MonitorClient("localhost:5001")
    with pytest.raises(ValueError, match="batch_size"):
        blc.MonitorClient("http://localhost:5001", batch_size=0)


# -- init_app -------------------------------------------------------------------------------


def make_app(testing: bool = False) -> Flask:
    app = Flask(__name__)
    app.testing = testing

    @app.get("/api/orders/<int:order_id>")
    def order(order_id: int) -> dict[str, int]:
        with blc.track("db", "load_order"):
            return {"id": order_id}

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        return "nope", 500

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/exposed")
    def exposed() -> tuple[str, int, dict[str, str]]:
        return "ok", 200, {"Access-Control-Expose-Headers": "X-Request-Id"}

    return app


def test_request_event_keeps_incoming_trace_and_answers_server_timing() -> None:
    app, recorder = make_app(), Recorder()
    assert blc.init_app(app, client=recorder) is recorder  # type: ignore[arg-type]
    assert app.extensions["live_monitor"] is recorder
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "Cookie": "session=secret-cookie"}
    response = app.test_client().get("/api/orders/42?token=secret-query", headers=headers)
    assert response.status_code == 200
    db, http = recorder.events
    assert (db["component"], db["trace_id"]) == ("db", TRACE)
    assert {k: http[k] for k in ("service", "component", "action", "status", "details")} == {
        "service": "backend",
        "component": "http",
        "action": "GET /api/orders/:id",
        "status": "success",
        "details": {"http_status": 200, "route": "/api/orders/<int:order_id>"},
    }
    assert http["trace_id"] == TRACE and re.fullmatch("[0-9a-f]{16}", http["span_id"])
    assert http["span_id"] not in (PARENT, db["span_id"]) and http["duration_ms"] >= 0
    assert "secret" not in json.dumps(http)
    timing = response.headers["Server-Timing"]
    match = re.fullmatch(r'app;dur=(\d+\.\d), traceparent;desc="00-([0-9a-f]{32})-([0-9a-f]{16})-01"', timing)
    assert match and match.group(2, 3) == (TRACE, http["span_id"])
    assert abs(float(match.group(1)) - http["duration_ms"]) <= 0.06
    assert response.headers["Access-Control-Expose-Headers"] == "Server-Timing"


@pytest.mark.parametrize(
    "traceparent",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"ff-{TRACE}-{PARENT}-01",
    ],
)
def test_missing_or_invalid_traceparent_starts_a_new_trace(traceparent: str | None) -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    headers = {"traceparent": traceparent} if traceparent else {}
    app.test_client().get("/api/orders/1", headers=headers)
    app.test_client().get("/api/orders/2", headers=headers)
    first, second = (e for e in recorder.events if e["component"] == "http")
    assert re.fullmatch("[0-9a-f]{32}", first["trace_id"]) and first["trace_id"] != "0" * 32
    assert TRACE not in (first["trace_id"], second["trace_id"])
    assert first["trace_id"] != second["trace_id"]


@pytest.mark.parametrize(
    ("path", "code", "status", "route"),
    [
        ("/fail", 500, "error", "/fail"),
        ("/boom", 500, "error", "/boom"),
        ("/missing", 404, "success", "/missing"),
        ("/nowhere/7", 404, "success", None),
    ],
)
def test_request_status_follows_the_response(path: str, code: int, status: str, route: Any) -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    assert app.test_client().get(path).status_code == code
    [event] = recorder.events
    assert (event["status"], event["details"]) == (status, {"http_status": code, "route": route})
    assert event["action"] == blc.endpoint_key("GET", path)


def test_propagated_exception_is_still_recorded_as_error() -> None:
    app, recorder = make_app(testing=True), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        app.test_client().get("/boom")
    [event] = recorder.events
    assert event["status"] == "error" and event["details"]["http_status"] == 500


def test_expose_headers_are_appended_also_with_flask_cors() -> None:
    app = make_app()
    CORS(app, expose_headers=["X-Total"])
    blc.init_app(app, client=Recorder())  # type: ignore[arg-type]
    response = app.test_client().get("/exposed", headers={"Origin": "http://localhost:3000"})
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Request-Id", "X-Total", "Server-Timing"}
    assert len(response.headers.getlist("Access-Control-Expose-Headers")) == 1


def test_second_init_app_swaps_the_client_without_doubling_events() -> None:
    app, first, second = make_app(), Recorder(), Recorder()
    blc.init_app(app, client=first)  # type: ignore[arg-type]
    assert blc.init_app(app, client=second) is second  # type: ignore[arg-type]
    response = app.test_client().get("/fail")
    assert first.events == [] and len(second.events) == 1
    assert response.headers["Server-Timing"].count("app;dur=") == 1


def test_preflight_and_monitor_paths_are_not_recorded() -> None:
    app, recorder = make_app(), Recorder()
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    client = app.test_client()
    client.options("/api/orders/1", headers={"Access-Control-Request-Method": "GET"})
    client.post("/api/live-execution/events", json={"events": []})
    assert recorder.events == []


def test_init_app_sends_request_events_to_a_real_monitor(monitor: FakeMonitor) -> None:
    app = make_app()
    client = blc.init_app(app, monitor_url=monitor.url)
    try:
        assert isinstance(client, blc.MonitorClient) and blc.get_default_client() is client
        app.test_client().get("/api/orders/9")
        assert client.flush(5)
        actions = sorted(event["action"] for event in monitor.events())
        assert actions == ["GET /api/orders/:id", "load_order"]
    finally:
        client.close(timeout=1)


@given(
    method=st.sampled_from(["GET", "post", "DELETE"]),
    path=st.text(max_size=30).map(lambda text: "/" + text),
    status=st.sampled_from([None, "200 OK", "404 NOT FOUND", "500 INTERNAL SERVER ERROR", "503 X"]),
    rule=st.one_of(st.none(), st.text(max_size=20)),
    ms=st.floats(min_value=0, max_value=1e6),
    wall=st.floats(min_value=0, max_value=4e9),
)
def test_request_event_text_is_what_json_dumps_writes(
    method: str, path: str, status: str | None, rule: str | None, ms: float, wall: float
) -> None:
    code = int(status[:3]) if status else 500  # no status: the app raised
    expected = {
        "timestamp": datetime.fromtimestamp(wall, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "service": "backend",
        "component": "http",
        "action": blc.endpoint_key(method, path),
        "status": "error" if code >= 500 else "success",
        "details": {"http_status": code, "route": rule},
        "duration_ms": round(ms, 3),
        "trace_id": TRACE,
        "span_id": PARENT,
    }
    text = blc._http_event(("http", wall, ms, method, path, status, rule, TRACE, PARENT))
    assert text == json.dumps(expected, separators=(",", ":"))


def test_request_events_arrive_complete_in_batches_and_close_sends_the_rest(monitor: FakeMonitor) -> None:
    client = blc.MonitorClient(monitor.url, flush_interval=30.0)  # no timer within the test
    app = make_app()
    blc.init_app(app, client=client)
    http = app.test_client()
    try:
        http.get("/health")  # starts the sender (a 404, sent at once)
        assert wait_for(lambda: len(monitor.events()) == 1)
        timings = [http.get(f"/api/orders/{n}").headers["Server-Timing"] for n in range(600)]
        assert client.stats()["queued"] == 1200 and len(monitor.requests) == 1  # all on the queue
    finally:
        assert client.close(timeout=10)
    assert [len(body["events"]) for _, _, body in monitor.requests] == [1, 500, 500, 200]
    requests = [event for event in monitor.events() if event["action"] == "GET /api/orders/:id"]
    assert len(requests) == 600 and len({event["span_id"] for event in requests}) == 600
    by_span = {event["span_id"]: event for event in requests}
    for timing in timings:
        match = re.fullmatch(
            r'app;dur=(\d+\.\d), traceparent;desc="00-([0-9a-f]{32})-([0-9a-f]{16})-01"', timing
        )
        assert match is not None
        event = by_span[match.group(3)]
        assert (
            event["trace_id"] == match.group(2) and abs(event["duration_ms"] - float(match.group(1))) <= 0.06
        )
        assert {
            k: v for k, v in event.items() if k not in ("timestamp", "trace_id", "span_id", "duration_ms")
        } == {
            "service": "backend",
            "component": "http",
            "action": "GET /api/orders/:id",
            "status": "success",
            "details": {"http_status": 200, "route": "/api/orders/<int:order_id>"},
        }
        assert abs(datetime.now(UTC) - datetime.fromisoformat(event["timestamp"])) < timedelta(seconds=60)


def test_route_is_still_found_when_the_app_raised_or_copied_the_environ() -> None:
    app, recorder = make_app(testing=True), Recorder()
    flask_app = app.wsgi_app

    def copying(environ: dict[str, Any], start_response: Any) -> Any:  # as some WSGI layers do
        return flask_app(dict(environ), start_response)

    app.wsgi_app = copying  # type: ignore[method-assign]
    blc.init_app(app, client=recorder)  # type: ignore[arg-type]
    client = app.test_client()
    assert client.get("/api/orders/3").status_code == 200
    with pytest.raises(RuntimeError):
        client.get("/boom")
    routes = [(e["details"]["route"], e["status"]) for e in recorder.events if e["component"] == "http"]
    assert routes == [("/api/orders/<int:order_id>", "success"), ("/boom", "error")]


def test_a_forked_worker_does_not_repeat_its_parents_trace_ids() -> None:
    script = """
import os, flask, backend_logging_config as blc
class Recorder:
    closed = False
    def record(self, event): pass
app = flask.Flask("forked")
app.get("/")(lambda: "ok")
blc.init_app(app, client=Recorder())
trace = lambda: app.test_client().get("/").headers["Server-Timing"].split('"')[1]
trace()
read, write = os.pipe()
if os.fork() == 0:
    os.write(write, trace().encode())
    os._exit(0)
os.wait()
print(os.read(read, 100).decode() != trace())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


# -- track and MonitorHandler ---------------------------------------------------------------


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


def test_handler_forwards_only_records_with_execution_fields() -> None:
    recorder = Recorder()
    logger = logging.getLogger("test.handler")
    handler = blc.MonitorHandler(recorder)  # type: ignore[arg-type]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("plain message")
        logger.info(
            "loaded",
            extra={"component": "db", "action": "load", "duration_ms": 5.5, "details": {"rows": 2}},
        )
        logger.error("failed", extra={"component": "db", "action": "save"})
    finally:
        logger.removeHandler(handler)
    loaded, failed = recorder.events
    assert (loaded["component"], loaded["action"], loaded["duration_ms"]) == ("db", "load", 5.5)
    assert loaded["status"] == "success" and loaded["details"]["rows"] == 2
    assert failed["status"] == "error" and "duration_ms" not in failed


def test_handler_never_blocks_the_caller_while_monitor_is_down(
    monitor: FakeMonitor, make_client: Any
) -> None:
    monitor.stop()
    client = make_client(monitor.url, max_queue=100, max_retries=10_000)
    logger = logging.getLogger("test.down")
    handler = blc.MonitorHandler(client)
    logger.addHandler(handler)
    try:
        started = time.monotonic()
        for number in range(2000):
            logger.warning("tick %d", number, extra={"component": "job", "action": "tick"})
        assert time.monotonic() - started < 2.0
    finally:
        logger.removeHandler(handler)
    assert client.stats()["queued"] == 100
    assert client.stats()["dropped"] == {"queue_full": 1900}
