"""Rows measured in fresh subprocesses: an idle monitor's CPU and the store's memory.

A fresh process keeps the figures free of what the benchmark itself allocated or ran.
``python benchmarks/bench_system.py probe sampler|psutil|wake|wake-lock|monitor|idle|cold SECONDS [PHASE]``
and ``... probe memory|rss EVENTS`` print one JSON object; the rows start them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    PYTHON,
    STATUS,
    Context,
    Row,
    Target,
    fmt_time,
    median,
    median_ratio,
    vm_hwm,
)

MIB = 1024 * 1024


def _probe(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, str(Path(__file__).resolve()), "probe", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed: {err.strip()[-400:]}")
    result: dict[str, Any] = json.loads(out)
    return result


# The in-process CPU probes (``probe KIND``), each waking at its own phase of the second so that
# no wake-up warms the caches for another; "idle" never wakes. Per wake-up, on this microVM, the
# cost is set mostly by how much code and data a wake-up touches after an idle second: "cold"
# measures what re-reading one page of memory costs after a second's idle, against after a
# millisecond's. The idle rows run "sampler" (SystemSampler alone) and "cold" beside the CLIs.
CPU_PROBES = ("sampler", "psutil", "wake", "wake-lock", "monitor", "idle", "cold")
COLD_PAGES = 1000
IDLE_ROWS = ("idle", "idle-no-grpc")
# A bare Python process whose one thread wakes at 1 Hz (Event.wait): the floor of the idle rows.
BARE_WAKER = (
    "import threading\n"
    "stop = threading.Event()\n"
    "def run():\n"
    "    while not stop.wait(1.0):\n"
    "        pass\n"
    "threading.Thread(target=run).start()\n"
)
IDLE_SETTLE_S = 3.0  # after /health answers: the first ticks (lazy imports) are not counted


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _idle_variants() -> dict[str, tuple[str, list[str]]]:
    """Row name -> (what it runs, the CLI's flags). OTLP/gRPC on a free port rather than 4317,
    which another program may hold (the monitor then serves on with gRPC off)."""
    return {
        "idle": (
            "OTLP/gRPC on (the default)",
            ["--autostart", "--otlp-grpc-port", str(_free_port())],
        ),
        "idle-no-grpc": ("OTLP/gRPC off (--otlp-grpc-port 0)", ["--autostart", "--otlp-grpc-port", "0"]),
    }


def process_cpu(pid: int) -> tuple[float, int]:
    """(CPU seconds, timeslices) of every thread of ``pid`` so far, from /proc/PID/task/*/schedstat:
    nanoseconds, where psutil's CPU times count 10 ms clock ticks (0.03% of a core over 30 s is
    9 ms). A timeslice is one wake-up of a thread that then blocks again."""
    run = slices = 0
    task = Path(f"/proc/{pid}/task")
    for tid in task.iterdir():
        try:
            fields = (tid / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
        run += int(fields[0])
        slices += int(fields[2])
    return run / 1e9, slices


def _idle_status(server: Any, grpc_on: bool) -> None:
    """Check the CLI is what its row says: monitoring, and OTLP/gRPC listening or not."""
    from benchmarks.common import BenchError

    status = server.get(STATUS)
    listening = bool(status.get("otlp_grpc", {}).get("listening"))
    if status.get("monitoring") is not True or listening != grpc_on:
        raise BenchError(
            f"{server.name}: monitoring {status.get('monitoring')}, OTLP/gRPC listening {listening}"
        )


def idle_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """A started monitor with no traffic: the real CLI (``--autostart``, no request) in its own
    process, OTLP/gRPC on (the default) and off, beside a bare Python process whose thread wakes
    at 1 Hz. All three are measured over the same windows (side by side, so the shared machine's
    drift cancels in each window's ratio); the ratio is the median over windows."""
    from benchmarks.common import monitor_argv, start_server, stop_process

    rounds, window = ctx.pick(3, 5), ctx.pick(5.0, 20.0)
    variants = _idle_variants()
    ctx.log(
        f"idle: the CLI started with no traffic (OTLP/gRPC on and off) beside a bare 1 Hz process, "
        f"{rounds} windows of {window:.0f} s; SystemSampler alone and a cold-page probe beside them"
    )
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(start_server(name, monitor_argv(*flags)))
            for name, (_, flags) in variants.items()
        }
        bare = subprocess.Popen([PYTHON, "-c", BARE_WAKER], cwd=ROOT)
        stack.callback(stop_process, bare, signal.SIGKILL)
        for name, server in servers.items():
            _idle_status(server, name == "idle")
        time.sleep(IDLE_SETTLE_S)
        probe_seconds = rounds * window
        probes = {
            kind: _probe(kind, f"{probe_seconds:.1f}", phase)
            for kind, phase in (("sampler", "0.25"), ("cold", "0.75"))
        }
        pids = {"bare": bare.pid, **{name: server.proc.pid for name, server in servers.items()}}
        windows = _idle_windows(pids, rounds, window)
        for name, server in servers.items():
            _idle_status(server, name == "idle")  # still as described: nothing failed meanwhile
        probed = {kind: _result(proc, probe_seconds + 120) for kind, proc in probes.items()}
    return [_idle_row(name, what, windows, probed) for name, (what, _) in variants.items() if name in wanted]


def _idle_windows(pids: dict[str, int], rounds: int, window: float) -> list[dict[str, tuple[float, float]]]:
    """Per window: process name -> (share of a core in %, wake-ups per second)."""
    out = []
    for _ in range(rounds):
        before = {name: process_cpu(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(window)
        after = {name: process_cpu(pid) for name, pid in pids.items()}
        wall = time.monotonic() - started
        out.append(
            {
                name: (
                    (after[name][0] - before[name][0]) / wall * 100,
                    (after[name][1] - before[name][1]) / wall,
                )
                for name in pids
            }
        )
    return out


def _idle_row(
    name: str, what: str, windows: list[dict[str, tuple[float, float]]], probed: dict[str, dict[str, Any]]
) -> Row:
    """One idle row: the CLI's share of a core against the bare process's, with the other
    variant, SystemSampler alone and the cold-page figures in the note."""
    share = {key: median([w[key][0] for w in windows]) for key in windows[0]}
    wakes = {key: median([w[key][1] for w in windows]) for key in windows[0]}
    ratio = {
        key: median_ratio([w[key][0] for w in windows], [w["bare"][0] for w in windows]) for key in IDLE_ROWS
    }
    other = "idle-no-grpc" if name == "idle" else "idle"
    target = Target("<=", 2.5)
    grpc_share, grpc_wakes = share["idle"] - share["idle-no-grpc"], wakes["idle"] - wakes["idle-no-grpc"]
    note = (
        f"{what}; the CLI with {_idle_variants_label(other)}: {share[other]:.4f}%, {wakes[other]:.1f} wake-ups/s = "
        f"{ratio[other]:.2f}x. OTLP/gRPC idle costs {grpc_share:+.4f}% and {grpc_wakes:+.1f} wake-ups/s: "
        "the threads of grpcio's C core (three event-engine workers, a timer and a lifeguard) wake "
        "one to two times a second each, which no server option changes; the Python side is grpc.aio, "
        "whose threads block until a call comes (grpcio's threaded server polled every 200 ms, five "
        "wake-ups a second more). Turn it off with --otlp-grpc-port 0"
    )
    if not target.met(ratio[name]) and name == "idle" and target.met(ratio["idle-no-grpc"]):
        note += f"; without OTLP/gRPC the idle monitor meets the target ({ratio['idle-no-grpc']:.2f}x)"
    sampler = probed["sampler"]
    alone = sampler["cpu_s"] / sampler["wall_s"] * 100 / share["bare"] if share["bare"] > 0 else 0.0
    if not target.met(ratio["idle-no-grpc"]):
        note += (
            f". Without OTLP/gRPC a started monitor wakes once a second, for its sample; SystemSampler "
            f"alone, in a process of its own, costs {alone:.2f}x the bare process: after an idle second, "
            "reading /proc (stat, meminfo, statm; disks and network every 5th tick) and making the sample "
            "costs more than the target leaves, so meeting it takes a cheaper reading or fewer samples "
            "(--interval 2 halves the cost)"
        )
    note += ". " + _sampler_note(probed)
    return Row(
        name,
        f"a started monitor with no traffic, CPU: the real CLI (--autostart), {what}, a separate "
        f"process, median of {len(windows)} windows",
        f"{share[name]:.4f}% of a core, {wakes[name]:.1f} wake-ups/s",
        f"a bare Python process whose thread wakes at 1 Hz: {share['bare']:.4f}%, {wakes['bare']:.1f} wake-ups/s",
        ratio[name],
        target,
        note=note,
    )


def _idle_variants_label(name: str) -> str:
    return "OTLP/gRPC on" if name == "idle" else "OTLP/gRPC off"


def _sampler_note(probed: dict[str, dict[str, Any]]) -> str:
    """SystemSampler alone (an in-process probe) and what memory left idle costs to touch again."""
    sampler, cold = probed["sampler"], probed["cold"]
    per_tick = sampler["cpu_s"] / max(sampler["ticks"], 1)
    warm_tick = sampler["warm_tick_s"]
    idle_1s, idle_1ms = cold["idle_1s_page_s"], cold["idle_1ms_page_s"]
    times = f", {idle_1s / idle_1ms:.0f}x" if idle_1ms > 0 else ", against"  # no ratio to a zero
    return (
        f"SystemSampler alone ({sampler['reader']}, in its own process): {fmt_time(per_tick)} per tick, "
        f"{sampler['cpu_s'] / sampler['wall_s'] * 100:.4f}% of a core; called back to back (memory warm) "
        f"a tick costs {fmt_time(warm_tick)}, {warm_tick * 100:.4f}% at 1 Hz. Memory left idle is what "
        f"costs here: re-reading a page last touched a second before took {idle_1s * 1e9:,.0f} ns of "
        f"CPU{times} one touched a millisecond before ({idle_1ms * 1e9:,.0f} ns; median of "
        f"{cold['rounds']} rounds of {COLD_PAGES:,} pages), so a wake-up pays for every page of code "
        "and data it touches"
    )


def memory_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Bytes per stored ExecutionEvent (tracemalloc) and peak RSS at 10k and 100k events."""
    n = ctx.pick(20_000, 100_000)
    ctx.log(f"memory: storing {n:,} events under tracemalloc, and RSS at 10k/100k")
    mem = _probe("memory", str(n)) if "memory" in wanted else None
    rss = (
        {size: _result(_probe("rss", str(size)), 600) for size in (10_000, 100_000)}
        if "rss" in wanted
        else {}
    )
    rows = []
    if mem is not None:
        used = _result(mem, 600)
        rows.append(
            Row(
                "memory",
                f"bytes per stored event ({n:,} realistic events ingested into the monitor)",
                f"{used['store_bytes'] / n:,.0f} B/event in the monitor",
                f"the decoded ExecutionEvents alone {used['events_bytes'] / n:,.0f} B/event",
                used["store_bytes"] / n,
                Target("<=", 500, " B"),
                unit=" B",
                note=_memory_note(used, n),
            )
        )
    if rss:
        base = rss[10_000]["base_rss"]
        rows.append(
            Row(
                "rss",
                "peak RSS of a monitor process holding N events",
                f"10k: {rss[10_000]['peak_rss'] / MIB:.1f} MiB, 100k: {rss[100_000]['peak_rss'] / MIB:.1f} MiB",
                f"after imports {base / MIB:.1f} MiB",
                None,
                None,
                note=(
                    f"growth 10k->100k: {(rss[100_000]['peak_rss'] - rss[10_000]['peak_rss']) / 90_000:,.0f} "
                    "B/event"
                ),
            )
        )
    return rows


def _memory_note(used: dict[str, Any], n: int) -> str:
    """Where a stored event's bytes go (strings of names and repeated texts are shared, so they
    are nearly free), and the rest the monitor holds besides the events."""
    parts: dict[str, int] = used["parts"]
    rest = used["store_bytes"] - sum(parts.values())
    listed = ", ".join(f"{name} {size / n:,.0f}" for name, size in parts.items())
    details = parts["details dict"] / n
    return (
        f"per stored event: {listed} B; the rest (the join's waiting halves, caches, figures) "
        f"{rest / n:,.0f} B. The details dict alone is {details:,.0f} B for its two or three keys: "
        "a more compact form (e.g. the details kept as their encoded JSON) would be what it takes, "
        "should this row miss"
    )


# --- the probes, run in a fresh process -------------------------------------------------------


def _probe_cpu(kind: str, seconds: float, phase: float) -> dict[str, Any]:
    """CPU of this process over ``seconds`` while ``kind`` wakes at 1 Hz, from ``phase`` of a second."""
    sampler: Any = None
    monitor: Any = None
    wakes = [0]
    if kind == "monitor":
        from live_monitor.core.monitor import LiveExecutionMonitor

        monitor = LiveExecutionMonitor()
        sampler = monitor.sampler
    elif kind in ("sampler", "psutil"):
        from live_monitor.core.sampler import PsutilReader, SystemSampler

        sampler = SystemSampler(PsutilReader() if kind == "psutil" else None, interval=1.0)
    waker = _bare_waker(kind, wakes) if kind.startswith("wake") else None
    time.sleep((phase - time.time()) % 1.0)  # wake at this phase of every second
    gc.collect()
    if monitor:
        monitor.start()
    elif sampler:
        sampler.start()
    elif waker:
        waker[0].start()
    if sampler:  # steady state: the first tick (psutil's priming, lazy imports) is not counted
        deadline = time.monotonic() + 10
        while not sampler.history and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(0.5)
    first = len(sampler.history) if sampler else wakes[0]
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    ticks = (len(sampler.history) if sampler else wakes[0]) - first
    reader = type(sampler.reader).__name__ if sampler else "-"
    if monitor:
        monitor.stop()
    elif sampler:
        sampler.stop()
    elif waker:
        waker[1]()
    warm_tick = _warm_tick_seconds(sampler) if kind == "sampler" else None
    return {"cpu_s": cpu, "wall_s": wall, "ticks": ticks, "reader": reader, "warm_tick_s": warm_tick}


def _warm_tick_seconds(sampler: Any, count: int = 200) -> float:
    """CPU of one tick() when ticks run back to back, so the code and data they touch stay warm."""
    sampler.tick()
    started = time.thread_time()
    for _ in range(count):
        sampler.tick()
    return (time.thread_time() - started) / count


def _probe_cold(seconds: float, phase: float) -> dict[str, Any]:
    """CPU to re-read one page of a resident buffer after a second's idle and after a millisecond's.

    A page is read by copying its first byte (a strided slice, one C loop), so the figure is the
    memory's, not Python's. A wake-up at 1 Hz finds its code and data in the first state.
    """
    buffer = bytearray(COLD_PAGES * 4096)
    buffer[::4096] = b"\1" * COLD_PAGES  # every page resident before the first round

    def read_all() -> float:
        started = time.thread_time()
        bytes(buffer[::4096])
        return (time.thread_time() - started) / COLD_PAGES

    cold, warm = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep((phase - time.time()) % 1.0 or 1.0)
        cold.append(read_all())
        time.sleep(0.001)
        warm.append(read_all())
    return {
        "idle_1s_page_s": median(cold),
        "idle_1ms_page_s": median(warm),
        "rounds": len(cold),
    }


def _bare_waker(kind: str, wakes: list[int]) -> tuple[Any, Callable[[], None]]:
    """A thread (not started) that only wakes once a second, and what stops it.

    Kind "wake" waits on an Event, the usual idiom; "wake-lock" blocks on Lock.acquire(timeout)
    as SystemSampler does, which runs less Python per wake-up.
    """
    import threading

    if kind == "wake":
        event = threading.Event()

        def on_event() -> None:
            while not event.wait(1.0):
                wakes[0] += 1

        return threading.Thread(target=on_event, daemon=True), event.set
    lock = threading.Lock()
    lock.acquire()

    def on_lock() -> None:
        while not lock.acquire(True, 1.0):
            wakes[0] += 1

    return threading.Thread(target=on_lock, daemon=True), lock.release


def _batches(n: int) -> Any:
    from benchmarks.common import make_events

    for start in range(0, n, 1000):
        yield json.dumps(make_events(min(1000, n - start), seed=start)).encode()


def _probe_memory(n: int) -> dict[str, Any]:
    import tracemalloc

    from live_monitor.core.monitor import LiveExecutionMonitor
    from live_monitor.model.events import decode_batch

    monitor = LiveExecutionMonitor({"max_events": n})
    kept: list[Any] = []
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for body in _batches(n):
        kept.extend(decode_batch(body, 1000).events)
    gc.collect()
    events_bytes = tracemalloc.get_traced_memory()[0] - base
    del kept
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    for body in _batches(n):
        monitor.ingest(body, max_events=1000)
    gc.collect()
    store_bytes = tracemalloc.get_traced_memory()[0] - base
    stored = sum(monitor.store.counts()["stored"].values())
    if stored != n:
        raise RuntimeError(f"stored {stored} events of {n}")
    events = [e for side in ("backend", "frontend") for e in monitor.store.events(side)]
    return {"events_bytes": events_bytes, "store_bytes": store_bytes, "parts": _event_parts(events)}


def _event_parts(events: list[Any]) -> dict[str, int]:
    """Bytes the stored events hold, by part (``sys.getsizeof``, each shared object counted
    once): where a stored event's memory goes, for the memory row's note."""
    seen: set[int] = set()
    parts = dict.fromkeys(("struct", "timestamp", "details dict", "details values", "duration", "ids"), 0)

    def size(part: str, value: Any) -> None:
        if value is not None and id(value) not in seen:
            seen.add(id(value))
            parts[part] += sys.getsizeof(value)

    for event in events:
        size("struct", event)
        size("timestamp", event.timestamp)
        size("duration", event.duration_ms)
        for value in (event.trace_id, event.span_id, event.parent_span_id):
            size("ids", value)
        size("details dict", event.details)
        for value in event.details.values():
            size("details values", value)
    return parts


def _probe_rss(n: int) -> dict[str, Any]:
    import psutil

    from live_monitor.core.monitor import LiveExecutionMonitor

    monitor = LiveExecutionMonitor({"max_events": n})
    gc.collect()
    base = psutil.Process().memory_info().rss
    for body in _batches(n):
        monitor.ingest(body, max_events=1000)
    peak = vm_hwm()
    if not peak:
        raise RuntimeError("no VmHWM in /proc/self/status")
    return {"base_rss": base, "peak_rss": peak, "rss": psutil.Process().memory_info().rss}


def main(argv: list[str] | None = None) -> int:
    """Run one probe and print its JSON result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] != "probe":
        print(
            f"usage: bench_system.py probe {'|'.join(CPU_PROBES)} SECONDS [PHASE] | memory|rss EVENTS",
            file=sys.stderr,
        )
        return 2
    try:
        kind, amount, phase = args[1], float(args[2]), float(args[3]) if len(args) == 4 else 0.0
    except ValueError:
        print(f"not a number: {' '.join(args[2:])}", file=sys.stderr)
        return 2
    if kind == "cold":
        result = _probe_cold(amount, phase)
    elif kind in CPU_PROBES:
        result = _probe_cpu(kind, amount, phase)
    elif kind == "memory":
        result = _probe_memory(int(amount))
    elif kind == "rss":
        result = _probe_rss(int(amount))
    else:
        print(f"unknown probe {kind!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
