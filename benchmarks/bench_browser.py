"""Browser rows: the logger bundle's gzipped size, the logger's overhead on the page (its fetch
latency and a 2,000-click burst in headless Chromium, beside the OpenTelemetry web SDK), and
Chart.js updates.

The compared libraries are installed at benchmark time into a temporary npm prefix (pinned
versions below), never into the project's package.json, and every bundle is built by the
same esbuild with the same flags.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    BenchError,
    Context,
    Row,
    Target,
    median,
    median_ratio,
    rotated,
    temp_dir,
)

# The OpenTelemetry pins are the project's own (package.json's devDependencies).
OTEL_PINS = (
    "@opentelemetry/api@1.9.1",
    "@opentelemetry/sdk-trace-web@2.12.0",
    "@opentelemetry/sdk-trace-base@2.12.0",
    "@opentelemetry/exporter-trace-otlp-http@0.223.0",
    "@opentelemetry/instrumentation@0.223.0",
    "@opentelemetry/instrumentation-fetch@0.223.0",
)
NPM_PINS = ("web-vitals@6.2.3", "@sentry/browser@11.12.0", "esbuild@0.28.2", "chart.js@4.6.1", *OTEL_PINS)
OTEL_NAME = (
    "OpenTelemetry web SDK (sdk-trace-web 2.12.0, fetch instrumentation and OTLP/HTTP exporter 0.223.0)"
)
# As in scripts/build-frontend.mjs: web-vitals 6 supports only browsers with ES2022.
BUNDLE_TARGET = "es2022"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ENTRIES = {
    "web-vitals": (
        'import { onCLS, onFCP, onINP, onLCP, onTTFB } from "web-vitals";\n'
        'const report = (m) => navigator.sendBeacon("/vitals", JSON.stringify(m));\n'
        "onCLS(report); onFCP(report); onINP(report); onLCP(report); onTTFB(report);\n"
    ),
    "sentry": (
        'import * as Sentry from "@sentry/browser";\n'
        'Sentry.init({ dsn: "https://public@o0.ingest.example.invalid/1" });\n'
    ),
    "sentry-tracing": (
        'import * as Sentry from "@sentry/browser";\n'
        'Sentry.init({ dsn: "https://public@o0.ingest.example.invalid/1",\n'
        "  integrations: [Sentry.browserTracingIntegration()], tracesSampleRate: 1.0 });\n"
    ),
    # Set up as its README does: a batching exporter to the page's origin, fetch instrumented.
    "otel-web": (
        'import { registerInstrumentations } from "@opentelemetry/instrumentation";\n'
        'import { FetchInstrumentation } from "@opentelemetry/instrumentation-fetch";\n'
        'import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";\n'
        'import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";\n'
        'import { WebTracerProvider } from "@opentelemetry/sdk-trace-web";\n'
        "const exporter = new OTLPTraceExporter({ url: location.origin + '/v1/traces' });\n"
        "const provider = new WebTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });\n"
        "provider.register();\n"
        "registerInstrumentations({ instrumentations: [new FetchInstrumentation()] });\n"
    ),
}


@contextlib.contextmanager
def _npm_prefix(ctx: Context) -> Iterator[Path]:
    with temp_dir("bench-npm-") as prefix:
        ctx.log(f"npm: installing {' '.join(NPM_PINS)} into a temporary prefix")
        argv = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", *NPM_PINS]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"npm install failed: {exc}") from None
        if done.returncode != 0:
            raise BenchError(f"npm install failed: {(done.stderr or done.stdout).strip()[-400:]}")
        yield prefix


def _bundle(prefix: Path, entry: Path, out: Path, *extra: str) -> bytes:
    """Build `entry` the way scripts/build-frontend.mjs builds static/live-monitor.js; `extra`
    esbuild flags go last (a later flag wins)."""
    esbuild = prefix / "node_modules" / ".bin" / "esbuild"
    argv = [
        str(esbuild),
        str(entry),
        "--bundle",
        "--minify",
        "--format=iife",
        f"--target={BUNDLE_TARGET}",
        "--platform=browser",
        "--legal-comments=none",
        "--log-level=error",
        f"--outfile={out}",
        *extra,
    ]
    env = {**os.environ, "NODE_PATH": str(prefix / "node_modules")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, env=env, cwd=prefix)
    if done.returncode != 0:
        raise BenchError(f"esbuild failed on {entry.name}: {done.stderr.strip()[-400:]}")
    return out.read_bytes()


def _gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _module_note(prefix: Path, source: Path, ours: int, own_gz: int, limits: dict[str, int]) -> str:
    """What the bundle's bytes buy, by module (esbuild's metafile: minified bytes of each, and
    its share of the gzipped total in proportion), and how far each size limit is."""
    meta = prefix / "meta-live-monitor.json"
    _bundle(prefix, source, prefix / "out-meta.js", f"--metafile={meta}")
    inputs = next(iter(json.loads(meta.read_text())["outputs"].values()))["inputs"]
    sizes = {Path(name).name: int(info["bytesInOutput"]) for name, info in inputs.items()}
    total = sum(sizes.values()) or 1
    parts = ", ".join(
        f"{name} {size:,} B min (~{ours * size // total:,} B gz)"
        for name, size in sorted(sizes.items(), key=lambda item: -item[1])
    )

    def gaps(size: int) -> str:
        return ", ".join(
            f"{name} limit {limit:,} B: {'met' if size <= limit else f'{size - limit:,} B over'}"
            for name, limit in limits.items()
        )

    return (
        f"; by module: {parts}; web-vitals (onCLS/onFCP/onINP/onLCP, not the attribution build) "
        f"adds {ours - own_gz:,} B gz to the logger's own {own_gz:,} B; the whole bundle: "
        f"{gaps(ours)}; the logger's own code alone: {gaps(own_gz)}. Every module is behaviour "
        "the tests hold (transport: batches, retries, beacons, storage; network: fetch/XHR "
        "capture with trace headers; capture: clicks, scrolls, forms, errors, page load, vitals). "
        "Under the limits would take loading web-vitals lazily as a second chunk (after the "
        "page's load event, so the first script is the logger's own code) and, for the rest, "
        "dropping features"
    )


def bundle_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Gzipped size of the browser logger against web-vitals and @sentry/browser."""
    prefix = ctx.shared("npm", lambda: _npm_prefix(ctx))
    sizes: dict[str, tuple[int, int]] = {}
    source = ROOT / "frontend_logging_config.ts"
    if not source.exists():
        raise BenchError("frontend_logging_config.ts is missing")
    entries = {name: prefix / f"entry-{name}.js" for name in ENTRIES}
    for name, path in entries.items():
        path.write_text(ENTRIES[name])
    entries["live-monitor"] = source
    built: dict[str, bytes] = {}
    for name, path in entries.items():
        built[name] = data = _bundle(prefix, path, prefix / f"out-{name}.js")
        sizes[name] = (len(data), _gz(data))
    ours = sizes["live-monitor"][1]
    # The logger's own code: the same build with web-vitals left out (ESM, so no loader stub).
    own = _bundle(prefix, source, prefix / "out-own.js", "--external:web-vitals", "--format=esm")
    own_note = (
        f"; of which the logger's own code (web-vitals left out) {len(own):,} B min / {_gz(own):,} B gz"
    )
    limits = {
        "web-vitals x3": 3 * sizes["web-vitals"][1],
        "sentry x0.25": sizes["sentry"][1] // 4,
    }
    own_note += _module_note(prefix, source, ours, _gz(own), limits)
    shipped = ROOT / "static" / "live-monitor.js"
    shipped_note = ""
    if shipped.exists():
        data = shipped.read_bytes()
        same = data == built["live-monitor"]
        shipped_note = f"; static/live-monitor.js as built by npm run build: {_gz(data):,} B gzipped" + (
            " (the same bytes)" if same else " (differs: rebuild with npm run build)"
        )
    raw = ", ".join(f"{name} {raw:,} B min / {gz:,} B gz" for name, (raw, gz) in sizes.items())
    rows = []
    if "bundle-vs-web-vitals" in wanted:
        rows.append(
            Row(
                "bundle-vs-web-vitals",
                f"browser logger bundle, minified + gzip -9 (esbuild 0.28.2, iife, {BUNDLE_TARGET})",
                f"live-monitor {ours:,} B",
                f"web-vitals 6.2.3 (5 metrics) {sizes['web-vitals'][1]:,} B",
                ours / sizes["web-vitals"][1],
                Target("<=", 3.0),
                note=raw + own_note + shipped_note,
            )
        )
    if "bundle-vs-sentry" in wanted:
        rows.append(
            Row(
                "bundle-vs-sentry",
                "browser logger bundle, minified + gzip -9",
                f"live-monitor {ours:,} B",
                f"@sentry/browser 11.12.0 init() {sizes['sentry'][1]:,} B "
                f"(with browserTracing {sizes['sentry-tracing'][1]:,} B)",
                ours / sizes["sentry"][1],
                Target("<=", 0.25),
                note=own_note.removeprefix("; "),
            )
        )
    if "bundle-vs-otel" in wanted:
        rows.append(
            Row(
                "bundle-vs-otel",
                "browser logger bundle, minified + gzip -9, against the OpenTelemetry web SDK set up for fetch",
                f"live-monitor {ours:,} B",
                f"{OTEL_NAME} {sizes['otel-web'][1]:,} B",
                ours / sizes["otel-web"][1],
                Target("<=", 0.5),
            )
        )
    return rows


