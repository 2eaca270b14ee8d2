"""Alerts that reach people: webhook messages when a difference opens and when it resolves.

``AlertLoop`` checks the monitor's differences at every tick of its sampler (``--interval``), with
the differences the tick has just computed: one wake-up a second for both, not two out of phase
(on an idle machine each wake-up pays for re-warming what it touches). Each check keeps the difference
history (``core.history``: every difference, at any severity) and the alerts (those at
``--alert-min-severity`` or above). A difference that reaches the floor opens an alert: ONE
"open" message to every ``--alert-webhook``; none while it persists; ONE "resolved" once it
has stayed below the floor for ``RESOLVE_CHECKS`` checks in a row and ``RESOLVE_AFTER_S``
seconds (hysteresis: a difference that flaps around its threshold sends nothing new).

With many processes on Redis each one checks, and the store's atomic transitions decide: the
process whose open (or close) wins sends the message, the others send nothing. A message is
queued as soon as its transition is won, so a store outage (or a full disk under ``--persist``)
midway through a check loses none: what was done stays done, the failure is counted in
``check_errors`` and logged once per outage, and the next check goes on from there.

``WebhookSender`` posts the messages: a bounded queue per webhook, a timeout per POST, retries
with exponential backoff and jitter, all in its own threads, so neither ingest nor the API ever
waits for a webhook. What happened to each message is counted (``/status``, ``/metrics``).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from live_monitor.core.history import ALERTS, DIFFERENCES, History
from live_monitor.model.results import Difference, Episode
from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import SEVERITIES, severity_rank

__all__ = ["AlertLoop", "Tracker", "WebhookSender", "difference_id", "message"]

log = logging.getLogger("live_execution_monitor")

RESOLVE_CHECKS: Final = 3  # checks in a row below the floor before an episode resolves ...
RESOLVE_AFTER_S: Final = 60.0  # ... spanning at least this long
QUEUE_SIZE: Final = 100  # messages waiting per webhook; more are dropped and counted
POST_TIMEOUT_S: Final = 5.0
ATTEMPTS: Final = 8  # posts of one message before it is given up: ~1 minute of backoff
BACKOFF_S: Final = 0.5  # the first retry's delay, doubled at each retry ...
BACKOFF_MAX_S: Final = 30.0  # ... up to this
RETRIED_STATUSES: Final = frozenset({408, 425, 429})  # and every 5xx: the receiver may recover

_CLOSING: Final = b""  # queued by close() to wake a delivery thread; a message is never empty
NO_WEBHOOK: Final = {"webhooks": 0, "sent": 0, "failed": 0, "dropped": 0, "retries": 0, "queued": 0}

Kind = Literal["open", "resolved"]


def difference_id(difference: Difference) -> str:
    """What names a difference from one check to the next: its type, scope and endpoint key."""
    return f"{difference.type}|{difference.scope}|{difference.key or ''}"


class Tracker:
    """Opens and resolves one book's episodes from successive checks' differences.

    Which episodes are open is read from the store at every check (another process may have
    opened or resolved one); only the hysteresis count is this process's own.
    """

    def __init__(
        self,
        history: History,
        book: str,
        floor: str,
        clock: Callable[[], float],
        resolve_checks: int = RESOLVE_CHECKS,
        resolve_after_s: float = RESOLVE_AFTER_S,
    ) -> None:
        self.history = history
        self.book = book
        self.floor = severity_rank(floor)
        self._clock = clock
        self._resolve_checks = resolve_checks
        self._resolve_after_s = resolve_after_s
        self._below: dict[str, tuple[int, float]] = {}  # open id -> (checks below in a row, since)
        self.quiet = False  # the last check found nothing open, nothing current, nothing pending

    def check(self, found: Sequence[Difference], emit: Callable[[Kind, Episode], None]) -> None:
        """One check: ``emit`` each episode this call opens or resolves, right after the store's
        transition is won, so a StoreUnavailable midway (raised) loses none of what was done."""
        now = self._clock()
        current = {difference_id(d): d for d in found if severity_rank(d.severity) >= self.floor}
        self.quiet = False
        opened = self.history.open_now(self.book)
        self.quiet = not current and not opened and not self._below  # then this check does nothing
        for key, difference in current.items():
            self._below.pop(key, None)
            episode = opened.get(key)
            if episode is None:
                episode = Episode(id=key, opened_at=now, severity=difference.severity, difference=difference)
                if self.history.open(self.book, episode):
                    emit("open", episode)
            elif severity_rank(difference.severity) > severity_rank(episode.severity):
                raised = msgspec.structs.replace(episode, severity=difference.severity, difference=difference)
                self.history.update(self.book, raised)
        for key in self._below.keys() - opened.keys():  # resolved by another process meanwhile
            self._below.pop(key, None)
        for key in [key for key in opened if key not in current]:  # in the order they opened
            checks, since = self._below.get(key, (0, now))
            checks += 1
            if checks < self._resolve_checks or now - since < self._resolve_after_s:
                self._below[key] = (checks, since)
                continue
            closed = self.history.close(self.book, key, since)  # resolved when it first went below
            self._below.pop(key, None)  # only now: a close that raised is tried again next check
            if closed is not None:
                emit("resolved", closed)


class AlertLoop:
    """At every tick: check the differences, keep the history, queue the alert messages.

    The monitor's sampler calls ``on_tick`` (it has no thread of its own); ``differences``,
    ``clock`` and ``notify`` are injectable, so tests drive ``check()`` by hand and assert the
    exact messages without sleeping. With a ``private`` store (this process's alone: nothing
    but this loop opens or closes an episode) a tick that finds no difference after a check
    that found nothing open is counted and skipped: it would change nothing, and an idle
    monitor's tick is cheaper without it.
    """

    def __init__(
        self,
        differences: Callable[[], Sequence[Difference]],
        history: History,
        *,
        min_severity: str = "high",
        notify: Callable[[dict[str, Any]], None] | None = None,
        dashboard_url: Callable[[], str] = lambda: "",
        clock: Callable[[], float] = time.time,
        resolve_checks: int = RESOLVE_CHECKS,
        resolve_after_s: float = RESOLVE_AFTER_S,
        private: bool = False,
    ) -> None:
        self._differences = differences
        self._private = private
        self.history = history
        self.min_severity = min_severity
        self._notify = notify
        self._dashboard_url = dashboard_url
        self._trackers = tuple(
            Tracker(history, book, floor, clock, resolve_checks, resolve_after_s)
            for book, floor in ((DIFFERENCES, SEVERITIES[0]), (ALERTS, min_severity))
        )
        self._checking = threading.Lock()  # one check at a time: the trackers' counts are shared
        self.checks = 0  # checks run, failed ones included
        self.check_errors = 0
        self._failing = False  # the last check failed: log again only once checks work
        self._quiet = False  # the last check succeeded and left nothing open or pending
        self.sender: WebhookSender | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Mapping[str, Any],
        differences: Callable[[], Sequence[Difference]],
        history: History,
        clock: Callable[[], float],
        dashboard_url: Callable[[], str],
        private: bool = False,
    ) -> AlertLoop:
        """A monitor's loop: its alert settings, and a sender for ``--alert-webhook``
        (none without one: the history is kept all the same)."""
        webhooks = tuple(settings["alert_webhook"])
        sender = WebhookSender(webhooks) if webhooks else None
        loop = cls(
            differences,
            history,
            min_severity=settings["alert_min_severity"],
            notify=sender.submit if sender else None,
            dashboard_url=dashboard_url,
            clock=clock,
            private=private,
        )
        loop.sender = sender
        return loop

    def check(self, found: Sequence[Difference] | StoreUnavailable | None = None) -> list[dict[str, Any]]:
        """One check of ``found`` (read from ``differences`` when None; a failed check when the
        caller already found the store down): the history kept, and
        the alert messages it queued, each queued as soon as its transition is won. A store outage (or an unwritable journal) fails the check without
        raising: what was done before it stays done and sent, the next check goes on from there,
        and the failure is counted in ``check_errors`` and logged once per outage."""
        messages: list[dict[str, Any]] = []

        def emit(kind: Kind, episode: Episode) -> None:
            one = message(kind, episode, self._dashboard_url())
            messages.append(one)
            if self._notify is not None:
                self._notify(one)

        with self._checking:
            self.checks += 1
            if self._private and self._quiet and found is not None and not found:
                return messages  # nothing open, nothing found: nothing to do (see the class)
            failure = self._check_all(emit, found)
            self._quiet = failure is None and all(tracker.quiet for tracker in self._trackers)
            self._failed(failure)
        return messages

    def _check_all(
        self, emit: Callable[[Kind, Episode], None], found: Sequence[Difference] | StoreUnavailable | None
    ) -> StoreUnavailable | None:
        """Run both trackers, the history's and the alerts', neither stopped by the other
        failing, then journal what a failed journal write left behind; the first failure."""
        if isinstance(found, StoreUnavailable):
            return found
        if found is None:
            try:
                found = self._differences()
            except StoreUnavailable as exc:
                return exc
        failures: list[StoreUnavailable] = []
        for tracker in self._trackers:
            try:
                tracker.check(found, emit if tracker.book == ALERTS else _silent)
            except StoreUnavailable as exc:
                failures.append(exc)
        try:
            self.history.flush()
        except StoreUnavailable as exc:
            failures.append(exc)
        return failures[0] if failures else None

    def _failed(self, failure: BaseException | None) -> None:
        """Count a failed check; log when checks start failing and when they work again."""
        if failure is None:
            if self._failing:
                log.warning("alert checks work again")
            self._failing = False
            return
        self.check_errors += 1
        if not self._failing:
            log.warning("alert check failed (%s); counted in check_errors, tried again every check", failure)
        self._failing = True

    def on_tick(self, found: Sequence[Difference] | StoreUnavailable | None) -> None:
        """The sampler's tick: one check of the differences it computed (the outage when the
        store was down; None when it could not for another reason, and the check reads them
        itself). Never raises: the sampler's thread must go on."""
        if found is not None and not found and self._private and self._quiet:
            with self._checking:  # check()'s skip, without building its messages and emit
                if self._quiet:
                    self.checks += 1
                    return
        try:
            self.check(found)  # a store outage is counted and logged by the check itself
        except Exception:  # noqa: BLE001 - the ticks must outlive a bad check
            failing, self._failing = self._failing, True
            self.check_errors += 1
            if not failing:  # a traceback once, not one per check
                log.exception("alert check failed")

    def close(self) -> None:
        """Stop the sender (messages still queued are not sent); checks stop with the sampler."""
        if self.sender is not None:
            self.sender.close()

    def status(self) -> dict[str, Any]:
        """For /status: this process's message counters and the alerts open now."""
        try:
            open_now = len(self.history.open_now(ALERTS))
        except StoreUnavailable:
            open_now = 0
        counts = self.sender.status() if self.sender is not None else NO_WEBHOOK
        return {
            "process_id": os.getpid(),
            "min_severity": self.min_severity,
            "open": open_now,
            "checks": self.checks,
            "check_errors": self.check_errors,
            **counts,
        }


