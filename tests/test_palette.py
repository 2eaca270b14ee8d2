"""The sides' one palette: the dashboard's CSS (:root), its charts' JavaScript (COLORS) and the
HTML report (Python) each hold it once and hold the same colours; each colour reads as text on the
background it is written on (WCAG 2.1 contrast); and no severity looks like a side, for normal,
red-blind and green-blind vision (CIEDE2000 difference on ColorAide's simulations)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from coloraide import Color

from live_monitor.model.thresholds import Thresholds
from live_monitor.tools import render
from live_monitor.tools.report import report_from_files
from live_monitor.vocabulary import Service
from tests.helpers import ROOT, verdict_traffic

STATIC = ROOT / "static"
CSS = (STATIC / "dashboard.css").read_text(encoding="utf-8")
CHARTS = (STATIC / "dashboard-charts.js").read_text(encoding="utf-8")
SIDES = ["backend", "frontend", "gap"]
SEVERITIES = ["high", "medium", "low"]
VISIONS = [None, "protan", "deutan"]  # normal vision, no red cones, no green cones
TEXT_CONTRAST = 4.5  # WCAG 2.1 AA for normal text
APART = 12.0  # CIEDE2000: at 12 and more two colours read as different at a glance


def css_root() -> dict[str, str]:
    """The custom properties of dashboard.css's :root that are plain #rrggbb colours."""
    root = re.search(r":root\s*\{([^}]*)\}", CSS)
    assert root, "no :root in dashboard.css"
    return {
        name: value.lower()
        for name, value in re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1))
    }


def js_colors() -> dict[str, str]:
    """dashboard-charts.js's ``const COLORS = {...};`` entries that are #rrggbb colours."""
    block = re.search(r"const COLORS = \{([^}]*)\};", CHARTS)
    assert block, "no `const COLORS = {...};` in dashboard-charts.js"
    return {
        name: value.lower() for name, value in re.findall(r'(\w+):\s*"(#[0-9a-fA-F]{6})"', block.group(1))
    }


def report_severities() -> dict[str, str]:
    """The severity badge colours of the HTML report's stylesheet."""
    return {
        name: value.lower()
        for name, value in re.findall(r"\.badge\.(\w+)\{background:(#[0-9a-fA-F]{6})\}", render.CSS)
    }


def traffic(folder: Path) -> list[tuple[Path, Service]]:
    """Event files of both sides (the verdicts' traffic) for a report."""
    backend, frontend = verdict_traffic()
    (folder / "backend.jsonl").write_text("".join(json.dumps(e) + "\n" for e in backend))
    (folder / "frontend.jsonl").write_text("".join(json.dumps(e) + "\n" for e in frontend))
    return [(folder / "backend.jsonl", "backend"), (folder / "frontend.jsonl", "frontend")]


def apart(a: str, b: str) -> float:
    """The least CIEDE2000 difference of ``a`` and ``b`` over the visions in VISIONS."""
    return min(
        Color(a).filter(v).delta_e(Color(b).filter(v), method="2000")
        if v
        else Color(a).delta_e(b, method="2000")
        for v in VISIONS
    )


def contrast(text: str, background: str) -> float:
    return Color(text).contrast(background, method="wcag21")


def test_the_dashboard_css_its_charts_and_the_report_paint_the_sides_alike(tmp_path: Path) -> None:
    palette = {side: render.SIDE_COLORS[side].lower() for side in SIDES}
    root, js = css_root(), js_colors()
    assert {side: root.get(side) for side in SIDES} == palette
    assert {side: js.get(side) for side in SIDES} == palette
    assert root["error"] == js["error"]  # the error slices beside the sides' in the charts
    report = render.render_html(report_from_files(traffic(tmp_path), Thresholds()))
    for side in ("backend", "frontend"):
        assert f'fill="{palette[side]}"' in report, side  # its bars and its legend's swatch


@pytest.mark.parametrize("side", SIDES)
def test_each_side_colour_is_written_once_per_language(side: str) -> None:
    colour = render.SIDE_COLORS[side].lower()
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    spelled = re.compile(rf"{colour}\b|rgba?\(\s*{red},\s*{green},\s*{blue}\b", re.IGNORECASE)
    assert len(spelled.findall(CSS)) == 1, f"dashboard.css: use var(--{side})"
    scripts = "".join(path.read_text(encoding="utf-8") for path in sorted(STATIC.glob("dashboard*.js")))
    assert len(spelled.findall(scripts)) == 1, "the dashboard's scripts: use LiveDashboard.charts.COLORS"
    source = (ROOT / "live_monitor" / "tools" / "render.py").read_text(encoding="utf-8")
    assert len(spelled.findall(source)) == 1, "render.py: use SIDE_COLORS"


def test_side_colours_read_as_text_on_the_backgrounds_they_are_written_on() -> None:
    root = css_root()
    for side in SIDES:
        for background in ("bg", "card", "card-2"):  # the page, and a card's two ends
            assert contrast(root[side], root[background]) >= TEXT_CONTRAST, (side, background)
    report_background = "#ffffff"
    for side in SIDES:
        assert contrast(render.SIDE_TEXT_COLORS[side], report_background) >= TEXT_CONTRAST, side
        assert contrast(render.SIDE_COLORS[side], report_background) < TEXT_CONTRAST  # so the text variant
    assert f"svg text.side-backend{{fill:{render.SIDE_TEXT_COLORS['backend']}" in render.CSS
    for severity in SEVERITIES:  # white words on the report's badges, the dashboard's own words
        assert contrast("#ffffff", report_severities()[severity]) >= TEXT_CONTRAST, severity
        assert contrast(root[severity], root["card-2"]) >= TEXT_CONTRAST, severity


def test_no_severity_looks_like_a_side() -> None:
    root, report = css_root(), report_severities()
    assert set(report) == set(SEVERITIES)
    for side in SIDES:
        for severity in [*SEVERITIES, "error"]:
            assert apart(root[side], root[severity]) >= APART, ("dashboard", side, severity)
        for severity in SEVERITIES:
            assert apart(render.SIDE_COLORS[side], report[severity]) >= APART, ("report", side, severity)
    # the check can fail: the amber and blue the dashboard's severities had read as the sides
    assert apart(root["frontend"], "#fbbf24") < APART and apart(root["backend"], "#60a5fa") < APART
