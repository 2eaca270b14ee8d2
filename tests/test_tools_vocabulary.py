"""The tools speak the monitor's vocabulary and stay free of the web stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from live_monitor.tools.render import RECOMMENDATIONS, TITLES, render_markdown
from live_monitor.vocabulary import DIFFERENCE_TYPES, SERVICES, DifferenceType

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", DIFFERENCE_TYPES)
def test_every_difference_type_has_a_title_and_a_recommendation_for_each_side(kind: str) -> None:
    assert kind in TITLES
    for side in SERVICES:
        assert any(key[0] == kind and key[2] == side for key in RECOMMENDATIONS), (kind, side)


@pytest.mark.parametrize("kind", DIFFERENCE_TYPES)
def test_the_report_names_every_difference_type_in_its_own_words(kind: DifferenceType) -> None:
    diff = {
        "type": kind,
        "severity": "high",
        "scope": "service",
        "key": None,
        "backend": {"count": 90, "events": 90, "error_rate": 0.5, "avg_ms": 90.0},
        "frontend": {"count": 10, "events": 10, "error_rate": 0.0, "avg_ms": 10.0},
        "difference_pct": 80.0,
        "message": "the sides differ",
    }
    summary = {"generated_at": "now", "source": {"kind": "files", "files": []}}
    text = render_markdown(
        {"summary": {**summary, "backend": {}, "frontend": {}, "comparison": {}}, "differences": [diff]}
    )
    assert f"{TITLES[kind]}: whole service" in text
    assert f"{TITLES[kind]}\nBackend: " in text


def test_the_tools_never_import_the_web_stack() -> None:
    code = (
        "import sys, execution_difference_report, log_analysis_tool, generate_sample_logs\n"
        "import live_monitor.tools.files, live_monitor.tools.render, live_monitor.tools.replay\n"
        "import live_monitor.tools.report, live_monitor.tools.logs, live_monitor.tools.samples\n"
        "print(sorted({'flask', 'werkzeug', 'waitress', 'flask_cors'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
