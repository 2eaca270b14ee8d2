"""/metrics with the real Prometheus tools: ``promtool check metrics`` on the real output, a real
Prometheus server scraping a monitor and answering the README's queries, and two processes on
one Redis (and the workers of one --workers monitor) exposing the same cumulative series."""

from __future__ import annotations

import http.client
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, MonitorProcess, PrometheusServer, wait_for, wait_for_workers

KEY = "GET /api/orders/:id"
SERVER_MS, BROWSER_MS = 40.0, 300.0  # a gap of 260 ms: the (0.25, 0.5] s bucket


def readme_prometheus() -> tuple[str, list[str]]:
    """The README's Prometheus example: its scrape config and its PromQL queries, one a line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("- **Prometheus**")
    section = text[start : text.index("\n- **", start + 1)]
    config = re.search(r"```yaml\n(.*?)```", section, re.S)
    queries = re.search(r"```promql\n(.*?)```", section, re.S)
    assert config and queries, "the README's Prometheus bullet needs a yaml and a promql block"
    lines = [line.strip() for line in queries.group(1).splitlines() if line.strip()]
    return _dedent(config.group(1)), lines


def _dedent(block: str) -> str:
    lines = block.splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


def traffic(round_: int, pairs: int = 8) -> list[dict[str, Any]]:
    """``pairs`` requests seen by both sides (same trace id); a quarter of the backend's fail."""
    batch = []
    for i in range(pairs):
        trace = f"{round_:08x}{i:024x}"
        status = "error" if i % 4 == 0 else "success"
        batch.append(_call("backend", "http", SERVER_MS, trace, status))
        batch.append(_call("frontend", "api", BROWSER_MS, trace, "success"))
    return batch


def _call(service: str, component: str, ms: float, trace: str, status: str) -> dict[str, Any]:
    return {
        "service": service,
        "component": component,
        "action": KEY,
        "duration_ms": ms,
        "status": status,
        "trace_id": trace,
    }


def scrape(url: str) -> str:
    answer = requests.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    return answer.text


def test_promtool_finds_no_problem_in_the_metrics_of_a_busy_monitor(monitor_server):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus (make test does it)"
    monitor_server.post_events(traffic(1) + [_call("frontend", "api", 5.0, "f" * 32, "error")])
    requests.post(f"{monitor_server.api}/events", json=[{"service": "nope"}], timeout=10)
    text = scrape(monitor_server.url)
    assert "live_monitor_trace_gap_seconds_bucket" in text and "live_monitor_window_" in text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr
    )


