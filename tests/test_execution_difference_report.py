"""The report CLI: the README's examples, the three formats, exit codes, errors and detection."""

from __future__ import annotations

import json
import re
import socket
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import execution_difference_report as report
import generate_sample_logs
import live_monitor.tools.report as building
from live_monitor.model import policy

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RANK = {"low": 1, "medium": 2, "high": 3}
DIFFERENCE_KEYS = {
    *("type", "severity", "scope", "key", "backend", "frontend", "difference_pct", "message"),
    *("samples", "confidence"),
}


def event(
    service: str, component: str, action: str, duration: float | None = 50.0, **extra: Any
) -> dict[str, Any]:
    """One ExecutionEvent dict; ``seconds`` offsets its timestamp from T0."""
    seconds = extra.pop("seconds", 0.0)
    return {
        "timestamp": (T0 + timedelta(seconds=seconds)).isoformat(),
        "service": service,
        "component": component,
        "action": action,
        "duration_ms": duration,
        "status": extra.pop("status", "success"),
        "details": {},
        **extra,
    }


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = report.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def files(tmp_path: Path, backend: list[dict[str, Any]], frontend: list[dict[str, Any]]) -> list[str]:
    be = write_jsonl(tmp_path / "backend.jsonl", backend)
    fe = write_jsonl(tmp_path / "frontend.jsonl", frontend)
    return ["--backend-data", str(be), "--frontend-data", str(fe)]


def activity_example(tmp_path: Path) -> list[str]:
    """The README's activity example: 15 backend vs 25 frontend events in the same minute."""
    backend = [event("backend", "worker", "sync", 50.0, seconds=i) for i in range(15)]
    frontend = [event("frontend", "render", "Cart", 50.0, seconds=i) for i in range(25)]
    return files(tmp_path, backend, frontend)


def performance_example(tmp_path: Path) -> list[str]:
    """The README's performance example: backend average 125 ms, frontend 75 ms, 20 timed events each."""
    backend = [event("backend", "worker", "sync", 100.0 + 50.0 * (i % 2), seconds=i) for i in range(20)]
    frontend = [event("frontend", "render", "Cart", 50.0 + 50.0 * (i % 2), seconds=i) for i in range(20)]
    return files(tmp_path, backend, frontend)


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, _ = run(capsys, *argv, "--format", "json")
    assert code == 0
    return json.loads(out)


def check_difference_shape(diff: dict[str, Any]) -> None:
    assert set(diff) == DIFFERENCE_KEYS
    assert diff["type"] in ("activity", "performance", "error_rate", "pattern")
    assert diff["severity"] in ("low", "medium", "high")
    assert diff["scope"] in ("service", "endpoint")
    assert (diff["key"] is None) == (diff["scope"] == "service")
    assert isinstance(diff["backend"], dict) and isinstance(diff["frontend"], dict)
    assert diff["difference_pct"] is None or isinstance(diff["difference_pct"], (int, float))
    assert isinstance(diff["message"], str) and diff["message"]


# --- the README's examples ----------------------------------------------------------------


def test_readme_activity_example_is_medium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = activity_example(tmp_path)
    diffs = as_json(capsys, *args)["differences"]
    activity = [d for d in diffs if d["type"] == "activity" and d["scope"] == "service"]
    assert len(activity) == 1
    assert activity[0]["severity"] == "medium"
    assert activity[0]["backend"]["events"] == 15 and activity[0]["frontend"]["events"] == 25
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "ACTIVITY LEVEL DIFFERENCE\nBackend: 15 events, Frontend: 25 events\n" in out
    assert "Severity: Medium" in out


