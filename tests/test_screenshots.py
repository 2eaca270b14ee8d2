"""The README's screenshots: scripts/screenshots.py is run once into a temporary folder (a real
monitor, real sample traffic, real Chromium), and its pictures are checked for what a reader of
the README would notice: the stated size, small files, not blank, the drill-down's two side
colours painted, and (from the manifest the script reads off each page) the endpoints, charts,
waterfalls and regressions in view. The README must show every shot, and every image it names
must exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image

from tests.helpers import BACKEND_RGB, FRONTEND_RGB, ROOT

pytestmark = pytest.mark.timeout(120)

KEY = "GET /api/orders/:id"  # the drilled endpoint: its browser waits ~1 s longer than its server
SIZE = (1280, 800)
MAX_BYTES = 300 * 1024
SHOTS = ["dashboard.png", "dashboard-endpoints.png", "drill-down.png", "report.png", "report-baseline.png"]
SIDE_RGB = {"backend": BACKEND_RGB, "frontend": FRONTEND_RGB}  # the one palette's sides
# The sides' colours before the one palette, per view (the check can fail): the dashboard's
# indigo/teal and the report's dark teal/purple. Each is looked for where it was used, since
# the dark teal is also what a green drawn over the dashboard's navy can blend into.
FORMER_SIDE_RGB = {
    "dashboard": [(129, 140, 248), (45, 212, 191)],
    "report": [(15, 118, 110), (124, 58, 237)],
}
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The folder the script wrote and its manifest."""
    out = tmp_path_factory.mktemp("shots")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out, json.loads((out / "screenshots.json").read_text())


def colours(path: Path) -> Counter[tuple[int, ...]]:
    """How many pixels of each colour (red, green, blue) the picture has."""
    with Image.open(path) as image:
        return Counter(cast("tuple[tuple[int, ...], ...]", image.convert("RGB").get_flattened_data()))


def near(counts: Counter[tuple[int, ...]], rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    """Pixels within ``tolerance`` of ``rgb`` on every channel."""
    return sum(
        n for c, n in counts.items() if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True))
    )


def test_every_shot_is_a_small_picture_of_the_viewport_with_something_drawn(
    shots: tuple[Path, dict[str, Any]],
) -> None:
    out, manifest = shots
    assert list(manifest["shots"]) == SHOTS and manifest["viewport"] == list(SIZE)
    for name in SHOTS:
        path = out / name
        assert path.stat().st_size < MAX_BYTES, (name, path.stat().st_size)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == SIZE, name
        counts = colours(path)
        background = counts.most_common(1)[0][1]
        assert len(counts) > 50, (name, len(counts))  # text, tables and charts, not a flat page
        assert background < 0.97 * SIZE[0] * SIZE[1], name  # a blank page is all one colour


def test_the_dashboard_shots_show_differences_charts_and_every_api_endpoint(
    shots: tuple[Path, dict[str, Any]],
) -> None:
    top, endpoints = (shots[1]["shots"][name] for name in ("dashboard.png", "dashboard-endpoints.png"))
    assert "high" in top["differences"]
    assert {"Execution Differences", "Performance Comparison"} <= set(top["headings"])
    # the injected shapes: a latency gap, hidden server errors, a tail-only slowdown
    assert {KEY, "POST /api/cart", "GET /api/products/:id"} <= set(endpoints["endpoints"])
    assert not [key for key in endpoints["endpoints"] if "/static/" in key or key == "GET /"]
    assert {"chart-performance", "chart-activity", "chart-success-backend"} <= set(endpoints["charts"])


def test_the_drill_down_shot_shows_both_distributions_the_gaps_and_waterfalls(
    shots: tuple[Path, dict[str, Any]],
) -> None:
    out, manifest = shots
    drill = manifest["shots"]["drill-down.png"]
    assert drill["endpoint"] == KEY
    assert drill["latency_sides"] == ["backend", "frontend"]
    assert drill["charts"] == ["drill-latency", "drill-gaps", "drill-calls"]
    assert drill["waterfalls"] and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in drill["waterfalls"])
    assert {"Latency, both sides", "Gap of matched requests", "Slowest matched requests"} <= set(
        drill["headings"]
    )
    counts = colours(out / "drill-down.png")
    painted = {side: near(counts, rgb) for side, rgb in SIDE_RGB.items()}
    assert min(painted.values()) > 2000, painted  # bars, outlines and waterfalls of both sides


def test_every_picture_paints_the_sides_in_the_one_palette(shots: tuple[Path, dict[str, Any]]) -> None:
    """The overview's charts and the report's bars show each side in the same colour as the
    drill-down; the colours the sides had before (indigo/teal, teal/purple) are nowhere."""
    out = shots[0]
    for name, least in (("dashboard-endpoints.png", 2000), ("report.png", 2000)):
        counts = colours(out / name)
        painted = {side: near(counts, rgb) for side, rgb in SIDE_RGB.items()}
        assert min(painted.values()) > least, (name, painted)
    for name in SHOTS:
        counts = colours(out / name)
        former = FORMER_SIDE_RGB["report" if name.startswith("report") else "dashboard"]
        assert not [rgb for rgb in former if near(counts, rgb) > 100], name


def test_the_report_shots_show_the_endpoints_and_only_the_injected_regressions(
    shots: tuple[Path, dict[str, Any]],
) -> None:
    bars, baseline = (shots[1]["shots"][name] for name in ("report.png", "report-baseline.png"))
    assert "p50 duration per endpoint (ms)" in bars["charts"]
    assert {KEY, "POST /api/cart", "GET /api/products/:id"} <= set(bars["endpoints"])
    assert baseline["headings"][0] == "Since the Baseline"
    regressions = {tuple(r) for r in baseline["regressions"]}
    assert {
        (KEY, "frontend", "p50"),
        (KEY, "both", "gap p50"),
        ("POST /api/cart", "backend", "error rate"),
    } <= regressions
    injected = {KEY, "POST /api/cart", "GET /api/products/:id"}
    assert {key for key, _, _ in regressions} <= injected


def test_the_readme_shows_every_shot_and_every_image_it_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    images = IMAGE.findall(readme)
    named = {path for _, path in images}
    assert {f"docs/images/{name}" for name in SHOTS} <= named
    for alt, path in images:
        assert len(alt) > 20, path  # says what the picture shows
        assert (ROOT / path).is_file(), path
    committed = json.loads((ROOT / "docs/images/screenshots.json").read_text())
    assert list(committed["shots"]) == SHOTS
    for name in SHOTS:
        path = ROOT / "docs/images" / name
        with Image.open(path) as image:
            assert image.size == SIZE and path.stat().st_size < MAX_BYTES, name
    assert "make screenshots" in readme
