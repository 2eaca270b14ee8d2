"""Render the README's screenshots from sample data: ``make screenshots``.

Starts a real monitor on a free port, replays generated traffic into it (matched browser and
server requests with trace ids, and injected differences), renders the dashboard, one endpoint's
drill-down and the HTML report (against a baseline run) in headless Chromium at a fixed viewport,
and writes small PNGs plus ``screenshots.json``: what each picture shows (endpoint keys in view,
charts drawn, waterfalls, report sections), read from the page itself, so a test can check that
the pictures show what the README says they show.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from live_monitor.tools.replay import MonitorPoster  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 800
SEED, EVENTS = 7, 8000
DRILLED = "GET /api/orders/:id"  # the README's example endpoint: the browser waits ~1 s more
TRAFFIC = ["nested_traces", "outgoing_calls", "page_noise"]  # real traffic's shapes, pages and
# static files left out so the endpoints table's box holds every API endpoint
INJECTED = ["latency_gap", "hidden_errors", "tail_latency"]  # the run's news since the baseline
WAVES = 12  # replay batches, one activity sample apart, so the activity chart has a shape
MANIFEST = "screenshots.json"
TIMEOUT_MS = 20_000


# -- sample data and the monitor ----------------------------------------------------------------


def generate(folder: Path, *inject: str) -> None:
    """Sample events of both sides into ``folder`` (generate_sample_logs.py, the seed fixed)."""
    shapes = [arg for name in (*TRAFFIC, *inject) for arg in ("--inject", name)]
    command = [sys.executable, str(ROOT / "generate_sample_logs.py"), "--events", str(EVENTS)]
    command += ["--seed", str(SEED), "--duration-s", "600", "--out-dir", str(folder), *shapes]
    quiet(command)


def quiet(command: list[str], cwd: Path | None = None) -> None:
    """Run a tool, its output kept back unless it fails (RuntimeError with the output)."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}")


