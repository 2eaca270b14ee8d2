"""execution_difference_report.py --baseline: what changed since a saved run, per endpoint and side.

Runs come from generate_sample_logs.py (real traffic's shapes); a regression is injected into a
run by hand (one endpoint three times slower on the server, another failing on one call in ten),
so the verdicts are checked against what was done to the events, whatever form the baseline
takes: two event files, one file of both sides, a saved JSON report, a /data export.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from flask import Flask

import execution_difference_report as report
import generate_sample_logs as gen
from live_monitor.model.baseline import BaselineComparison
from live_monitor.vocabulary import API
from tests.helpers import MonitorProcess, read_jsonl

SLOW, FAILING = "GET /api/search", "GET /api/products"  # the endpoints the regression hits
Events = list[dict[str, Any]]
Verdicts = set[tuple[str, str, str, str, str | None]]


class Run:
    """One run's two event files."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.backend, self.frontend = out / "backend_events.jsonl", out / "frontend_events.jsonl"

    @property
    def files(self) -> list[str]:
        return [str(self.backend), str(self.frontend)]

    def events(self) -> tuple[Events, Events]:
        return read_jsonl(self.backend), read_jsonl(self.frontend)


def _write(path: Path, events: Events) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def generate(out: Path, seed: int, start: str) -> Run:
    argv = ["--events", "20000", "--seed", str(seed), "--out-dir", str(out), "--start", start]
    assert gen.main([*argv, "--real-traffic"]) == 0
    return Run(out)


def regressed(run: Run, out: Path) -> Run:
    """``run`` after a bad release: the server takes three times as long on SLOW (the browser
    waits for it too), and one FAILING request in ten fails on the server behind a fallback."""
    backend, frontend = run.events()
    extra: dict[str, float] = {}
    failing = 0
    for e in backend:
        if e["component"] == "http" and e["action"] == SLOW:
            extra[e["parent_span_id"]] = 2 * e["duration_ms"]
            e["duration_ms"] *= 3
        elif e["component"] == "http" and e["action"] == FAILING:
            e["status"] = "error" if failing % 10 == 0 else e["status"]
            failing += 1
    for e in frontend:
        if e["component"] == "api" and e.get("span_id") in extra:
            e["duration_ms"] += extra[e["span_id"]]
    assert len(extra) > 200 and failing > 400  # enough calls that the tests below judge
    out.mkdir()
    new = Run(out)
    _write(new.backend, backend)
    _write(new.frontend, frontend)
    return new


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A baseline run, the same traffic a month later (another seed), and that run regressed."""
    root = tmp_path_factory.mktemp("runs")
    baseline = generate(root / "baseline", 1, "2025-01-01T00:00:00")
    unchanged = generate(root / "unchanged", 3, "2025-03-01T00:00:00")
    return {
        "baseline": baseline,
        "unchanged": unchanged,
        "regressed": regressed(unchanged, root / "regressed"),
    }


def run_report(
    capsys: pytest.CaptureFixture[str], current: Run, baseline: list[str], *args: str
) -> tuple[int, str, str]:
    """The report of ``current`` against ``baseline``: exit code, stdout, stderr."""
    capsys.readouterr()
    files = ["--backend-data", str(current.backend), "--frontend-data", str(current.frontend)]
    code = report.main([*files, "--baseline", *baseline, *args])
    out, err = capsys.readouterr()
    return code, out, err


def comparison(capsys: pytest.CaptureFixture[str], current: Run, baseline: list[str]) -> BaselineComparison:
    """The JSON report's baseline section, read as its type (so its shape is checked too)."""
    code, out, _ = run_report(capsys, current, baseline, "--format", "json")
    assert code == 0
    return msgspec.convert(json.loads(out)["baseline"], BaselineComparison)


def verdicts(found: BaselineComparison, *kept: str) -> Verdicts:
    return {(c.key, c.side, c.metric, c.verdict, c.severity) for c in found.changes if c.verdict in kept}


FLAGGED = ("regression", "improvement", "changed")
REGRESSIONS = {
    (SLOW, "backend", "p50_ms", "regression", "high"),
    (SLOW, "backend", "p95_ms", "regression", "high"),
    (SLOW, "frontend", "p50_ms", "regression", "high"),  # the browser waits for the server
    (SLOW, "frontend", "p95_ms", "regression", "high"),
    (FAILING, "backend", "error_rate", "regression", "medium"),  # ~1% -> ~10%: 9 points
}


