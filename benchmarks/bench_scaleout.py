"""Redis scale-out: ingest events/s of the real monitor CLI with 1, 2 and 4 processes sharing
one Redis store, beside the in-memory single process, a check that no event is lost, and
redis-server's own CPU per batch at several batch sizes.

A real ``redis-server`` (Debian's) runs on a free loopback port with persistence off. All
four monitors run at once; each round loads them one after the other in a rotating order
and Redis is flushed before every Redis run, so each starts from an empty store. After each
run the store's ``accepted`` count must equal the events of the 200 answers the client
counted (wrk counts them in a Lua ``response()`` hook).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import (
    EVENTS,
    STATUS,
    BenchError,
    Context,
    Row,
    Server,
    Target,
    batch_bodies,
    batch_body,
    cpu_seconds,
    fmt_rate,
    median,
    median_ratio,
    monitor_argv,
    rotated,
    start_server,
    stop_process,
    temp_dir,
)
from benchmarks.load import pick_client, run_load, run_wrk
from live_monitor.core.settings import defaults

ROWS = ("redis-scaleout", "redis-lossless", "redis-scaleout-2", "redis-server-cpu")
COST_SIZES = (10, 100, 500)  # events per batch for redis-server's CPU per batch
CONNECTIONS = 8
BATCH = 100
WORKERS = (1, 2, 4)
BODIES = 16  # distinct batches posted in turn, as the ingest rows do

COUNTING_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) sent = 0; ok = 0; other = 0 end
function request() sent = sent + 1; return rotate() end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end
done = function(summary, latency, requests)
  local s, o, x = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent"); o = o + t:get("ok"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"sent": %d, "ok": %d, "other": %d, "socket_errors": %d, "duration_us": %d}\\n',
    s, o, x, e.connect + e.read + e.write + e.timeout, summary.duration))
end
"""


@dataclass
class Counted:
    """One load run as the client counted it: requests sent, 200 answers, other answers."""

    sent: int
    ok: int
    other: int
    socket_errors: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events of 200 answers per second."""
        return self.ok * BATCH / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Tally:
    """What one configuration's runs added up to, for the lost-events check."""

    ok: int = 0
    failed: int = 0
    stored_of_ok: int = 0
    problems: list[str] = field(default_factory=list)


def run_counted(url: str, client: str, seconds: float, bodies: list[bytes]) -> Counted:
    """POST ``bodies`` in turn for ``seconds`` on CONNECTIONS keep-alive connections, trace ids
    renewed per request as real traffic's are, counting answers."""
    if client != "wrk":
        got = run_load(url, client, seconds, CONNECTIONS, "POST", bodies, fresh_traces=True)
        # The Python client finishes every request it starts: sent = good + failed.
        return Counted(got.ok + got.errors, got.ok, got.errors, 0, got.seconds)
    d = run_wrk(url, seconds, CONNECTIONS, COUNTING_SCRIPT, "POST", bodies, fresh_traces=True)
    return Counted(d["sent"], d["ok"], d["other"], d["socket_errors"], d["duration_us"] / 1e6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[tuple[str, psutil.Process]]:
    """A throwaway redis-server on a free loopback port, persistence off; yields its URL."""
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise BenchError("redis-server is not installed (apt-get install -y redis-server)")
    for _ in range(5):
        port = _free_port()
        log = tmp / f"redis-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                + ["--dir", str(tmp), "--protected-mode", "yes"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        else:
            # Exited (port taken by a racer: try another) or never answered.
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            continue
        try:
            yield url, psutil.Process(proc.pid)
        finally:
            client.close()
            stop_process(proc, signal.SIGTERM)
        return
    raise BenchError(f"redis-server did not start: {log.read_text(errors='replace')[-400:]}")


def _processes(server: Server, workers: int, deadline: float) -> list[psutil.Process]:
    """The serving processes, once each has started its waitress threads."""
    root = psutil.Process(server.proc.pid)
    threads = int(defaults()["threads"])
    while time.monotonic() < deadline:
        procs = [root] if workers == 1 else root.children(recursive=True)
        try:
            if len(procs) == workers and all(p.num_threads() > threads for p in procs):
                return [root, *procs] if workers > 1 else [root]
        except psutil.Error:
            pass
        time.sleep(0.1)
    raise BenchError(f"{server.name}: {workers} worker processes did not all start")


def _busy() -> float:
    """CPU seconds the whole machine spent busy so far (every core, every process)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _settled_accepted(server: Server, at_least: int) -> int:
    """The store's accepted count once requests the client abandoned at its stop are done."""
    deadline = time.monotonic() + 5
    last = -1
    while True:
        now = int(server.get(STATUS)["accepted"])
        if (now == last and now >= at_least) or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.1)