# -- the logger's overhead on the page ---------------------------------------------------

OVERHEAD_ROWS = ("fetch-overhead", "fetch-overhead-vs-otel", "click-burst")
LONG_TASK_MS = 50  # what the browser reports as a long task
BURST_CLICKS = 2000
# The page: loads one of the compared scripts (none, the logger, the OpenTelemetry web SDK).
OVERHEAD_PAGE = """<!doctype html><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,">
<button id="buy" class="btn">Buy</button>"""
START_LOGGER = """() => { window.monitor = LiveMonitor.initLiveMonitor({endpoint: location.origin,
  capture: {webVitals: false}}); }"""
# `count` fetches of a small JSON answer, one after another, each read to its end: the median
# round trip in ms (after a warm-up, so connections are open and code is compiled).
FETCH_SCRIPT = """async (count) => {
  const once = async () => { const t0 = performance.now(); await (await fetch("/api/ping")).text();
    return performance.now() - t0; };
  for (let i = 0; i < 20; i++) await once();
  const times = [];
  for (let i = 0; i < count; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}"""
# 2,000 clicks dispatched in one task; the task's length, and the long tasks seen during it and
# the next 1.5 s (in which the logger reports the burst and sends it).
BURST_SCRIPT = """async (clicks) => {
  const long = [];
  new PerformanceObserver((l) => long.push(...l.getEntries().map((e) => e.duration)))
    .observe({type: "longtask"});
  const button = document.getElementById("buy");
  const t0 = performance.now();
  for (let i = 0; i < clicks; i++) button.click();
  const task = performance.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await window.monitor?.flush();
  const stats = window.monitor ? window.monitor.stats() : null;
  return { task, long, stats };
}"""


