"""generate_sample_logs.py: deterministic, schema-valid, matched pairs, anomalies, streaming, --post."""

from __future__ import annotations

import json
import re
import socket
import statistics
import threading
import time
import tracemalloc
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import generate_sample_logs as gen
from backend_logging_config import endpoint_key

START = "2025-01-01T00:00:00"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
LOG_KEYS = {"timestamp", "level", "logger", "message", "service", "component", "action"} | {
    "duration_ms",
    "status",
    "details",
    "trace_id",
    "span_id",
    "parent_span_id",
}


def run(tmp: Path, *extra: str, events: int = 6000, seed: int = 7) -> Path:
    out = tmp / f"out-{seed}-{events}-{abs(hash(extra))}"
    code = gen.main(
        ["--events", str(events), "--seed", str(seed), "--out-dir", str(out), "--start", START, *extra]
    )
    assert code == 0
    return out


def load(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return [json.loads(line) for line in path.read_text().splitlines()]


def sides(out: Path, ext: str = "jsonl") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return load(out / f"backend_events.{ext}"), load(out / f"frontend_events.{ext}")


def pairs(backend: list[dict[str, Any]], frontend: list[dict[str, Any]]) -> Iterator[tuple[dict, dict]]:
    """Frontend API calls with the backend request of the same trace (the last attempt)."""
    by_trace = {e["trace_id"]: e for e in backend if e["component"] == "http"}
    for fe in frontend:
        if fe["component"] == "api" and fe["trace_id"] in by_trace:
            yield fe, by_trace[fe["trace_id"]]


def gaps_by_key(out: Path) -> dict[str, list[float]]:
    gaps: dict[str, list[float]] = defaultdict(list)
    for fe, be in pairs(*sides(out)):
        gaps[fe["action"]].append(fe["duration_ms"] - be["duration_ms"])
    return gaps


def error_rate(events: list[dict[str, Any]], service_component: tuple[str, str], key: str) -> float:
    hits = [e for e in events if (e["service"], e["component"]) == service_component and e["action"] == key]
    assert hits, f"no {service_component} events for {key}"
    return sum(e["status"] == "error" for e in hits) / len(hits)


def check_event(event: dict[str, Any]) -> None:
    assert isinstance(event["timestamp"], str)
    assert datetime.fromisoformat(event["timestamp"]).tzinfo is not None
    assert event["service"] in ("backend", "frontend")
    assert isinstance(event["component"], str) and 0 < len(event["component"]) <= 128
    assert isinstance(event["action"], str) and 0 < len(event["action"]) <= 256
    ms = event["duration_ms"]
    assert ms is None or (isinstance(ms, (int, float)) and ms >= 0)
    assert event["status"] in ("success", "error")
    assert isinstance(event["details"], dict) and len(json.dumps(event["details"])) <= 8192
    if event.get("trace_id") is not None:
        assert HEX32.match(event["trace_id"]) and HEX16.match(event["span_id"])
    if event["component"] in ("api", "http"):
        assert isinstance(event["details"]["http_status"], int)
        method, route = event["action"].split(" ", 1)
        assert endpoint_key(method, route) == event["action"]


def test_same_seed_same_output_other_seed_differs(tmp_path: Path) -> None:
    names = ("backend_events.jsonl", "frontend_events.jsonl", "backend.log")
    a, b, c = run(tmp_path, seed=1), run(tmp_path / "again", seed=1), run(tmp_path, seed=2)
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()


def test_counts_schema_order_and_span(tmp_path: Path) -> None:
    out = run(tmp_path, events=8000)
    backend, frontend = sides(out)
    assert len(backend) + len(frontend) == 8000
    assert 0.8 < len(backend) / len(frontend) < 1.25  # normal traffic: neither side dominates
    for event in backend + frontend:
        check_event(event)
    assert {e["service"] for e in backend} == {"backend"} and {e["service"] for e in frontend} == {"frontend"}
    for events in (backend, frontend):
        stamps = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in events]
        assert stamps == sorted(stamps)
        start = datetime.fromisoformat(START + "+00:00").timestamp()
        assert start <= stamps[0] < start + 60 and start + 3000 < stamps[-1] < start + 3700
    components = Counter(e["component"] for e in frontend)
    for needed in ("api", "click", "scroll", "form", "page", "web-vitals", "Cart"):
        assert components[needed] > 0, needed
    vitals = {e["action"] for e in frontend if e["component"] == "web-vitals"}
    assert vitals == {"LCP", "FCP", "CLS", "INP"}
    assert {e["component"] for e in backend} >= {"http", "db", "cache"}
    assert len({e["action"] for e in frontend if e["component"] == "api"}) >= 8
    codes = Counter(e["details"]["http_status"] for e in backend if e["component"] == "http")
    assert codes[200] > codes[201] > 0 and codes[204] > 0 and codes[404] > 0
    lines = load(out / "backend.log")
    assert len(lines) == len(backend)
    for line, event in zip(lines, backend, strict=True):
        assert set(line) == LOG_KEYS
        assert line["level"] in ("INFO", "WARNING", "ERROR") and line["message"]
        assert all(line[k] == event.get(k) for k in ("timestamp", "component", "action", "trace_id"))
    assert json.loads((out / "ground_truth.json").read_text()) == []