@dataclass
class Config:
    """One compared setup: the server, its processes and where its counts start."""

    name: str
    server: Server
    procs: list[psutil.Process]
    redis: bool
    tally: Tally = field(default_factory=Tally)
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    worker_cpu: list[list[float]] = field(default_factory=list)


def scaleout_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Events/s with 1, 2 and 4 monitor processes on Redis and in memory; lost events."""
    import redis

    client = pick_client(ctx.client)
    seconds = ctx.pick(1.0, 3.0)
    rounds = ctx.pick(2, 5)
    batches = batch_bodies(BATCH, BODIES)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(temp_dir("bench-redis-"))
        url, redis_proc = stack.enter_context(redis_server(tmp))
        store = redis.Redis.from_url(url, socket_timeout=10)
        stack.callback(store.close)
        configs: dict[str, Config] = {}
        argvs = {"memory": monitor_argv("--no-self-monitor")}
        for n in WORKERS:
            argvs[f"redis-{n}"] = monitor_argv("--no-self-monitor", "--store", url, "--workers", str(n))
        for name, argv in argvs.items():
            ctx.log(f"redis: starting {name}")
            server = stack.enter_context(start_server(name, argv))
            workers = 1 if name == "memory" else int(name.split("-")[1])
            procs = _processes(server, workers, time.monotonic() + 60)
            configs[name] = Config(name, server, procs, name != "memory")
        load_cpu: list[float] = []
        redis_cpu: dict[str, list[float]] = {name: [] for name in configs}
        busy: dict[str, list[float]] = {name: [] for name in configs}

        def run(cfg: Config, secs: float, record: bool) -> None:
            if cfg.redis:
                store.flushall()
            before = _settled_accepted(cfg.server, 0)
            cpu0 = [cpu_seconds(p) for p in cfg.procs]
            rcpu0, lcpu0, busy0 = cpu_seconds(redis_proc), _children_cpu(), _busy()
            got = run_counted(cfg.server.url + EVENTS, client, secs, batches)
            cpu1 = [cpu_seconds(p) for p in cfg.procs]
            rcpu1, lcpu1, busy1 = cpu_seconds(redis_proc), _children_cpu(), _busy()
            accepted = _settled_accepted(cfg.server, before + got.ok * BATCH) - before
            t = cfg.tally
            t.ok += got.ok
            t.failed += got.other + got.socket_errors
            t.stored_of_ok += min(accepted, got.ok * BATCH)
            if got.other or got.socket_errors:
                t.problems.append(f"{got.other} non-2xx answers, {got.socket_errors} socket errors")
            if accepted < got.ok * BATCH:
                t.problems.append(f"stored {accepted:,} events of {got.ok * BATCH:,} answered 200")
            elif accepted > got.sent * BATCH:
                t.problems.append(f"stored {accepted:,} events, more than the {got.sent * BATCH:,} sent")
            if got.ok == 0:
                raise RuntimeError(
                    f"{cfg.name}: no successful request ({got.other} other answers, "
                    f"{got.socket_errors} socket errors)"
                )
            if not record:
                return
            worker_cpu = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
            cfg.rates.append(got.rate)
            cfg.cpu.append(sum(worker_cpu) / got.seconds)
            cfg.worker_cpu.append(worker_cpu)
            redis_cpu[cfg.name].append((rcpu1 - rcpu0) / got.seconds)
            load_cpu.append((lcpu1 - lcpu0) / got.seconds)
            busy[cfg.name].append((busy1 - busy0) / got.seconds)
            ctx.log(
                f"redis: {cfg.name}: {fmt_rate(got.rate)} events, server CPU {sum(worker_cpu) / got.seconds:.2f}"
                f" cores, redis-server {redis_cpu[cfg.name][-1]:.2f}, load generator {load_cpu[-1]:.2f},"
                f" whole machine {busy[cfg.name][-1]:.2f}"
            )

        for cfg in configs.values():
            ctx.log(f"redis: warming up {cfg.name}")
            run(cfg, ctx.pick(1.0, 2.0), record=False)
        for r in range(rounds):
            ctx.log(f"redis: round {r + 1}/{rounds}")
            for name in rotated(list(configs), r):
                run(configs[name], seconds, record=True)
        rows = _rows(wanted, configs, client, load_cpu, redis_cpu, busy)
        if "redis-server-cpu" in wanted:
            costs = [_redis_cost(ctx, configs["redis-1"].server, store, n) for n in COST_SIZES]
            rows.append(_cost_row(costs))
        return rows


@dataclass
class Cost:
    """redis-server's work for one batch size: CPU seconds and commands per batch."""

    size: int
    cpu_s: float
    commands: float

    @property
    def per_event_us(self) -> float:
        return self.cpu_s / self.size * 1e6


