"""Rows measured through real servers on loopback: ingest throughput and latency under load.

Every compared server runs at once as its own process; each round loads them one after
the other in a rotating order, and a ratio is the median of the rounds' ratios (each
round's pair ran seconds apart, so slow drift of the shared machine cancels out).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import psutil

from benchmarks.common import (
    API,
    EVENTS,
    STATUS,
    Context,
    Measured,
    Row,
    Server,
    Target,
    batch_bodies,
    fmt_rate,
    helper_argv,
    measure_load,
    median,
    median_ratio,
    monitor_argv,
    rotated,
    sink_monitor,
    start_server,
)
from benchmarks.load import Bodies, pick_client
from benchmarks.stages import STAGES, bare_work, ingest_stages

INGEST_ROWS = ("ingest-vs-bare", "ingest-vs-naive", "ingest-vs-single", "ingest-sampler")
CONNECTIONS = 8
BODIES = 16  # distinct batches each load run rotates among (their trace ids renewed per request)


@dataclass
class Variant:
    """One compared setup: a server and the request sent to it."""

    server: Server
    path: str
    method: str = "GET"
    body: Bodies = None  # one body, or several sent in turn
    fresh_traces: bool = False  # renew the bodies' trace ids on every request


@dataclass
class Rounds:
    """One variant's figures, a value per round."""

    rate: list[float] = field(default_factory=list)  # good answers per second
    per_cpu: list[float] = field(default_factory=list)  # good answers per CPU second of the server
    p50: list[float] = field(default_factory=list)  # ms
    p99: list[float] = field(default_factory=list)  # ms

    def add(self, m: Measured) -> None:
        """Record one round's run."""
        self.rate.append(m.load.rate)
        self.per_cpu.append(m.per_cpu)
        self.p50.append(m.load.p50_ms)
        self.p99.append(m.load.p99_ms)


def _rounds(
    ctx: Context, label: str, variants: dict[str, Variant], rounds: int, seconds: float
) -> dict[str, Rounds]:
    """Run every variant once per round, in a rotating order; a 1 s warm-up first."""
    client = pick_client(ctx.client)

    def run(v: Variant, s: float) -> Measured:
        procs = [psutil.Process(v.server.proc.pid)]
        return measure_load(
            procs, v.server.url + v.path, client, s, CONNECTIONS, v.method, v.body, v.fresh_traces
        )

    for name, variant in variants.items():
        ctx.log(f"{label}: warming up {name}")
        run(variant, 1.0)
    results = {name: Rounds() for name in variants}
    for r in range(rounds):
        for name in rotated(list(variants), r):
            m = run(variants[name], seconds)
            if m.load.ok == 0:
                raise RuntimeError(f"{name}: no successful request ({m.load.errors} errors)")
            if m.load.errors:
                raise RuntimeError(
                    f"{name}: {m.load.errors} failed requests out of {m.load.ok + m.load.errors}"
                )
            results[name].add(m)
            ctx.log(
                f"{label}: round {r + 1}/{rounds} {name}: {fmt_rate(m.load.rate)} requests, "
                f"{m.per_cpu:,.0f} per server CPU s, p99 {m.load.p99_ms:.2f} ms"
            )
    return results


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
    # Every variant rotates among the same distinct batches and renews their trace ids on each
    # request, as real traffic does: one body posted over and over piles up unpaired halves of
    # the same traces, and the join scans lists that real traffic never builds.
    batches = batch_bodies(100, BODIES)
    singles = batch_bodies(1, BODIES * 4, seed=2)
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
            _check_answer(servers[name], batches[0], 100)
    if "sampler" in servers:
        servers["sampler"].post(API + "/start")
        if servers["sampler"].get(STATUS).get("monitoring") is not True:
            raise RuntimeError("the monitor did not start sampling")
    variants = {name: Variant(server, EVENTS, "POST", batches, True) for name, server in servers.items()}
    if "ingest-vs-single" in wanted:
        variants["single"] = Variant(servers["monitor"], EVENTS, "POST", singles, True)
    results = _rounds(ctx, "ingest", variants, rounds, seconds)
    rejected = servers["monitor"].get(STATUS).get("rejected")
    if rejected:
        raise RuntimeError(f"the monitor rejected {rejected} events of valid batches")

    def per(name: str) -> int:
        return 1 if name == "single" else 100

    def rate(name: str) -> float:
        return median(results[name].rate) * per(name)

    def describe(name: str, label: str) -> str:
        cpu = median(results[name].per_cpu) * per(name)
        return f"{label} {fmt_rate(rate(name))} events ({cpu:,.0f} per server CPU s)"

    # Issue 21 judges ingest per server CPU second (robust to the shared machine's other load);
    # ingest-vs-single has no target there: it is kept for its note, the cost per event.
    specs = [
        ("ingest-vs-bare", "bare", "bare WSGI json.loads+deque on waitress", Target(">=", 0.8)),
        ("ingest-vs-naive", "naive", "naive Flask get_json() on waitress", Target(">=", 1.2)),
        ("ingest-vs-single", "single", "the monitor, one event per request", None),
        ("ingest-sampler", "sampler", "", Target(">=", 0.98)),
    ]
    rows = []
    for row_name, other, label, target in specs:
        if row_name not in wanted:
            continue
        ratio = median_ratio(results["monitor"].rate, results[other].rate)
        cpu_ratio = median_ratio(results["monitor"].per_cpu, results[other].per_cpu)
        if row_name == "ingest-sampler":
            ratio, cpu_ratio = 1 / ratio, 1 / cpu_ratio
            figure = describe("sampler", "sampling")
            baseline = describe("monitor", "not sampling")
            what = "ingest events/s with the sampler running (real CLI, 100-event batches)"
            note = f"per server CPU second the ratio is {cpu_ratio:.3g}x"
            rows.append(Row(row_name, what, figure, baseline, ratio, target, note=note))
            continue
        scale = per("monitor") / per(other)
        figure = describe("monitor", "monitor")
        baseline = describe(other, label)
        what = "ingest events per server CPU second, 100-event batches, real CLI on waitress"
        note = f"by wall clock (events/s) the ratio is {ratio * scale:.3g}x"
        if row_name == "ingest-vs-single":
            note += "; " + _per_event_note(results)
        if row_name == "ingest-vs-bare":
            note += "; " + _budget_note(ctx, results, batches)
        rows.append(Row(row_name, what, figure, baseline, cpu_ratio * scale, target, note=note))
    return rows


