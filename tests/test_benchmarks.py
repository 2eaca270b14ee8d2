"""Smoke test of the benchmark command: one cheap row, no timing asserted; and the measuring
helpers the rows rely on (peak memory of a tool, wrk's answer counting)."""

from __future__ import annotations

import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks import bench_scaleout, bench_tools, run

MIB = 1024 * 1024


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


def test_list_names_the_scale_out_server_choice_and_tools_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "redis: redis-scaleout, redis-lossless" in out
    assert "wsgi: wsgi-vs-gunicorn-sync, wsgi-vs-gunicorn-gthread, wsgi-vs-werkzeug" in out
    assert "tools: tools-report, tools-analysis" in out


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