def _redis_cost(ctx: Context, server: Server, store: Any, size: int) -> Cost:
    """redis-server's CPU (INFO cpu: getrusage, finer than psutil's clock ticks) and commands
    (INFO commandstats) per ``size``-event batch, posted one at a time to one monitor process,
    each body with fresh trace ids (one seed each), as real traffic has."""
    batches = ctx.pick(1, 3) * max(20, 6000 // size)
    bodies = [batch_body(size, seed) for seed in range(1, batches + 11)]
    store.flushall()
    for body in bodies[:10]:  # the monitor's first batches load its scripts
        server.post(EVENTS, body)
    store.config_resetstat()
    cpu0 = _redis_cpu(store)
    for body in bodies[10:]:
        server.post(EVENTS, body)
    cpu = (_redis_cpu(store) - cpu0) / batches
    stats = store.info("commandstats")
    calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))
    ctx.log(
        f"redis: {size}-event batches: redis-server {cpu * 1e6:,.0f} us CPU, {calls / batches:,.0f} commands each"
    )
    return Cost(size, cpu, calls / batches)


def _redis_cpu(store: Any) -> float:
    """CPU seconds redis-server has used (user + system), as it reports them."""
    info = store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _cost_row(costs: list[Cost]) -> Row:
    """redis-server's CPU per batch at each size; the ratio is the largest step of the CPU per
    event from one size to the next (falling with batch size: below 1 at every step)."""
    steps = [b.per_event_us / max(a.per_event_us, 1e-9) for a, b in itertools.pairwise(costs)]
    each = ", ".join(f"{c.size}: {c.cpu_s * 1e6:,.0f} us ({c.per_event_us:.1f} us/event)" for c in costs)
    commands = ", ".join(f"{c.size}: {c.commands:,.0f} ({c.commands / c.size:.2f}/event)" for c in costs)
    hundred = next((c for c in costs if c.size == BATCH), costs[0])
    return Row(
        "redis-server-cpu",
        "redis-server CPU per batch, one monitor process on --store redis://, batches posted one at "
        "a time with fresh trace ids",
        f"{hundred.cpu_s * 1e6:,.0f} us per {hundred.size}-event batch; by batch size {each}",
        "the same server's CPU per event at the next smaller batch size",
        max(steps),
        Target("<=", 0.9),
        note=f"commands per batch {commands}; per-event CPU step ratios "
        + " / ".join(f"{x:.2f}" for x in steps)
        + " (the ratio is the largest: every step must fall by at least 10%)",
    )


