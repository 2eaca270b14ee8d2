"""The benchmark's own tests (`make bench-test`, run before `make bench`): a smoke test of the
benchmark command with one cheap row, no timing asserted; the measuring helpers the rows rely on
(peak memory of a tool, wrk's answer counting); and the results chart."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_restart, bench_scaleout, bench_system, bench_tools, run, stages
from benchmarks.chart import results_svg
from benchmarks.common import Row, Target, batch_bodies
from benchmarks.load import run_load

MIB = 1024 * 1024


def test_quick_decode_row_prints_a_ratio_and_writes_nothing_with_no_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "RESULTS.md"
    code = run.main(["--quick", "--only", "decode", "--no-write", "--output", str(output)])
    out = capsys.readouterr().out
    line = next((x for x in out.splitlines() if x.startswith("decode ")), "")
    match = re.search(r"\s(\d+(?:\.\d+)?)x\s+<= 0\.55x\s+(PASS|FAIL)\s", line)
    assert match, f"no ratio line for decode in:\n{out}"
    assert code == (0 if match.group(2) == "PASS" else 1)
    assert not output.exists()


def test_results_file_is_written_with_the_machine_and_the_row(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    run.main(["--quick", "--only", "decode", "--output", str(output)])
    text = output.read_text(encoding="utf-8")
    assert "| cpu |" in text and "| python |" in text
    assert re.search(r"\| decode \|.*\| <= 0.55x \| \*\*(PASS|FAIL)\*\* \|", text)


def test_unknown_row_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--only", "no-such-row", "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'no-such-row'" in err and "decode" in err


def test_list_names_the_scale_out_server_choice_and_tools_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "redis: redis-scaleout, redis-lossless" in out
    assert "wsgi: wsgi-vs-gunicorn-sync, wsgi-vs-gunicorn-gthread, wsgi-vs-werkzeug" in out
    assert "tools: tools-report, tools-analysis" in out


def test_restart_rows_judge_seconds_against_their_targets_and_say_what_a_miss_would_take() -> None:
    runs = {
        "serve": [0.5, 0.6, 0.7],
        "ready": [4.0, 6.0, 6.5],
        "empty": [0.4] * 3,
        "sync": [5.0] * 3,
        "cpu": [5.2] * 3,
    }
    serve, ready = bench_restart.rows_of(runs, 1_000_000, set(bench_restart.ROWS))
    assert (serve.name, serve.ratio, serve.verdict) == ("restart-serve", 0.6, "PASS")
    assert (ready.name, ready.ratio, ready.verdict) == ("restart-ready", 6.0, "FAIL")
    assert "+0.20 s against an empty journal" in serve.note
    assert "5.20 CPU-s (5.20 µs per event" in ready.note and "within 4.40 µs per event" in ready.note
    assert "busy" not in ready.note  # 5.4 s of wall time for 5.2 CPU-s: the restore had its core
    busy = bench_restart.rows_of({**runs, "cpu": [2.0] * 3}, 1_000_000, {"restart-ready"})[0]
    assert "5.40 s of wall time held 2.00 CPU-s: the machine was busy" in busy.note


def test_restart_journal_is_written_by_the_monitors_own_code_and_reads_back(tmp_path: Path) -> None:
    from live_monitor.store.journal import EventJournal

    assert bench_restart.build_journal(tmp_path / "j.db", 3000, batch=500, chunk=1000) == 3000
    events = EventJournal(tmp_path / "j.db", keep=10_000).load()
    assert len(events) == 3000 and {e.service for e in events} == {"backend", "frontend"}
    times = [e.epoch for e in events]
    medians = [sorted(times[i : i + 1000])[500] for i in range(0, 3000, 1000)]
    assert medians == sorted(medians)  # chunk after chunk, oldest first, as ingest would have journaled
    assert time.time() - 60 < max(times) <= time.time()  # the newest end about now: some in the window


def test_cold_memory_probe_reports_the_cost_of_a_page_after_each_idle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_system.main(["probe", "cold", "1.5", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rounds"] >= 1
    assert result["idle_1s_page_s"] > 0 and result["idle_1ms_page_s"] > 0


def test_sampler_probe_counts_its_ticks_and_a_warm_tick(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_system.main(["probe", "sampler", "1.5", "0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ticks"] >= 1
    assert result["warm_tick_s"] > 0


def _canned_probes(idle_1ms_page_s: float) -> dict[str, dict[str, Any]]:
    """Results shaped like the sampler and cold probes' JSON."""
    sampler = {"cpu_s": 0.005, "wall_s": 5.0, "ticks": 5, "reader": "ProcReader", "warm_tick_s": 25e-6}
    cold = {"idle_1s_page_s": 2e-6, "idle_1ms_page_s": idle_1ms_page_s, "rounds": 4}
    return {"sampler": sampler, "cold": cold}


