from __future__ import annotations

import signal

import requests

import run_live_monitor


def test_launcher_serves_prints_the_dashboard_and_curl_lines_and_stops_on_ctrl_c(start_monitor):
    with start_monitor("--no-browser", "--no-install", script="run_live_monitor.py") as server:
        assert requests.get(server.url + "/").status_code == 200
        assert requests.post(f"{server.api}/start").json()["monitoring"] is True
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(10) == 0
    output = "".join(server.output)
    assert f"Dashboard:  {server.url}/" in output
    for line in (
        "curl -X POST",
        "/api/live-execution/start",
        "/api/live-execution/data",
        "/differences",
        "/stop",
    ):
        assert line in output


def test_launcher_passes_monitor_flags_and_refuses_unsafe_ones(capsys):
    assert run_live_monitor.main(["--no-browser", "--no-install", "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err


def test_missing_modules_are_detected():
    assert run_live_monitor.missing_modules(("json", "surely_not_a_module_xyz")) == [
        "surely_not_a_module_xyz"
    ]