def test_api_calls_match_across_sides(tmp_path: Path) -> None:
    backend, frontend = sides(run(tmp_path, events=8000))
    api = [e for e in frontend if e["component"] == "api"]
    http = [e for e in backend if e["component"] == "http"]
    assert {e["trace_id"] for e in api} == {e["trace_id"] for e in http}
    assert len({e["span_id"] for e in api + http}) == len(api) + len(http)
    gaps = []
    for fe, be in pairs(backend, frontend):
        assert fe["action"] == be["action"]
        assert fe["details"]["http_status"] == be["details"]["http_status"]
        assert fe["status"] == be["status"]
        assert fe["duration_ms"] > be["duration_ms"]
        assert be["timestamp"] > fe["timestamp"]
        gaps.append(fe["duration_ms"] - be["duration_ms"])
    assert len(gaps) == len(api)
    assert 15 < statistics.median(gaps) < 50
    # a server request is a child of the browser call; its work a child of the request
    call_span = {e["trace_id"]: e["span_id"] for e in api}
    assert all(e["parent_span_id"] == call_span[e["trace_id"]] for e in http)
    request_span = {e["span_id"]: e["trace_id"] for e in http}
    db = [e for e in backend if e["component"] in ("db", "cache")]
    inside = [e for e in db if e["parent_span_id"] in request_span]
    assert len(inside) > 0.8 * len(db)  # the rest belong to background jobs
    assert all(request_span[e["parent_span_id"]] == e["trace_id"] for e in inside)
    assert not any("parent_span_id" in e["details"] for e in backend)


def test_latency_gap(tmp_path: Path) -> None:
    key = "GET /api/orders/:id"
    out = run(tmp_path, "--inject", "latency_gap")
    gaps = gaps_by_key(out)
    assert statistics.median(gaps[key]) > 700
    assert all(statistics.median(v) < 60 for k, v in gaps.items() if k != key)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [(t["name"], t["type"], t["key"], t["expected_severity_at_least"]) for t in truth] == [
        ("latency_gap", "performance", key, "medium")
    ]


def test_latency_gap_on_named_endpoint_with_concrete_path(tmp_path: Path) -> None:
    out = run(tmp_path, "--inject", "latency_gap:GET /api/products/123")
    gaps = gaps_by_key(out)
    assert statistics.median(gaps["GET /api/products/:id"]) > 700
    assert statistics.median(gaps["GET /api/orders/:id"]) < 60
    assert json.loads((out / "ground_truth.json").read_text())[0]["key"] == "GET /api/products/:id"


def test_hidden_errors(tmp_path: Path) -> None:
    key = "POST /api/cart"
    out = run(tmp_path, "--inject", "hidden_errors", events=10000)
    backend, frontend = sides(out)
    assert 0.15 < error_rate(backend, ("backend", "http"), key) < 0.35
    assert error_rate(frontend, ("frontend", "api"), key) < 0.05
    retried = [e for e in frontend if e["action"] == key and e["details"].get("retries")]
    assert retried
    attempts = Counter(e["trace_id"] for e in backend if e["component"] == "http" and e["action"] == key)
    assert all(attempts[e["trace_id"]] == e["details"]["retries"] + 1 for e in retried)
    assert json.loads((out / "ground_truth.json").read_text())[0]["type"] == "error_rate"


