"""WSGI server choice: the same monitor app under waitress (as the monitor serves it), gunicorn
(sync and gthread workers) and werkzeug's threaded development server.

Each server runs in its own process on a free loopback port, all at once; each round loads
them one after the other in a rotating order: ingest events/s with 100-event batches, then
the p99 latency of GET /data with two clients asking back to back. Informational rows: the
figures explain why the monitor ships on waitress.
``python benchmarks/bench_wsgi.py serve waitress|gunicorn-sync|gunicorn-gthread|werkzeug``
serves the app and prints ``serving on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from benchmarks.common import (  # noqa: E402
    API,
    EVENTS,
    PYTHON,
    STATUS,
    BenchError,
    Context,
    Row,
    Server,
    batch_body,
    fmt_rate,
    measure_load,
    median,
    median_ratio,
    rotated,
    start_server,
)
from benchmarks.load import pick_client, run_load  # noqa: E402
from benchmarks.servers import serve as serve_waitress  # noqa: E402

KINDS = ("waitress", "gunicorn-sync", "gunicorn-gthread", "werkzeug")
ROWS = tuple(f"wsgi-vs-{kind}" for kind in KINDS[1:])
DATA = API + "/data"
INGEST_CONNECTIONS = 8
DATA_CONNECTIONS = 2
THREADS = 8


def monitor_app() -> Any:
    """The monitor's Flask app, exactly as the CLI builds it, minus self-monitoring."""
    import live_execution_monitor

    return live_execution_monitor.create_app({"self_monitor": False})


def _serve_gunicorn(app: Any, port: int, worker: str) -> None:
    from gunicorn.app.base import BaseApplication

    def when_ready(arbiter: Any) -> None:
        bound = arbiter.LISTENERS[0].sock.getsockname()[1]
        print(f"serving on http://127.0.0.1:{bound}", flush=True)

    options = {
        "bind": f"127.0.0.1:{port}",
        "workers": 1,
        "worker_class": worker,
        "threads": THREADS,
        "when_ready": when_ready,
        "loglevel": "warning",
    }

    class Standalone(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Standalone().run()


def _serve_werkzeug(app: Any, port: int) -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"serving on http://127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


def serve(kind: str, port: int) -> int:
    """Serve the monitor app under one server until interrupted."""
    app = monitor_app()
    if kind == "waitress":
        serve_waitress(app, port)
    elif kind.startswith("gunicorn-"):
        _serve_gunicorn(app, port, kind.split("-", 1)[1])
    else:
        _serve_werkzeug(app, port)
    return 0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        raise BenchError(f"{package} is not installed (pip install {package})") from None


@dataclass
class Figures:
    """One server's measured rounds."""

    label: str
    procs: list[psutil.Process]
    ingest: list[float] = field(default_factory=list)
    per_cpu: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)


def _fill(server: Server, run: Any) -> None:
    """Ingest until both sides of the store are full, so every /data run sees the same store."""
    from live_monitor.core.settings import defaults

    full = int(defaults()["max_events"])
    for _ in range(60):
        stored = server.get(STATUS)["stored"]
        if stored["backend"] >= full and stored["frontend"] >= full:
            return
        run(1.0)
    raise BenchError(f"{server.name}: the store did not fill ({server.get(STATUS)['stored']})")


def wsgi_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """The same monitor app under four servers: ingest events/s and /data p99, side by side."""
    versions = {name: _version(name) for name in ("waitress", "gunicorn", "werkzeug")}
    labels = {
        "waitress": f"waitress {versions['waitress']} ({THREADS} threads, live_monitor.web.server.WaitressServer)",
        "gunicorn-sync": f"gunicorn {versions['gunicorn']} sync (1 worker)",
        "gunicorn-gthread": f"gunicorn {versions['gunicorn']} gthread (1 worker, {THREADS} threads)",
        "werkzeug": f"werkzeug {versions['werkzeug']} make_server(threaded=True)",
    }
    kinds = ["waitress", *[k for k in KINDS[1:] if f"wsgi-vs-{k}" in wanted]]
    with contextlib.ExitStack() as stack:
        figures = _measure(ctx, stack, kinds, labels)
    return _rows(ctx, wanted, figures, pick_client(ctx.client))