def _budget_note(ctx: Context, results: dict[str, Rounds], batches: list[bytes]) -> str:
    """Why the monitor is where it is against the bare handler: the servers' CPU per request
    from this run's load, the budget 0.8x leaves the monitor's own work once waitress is paid,
    and that work's stages measured in-process in the same run."""
    n = ctx.pick(300, 2000)
    ctx.log(f"ingest: timing the monitor's stages in-process ({n} batches)")
    stages = ingest_stages(batches, n)
    bare_own = bare_work(batches, n)
    cpu_us = {name: 1e6 / median(results[name].per_cpu) for name in ("monitor", "bare")}
    floor = cpu_us["bare"] - bare_own  # waitress, the socket and the WSGI call, per request
    work = stages["total"]

    def budget(ratio: float) -> float:
        return cpu_us["bare"] / ratio - floor

    parts = ", ".join(f"{label} {stages[name]:.0f}" for name, label in STAGES)
    return (
        f"server CPU per 100-event request: monitor {cpu_us['monitor']:,.0f} us, bare {cpu_us['bare']:,.0f} us, "
        f"of which the bare handler's own json.loads+deque is {bare_own:.0f} us (in-process), so waitress "
        f"and the socket cost about {floor:.0f} us. 0.8x leaves the monitor's own work {budget(0.8):.0f} us "
        f"(0.9x: {budget(0.9):.0f} us); in-process it takes {work:.0f} us per batch ({parts} us), so 0.8x "
        f"needs it {work / budget(0.8):.1f}x smaller (0.9x: {work / budget(0.9):.1f}x). Under load the server "
        f"spends {cpu_us['monitor'] - floor - work:,.0f} us per request beyond those stages and that floor (the "
        "stages ran on one thread with warm caches). Every stage is Python "
        "at a few hundred ns per event: what it would take is one compiled pass (decode, validation, "
        "scrubbing and the figures in C, e.g. a msgspec-based extension), not a faster Python stage"
    )


def _per_event_note(results: dict[str, Rounds]) -> str:
    """Where a batch's time goes: the server's CPU per request, split into a per-request floor
    (the one-event request) and a cost per event, against what 50x would need."""
    cpu_us = {name: 1e6 / median(results[name].per_cpu) for name in ("monitor", "single")}
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
    sink = sink_monitor(ctx)
    bare = ctx.shared("hello-none", lambda: start_server("hello", helper_argv("hello")))
    live = ctx.shared(
        "hello-live",
        lambda: start_server(
            "hello+init_app", helper_argv("hello", "--middleware", "live", "--monitor-url", sink.url)
        ),
    )
    before = sink.get(STATUS)["accepted"]
    variants = {"bare": Variant(bare, "/hello"), "live": Variant(live, "/hello")}
    results = _rounds(ctx, "middleware under load", variants, rounds, seconds)
    shipped = sink.get(STATUS)["accepted"] - before
    if not shipped:
        raise RuntimeError("no event of the instrumented app reached the monitor")
    live, bare = results["live"], results["bare"]
    p99 = median_ratio(live.p99, bare.p99)
    throughput = median_ratio(live.rate, bare.rate)
    per_cpu = median_ratio(live.per_cpu, bare.per_cpu)

    def fig(got: Rounds) -> str:
        return f"p99 {median(got.p99):.2f} ms, p50 {median(got.p50):.2f} ms, {fmt_rate(median(got.rate))}"

    note = (
        f"p50 ratio {median_ratio(live.p50, bare.p50):.3g}x, throughput ratio {throughput:.3g}x, requests per "
        f"app CPU second {per_cpu:.3g}x; {shipped:,} events reached the monitor (a separate process); "
        f"bare's p99 ranged {min(bare.p99):.2f}-{max(bare.p99):.2f} ms over the rounds"
    )
    if p99 > 1.1:
        note += _p99_why(live, bare, per_cpu)
    return [
        Row(
            "middleware-load",
            f"init_app p99 latency under load (waitress, hello world, {CONNECTIONS} connections)",
            "init_app " + fig(live),
            "bare app " + fig(bare),
            p99,
            Target("<=", 1.1),
            note=note,
        )
    ]


def _p99_why(live: Rounds, bare: Rounds, per_cpu: float) -> str:
    """Why the p99 target was missed, from this run's figures: the app's extra CPU per request
    against the spread of the bare app's own p99 from round to round."""
    extra = (1 / per_cpu - 1) * 100
    spread = max(bare.p99) / min(bare.p99)
    return (
        f". Missed: init_app costs the app {extra:.0f}% more CPU per request, which alone would move "
        f"the p99 by about as much; the rest is the sender thread's once-a-second burst (writing and "
        "POSTing a second's events, handing the GIL back every 64 events) and the shared machine: the "
        f"bare app's own p99 moved {spread:.2f}x between rounds. Meeting 1.1x would take spreading the "
        "sender's work through the second (tried: waking it at every full batch cost the in-process "
        "row about 0.01x and moved no p99 beyond this noise) and a quiet machine to tell 10% apart"
    )