# Two windows: (share of a core in %, wake-ups/s) per process.
WINDOWS = [
    {"bare": (0.010, 1.0), "idle": (0.060, 8.0), "idle-no-grpc": (0.020, 1.0)},
    {"bare": (0.020, 1.0), "idle": (0.080, 8.0), "idle-no-grpc": (0.030, 1.0)},
]


@pytest.mark.parametrize(
    ("idle_1ms_page_s", "cold_figures"),
    [
        (1e-7, "took 2,000 ns of CPU, 20x one touched a millisecond before (100 ns; median of 4 rounds"),
        (0.0, "took 2,000 ns of CPU, against one touched a millisecond before (0 ns; median of 4 rounds"),
    ],
)
def test_idle_rows_are_medians_of_window_ratios_and_say_what_grpc_costs(
    idle_1ms_page_s: float, cold_figures: str
) -> None:
    probed = _canned_probes(idle_1ms_page_s)
    grpc = bench_system._idle_row("idle", "OTLP/gRPC on (the default)", WINDOWS, probed)
    assert grpc.ratio == pytest.approx(5.0) and grpc.verdict == "FAIL"  # 6x and 4x: the median
    assert grpc.figure == "0.0700% of a core, 8.0 wake-ups/s"
    assert "OTLP/gRPC idle costs +0.0450% and +7.0 wake-ups/s" in grpc.note
    assert "without OTLP/gRPC the idle monitor meets the target (1.75x)" in grpc.note
    assert cold_figures in grpc.note
    assert "a tick costs 25.0 µs, 0.0025% at 1 Hz" in grpc.note
    bare = bench_system._idle_row("idle-no-grpc", "OTLP/gRPC off (--otlp-grpc-port 0)", WINDOWS, probed)
    assert bare.ratio == pytest.approx(1.75) and bare.verdict == "PASS"
    assert "the CLI with OTLP/gRPC on: 0.0700%, 8.0 wake-ups/s = 5.00x" in bare.note
    assert "SystemSampler alone, in a process of its own" not in bare.note  # said only when it fails


def test_an_idle_row_short_of_its_target_without_grpc_says_what_the_sampler_costs_alone() -> None:
    slow = [{**w, "idle-no-grpc": (w["bare"][0] * 3, 1.0)} for w in WINDOWS]
    row = bench_system._idle_row(
        "idle-no-grpc", "OTLP/gRPC off (--otlp-grpc-port 0)", slow, _canned_probes(1e-7)
    )
    assert row.ratio == pytest.approx(3.0) and row.verdict == "FAIL"
    assert "SystemSampler alone, in a process of its own, costs 6.67x the bare process" in row.note


def test_process_cpu_counts_every_thread_of_a_process() -> None:
    """CPU in nanoseconds from /proc (psutil's clock ticks are too coarse for an idle process)."""
    done, finish = threading.Event(), threading.Event()

    def work() -> None:
        sum(range(2_000_000))
        done.set()
        finish.wait(30)

    thread = threading.Thread(target=work)
    thread.start()
    own = Path(f"/proc/{os.getpid()}/task/{thread.native_id}/schedstat")
    assert done.wait(30)
    busy = int(own.read_text().split()[0]) / 1e9  # the other thread's CPU alone
    cpu, slices = bench_system.process_cpu(os.getpid())
    finish.set()
    thread.join()
    assert cpu > busy > 0.01 and slices > 0


