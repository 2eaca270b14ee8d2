"""Browser rows: the logger bundle's gzipped size, and Chart.js updates in headless Chromium.

The compared libraries are installed at benchmark time into a temporary npm prefix (pinned
versions below), never into the project's package.json, and every bundle is built by the
same esbuild with the same flags.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, BenchError, Context, Row, Target, median, median_ratio, temp_dir

NPM_PINS = ("web-vitals@6.2.3", "@sentry/browser@11.12.0", "esbuild@0.28.2", "chart.js@4.6.1")
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