def read_events(folder: Path) -> list[dict[str, Any]]:
    """Both sides' events of a generated folder, oldest first."""
    lines = [
        line
        for side in ("backend", "frontend")
        for line in (folder / f"{side}_events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return sorted((json.loads(line) for line in lines), key=lambda e: str(e["timestamp"]))


@contextlib.contextmanager
def monitor() -> Iterator[str]:
    """A monitor on a free loopback port, monitoring at once (samples every 0.5 s), its own
    requests not recorded; yields its URL and stops it afterwards."""
    command = [sys.executable, "-u", str(ROOT / "live_execution_monitor.py"), "--host", "127.0.0.1"]
    command += ["--port", "0", "--autostart", "--interval", "0.5", "--no-self-monitor"]
    env = {**os.environ, "LIVE_MONITOR_OTLP_GRPC_PORT": "0"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    started = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "serving on http://" in line:
                started.set()
        started.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not started.wait(30) or not any("serving on" in line for line in lines):
            raise RuntimeError("the monitor did not start:\n" + "".join(lines))
        url = next(line for line in lines if "serving on" in line).split("serving on ")[1].split()[0]
        until(lambda: _get(f"{url}/health") is not None, "the monitor's /health")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _get(url: str) -> Any:
    """GET a JSON answer, or None when there is none (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)
    except OSError:
        return None


def until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``predicate`` until it answers something truthy; RuntimeError naming ``what`` if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"gave up waiting for {what}")


def samples(url: str) -> int:
    """How many activity samples the monitor has taken (the dashboard's activity chart)."""
    data = _get(f"{url}/api/live-execution/data?limit=1&history=100")
    return len(data["activity_history"]) if data else 0


def sampled_since(url: str, taken: int) -> bool:
    """Whether the monitor has taken an activity sample since it had ``taken``."""
    return samples(url) > taken


def replay(url: str, events: list[dict[str, Any]]) -> None:
    """Post ``events`` in WAVES batches, each after the monitor's next sample, as live traffic
    arrives; every event must be accepted."""
    poster = MonitorPoster(url, rate=0, batch_size=500)
    size = -(-len(events) // WAVES)
    for start in range(0, len(events), size):
        taken = samples(url)
        for event in events[start : start + size]:
            poster.add(event)
        poster.flush()
        until(functools.partial(sampled_since, url, taken), "an activity sample")
    poster.close()
    if poster.accepted != len(events):
        raise RuntimeError(f"the monitor accepted {poster.accepted} of {len(events)}: {poster.errors}")


def report(folder: Path) -> Path:
    """The HTML report of run v2 against baseline v1 (run from ``folder``: short file names)."""
    command = [sys.executable, str(ROOT / "execution_difference_report.py"), "--format", "html"]
    command += ["--backend-data", "v2/backend_events.jsonl", "--frontend-data", "v2/frontend_events.jsonl"]
    command += ["--baseline", "v1/backend_events.jsonl", "v1/frontend_events.jsonl", "-o", "report.html"]
    quiet(command, cwd=folder)
    return folder / "report.html"


# -- what a picture shows, read from the page ---------------------------------------------------

# Elements on screen: inside the viewport, below the sticky top bar and inside their scroll box.
IN_VIEW = """(nodes) => nodes.filter((n) => {
    const r = n.getBoundingClientRect(), bar = document.querySelector('.topbar');
    const box = n.closest('.table-scroll')?.getBoundingClientRect();
    const top = Math.max(bar ? bar.getBoundingClientRect().bottom : 0, box ? box.top : 0);
    const bottom = Math.min(innerHeight, box ? box.bottom : innerHeight);
    const middle = r.top + r.height / 2;
    return r.width > 0 && (n.closest('.topbar') ? middle > 0 : middle > top) && middle < bottom;
})"""


def keys_in_view(page: Page, selector: str, attribute: str) -> list[str]:
    """``attribute`` of the elements matching ``selector`` that are on screen."""
    return page.eval_on_selector_all(
        selector, f"(n) => ({IN_VIEW})(n).map((e) => e.getAttribute('{attribute}'))"
    )


def texts_in_view(page: Page, selector: str) -> list[str]:
    """Text of the elements matching ``selector`` that are on screen."""
    return page.eval_on_selector_all(selector, f"(n) => ({IN_VIEW})(n).map((e) => e.textContent.trim())")


def labels_in_view(page: Page) -> list[str]:
    """The report's bar labels on screen: the full text of each SVG label's <title>."""
    return page.eval_on_selector_all(
        "svg text",
        f"(n) => ({IN_VIEW})(n.filter((t) => t.querySelector('title'))).map((t) => t.firstChild.textContent)",
    )


def charts_in_view(page: Page) -> list[str]:
    """Ids of the on-screen canvases whose Chart.js chart has at least one non-empty dataset."""
    return page.eval_on_selector_all(
        "canvas[id]",
        f"""(n) => ({IN_VIEW})(n).filter((c) => {{
            const chart = window.Chart && Chart.getChart(c);
            return chart && chart.data.datasets.some((d) => (d.data || []).some((v) => v !== null && v !== 0));
        }}).map((c) => c.id)""",
    )


def settle(page: Page) -> None:
    """Wait until the web fonts are in and two frames have been painted since the last change."""
    page.evaluate("document.fonts.ready")
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def scroll_to(page: Page, selector: str) -> None:
    """Scroll ``selector``'s top just below the sticky top bar (as the drill-down opens)."""
    page.locator(selector).first.evaluate(
        """(e) => {
            const bar = document.querySelector('.topbar');
            const below = bar ? bar.getBoundingClientRect().height + 16 : 0;
            scrollTo(0, e.getBoundingClientRect().top + scrollY - below);
        }"""
    )
    settle(page)


# -- the shots ----------------------------------------------------------------------------------


def dashboard(camera: Camera, url: str) -> dict[str, dict[str, Any]]:
    """The dashboard's top (figures, differences, comparison) and its charts and endpoints."""
    page = camera.page
    page.goto(f"{url}/?refresh=300")  # one poll: nothing redraws while the picture is taken
    drawn = """(waves) => document.querySelectorAll('#endpoint-table tr[data-key]').length >= 7
        && (window.Chart?.getChart(document.getElementById('chart-activity'))?.data.labels.length || 0) >= waves"""
    until(lambda: page.evaluate(drawn, WAVES), "the dashboard's endpoints and activity chart")
    page.wait_for_selector("#history-list .history-item")
    settle(page)
    top = {
        "differences": keys_in_view(page, "#alerts .alert", "data-severity"),
        "headings": texts_in_view(page, "h1, h2"),
        "charts": charts_in_view(page),
    }
    camera.shot("dashboard.png")
    scroll_to(page, ".grid-charts")
    endpoints = {
        "endpoints": keys_in_view(page, "#endpoint-table tr[data-key]", "data-key"),
        "headings": texts_in_view(page, "h2"),
        "charts": charts_in_view(page),
    }
    camera.shot("dashboard-endpoints.png")
    return {"dashboard.png": top, "dashboard-endpoints.png": endpoints}


def drill_down(camera: Camera, url: str) -> dict[str, dict[str, Any]]:
    """The drill-down of DRILLED, opened by its address, scrolled to its top."""
    page = camera.page
    page.goto(f"{url}/?refresh=300#endpoint={quote(DRILLED, safe='')}")
    page.wait_for_selector("#endpoint-view[data-state=ready] #drill-waterfalls .waterfall")
    scroll_to(page, "#endpoint-view")
    sides = page.evaluate(
        """() => [...new Set(Chart.getChart(document.getElementById('drill-latency')).data.datasets
            .filter((d) => !d.marker && d.data.length).map((d) => d.side))].sort()"""
    )
    facts = {
        "endpoint": page.locator("#drill-title code").inner_text(),
        "latency_sides": sides,
        "waterfalls": keys_in_view(page, "#drill-waterfalls .waterfall", "data-trace"),
        "headings": texts_in_view(page, "#endpoint-view h2, #endpoint-view h3"),
        "charts": charts_in_view(page),
    }
    camera.shot("drill-down.png")
    return {"drill-down.png": facts}


def heading_to_top(page: Page, text: str) -> None:
    """Scroll the report so the h2 reading ``text`` is near the top."""
    page.locator("h2", has_text=text).evaluate(
        "(e) => scrollTo(0, e.getBoundingClientRect().top + scrollY - 24)"
    )
    settle(page)


def html_report(camera: Camera, path: Path) -> dict[str, dict[str, Any]]:
    """The report's per-endpoint bars of both sides, and its "Since the Baseline" section."""
    page = camera.page
    page.goto(path.as_uri())
    heading_to_top(page, "Endpoints: Frontend vs Backend")
    bars = {
        "headings": texts_in_view(page, "h1, h2"),
        "charts": keys_in_view(page, "svg[aria-label]", "aria-label"),
        "endpoints": sorted(set(labels_in_view(page))),
    }
    camera.shot("report.png")
    heading_to_top(page, "Since the Baseline")
    rows = page.eval_on_selector_all(
        "table tr",
        f"""(n) => ({IN_VIEW})(n).map((r) => [...r.cells].map((c) => c.textContent.trim()))
            .filter((cells) => cells.some((c) => c.endsWith(' regression')))""",
    )
    facts = {"headings": texts_in_view(page, "h2, h3"), "regressions": [[r[0], r[1], r[2]] for r in rows]}
    camera.shot("report-baseline.png")
    return {"report.png": bars, "report-baseline.png": facts}


class Camera:
    """A page at the fixed viewport that writes its shots into one folder."""

    def __init__(self, page: Page, out: Path) -> None:
        self.page, self.out = page, out

    def shot(self, name: str) -> None:
        """The viewport as a PNG of at most 256 colours (a third of the bytes, alike to the eye)."""
        from PIL import Image

        target = self.out / name
        self.page.screenshot(path=str(target))
        with Image.open(target) as image:
            small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        small.save(target, optimize=True)


def capture(browser: Browser, url: str, report_file: Path, out: Path) -> dict[str, Any]:
    """Every shot into ``out``; the manifest of what each shows."""
    context = browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1, locale="en-US", timezone_id="UTC"
    )
    context.set_default_timeout(TIMEOUT_MS)
    camera = Camera(context.new_page(), out)
    try:
        shots = {**dashboard(camera, url), **drill_down(camera, url), **html_report(camera, report_file)}
    finally:
        context.close()
    return {"viewport": [WIDTH, HEIGHT], "seed": SEED, "events": EVENTS, "shots": shots}


def run(out: Path) -> dict[str, Any]:
    """Generate a baseline run (v1) and a run with injected differences (v2), replay v2 into a
    monitor, render everything; returns the manifest (also written to ``out``)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium (make system-packages)")
    if not (ROOT / "static/vendor/chart.umd.js").exists():
        raise RuntimeError("static/vendor/chart.umd.js is missing: make assets")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenshots-") as temp:
        folder = Path(temp)
        generate(folder / "v1")
        generate(folder / "v2", *INJECTED)
        report_file = report(folder)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
            )
            try:
                with monitor() as url:
                    replay(url, read_events(folder / "v2"))
                    manifest = capture(browser, url, report_file, out)
            finally:
                browser.close()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots and their manifest; 1 with a message when something is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="default: docs/images/")
    args = parser.parse_args(argv)
    try:
        manifest = run(args.out)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    for name in manifest["shots"]:
        path = args.out / name
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
