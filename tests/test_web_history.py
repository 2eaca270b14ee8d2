"""The difference history at GET /api/live-execution/differences/history: when each difference
opened and resolved, kept across a restart with --persist and shared by the processes on Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from live_monitor.core.monitor import LiveExecutionMonitor
from tests.helpers import ENDPOINT, SERVICE, event, failing_payments, run_monitor, wait_for

HISTORY = "/api/live-execution/differences/history"


def test_the_history_lists_each_difference_as_it_opened_and_resolved(make_app, clock):
    monitor = LiveExecutionMonitor({"window": 60}, clock=clock)
    client = make_app(monitor=monitor).test_client()
    assert client.get(HISTORY).get_json() == {"episodes": [], "count": 0, "open": 0}
    monitor.record(*failing_payments(clock))
    monitor.alerts.check()
    answer = client.get(HISTORY).get_json()
    assert (answer["count"], answer["open"]) == (2, 2)
    by_id = {e["id"]: e for e in answer["episodes"]}
    assert set(by_id) == {SERVICE, ENDPOINT}
    endpoint = by_id[ENDPOINT]
    assert endpoint["opened_at"] == clock() and endpoint["resolved_at"] is None
    assert endpoint["severity"] == "high" and endpoint["difference"]["key"] == "GET /api/pay"
    assert endpoint["difference"]["message"].startswith("GET /api/pay: the backend fails more often")
    opened = clock()
    clock.advance(120)  # the events leave the window
    for _ in range(3):
        monitor.alerts.check()
        clock.advance(30)
    answer = client.get(HISTORY).get_json()
    assert (answer["count"], answer["open"]) == (2, 0)
    assert [(e["opened_at"], e["resolved_at"]) for e in answer["episodes"]] == [(opened, opened + 120)] * 2
    monitor.record(*failing_payments(clock))  # it comes back: a new episode, listed first
    monitor.alerts.check()
    newest = client.get(HISTORY, query_string={"limit": "2"}).get_json()["episodes"]
    assert [(e["opened_at"], e["resolved_at"]) for e in newest] == [(clock(), None)] * 2


def test_a_limit_that_is_not_a_whole_number_in_range_is_a_400(client):
    for bad in ("0", "1001", "-1", "ten", "1e3"):
        answer = client.get(HISTORY, query_string={"limit": bad})
        assert answer.status_code == 400
        assert answer.get_json() == {"error": "limit must be a whole number between 1 and 1000"}


def history(server) -> dict:
    return requests.get(f"{server.url}{HISTORY}", timeout=10).json()


def checks(server) -> int:
    return requests.get(f"{server.api}/status", timeout=10).json()["alerts"]["checks"]


def anomaly() -> list[dict]:
    batch = []
    for i in range(40):
        batch.append(event("backend", "http", "GET /api/pay", 20.0, "error" if i % 2 else "success"))
        batch.append(event("frontend", "api", "GET /api/pay", 25.0))
    return batch


def test_a_restarted_monitor_with_persist_lists_the_history_and_does_not_announce_again(
    tmp_path: Path, receiver
):
    flags = [
        "--no-self-monitor",
        "--autostart",
        "--interval",
        "0.05",
        "--persist",
        str(tmp_path / "events.db"),
    ]
    flags += ["--alert-webhook", receiver.url]
    with run_monitor(*flags) as server:
        server.post_events(anomaly())
        assert wait_for(lambda: history(server)["open"] == 2, timeout=10)
        before = history(server)["episodes"]
        assert wait_for(lambda: len(receiver.posts) == 2)
    with run_monitor(*flags) as server:
        assert history(server)["episodes"] == before  # still open: the journaled events bring them back
        first = checks(server)
        assert wait_for(lambda: checks(server) >= first + 3)  # checked, and found them already open
        assert history(server)["episodes"] == before
    assert sorted(post["id"] for post in receiver.posts) == [ENDPOINT, SERVICE]  # announced once


def test_every_process_on_redis_lists_one_history(redis_server, make_app, clock):
    shared = {"store": redis_server.url, "window": 60}
    checking = LiveExecutionMonitor(shared, clock=clock)
    other = make_app(monitor=LiveExecutionMonitor(shared, clock=clock)).test_client()
    make_app(monitor=checking)
    checking.record(*failing_payments(clock))
    checking.alerts.check()
    answer = other.get(HISTORY).get_json()
    assert sorted(e["id"] for e in answer["episodes"]) == [ENDPOINT, SERVICE] and answer["open"] == 2


def test_the_dashboard_draws_the_history_as_a_timeline(tab):
    with run_monitor("--no-self-monitor", "--autostart", "--interval", "0.05") as server:
        page = tab.page
        page.goto(f"{server.url}/?refresh=0.5")
        expect(page.locator("#history-list")).to_contain_text("No difference has opened yet")
        server.post_events(anomaly())
        row = page.locator(f'#history-list li[data-id="{ENDPOINT}"]')
        expect(row).to_have_attribute("data-state", "open", timeout=15_000)  # read every 5 s
        expect(row.locator(".badge")).to_have_text("HIGH")
        expect(row.locator("code.scope")).to_have_text("GET /api/pay")
        expect(row).to_contain_text("Error rate difference")
        expect(row).to_contain_text("open since")
        expect(page.locator(f'#history-list li[data-id="{SERVICE}"]')).to_contain_text("whole service")
        expect(page.locator("#history-note")).to_have_text("2 open · 2 in all")
        bar = row.locator(".history-bar").bounding_box()
        track = row.locator(".history-track").bounding_box()
        assert bar is not None and track is not None
        assert bar["x"] + bar["width"] == pytest.approx(track["x"] + track["width"], abs=2)  # open: up to now
        tab.assert_clean()