def _rows(
    wanted: set[str],
    configs: dict[str, Config],
    client: str,
    load_cpu: list[float],
    redis_cpu: dict[str, list[float]],
    busy: dict[str, list[float]],
) -> list[Row]:
    def rate(name: str) -> float:
        return median(configs[name].rates)

    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0))
    rows = []
    names = ("redis-1", "redis-2", "redis-4")

    def each(values: dict[str, list[float]]) -> str:
        return " / ".join(f"{median(values[n]):.2f}" for n in names)

    def busiest(name: str) -> str:
        shares = [max(w[1:]) / max(sum(w[1:]), 1e-9) for w in configs[name].worker_cpu]
        return f"{median(shares):.0%}"

    def ceiling(name: str, target: float) -> str:
        """What the machine's cores allow at the CPU per batch measured: the figures that say
        why a target is missed and what it would take."""
        batches = median(configs[name].rates) / BATCH
        monitor = median(configs[name].cpu) / max(batches, 1e-9) * 1e3
        server = median(redis_cpu[name]) / max(batches, 1e-9) * 1e3
        most = cores / max(monitor + server, 1e-9) * 1e3 * BATCH
        need = cores / (target * rate("memory") / BATCH) * 1e3
        return (
            f"{name} spent {monitor:.2f} ms of monitor CPU and {server:.2f} ms of redis-server CPU per "
            f"batch, so {cores} cores ingest at most {fmt_rate(most)} events = "
            f"{most / rate('memory'):.2f}x in-memory with nothing else running; {target}x needs at "
            f"most {need:.2f} ms of CPU per batch in all (or a core for redis-server of its own)"
        )

    spread = (
        f"os.cpu_count() = {cores} ({usable} usable); the load generator ({client}, "
        f"{median(load_cpu):.2f} of a core) and redis-server ({each(redis_cpu)} of a core at 1 / 2 / 4 "
        f"processes) share those cores with the monitor processes ({each({n: configs[n].cpu for n in names})} "
        f"cores); the whole machine was busy {each(busy)} of {cores}"
    )
    if "redis-scaleout" in wanted:
        r2, r4 = (median_ratio(configs[n].rates, configs["redis-1"].rates) for n in ("redis-2", "redis-4"))
        figure = (
            f"Redis: 1 process {fmt_rate(rate('redis-1'))}, 2 processes {fmt_rate(rate('redis-2'))} "
            f"({r2:.2f}x), 4 processes {fmt_rate(rate('redis-4'))} ({r4:.2f}x) events"
        )
        rows.append(
            Row(
                "redis-scaleout",
                f"ingest events/s, 100-event batches, real CLI --store redis:// (1 process) against the "
                f"in-memory single process, {CONNECTIONS} connections",
                figure,
                f"in-memory single process {fmt_rate(rate('memory'))} events",
                median_ratio(configs["redis-1"].rates, configs["memory"].rates),
                Target(">=", 0.5),
                note=f"{ceiling('redis-1', 0.5)}. {spread}",
            )
        )
    if "redis-scaleout-2" in wanted:
        rows.append(
            Row(
                "redis-scaleout-2",
                f"the same with --workers 2 on this {cores}-core machine",
                f"Redis, 2 processes {fmt_rate(rate('redis-2'))} events",
                f"in-memory single process {fmt_rate(rate('memory'))} events",
                median_ratio(configs["redis-2"].rates, configs["memory"].rates),
                Target(">=", 0.8),
                note=(
                    f"{ceiling('redis-2', 0.8)}. {spread}; the busiest process did "
                    f"{busiest('redis-2')} / {busiest('redis-4')} of the monitor CPU work at 2 / 4 "
                    f"processes (even: 50% / 25%), as the kernel hands the {CONNECTIONS} keep-alive "
                    "connections to whichever process accepts first"
                ),
            )
        )
    if "redis-lossless" in wanted:
        total = Tally()
        for cfg in configs.values():
            t = cfg.tally
            total.ok += t.ok
            total.failed += t.failed
            total.stored_of_ok += t.stored_of_ok
        worst = min(
            configs.values(),
            key=lambda c: c.tally.stored_of_ok / max((c.tally.ok + c.tally.failed) * BATCH, 1),
        )
        share = worst.tally.stored_of_ok / max((worst.tally.ok + worst.tally.failed) * BATCH, 1) * 100
        problems = [f"{c.name}: {p}" for c in configs.values() for p in c.tally.problems[:3]]
        counted = "counted / answered 200: " + ", ".join(
            f"{c.name} {c.tally.stored_of_ok:,}/{c.tally.ok * BATCH:,}" for c in configs.values()
        )
        rows.append(
            Row(
                "redis-lossless",
                "events of 200 answers found in the store's accepted count, every run of every "
                "configuration (Redis flushed before each run)",
                f"{total.stored_of_ok:,} of {total.ok * BATCH:,} events answered 200 were counted; "
                f"{total.failed:,} requests failed",
                "client's count of 200 answers x 100 (wrk response() hook)"
                if client == "wrk"
                else "client's count of 200 answers x 100",
                share,
                Target(">=", 100, "%"),
                unit="%",
                note="; ".join(problems[:6]) if problems else counted,
            )
        )
    return rows
