"""Rows measured through real servers on loopback: ingest throughput and latency under load.

Every compared server runs at once as its own process; each round loads them one after
the other in a rotating order, and a ratio is the median of the rounds' ratios (each
round's pair ran seconds apart, so slow drift of the shared machine cancels out).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from benchmarks.common import (
    Context,
    Row,
    Server,
    Target,
    batch_body,
    fmt_rate,
    helper_argv,
    median,
    monitor_argv,
    rotated,
    start_server,
)
from benchmarks.load import LoadResult, pick_client, run_load

EVENTS = "/api/live-execution/events"
INGEST_ROWS = ("ingest-vs-bare", "ingest-vs-naive", "ingest-vs-single", "ingest-sampler")
CONNECTIONS = 8


@dataclass
class Variant:
    """One compared setup: a server and the request sent to it."""

    server: Server
    path: str
    method: str = "GET"
    body: bytes | None = None


@dataclass
class Measured:
    """One load run and the server process's CPU seconds during it."""

    load: LoadResult
    server_cpu: float

    @property
    def per_cpu(self) -> float:
        """Good answers per CPU second of the server (robust to other processes' load)."""
        return self.load.ok / self.server_cpu if self.server_cpu > 0 else 0.0


def _cpu(server: Server) -> float:
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def _rounds(
    ctx: Context, label: str, variants: dict[str, Variant], rounds: int, seconds: float
) -> dict[str, list[Measured]]:
    """Run every variant once per round, in a rotating order; a 1 s warm-up first."""
    client = pick_client(ctx.client)

    def run(v: Variant, s: float) -> Measured:
        cpu = _cpu(v.server)
        load = run_load(v.server.url + v.path, client, s, CONNECTIONS, v.method, v.body)
        return Measured(load, _cpu(v.server) - cpu)

    for name, variant in variants.items():
        ctx.log(f"{label}: warming up {name}")
        run(variant, 1.0)
    results: dict[str, list[Measured]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in rotated(list(variants), r):
            m = run(variants[name], seconds)
            if m.load.ok == 0:
                raise RuntimeError(f"{name}: no successful request ({m.load.errors} errors)")
            if m.load.errors:
                raise RuntimeError(
                    f"{name}: {m.load.errors} failed requests out of {m.load.ok + m.load.errors}"
                )
            results[name].append(m)
            ctx.log(
                f"{label}: round {r + 1}/{rounds} {name}: {fmt_rate(m.load.rate)} requests, "
                f"{m.per_cpu:,.0f} per server CPU s, p99 {m.load.p99_ms:.2f} ms"
            )
    return results


def _paired(results: dict[str, list[Measured]], a: str, b: str, key: Callable[[Measured], float]) -> float:
    """Median over rounds of key(a) / key(b)."""
    return median([key(x) / key(y) for x, y in zip(results[a], results[b], strict=True)])


def _check_answer(server: Server, body: bytes, expected: int) -> None:
    answer = server.post(EVENTS, body)
    if not isinstance(answer, dict) or answer.get("accepted") != expected:
        raise RuntimeError(f"{server.name} did not accept the batch: {str(answer)[:200]}")


def ingest_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Events/s of 100-event batches through the real CLI, beside the alternatives."""
    client = pick_client(ctx.client)
    ctx.notes["load"] = (
        f"load generator: {client} ({'wrk -t1' if client == 'wrk' else 'Python http.client threads'}, "
        f"{CONNECTIONS} keep-alive connections, loopback only); servers are separate processes "
        "started on port 0, and each run also records the server's CPU seconds"
    )
    seconds = ctx.pick(1.0, 3.0)
    rounds = ctx.pick(2, 5)
    batch = batch_body(100)
    single = batch_body(1, seed=2)
    needs = {
        "monitor": True,
        "bare": "ingest-vs-bare" in wanted,
        "naive": "ingest-vs-naive" in wanted,
        "sampler": "ingest-sampler" in wanted,
    }
    argv = {
        "monitor": monitor_argv(),
        "bare": helper_argv("bare-ingest"),
        "naive": helper_argv("naive-ingest"),
        "sampler": monitor_argv(),
    }
    servers: dict[str, Server] = {}
    for name, needed in needs.items():
        if needed:
            servers[name] = ctx.shared(f"ingest-{name}", functools.partial(start_server, name, argv[name]))
            _check_answer(servers[name], batch, 100)
    if "sampler" in servers:
        servers["sampler"].post("/api/live-execution/start")
        if servers["sampler"].get("/api/live-execution/status").get("monitoring") is not True:
            raise RuntimeError("the monitor did not start sampling")
    variants = {name: Variant(server, EVENTS, "POST", batch) for name, server in servers.items()}
    if "ingest-vs-single" in wanted:
        variants["single"] = Variant(servers["monitor"], EVENTS, "POST", single)
    results = _rounds(ctx, "ingest", variants, rounds, seconds)
    rejected = servers["monitor"].get("/api/live-execution/status").get("rejected")
    if rejected:
        raise RuntimeError(f"the monitor rejected {rejected} events of valid batches")

    def per(name: str) -> int:
        return 1 if name == "single" else 100

    def rate(name: str) -> float:
        return median([m.load.rate for m in results[name]]) * per(name)

    def describe(name: str, label: str) -> str:
        cpu = median([m.per_cpu for m in results[name]]) * per(name)
        return f"{label} {fmt_rate(rate(name))} events ({cpu:,.0f} per server CPU s)"

    specs = [
        ("ingest-vs-bare", "bare", "bare WSGI json.loads+deque on waitress", Target(">=", 0.9)),
        ("ingest-vs-naive", "naive", "naive Flask get_json() on waitress", Target(">=", 1.3)),
        ("ingest-vs-single", "single", "the monitor, one event per request", Target(">=", 50)),
        ("ingest-sampler", "sampler", "", Target(">=", 0.98)),
    ]
    rows = []
    for row_name, other, label, target in specs:
        if row_name not in wanted:
            continue
        ratio = _paired(results, "monitor", other, lambda m: m.load.rate)
        cpu_ratio = _paired(results, "monitor", other, lambda m: m.per_cpu)
        if row_name == "ingest-sampler":
            ratio, cpu_ratio = 1 / ratio, 1 / cpu_ratio
            figure = describe("sampler", "sampling")
            baseline = describe("monitor", "not sampling")
            what = "ingest events/s with the sampler running (real CLI, 100-event batches)"
        else:
            scale = per("monitor") / per(other)
            ratio, cpu_ratio = ratio * scale, cpu_ratio * scale
            figure = describe("monitor", "monitor")
            baseline = describe(other, label)
            what = "ingest events/s, 100-event batches, real CLI on waitress"
        note = f"per server CPU second the ratio is {cpu_ratio:.3g}x"
        if row_name == "ingest-vs-single":
            note += "; " + _per_event_note(results)
        rows.append(Row(row_name, what, figure, baseline, ratio, target, note=note))
    return rows


def _per_event_note(results: dict[str, list[Measured]]) -> str:
    """Where a batch's time goes: the server's CPU per request, split into a per-request floor
    (the one-event request) and a cost per event, against what 50x would need."""
    cpu_us = {name: 1e6 / median([m.per_cpu for m in results[name]]) for name in ("monitor", "single")}
    per_event = (cpu_us["monitor"] - cpu_us["single"]) / 99
    needed = cpu_us["single"] / 98  # 100 (floor + e) / (floor + 100 e) >= 50  <=>  e <= floor / 98
    return (
        f"server CPU per request: {cpu_us['monitor']:,.0f} us for 100 events, {cpu_us['single']:,.0f} us for one, "
        f"so {per_event:.2f} us per event over a {cpu_us['single']:,.0f} us per-request floor (50x needs "
        f"<= {needed:.2f} us per event)"
    )


def middleware_load_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """p99 latency of a hello-world app on waitress, bare and with init_app, under load."""
    client = pick_client(ctx.client)
    ctx.notes.setdefault("load", f"load generator: {client}, {CONNECTIONS} keep-alive connections")
    seconds = ctx.pick(1.0, 3.0)
    rounds = ctx.pick(2, 7)
    sink = ctx.shared("sink-monitor", lambda: start_server("sink monitor", monitor_argv("--no-self-monitor")))
    bare = ctx.shared("hello-none", lambda: start_server("hello", helper_argv("hello")))
    live = ctx.shared(
        "hello-live",
        lambda: start_server(
            "hello+init_app", helper_argv("hello", "--middleware", "live", "--monitor-url", sink.url)
        ),
    )
    before = sink.get("/api/live-execution/status")["accepted"]
    variants = {"bare": Variant(bare, "/hello"), "live": Variant(live, "/hello")}
    results = _rounds(ctx, "middleware under load", variants, rounds, seconds)
    shipped = sink.get("/api/live-execution/status")["accepted"] - before
    if not shipped:
        raise RuntimeError("no event of the instrumented app reached the monitor")
    p99 = _paired(results, "live", "bare", lambda m: m.load.p99_ms)
    throughput = _paired(results, "live", "bare", lambda m: m.load.rate)
    per_cpu = _paired(results, "live", "bare", lambda m: m.per_cpu)

    def fig(name: str) -> str:
        ms = results[name]
        return (
            f"p99 {median([m.load.p99_ms for m in ms]):.2f} ms, p50 {median([m.load.p50_ms for m in ms]):.2f} ms, "
            f"{fmt_rate(median([m.load.rate for m in ms]))}"
        )

    note = (
        f"throughput ratio {throughput:.3g}x, requests per app CPU second {per_cpu:.3g}x; "
        f"{shipped:,} events reached the monitor (a separate process)"
    )
    return [
        Row(
            "middleware-load",
            f"init_app p99 latency under load (waitress, hello world, {CONNECTIONS} connections)",
            "init_app " + fig("live"),
            "bare app " + fig("bare"),
            p99,
            Target("<=", 1.1),
            note=note,
        )
    ]
