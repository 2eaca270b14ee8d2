"""The real server under load and at shutdown: every event accounted for, no request reset."""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import threading
import time

BATCH = json.dumps(
    [{"service": "frontend", "component": "api", "action": "GET /api/items/:id", "duration_ms": 20.0}] * 50
).encode()


def post(port: int) -> int:
    """One POST on a fresh connection; returns the status (raises on a reset or a dropped response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/live-execution/events", BATCH, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_bounded_load_leaves_no_event_unaccounted(start_monitor):
    with start_monitor("--no-self-monitor", "--max-events", "1000") as server:
        sent = [0] * 8
        latencies: list[list[float]] = [[] for _ in range(8)]
        statuses: list[int] = []
        deadline = time.monotonic() + 3.0

        def client(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            for _ in range(400):
                if time.monotonic() > deadline:
                    break
                began = time.perf_counter()
                conn.request(
                    "POST", "/api/live-execution/events", BATCH, {"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                body = json.loads(response.read())
                latencies[i].append(time.perf_counter() - began)
                statuses.append(response.status)
                if response.status == 200:
                    sent[i] += body["accepted"]
            conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        conn.request("GET", "/api/live-execution/status")
        status = json.loads(conn.getresponse().read())
        all_latencies = sorted(x for per in latencies for x in per)
        p99 = all_latencies[int(0.99 * (len(all_latencies) - 1))] * 1000
        print(
            f"\nload: {sum(sent) / elapsed:,.0f} events/s, p99 {p99:.1f} ms, "
            f"median {statistics.median(all_latencies) * 1000:.1f} ms over {len(all_latencies)} requests"
        )
        assert set(statuses) <= {200, 503}
        assert status["accepted"] == sum(sent) > 0
        assert status["accepted"] == status["evicted"] + sum(status["stored"].values())
        assert status["received"] == status["accepted"] + status["rejected"]


def test_sigterm_mid_traffic_gives_responses_or_503_never_a_reset(start_monitor):
    with start_monitor("--no-self-monitor") as server:
        outcomes: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    code = post(server.port)
                except ConnectionRefusedError:
                    outcome = "refused"  # after the listener closed: no request was taken
                except OSError as exc:
                    outcome = f"reset: {exc!r}"
                except http.client.HTTPException as exc:
                    outcome = f"dropped: {exc!r}"
                else:
                    outcome = str(code)
                with lock:
                    outcomes.append(outcome)
                if outcome != "200":
                    return

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        while len(outcomes) < 60:
            time.sleep(0.005)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        stop.set()
        for t in threads:
            t.join()
        bad = [o for o in outcomes if o not in {"200", "503", "refused"}]
        assert bad == [], bad
        assert "503" in outcomes or "refused" in outcomes
