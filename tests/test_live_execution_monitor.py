from __future__ import annotations

import gzip
import json
import signal
import socket
import threading
import time
from typing import Any

import pytest
import requests

import live_execution_monitor as lem
from live_execution_monitor import create_app, main
from tests.helpers import ev

API = "/api/live-execution"


def test_start_status_data_differences_stop(client):
    assert client.get(f"{API}/status").json["monitoring"] is False
    assert client.post(f"{API}/start").json == {"status": "started", "monitoring": True}
    assert client.post(f"{API}/start").json["status"] == "already running"
    assert client.get(f"{API}/status").json["monitoring"] is True
    data = client.get(f"{API}/data").json
    assert {"backend", "frontend", "comparison", "system", "recent_events", "endpoints"} <= set(data)
    assert client.get(f"{API}/differences").json["differences"] == []
    assert client.post(f"{API}/stop").json == {"status": "stopped", "monitoring": False}
    assert client.post(f"{API}/stop").json["status"] == "not running"


def test_a_mixed_batch_answers_counts_and_reasons(client):
    response = client.post(f"{API}/events", json=[ev(), ev(duration_ms=-1), ev(service="nope")])
    assert response.status_code == 200
    assert response.json["accepted"] == 1 and response.json["rejected"] == 2
    assert response.json["errors"][0] == {"index": 1, "error": "events[1].duration_ms: must be >= 0"}
    recent = client.get(f"{API}/data?limit=5").json["recent_events"]
    assert len(recent) == 1 and recent[0]["action"] == "GET /api/orders/:id"