@pytest.mark.parametrize("gnu_time", [True, False])
def test_tool_peak_memory_is_the_child_own_not_the_benchmark_process(
    gnu_time: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_tools, "GNU_TIME", gnu_time)
    held = bytearray(256 * MIB)  # this process is large; the child's figure must not inherit it
    held[::4096] = b"x" * len(held[::4096])
    code = "import time; b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"
    got = bench_tools.measure([sys.executable, "-c", code], Path(os.devnull), 30)
    assert 64 * MIB <= got.peak_rss < 200 * MIB
    assert got.seconds >= 0.3


def test_tool_failure_is_reported_with_its_message(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited 1: no such input"):
        bench_tools.measure(
            [sys.executable, "-c", "import sys; sys.exit('no such input')"], tmp_path / "o", 30
        )


class _Flaky(BaseHTTPRequestHandler):
    """Answers 200 to the first 50 POSTs, then 503, keeping connections alive."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    answered = {200: 0, 503: 0}

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.lock:
            code = 200 if self.answered[200] < 50 else 503
            self.answered[code] += 1
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_wrk_counting_script_counts_200_and_other_answers() -> None:
    _Flaky.answered = {200: 0, 503: 0}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/live-execution/events"
        got = bench_scaleout.run_counted(url, "wrk", 1.0, b"[]")
    finally:
        server.shutdown()
        server.server_close()
    assert got.ok == 50
    served = _Flaky.answered[503]
    # Requests still in flight when wrk stops were answered but never counted.
    assert served - bench_scaleout.CONNECTIONS <= got.other <= served
    assert got.ok + got.other <= got.sent


class _Recorder(BaseHTTPRequestHandler):
    """Keeps every POST body it is sent, and answers 200."""

    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _traces(body: bytes) -> list[str | None]:
    return [event.get("trace_id") for event in json.loads(body)]


@pytest.mark.parametrize("client", ["python", "wrk"])
def test_load_rotates_its_bodies_and_never_repeats_a_trace_id(client: str) -> None:
    bodies = batch_bodies(20, 3)
    _Recorder.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/live-execution/events"
        got = run_load(url, client, 1.0, 2, "POST", bodies, max_requests=60, fresh_traces=True)
    finally:
        server.shutdown()
        server.server_close()
    sent = _Recorder.bodies
    assert got.ok >= 6 and len(sent) >= got.ok
    seen: list[str] = []
    for body in sent:
        traces = _traces(body)
        # Each request is one of the batches, in turn, with its trace ids renewed alike: the
        # halves of one trace still share an id, and every other byte is the batch's.
        original = next(b for b in bodies if len(b) == len(body) and _same_but_ids(b, body))
        old = _traces(original)
        assert [t is None for t in traces] == [t is None for t in old]
        pairs = {(t, o) for t, o in zip(traces, old, strict=True) if t is not None}
        assert len({t for t, _ in pairs}) == len({o for _, o in pairs}) == len(pairs)
        seen += sorted({t for t in traces if t is not None})
    assert len(seen) == len(set(seen)), "a trace id came back"
    assert {bodies.index(next(b for b in bodies if _same_but_ids(b, x))) for x in sent[:6]} == {0, 1, 2}


def _same_but_ids(a: bytes, b: bytes) -> bool:
    """Whether two bodies differ only in the trace ids' first 16 hex digits."""
    mask = re.compile(rb'("trace_id": ")[0-9a-f]{16}')
    return mask.sub(rb"\1", a) == mask.sub(rb"\1", b)


def test_batch_bodies_are_distinct_batches_whose_server_requests_name_their_browser_call() -> None:
    bodies = batch_bodies(100, 4, seed=3)
    traces = [{t for t in _traces(body) if t} for body in bodies]
    assert all(len(t) > 30 for t in traces)
    assert not set.intersection(*traces[:2]) and not set.intersection(*traces[2:])
    events = json.loads(bodies[0])
    assert len(events) == 100
    calls = {e["span_id"]: e for e in events if e["service"] == "frontend" and e.get("trace_id")}
    tied = [e for e in events if e["service"] == "backend" and e.get("parent_span_id") in calls]
    assert len(tied) == len(calls) > 20
    assert all(calls[e["parent_span_id"]]["trace_id"] == e["trace_id"] for e in tied)


def test_ingest_stages_time_every_stage_of_the_monitor_and_the_bare_handler() -> None:
    """The ingest-vs-bare note splits a batch's time into the monitor's stages: each is found
    (its wrapper called) and they add up to the whole; no figure is judged."""
    bodies = batch_bodies(100, 2)
    got = stages.ingest_stages(bodies, 30)
    assert set(got) == {name for name, _ in stages.STAGES} | {"total"}
    assert all(got[name] > 0 for name, _ in stages.STAGES if name != "wsgi")
    assert sum(got[name] for name, _ in stages.STAGES) == pytest.approx(got["total"])
    assert stages.bare_work(bodies, 5) > 0


# --- the results chart (benchmarks/chart.py, results.svg beside RESULTS.md) ------------------

SVG = "{http://www.w3.org/2000/svg}"


def _row(name: str, ratio: float | None, target: Target | None, unit: str = "x", error: str = "") -> Row:
    return Row(name, "what", "figure", "baseline", ratio, target, unit, error=error)


def _chart(rows: list[Row]) -> ET.Element:
    return ET.fromstring(results_svg(rows))


def _drawn_rows(root: ET.Element) -> dict[str, ET.Element]:
    """Each charted row's group, by the label text left of its bar."""
    groups = [g for g in root.iter(f"{SVG}g") if "row" in (g.get("class") or "").split()]
    return {"".join(g.find(f"{SVG}text").itertext()): g for g in groups}  # type: ignore[union-attr]


def _bars(element: ET.Element) -> list[ET.Element]:
    return [r for r in element.iter(f"{SVG}rect") if "bar" in (r.get("class") or "").split()]


def _bar(group: ET.Element) -> ET.Element:
    [bar] = _bars(group)
    return bar


def _rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def test_chart_draws_one_bar_per_targeted_row_coloured_and_placed_by_verdict() -> None:
    rows = [
        _row("decode", 0.483, Target("<=", 0.5)),
        _row("ingest-vs-bare", 0.706, Target(">=", 0.9)),
        _row("sketch", 0.992, Target("<=", 1, "%"), unit="%"),
        _row("rss", None, None),
        _row("chart", None, Target("<=", 2), error="BenchError: chromium did not start"),
    ]
    root = _chart(rows)
    assert len(_bars(root)) == sum(row.target is not None for row in rows)
    drawn = _drawn_rows(root)
    assert set(drawn) == {
        "decode 0.483x (<= 0.5x)",
        "ingest-vs-bare 0.706x (>= 0.9x)",
        "sketch 0.992% (<= 1%)",
        "chart (<= 2x)",
    }
    line = next(x for x in root.iter(f"{SVG}line") if x.get("class") == "target")
    target_x = float(line.get("x1", "nan"))
    for label, verdict in [
        ("decode 0.483x (<= 0.5x)", "pass"),
        ("sketch 0.992% (<= 1%)", "pass"),
        ("ingest-vs-bare 0.706x (>= 0.9x)", "fail"),
    ]:
        bar = _bar(drawn[label])
        assert verdict in (bar.get("class") or "").split()
        red, green, _ = _rgb(bar.get("fill", ""))
        left, width = float(bar.get("x", "nan")), float(bar.get("width", "nan"))
        if verdict == "pass":
            assert green > red and left >= target_x - 0.5
        else:
            assert red > green and left + width <= target_x + 0.5
    broken = _bar(drawn["chart (<= 2x)"])
    red, green, blue = _rgb(broken.get("fill", ""))
    assert max(red, green, blue) - min(red, green, blue) < 16  # grey
    assert "could not run" in "".join(drawn["chart (<= 2x)"].itertext())
    footnote = " ".join(
        "".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "footnote"
    )
    assert "rss" in footnote and not any(label.startswith("rss") for label in drawn)


def test_chart_normalises_headroom_so_le_and_ge_targets_read_the_same_way() -> None:
    rows = [
        _row("half-of-a-max", 0.5, Target("<=", 1)),  # headroom 2
        _row("twice-a-min", 2.0, Target(">=", 1)),  # headroom 2
        _row("twice-a-max", 2.0, Target("<=", 1)),  # headroom 0.5
    ]
    drawn = _drawn_rows(_chart(rows))
    widths = {label.split()[0]: float(_bar(g).get("width", "nan")) for label, g in drawn.items()}
    assert widths["half-of-a-max"] == pytest.approx(widths["twice-a-min"], abs=0.2)
    assert widths["twice-a-max"] == pytest.approx(widths["twice-a-min"], abs=0.2)
    assert "pass" in (_bar(drawn["twice-a-min 2x (>= 1x)"]).get("class") or "")
    assert "fail" in (_bar(drawn["twice-a-max 2x (<= 1x)"]).get("class") or "")


def test_chart_escapes_markup_in_names_and_errors_and_is_accessible_text() -> None:
    name, error = 'a<b & "c"', "RuntimeError: <script>alert(1)</script> & co"
    few = [_row(name, 1.0, Target("<=", 2)), _row("broken", None, None, error=error)]
    text = results_svg(few)
    assert "a<b" not in text and "<script>" not in text
    root = ET.fromstring(text)
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}path"))
    labels = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert f"{name} 1x (<= 2x)" in labels and "<script>" in labels
    assert "target" in (root.findtext(f"{SVG}title") or "")
    assert name in (root.findtext(f"{SVG}desc") or "")
    assert 700 <= float(root.get("width", "0")) <= 900
    many = few + [_row(f"row-{i}", 1.0 + i / 10, Target(">=", 1)) for i in range(10)]
    assert float(ET.fromstring(results_svg(many)).get("height", "0")) > float(root.get("height", "0")) + 200


