"""Prometheus exposition of the monitor: ``GET /metrics`` in the text (or OpenMetrics) format.

A custom collector reads the monitor when Prometheus scrapes, so nothing is counted twice
and the figures are the ones the dashboard shows. Each app gets its own registry, so two
monitors in one process (tests, embedding) never share series. Labels stay bounded: the
service, the endpoint key (already normalised and capped per side by model/stats.py) and
fixed enums; never a raw URL.
"""

from __future__ import annotations

import gzip
import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.stats import LatencySketch, SideStats
from live_monitor.vocabulary import DIFFERENCE_TYPES, METRICS_PATH, SERVICES, SEVERITIES
from live_monitor.web.access import Access

__all__ = ["DURATION_BOUNDS_MS", "MonitorCollector", "cumulative_buckets", "bp"]

DURATION_BOUNDS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
PREFIX = "live_monitor"
# (key in sampler.latest(), metric name, help)
SYSTEM_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("cpu_percent", "system_cpu_percent", "Machine CPU use in percent, latest sample."),
    ("memory_percent", "system_memory_percent", "Machine memory use in percent, latest sample."),
    (
        "disk_read_bytes_per_s",
        "system_disk_read_bytes_per_second",
        "Disk bytes read per second between the last two samples.",
    ),
    (
        "disk_write_bytes_per_s",
        "system_disk_write_bytes_per_second",
        "Disk bytes written per second between the last two samples.",
    ),
    (
        "net_sent_bytes_per_s",
        "system_network_sent_bytes_per_second",
        "Network bytes sent per second between the last two samples.",
    ),
    (
        "net_recv_bytes_per_s",
        "system_network_received_bytes_per_second",
        "Network bytes received per second between the last two samples.",
    ),
    ("process_cpu_percent", "process_cpu_percent", "The monitor process's CPU use in percent."),
    (
        "process_rss_bytes",
        "process_resident_memory_bytes",
        "The monitor process's resident memory in bytes, latest sample.",
    ),
    ("timestamp", "system_sample_timestamp_seconds", "Unix time of the latest system sample."),
)


class SpanCounts(Protocol):
    """What the collector reads from the OTLP receiver, when one is registered."""

    def counts(self, signal: str = "traces") -> Mapping[str, int]: ...

    def refused(self) -> Mapping[tuple[str, str], int]: ...