def test_lost_requests(tmp_path: Path) -> None:
    key = "GET /api/search"
    out = run(tmp_path, "--inject", "lost_requests", events=10000)
    backend, frontend = sides(out)
    calls = [e for e in frontend if e["component"] == "api" and e["action"] == key]
    lost = [e for e in calls if e["details"]["http_status"] == 0]
    assert 0.2 < len(lost) / len(calls) < 0.4
    assert all(e["status"] == "error" for e in lost)
    backend_traces = {e.get("trace_id") for e in backend}
    assert not any(e["trace_id"] in backend_traces for e in lost)
    assert error_rate(backend, ("backend", "http"), key) < 0.05
    assert json.loads((out / "ground_truth.json").read_text())[0] == {
        "name": "lost_requests",
        "type": "error_rate",
        "key": key,
        "scope": "endpoint",
        "flagged": True,
        "expected_severity_at_least": "medium",
        "expect": f"a medium or high error_rate difference on {key}",
        "description": "~30% of calls never reach the backend",
    }


@pytest.mark.parametrize(
    "spec,key",
    [("frontend_only", "GET /api/recommendations"), ("frontend_only:GET /api/cart", "GET /api/cart")],
)
def test_frontend_only(tmp_path: Path, spec: str, key: str) -> None:
    out = run(tmp_path, "--inject", spec)
    backend, frontend = sides(out)
    assert sum(e["action"] == key for e in frontend if e["component"] == "api") > 50
    assert not any(e["action"] == key for e in backend)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert (truth[0]["type"], truth[0]["key"]) == ("pattern", key)


def test_activity_mismatch(tmp_path: Path) -> None:
    out = run(tmp_path, "--inject", "activity_mismatch")
    backend, frontend = sides(out)
    assert 2.5 < len(backend) / len(frontend) < 3.5
    truth = json.loads((out / "ground_truth.json").read_text())
    assert (truth[0]["type"], truth[0]["key"], truth[0]["scope"]) == ("activity", None, "service")


def test_several_anomalies_at_once(tmp_path: Path) -> None:
    specs = ["latency_gap", "hidden_errors", "lost_requests", "frontend_only", "activity_mismatch"]
    out = run(tmp_path, *[x for s in specs for x in ("--inject", s)], events=20000)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [t["name"] for t in truth] == specs
    assert statistics.median(gaps_by_key(out)["GET /api/orders/:id"]) > 700


def test_json_array_format_holds_the_same_events(tmp_path: Path) -> None:
    as_lines = sides(run(tmp_path, events=3000))
    as_array = sides(run(tmp_path, "--format", "json", events=3000), "json")
    assert as_lines == as_array
    empty = run(tmp_path, "--format", "json", events=0)
    assert sides(empty, "json") == ([], [])