def test_an_injected_regression_is_flagged_on_its_side_with_its_severity(
    runs: dict[str, Run], capsys: pytest.CaptureFixture[str]
) -> None:
    found = comparison(capsys, runs["regressed"], runs["baseline"].files)
    assert verdicts(found, *FLAGGED) == REGRESSIONS
    by = {(c.key, c.side, c.metric): c for c in found.changes}
    errors = by[FAILING, "backend", "error_rate"]
    assert errors.baseline is not None and errors.baseline < 0.02 and errors.current is not None
    assert 0.09 < errors.current < 0.12 and errors.confidence is not None and errors.confidence >= 0.99
    assert by[FAILING, "frontend", "error_rate"].verdict == "unchanged"  # the fallback hides it
    assert by[SLOW, "both", "gap_p50_ms"].verdict == "unchanged"  # the browser's extra is the server's
    p95 = by[SLOW, "backend", "p95_ms"]
    assert p95.current is not None and p95.baseline is not None and 2.2 < p95.current / p95.baseline < 3.5
    assert found.distributions and not found.notes
    # The server failing behind the fallback is also a difference between the sides that is new.
    assert [(d.type, d.key) for d in found.new_differences] == [("error_rate", FAILING)]


def test_the_same_traffic_with_another_seed_changes_nothing(
    runs: dict[str, Run], capsys: pytest.CaptureFixture[str]
) -> None:
    found = comparison(capsys, runs["unchanged"], runs["baseline"].files)
    assert verdicts(found, *FLAGGED) == set()
    assert found.counts["unchanged"] == len(found.changes) > 100
    assert not found.new_endpoints and not found.vanished_endpoints and not found.new_differences