class _OverheadSite:
    """The app's origin: the page, the compared scripts, a tiny API and sinks for what the
    logger (ingest) and the OpenTelemetry exporter (/v1/traces) send, counting the clicks."""

    def __init__(self, scripts: dict[str, bytes]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        site = self
        self.clicks = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/":
                    self._send("text/html", OVERHEAD_PAGE.encode())
                elif self.path.startswith("/script/"):
                    self._send("text/javascript", scripts[self.path.removeprefix("/script/")])
                else:
                    self._send("application/json", b'{"pong": true}')

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/events"):
                    events = json.loads(body)["events"]
                    site.clicks += sum(
                        e["details"].get("count", 1) for e in events if e["component"] == "click"
                    )
                self._send("application/json", b"{}")

            def _send(self, content_type: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _open(browser: Any, site: _OverheadSite, variant: str) -> tuple[Any, Any]:
    """A fresh page of the app with ``variant``'s script loaded and started; (context, page)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/")
    if variant != "none":
        page.add_script_tag(url=f"/script/{variant}")
    if variant == "live-monitor":
        page.evaluate(START_LOGGER)
    return context, page


def overhead_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """The page's fetch latency with the logger, without, and with the OpenTelemetry web SDK;
    and a 2,000-click burst with the logger against the long-task threshold."""
    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    prefix = ctx.shared("npm", lambda: _npm_prefix(ctx))
    entry = prefix / "entry-otel-web.js"
    entry.write_text(ENTRIES["otel-web"])
    scripts = {
        "live-monitor": _bundle(prefix, ROOT / "frontend_logging_config.ts", prefix / "out-overhead-lm.js"),
        "otel-web": _bundle(prefix, entry, prefix / "out-overhead-otel.js"),
    }
    rounds, count = ctx.pick(3, 7), ctx.pick(100, 300)
    variants = ("none", "live-monitor", "otel-web")
    fetch_ms: dict[str, list[float]] = {v: [] for v in variants}
    bursts: dict[str, list[dict[str, Any]]] = {"none": [], "live-monitor": []}
    site = _OverheadSite(scripts)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                for r in range(rounds):
                    for variant in rotated(variants, r):
                        context, page = _open(browser, site, variant)
                        fetch_ms[variant].append(page.evaluate(FETCH_SCRIPT, count))
                        context.close()
                    for variant in rotated(list(bursts), r):
                        context, page = _open(browser, site, variant)
                        bursts[variant].append(page.evaluate(BURST_SCRIPT, BURST_CLICKS))
                        context.close()
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise BenchError(f"Chromium/Playwright failed: {str(exc).splitlines()[0]}") from None
    finally:
        site.close()
    return _overhead_rows(wanted, fetch_ms, bursts, site, rounds, count)


def _overhead_rows(
    wanted: set[str],
    fetch_ms: dict[str, list[float]],
    bursts: dict[str, list[dict[str, Any]]],
    site: _OverheadSite,
    rounds: int,
    count: int,
) -> list[Row]:
    none, ours, otel = (median(fetch_ms[v]) for v in ("none", "live-monitor", "otel-web"))
    ours_x, otel_x = (
        median_ratio(fetch_ms["live-monitor"], fetch_ms["none"]),
        median_ratio(fetch_ms["otel-web"], fetch_ms["none"]),
    )
    what = (
        f"page's fetch() round trip in headless Chromium (median of {count} after a warm-up, {rounds} rounds)"
    )
    rows = []
    if "fetch-overhead" in wanted:
        rows.append(
            Row(
                "fetch-overhead",
                what + ", against the same page without a logger",
                f"live-monitor {ours:.3f} ms",
                f"no logger {none:.3f} ms",
                ours_x,
                Target("<=", 1.10),
                note=f"{OTEL_NAME}: {otel:.3f} ms, {otel_x:.2f}x",
            )
        )
    if "fetch-overhead-vs-otel" in wanted:
        rows.append(
            Row(
                "fetch-overhead-vs-otel",
                what + ", against the OpenTelemetry web SDK",
                f"live-monitor {ours:.3f} ms ({ours_x:.2f}x no logger)",
                f"{OTEL_NAME} {otel:.3f} ms ({otel_x:.2f}x)",
                median_ratio(fetch_ms["live-monitor"], fetch_ms["otel-web"]),
                Target("<=", 1.0),
            )
        )
    if "click-burst" in wanted:
        ours_runs, none_runs = bursts["live-monitor"], bursts["none"]
        task, bare = median([b["task"] for b in ours_runs]), median([b["task"] for b in none_runs])
        long_tasks = max(len(b["long"]) for b in ours_runs)
        stats = ours_runs[-1]["stats"]
        rows.append(
            Row(
                "click-burst",
                f"{BURST_CLICKS:,} clicks dispatched in one task in headless Chromium: the task's length "
                f"with the browser logger against the {LONG_TASK_MS} ms long-task threshold",
                f"live-monitor {task:.1f} ms, {long_tasks} long tasks",
                f"no logger {bare:.1f} ms; threshold {LONG_TASK_MS} ms",
                task / LONG_TASK_MS,
                Target("<=", 1.0),
                note=(
                    f"per burst the logger sent {stats['sent']} events, dropped {stats['dropped']}; the "
                    f"bursts' click events counted {site.clicks:,} clicks for {BURST_CLICKS * rounds:,} made; "
                    "the OpenTelemetry web SDK set up for fetch captures no clicks"
                ),
            )
        )
    return rows


CHART_PAGE = """<!doctype html><html><body style="margin:0">
<canvas id="c1k" width="800" height="300"></canvas>
<canvas id="c10k" width="800" height="300"></canvas>
<canvas id="c10k-nodec" width="800" height="300"></canvas>
</body></html>"""

CHART_SCRIPT = """
async ({rounds, reps}) => {
  const make = (id, decimation) => new Chart(document.getElementById(id), {
    type: "line",
    data: { datasets: [{ label: "latency", data: [], borderWidth: 1, pointRadius: 0, tension: 0 }] },
    options: {
      animation: false, responsive: false, parsing: false, normalized: true, spanGaps: true,
      scales: { x: { type: "linear" }, y: { beginAtZero: true } },
      plugins: { legend: { display: false }, tooltip: { enabled: false },
                 decimation: { enabled: decimation, algorithm: "lttb", samples: 400 } },
    },
  });
  let seed = 1;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const series = (n, shift) => Array.from({ length: n }, (_, i) => ({ x: i + shift, y: 20 + 80 * rand() }));
  const charts = { "1k": [make("c1k", true), 1000], "10k": [make("c10k", true), 10000],
                   "10k-nodec": [make("c10k-nodec", false), 10000] };
  const times = { "1k": [], "10k": [], "10k-nodec": [] };
  const names = Object.keys(charts);
  for (let r = 0; r < rounds; r++) {
    const order = names.slice(r % names.length).concat(names.slice(0, r % names.length));
    for (const name of order) {
      const [chart, n] = charts[name];
      const samples = [];
      for (let k = 0; k < reps; k++) {
        const data = series(n, r * reps + k);  // a new series each update, as live data is
        const t0 = performance.now();
        chart.data.datasets[0].data = data;
        chart.update("none");
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      times[name].push(samples[Math.floor(samples.length / 2)]);
    }
  }
  const drawn = charts["10k"][0].getDatasetMeta(0).data.length;
  return { times, drawn };
}
"""


def _chart_js(ctx: Context) -> Path:
    built = ROOT / "static" / "vendor" / "chart.umd.js"
    if built.exists():
        return built
    prefix = ctx.shared("npm", lambda: _npm_prefix(ctx))
    return Path(prefix) / "node_modules" / "chart.js" / "dist" / "chart.umd.js"


def chart_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Chart.js update of a 10,000-point line chart against 1,000 points (decimation on)."""
    if not Path(CHROMIUM).exists():
        raise BenchError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    script = _chart_js(ctx)
    rounds, reps = ctx.pick(3, 9), ctx.pick(5, 15)
    ctx.log(f"chart: Chart.js from {script.relative_to(ROOT) if script.is_relative_to(ROOT) else script}")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_content(CHART_PAGE)
                page.add_script_tag(path=str(script))
                version = page.evaluate("Chart.version")
                result: dict[str, Any] = page.evaluate(CHART_SCRIPT, {"rounds": rounds, "reps": reps})
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise BenchError(f"Chromium/Playwright failed: {str(exc).splitlines()[0]}") from None
    times = result["times"]
    ratio = median_ratio(times["10k"], times["1k"])
    t10, t1, nodec = (median(times[k]) for k in ("10k", "1k", "10k-nodec"))
    return [
        Row(
            "chart",
            f"Chart.js {version} line chart update('none') in headless Chromium, decimation (lttb, 400) on",
            f"10,000 points {t10:.2f} ms",
            f"1,000 points {t1:.2f} ms",
            ratio,
            Target("<=", 2.0),
            note=f"10,000 points without decimation: {nodec:.2f} ms; points drawn at 10k: {result['drawn']}",
        )
    ]
