"""A Redis outage under the defaults (self-monitoring on) with ``--workers 2``, against a real
redis-server: every route answers 503 with Retry-After or its normal answer, never a 500;
/health stays 200 (liveness) while /ready says 503 (readiness); the live stream ends cleanly
with a retry hint; refusals made during the outage are counted once Redis is back; and the
monitor recovers by itself."""

from __future__ import annotations

from typing import Any

import requests

from live_monitor.vocabulary import EVENTS_PATH, HEALTH_PATH, OTLP_LOGS_PATH, OTLP_TRACES_PATH, READY_PATH
from tests.helpers import (
    SERVER,
    MonitorProcess,
    RedisServer,
    event,
    export,
    log_export,
    log_record,
    run_monitor,
    span,
    wait_for,
    wait_for_workers,
)

# A valid body for every POST route, so that only the store can make it fail.
BODIES: dict[str, Any] = {
    EVENTS_PATH: [event("backend", "http", "GET /orders", 12.0)],
    OTLP_TRACES_PATH: export(span(SERVER, {"http.request.method": "GET", "http.route": "/orders"})),
    OTLP_LOGS_PATH: log_export(log_record({"code.function": "checkout"})),
}
INVALID = [{"service": "nobody", "component": "x", "action": "y"}]  # refused: an unknown side
ROUNDS = 3  # each route is called this often, so both workers answer it


def _routes(server: MonitorProcess) -> list[tuple[str, str]]:
    """(method, path) of every operation in the monitor's own OpenAPI document; an endpoint's
    key is the one the bodies below send."""
    document = requests.get(f"{server.url}/api/openapi.json", timeout=10).json()
    paths = {path: path.replace("{key}", "GET%20%2Forders") for path in document["paths"]}
    return [(method.upper(), paths[path]) for path, ops in document["paths"].items() for method in ops]


def _call(server: MonitorProcess, method: str, path: str) -> requests.Response:
    """One request with a fresh connection (the kernel spreads those over the workers)."""
    with requests.Session() as session:
        return session.request(method, f"{server.url}{path}", json=BODIES.get(path), timeout=10, stream=True)


def _answers(server: MonitorProcess, routes: list[tuple[str, str]]) -> dict[str, set[int]]:
    """Every route called ROUNDS times: the statuses each answered, each 503 with Retry-After."""
    seen: dict[str, set[int]] = {}
    for _ in range(ROUNDS):
        for method, path in routes:
            response = _call(server, method, path)
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) >= 1, (method, path)
                assert "error" in response.json(), (method, path)
            response.close()
            seen.setdefault(f"{method} {path}", set()).add(response.status_code)
    return seen


def _status(server: MonitorProcess) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{server.api}/status", timeout=10).json()
    return answer


def test_a_redis_outage_answers_503_never_500_and_recovers(redis_server: RedisServer) -> None:
    with run_monitor("--store", redis_server.url, "--workers", "2", "--interval", "0.2") as server:
        wait_for_workers(server, 2)
        routes = _routes(server)
        assert ("GET", READY_PATH) in routes
        stream = requests.get(f"{server.api}/stream", stream=True, timeout=10)
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines) == "retry: 2000"

        redis_server.stop()
        during = _answers(server, routes)
        for route, statuses in during.items():
            expected = {200} if route == f"GET {HEALTH_PATH}" else {200, 503}
            assert statuses <= expected, (route, statuses)
        assert during[f"GET {READY_PATH}"] == {503}
        for route in (
            "POST /api/live-execution/start",
            "GET /api/live-execution/status",
            f"POST {EVENTS_PATH}",
        ):
            assert during[route] == {503}, route
        rest = list(lines)  # ends, without a broken chunked answer
        assert "retry: 2000" in rest, rest
        for _ in range(4):  # a refused batch is a 400 during the outage too, counted later
            assert requests.post(f"{server.api}/events", json=INVALID, timeout=10).status_code == 400

        redis_server.start()
        assert wait_for(lambda: _call(server, "GET", READY_PATH).status_code == 200, timeout=10)
        assert wait_for(lambda: all(s == {200} for s in _answers(server, routes).values()), timeout=10), (
            _answers(server, routes)
        )

        def balanced() -> bool:  # each worker writes the refusals it kept once it reaches Redis
            status = _status(server)
            return status["rejected"] == 4 and status["received"] == status["accepted"] + 4

        assert wait_for(balanced, timeout=10), _status(server)
        # the own API calls the outage kept from being recorded are counted, in either worker
        assert wait_for(lambda: _status(server)["self_events_dropped"] > 0, timeout=5)
        assert "Traceback" not in "".join(server.output)
