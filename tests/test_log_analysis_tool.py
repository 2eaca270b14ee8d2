"""log_analysis_tool.py: figures against hand-computed values, filters, inputs, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import generate_sample_logs
import log_analysis_tool as tool

# A small log: five backend operations, three frontend ones, and one plain log line.
EVENTS: list[dict[str, Any]] = [
    {"timestamp": "2025-01-01T00:00:10Z", "service": "backend", "component": "http", "action": "GET /api/a", "duration_ms": 10, "status": "success"},
    {"timestamp": "2025-01-01T00:00:50", "service": "backend", "component": "http", "action": "GET /api/a", "duration_ms": 30, "status": "error"},
    {"timestamp": "2025-01-01T00:01:10.500+00:00", "service": "backend", "component": "db", "action": "query orders", "duration_ms": 5, "status": "success"},
    {"timestamp": "2025-01-01T00:01:20Z", "service": "frontend", "component": "api", "action": "GET /api/a", "duration_ms": 40, "status": "success", "trace_id": "ab" * 16},
    {"timestamp": "2025-01-01T00:02:00Z", "service": "frontend", "component": "click", "action": "button#buy", "duration_ms": None, "status": "success"},
    {"timestamp": "2025-01-01T00:02:30Z", "level": "INFO", "logger": "app", "message": "server started"},
    {"timestamp": "2025-01-01T00:03:00Z", "level": "ERROR", "logger": "app.http", "message": "boom", "service": "backend", "component": "http", "action": "GET /api/b", "duration_ms": 100},
    {"timestamp": 1735690000.0, "service": "frontend", "component": "api", "action": "GET /api/a", "duration_ms": 60, "status": "error"},
    {"timestamp": "2025-01-01T00:08:00Z", "service": "backend", "component": "db", "action": "query orders", "duration_ms": 20, "status": "success"},
]  # fmt: skip
# 1735690000 is 2025-01-01T00:06:40Z


def write_jsonl(path: Path, records: list[Any], bad_at: int | None = None) -> Path:
    lines = [json.dumps(r) for r in records]
    if bad_at is not None:
        lines.insert(bad_at - 1, '{"timestamp": "2025-01-01T00:00:00Z", "service": ')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "events.jsonl", EVENTS)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = tool.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> dict[str, Any]:
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def rows_by(
    report: dict[str, Any], *columns: str, section: str = "groups"
) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(row[c] for c in columns): row for row in report[section]}


def test_group_by_service_matches_hand_computed(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, small)
    rows = rows_by(report, "service")
    backend, frontend = rows[("backend",)], rows[("frontend",)]
    # backend: 10, 30 (error), 5, 100 (ERROR log level), 20 -> sorted 5 10 20 30 100
    assert (backend["count"], backend["error_count"], backend["timed_count"]) == (5, 2, 5)
    assert backend["error_rate"] == 0.4
    assert backend["avg_ms"] == 33.0 and backend["max_ms"] == 100
    assert backend["p50_ms"] == pytest.approx(20, rel=0.02)
    # frontend: 40, click (untimed), 60 (error)
    assert (frontend["count"], frontend["error_count"], frontend["timed_count"]) == (3, 1, 2)
    assert frontend["avg_ms"] == 50.0 and frontend["max_ms"] == 60
    summary = report["summary"]
    assert (summary["records"], summary["events"], summary["log_lines_without_event"]) == (9, 8, 1)
    assert summary["first_timestamp"] == "2025-01-01T00:00:10.000Z"
    assert summary["last_timestamp"] == "2025-01-01T00:08:00.000Z"


def test_group_by_component_action_and_endpoint(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows_by(run_json(capsys, small, "--group-by", "component"), "service", "component")
    assert {k: r["count"] for k, r in rows.items()} == {
        ("backend", "http"): 3,
        ("backend", "db"): 2,
        ("frontend", "api"): 2,
        ("frontend", "click"): 1,
    }
    assert rows[("backend", "db")]["avg_ms"] == 12.5
    rows = rows_by(run_json(capsys, small, "--group-by", "action"), "service", "component", "action")
    assert rows[("backend", "http", "GET /api/b")]["error_count"] == 1
    assert rows[("backend", "http", "GET /api/a")]["avg_ms"] == 20.0
    report = run_json(capsys, small, "--group-by", "endpoint")
    rows = rows_by(report, "service", "endpoint")
    assert set(rows) == {("backend", "GET /api/a"), ("backend", "GET /api/b"), ("frontend", "GET /api/a")}
    assert rows[("frontend", "GET /api/a")]["error_rate"] == 0.5
    assert report["summary"]["not_grouped"] == 3  # two db queries and the click


def test_since_until_filter(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, small, "--since", "2025-01-01T00:01:00", "--until", "1735689900")  # 00:05:00
    rows = rows_by(report, "service")
    assert rows[("backend",)]["count"] == 2  # the db query at 00:01:10 and the ERROR log at 00:03
    assert rows[("frontend",)]["count"] == 2  # the api call at 00:01:20 and the click at 00:02
    assert report["summary"]["filtered_out"] == 4
    code, _, err = run(capsys, small, "--since", "2025-01-02", "--until", "2025-01-01")
    assert code == 2 and "--since must be before --until" in err


def test_time_buckets(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, small, "--bucket", "5m")
    counts = {(r["bucket"], r["service"]): r["count"] for r in report["groups"]}
    assert counts == {
        ("2025-01-01T00:00:00.000Z", "backend"): 4,
        ("2025-01-01T00:00:00.000Z", "frontend"): 2,
        ("2025-01-01T00:05:00.000Z", "backend"): 1,
        ("2025-01-01T00:05:00.000Z", "frontend"): 1,
    }


def test_slowest(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, small, "--slowest", "3")
    slowest = report["slowest"]
    assert [(s["action"], s["duration_ms"]) for s in slowest] == [
        ("GET /api/b", 100),
        ("GET /api/a", 60),
        ("GET /api/a", 40),
    ]
    assert slowest[0]["status"] == "error" and slowest[0]["source"] == f"{small}:7"
    assert slowest[2]["trace_id"] == "ab" * 16
    code, out, _ = run(capsys, small, "--slowest", "2", "--format", "csv")
    assert code == 0 and [float(r["duration_ms"]) for r in csv.DictReader(io.StringIO(out))] == [100, 60]


def test_compare_windows(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(
        capsys, small, "--group-by", "endpoint", "--compare-windows",
        "2025-01-01T00:00:00/2025-01-01T00:02:00", "2025-01-01T00:02:00/2025-01-01T00:10:00",
    )  # fmt: skip
    rows = rows_by(report, "service", "endpoint", section="comparison")
    a = rows[("backend", "GET /api/a")]  # A: 10 ok + 30 error; B: nothing
    assert (a["count_a"], a["count_b"], a["count_delta"]) == (2, 0, -2)
    assert a["error_rate_a"] == 0.5 and a["error_rate_b"] is None and a["error_rate_delta"] is None
    f = rows[("frontend", "GET /api/a")]  # A: 40 ok; B: 60 error
    assert (f["count_a"], f["count_b"], f["count_delta"]) == (1, 1, 0)
    assert (f["error_rate_a"], f["error_rate_b"], f["error_rate_delta"]) == (0.0, 1.0, 1.0)
    assert f["p95_ms_delta"] == pytest.approx(20, abs=1.2)
    b = rows[("backend", "GET /api/b")]
    assert (b["count_a"], b["count_b"]) == (0, 1)
    code, out, _ = run(
        capsys, small, "--group-by", "endpoint", "--compare-windows", "0/1735689720", "1735689720/1735690800"
    )
    assert code == 0 and "count_delta" in out and "+100.00%" in out  # frontend error rate 0% -> 100%
    code, _, err = run(capsys, small, "--compare-windows", "2025-01-01T00:02/2025-01-01T00:01", "0/1")
    assert code == 2 and "ends before it starts" in err


def test_output_formats_parse(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, small, "--group-by", "component", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    assert {(r["service"], r["component"]): int(r["count"]) for r in rows}[("backend", "http")] == 3
    code, out, _ = run(capsys, small, "--group-by", "component")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("service"))
    table = lines[header : header + 6]
    assert set(table[1]) <= {"-", " "}
    assert all(len(re.split(r"\s{2,}", line.strip())) == 11 for line in table if not line.startswith("-"))
    assert table[0].index("count") + len("count") == table[2].index("3") + 1  # numbers right-aligned
    code, out, _ = run(capsys, small, "--format", "markdown")
    assert "| service | count | error_count |" in out and "\n|---|" + "---:|" * 9 + "\n" in out
    assert "| backend | 5 | 2 | 40.00% |" in out


def test_inputs_json_array_export_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = [e for e in EVENTS if "level" not in e]
    array = tmp_path / "events.json"
    array.write_text(json.dumps(timed, indent=2))
    export = tmp_path / "data.json"
    export.write_text(json.dumps({"backend": {"total_events": 9}, "recent_events": timed[:3]}, indent=2))
    report = run_json(capsys, array, export)
    assert report["summary"]["events"] == len(timed) + 3
    assert rows_by(report, "service")[("backend",)]["count"] == 4 + 3
    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(json.dumps(e) for e in timed).encode()))
    )
    assert run_json(capsys, "-")["summary"]["events"] == len(timed)


def test_generated_logs_analyse_consistently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen"
    assert (
        generate_sample_logs.main(
            ["--events", "3000", "--out-dir", str(out), "--start", "2025-01-01T00:00:00"]
        )
        == 0
    )
    capsys.readouterr()
    report = run_json(
        capsys, out / "backend_events.jsonl", out / "frontend_events.jsonl", "--group-by", "endpoint"
    )
    rows = rows_by(report, "service", "endpoint")
    keys = {endpoint for _, endpoint in rows}
    assert len(keys) >= 8
    for key in keys:  # every call is seen once on each side, and slower in the browser
        backend, frontend = rows[("backend", key)], rows[("frontend", key)]
        assert backend["count"] == frontend["count"]
        assert frontend["p50_ms"] > backend["p50_ms"]
    log = run_json(capsys, out / "backend.log", "--group-by", "component")
    events = run_json(capsys, out / "backend_events.jsonl", "--group-by", "component")
    assert log["groups"] == events["groups"]


def test_a_line_nested_too_deeply_is_a_bad_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(EVENTS[0]) + "\n" + '{"a":' * 2000 + "1" + "}" * 2000 + "\n")
    code, out, err = run(capsys, path)
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"{path}:2: malformed JSON: nested too deeply" in err
    report = run_json(capsys, path, "--skip-bad-lines")
    assert report["summary"]["bad_lines_skipped"] == 1 and report["summary"]["events"] == 1


def test_malformed_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", EVENTS, bad_at=4)
    code, out, err = run(capsys, path)
    assert code == 1 and out == ""
    assert f"{path}:4: malformed JSON" in err and "--skip-bad-lines" in err and "Traceback" not in err
    report = run_json(capsys, path, "--skip-bad-lines")
    assert report["summary"]["bad_lines_skipped"] == 1 and report["summary"]["events"] == 8
    invalid = write_jsonl(tmp_path / "invalid.jsonl", [*EVENTS[:2], {**EVENTS[0], "duration_ms": -1}])
    code, _, err = run(capsys, invalid)
    assert code == 1 and f"{invalid}:3: 'duration_ms' must be >= 0" in err
    stamp = write_jsonl(tmp_path / "stamp.jsonl", [{**EVENTS[0], "timestamp": "yesterday"}])
    code, _, err = run(capsys, stamp)
    assert code == 1 and f"{stamp}:1: not an ISO 8601 timestamp: 'yesterday'" in err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(EVENTS[:3], indent=1)[:-40])
    code, _, err = run(capsys, broken)
    assert code == 1 and str(broken) in err and "Traceback" not in err


def test_missing_file_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, tmp_path / "nope.jsonl")
    assert code == 2 and "no such file" in err and "nope.jsonl" in err
    code, _, err = run(capsys, tmp_path)
    assert code == 2 and "not a file" in err
    code, _, err = run(capsys, tmp_path / "x", "--slowest", "zero")
    assert code == 2 and "positive integer" in err


def test_progress_on_request(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, small, "--progress")
    assert code == 0 and "reading [" in err and "100.0%" in err
    code, _, err = run(capsys, small)
    assert "reading [" not in err  # stderr is not a terminal here


def test_reads_json_lines_in_constant_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as fh:
        for i in range(60_000):
            event = {
                **EVENTS[0],
                "timestamp": 1735689600 + i,
                "duration_ms": i % 997,
                "action": f"GET /api/{i % 7}",
            }
            fh.write(json.dumps(event) + "\n")
    tracemalloc.start()
    try:
        report = run_json(capsys, path, "--group-by", "endpoint", "--bucket", "1h", "--slowest", "5")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["summary"]["events"] == 60_000
    assert peak < 3_000_000  # the file is ~9 MB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "inf"], "argument --since: not a finite number of epoch seconds: 'inf'"),
        (["--until", "nan"], "argument --until: not a finite number of epoch seconds: 'nan'"),
        (["--since", "1e400"], "argument --since: not a finite number"),
        (["--until=-1e20"], "argument --until: time out of range (years 1 to 9999 UTC): '-1e20'"),
        (["--since", "1e20"], "argument --since: time out of range"),
        (["--compare-windows", "0/inf", "1/2"], "argument --compare-windows: not a finite number"),
        (["--compare-windows", "0/1", "1/1e20"], "argument --compare-windows: time out of range"),
        (["--since", "2026-13-40"], "not an ISO 8601 timestamp: '2026-13-40' (month must be in 1..12)"),
    ],
)
def test_times_that_are_not_finite_or_representable_are_usage_errors(
    small: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, small, *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert re.search(r"^\S+: error: ", err, re.M) and message in err


@pytest.mark.parametrize("stamp", [1e20, -1e20, "1e20", "inf", "9999-12-31T23:00:00-05:00"])
def test_a_record_whose_time_is_out_of_range_is_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stamp: Any
) -> None:
    path = write_jsonl(tmp_path / "far.jsonl", [*EVENTS[:2], {**EVENTS[0], "timestamp": stamp}])
    code, out, err = run(capsys, path)
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"error: {path}:3: " in err and ("out of range" in err or "finite" in err)
    report = run_json(capsys, path, "--skip-bad-lines", "--compare-windows", "0/1e10", "1e10/2e10")
    assert report["summary"]["bad_lines_skipped"] == 1 and report["summary"]["records"] == 3


def test_a_malformed_json_array_element_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timed = [e for e in EVENTS if "level" not in e]
    text = json.dumps(timed, indent=2)
    cut = text.index('"action": "query orders"')  # in the third element
    path = tmp_path / "events.json"
    path.write_text(text[:cut] + "'status': 1, " + text[cut:])
    line = text.count("\n", 0, cut) + 1
    column = cut - text.rfind("\n", 0, cut)
    code, out, err = run(capsys, path, "--progress")
    assert code == 1 and out == "" and "Traceback" not in err
    assert f"error: {path}:{line}:{column}: array element #3: malformed JSON: Expecting property name" in err
    path.write_text(text)
    code, out, err = run(capsys, path, "--progress", "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["events"] == len(timed) and "100.0%" in err