def test_readme_performance_example_is_high(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = performance_example(tmp_path)
    data = as_json(capsys, *args)
    perf = [d for d in data["differences"] if d["type"] == "performance" and d["scope"] == "service"]
    assert len(perf) == 1
    assert perf[0]["severity"] == "high"
    assert perf[0]["difference_pct"] == 66.7
    assert data["summary"]["comparison"]["performance_ratio"] == 1.67
    code, out, _ = run(capsys, *args, "--format", "markdown")
    assert code == 0
    assert "PERFORMANCE DIFFERENCE\nBackend: 125ms, Frontend: 75ms\nDifference: 66.7%\nSeverity: High" in out
    assert "Performance Ratio: 1.67" in out


# --- formats ------------------------------------------------------------------------------


def mixed_scenario(tmp_path: Path) -> list[str]:
    """An endpoint with a latency gap joined by trace id, hidden backend errors and a frontend-only call."""
    backend: list[dict[str, Any]] = []
    frontend: list[dict[str, Any]] = []
    for i in range(30):
        trace = f"{i:032x}"
        backend.append(event("backend", "http", "GET /api/orders/:id", 80.0, seconds=i, trace_id=trace))
        frontend.append(event("frontend", "api", "GET /api/orders/:id", 980.0, seconds=i, trace_id=trace))
        status = "error" if i % 3 == 0 else "success"
        backend.append(event("backend", "http", "POST /api/cart", 40.0, seconds=i, status=status))
        frontend.append(event("frontend", "api", "POST /api/cart", 60.0, seconds=i))
        frontend.append(event("frontend", "api", "GET /api/recommendations", 90.0, seconds=i))
    return files(tmp_path, backend, frontend)


def test_json_output_has_summary_and_readme_shaped_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = as_json(capsys, *mixed_scenario(tmp_path))
    # distributions: what a later --baseline tests against (tests/test_tools_baseline.py)
    assert set(data) == {"summary", "differences", "distributions"}
    summary = data["summary"]
    for key in ("backend", "frontend", "comparison", "endpoints", "source", "generated_at"):
        assert key in summary
    for side in ("backend", "frontend"):
        for key in (
            "total_events",
            "avg_duration_ms",
            "p95_duration_ms",
            "success_rate",
            "events_per_minute",
        ):
            assert key in summary[side]
    assert summary["backend"]["total_events"] == 60 and summary["frontend"]["total_events"] == 90
    assert data["differences"], "the scenario holds three anomalies"
    for diff in data["differences"]:
        check_difference_shape(diff)
    found = {(d["type"], d["key"]): d for d in data["differences"]}
    assert found[("performance", "GET /api/orders/:id")]["severity"] == "high"
    assert "joined by trace id" in found[("performance", "GET /api/orders/:id")]["message"]
    assert found[("error_rate", "POST /api/cart")]["backend"]["error_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert ("pattern", "GET /api/recommendations") in found
    orders = next(r for r in summary["endpoints"] if r["key"] == "GET /api/orders/:id")
    assert orders["matched_requests"] == 30
    assert orders["matched_gap_p50_ms"] == pytest.approx(900.0, rel=0.02)


def test_markdown_has_every_section_and_a_recommendation_per_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = mixed_scenario(tmp_path)
    diffs = as_json(capsys, *args)["differences"]
    code, out, _ = run(capsys, *args)
    assert code == 0
    for heading in (
        "## Summary",
        "## Performance Comparison",
        "## Endpoints: Frontend vs Backend",
        f"## Execution Differences ({len(diffs)})",
        "### High",
    ):
        assert heading in out
    assert "| Success rate |" in out and "| Events/min |" in out
    assert "| `GET /api/orders/:id` | both |" in out
    assert out.count("**Recommendation:**") == len(diffs)
    assert "compare Server-Timing" in out or "Server-Timing header" in out
    assert "alert on server 5xx" in out
    assert "service workers" in out
    # high before medium before low
    positions = [out.find(f"### {s} (") for s in ("High", "Medium", "Low") if f"### {s} (" in out]
    assert positions == sorted(positions)


def test_html_is_self_contained_and_escapes_hostile_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = "<script>alert(1)</script>"
    backend = [event("backend", "http", "GET /api/items", 20.0, seconds=i) for i in range(20)]
    frontend = [event("frontend", "api", hostile, 30.0, seconds=i) for i in range(20)]
    frontend += [event("frontend", "api", "GET /api/items", 40.0, seconds=i) for i in range(20)]
    code, out, _ = run(capsys, *files(tmp_path, backend, frontend), "--format", "html")
    assert code == 0
    assert out.lstrip().startswith("<!DOCTYPE html>")
    assert "<script" not in out.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", out, re.I)
    assert "<link" not in out.lower() and "@import" not in out and "url(" not in out
    assert "<style>" in out
    assert out.count("<svg") == 3  # p50, p95 and error rates per endpoint
    assert "Execution Differences" in out and "Recommendation:" in out


def test_output_option_writes_the_report_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    code, out, err = run(capsys, *performance_example(tmp_path), "--format", "html", "--output", str(target))
    assert code == 0
    assert out == ""
    assert str(target) in err
    assert "PERFORMANCE DIFFERENCE" in target.read_text(encoding="utf-8")


def test_a_saved_data_export_holding_both_sides_gives_the_same_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = mixed_scenario(tmp_path)
    separate = as_json(capsys, *args)
    events = [
        json.loads(line) for name in ("backend.jsonl", "frontend.jsonl") for line in (tmp_path / name).open()
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"monitoring": True, "recent_events": events[::-1]}))
    combined = as_json(capsys, "--backend-data", str(export), "--frontend-data", str(export))
    assert combined["differences"] == separate["differences"]
    assert combined["summary"]["endpoints"] == separate["summary"]["endpoints"]