def _measure(
    ctx: Context, stack: contextlib.ExitStack, kinds: list[str], labels: dict[str, str]
) -> dict[str, Figures]:
    """Start every server (stopped by ``stack``), fill their stores, then run the rounds."""
    client = pick_client(ctx.client)
    seconds = ctx.pick(1.0, 3.0)
    rounds = ctx.pick(2, 5)
    batch = batch_body(100)
    servers: dict[str, Server] = {}
    figures: dict[str, Figures] = {}
    for kind in kinds:
        argv = [PYTHON, str(Path(__file__).resolve()), "serve", kind, "--port", "0"]
        server = stack.enter_context(start_server(kind, argv))
        root = psutil.Process(server.proc.pid)
        servers[kind] = server
        figures[kind] = Figures(labels[kind], [root, *root.children(recursive=True)])

    def ingest(kind: str, secs: float) -> tuple[float, float]:
        url = servers[kind].url + EVENTS
        m = measure_load(figures[kind].procs, url, client, secs, INGEST_CONNECTIONS, "POST", batch)
        if m.load.ok == 0 or m.load.errors:
            raise RuntimeError(
                f"{kind}: {m.load.errors} failed ingest requests of {m.load.ok + m.load.errors}"
            )
        return m.load.rate * 100, m.per_cpu * 100

    for kind in kinds:
        ctx.log(f"wsgi: warming up {kind} (filling its store)")
        _fill(servers[kind], functools.partial(ingest, kind))
    for r in range(rounds):
        for kind in rotated(kinds, r):
            rate, per_cpu = ingest(kind, seconds)
            data = run_load(servers[kind].url + DATA, client, seconds, DATA_CONNECTIONS)
            if data.ok == 0 or data.errors:
                raise RuntimeError(f"{kind}: {data.errors} failed /data requests of {data.ok + data.errors}")
            f = figures[kind]
            f.ingest.append(rate)
            f.per_cpu.append(per_cpu)
            f.p99.append(data.p99_ms)
            f.p50.append(data.p50_ms)
            ctx.log(
                f"wsgi: round {r + 1}/{rounds} {kind}: ingest {fmt_rate(rate)} events "
                f"({per_cpu:,.0f} per server CPU s), /data p99 {data.p99_ms:.2f} ms"
            )
    return figures


def _rows(ctx: Context, wanted: set[str], figures: dict[str, Figures], client: str) -> list[Row]:
    def describe(kind: str) -> str:
        f = figures[kind]
        return (
            f"{f.label}: {fmt_rate(median(f.ingest))} events, /data p99 {median(f.p99):.2f} ms "
            f"(p50 {median(f.p50):.2f} ms)"
        )

    kinds = list(figures)
    fastest = max(kinds, key=lambda k: median(figures[k].ingest))
    quickest = min(kinds, key=lambda k: median(figures[k].p99))
    table = [
        f"{k:<17} {median(figures[k].ingest):>10,.0f} ev/s {median(figures[k].per_cpu):>10,.0f} "
        f"per CPU s {median(figures[k].p99):>8.2f} ms p99"
        for k in kinds
    ]
    ctx.log("wsgi: server            ingest        per server CPU      /data\n" + "\n".join(table))
    verdict = f"fastest ingest: {fastest}; lowest /data p99: {quickest}"
    ctx.notes["wsgi"] = _choice(figures, fastest, quickest, client)
    rows = []
    w = figures["waitress"]
    for kind in kinds[1:]:
        name = f"wsgi-vs-{kind}"
        if name not in wanted:
            continue
        f = figures[kind]
        note = (
            f"/data p99 waitress/{kind} {median_ratio(w.p99, f.p99):.3g}x; ingest per server "
            f"CPU second {median_ratio(w.per_cpu, f.per_cpu):.3g}x; {verdict}"
        )
        rows.append(
            Row(
                name,
                f"the monitor app's ingest events/s (100-event batches, {INGEST_CONNECTIONS} connections) "
                f"and /data p99 ({DATA_CONNECTIONS} clients back to back)",
                describe("waitress"),
                describe(kind),
                median_ratio(w.ingest, f.ingest),
                None,
                note=note,
            )
        )
    return rows


def _choice(figures: dict[str, Figures], fastest: str, quickest: str, client: str) -> str:
    """The paragraph of RESULTS.md that explains the server choice from this run's figures."""
    w = figures["waitress"]
    best = median(figures[fastest].ingest)
    parts = [
        f"{k} {median(f.ingest) / median(w.ingest):.2f}x waitress's ingest events/s and "
        f"{median(f.p99) / median(w.p99):.2f}x its /data p99"
        for k, f in figures.items()
        if k != "waitress"
    ]
    share = median(w.ingest) / best
    if fastest == "waitress":
        standing = "waitress ingests the most events/s"
    elif share >= 0.9:
        standing = f"waitress ingests within {1 - share:.0%} of the fastest ({fastest})"
    else:
        standing = f"{fastest} ingests {1 / share - 1:.0%} more events/s than waitress"
    latency = (
        "and answers /data with the lowest p99"
        if quickest == "waitress"
        else f"and {quickest} answers /data with the lowest p99"
    )
    return (
        f"WSGI server choice (rows wsgi-vs-*): the same app (create_app, self-monitoring off) under "
        f"each server, one process each, loaded with {client}: {standing} {latency}; "
        f"{'; '.join(parts)}. The monitor keeps waitress: one process with threads is the model the "
        "in-memory store needs (gunicorn would only add a master process, and its sync worker "
        "serves one request at a time), waitress is pure Python and runs on Windows too (gunicorn "
        "needs fork), and live_monitor.web.server.WaitressServer drains in-flight requests on shutdown; "
        "werkzeug's server is documented as for development only. Past one process the monitor "
        "scales with --workers on the Redis store (row redis-scaleout)."
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the monitor app under one WSGI server (for the wsgi rows)."""
    parser = argparse.ArgumentParser(prog="bench_wsgi.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the monitor app under one server")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return serve(args.kind, args.port)


if __name__ == "__main__":
    sys.exit(main())
