"""The system sampler: one background thread reading psutil on a drift-free schedule.

The reader is an argument, so tests hand it scripted counters and call ``tick()``
themselves to assert exact rates without sleeping.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import psutil


class Reader(Protocol):
    """Returns raw readings: percentages and cumulative byte counters."""

    def __call__(self) -> dict[str, float]: ...


class PsutilReader:
    """Reads the machine with psutil and this process from os.times(); counters, not rates.

    The monitor's own CPU and memory come from ``os.times()`` and ``/proc/self/statm``
    rather than psutil.Process, which costs several times more per tick (measured by the
    benchmark's sampler row).
    """

    def __init__(self, io_every: int = 5) -> None:
        psutil.cpu_percent(interval=None)  # primes the first reading, which is meaningless
        self._io_every = io_every
        self._calls = 0
        self._last_cpu = self._own_cpu_seconds()
        self._last_wall = time.monotonic()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._process: psutil.Process | None = None

    @staticmethod
    def _own_cpu_seconds() -> float:
        t = os.times()
        return t.user + t.system

    def _rss(self) -> float:
        try:
            with open("/proc/self/statm", "rb") as statm:
                return float(int(statm.read().split()[1]) * self._page)
        except OSError:
            if self._process is None:
                self._process = psutil.Process(os.getpid())
            return float(self._process.memory_info().rss)

    def __call__(self) -> dict[str, float]:
        # Disk and network counters cost the most and change slowly: they are read every
        # ``io_every`` calls and the sampler keeps the last rate in between.
        cpu, wall = self._own_cpu_seconds(), time.monotonic()
        process_cpu = (
            100.0 * (cpu - self._last_cpu) / (wall - self._last_wall) if wall > self._last_wall else 0.0
        )
        self._last_cpu, self._last_wall = cpu, wall
        reading = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "process_cpu_percent": process_cpu,
            "process_rss_bytes": self._rss(),
        }
        if self._calls % self._io_every == 0:
            disk = psutil.disk_io_counters(nowrap=False)
            net = psutil.net_io_counters(nowrap=False)
            reading["disk_read_bytes"] = float(disk.read_bytes if disk else 0)
            reading["disk_write_bytes"] = float(disk.write_bytes if disk else 0)
            reading["net_sent_bytes"] = float(net.bytes_sent if net else 0)
            reading["net_recv_bytes"] = float(net.bytes_recv if net else 0)
        self._calls += 1
        return reading


_RATES = {
    "disk_read_bytes": "disk_read_bytes_per_s",
    "disk_write_bytes": "disk_write_bytes_per_s",
    "net_sent_bytes": "net_sent_bytes_per_s",
    "net_recv_bytes": "net_recv_bytes_per_s",
}


def next_tick(began: float, ticks: int, interval: float, now: float) -> tuple[int, float]:
    """The next tick number and the wait until it, on the fixed grid ``began + n * interval``.

    Waiting for the grid rather than for ``interval`` keeps the schedule from drifting by
    the time each sample takes; ticks missed (a suspended machine) are skipped, not bunched.
    """
    delay = began + ticks * interval - now
    if delay < 0:
        ticks += int(-delay // interval) + 1
        delay = began + ticks * interval - now
    return ticks, delay


class SystemSampler:
    """Samples ``reader`` every ``interval`` seconds into a bounded history.

    ``start()`` and ``stop()`` are idempotent and never leave two threads running; the
    loop waits on ``stop_event.wait(...)`` until the next scheduled tick, so it neither
    drifts nor delays a stop. ``on_tick`` is called after each sample (the monitor
    recomputes its differences there).
    """

    def __init__(
        self,
        reader: Callable[[], dict[str, float]] | None = None,
        interval: float = 1.0,
        history: int = 3600,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._reader = reader
        self.interval = interval
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self._on_tick = on_tick
        self._clock = clock
        self._monotonic = monotonic
        self._previous: dict[str, tuple[float, float]] = {}  # counter -> (time, value) last read
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self.last_sample_at: float | None = None
        self.errors = 0

    @property
    def running(self) -> bool:
        """True while the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; returns False when it was already running."""
        with self._lock:
            if self.running:
                return False
            if self._reader is None:
                self._reader = PsutilReader()
            self._stop_event = threading.Event()
            self._thread = threading.Thread(target=self._run, name="live-monitor-sampler", daemon=True)
            self._thread.start()
            return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the thread; returns False when it was not running."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return False
            self._stop_event.set()
            thread.join(timeout)
            self._thread = None
            self._previous = {}
            return True

    def _run(self) -> None:
        stop_event = self._stop_event
        began = self._monotonic()
        ticks = 0
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception:  # a broken reading must not kill monitoring
                self.errors += 1
            ticks, delay = next_tick(began, ticks + 1, self.interval, self._monotonic())
            stop_event.wait(delay)

    def tick(self) -> dict[str, Any]:
        """Take one sample now: read, turn counters into per-second rates, record, notify."""
        if self._reader is None:
            self._reader = PsutilReader()
        raw = self._reader()
        now = self._clock()
        sample: dict[str, Any] = {
            "timestamp": now,
            "cpu_percent": round(raw["cpu_percent"], 2),
            "memory_percent": round(raw["memory_percent"], 2),
            "process_cpu_percent": round(raw.get("process_cpu_percent", 0.0), 2),
            "process_rss_bytes": int(raw.get("process_rss_bytes", 0)),
        }
        last = self.history[-1] if self.history else {}
        for counter, rate in _RATES.items():
            previous = self._previous.get(counter)
            if counter not in raw:  # not read this time: the last rate stands
                sample[rate] = last.get(rate, 0.0)
            elif previous is None or now <= previous[0]:
                sample[rate] = 0.0
            else:
                sample[rate] = round(max(raw[counter] - previous[1], 0.0) / (now - previous[0]), 1)
            if counter in raw:
                self._previous[counter] = (now, raw[counter])
        self.history.append(sample)
        self.last_sample_at = now
        if self._on_tick is not None:
            self._on_tick(sample)
        return sample

    def peek(self) -> dict[str, Any] | None:
        """One reading now, not recorded (rates 0): the figures before the first tick."""
        try:
            raw = (self._reader or PsutilReader())()
        except Exception:  # noqa: BLE001 - a reading is a courtesy here
            return None
        sample: dict[str, Any] = {"timestamp": self._clock(), **{rate: 0.0 for rate in _RATES.values()}}
        for name in ("cpu_percent", "memory_percent", "process_cpu_percent", "process_rss_bytes"):
            sample[name] = raw.get(name, 0.0)
        return sample

    def latest(self) -> dict[str, Any] | None:
        """The newest sample, or None before the first."""
        return dict(self.history[-1]) if self.history else None

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """A copy of the history, oldest first, the last ``limit`` samples."""
        samples = list(self.history)
        return samples if limit is None else samples[-limit:] if limit > 0 else []