def values(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    """{label value: sample value} of an instant vector."""
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


def test_a_real_prometheus_answers_the_readme_queries(monitor_server, tmp_path: Path):
    config, (p95_gap, error_ratio) = readme_prometheus()
    assert config.count("localhost:5001") == 1 and config.count("scrape_interval: 15s") == 1
    config = config.replace("localhost:5001", monitor_server.url.removeprefix("http://"))
    prometheus = PrometheusServer(tmp_path, config.replace("scrape_interval: 15s", "scrape_interval: 1s"))
    prometheus.start()
    try:

        def seen(n: int) -> dict[str, float]:
            """Non-empty once Prometheus has scraped ``n`` backend events."""
            return values(prometheus.query(f'sum(live_monitor_events_total{{service="backend"}}) == {n}'), "")

        assert wait_for(lambda: seen(0), timeout=15), prometheus.log()  # a scrape before any traffic
        monitor_server.post_events(traffic(1))
        assert wait_for(lambda: seen(8), timeout=15), prometheus.log()
        monitor_server.post_events(traffic(2))
        assert wait_for(lambda: seen(16), timeout=15), prometheus.log()

        gaps = values(prometheus.query(p95_gap), "endpoint")
        assert list(gaps) == [KEY] and 0.25 < gaps[KEY] <= 0.5, gaps
        ratios = values(prometheus.query(error_ratio), "service")
        assert ratios == {"backend": pytest.approx(0.25), "frontend": 0.0}
        rates = values(prometheus.query("rate(live_monitor_duration_seconds_count[1m])"), "service")
        assert set(rates) == {"backend", "frontend"} and all(r > 0 for r in rates.values()), rates
        p95 = prometheus.query("histogram_quantile(0.95, rate(live_monitor_duration_seconds_bucket[5m]))")
        by_side = values(p95, "service")
        assert 0.025 < by_side["backend"] <= 0.05 and 0.25 < by_side["frontend"] <= 0.5, by_side
        for title, expr in dashboard_queries():
            answer = values(prometheus.query(expr.replace("$__rate_interval", "1m")), "")
            assert answer and all(not math.isnan(v) for v in answer.values()), (title, expr, answer)
    finally:
        prometheus.stop()


def cumulative_series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The counters and histograms of a scrape (what every process must agree on)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("live_monitor_")
        and family.type in ("counter", "histogram")
        and family.name != "live_monitor_sampler_errors"  # each process samples its own machine view
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_processes_on_one_redis_expose_the_same_cumulative_series(redis_server, start_monitor):
    flags = ("--no-self-monitor", "--store", redis_server.url)
    with start_monitor(*flags) as one, start_monitor(*flags) as two:
        first, second = traffic(1), traffic(2)
        one.post_events(first[0::2] + second[1::2])  # each request's halves reach different processes
        two.post_events(first[1::2] + second[0::2])
        a, b = cumulative_series(scrape(one.url)), cumulative_series(scrape(two.url))
        assert a == b
        gaps = ("live_monitor_trace_gap_seconds_count", (("endpoint", KEY),))
        assert a[gaps] == 16
        assert a[("live_monitor_events_total", (("service", "backend"), ("status", "error")))] == 4


def scrape_worker(server: MonitorProcess, pids: list[int]) -> tuple[int, str]:
    """One scrape on a new connection, and the pid of the worker the kernel handed it to (the
    one holding the connection's other end while it is still open)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        ours = connection.sock.getsockname()[1]
        (pid,) = [
            p
            for p in pids
            if any(c.raddr and c.raddr.port == ours for c in psutil.Process(p).net_connections("tcp"))
        ]
    finally:
        connection.close()
    return pid, text


def test_every_worker_exposes_the_same_cumulative_series(redis_server, start_monitor):
    """--workers 2 on Redis: a scrape may reach either process (the kernel hands each new
    connection to one of them); both must show the same counters and histograms."""
    flags = ("--no-self-monitor", "--store", redis_server.url, "--workers", "2")
    with start_monitor(*flags) as server:
        pids = wait_for_workers(server, 2)
        for round_ in range(4):
            server.post_events(traffic(round_))
        scrapes: dict[int, dict[Any, float]] = {}
        for _ in range(60):
            pid, text = scrape_worker(server, pids)
            scrapes[pid] = cumulative_series(text)
            if len(scrapes) == 2:
                break
        assert len(scrapes) == 2, "60 scrapes all reached one worker"
        first, second = scrapes.values()
        assert first == second
        assert first[("live_monitor_trace_gap_seconds_count", (("endpoint", KEY),))] == 32


# --- the Grafana dashboard ------------------------------------------------------------------

DASHBOARD = ROOT / "examples" / "grafana" / "live-monitor.json"
_NOT_NAMES = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
}


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, label matchers,
    ranges and groupings that are not functions, aggregations or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):  # not inside 1m or 1e3
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _NOT_NAMES:
            continue
        names.add(match.group())
    return names


def test_metric_names_are_read_from_promql_as_prometheus_would():
    expr = (
        'histogram_quantile(0.95, sum by (endpoint, le) (rate(a_bucket{x="y z"}[5m]))) / on (le) b offset 1m'
    )
    assert metric_names(expr) == {"a_bucket", "b"}


def test_the_grafana_dashboard_reads_only_metrics_the_monitor_exposes(make_app):
    import json

    client = make_app().test_client()
    client.post("/api/live-execution/events", json=traffic(1))
    exposed = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
    }
    queries = dashboard_queries()
    assert len(queries) >= 4
    for title, expr in queries:
        names = metric_names(expr)
        assert names and names <= exposed, (title, names - exposed)

    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    titles = " ".join(panel["title"].lower() for panel in board["panels"])
    assert "p95 gap" in titles and "difference" in titles and "ingest" in titles
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{variable['name']}}}"}, panel[
            "title"
        ]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["type"] in ("timeseries", "stat")
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
