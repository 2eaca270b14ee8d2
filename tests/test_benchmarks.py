"""Smoke test of the benchmark command: one cheap row, no timing asserted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import run


def test_quick_decode_row_prints_a_ratio_and_writes_nothing_with_no_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "RESULTS.md"
    code = run.main(["--quick", "--only", "decode", "--no-write", "--output", str(output)])
    out = capsys.readouterr().out
    line = next((x for x in out.splitlines() if x.startswith("decode ")), "")
    match = re.search(r"\s(\d+(?:\.\d+)?)x\s+<= 0\.5x\s+(PASS|FAIL)\s", line)
    assert match, f"no ratio line for decode in:\n{out}"
    assert code == (0 if match.group(2) == "PASS" else 1)
    assert not output.exists()


def test_results_file_is_written_with_the_machine_and_the_row(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    run.main(["--quick", "--only", "decode", "--output", str(output)])
    text = output.read_text(encoding="utf-8")
    assert "| cpu |" in text and "| python |" in text
    assert re.search(r"\| decode \|.*\| <= 0.5x \| \*\*(PASS|FAIL)\*\* \|", text)


def test_unknown_row_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--only", "no-such-row", "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'no-such-row'" in err and "decode" in err
