from __future__ import annotations

import signal
import threading

import requests

import run_live_monitor
from live_monitor import install


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
    assert install.missing_modules(("json", "surely_not_a_module_xyz")) == ["surely_not_a_module_xyz"]
    # an install from before OTLP protobuf came with requirements.txt lacks the whole namespace
    assert install.missing_modules(("json", "no_such_namespace_xyz.proto.v1")) == [
        "no_such_namespace_xyz.proto.v1"
    ]


def _refuse_to_serve(settings, monitor=None, ready=None):
    raise AssertionError(f"the launcher served one process with {dict(settings)}")


def test_launcher_warns_when_listening_beyond_loopback(monkeypatch, capsys):
    import live_execution_monitor as lem

    served: dict[str, object] = {}
    monkeypatch.setattr(lem, "serve", lambda settings, ready=None: served.update(settings, ready=ready) or 0)
    argv = ["--no-install", "--no-browser", "--host", "0.0.0.0", "--token", "s3cret"]
    assert run_live_monitor.main(argv) == 0
    assert "warning: listening on 0.0.0.0: every API call needs the token" in capsys.readouterr().err
    assert served["host"] == "0.0.0.0" and served["token"] == "s3cret" and callable(served["ready"])


def test_launcher_refuses_workers_without_a_shared_store(monkeypatch, capsys):
    import live_execution_monitor as lem

    monkeypatch.setattr(lem, "serve", _refuse_to_serve)
    assert run_live_monitor.main(["--no-install", "--no-browser", "--workers", "2"]) == 2
    assert "--workers needs a shared store: add --store redis://" in capsys.readouterr().err


def test_launcher_workers_run_worker_processes_and_open_the_dashboard_once_the_port_answers(
    monkeypatch, capsys
):
    import http.server

    import live_execution_monitor as lem
    from live_monitor.web import server as monitor_server

    calls: list[tuple] = []
    opened: list[str] = []
    browser_opened = threading.Event()

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    def fake_run_workers(script, argv, host, port, workers, ready=None, env=None):
        calls.append((script, argv, host, port, workers))
        if ready is not None:  # answer /health as the workers would, then say the port is up
            server = http.server.ThreadingHTTPServer((host, 0), Health)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                ready(f"http://{host}:{server.server_address[1]}")
                assert browser_opened.wait(20), "the dashboard was never opened"
            finally:
                server.shutdown()
                server.server_close()
        return 0

    def fake_open(url):
        opened.append(url)
        browser_opened.set()

    monkeypatch.setattr(monitor_server, "run_workers", fake_run_workers)
    monkeypatch.setattr(lem, "serve", _refuse_to_serve)
    monkeypatch.setattr(run_live_monitor.webbrowser, "open", fake_open)
    monitor_argv = ["--workers", "2", "--store", "redis://127.0.0.1:1/0", "--port", "0"]
    assert run_live_monitor.main(["--no-install", *monitor_argv]) == 0
    assert lem.main(monitor_argv) == 0
    by_launcher, by_monitor_cli = calls
    assert by_launcher == by_monitor_cli  # the launcher serves exactly as the monitor's CLI does
    assert by_launcher == (
        lem.__file__,
        ["--store", "redis://127.0.0.1:1/0", "--port", "0"],
        "127.0.0.1",
        0,
        2,
    )
    assert len(opened) == 1 and opened[0].startswith("http://127.0.0.1:")
    assert f"Dashboard:  {opened[0]}" in capsys.readouterr().out


def test_help_lists_the_launchers_flags_and_every_flag_of_the_monitor(capsys):
    """``live-monitor --help`` is all a pip user has: it names --port and the rest too."""
    assert run_live_monitor.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--no-browser" in out and "--no-install" in out
    for flag in ("--port", "--host", "--store", "--persist", "--token", "--workers"):
        assert flag in out, flag