def test_bad_arguments_give_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--out-dir", str(tmp_path / "x")]
    assert gen.main([*base, "--inject", "nonsense"]) == 1
    assert "unknown anomaly 'nonsense'" in capsys.readouterr().err
    assert gen.main([*base, "--inject", "latency_gap:GET /api/nowhere"]) == 1
    assert "unknown endpoint 'GET /api/nowhere'" in capsys.readouterr().err
    assert gen.main([*base, "--inject", "activity_mismatch:GET /api/cart"]) == 1
    assert gen.main([*base, "--start", "yesterday"]) == 2
    assert "not an ISO 8601 timestamp" in capsys.readouterr().err
    assert gen.main([*base, "--events", "-5"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_writer_streams_in_constant_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        run(tmp_path, events=25_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000  # the events themselves are ~9 MB as JSON


class _Monitor:
    """A stand-in monitor: counts the events posted to /api/live-execution/events.

    It can reject every n-th event, answer 429 to the first requests, and want a token.
    """

    def __init__(self, reject_every: int = 0, throttle_first: int = 0, token: str = "") -> None:
        self.events: list[dict[str, Any]] = []
        self.batches = self.throttled = 0
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: dict[str, Any], status: int = 200) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorised(self) -> bool:
                if token and self.headers.get("Authorization") != f"Bearer {token}":
                    self._answer({"error": "missing or wrong credentials"}, 401)
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if self._authorised():
                    self._answer({"monitoring": True})

            def do_POST(self) -> None:  # noqa: N802
                assert self.path == "/api/live-execution/events"
                batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
                if not self._authorised():
                    return
                if monitor.throttled < throttle_first:
                    monitor.throttled += 1
                    self._answer({"error": "too many requests"}, 429)
                    return
                monitor.events.extend(batch)
                monitor.batches += 1
                rejected = sum(1 for i in range(len(batch)) if reject_every and i % reject_every == 0)
                self._answer({"accepted": len(batch) - rejected, "rejected": rejected, "errors": []})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def monitor() -> Iterator[_Monitor]:
    m = _Monitor()
    yield m
    m.close()


def test_post_replays_every_event_paced(
    tmp_path: Path, monitor: _Monitor, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    out = run(tmp_path, "--post", monitor.url, "--rate", "4000", events=1500)
    elapsed = time.monotonic() - started
    assert len(monitor.events) == 1500 and monitor.batches == 15
    assert elapsed >= 1400 / 4000  # the last batch may go out when its 1,500th event is due
    backend, frontend = sides(out)
    assert sorted(json.dumps(e, sort_keys=True) for e in monitor.events) == sorted(
        json.dumps(e, sort_keys=True) for e in backend + frontend
    )
    assert "accepted 1,500, rejected 0" in capsys.readouterr().err


@pytest.mark.parametrize("rate", ["2000", "0"])
def test_post_timestamps_follow_the_clock(tmp_path: Path, monitor: _Monitor, rate: str) -> None:
    before = time.time()
    args = ["--events", "400", "--out-dir", str(tmp_path), "--post", monitor.url, "--rate", rate]
    assert gen.main(args) == 0
    stamps = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in monitor.events]
    if rate == "0":  # no pacing: the usual last hour
        assert before - 3600 <= min(stamps) < before - 3000 and max(stamps) < time.time() + 5
    else:  # paced: the timestamps run with the wall clock, 400 events at 2000/s
        assert before - 1 <= min(stamps) and max(stamps) < time.time() + 5


def test_post_reports_rejections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = _Monitor(reject_every=10)
    try:
        code = gen.main(["--events", "500", "--out-dir", str(tmp_path), "--post", m.url, "--rate", "0"])
    finally:
        m.close()
    assert code == 1
    assert "accepted 450, rejected 50" in capsys.readouterr().err


def test_post_waits_when_throttled_and_sends_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = _Monitor(throttle_first=3, token="sekrit")
    try:
        base = ["--events", "300", "--out-dir", str(tmp_path), "--post", m.url, "--rate", "0"]
        assert gen.main(base) == 1
        assert "wants --token" in capsys.readouterr().err
        assert gen.main([*base, "--token", "sekrit"]) == 0
    finally:
        m.close()
    assert m.throttled == 3 and len(m.events) == 300
    assert "accepted 300, rejected 0" in capsys.readouterr().err


def test_post_to_unreachable_monitor_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = gen.main(
        ["--events", "100", "--out-dir", str(tmp_path / "o"), "--post", f"http://127.0.0.1:{port}"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach the monitor at http://127.0.0.1:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _get_json(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_replay_into_the_real_monitor_shows_the_injected_gap(tmp_path: Path, monitor_server: Any) -> None:
    api = monitor_server.api
    _get_json(f"{api}/start", "POST")
    args = ["--events", "3000", "--out-dir", str(tmp_path), "--post", monitor_server.url, "--rate", "20000"]
    assert gen.main([*args, "--inject", "latency_gap:GET /api/products"]) == 0
    status = _get_json(f"{api}/status")
    assert (status["accepted"], status["rejected"]) == (3000, 0)
    deadline = time.monotonic() + 15
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        differences = _get_json(f"{api}/differences")["differences"]
        found = [d for d in differences if (d["type"], d["key"]) == ("performance", "GET /api/products")]
        time.sleep(0.1)
    assert found and found[0]["severity"] in ("medium", "high")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "inf"], "argument --start: not a finite number of epoch seconds: 'inf'"),
        (["--start", "nan"], "argument --start: not a finite number of epoch seconds: 'nan'"),
        (["--start", "1e400"], "argument --start: not a finite number"),
        (["--start=-1e20"], "argument --start: time out of range (years 1 to 9999 UTC): '-1e20'"),
        (["--start", "1e20"], "argument --start: time out of range"),
        (["--start", "2026-13-40"], "not an ISO 8601 timestamp: '2026-13-40' (month must be in 1..12)"),
        (["--duration-s", "inf"], "argument --duration-s: not a finite number: 'inf'"),
        (["--duration-s", "nan"], "argument --duration-s: not a finite number: 'nan'"),
        (["--rate", "nan"], "argument --rate: not a finite number: 'nan'"),
        (["--duration-s", "1e12"], "error: --start and --duration-s put the events outside years 1 to 9999"),
        (["--start", "253402300000"], "error: --start and --duration-s put the events outside years"),
    ],
)
def test_times_and_spans_that_are_not_representable_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "x"
    assert gen.main(["--events", "10", "--out-dir", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(r"^(\S+: )?error: ", err, re.M) and message in err
    assert not out.exists()  # nothing half-written