def test_a_json_array_file_is_read_like_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = performance_example(tmp_path)
    for name in ("backend", "frontend"):
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        (tmp_path / f"{name}.json").write_text("[" + ",".join(lines) + "]")
    from_array = as_json(
        capsys,
        "--backend-data",
        str(tmp_path / "backend.json"),
        "--frontend-data",
        str(tmp_path / "frontend.json"),
    )
    assert from_array["differences"] == as_json(capsys, *args)["differences"]


# --- thresholds, gating, progress ----------------------------------------------------------


def test_fail_on_exits_3_at_or_above_the_severity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    medium_only = activity_example(tmp_path)
    assert run(capsys, *medium_only, "--fail-on", "high")[0] == 0
    code, _, err = run(capsys, *medium_only, "--fail-on", "medium")
    assert code == 3 and "fail-on medium" in err
    assert run(capsys, *medium_only, "--fail-on", "low")[0] == 3
    assert run(capsys, *performance_example(tmp_path), "--fail-on", "high")[0] == 3


def test_thresholds_file_and_min_samples_change_what_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = activity_example(tmp_path)
    strict = tmp_path / "thresholds.json"
    strict.write_text(json.dumps({"activity_pct": [10, 20, 30]}))
    diffs = as_json(capsys, *args, "--thresholds", str(strict))["differences"]
    assert [d["severity"] for d in diffs if d["type"] == "activity"] == ["high"]
    assert as_json(capsys, *args, "--min-samples", "20")["differences"] == []


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"activity_pct": [1, 2]}', "activity_pct"),
        ('{"no_such_threshold": 1}', "no_such_threshold"),
        ("{not json", "thresholds.json"),
    ],
)
def test_a_bad_thresholds_file_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    bad = tmp_path / "thresholds.json"
    bad.write_text(content)
    code, out, err = run(capsys, *activity_example(tmp_path), "--thresholds", str(bad))
    assert code == 1 and out == ""
    assert expected in err


def test_progress_is_reported_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(building, "PROGRESS_EVERY", 10)
    code, _, err = run(capsys, *activity_example(tmp_path), "--progress")
    assert code == 0
    assert "read 10 events" in err and "read 40 events (15 backend, 25 frontend)" in err


def test_pending_trace_halves_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Far-apart halves beyond the bound are forgotten (oldest first), so memory stays flat."""
    monkeypatch.setattr(policy, "PENDING_MAX", 3)
    backend = [event("backend", "http", "GET /a", 10.0, seconds=i, trace_id=f"{i:032x}") for i in range(10)]
    frontend = [
        event("frontend", "api", "GET /a", 30.0, seconds=100 + i, trace_id=f"{9 - i:032x}") for i in range(10)
    ]  # newest request first: only the 3 newest backend halves are still pending
    rows = as_json(capsys, *files(tmp_path, backend, frontend))["summary"]["endpoints"]
    assert rows[0]["matched_requests"] == 3


def test_the_report_pairs_by_the_live_monitors_rule_an_untimed_half_spoils_no_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untimed browser half of a trace is not offered to the join, so the timed one still
    meets its server request, as in the live monitor's stores."""
    trace = "ab" * 16
    backend = [event("backend", "http", "GET /a", 10.0, seconds=0, trace_id=trace)]
    frontend = [
        event("frontend", "api", "GET /a", None, seconds=1, trace_id=trace),
        event("frontend", "api", "GET /a", 30.0, seconds=2, trace_id=trace),
    ]
    rows = as_json(capsys, *files(tmp_path, backend, frontend))["summary"]["endpoints"]
    assert rows[0]["matched_requests"] == 1


