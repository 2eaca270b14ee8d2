"""One reader, one validator: the same odd event file gives the same answer in both CLIs.

Each test runs one file through execution_difference_report.py and log_analysis_tool.py.
The report gets the file as both sides (as a /data export holding both may be given), so
its summary counts the file's backend and frontend events as the log analysis does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import execution_difference_report
import log_analysis_tool
from live_monitor.tools import files

BACKEND = {"service": "backend", "component": "http", "action": "GET /api/a", "duration_ms": 10.0}
FRONTEND = {"service": "frontend", "component": "api", "action": "GET /api/a", "duration_ms": 30.0}


def events(n: int = 4) -> list[dict[str, Any]]:
    """n events, alternately the backend's and the frontend's, one second apart."""
    return [
        {**(BACKEND if i % 2 == 0 else FRONTEND), "timestamp": 1735689600 + i, "status": "success"}
        for i in range(n)
    ]


def jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def report(
    capsys: pytest.CaptureFixture[str], path: Path, frontend: Path | None = None
) -> tuple[int, dict[str, Any], str]:
    """The report of ``path`` as both sides (or as the backend's): exit code, its JSON (or {}), stderr."""
    code = execution_difference_report.main(
        ["--format", "json", "--backend-data", str(path), "--frontend-data", str(frontend or path)]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def analysis(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """The log analysis of ``path``: exit code, its JSON (or {}), stderr."""
    code = log_analysis_tool.main([str(path), "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def counts(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """(backend, frontend) events of ``path`` as the report and as the log analysis count them."""
    code, doc, err = report(capsys, path)
    assert code == 0, err
    by_report = (doc["summary"]["backend"]["total_events"], doc["summary"]["frontend"]["total_events"])
    code, doc, err = analysis(capsys, path)
    assert code == 0, err
    rows = {row["service"]: row["count"] for row in doc["groups"]}
    return by_report, (rows.get("backend", 0), rows.get("frontend", 0))


def both_fail(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[str, str]:
    """Both tools refuse ``path`` as an input error (exit 1, one line, no traceback): their stderr."""
    code, _, report_err = report(capsys, path)
    assert code == 1 and report_err.startswith("error: ") and "Traceback" not in report_err
    code, _, analysis_err = analysis(capsys, path)
    assert code == 1 and analysis_err.startswith("error: ") and "Traceback" not in analysis_err
    return report_err, analysis_err


# --- which format a file is ----------------------------------------------------------------------


def test_json_lines_after_blank_lines_are_read_by_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: the first character that is not blank decides the format (the report used to
    try a JSON Lines file that starts with a blank line as one document, and refuse it)."""
    path = tmp_path / "late.jsonl"
    path.write_text("\n\n" + jsonl(events(4)))
    assert counts(capsys, path) == ((2, 2), (2, 2))


def test_an_array_after_more_blank_bytes_than_any_header_is_read_by_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: no header size: the report looked 64 bytes in, the log analysis 4096."""
    path = tmp_path / "late.json"
    path.write_text(" \n" * 5000 + json.dumps(events(6), indent=2))
    assert counts(capsys, path) == ((3, 3), (3, 3))


def test_json_lines_of_batches_are_read_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: any object without a timestamp that holds a list under 'events' or 'recent_events'
    stands for those events, as a whole file or as one line (the report read it only as a
    whole file, and refused JSON Lines of ingest batches)."""
    batches = [{"events": events(4)}, {"recent_events": events(2)}]
    path = tmp_path / "batches.jsonl"
    path.write_text(jsonl(batches))
    assert counts(capsys, path) == ((3, 3), (3, 3))
    one_line = tmp_path / "batch.json"
    one_line.write_text(jsonl(batches[:1]))
    assert counts(capsys, one_line) == ((2, 2), (2, 2))


def test_a_pretty_printed_export_is_read_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"backend": {"total_events": 9}, "recent_events": events(6)}, indent=2))
    assert counts(capsys, path) == ((3, 3), (3, 3))


def test_a_document_over_the_size_cap_is_refused_by_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule: a JSON document that is not an array is decoded whole, so both cap it (the report
    had no cap, the log analysis read a bigger one as JSON Lines and failed on its first line)."""
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"recent_events": events(6)}, indent=2))
    monkeypatch.setattr(files, "MAX_DOCUMENT", path.stat().st_size - 1)
    for err in both_fail(capsys, path):
        assert f"{path}: a JSON document over" in err and "JSON array or JSON Lines" in err


def test_a_first_line_that_is_not_json_is_named_by_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: a file that starts with '{' but is not one document is JSON Lines, so the bad line
    is named (the report said only that the file was malformed) and can be skipped."""
    path = tmp_path / "torn.jsonl"
    path.write_text('{"timestamp": 1735689600, "serv\n' + jsonl(events(4)))
    for err in both_fail(capsys, path):
        assert f"{path}:1: malformed JSON" in err
    code, doc, _ = analysis(capsys, path, "--skip-bad-lines")
    assert code == 0 and doc["summary"]["events"] == 4 and doc["summary"]["bad_lines_skipped"] == 1


# --- which record is an event ----------------------------------------------------------------------


def test_a_bad_record_is_named_by_file_and_line_in_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule: both tools locate a bad record as file:line (the report counted 'event #N')."""
    records = events(4)
    records[2]["duration_ms"] = -1
    path = tmp_path / "negative.jsonl"
    path.write_text(jsonl(records))
    for err in both_fail(capsys, path):
        assert f"{path}:3: 'duration_ms' must be >= 0, not -1" in err


def test_an_unknown_service_is_refused_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a service is 'backend' or 'frontend', as in the monitor (the log analysis took any)."""
    path = tmp_path / "worker.jsonl"
    path.write_text(jsonl([*events(2), {**events(1)[0], "service": "worker"}]))
    for err in both_fail(capsys, path):
        assert f"{path}:3: 'service' must be 'backend' or 'frontend', not 'worker'" in err


def test_an_infinite_duration_is_refused_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a duration is finite (the report took 1e400 in an array as infinity)."""
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(events(2))[:-1] + ', {"timestamp": 1735689700, "service": "backend", '
                    '"component": "http", "action": "GET /api/a", "duration_ms": 1e400}]')  # fmt: skip
    for err in both_fail(capsys, path):
        assert f"{path}:1: 'duration_ms' must be >= 0, not inf" in err


def test_log_lines_are_read_by_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: a log line (level or logger) without component and action is no event, and one with
    them is the backend's, failed when its level is ERROR or worse and it has no status (the
    report refused backend.log files)."""
    path = tmp_path / "backend.log"
    lines = [
        {"timestamp": 1735689600, "level": "INFO", "logger": "app", "message": "started"},
        {"timestamp": 1735689601, "level": "INFO", "logger": "app.http", **BACKEND, "status": "success"},
        {"timestamp": 1735689602, "level": "ERROR", "logger": "app.http", **BACKEND},
        {"timestamp": 1735689603, "level": "INFO", "logger": "app.http", **BACKEND},
    ]
    for line in lines[1:]:
        line.pop("service", None)
    path.write_text(jsonl(lines))
    browser = tmp_path / "frontend.jsonl"
    browser.write_text(jsonl(events(2)[1:]))
    code, doc, err = report(capsys, path, browser)
    assert code == 0, err
    assert doc["summary"]["backend"]["total_events"] == 3 and doc["summary"]["backend"]["error_count"] == 1
    code, doc, err = analysis(capsys, path)
    assert code == 0, err
    assert doc["summary"]["log_lines_without_event"] == 1
    assert [(r["service"], r["count"], r["error_count"]) for r in doc["groups"]] == [("backend", 3, 1)]


def test_an_empty_trace_id_is_no_trace_in_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: an empty trace id is none (the log analysis listed it as one)."""
    path = tmp_path / "traces.jsonl"
    path.write_text(jsonl([{**e, "trace_id": ""} for e in events(2)]))
    code, doc, err = analysis(capsys, path, "--slowest", "1")
    assert code == 0, err
    assert doc["slowest"][0]["trace_id"] is None
    code, doc, err = report(capsys, path)
    assert code == 0 and doc["summary"]["endpoints"][0]["matched_requests"] == 0


def test_input_error_is_the_one_error_of_the_tools() -> None:
    """Both CLIs and the reader raise the same type, a ValueError for callers that catch those."""
    assert execution_difference_report.InputError is files.InputError
    assert log_analysis_tool.InputError is files.InputError
    assert issubclass(files.InputError, ValueError)