def test_results_svg_is_written_beside_the_markdown_which_embeds_it(tmp_path: Path) -> None:
    output = tmp_path / "out" / "RESULTS.md"
    run.main(["--quick", "--only", "decode", "--no-write", "--output", str(output)])
    assert not (tmp_path / "out").exists()
    run.main(["--quick", "--only", "decode", "--output", str(output)])
    chart = ET.parse(tmp_path / "out" / "results.svg").getroot()
    assert len(_bars(chart)) == 1
    text = output.read_text(encoding="utf-8")
    results = text.index("## Results")
    image = text.index("![Each row against its target](results.svg)")
    assert results < image < text.index("| row | what |")


def test_a_figure_far_short_of_its_target_stays_out_of_the_row_labels() -> None:
    from benchmarks.chart import AREA_LEFT, LABEL_RIGHT, _width

    rows = [_row("sampler", 0.702, Target("<=", 0.1, "%"), unit="%"), _row("decode", 0.48, Target("<=", 0.5))]
    for label, group in _drawn_rows(_chart(rows)).items():
        figure = [t for t in group.iter(f"{SVG}text") if "".join(t.itertext()).endswith("×")][0]
        x, anchor = float(figure.get("x", "nan")), figure.get("text-anchor")
        # A right-aligned figure ends at x: it must end, with its width, right of the labels.
        left_edge = x - _width("".join(figure.itertext()), 12) if anchor == "end" else x
        assert left_edge >= AREA_LEFT or anchor == "start", label
        assert left_edge > LABEL_RIGHT, label


def test_scrub_row_shapes_are_built_to_the_sizes_it_compares() -> None:
    """The scrub-linear row compares 16 KiB against 8 KiB: a shape that came out shorter, or did
    not double, would hide a quadratic rule behind texts too small to show it."""
    from benchmarks.bench_scrub import ADVERSARIAL, SIZES

    for name, shape in ADVERSARIAL.items():
        small, large = (len(shape(size)) for size in SIZES)
        assert SIZES[0] - 30 <= small <= SIZES[0] + 30, name
        assert 1.95 <= large / small <= 2.05, name