def test_fail_on_gates_on_regressions_never_on_improvements_or_standing_differences(
    runs: dict[str, Run], capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, regressed = runs["baseline"].files, runs["regressed"]
    code, _, err = run_report(capsys, regressed, baseline, "--fail-on", "high")
    assert code == report.EXIT_FAIL_ON
    assert "4 regression(s)" in err and f"high regression: {SLOW}: backend p95" in err
    assert run_report(capsys, regressed, baseline, "--fail-on", "medium")[0] == report.EXIT_FAIL_ON
    # Back from the bad release: everything that regressed improves, and nothing fails.
    code, out, _ = run_report(
        capsys, runs["unchanged"], regressed.files, "--fail-on", "low", "--format", "json"
    )
    assert code == report.EXIT_OK
    back = msgspec.convert(json.loads(out)["baseline"], BaselineComparison)
    assert {(k, s, m) for k, s, m, *_ in verdicts(back, "improvement")} == {
        (k, s, m) for k, s, m, *_ in REGRESSIONS
    }
    # The sample traffic has standing low differences between the sides: without a baseline
    # they fail --fail-on low; with one, only what got worse since it does.
    files = ["--backend-data", *runs["unchanged"].files[:1], "--frontend-data", *runs["unchanged"].files[1:]]
    assert report.main([*files, "--fail-on", "low", "--output", str(regressed.out / "r.md")]) == 3
    assert run_report(capsys, runs["unchanged"], baseline, "--fail-on", "low")[0] == report.EXIT_OK


def _saved_report(run: Run, path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    capsys.readouterr()
    files = ["--backend-data", str(run.backend), "--frontend-data", str(run.frontend)]
    assert report.main([*files, "--format", "json", "--output", str(path)]) == 0
    return path


def _data_export(app: Flask, run: Run, path: Path, limit: int) -> Path:
    """What `curl /api/live-execution/data?limit=N -o FILE` saves from a monitor fed the run."""
    client = app.test_client()
    backend, frontend = run.events()
    events = backend + frontend
    for start in range(0, len(events), 1000):
        answer = client.post(f"{API}/events", json={"events": events[start : start + 1000]})
        assert answer.status_code == 200 and answer.get_json()["rejected"] == 0
    answer = client.get(f"{API}/data?limit={limit}")
    assert answer.status_code == 200
    path.write_bytes(answer.get_data())
    return path


def test_a_baseline_as_report_data_export_or_event_files_gives_the_same_verdicts(
    runs: dict[str, Run],
    capsys: pytest.CaptureFixture[str],
    make_app: Callable[..., Flask],
    tmp_path: Path,
) -> None:
    baseline, regressed = runs["baseline"], runs["regressed"]
    both = tmp_path / "both.jsonl"  # one file of both sides' events, each naming its service
    both.write_text(baseline.backend.read_text() + baseline.frontend.read_text())
    saved = _saved_report(baseline, tmp_path / "baseline.json", capsys)
    assert set(json.loads(saved.read_text())) == {"summary", "differences", "distributions"}
    export = _data_export(make_app({"max_events": 40000}), baseline, tmp_path / "data.json", 20000)
    forms = {
        "event files": baseline.files,
        "one file": [str(both)],
        "report": [str(saved)],
        "/data": [str(export)],
    }
    seen = {name: comparison(capsys, regressed, files) for name, files in forms.items()}
    every = {
        name: verdicts(found, *FLAGGED, "not enough samples", "unchanged") for name, found in seen.items()
    }
    assert len(every["event files"]) > 100
    assert all(found == every["event files"] for found in every.values()), every
    assert {name: found.baseline["kind"] for name, found in seen.items()} == {
        "event files": "event files",
        "one file": "event file",
        "report": "saved report",
        "/data": "/data export",
    }
    assert all(found.distributions for found in seen.values())


def test_a_baseline_of_figures_alone_still_judges_and_says_how(
    runs: dict[str, Run],
    capsys: pytest.CaptureFixture[str],
    make_app: Callable[..., Flask],
    tmp_path: Path,
) -> None:
    """A /data export cut short by ?limit=, or a report saved before reports kept distributions:
    figures, a latency test estimated from p50 and p95, and a note saying so."""
    baseline, regressed = runs["baseline"], runs["regressed"]
    export = _data_export(make_app({"max_events": 40000}), baseline, tmp_path / "data.json", 500)
    old = _saved_report(baseline, tmp_path / "old.json", capsys)
    document = json.loads(old.read_text())
    del document["distributions"]
    old.write_text(json.dumps(document))
    for path in (export, old):
        found = comparison(capsys, regressed, [str(path)])
        # The export's calls per minute are the monitor's, per minute of the replay that fed it,
        # not of the events' own times: its volumes all moved; the other figures judge alike.
        flagged = {v for v in verdicts(found, *FLAGGED) if path == old or v[2] != "calls_per_minute"}
        assert flagged == REGRESSIONS
        assert not found.distributions and "log-normal fit" in found.notes[0]
        p95 = next(c for c in found.changes if (c.key, c.side, c.metric) == (SLOW, "backend", "p95_ms"))
        assert "log-normal" in p95.test and p95.confidence is not None and p95.confidence > 0.99
    assert "holds 500 events of the" in comparison(capsys, regressed, [str(export)]).baseline["note"]


def test_a_running_monitor_compared_with_a_saved_report(
    runs: dict[str, Run],
    capsys: pytest.CaptureFixture[str],
    start_monitor: Callable[..., contextlib.AbstractContextManager[MonitorProcess]],
    tmp_path: Path,
) -> None:
    """This run read from a live monitor (its figures), the baseline a report saved in CI."""
    saved = _saved_report(runs["baseline"], tmp_path / "baseline.json", capsys)
    with start_monitor("--no-self-monitor", "--max-events", "20000") as server:
        backend, frontend = runs["regressed"].events()
        events = backend + frontend
        for start in range(0, len(events), 1000):
            server.post_events(events[start : start + 1000])
        capsys.readouterr()
        code = report.main(
            ["--url", server.url, "--baseline", str(saved), "--format", "json", "--fail-on", "high"]
        )
    out, err = capsys.readouterr()
    assert code == report.EXIT_FAIL_ON, err
    found = msgspec.convert(json.loads(out)["baseline"], BaselineComparison)
    # The monitor's calls per minute are per minute of the replay that fed it: left out here.
    assert {v for v in verdicts(found, *FLAGGED) if v[2] != "calls_per_minute"} == REGRESSIONS
    assert "This run keeps figures, not distributions" in found.notes[0]


# --- a tail that moved far: the README screenshots' runs --------------------------------------

TAIL = "GET /api/products/:id"  # generate_sample_logs.py's tail_latency: one browser call in ten
# waits ~1.5 s more, medians unchanged


def release_pair(root: Path, events: int) -> tuple[Run, Run]:
    """The runs scripts/screenshots.py renders its report of: the same seeded real traffic (the
    pages' API calls and their server requests) twice, the second with a latency gap, hidden
    errors and the tail slowdown injected."""
    shapes = ["--inject", "nested_traces", "--inject", "outgoing_calls", "--inject", "page_noise"]
    injected = ["--inject", "latency_gap", "--inject", "hidden_errors", "--inject", "tail_latency"]
    pair = []
    for name, extra in (("v1", []), ("v2", injected)):
        argv = ["--events", str(events), "--seed", "7", "--duration-s", "600", "--out-dir", str(root / name)]
        assert gen.main([*argv, "--start", "2025-01-01T00:00:00", *shapes, *extra]) == 0
        pair.append(Run(root / name))
    return pair[0], pair[1]


def test_a_tail_that_moved_far_is_a_regression_and_back_an_improvement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """~170 calls a run, 17 of them now 1.5 s slower: the p95 went from ~100 ms to ~1.5 s, and
    while the share of calls above the baseline's p95 barely moves (5% -> 14%), no baseline call
    lies above the pooled p95: sure, whichever run is the baseline."""
    v1, v2 = release_pair(tmp_path, 8000)
    for then, now, verdict in ((v1, v2, "regression"), (v2, v1, "improvement")):
        by = {(c.key, c.side, c.metric): c for c in comparison(capsys, now, then.files).changes}
        p95 = by[TAIL, "frontend", "p95_ms"]
        assert min(p95.samples.values()) > 150 and p95.confidence is not None
        assert (p95.verdict, p95.severity) == (verdict, "high") and p95.confidence >= 0.99, p95
        assert by[TAIL, "frontend", "p50_ms"].verdict == "unchanged"  # the median did not move
        assert by[TAIL, "backend", "p95_ms"].verdict == "unchanged"  # nor the server


def test_a_tail_too_few_calls_can_confirm_is_not_enough_samples_never_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half the traffic: ~90 calls a run, 9 of them slower. Alone, the p95's test is 98.8% sure;
    as one of ~80 figures tested together, not sure enough. A p95 sixteen times higher is then
    no verdict, and certainly not "unchanged": the samples cannot say, and the message says how
    sure they are. A move at a lower level that is not sure stays unchanged."""
    v1, v2 = release_pair(tmp_path, 4000)
    found = comparison(capsys, v2, v1.files)
    by = {(c.key, c.side, c.metric): c for c in found.changes}
    p95 = by[TAIL, "frontend", "p95_ms"]
    assert p95.current is not None and p95.baseline is not None and p95.current > 10 * p95.baseline
    assert (p95.verdict, p95.severity) == ("not enough samples", None) and p95.confidence is not None
    tested = [c for c in found.changes if c.confidence is not None]
    assert p95.confidence < 0.95 and f"{p95.confidence:.1%} for one of {len(tested)} figures" in p95.message
    assert "98.8% confident alone" in p95.message
    assert [c for c in tested if c.verdict == "not enough samples"] == [p95]
    few = [i for i, c in enumerate(found.changes) if c.verdict == "not enough samples"]
    assert few[0] == found.changes.index(p95)  # listed before the figures with too few calls
    assert ("GET /api/orders/:id", "frontend", "p95_ms", "regression", "high") in verdicts(
        found, "regression"
    )


# --- small runs by hand: too few samples, new and vanished endpoints, escaping ---------------

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
ODD = "GET /api/<script>alert(1)</script>"


def calls(key: str, n: int, ms: float, errors: int = 0, spread_s: float = 6000.0) -> Events:
    """``n`` calls of ``key`` from both sides over ``spread_s`` seconds, the browser 30 ms slower."""
    out = []
    for i in range(n):
        at = (T0 + timedelta(seconds=spread_s * i / n)).isoformat()
        status = "error" if i < errors else "success"
        out.append({"timestamp": at, "service": "backend", "component": "http", "action": key,
                    "duration_ms": ms + i % 7, "status": status})  # fmt: skip
        out.append({"timestamp": at, "service": "frontend", "component": "api", "action": key,
                    "duration_ms": ms + 30 + i % 7, "status": status})  # fmt: skip
    return out


def small_runs(tmp_path: Path) -> tuple[Run, Run]:
    """A baseline with three busy endpoints; now one of them has five calls (slow and failing),
    one is gone, and a new one came."""
    then = (
        calls("GET /api/steady", 200, 50) + calls("GET /api/rare", 200, 100) + calls("GET /api/gone", 100, 80)
    )
    now = calls("GET /api/steady", 200, 50) + calls("GET /api/rare", 5, 900, errors=3) + calls(ODD, 60, 40)
    pair = []
    for name, events in (("then", then), ("now", now)):
        (tmp_path / name).mkdir()
        run = Run(tmp_path / name)
        _write(run.backend, [e for e in events if e["service"] == "backend"])
        _write(run.frontend, [e for e in events if e["service"] == "frontend"])
        pair.append(run)
    return pair[0], pair[1]


def test_too_few_samples_is_said_and_never_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    then, now = small_runs(tmp_path)
    found = comparison(capsys, now, then.files)
    rare = {(c.side, c.metric): c for c in found.changes if c.key == "GET /api/rare"}
    for side in ("backend", "frontend"):
        for metric in ("p50_ms", "p95_ms", "error_rate"):
            assert rare[side, metric].verdict == "not enough samples" and rare[side, metric].severity is None
        # 200 calls then, 5 now: the counts are the samples, and a test of them is sure.
        assert rare[side, "calls_per_minute"].verdict == "changed"
    assert (
        "not enough samples (200 in the baseline, 5 now; 10 needed in each)"
        in rare["backend", "p50_ms"].message
    )
    assert verdicts(found, "regression", "improvement") == set()
    assert {(p.key, p.side) for p in found.new_endpoints} == {(ODD, "backend"), (ODD, "frontend")}
    assert {(p.key, p.side) for p in found.vanished_endpoints} == {
        ("GET /api/gone", s) for s in ("backend", "frontend")
    }
    code, _, _ = run_report(capsys, now, then.files, "--fail-on", "low")
    assert code == report.EXIT_OK  # nothing regressed surely; volume changes never fail
    # --min-samples sets the bar for the baseline's changes as for the differences.
    code, out, _ = run_report(capsys, now, then.files, "--min-samples", "250", "--format", "json")
    steady = [c for c in json.loads(out)["baseline"]["changes"] if c["key"] == "GET /api/steady"]
    assert code == 0 and {c["verdict"] for c in steady} == {"not enough samples"}


def test_markdown_and_html_show_the_section_html_escaped(
    tmp_path: Path, runs: dict[str, Run], capsys: pytest.CaptureFixture[str]
) -> None:
    then, now = small_runs(tmp_path)
    code, page, _ = run_report(capsys, now, then.files, "--format", "html")
    assert code == 0 and "<h2>Since the Baseline</h2>" in page
    assert "<script>" not in page and html.escape(ODD) in page
    assert (
        "Not enough samples (6)" in page and "New endpoints (2)" in page and "Vanished endpoints (2)" in page
    )
    code, text, _ = run_report(capsys, now, then.files)
    assert code == 0 and "## Since the Baseline" in text
    assert text.count("<script>") == text.count(f"`{ODD}`")  # in code spans alone, where it is text
    code, text, _ = run_report(capsys, runs["regressed"], runs["baseline"].files)
    rows = [line for line in text.splitlines() if line.startswith(f"| `{SLOW}` | backend | p95 |")]
    assert len(rows) == 1 and "| high regression |" in rows[0]
    assert "5 regressions, 0 improvements" in text


def test_a_baseline_that_is_not_one_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    then, now = small_runs(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"summary": {"endpoints": 3}, "differences": []}))
    code, _, err = run_report(capsys, now, [str(broken)])
    assert code == report.EXIT_INPUT and "broken.json: not a usable baseline: not a report" in err
    saved = _saved_report(then, tmp_path / "saved.json", capsys)
    document = json.loads(saved.read_text())
    document["distributions"]["endpoints"]["GET /api/steady"]["backend"]["durations"]["count"] += 1
    saved.write_text(json.dumps(document))
    code, _, err = run_report(capsys, now, [str(saved)])
    assert code == report.EXIT_INPUT and "buckets do not add up to its count" in err
    code, _, err = run_report(capsys, now, [str(tmp_path / "missing.json")])
    assert code == report.EXIT_INPUT and "missing.json: no such file" in err
    code, _, err = run_report(capsys, now, [*then.files, str(broken)])
    assert code == report.EXIT_USAGE and "--baseline takes one file, or a backend and a frontend file" in err
