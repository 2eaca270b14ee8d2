"""The system sampler: one background thread reading the machine on a drift-free schedule.

On Linux the default reader takes its figures straight from /proc through descriptors kept
open, one ``pread`` per file; elsewhere psutil reads them. The reader is an argument, so tests
hand it scripted counters and call ``tick()`` themselves to assert exact rates without sleeping.

Each tick is kept small because, on a mostly idle (virtual) machine, caches are cold after
every idle second and a wake-up costs roughly in proportion to the code and data it touches;
the benchmark's idle row measures the started CLI beside a bare thread waking at 1 Hz.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil

CpuTimes = tuple[float, float, float]
"""Cumulative system CPU time as (busy, idle, iowait), in any one unit."""

# _ROUNDING: figures are rounded as ``round(x * 10) / 10``, not ``round(x, 1)``: the latter goes
# through float-to-decimal conversion code that a tick after an idle second pays ~20 µs to bring
# back into the caches; the two differ only for values within a rounding error of a tie.

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size


# --- parsing /proc text (pure functions, tested on sample text) ------------------------------


def cpu_percent(before: CpuTimes, after: CpuTimes) -> float:
    """The system-wide busy share between two readings, computed as psutil.cpu_percent does.

    Each part's delta is clipped at zero, as psutil clips each field: idle and iowait can
    step back on Linux.
    """
    busy = max(after[0] - before[0], 0)
    total = busy + max(after[1] - before[1], 0) + max(after[2] - before[2], 0)
    return round(busy / total * 1000) / 10 if total > 0 else 0.0


def parse_stat(data: bytes) -> CpuTimes:
    """(busy, idle, iowait) jiffies from the first line of /proc/stat (the first 9 fields).

    Busy is user + nice + system + irq + softirq + steal; guest time is already inside user
    and nice, which is why psutil subtracts it from its total.
    """
    fields = data.split(None, 9)
    if len(fields) < 9 or fields[0] != b"cpu":
        raise ValueError(f"not a /proc/stat cpu line: {data[:60]!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[1:9])
    return user + nice + system + irq + softirq + steal, idle, iowait


def parse_meminfo(data: bytes) -> float | None:
    """Used memory in percent, as psutil.virtual_memory().percent, from the head of /proc/meminfo.

    MemTotal, MemFree and MemAvailable are its first three lines since Linux 3.14. None
    when they are not, or MemAvailable is 0 (psutil then estimates it, so the caller asks psutil).
    """
    fields = data.split(None, 9)
    if len(fields) < 9 or fields[0] != b"MemTotal:" or fields[6] != b"MemAvailable:":
        return None
    total, free, available = int(fields[1]), int(fields[4]), int(fields[7])
    if total <= 0 or available <= 0:
        return None
    if available > total:  # a container's distorted figures: psutil falls back to MemFree too
        available = free
    return round((total - available) / total * 1000) / 10  # see _ROUNDING


def parse_diskstats(data: bytes, is_disk: Callable[[bytes], bool]) -> tuple[int, int]:
    """Bytes (read, written) summed over whole disks (``is_disk``) in /proc/diskstats.

    Partitions are left out since their disk already counts them, as in psutil's totals.
    """
    read = written = 0
    for line in data.splitlines():
        fields = line.split()
        if len(fields) >= 14 and is_disk(fields[2]):
            read += int(fields[5])
            written += int(fields[9])
    return read * SECTOR, written * SECTOR


def parse_net_dev(data: bytes) -> tuple[int, int]:
    """Bytes (received, sent) summed over every interface in /proc/net/dev, loopback included."""
    received = sent = 0
    for line in data.splitlines()[2:]:
        fields = line.rpartition(b":")[2].split()
        received += int(fields[0])
        sent += int(fields[8])
    return received, sent


# --- readers -----------------------------------------------------------------------------------


def _pread_all(fd: int, size: int) -> bytes:
    """The whole of a /proc file from its start: pread regenerates it, no seek or reopen needed."""
    data = os.pread(fd, size, 0)
    while len(data) == size:  # may have been cut: read again with room to spare
        size *= 4
        data = os.pread(fd, size, 0)
    return data


class _CounterReader:
    """What both readers share: a reading of counters (not rates) each call, with the machine's
    CPU percent since the last call, this process's CPU and RSS, and the disk and network
    byte counters every ``io_every`` calls (they change slowly and cost the most to read).
    A subclass says where each figure comes from."""

    def __init__(self, io_every: int) -> None:
        self._io_every = io_every
        self._calls = 0
        self._cpu = self._cpu_times()  # the first cpu_percent's baseline
        self._own = time.process_time()
        self._wall = time.monotonic()

    def _cpu_times(self) -> CpuTimes:
        raise NotImplementedError

    def _memory_percent(self) -> float:
        raise NotImplementedError

    def _rss(self) -> int:
        raise NotImplementedError

    def _io(self) -> tuple[int, int, int, int]:
        """(disk read, disk written, network sent, network received) bytes so far."""
        raise NotImplementedError

    def __call__(self) -> dict[str, float]:
        return self._reading(self._cpu_times(), self._memory_percent(), self._rss())

    def _reading(self, cpu: CpuTimes, memory: float, rss: int) -> dict[str, float]:
        own, wall = time.process_time(), time.monotonic()
        elapsed = wall - self._wall
        before = self._cpu  # cpu_percent() inlined: one call fewer on the tick's path
        busy = max(cpu[0] - before[0], 0)
        total = busy + max(cpu[1] - before[1], 0) + max(cpu[2] - before[2], 0)
        self._cpu, self._own, self._wall, own = cpu, own, wall, own - self._own
        calls = self._calls
        self._calls = calls + 1
        if calls % self._io_every:
            return {
                "cpu_percent": round(busy / total * 1000) / 10 if total > 0 else 0.0,
                "memory_percent": memory,
                "process_cpu_percent": 100.0 * own / elapsed if elapsed > 0 else 0.0,
                "process_rss_bytes": float(rss),
            }
        read, written, sent, received = self._io()
        return {
            "cpu_percent": round(busy / total * 1000) / 10 if total > 0 else 0.0,
            "memory_percent": memory,
            "process_cpu_percent": 100.0 * own / elapsed if elapsed > 0 else 0.0,
            "process_rss_bytes": float(rss),
            "disk_read_bytes": float(read),
            "disk_write_bytes": float(written),
            "net_sent_bytes": float(sent),
            "net_recv_bytes": float(received),
        }


_OPEN_READERS: weakref.WeakSet[ProcReader] = weakref.WeakSet()


class ProcReader(_CounterReader):
    """Linux: reads /proc through descriptors kept open; counters, not rates.

    Its figures are psutil's (cpu_percent, virtual_memory().percent, disk_io_counters(),
    net_io_counters(), with this process's CPU from ``time.process_time()`` and RSS from
    statm), but psutil parses whole files and checks /sys for every disk on each call, which
    costs several times more per tick. Disk and network counters change slowly and cost the
    most, so they are read every ``io_every`` calls; the sampler keeps the last rate between.
    ``proc`` and ``sys_block`` point elsewhere in tests.
    """

    def __init__(self, io_every: int = 5, proc: str = "/proc", sys_block: str = "/sys/block") -> None:
        self._paths = [f"{proc}/{name}" for name in ("stat", "meminfo", "self/statm", "diskstats", "net/dev")]
        self._fds: list[int] = []
        try:
            for path in self._paths:
                self._fds.append(os.open(path, os.O_RDONLY))
        except OSError:
            self.close()
            raise
        self._finalizer = weakref.finalize(self, _close_all, self._fds)
        self._stat, self._meminfo, self._statm, self._diskstats, self._net_dev = self._fds
        self._sys_block = os.fsencode(sys_block)
        self._disks: dict[bytes, bool] = {}  # device name -> whole disk (True) or partition
        self._page = os.sysconf("SC_PAGE_SIZE")
        super().__init__(io_every)
        _OPEN_READERS.add(self)

    def __call__(self) -> dict[str, float]:
        """One reading: three preads and their parsing in one call, no method per figure."""
        pread = os.pread
        memory = parse_meminfo(pread(self._meminfo, 256, 0))
        if memory is None:
            memory = psutil.virtual_memory().percent
        rss = int(pread(self._statm, 128, 0).split(None, 2)[1]) * self._page
        return self._reading(parse_stat(pread(self._stat, 512, 0)), memory, rss)

    def _is_disk(self, name: bytes) -> bool:
        known = self._disks.get(name)
        if known is None:  # psutil's test, made once per device instead of every call
            known = self._disks[name] = os.path.exists(self._sys_block + b"/" + name.replace(b"/", b"!"))
        return known

    def _cpu_times(self) -> CpuTimes:
        return parse_stat(os.pread(self._stat, 512, 0))

    def _memory_percent(self) -> float:
        memory = parse_meminfo(os.pread(self._meminfo, 256, 0))
        return psutil.virtual_memory().percent if memory is None else memory

    def _rss(self) -> int:
        return int(os.pread(self._statm, 128, 0).split(None, 2)[1]) * self._page

    def _io(self) -> tuple[int, int, int, int]:
        read, written = parse_diskstats(_pread_all(self._diskstats, 4096), self._is_disk)
        received, sent = parse_net_dev(_pread_all(self._net_dev, 4096))
        return read, written, sent, received

    def _reopen_own(self) -> None:
        """After fork: /proc/self/statm opened by the parent still describes the parent."""
        if self._fds:
            os.close(self._statm)
            self._statm = self._fds[2] = os.open(self._paths[2], os.O_RDONLY)

    def close(self) -> None:
        """Close the descriptors (also done when the reader is garbage collected).

        Later calls fail with EBADF rather than read whatever file reuses those numbers.
        """
        _close_all(self._fds)
        self._stat = self._meminfo = self._statm = self._diskstats = self._net_dev = -1


def _close_all(fds: list[int]) -> None:
    while fds:
        try:
            os.close(fds.pop())
        except OSError:
            pass


def _reopen_after_fork() -> None:
    for reader in list(_OPEN_READERS):
        try:
            reader._reopen_own()
        except OSError:
            reader.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reopen_after_fork)


class PsutilReader(_CounterReader):
    """The portable reader: psutil for the machine, ``time.process_time()`` for this process.

    CPU percent uses psutil.cpu_times() with its own baseline, since psutil.cpu_percent()
    keeps one per calling thread (the first reading on the sampler's thread would be 0).
    """

    def __init__(self, io_every: int = 5) -> None:
        self._process = psutil.Process(os.getpid())
        super().__init__(io_every)

    def _own_process(self) -> psutil.Process:
        if self._process.pid != os.getpid():  # forked: the parent's Process would answer
            self._process = psutil.Process(os.getpid())
        return self._process

    def _cpu_times(self) -> CpuTimes:
        times = psutil.cpu_times()
        idle, iowait = times.idle, getattr(times, "iowait", 0.0)
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        return total - idle - iowait, idle, iowait

    def _memory_percent(self) -> float:
        return float(psutil.virtual_memory().percent)

    def _rss(self) -> int:
        return int(self._own_process().memory_info().rss)

    def _io(self) -> tuple[int, int, int, int]:
        disk = psutil.disk_io_counters(nowrap=False)
        net = psutil.net_io_counters(nowrap=False)
        read, written = (disk.read_bytes, disk.write_bytes) if disk else (0, 0)
        sent, received = (net.bytes_sent, net.bytes_recv) if net else (0, 0)
        return read, written, sent, received


def default_reader() -> Callable[[], dict[str, float]]:
    """ProcReader on Linux when /proc reads as expected, else PsutilReader."""
    if sys.platform.startswith("linux"):
        try:
            return ProcReader()
        except (OSError, ValueError):
            pass
    return PsutilReader()


# --- the sampler -------------------------------------------------------------------------------

_RATES = (
    ("disk_read_bytes", "disk_read_bytes_per_s"),
    ("disk_write_bytes", "disk_write_bytes_per_s"),
    ("net_sent_bytes", "net_sent_bytes_per_s"),
    ("net_recv_bytes", "net_recv_bytes_per_s"),
)
_COUNTERS = frozenset(counter for counter, _ in _RATES)
_NO_RATES: dict[str, Any] = {}


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

    ``start()`` and ``stop()`` are idempotent and never leave two threads running. Between
    ticks the thread blocks on a plain lock that ``stop()`` releases: that wait wakes at the
    next scheduled tick or at once on stop, and costs less per wake than threading.Event.
    ``on_tick`` is called after each sample (the monitor recomputes its differences and checks
    its alerts there: the one periodic wake-up of a started monitor).
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
        self._wake = threading.Lock()
        self.last_sample_at: float | None = None
        self.errors = 0

    @property
    def reader(self) -> Callable[[], dict[str, float]] | None:
        """The reader in use (None until the first start, tick or given one)."""
        return self._reader

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
                self._reader = default_reader()
            self._wake = wake = threading.Lock()
            wake.acquire()  # held until stop() releases it
            self._thread = threading.Thread(
                target=self._run, args=(wake,), name="live-monitor-sampler", daemon=True
            )
            self._thread.start()
            return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the thread; returns False when it was not running."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return False
            if self._wake.locked():
                self._wake.release()
            thread.join(timeout)
            self._thread = None
            self._previous = {}
            return True

    def _run(self, wake: threading.Lock) -> None:
        monotonic, interval, tick = self._monotonic, self.interval, self.tick
        began = monotonic()
        ticks = 0
        if wake.acquire(False):  # stopped before the first tick
            return
        while True:
            try:
                tick()
            except Exception:  # a broken reading must not kill monitoring
                self.errors += 1
            ticks, delay = next_tick(began, ticks + 1, interval, monotonic())
            if wake.acquire(True, min(delay, threading.TIMEOUT_MAX)):
                return

    def tick(self) -> dict[str, Any]:
        """Take one sample now: read, turn counters into per-second rates, record, notify."""
        reader = self._reader
        if reader is None:
            reader = self._reader = default_reader()
        raw = reader()
        now = self._clock()
        sample: dict[str, Any] = {
            "timestamp": now,
            "cpu_percent": round(raw["cpu_percent"] * 100) / 100,  # see _ROUNDING
            "memory_percent": round(raw["memory_percent"] * 100) / 100,
            "process_cpu_percent": round(raw.get("process_cpu_percent", 0.0) * 100) / 100,
            "process_rss_bytes": int(raw.get("process_rss_bytes", 0)),
        }
        if raw.keys().isdisjoint(_COUNTERS):  # counters not read this time: the last rates stand
            last = self.history[-1] if self.history else _NO_RATES
            for _, rate in _RATES:
                sample[rate] = last.get(rate, 0.0)
            self._record(sample)
            return sample
        previous = self._previous
        for counter, rate in _RATES:
            value = raw.get(counter)
            if value is None:  # a reader that read some counters only: the last rate stands
                sample[rate] = self.history[-1].get(rate, 0.0) if self.history else 0.0
                continue
            before = previous.get(counter)
            if before is None or now <= before[0]:
                sample[rate] = 0.0
            else:
                sample[rate] = round(max(value - before[1], 0.0) / (now - before[0]) * 10) / 10
            previous[counter] = (now, value)
        self._record(sample)
        return sample

    def _record(self, sample: dict[str, Any]) -> None:
        self.history.append(sample)
        self.last_sample_at = sample["timestamp"]
        if self._on_tick is not None:
            self._on_tick(sample)

    def peek(self) -> dict[str, Any] | None:
        """One reading now, not recorded (rates 0): the figures before the first tick."""
        try:
            if self._reader is None:  # kept, so that the first tick has a baseline
                self._reader = default_reader()
            raw = self._reader()
        except Exception:  # noqa: BLE001 - a reading is a courtesy here
            return None
        sample: dict[str, Any] = {"timestamp": self._clock(), **{rate: 0.0 for _, rate in _RATES}}
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
