"""The offline tools over a million events: wall time and peak memory of the difference report
and the log analysis, at 250,000 and 1,000,000 events (smaller with --quick).

The inputs come from ``generate_sample_logs.py --seed 1 --format jsonl``; each tool runs as
its real CLI in a subprocess under GNU time, whose peak RSS is the tool's own. Memory must
stay flat: peak RSS at the large input <= 1.5x peak RSS at the small one. Sizes alternate
per round.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    PYTHON,
    ROOT,
    Context,
    Row,
    Target,
    fmt_time,
    median,
    median_ratio,
    rotated,
    temp_dir,
    vm_hwm,
)

ROWS = ("tools-report", "tools-analysis")
GNU_TIME = Path("/usr/bin/time").exists()
MIB = 1024 * 1024


@dataclass
class Run:
    """One tool run: wall seconds and the child's peak resident memory."""

    seconds: float
    peak_rss: int


def measure(argv: list[str], stdout: Path, timeout: float) -> Run:
    """Run ``argv`` with stdout to a file: wall time and the peak RSS of that process.

    GNU time reports the tool's own peak; the rusage of a child of this process would not do,
    since Linux starts a spawned child's peak at the parent's RSS. Without /usr/bin/time the
    child's VmHWM is polled every 10 ms instead (it may miss a last-moment peak).
    """
    with stdout.open("wb") as out, tempfile.TemporaryDirectory(prefix="bench-time-") as tmp:
        report = Path(tmp) / "time.txt"
        err = Path(tmp) / "stderr.txt"
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(report), *argv] if GNU_TIME else argv
        peak = 0
        with err.open("wb") as err_out:
            started = time.perf_counter()
            proc = subprocess.Popen(wrapped, cwd=ROOT, stdout=out, stderr=err_out)
            deadline = started + timeout
            try:
                while not GNU_TIME and proc.poll() is None and time.perf_counter() < deadline:
                    peak = max(peak, vm_hwm(proc.pid))
                    time.sleep(0.01)
                proc.wait(max(0.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{Path(argv[1]).name} ran over {timeout:g} s") from None
            seconds = time.perf_counter() - started
        if proc.returncode != 0:
            message = err.read_text(errors="replace").strip()[-400:]
            raise RuntimeError(f"{Path(argv[1]).name} exited {proc.returncode}: {message}")
        if GNU_TIME:
            peak = int(report.read_text().split()[-1]) * 1024
    return Run(seconds, peak)


def _generate(ctx: Context, n: int, out: Path) -> None:
    ctx.log(f"tools: generating {n:,} events")
    argv = [PYTHON, str(ROOT / "generate_sample_logs.py"), "--events", str(n), "--seed", "1"]
    done = subprocess.run(
        [*argv, "--format", "jsonl", "--out-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"generate_sample_logs.py failed: {done.stderr.strip()[-400:]}")


def _report(data: Path, out: Path) -> Run:
    argv = [PYTHON, str(ROOT / "execution_difference_report.py")]
    argv += ["--backend-data", str(data / "backend_events.jsonl")]
    argv += ["--frontend-data", str(data / "frontend_events.jsonl")]
    argv += ["--format", "json", "--output", str(out)]
    return measure(argv, Path(os.devnull), 1800)


def _analysis(data: Path, out: Path) -> Run:
    argv = [PYTHON, str(ROOT / "log_analysis_tool.py")]
    argv += [str(data / "backend_events.jsonl"), str(data / "frontend_events.jsonl")]
    argv += ["--group-by", "endpoint", "--format", "json"]
    return measure(argv, out, 1800)


def _check_counts(tool: str, out: Path, n: int) -> None:
    """Each tool must have read every event, or a flat memory figure would mean nothing."""
    data = json.loads(out.read_text(encoding="utf-8"))
    if tool == "report":
        summary = data["summary"]
        seen = summary["backend"]["total_events"] + summary["frontend"]["total_events"]
    else:
        seen = data["summary"]["records"]
    if seen != n:
        raise RuntimeError(f"{tool} read {seen:,} of {n:,} events")


def tools_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """Time and peak RSS of both tools at a small and a 4x larger input; RSS must stay flat."""
    small, large = ctx.pick((50_000, 200_000), (250_000, 1_000_000))
    rounds = ctx.pick(1, 3)
    tools = {"report": _report, "analysis": _analysis}
    tools = {k: v for k, v in tools.items() if f"tools-{k}" in wanted}
    with temp_dir("bench-tools-") as tmp:
        for n in (small, large):
            _generate(ctx, n, tmp / str(n))
        runs: dict[tuple[str, int], list[Run]] = {(t, n): [] for t in tools for n in (small, large)}
        for r in range(rounds):
            for tool, n in rotated([(t, n) for t in tools for n in (small, large)], r):
                out = tmp / f"{tool}-{n}.json"
                got = tools[tool](tmp / str(n), out)
                _check_counts(tool, out, n)
                runs[(tool, n)].append(got)
                ctx.log(
                    f"tools: round {r + 1}/{rounds} {tool} {n:,} events: {fmt_time(got.seconds)}, "
                    f"peak RSS {got.peak_rss / MIB:.1f} MiB"
                )
    rows = []
    names = {
        "report": "execution_difference_report.py --format json (backend + frontend JSONL files)",
        "analysis": "log_analysis_tool.py --group-by endpoint --format json (both JSONL files)",
    }
    for tool in tools:

        def fig(n: int, tool: str = tool) -> str:
            rs = runs[(tool, n)]
            secs = median([x.seconds for x in rs])
            rss = median([x.peak_rss for x in rs]) / MIB
            return f"{n:,} events: {fmt_time(secs)}, peak RSS {rss:.1f} MiB ({n / secs:,.0f} events/s)"

        big, little = runs[(tool, large)], runs[(tool, small)]
        ratio = median_ratio([x.peak_rss for x in big], [x.peak_rss for x in little])
        time_ratio = median_ratio([x.seconds for x in big], [x.seconds for x in little])
        rows.append(
            Row(
                f"tools-{tool}",
                f"peak RSS at {large:,} vs {small:,} events: {names[tool]}",
                fig(large),
                fig(small),
                ratio,
                Target("<=", 1.5),
                note=f"time grows {time_ratio:.2f}x for {large // small}x the events; peak RSS from "
                + ("GNU time" if GNU_TIME else "VmHWM polled every 10 ms"),
            )
        )
    return rows
