"""The thresholds: checked when loaded, and the README's table is generated from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from live_monitor.model.thresholds import Thresholds, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_thresholds_table_is_the_generated_one():
    assert markdown_table() in README.read_text(encoding="utf-8")


def test_a_thresholds_file_sets_the_confidence_level(tmp_path: Path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"confidence_level": 0.99, "endpoint_tail_gap_ms": [300, 600, 900]}))
    loaded = Thresholds.from_file(path)
    assert loaded.confidence_level == 0.99 and loaded.endpoint_tail_gap_ms == (300, 600, 900)


@pytest.mark.parametrize("bad", [1.0, 0.2, True, "0.95"])
def test_a_confidence_level_outside_half_to_one_is_refused(bad):
    with pytest.raises(ValueError, match="confidence_level must be"):
        Thresholds(confidence_level=bad)
