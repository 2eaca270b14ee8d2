"""Rows measured in fresh subprocesses: the sampler's CPU and the store's memory.

A fresh process keeps the figures free of what the benchmark itself allocated or ran.
``python benchmarks/bench_system.py probe sampler|monitor|idle SECONDS`` and
``... probe memory|rss EVENTS`` print one JSON object; the rows start them.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import PYTHON, Context, Row, Target  # noqa: E402

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
    return json.loads(out)  # type: ignore[no-any-return]


def sampler_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Process CPU of SystemSampler at 1 Hz with the real psutil reader, over N seconds."""
    seconds = ctx.pick(5, 30)
    ctx.log(f"sampler: measuring process CPU over {seconds} s (sampler, whole idle monitor, bare process)")
    procs = {kind: _probe(kind, str(seconds)) for kind in ("sampler", "monitor", "idle")}
    res = {kind: _result(proc, seconds + 120) for kind, proc in procs.items()}
    share = {k: v["cpu_s"] / v["wall_s"] * 100 for k, v in res.items()}
    if res["sampler"]["ticks"] < seconds - 2:
        raise RuntimeError(f"the sampler ticked {res['sampler']['ticks']} times in {seconds} s")
    per_tick = res["sampler"]["cpu_s"] / max(res["sampler"]["ticks"], 1)
    note = (
        f"whole LiveExecutionMonitor started, idle (sampler + differences each tick): "
        f"{share['monitor']:.3f}%; a bare sleeping process: {share['idle']:.3f}%"
    )
    return [
        Row(
            "sampler",
            f"SystemSampler CPU at 1 Hz, real psutil reader, {seconds} s in a subprocess (after its first tick)",
            f"{res['sampler']['cpu_s'] * 1000:.1f} ms CPU over {res['sampler']['wall_s']:.1f} s "
            f"({per_tick * 1000:.2f} ms per tick)",
            "one core",
            share["sampler"],
            Target("<=", 0.1, "%"),
            unit="%",
            note=note,
        )
    ]


def memory_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Bytes per stored ExecutionEvent (tracemalloc) and peak RSS at 10k and 100k events."""
    n = ctx.pick(20_000, 100_000)
    ctx.log(f"memory: storing {n:,} events under tracemalloc, and RSS at 10k/100k")
    mem = _probe("memory", str(n))
    rss = {size: _result(_probe("rss", str(size)), 600) for size in (10_000, 100_000)}
    used = _result(mem, 600)
    rows = []
    if "memory" in wanted:
        rows.append(
            Row(
                "memory",
                f"bytes per stored event ({n:,} realistic events ingested into the monitor)",
                f"{used['store_bytes'] / n:,.0f} B/event in the monitor",
                f"the decoded ExecutionEvents alone {used['events_bytes'] / n:,.0f} B/event",
                used["store_bytes"] / n,
                Target("<=", 500, " B"),
                unit=" B",
            )
        )
    if "rss" in wanted:
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


# --- the probes, run in a fresh process -------------------------------------------------------


def _probe_cpu(kind: str, seconds: float) -> dict[str, Any]:
    from monitor_core import LiveExecutionMonitor
    from system_sampler import SystemSampler

    monitor = LiveExecutionMonitor() if kind == "monitor" else None
    sampler = monitor.sampler if monitor else SystemSampler(interval=1.0) if kind == "sampler" else None
    gc.collect()
    first = 0
    if monitor:
        monitor.start()
    elif sampler:
        sampler.start()
    if sampler:  # steady state: the first tick (psutil's priming, lazy imports) is not counted
        deadline = time.monotonic() + 10
        while not sampler.history and time.monotonic() < deadline:
            time.sleep(0.01)
        first = len(sampler.history)
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    ticks = len(sampler.history) - first if sampler else 0
    if monitor:
        monitor.stop()
    elif sampler:
        sampler.stop()
    return {"cpu_s": cpu, "wall_s": wall, "ticks": ticks}


def _batches(n: int) -> Any:
    from benchmarks.common import make_events

    for start in range(0, n, 1000):
        yield json.dumps(make_events(min(1000, n - start), seed=start)).encode()


def _probe_memory(n: int) -> dict[str, Any]:
    import tracemalloc

    from execution_events import decode_batch
    from monitor_core import LiveExecutionMonitor

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
    return {"events_bytes": events_bytes, "store_bytes": store_bytes}


def _probe_rss(n: int) -> dict[str, Any]:
    import psutil

    from monitor_core import LiveExecutionMonitor

    monitor = LiveExecutionMonitor({"max_events": n})
    gc.collect()
    base = psutil.Process().memory_info().rss
    for body in _batches(n):
        monitor.ingest(body, max_events=1000)
    return {"base_rss": base, "peak_rss": _vm_hwm(), "rss": psutil.Process().memory_info().rss}


def _vm_hwm() -> int:
    """This process's peak RSS: VmHWM, since ru_maxrss keeps the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    """Run one probe and print its JSON result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "probe":
        print(
            "usage: bench_system.py probe sampler|monitor|idle SECONDS | memory|rss EVENTS", file=sys.stderr
        )
        return 2
    kind, amount = args[1], float(args[2])
    if kind in ("sampler", "monitor", "idle"):
        result = _probe_cpu(kind, amount)
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