# --- errors and usage ------------------------------------------------------------------------


def test_missing_file_is_exit_1_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    present = write_jsonl(tmp_path / "frontend.jsonl", [event("frontend", "api", "GET /a")])
    missing = tmp_path / "nope.json"
    code, out, err = run(capsys, "--backend-data", str(missing), "--frontend-data", str(present))
    assert code == 1 and out == ""
    assert str(missing) in err and "no such file" in err


def test_malformed_json_line_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = activity_example(tmp_path)
    path = tmp_path / "frontend.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = '{"timestamp": "2025-03-01T12:00:00", "service": "frontend",'
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, *args)
    assert code == 1 and out == ""
    assert f"{path}:3" in err and "malformed" in err


def test_event_missing_a_field_names_the_event_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = activity_example(tmp_path)
    path = tmp_path / "backend.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    del events[4]["action"]
    write_jsonl(path, events)
    code, _, err = run(capsys, *args)
    assert code == 1
    assert f"{path}:5: missing or empty required field 'action'" in err


def test_unreachable_monitor_says_how_to_start_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, out, err = run(capsys, "--url", url, "--timeout", "5")
    assert code == 1 and out == ""
    assert url in err and "python run_live_monitor.py" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--backend-data", "only-one.json"],
        ["--format", "pdf"],
        ["--url", "http://x", "--backend-data", "a", "--frontend-data", "b"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "error" in err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "0 ok" in text and "1 input error" in text and "2 usage error" in text and "3 --fail-on" in text


def test_swapped_files_are_pointed_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    activity_example(tmp_path)
    be, fe = tmp_path / "backend.jsonl", tmp_path / "frontend.jsonl"
    code, _, err = run(capsys, "--backend-data", str(fe), "--frontend-data", str(be))
    assert code == 0
    assert f"{fe} holds no backend events (25 events of the other side skipped" in err


def test_a_side_of_only_the_monitors_own_requests_is_not_called_swapped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A /data save taken while nothing but the dashboard talked to the monitor: the backend
    side is all its own requests, which the warning says instead of suspecting swapped files."""
    own = [event("backend", "http", "GET /api/live-execution/data", 3.0, details={"self_monitor": True})] * 6
    data = write_jsonl(tmp_path / "data.jsonl", [*own, event("frontend", "api", "GET /a")])
    code, _, err = run(capsys, "--backend-data", str(data), "--frontend-data", str(data))
    assert code == 0
    assert f"{data} holds no backend events (6 of the monitor's own requests, 1 of the other side)" in err
    assert "swapped" not in err


# --- a live monitor --------------------------------------------------------------------------


def post_events(api: str, events: list[dict[str, Any]], token: str = "") -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{api}/events", data=json.dumps(events).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["accepted"] == len(events)


def seed_performance_events() -> list[dict[str, Any]]:
    backend = [event("backend", "worker", "sync", 100.0 + 50.0 * (i % 2)) for i in range(20)]
    frontend = [event("frontend", "render", "Cart", 50.0 + 50.0 * (i % 2)) for i in range(20)]
    return backend + frontend


def test_report_reads_a_running_monitor(monitor_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    post_events(monitor_server.api, seed_performance_events())
    data = as_json(capsys, "--url", monitor_server.url)
    assert data["summary"]["source"]["url"] == monitor_server.url
    assert data["summary"]["backend"]["total_events"] == 20
    assert data["summary"]["comparison"]["performance_ratio"] == 1.67
    perf = [d for d in data["differences"] if d["type"] == "performance" and d["scope"] == "service"]
    assert [(d["severity"], d["difference_pct"]) for d in perf] == [("high", 66.7)]
    for diff in data["differences"]:
        check_difference_shape(diff)
    code, out, _ = run(capsys, "--url", monitor_server.url, "--format", "markdown", "--fail-on", "high")
    assert code == 3
    assert "Backend: 125ms, Frontend: 75ms" in out and f"live monitor at {monitor_server.url}" in out


def test_report_sends_the_token_to_a_protected_monitor(
    start_monitor: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with start_monitor("--no-self-monitor", "--token", "s3cret") as server:
        post_events(server.api, seed_performance_events(), token="s3cret")
        code, _, err = run(capsys, "--url", server.url, "--token", "")
        assert code == 1 and "401" in err and "--token" in err
        assert (
            as_json(capsys, "--url", server.url, "--token", "s3cret")["summary"]["frontend"]["total_events"]
            == 20
        )


# --- detection quality on generated logs ------------------------------------------------------

ANOMALIES = ["latency_gap", "hidden_errors", "lost_requests", "frontend_only", "activity_mismatch"]


def generate(tmp_path: Path, seed: int, injections: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    argv = ["--out-dir", str(tmp_path), "--seed", str(seed), "--events", "20000", "--format", "jsonl"]
    for name in injections:
        argv += ["--inject", name]
    assert generate_sample_logs.main(argv) == 0
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    args = [
        "--backend-data",
        str(tmp_path / "backend_events.jsonl"),
        "--frontend-data",
        str(tmp_path / "frontend_events.jsonl"),
    ]
    return args, truth


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_every_injected_anomaly_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    args, truth = generate(tmp_path, seed, ANOMALIES)
    capsys.readouterr()
    assert {t["name"] for t in truth} == set(ANOMALIES)
    diffs = as_json(capsys, *args)["differences"]
    for expected in truth:
        matches = [d for d in diffs if d["type"] == expected["type"] and d["key"] == expected["key"]]
        assert matches, f"{expected['name']} not reported: {[(d['type'], d['key']) for d in diffs]}"
        assert RANK[matches[0]["severity"]] >= RANK[expected.get("expected_severity_at_least", "medium")]
        assert RANK[matches[0]["severity"]] >= RANK["medium"]


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_a_clean_scenario_flags_no_endpoint_at_medium_or_above(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    args, truth = generate(tmp_path, seed, [])
    capsys.readouterr()
    assert truth == []
    data = as_json(capsys, *args)
    assert len(data["summary"]["endpoints"]) >= 5, "the clean scenario still has endpoint traffic"
    flagged = [
        d for d in data["differences"] if d["scope"] == "endpoint" and RANK[d["severity"]] >= RANK["medium"]
    ]
    assert flagged == []


def test_the_monitors_own_requests_in_an_export_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = mixed_scenario(tmp_path)
    separate = as_json(capsys, *args)
    events = [
        json.loads(line) for name in ("backend.jsonl", "frontend.jsonl") for line in (tmp_path / name).open()
    ]
    own = event("backend", "http", "GET /api/live-execution/status", 1.0)
    own["details"] = {"http_status": 200, "self_monitor": True}
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"recent_events": events + [own] * 500}))
    combined = as_json(capsys, "--backend-data", str(export), "--frontend-data", str(export))
    assert combined["differences"] == separate["differences"]
    assert "GET /api/live-execution/status" not in json.dumps(combined)


@pytest.mark.parametrize("value", ["inf", "nan", "0", "1e400"])
def test_a_timeout_that_is_not_a_sane_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, out, err = run(capsys, "--timeout", value)
    assert code == 2 and out == "" and "argument --timeout: must be more than 0" in err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("notaurl", "must be an http:// or https:// URL with a host"),
        ("ftp://monitor", "must be an http:// or https:// URL with a host"),
        ("http://[::1", "not a URL: 'http://[::1' (Invalid IPv6 URL)"),
        ("http://localhost:99999", "not a URL"),
    ],
)
def test_a_url_that_is_not_one_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    code, out, err = run(capsys, "--url", url)
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"argument --url: {says}" in err


@pytest.mark.parametrize("stamp", [1e20, "inf", "9999-12-31T23:00:00-05:00"])
def test_an_event_time_out_of_range_names_the_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stamp: Any
) -> None:
    backend = [event("backend", "http", "GET /a"), {**event("backend", "http", "GET /a"), "timestamp": stamp}]
    code, out, err = run(capsys, *files(tmp_path, backend, [event("frontend", "api", "GET /a")]))
    assert code == 1 and out == ""
    assert f"{tmp_path / 'backend.jsonl'}:2: " in err and ("out of range" in err or "finite" in err)


@pytest.mark.parametrize("answer", [b"<html>not json</html>", b"[" * 100_000 + b"]" * 100_000])
def test_a_url_that_does_not_answer_json_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], answer: bytes
) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, out, err = run(capsys, "--url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1 and out == "" and "Traceback" not in err
    assert "did not answer JSON: is --url a Live Execution Monitor?" in err
