"""The monitor's routes: the dashboard, health, the OpenAPI document and the REST API.

A Blueprint that ``create_app`` registers. The routes reach the app's monitor, access policy
and settings through ``current_app`` (``extensions["live_monitor"]``,
``extensions["live_monitor.access"]``, ``config["LIVE_MONITOR_SETTINGS"]``), so one process
may hold several independent apps. ``POST /events`` is answered below Flask (web.ingest).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from flask.blueprints import BlueprintSetupState

from live_monitor.core.labels import seen_labels
from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.core.settings import public_view
from live_monitor.install import DASHBOARD, ROOT
from live_monitor.store import StoreUnavailable
from live_monitor.vocabulary import (
    API,
    BASELINE_PATH,
    HEALTH_PATH,
    OPENAPI_PATH,
    READY_PATH,
    SEVERITIES,
    STATUS_PATH,
    STREAM_PATH,
    severity_rank,
)
from live_monitor.web.encoding import dumps
from live_monitor.web.errors import ApiError
from live_monitor.web.filters import event_filter
from live_monitor.web.openapi import FALSE_WORDS, HISTORY_LIMIT, TRUE_WORDS, openapi, query_bounds

bp = Blueprint("monitor", __name__)
STREAM_RETRY_MS = 2000  # how long a browser waits before it reconnects a stream that ended


def _monitor() -> LiveExecutionMonitor:
    monitor: LiveExecutionMonitor = current_app.extensions["live_monitor"]
    return monitor


def _settings() -> Mapping[str, Any]:
    settings: Mapping[str, Any] = current_app.config["LIVE_MONITOR_SETTINGS"]
    return settings


class StreamSlots:
    """The live streams one process holds open (each holds one of the server's threads), up to
    ``limit``; ``open`` is in /status, so an operator sees them come and go."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One more stream; False when ``limit`` are open."""
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        """A stream ended (or never started)."""
        with self._lock:
            self.open -= 1


@bp.record_once
def _open_streams(state: BlueprintSetupState) -> None:
    """Each open stream holds one of the server's threads: leave two for everything else."""
    threads = state.app.config["LIVE_MONITOR_SETTINGS"]["threads"]
    state.app.extensions["live_monitor.streams"] = StreamSlots(max(1, threads - 2))


@bp.get("/")
def dashboard() -> Response:
    return send_from_directory(ROOT, DASHBOARD, mimetype="text/html", max_age=0)


@bp.get(OPENAPI_PATH)
def openapi_json() -> Response:
    return jsonify(openapi(_settings()))


@bp.get(HEALTH_PATH)
def health() -> Response:
    """Liveness: 200 while the process serves, even while the store is down (then
    ``monitoring`` is null: the shared state cannot be read), so nothing restarts a monitor
    that recovers by itself."""
    try:
        monitoring: bool | None = _monitor().monitoring
    except StoreUnavailable:
        monitoring = None
    return jsonify(status="ok", monitoring=monitoring)


@bp.get(READY_PATH)
def ready() -> Response:
    """Readiness: 200 when the store answers and the --persist journal is read back; 503 with
    Retry-After and the reason while the store is unreachable or the journal is read back."""
    monitor = _monitor()
    monitor.ready()
    reason = monitor.not_ready()
    if reason is not None:
        raise ApiError(503, reason, {"Retry-After": "1"})
    return jsonify(status="ready")


@bp.post(f"{API}/start")
def start() -> Response:
    started = _monitor().start()
    return jsonify(status="started" if started else "already running", monitoring=True)


@bp.post(f"{API}/stop")
def stop() -> Response:
    stopped = _monitor().stop()
    return jsonify(status="stopped" if stopped else "not running", monitoring=False)


@bp.get(STATUS_PATH)
def status() -> Response:
    answer = _monitor().status()
    otlp = current_app.extensions.get("live_monitor.otlp")
    if otlp is not None:  # OTLP items by signal and outcome, refused exports by reason
        answer["otlp"] = otlp.status()
    answer["otlp_grpc"] = _otlp_grpc()
    answer["live_streams"] = current_app.extensions["live_monitor.streams"].open
    return jsonify(answer)


def _otlp_grpc() -> dict[str, Any]:
    """The OTLP/gRPC port and whether this process listens on it (serve() starts the server;
    an app built alone has none)."""
    server = current_app.extensions.get("live_monitor.otlp_grpc")
    if server is None:
        return {"port": _settings()["otlp_grpc_port"], "listening": False}
    answer: dict[str, Any] = server.status()
    return answer


@bp.get(f"{API}/data")
def data() -> Response:
    bounds = query_bounds(_settings())
    limit = _int_arg("limit", *bounds["limit"])
    history = _int_arg("history", *bounds["history"])
    include_self = _bool_arg("include_self", True)
    where = event_filter()
    return jsonify(_monitor().data(limit=limit, include_self=include_self, history=history, where=where))


@bp.get(f"{API}/differences")
def differences() -> Response:
    monitor = _monitor()
    floor = request.args.get("min_severity")
    if floor is not None and floor not in SEVERITIES:
        raise ApiError(400, f"min_severity must be {', '.join(SEVERITIES[:-1])} or {SEVERITIES[-1]}")
    where = event_filter()
    view = monitor.view(where) if where else None  # after the checks: a bad query costs no view
    found = monitor.filtered_differences(view) if view else monitor.differences()
    if floor is not None:
        found = [d for d in found if severity_rank(d.severity) >= severity_rank(floor)]
    answer = {"differences": found, "count": len(found), "thresholds": monitor.thresholds.as_dict()}
    if view:
        answer["filter"] = view.note()
    return jsonify(answer)


@bp.get(f"{API}/differences/history")
def differences_history() -> Response:
    """When each difference opened and resolved (the highest severity it reached), newest first."""
    limit = _int_arg("limit", *HISTORY_LIMIT)
    episodes = _monitor().history.recent(limit)
    still_open = sum(1 for e in episodes if e.resolved_at is None)
    return jsonify(episodes=episodes, count=len(episodes), open=still_open)


@bp.get(f"{API}/labels")
def labels() -> Response:
    """The releases and environments the stored events carry: what the views can be filtered by."""
    return jsonify(seen_labels(_monitor().store))


@bp.post(BASELINE_PATH)
def pin_baseline() -> Response:
    """Pin the window as it is now as the baseline the endpoint figures are compared with."""
    return jsonify(_monitor().pin_baseline())


@bp.get(BASELINE_PATH)
def baseline() -> Response:
    """The pinned baseline and what changed since, per endpoint key and side."""
    return jsonify(_monitor().baseline())


@bp.delete(BASELINE_PATH)
def unpin_baseline() -> Response:
    """Unpin the baseline (a 200 also when none was pinned: the outcome is the same)."""
    _monitor().unpin_baseline()
    return jsonify(_monitor().baseline())


@bp.get(f"{API}/config")
def config() -> Response:
    return jsonify(settings=public_view(_settings()), thresholds=_monitor().thresholds.as_dict())


@bp.get(STREAM_PATH)
def stream() -> Response:
    streams: StreamSlots = current_app.extensions["live_monitor.streams"]
    _monitor().ready()  # a store that is down: 503 with Retry-After before the stream opens
    if not streams.take():
        raise ApiError(503, "too many live streams open; poll /data instead", {"Retry-After": "5"})
    response = Response(
        _sse(_monitor()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(streams.give_back)  # also when the stream never starts (HEAD)
    return response


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # Plain ASCII digits, as the OpenAPI document says: int() would take " 5", "+5", "5_0", "٥"
    # (and refuse 4,301 digits with a ValueError).
    digits = raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) <= 18
    if not digits or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be a whole number between {low} and {high}")
    return int(raw)


def _bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ApiError(400, f"{name} must be true or false")


def _sse(monitor: LiveExecutionMonitor) -> Iterator[str]:
    """Server-Sent Events: new events and the current differences after every tick.

    When the store becomes unreachable the stream ends cleanly with a retry hint: the browser's
    EventSource reconnects after it and gets a 503 until the store is back.
    """
    try:
        yield from _sse_events(monitor)
    except StoreUnavailable:
        yield f"retry: {STREAM_RETRY_MS}\n: the store is unreachable; reconnect later\n\n"


def _sse_events(monitor: LiveExecutionMonitor) -> Iterator[str]:
    """The stream's events until the server drains; raises StoreUnavailable."""
    seq, tick = monitor.store.seq, -1
    yield f"retry: {STREAM_RETRY_MS}\n\n"
    while not monitor.draining:
        wait = 15.0 if monitor.monitoring else monitor.settings["interval"]
        new_tick = monitor.wait_for_tick(tick, wait)
        seq = max(seq, monitor.first_live_seq())  # the journal's events read back are not new
        seq, fresh = monitor.store.since(seq, 200)
        if fresh:
            yield f"event: events\ndata: {dumps([e.to_dict() for e in fresh])}\n\n"
        ticked, tick = new_tick != tick, new_tick
        if ticked:
            yield f"event: differences\ndata: {dumps(monitor.differences())}\n\n"
        if not fresh and not ticked:
            yield ": keep-alive\n\n"
