"""The report prints each difference with what it rests on and how sure it is, in every format."""

from __future__ import annotations

import json
from pathlib import Path

from live_monitor.model.thresholds import Thresholds
from live_monitor.tools import render
from live_monitor.tools.report import report_from_files
from live_monitor.vocabulary import Service
from tests.helpers import verdict_traffic


def test_every_difference_shows_its_samples_and_confidence(tmp_path: Path):
    backend, frontend = verdict_traffic()
    sources: list[tuple[Path, Service]] = []
    for side, events in (("backend", backend), ("frontend", frontend)):
        path = tmp_path / f"{side}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        sources.append((path, "backend" if side == "backend" else "frontend"))
    report = report_from_files(sources, Thresholds())
    lines = [render.evidence(d) for d in report["differences"]]
    assert "Samples: 120 backend, 120 frontend; 97.9% sure it is not chance" in lines
    assert any(line.endswith("; not tested") for line in lines)
    markdown, html = render.render_markdown(report), render.render_html(report)
    for line in lines:
        assert line in markdown and line in html
    tail = next(d for d in report["differences"] if d["key"] == "GET /api/report")
    assert "tail-only" in tail["message"] and "10 of 100 calls" in tail["message"]