def _silent(kind: Kind, episode: Episode) -> None:
    """The history's transitions send no message."""


def message(kind: Kind, episode: Episode, dashboard_url: str) -> dict[str, Any]:
    """The JSON posted to a webhook: the difference's fields, the episode's times and highest
    severity, a link to the dashboard and a Slack-compatible ``text``."""
    difference = episode.difference
    link = dashboard_url
    if link and difference.key:  # the endpoint's own view in the dashboard
        link += "#endpoint=" + urllib.parse.quote(difference.key, safe="/:")
    return {
        **msgspec.to_builtins(difference),
        "alert": kind,
        "id": episode.id,
        "severity": episode.severity,
        "opened_at": _iso(episode.opened_at),
        "resolved_at": _iso(episode.resolved_at),
        "dashboard_url": link,
        "text": _text(kind, episode, link),
    }


def _text(kind: Kind, episode: Episode, link: str) -> str:
    """One line for Slack (mrkdwn: ``&<>`` escaped, ``<url|label>`` for the link)."""
    difference = episode.difference
    where = difference.key or "service-wide"
    if kind == "open":
        head = f":rotating_light: {episode.severity.upper()} {difference.type} difference at {where}: "
        body = difference.message.removeprefix(f"{difference.key}: ")  # the key is said already
    else:
        lasted = _duration((episode.resolved_at or episode.opened_at) - episode.opened_at)
        head = f":white_check_mark: Resolved: {difference.type} difference at {where} "
        body = f"(it reached {episode.severity} and lasted {lasted})."
    text = _escape(head + body)
    return f"{text} <{link}|Open the dashboard>" if link else text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class WebhookSender:
    """Posts messages to webhooks, each webhook with its own bounded queue and thread, in order,
    retrying with exponential backoff and jitter; counts what became of every message."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = POST_TIMEOUT_S,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        queue_size: int = QUEUE_SIZE,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.urls = tuple(urls)
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._jitter = jitter
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._queues: list[queue.Queue[bytes]] = [queue.Queue(maxsize=queue_size) for _ in self.urls]
        self._threads = [
            threading.Thread(target=self._deliver, args=(url, q), name="webhook", daemon=True)
            for url, q in zip(self.urls, self._queues, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for every webhook; never waits (a full queue drops it, counted)."""
        body = json.dumps(message).encode()
        for waiting in self._queues:
            try:
                waiting.put_nowait(body)
            except queue.Full:
                self._count("dropped")
                log.warning("an alert message was dropped: a webhook's queue is full")

    def status(self) -> dict[str, int]:
        """Messages by outcome (sent, failed, dropped), retries and messages queued now."""
        with self._lock:
            counts = dict(self._counts)
        return {
            "webhooks": len(self.urls),
            **{name: counts.get(name, 0) for name in ("sent", "failed", "dropped", "retries")},
            "queued": sum(q.qsize() for q in self._queues),
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads: a post in flight ends within its timeout, queued messages stay unsent."""
        self._stop.set()
        for waiting in self._queues:  # wakes a thread blocked on its empty queue
            try:
                waiting.put_nowait(_CLOSING)
            except queue.Full:  # its thread is busy: it sees the stop when done with that message
                pass
        for thread in self._threads:
            thread.join(timeout)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _deliver(self, url: str, waiting: queue.Queue[bytes]) -> None:
        """The thread of one webhook: post its messages one by one, in order. It blocks on its
        queue without a timeout (no wake-up while there is nothing to send); close() wakes it."""
        while not self._stop.is_set():
            body = waiting.get()
            if body:  # not close()'s empty wake-up
                self._count(self._post_until_done(url, body))

    def _post_until_done(self, url: str, body: bytes) -> str:
        """Post ``body`` until the webhook takes it or ``attempts`` posts failed: the outcome."""
        for attempt in range(self.attempts):
            if attempt:
                self._count("retries")
                if self._stop.wait(self._delay(attempt)):
                    return "failed"  # closing
            retry = self._post(url, body)
            if retry is None:
                return "sent"
            if not retry:
                return "failed"
        log.warning("an alert message was given up after %d posts to %s", self.attempts, _host(url))
        return "failed"

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: half the delay fixed, half random, so webhooks that
        failed together do not retry together."""
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        return delay / 2 + self._jitter() * delay / 2

    def _post(self, url: str, body: bytes) -> bool | None:
        """One POST: None when taken (2xx), True when worth retrying, False when refused for good."""
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "live-execution-monitor"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(65_536)
            return None
        except urllib.error.HTTPError as exc:
            retry = exc.code >= 500 or exc.code in RETRIED_STATUSES
            log.warning("webhook %s answered %d%s", _host(url), exc.code, "" if retry else "; not retried")
            return retry
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as exc:  # refused, unreachable, timed out, garbled
            log.info("webhook %s failed: %s", _host(url), exc)
            return True


def _host(url: str) -> str:
    """The host of a webhook URL: its path may hold a secret (Slack's do), so logs show only this."""
    return urllib.parse.urlsplit(url).netloc or "?"
