"""Alerts that reach people: one "open" and one "resolved" webhook message per difference, posted
to a real HTTP receiver, through retries, and sent once by a --workers monitor on real Redis.

The checks are driven by hand (``AlertLoop.check``) on a fake clock, so each test asserts the
exact messages without sleeping; only the delivery threads and the real processes are waited for.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from live_monitor.core.alerts import AlertLoop, WebhookSender, message
from live_monitor.core.history import ALERTS, DIFFERENCES, History
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.results import Difference, Episode
from live_monitor.store import StoreUnavailable
from live_monitor.store.journal import EventJournal
from live_monitor.store.memory import EventStore
from tests.helpers import (
    ENDPOINT,
    SERVICE,
    FakeReader,
    Receiver,
    event,
    failing_payments,
    reading,
    run_monitor,
    wait_for,
    wait_for_workers,
)


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["alert"], m["id"]) for m in messages]


def test_an_anomaly_that_comes_and_goes_sends_one_open_and_one_resolved_message(receiver, clock):
    settings = {
        "window": 60,
        "self_monitor": False,
        "alert_webhook": (receiver.url,),
        "public_url": "http://monitor.example:5001/",
    }
    monitor = LiveExecutionMonitor(settings, clock=clock)
    try:
        monitor.record(*failing_payments(clock))
        assert kinds(monitor.alerts.check()) == [("open", SERVICE), ("open", ENDPOINT)]
        assert wait_for(lambda: len(receiver.posts) == 2)
        post = receiver.posts[1]
        link = "http://monitor.example:5001/#endpoint=GET%20/api/pay"
        assert post["alert"] == "open" and post["type"] == "error_rate" and post["key"] == "GET /api/pay"
        assert post["severity"] == "high" and post["backend"]["error_rate"] == 0.5
        assert post["frontend"]["error_rate"] == 0.0 and post["samples"] == {"backend": 40, "frontend": 40}
        assert post["opened_at"] == "2027-01-15T08:00:00.000Z" and post["resolved_at"] is None
        assert post["dashboard_url"] == link
        assert post["text"] == (
            ":rotating_light: HIGH error_rate difference at GET /api/pay: the backend "
            "fails more often: backend 50.0% errors (20 of 40), frontend 0.0% (0 of 40). The UI may "
            f"be hiding server failures (retries or fallbacks). <{link}|Open the dashboard>"
        )
        for _ in range(5):  # it persists: nothing new
            clock.advance(10)
            assert monitor.alerts.check() == []
        clock.advance(70)  # the events leave the 60 s window: the differences are gone ...
        assert monitor.differences() == []
        assert monitor.alerts.check() == []  # ... but one check below is not enough,
        clock.advance(30)
        assert monitor.alerts.check() == []  # nor two in 30 s;
        clock.advance(30)
        resolved = monitor.alerts.check()  # three over 60 s are
        assert kinds(resolved) == [("resolved", SERVICE), ("resolved", ENDPOINT)]
        assert resolved[1]["resolved_at"] == "2027-01-15T08:02:00.000Z"  # the first check it was gone
        assert resolved[1]["text"] == (
            ":white_check_mark: Resolved: error_rate difference at GET /api/pay (it reached high "
            f"and lasted 2 min 0 s). <{link}|Open the dashboard>"
        )
        for _ in range(3):
            clock.advance(30)
            assert monitor.alerts.check() == []
        assert wait_for(lambda: len(receiver.posts) == 4)
        assert kinds(receiver.posts) == [
            ("open", SERVICE),
            ("open", ENDPOINT),
            ("resolved", SERVICE),
            ("resolved", ENDPOINT),
        ]
        assert wait_for(lambda: monitor.alerts.status()["sent"] == 4)
    finally:
        monitor.close()


def test_each_sampler_tick_checks_the_alerts_on_the_differences_it_computed(redis_server, clock):
    """No thread of their own: the sampler's tick (one wake-up a second) runs the check, and a
    tick that finds the store down still counts a failed check, without stopping the ticks."""
    settings = {"window": 60, "self_monitor": False, "store": redis_server.url}
    monitor = LiveExecutionMonitor(settings, reader=FakeReader([reading()]), clock=clock)
    try:
        monitor.record(*failing_payments(clock))
        monitor.sampler.tick()
        assert sorted(monitor.history.open_now(ALERTS)) == [ENDPOINT, SERVICE]
        clock.advance(1)
        monitor.sampler.tick()
        assert (monitor.alerts.checks, monitor.alerts.check_errors) == (2, 0)
        redis_server.stop()
        clock.advance(1)
        with pytest.raises(StoreUnavailable):  # the sampler's loop counts it in sampler_errors
            monitor.sampler.tick()
        assert (monitor.alerts.checks, monitor.alerts.check_errors) == (3, 1)
    finally:
        monitor.close()


def test_ticks_on_a_private_store_open_and_resolve_as_checks_do_though_quiet_ones_are_skipped(clock):
    """In memory (this process's store alone) a tick that finds no difference after a check that
    left nothing open skips the check's work; the alerts open, resolve and open again all the same."""
    settings = {"window": 60, "self_monitor": False}
    monitor = LiveExecutionMonitor(settings, reader=FakeReader([reading()]), clock=clock)
    sent: list[dict[str, Any]] = []
    monitor.alerts._notify = sent.append

    def ticks(count: int, step: float = 30.0) -> None:
        for _ in range(count):
            clock.advance(step)
            monitor.sampler.tick()

    ticks(3)  # quiet
    monitor.record(*failing_payments(clock))
    ticks(1, 1.0)
    assert kinds(sent) == [("open", SERVICE), ("open", ENDPOINT)]
    ticks(5)  # the events leave the window after 60 s; resolved after three checks over 60 s
    assert kinds(sent[2:]) == [("resolved", SERVICE), ("resolved", ENDPOINT)]
    assert monitor.history.open_now(ALERTS) == {}
    ticks(3)  # quiet again
    monitor.record(*failing_payments(clock))
    ticks(1, 1.0)
    assert kinds(sent[4:]) == [("open", SERVICE), ("open", ENDPOINT)]  # back: opened at once
    assert (monitor.alerts.checks, monitor.alerts.check_errors) == (13, 0)


def difference(severity: str, key: str = "GET /api/pay") -> Difference:
    return Difference(
        type="performance",
        severity=severity,  # type: ignore[arg-type]
        scope="endpoint",
        key=key,
        backend={"p50_ms": 20.0},
        frontend={"p50_ms": 900.0},
        difference_pct=4400.0,
        message=f"{key}: the browser waits <900 ms> & more",
    )


@pytest.fixture
def found() -> list[Difference]:
    """What the injected data source answers: tests change it between checks."""
    return []


@pytest.fixture
def loop(found, clock) -> AlertLoop:
    """An alert loop on an in-memory store, checking ``found`` on the fake clock."""
    return AlertLoop(lambda: found, History(EventStore(clock=clock)), clock=clock, min_severity="medium")


def test_a_flapping_difference_opens_once_and_resolves_only_after_staying_away(loop, found, clock):
    found.append(difference("high"))
    assert [m["alert"] for m in loop.check()] == ["open"]
    for _ in range(5):  # away for two checks over 80 s, then back: never away long enough
        found.clear()
        for _ in range(2):
            clock.advance(40)
            assert loop.check() == []
        found.append(difference("high"))
        assert loop.check() == []
    found.clear()
    for _ in range(4):  # away for four quick checks: not yet a minute
        clock.advance(10)
        assert loop.check() == []
    clock.advance(30)
    assert [m["alert"] for m in loop.check()] == ["resolved"]
    found.append(difference("high"))
    assert [m["alert"] for m in loop.check()] == ["open"]  # back after it resolved: a new alert


def test_a_rise_sends_nothing_new_and_a_fall_below_the_floor_resolves_the_alert(loop, found, clock):
    found.append(difference("medium"))
    assert [(m["alert"], m["severity"]) for m in loop.check()] == [("open", "medium")]
    found[0] = difference("high")
    assert loop.check() == []  # still the same alert, now at high
    found[0] = difference("low")  # below the floor (medium), yet still a difference
    for _ in range(3):
        clock.advance(30)
        answered = loop.check()
    assert [(m["alert"], m["severity"]) for m in answered] == [("resolved", "high")]
    (alert,) = loop.history.recent(10, ALERTS)
    assert alert.severity == "high" and alert.resolved_at is not None
    (episode,) = loop.history.recent(10, DIFFERENCES)  # the history: open at any severity
    assert episode.severity == "high" and episode.resolved_at is None
    assert episode.difference.severity == "high"  # as it was when it reached its highest


def test_the_text_escapes_what_slack_would_read_as_markup():
    episode = Episode(id="x", opened_at=0.0, severity="high", difference=difference("high", "GET /a&b"))
    text = message("open", episode, "http://m:5001/")["text"]
    assert "GET /a&amp;b: the browser waits &lt;900 ms&gt; &amp; more" in text
    assert text.endswith("<http://m:5001/#endpoint=GET%20/a%26b|Open the dashboard>")


# --- delivery ---------------------------------------------------------------------------------


class BlippingStore(EventStore):
    """The in-memory store, whose ``method`` on ``book`` raises StoreUnavailable once, at its
    second call: a Redis connection that drops between two transitions of one check."""

    def __init__(self, method: str, book: str, **options: Any) -> None:
        super().__init__(**options)
        self.method, self.book, self.calls = method, book, 0

    def _blip(self, method: str, book: str) -> None:
        if (method, book) == (self.method, self.book):
            self.calls += 1
            if self.calls == 2:
                raise StoreUnavailable("the shared store (Redis) is unreachable: Connection reset")

    def open_episode(self, book: str, episode: Episode) -> bool:
        self._blip("open_episode", book)
        return super().open_episode(book, episode)

    def close_episode(self, book: str, episode_id: str, resolved_at: float) -> Episode | None:
        self._blip("close_episode", book)
        return super().close_episode(book, episode_id, resolved_at)


def checked(loop: AlertLoop, times: int, clock: Any, step: float = 30.0) -> list[list[tuple[str, str]]]:
    """The messages of ``times`` checks, ``step`` seconds apart."""
    answers = []
    for _ in range(times):
        clock.advance(step)
        answers.append([(m["alert"], m["key"]) for m in loop.check()])
    return answers


TWO_KEYS = ("GET /a", "GET /b")


@pytest.mark.parametrize(
    ("method", "book", "opens"),
    [
        ("open_episode", ALERTS, [["GET /a"], ["GET /b"], []]),  # the second open: in the next check
        ("open_episode", DIFFERENCES, [["GET /a", "GET /b"], [], []]),  # the history's: alerts go on
        ("close_episode", ALERTS, None),
    ],
)
def test_a_store_outage_midway_through_a_check_loses_no_message_and_repeats_none(
    method, book, opens, found, clock, caplog
):
    sent: list[dict[str, Any]] = []
    store = BlippingStore(method, book, clock=clock)
    loop = AlertLoop(lambda: found, History(store), clock=clock, notify=sent.append)
    found.extend(difference("high", key) for key in TWO_KEYS)
    answers = checked(loop, 3, clock)
    if opens is not None:
        assert answers == [[("open", key) for key in keys] for keys in opens]
    found.clear()  # gone: resolved after three checks over 60 s
    resolves = checked(loop, 6, clock)
    if opens is None:  # the second close failed: it is made by the next check
        assert resolves == [[], [], [("resolved", "GET /a")], [("resolved", "GET /b")], [], []]
    else:
        assert resolves == [[], [], [("resolved", "GET /a"), ("resolved", "GET /b")], [], [], []]
    assert [m["alert"] for m in sent] == ["open", "open", "resolved", "resolved"]  # each once
    assert [m["resolved_at"] for m in sent[2:]] == [sent[2]["resolved_at"]] * 2  # when they went away
    assert loop.history.open_now(DIFFERENCES) == {} and loop.history.open_now(ALERTS) == {}
    assert (loop.checks, loop.check_errors) == (9, 1)
    assert caplog.text.count("alert check failed") == 1
    assert "Connection reset" in caplog.text and "alert checks work again" in caplog.text


def test_a_full_disk_loses_no_alert_and_the_history_is_journaled_once_there_is_room(
    found, clock, caplog, tmp_path
):
    """A real SQLite "database or disk is full": the alerts go on, and the episodes the journal
    could not take are written once it can, so a restart still knows them."""
    sent: list[dict[str, Any]] = []
    journal = EventJournal(tmp_path / "j.db")
    history = History(EventStore(clock=clock), journal)
    loop = AlertLoop(lambda: found, history, clock=clock, notify=sent.append)
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full: no page more
    found.extend(
        msgspec.structs.replace(difference("high", key), message="x" * 5000)  # needs pages of its own
        for key in TWO_KEYS
    )
    assert checked(loop, 3, clock) == [[("open", "GET /a"), ("open", "GET /b")], [], []]
    assert loop.check_errors == 3 and caplog.text.count("alert check failed") == 1
    assert "database or disk is full" in caplog.text
    assert EventJournal(tmp_path / "j.db").load_episodes() == {}  # nothing could be journaled
    journal._db.execute("PRAGMA max_page_count = 1000000")  # room again
    assert checked(loop, 3, clock) == [[], [], []]
    assert loop.check_errors == 3 and "alert checks work again" in caplog.text
    assert [(m["alert"], m["key"]) for m in sent] == [("open", "GET /a"), ("open", "GET /b")]
    restored = History(EventStore(clock=clock), EventJournal(tmp_path / "j.db"))  # a restart
    assert sorted(restored.open_now(ALERTS)) == sorted(loop.history.open_now(ALERTS))
    assert len(restored.open_now(DIFFERENCES)) == 2


def fast_sender(url: str, **options: Any) -> WebhookSender:
    return WebhookSender([url], **{"backoff_s": 0.02, "backoff_max_s": 0.1, "timeout": 2.0, **options})


def test_a_message_reaches_a_webhook_that_was_down_once_it_is_back():
    down = Receiver()
    port, url = down.port, down.url
    down.stop()
    sender = fast_sender(url, attempts=1000)
    try:
        sender.submit({"text": "hello"})
        assert wait_for(lambda: sender.status()["retries"] >= 3)  # refused, retried
        assert sender.status()["sent"] == 0
        back = Receiver(port)
        try:
            assert wait_for(lambda: back.posts == [{"text": "hello"}])
            assert wait_for(lambda: sender.status()["sent"] == 1)
            assert sender.status()["failed"] == sender.status()["dropped"] == 0
        finally:
            back.stop()
    finally:
        sender.close()


def test_server_errors_are_retried_in_order_and_a_refusal_is_not(receiver):
    sender = fast_sender(receiver.url)
    try:
        receiver.answers = [503, 500, 429]
        sender.submit({"n": 1})
        sender.submit({"n": 2})
        assert wait_for(lambda: receiver.posts == [{"n": 1}, {"n": 2}])
        assert wait_for(lambda: sender.status()["sent"] == 2)
        assert sender.status()["retries"] == 3
        receiver.answers = [404]
        sender.submit({"n": 3})
        assert wait_for(lambda: sender.status()["failed"] == 1)
        assert sender.status()["retries"] == 3 and receiver.posts == [{"n": 1}, {"n": 2}]
    finally:
        sender.close()


def test_a_message_is_given_up_after_its_attempts_and_a_full_queue_drops_without_waiting():
    down = Receiver()
    url = down.url
    down.stop()
    sender = fast_sender(url, attempts=3)
    try:
        sender.submit({"n": 1})
        assert wait_for(lambda: sender.status()["failed"] == 1)
        assert sender.status()["retries"] == 2
    finally:
        sender.close()
    slow = WebhookSender([url], backoff_s=60.0, queue_size=1)  # the first message waits a minute
    try:
        slow.submit({"n": 1})
        assert wait_for(lambda: slow.status()["retries"] == 1)  # taken from the queue, waiting
        slow.submit({"n": 2})  # queued
        slow.submit({"n": 3})  # the queue is full: dropped, and submit did not wait
        assert slow.status() == {
            "webhooks": 1,
            "sent": 0,
            "failed": 0,
            "dropped": 1,
            "retries": 1,
            "queued": 1,
        }
    finally:
        slow.close()  # wakes the backoff at once
    assert not any(thread.is_alive() for thread in slow._threads)


def test_closing_an_idle_sender_wakes_its_threads_at_once():
    """A delivery thread blocks on its queue without a timeout (no wake-up while idle), so close()
    must wake it: a thread still alive after close() (which waits up to 5 s) would be stuck."""
    sender = WebhookSender(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"])
    sender.close()
    assert not any(thread.is_alive() for thread in sender._threads)
    assert sender.status()["sent"] == sender.status()["failed"] == 0


def test_status_and_metrics_count_what_became_of_the_messages(make_app, receiver, clock):
    monitor = LiveExecutionMonitor({"self_monitor": False, "alert_webhook": (receiver.url,)}, clock=clock)
    app = make_app(monitor=monitor)
    try:
        receiver.answers = [400]  # the first message is refused for good
        monitor.record(*failing_payments(clock))
        assert len(monitor.alerts.check()) == 2
        assert wait_for(lambda: monitor.alerts.status()["sent"] == 1)
        client = app.test_client()
        alerts = client.get("/api/live-execution/status").get_json()["alerts"]
        assert alerts["webhooks"] == 1 and alerts["min_severity"] == "high" and alerts["open"] == 2
        assert (alerts["sent"], alerts["failed"], alerts["dropped"], alerts["queued"]) == (1, 1, 0, 0)
        text = client.get("/metrics").get_data(as_text=True)
        samples = {
            (s.name, s.labels.get("outcome")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name.startswith("live_monitor_alert")
        }
        assert samples[("live_monitor_alerts_total", "sent")] == 1
        assert samples[("live_monitor_alerts_total", "failed")] == 1
        assert samples[("live_monitor_alerts_total", "dropped")] == 0
        assert samples[("live_monitor_alerts_open", None)] == 2
        assert "secret" not in json.dumps(client.get("/api/live-execution/config").get_json())
    finally:
        monitor.close()


# --- many processes -----------------------------------------------------------------------------


def checks_by_worker(server: Any) -> dict[int, int]:
    """One /status answer: {the answering worker's pid: its checks so far}."""
    alerts = requests.get(f"{server.api}/status", timeout=10).json()["alerts"]
    return {alerts["process_id"]: alerts["checks"]}


def test_two_workers_on_redis_send_each_message_once(redis_server, receiver):
    flags = ["--no-self-monitor", "--store", redis_server.url, "--workers", "2", "--interval", "0.05"]
    flags += ["--autostart", "--alert-webhook", receiver.url]
    with run_monitor(*flags) as server:
        pids = wait_for_workers(server, 2)
        batch = []
        for i in range(40):
            batch.append(event("backend", "http", "GET /api/pay", 20.0, "error" if i % 2 else "success"))
            batch.append(event("frontend", "api", "GET /api/pay", 25.0))
        server.post_events(batch)
        assert wait_for(lambda: len(receiver.posts) >= 2, timeout=15)
        # Every worker has checked (and found the alerts open) at least twice since.
        after: dict[int, int] = {}
        latest: dict[int, int] = {}

        def both_checked_again() -> bool:
            for pid, checks in checks_by_worker(server).items():
                after.setdefault(pid, checks)
                latest[pid] = checks
            return set(latest) == set(pids) and all(latest[p] >= after[p] + 2 for p in pids)

        assert wait_for(both_checked_again, timeout=15)
    assert sorted(kinds(receiver.posts)) == [("open", ENDPOINT), ("open", SERVICE)]
    links = {post["id"]: post["dashboard_url"] for post in receiver.posts}  # the address it served on
    assert links == {ENDPOINT: f"{server.url}/#endpoint=GET%20/api/pay", SERVICE: f"{server.url}/"}


# --- settings -----------------------------------------------------------------------------------


def test_webhooks_are_repeatable_flags_or_one_variable_and_are_checked(capsys):
    import live_execution_monitor as lem
    from live_monitor.core.settings import resolve

    args = lem.build_parser().parse_args(
        ["--alert-webhook", "https://a.example/x", "--alert-webhook", "http://b:9/"]
    )
    assert resolve(args, {})["alert_webhook"] == ("https://a.example/x", "http://b:9/")
    env = {
        "LIVE_MONITOR_ALERT_WEBHOOK": "https://a.example/x, http://b:9/",
        "LIVE_MONITOR_ALERT_MIN_SEVERITY": "low",
    }
    settings = resolve(lem.build_parser().parse_args([]), env)
    assert settings["alert_webhook"] == ("https://a.example/x", "http://b:9/")
    assert settings["alert_min_severity"] == "low"
    assert lem.main(["--alert-webhook", "ftp://files.example/in"]) == 2
    assert "--alert-webhook must be an http:// or https:// URL with a host, not 'ftp://files.example/in'" in (
        capsys.readouterr().err
    )
    assert lem.main(["--alert-min-severity", "urgent"]) == 2
    assert "--alert-min-severity must be low, medium or high, not 'urgent'" in capsys.readouterr().err