def test_a_batch_with_no_valid_event_is_a_400_with_the_reasons(client):
    response = client.post(f"{API}/events", json={"events": [ev(status="meh")]})
    assert response.status_code == 400
    assert response.json["rejected"] == 1 and "status" in response.json["errors"][0]["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "phrase"),
    [
        (b"garbage", {"Content-Type": "application/json"}, 400, "JSON array"),
        (b"{oops", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        (b'{"events": "x"}', {"Content-Type": "application/json"}, 400, "array"),
        (b"[]", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        (b"\xff\xfe\xfa", {"Content-Type": "application/json"}, 400, ""),
        (b"[]", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "Content-Encoding"),
        (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "gzip"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(client, body, headers, status, phrase):
    response = client.post(f"{API}/events", data=body, headers=headers)
    assert response.status_code == status
    assert phrase in response.json["error"]


def test_an_oversized_body_is_413(app):
    client = create_app({"self_monitor": False, "max_body_bytes": 1000}).test_client()
    response = client.post(f"{API}/events", json=[ev(details={"x": "y" * 900})] * 3)
    assert response.status_code == 413
    assert "too large" in response.json["error"]


def test_a_gzip_bomb_is_413_after_decompression():
    client = create_app({"self_monitor": False, "max_body_bytes": 10_000}).test_client()
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    assert len(bomb) < 10_000
    response = client.post(
        f"{API}/events", data=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413


def test_gzip_bodies_are_accepted(client):
    body = gzip.compress(json.dumps([ev()]).encode())
    response = client.post(
        f"{API}/events", data=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert response.json["accepted"] == 1


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "history=x", "include_self=maybe"])
def test_bad_query_parameters_are_400(client, query):
    response = client.get(f"{API}/data?{query}")
    assert response.status_code == 400 and response.json["error"]


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get(f"{API}/nope").status_code == 404
    assert client.get(f"{API}/nope").json["error"]
    response = client.get(f"{API}/start")
    assert response.status_code == 405 and response.json["error"]


def test_foreign_host_header_is_refused_on_loopback(client):
    response = client.get(f"{API}/status", headers={"Host": "evil.example:5001"})
    assert response.status_code == 403
    assert client.get(f"{API}/status", headers={"Host": "localhost:5001"}).status_code == 200
    assert client.get(f"{API}/status", headers={"Host": "[::1]:5001"}).status_code == 200


def test_cross_site_post_to_start_is_refused(client):
    response = client.post(f"{API}/start", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert client.get(f"{API}/status").json["monitoring"] is False
    assert client.post(f"{API}/start", headers={"Origin": "http://localhost:3000"}).status_code == 200


def test_browser_ingest_from_loopback_origins_gets_cors_and_foreign_origins_do_not(client):
    ok = client.options(
        f"{API}/events",
        headers={
            "Origin": "http://127.0.0.1:8080",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"
    assert "Access-Control-Allow-Credentials" not in ok.headers
    bad = client.options(
        f"{API}/events", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_token_protects_control_and_read_endpoints_and_the_ingest_key_opens_ingest():
    client = create_app({"self_monitor": False, "token": "s3cret", "ingest_key": "pub"}).test_client()
    assert client.get(f"{API}/data").status_code == 401
    assert client.post(f"{API}/start").status_code == 401
    assert client.get(f"{API}/data", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post(f"{API}/events", json=[ev()]).status_code == 401
    assert client.post(f"{API}/events", json=[ev()], headers={"X-Ingest-Key": "pub"}).status_code == 200
    assert (
        client.get(f"{API}/config", headers={"Authorization": "Bearer s3cret"}).json["settings"][10]["value"]
        == "***"
    )


def test_self_monitoring_records_api_requests_tagged_and_can_be_turned_off():
    app = create_app({"self_monitor": True})
    client = app.test_client()
    client.get(f"{API}/status")
    client.post(f"{API}/events", json=[ev()])
    events = client.get(f"{API}/data?limit=50").json["recent_events"]
    own = [e for e in events if e["details"].get("self_monitor")]
    assert [e["action"] for e in own] == ["GET /api/live-execution/status"]
    assert own[0]["service"] == "backend" and own[0]["component"] == "http"
    assert own[0]["details"]["http_status"] == 200
    hidden = client.get(f"{API}/data?include_self=false").json["recent_events"]
    assert all(not e["details"].get("self_monitor") for e in hidden)
    quiet = create_app({"self_monitor": False}).test_client()
    quiet.get(f"{API}/status")
    assert quiet.get(f"{API}/data").json["recent_events"] == []


def test_config_lists_every_setting(client):
    from live_monitor.core.settings import SETTINGS

    names = [row["name"] for row in client.get(f"{API}/config").json["settings"]]
    assert names == [s.name for s in SETTINGS]


def test_min_severity_filters_differences(client):
    client.post(
        f"{API}/events", json=[ev(service="backend", component="db", action="q", duration_ms=125.0)] * 20
    )
    client.post(f"{API}/events", json=[ev(component="Cart", action="mount", duration_ms=75.0)] * 20)
    assert client.get(f"{API}/differences?min_severity=high").json["count"] >= 1
    assert client.get(f"{API}/differences?min_severity=urgent").status_code == 400


def test_main_refuses_debug_and_open_binds_without_token(capsys):
    assert main(["--host", "0.0.0.0", "--debug", "--token", "x"]) == 2
    assert "--debug" in capsys.readouterr().err
    assert main(["--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err


def test_environment_variables_configure_the_monitor(monkeypatch, capsys):
    monkeypatch.setenv("LIVE_MONITOR_HOST", "0.0.0.0")
    assert main([]) == 2
    monkeypatch.setenv("LIVE_MONITOR_AUTOSTART", "perhaps")
    assert main([]) == 2
    assert "LIVE_MONITOR_AUTOSTART" in capsys.readouterr().err


# --- the real server process -------------------------------------------------------------


def test_seed_curl_sequence_against_the_real_server(monitor_server):
    api = monitor_server.api
    assert requests.post(f"{api}/start").json()["monitoring"] is True
    batch = [ev(service="backend", component="http", duration_ms=40.0)] * 12 + [ev(duration_ms=950.0)] * 12
    assert requests.post(f"{api}/events", json=batch).json()["accepted"] == 24
    data = requests.get(f"{api}/data").json()
    assert data["backend"]["total_events"] == 12 and data["frontend"]["total_events"] == 12
    assert data["endpoints"][0]["gap_p50_ms"] == pytest.approx(910, rel=0.02)
    diffs = requests.get(f"{api}/differences").json()["differences"]
    assert any(d["key"] == "GET /api/orders/:id" and d["severity"] == "high" for d in diffs)
    deadline = time.monotonic() + 10
    while requests.get(f"{api}/data").json()["system"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests.get(f"{api}/data").json()["system"]["memory_percent"] > 0
    assert requests.post(f"{api}/stop").json()["monitoring"] is False
    assert requests.get(f"{api}/status").json()["monitoring"] is False
    assert requests.get(f"{api}/data").json()["backend"]["total_events"] == 12  # stored data stays


def test_mixed_and_garbage_bodies_against_the_real_server(monitor_server):
    api = monitor_server.api
    mixed = requests.post(f"{api}/events", json=[ev(), {"service": "backend"}, ev(trace_id="xyz")])
    assert mixed.status_code == 200
    assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"] == 2
    garbage = requests.post(
        f"{api}/events", data=b"\x00\x01garbage", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400 and "error" in garbage.json()
    assert "Traceback" not in garbage.text
    status = requests.get(f"{api}/status").json()
    assert status["accepted"] == 1 and status["rejected"] == 3


def test_chunked_oversized_body_is_refused_by_the_real_server(start_monitor):
    with start_monitor("--no-self-monitor", "--max-body-bytes", "2000") as server:

        def chunks():
            for _ in range(100):
                yield b" " * 100

        response = requests.post(
            f"{server.api}/events", data=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413


def test_server_sent_events_stream_through_the_real_server(start_monitor):
    with start_monitor("--no-self-monitor", "--interval", "0.2") as server:
        requests.post(f"{server.api}/start")
        got: list[Any] = []  # iter_lines(decode_unicode=True) is typed str | bytes
        with requests.get(f"{server.api}/stream", stream=True, timeout=10) as stream:
            threading.Timer(
                0.3, lambda: requests.post(f"{server.api}/events", json=[ev(action="GET /streamed")])
            ).start()
            for line in stream.iter_lines(decode_unicode=True):
                got.append(line)
                if "GET /streamed" in line:
                    break
        assert any(line.startswith("event: events") for line in got)


def test_the_server_stops_cleanly_on_sigint(start_monitor):
    with start_monitor() as server:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(10) == 0
        assert "stopped" in "".join(server.output)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1)


# --- hostile input, rate and overload ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'[{"service": "backend", "component": "a\xff\xfe", "action": "b"}]',  # invalid UTF-8 in a string
        b'[{"service": "backend", "component": "a", "action": "b", "duration_ms": Infinity}]',
        b"[" + b"[" * 10_000 + b"]" * 10_000 + b"]",
        b'{"events": ' + b"{" * 5000 + b"}",
    ],
)
def test_hostile_bodies_are_4xx_and_leave_the_store_untouched(client, body):
    response = client.post(f"{API}/events", data=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert response.json["error"]
    status = client.get(f"{API}/status").json
    assert status["accepted"] == 0


def test_duplicate_keys_take_the_last_value(client):
    body = b'[{"service": "backend", "service": "frontend", "component": "api", "action": "GET /d"}]'
    response = client.post(f"{API}/events", data=body, headers={"Content-Type": "application/json"})
    assert response.json["accepted"] == 1
    assert client.get(f"{API}/data").json["recent_events"][0]["service"] == "frontend"


def test_a_huge_array_keeps_the_first_batch_and_rejects_the_rest(client):
    response = client.post(f"{API}/events", json=[ev()] * 5000)
    assert response.json["accepted"] == 1000
    assert response.json["rejected"] == 4000
    assert len(response.json["errors"]) == 20


def test_hostile_strings_are_stored_as_plain_text(client):
    hostile = "<img src=x onerror=alert(1)>\u202e\x00"
    assert client.post(f"{API}/events", json=[ev(action=hostile, component="<script>")]).json["accepted"] == 1
    event = client.get(f"{API}/data").json["recent_events"][0]
    assert event["action"] == hostile


def test_browser_ingest_over_its_rate_gets_429_with_retry_after():
    client = create_app({"self_monitor": False, "ingest_rate": 3}).test_client()
    origin = {"Origin": "http://localhost:3000"}
    codes = [client.post(f"{API}/events", json=[ev()], headers=origin).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes[3:]
    limited = client.post(f"{API}/events", json=[ev()], headers=origin)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert (
        client.post(f"{API}/events", json=[ev()], headers={"Origin": "http://localhost:4000"}).status_code
        == 200
    )
    assert client.post(f"{API}/events", json=[ev()]).status_code == 200  # server-to-server: not a browser


def test_ingest_answers_503_when_requests_queue_up():
    app = create_app({"self_monitor": False, "threads": 2})
    app.config["BACKLOG"] = lambda: 9
    response = app.test_client().post(f"{API}/events", json=[ev()])
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    app.config["BACKLOG"] = lambda: 0
    assert app.test_client().post(f"{API}/events", json=[ev()]).status_code == 200


def test_a_draining_monitor_answers_503(app, client):
    app.extensions["live_monitor"].begin_drain()
    response = client.get(f"{API}/status")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


def test_security_cases_against_the_real_server(start_monitor):
    with start_monitor("--token", "t0k", "--ingest-key", "pub") as server:
        api = server.api
        assert requests.get(f"{api}/data").status_code == 401
        assert requests.get(f"{api}/data", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer t0k"}
        assert requests.get(f"{api}/data", headers=auth).status_code == 200
        assert requests.get(f"{api}/data", headers={**auth, "Host": "attacker.example"}).status_code == 403
        cross_site = requests.post(f"{api}/start", headers={**auth, "Origin": "https://evil.example"})
        assert cross_site.status_code == 403
        browser = {"Origin": "http://localhost:8080", "X-Ingest-Key": "pub"}
        assert requests.post(f"{api}/events", json=[ev()], headers=browser).status_code == 200
        assert (
            requests.post(
                f"{api}/events", json=[ev()], headers={**browser, "Origin": "https://evil.example"}
            ).status_code
            == 403
        )


def test_debug_mode_serves_with_flasks_debugger_on_loopback(start_monitor):
    with start_monitor("--debug", "--no-self-monitor") as server:
        assert requests.post(f"{server.api}/start").json()["monitoring"] is True
        assert "Debug mode: on" in "".join(server.output)


def test_rejection_reasons_hold_no_client_values_and_stay_few(client):
    batch = [ev(service=f"svc-{i}-" + "x" * 50) for i in range(150)]
    client.post(f"{API}/events", json=batch)
    reasons = client.get(f"{API}/status").json["rejected_by_reason"]
    assert reasons == {"service: invalid value …": 150}


def test_a_huge_batch_says_its_error_list_is_truncated(client):
    answer = client.post(f"{API}/events", json=[ev(duration_ms=-1)] * 30).json
    assert answer["rejected"] == 30 and len(answer["errors"]) == 20 and answer["errors_truncated"] is True


def test_head_requests_to_the_stream_do_not_use_up_its_slots():
    client = create_app({"self_monitor": False, "threads": 3}).test_client()
    for _ in range(5):
        client.head(f"{API}/stream").close()
    response = client.get(f"{API}/stream", buffered=False)
    assert response.status_code == 200
    response.close()


def test_system_figures_are_there_before_the_first_tick(client):
    system = client.get(f"{API}/data").json["system"]
    assert 0 <= system["cpu_percent"] <= 100 and system["net_recv_bytes_per_s"] == 0.0


def test_an_app_around_a_given_monitor_uses_its_token_everywhere():
    from live_monitor.core.monitor import LiveExecutionMonitor

    client = create_app(monitor=LiveExecutionMonitor({"token": "t0k", "self_monitor": False})).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get(f"{API}/status").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer t0k"}).status_code == 200


@pytest.mark.parametrize(
    ("flags", "phrase"),
    [
        (["--store", "mongodb://x"], "--store"),
        (["--thresholds", "/nonexistent.json"], "--thresholds"),
        (["--min-samples", "0"], "--min-samples"),
    ],
)
def test_unusable_startup_settings_are_an_error_not_a_traceback(capsys, flags, phrase):
    assert main(flags) == 2
    assert phrase in capsys.readouterr().err


def test_a_port_glob_in_cors_origins_grants_only_that_host():
    client = create_app({"self_monitor": False, "cors_origins": "http://localhost:*"}).test_client()
    preflight = {"Access-Control-Request-Method": "POST"}
    good = client.options(f"{API}/events", headers={"Origin": "http://localhost:3000", **preflight})
    assert good.headers.get("Access-Control-Allow-Origin") == "http://localhost:3000"
    bad = client.options(f"{API}/events", headers={"Origin": "http://localhost.evil.com", **preflight})
    assert "Access-Control-Allow-Origin" not in bad.headers


def test_a_port_in_use_is_a_clear_error_not_a_traceback(capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code = main(["--port", str(port), "--no-self-monitor"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in err
    assert "--port 0" in err


# --- startup settings out of range ---------------------------------------------------------


def _refuse_to_serve(settings, monitor=None, ready=None):
    raise AssertionError(f"served with settings that should have been refused: {dict(settings)}")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("flags", "phrase"),
    [
        (["--port", "99999"], "--port must be between 0 and 65535"),
        (["--port", "-1"], "--port must be between 0 and 65535"),
        (["--threads", "0"], "--threads must be between 1 and"),
        (["--max-events", "99999999999999999999"], "--max-events must be between 1 and 1000000"),
        (["--interval", "nan"], "--interval must be between 0.05 and 3600"),
        (["--interval", "inf"], "--interval must be between 0.05 and 3600"),
        (["--interval", "5e-324"], "--interval must be between 0.05 and 3600"),  # overflowed the sampler
        (["--max-body-bytes", "-1"], "--max-body-bytes must be between 1024 and"),
        (["--ingest-rate", "0"], "--ingest-rate must be between 1 and"),
        (["--ingest-rate", "-1"], "--ingest-rate must be between 1 and"),
        (["--max-batch-events", "0"], "--max-batch-events must be between 1 and"),
        (["--recent-limit", "-5"], "--recent-limit must be between 0 and"),
        (["--window", "-1"], "--window must be between 1 and"),
        (["--history", "0"], "--history must be between 1 and"),
        (["--workers", "0"], "--workers must be between 1 and"),
        (["--min-samples", "0"], "--min-samples must be at least 1"),
        (["--cors-origins", "["], "--cors-origins: '[' is not a valid regular expression"),
    ],
)
def test_out_of_range_flags_are_a_one_line_error_naming_the_flag_and_range(
    monkeypatch, capsys, flags, phrase
):
    monkeypatch.setattr(lem, "serve", _refuse_to_serve)
    assert main(flags) == 2
    assert phrase in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("variable", "value", "phrase"),
    [
        ("LIVE_MONITOR_PORT", "99999", "LIVE_MONITOR_PORT must be between 0 and 65535, not 99999"),
        ("LIVE_MONITOR_INTERVAL", "nan", "LIVE_MONITOR_INTERVAL must be between 0.05 and 3600"),
        ("LIVE_MONITOR_THREADS", "0", "LIVE_MONITOR_THREADS must be between 1 and"),
        ("LIVE_MONITOR_MAX_BODY_BYTES", "-1", "LIVE_MONITOR_MAX_BODY_BYTES must be between 1024 and"),
        ("LIVE_MONITOR_PORT", "many", "LIVE_MONITOR_PORT must be a whole number, not 'many'"),
        ("LIVE_MONITOR_CORS_ORIGINS", "[", "--cors-origins: '[' is not a valid regular expression"),
        ("LIVE_MONITOR_PERSIST", "/", "--persist /: is a folder"),
    ],
)
def test_out_of_range_environment_variables_are_refused_the_same_way(
    monkeypatch, capsys, variable, value, phrase
):
    monkeypatch.setattr(lem, "serve", _refuse_to_serve)
    monkeypatch.setenv(variable, value)
    assert main([]) == 2
    assert phrase in _one_line_error(capsys)


def test_values_at_the_edges_of_their_ranges_are_accepted(monkeypatch):
    served = {}
    monkeypatch.setattr(lem, "serve", lambda settings, ready=None: served.update(settings) or 0)
    monkeypatch.setenv("LIVE_MONITOR_THREADS", "4")
    assert main(["--threads", "1024", "--port", "65535", "--recent-limit", "0"]) == 0
    assert served["threads"] == 1024 and served["port"] == 65535 and served["recent_limit"] == 0


def test_persist_names_what_is_wrong_with_the_path(monkeypatch, capsys, tmp_path):
    import sqlite3

    monkeypatch.setattr(lem, "serve", _refuse_to_serve)
    notes = tmp_path / "events.jsonl"
    notes.write_text('{"service": "backend"}\n')
    other = tmp_path / "shop.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    cases = [
        (tmp_path, "is a folder"),
        (tmp_path / "nope" / "x.db", f"no such folder {tmp_path / 'nope'}"),
        (notes / "x.db", f"{notes} is not a folder"),
        (notes, "not an event journal (not an SQLite database)"),
        (other, "not an event journal (it holds the table users)"),
    ]
    for path, phrase in cases:
        assert main(["--persist", str(path)]) == 2
        err = _one_line_error(capsys)
        assert f"--persist {path}" in err and phrase in err
    assert notes.read_text() == '{"service": "backend"}\n'
    with sqlite3.connect(other) as db:
        assert [name for (name,) in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_persist_accepts_a_new_file_an_empty_file_and_its_own_journal(monkeypatch, tmp_path):
    from live_monitor.store.journal import EventJournal

    served = []
    monkeypatch.setattr(lem, "serve", lambda settings, ready=None: served.append(settings["persist"]) or 0)
    empty = tmp_path / "empty.db"
    empty.touch()
    journal = EventJournal(tmp_path / "kept.db")
    journal.close()
    for path in (tmp_path / "new.db", empty, tmp_path / "kept.db"):
        assert main(["--persist", str(path)]) == 0
    assert len(served) == 3


def test_a_journal_that_goes_bad_after_the_check_is_still_a_one_line_error(monkeypatch, capsys, tmp_path):
    from live_monitor.core import settings as monitor_settings
    from live_monitor.web import server as monitor_server

    # as if the folder appeared since the check
    monkeypatch.setattr(monitor_settings, "journal_problem", lambda path: None)

    def never_serve(*args, **kwargs):
        raise AssertionError("served although the journal could not be opened")

    monkeypatch.setattr(monitor_server, "WaitressServer", never_serve)  # a regression fails, not hangs
    assert main(["--persist", str(tmp_path), "--port", "0"]) == 2
    err = _one_line_error(capsys)
    assert f"--persist {tmp_path}: is a folder" in err