def cumulative_buckets(
    sketch: LatencySketch, bounds_ms: Sequence[float] = DURATION_BOUNDS_MS
) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets (bounds in seconds, ``+Inf`` last) from a latency sketch.

    A value counts under a bound when its sketch bucket is not above the bound's bucket, so
    a duration equal to a bound is inside it (``le`` is inclusive) and the only error is
    the sketch's own: a value at most ~2% above a bound may be counted under it.
    """
    gamma_log: float = sketch._gamma_log  # noqa: SLF001 - the sketch's bucket width
    limits = [math.ceil(math.log(b) / gamma_log) for b in bounds_ms]
    added = [0] * (len(bounds_ms) + 1)
    for index, n in sketch.buckets.items():
        added[bisect_left(limits, index)] += n
    out: list[tuple[str, float]] = []
    running = sketch.zeros
    for bound, n in zip(bounds_ms, added, strict=False):
        running += n
        out.append((floatToGoString(bound / 1000), float(running)))
    out.append(("+Inf", float(running + added[-1])))
    return out


class MonitorCollector(Collector):
    """Reads a ``LiveExecutionMonitor`` at scrape time and yields its metric families.

    Counters are exact totals since the monitor started; duration histograms and error
    figures cover the monitor's sliding window, so they are gauges (a gauge histogram in
    OpenMetrics terms): use ``histogram_quantile(0.95, ..._bucket)`` without ``rate()``.
    """

    def __init__(
        self,
        monitor: LiveExecutionMonitor,
        spans: Callable[[], SpanCounts | None] | None = None,
        bounds_ms: Sequence[float] = DURATION_BOUNDS_MS,
    ) -> None:
        self._monitor = monitor
        self._spans = spans or (lambda: None)
        self._bounds = tuple(bounds_ms)

    def collect(self) -> Iterator[Metric]:
        """Every family, read from the monitor now."""
        yield from self._state()
        yield from self._ingest()
        yield from self._window()
        yield from self._system()
        yield from self._differences()
        yield from self._otlp()

    def _state(self) -> Iterator[Metric]:
        monitor = self._monitor
        monitoring, uptime = monitor.monitoring_clock()
        yield _gauge(
            "monitoring",
            "1 while the monitor is monitoring (between start and stop), else 0.",
            [],
            1.0 if monitoring else 0.0,
        )
        yield _gauge(
            "uptime_seconds",
            "Seconds spent monitoring, across start/stop cycles.",
            [],
            uptime,
        )
        yield _gauge(
            "window_seconds",
            "Length of the sliding window the window_* figures cover.",
            [],
            monitor.store.window_s,
        )
        sampler_errors = CounterMetricFamily(
            f"{PREFIX}_sampler_errors", "System readings that failed.", value=monitor.sampler.errors
        )
        yield sampler_errors

    def _ingest(self) -> Iterator[Metric]:
        counts = self._monitor.store.counts()
        events = CounterMetricFamily(
            f"{PREFIX}_events",
            "Events stored since the monitor started, per service.",
            labels=["service"],
        )
        evicted = CounterMetricFamily(
            f"{PREFIX}_ingest_evicted",
            "Stored events pushed out by newer ones (max-events per side), per service.",
            labels=["service"],
        )
        stored = GaugeMetricFamily(
            f"{PREFIX}_stored_events", "Events held in memory now, per service.", labels=["service"]
        )
        for service in SERVICES:
            events.add_metric([service], counts["totals"][service])
            evicted.add_metric([service], counts["evicted_by_service"][service])
            stored.add_metric([service], counts["stored"][service])
        yield events
        for name, what in (
            ("received", "Events received: accepted plus rejected (a malformed batch counts one)."),
            ("accepted", "Events accepted into the store."),
            ("rejected", "Events refused as invalid."),
        ):
            yield CounterMetricFamily(f"{PREFIX}_ingest_{name}", what, value=counts[name])
        yield evicted
        yield stored

    def _window(self) -> Iterator[Metric]:
        stats = self._monitor.store.window_stats()
        window = "over the monitor's sliding window"
        events = _gauge("window_events", f"Events {window}, per service.", ["service"])
        errors = _gauge("window_errors", f"Events with status error {window}, per service.", ["service"])
        durations = GaugeHistogramMetricFamily(
            f"{PREFIX}_window_duration_seconds",
            f"Durations of timed events {window}, per service.",
            labels=["service"],
        )
        ep_events = _gauge("window_endpoint_events", f"Endpoint events {window}.", ["service", "endpoint"])
        ep_errors = _gauge(
            "window_endpoint_errors",
            f"Endpoint events with status error {window}.",
            ["service", "endpoint"],
        )
        ep_durations = GaugeHistogramMetricFamily(
            f"{PREFIX}_window_endpoint_duration_seconds",
            f"Durations per endpoint key (backend http, frontend api) {window}.",
            labels=["service", "endpoint"],
        )
        for service in SERVICES:
            side: SideStats = stats.side(service)
            events.add_metric([service], side.total.count)
            errors.add_metric([service], side.total.errors)
            self._histogram(durations, [service], side.total.timed)
            for key in sorted(side.endpoints):
                agg = side.endpoints[key]
                ep_events.add_metric([service, key], agg.count)
                ep_errors.add_metric([service, key], agg.errors)
                if agg.timed.count:
                    self._histogram(ep_durations, [service, key], agg.timed)
        gaps = GaugeHistogramMetricFamily(
            f"{PREFIX}_window_trace_gap_seconds",
            "Browser time minus server time of requests both sides saw (same trace id), "
            f"per endpoint, {window}.",
            labels=["endpoint"],
        )
        for key in sorted(stats.trace_gaps):
            self._histogram(gaps, [key], stats.trace_gaps[key])
        yield from (events, errors, durations, ep_events, ep_errors, ep_durations, gaps)

    def _histogram(
        self, family: GaugeHistogramMetricFamily, labels: list[str], sketch: LatencySketch
    ) -> None:
        buckets = cumulative_buckets(sketch, self._bounds)
        family.add_metric(labels, buckets, max(sketch.sum, 0.0) / 1000)

    def _system(self) -> Iterator[Metric]:
        latest = self._monitor.sampler.latest()
        if latest is None:
            return
        for key, name, what in SYSTEM_GAUGES:
            if isinstance(latest.get(key), int | float):
                yield _gauge(name, what, [], float(latest[key]))

    def _differences(self) -> Iterator[Metric]:
        found = self._monitor.differences()
        family = _gauge(
            "differences",
            "Backend/frontend differences detected now, by type and severity.",
            ["type", "severity"],
        )
        for kind in DIFFERENCE_TYPES:
            for severity in SEVERITIES:
                n = sum(1 for d in found if d.type == kind and d.severity == severity)
                family.add_metric([kind, severity], n)
        yield family

    def _otlp(self) -> Iterator[Metric]:
        receiver = self._spans()
        if receiver is None:
            return
        family = CounterMetricFamily(
            f"{PREFIX}_otlp_spans",
            "OpenTelemetry spans received on /v1/traces, by outcome: accepted (stored as events), "
            "skipped (not an HTTP server or client span), rejected (invalid).",
            labels=["outcome"],
        )
        for outcome, n in sorted(receiver.counts().items()):
            family.add_metric([outcome], n)
        yield family
        records = CounterMetricFamily(
            f"{PREFIX}_otlp_log_records",
            "OpenTelemetry log records received on /v1/logs, by outcome: accepted (stored as events), "
            "skipped (no component/action, and not an error in a trace), rejected (invalid).",
            labels=["outcome"],
        )
        for outcome, n in sorted(receiver.counts("logs").items()):
            records.add_metric([outcome], n)
        yield records
        refused = CounterMetricFamily(
            f"{PREFIX}_otlp_exports_refused",
            "Whole OTLP exports refused, by signal (traces, logs) and reason (malformed, unauthorized, "
            "forbidden, too_large, unsupported_media_type, too_many_requests, unavailable, other).",
            labels=["signal", "reason"],
        )
        for (signal, reason), n in sorted(receiver.refused().items()):
            refused.add_metric([signal, reason], n)
        yield refused


def _gauge(name: str, documentation: str, labels: list[str], value: float | None = None) -> GaugeMetricFamily:
    """A gauge family named ``live_monitor_<name>``; with labels, values are added later."""
    if labels:
        return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


bp = Blueprint("metrics", __name__)


@bp.record_once
def _registry(state: BlueprintSetupState) -> None:
    """Each app gets its own registry: its monitor's figures, OTLP counters and the process's."""
    app = state.app
    registry = CollectorRegistry(auto_describe=False)
    spans = lambda: app.extensions.get("live_monitor.otlp")  # noqa: E731
    registry.register(MonitorCollector(app.extensions["live_monitor"], spans=spans))
    ProcessCollector(registry=registry)
    app.extensions["live_monitor.metrics"] = registry


@bp.get(METRICS_PATH)
def metrics() -> Response:
    """The Prometheus exposition. With a token set (``--token``), a scrape needs
    ``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: ...}``)."""
    access: Access = current_app.extensions["live_monitor.access"]
    access.check_caller(request.headers.get, method="GET")
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(current_app.extensions["live_monitor.metrics"])
    headers = {"Cache-Control": "no-store", "Vary": "Accept, Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(body, status=200, content_type=content_type, headers=headers)
