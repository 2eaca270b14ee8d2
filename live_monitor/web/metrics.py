"""Prometheus exposition of the monitor: ``GET /metrics`` in the text (or OpenMetrics) format.

A custom collector reads the monitor when Prometheus scrapes, so nothing is counted twice
and the figures are the ones the dashboard shows. Counters and histograms (``_total``,
``_bucket``/``_count``/``_sum``) are the store's tallies, counted since it began and shared by
every process on Redis, for ``rate()`` and ``histogram_quantile()``; the ``window_*`` gauges
cover the sliding window and go down as it slides. Each app gets its own registry, so two
monitors in one process (tests, embedding) never share series. Labels stay bounded: the
service, the endpoint key (normalised, the first ``MAX_SERIES_KEYS`` per side, the rest as
``OTHER``) and fixed enums; never a raw URL.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, TypeVar

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.model.stats import DURATION_BOUNDS_MS, OTHER, Aggregate, Histogram, LatencySketch, Tallies
from live_monitor.vocabulary import DIFFERENCE_TYPES, METRICS_PATH, SERVICES, SEVERITIES, STATUSES
from live_monitor.web.access import Access

__all__ = ["DURATION_BOUNDS_MS", "PERCENTILES", "MonitorCollector", "bp"]

PERCENTILES = (50, 95, 99)  # of the window's gauges, as the dashboard shows them

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


class MonitorCollector(Collector):
    """Reads a ``LiveExecutionMonitor`` at scrape time and yields its metric families.

    Counters and histograms are the store's tallies, which only grow (``rate()``,
    ``histogram_quantile(0.95, rate(..._bucket[5m]))``); the ``window_*`` families are gauges
    over the monitor's sliding window: counts, and the percentiles the dashboard shows (within
    the sketch's 1%), which go down as old events leave the window.
    """

    def __init__(
        self,
        monitor: LiveExecutionMonitor,
        spans: Callable[[], SpanCounts | None] | None = None,
    ) -> None:
        self._monitor = monitor
        self._spans = spans or (lambda: None)

    def collect(self) -> Iterator[Metric]:
        """Every family, read from the monitor now."""
        tallies = self._monitor.store.tallies()
        yield from self._state()
        yield from self._ingest()
        yield from self._tallies(tallies)
        yield from self._window(tallies)
        yield from self._system()
        yield from self._differences()
        yield from self._alerts()
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
        evicted = CounterMetricFamily(
            f"{PREFIX}_ingest_evicted",
            "Stored events pushed out by newer ones (max-events per side), per service.",
            labels=["service"],
        )
        stored = GaugeMetricFamily(
            f"{PREFIX}_stored_events", "Events held in memory now, per service.", labels=["service"]
        )
        for service in SERVICES:
            evicted.add_metric([service], counts["evicted_by_service"][service])
            stored.add_metric([service], counts["stored"][service])
        for name, what in (
            ("received", "Events received: accepted plus rejected (a malformed batch counts one)."),
            ("accepted", "Events accepted into the store."),
            ("rejected", "Events refused as invalid."),
        ):
            yield CounterMetricFamily(f"{PREFIX}_ingest_{name}", what, value=counts[name])
        yield evicted
        yield stored

    def _tallies(self, tallies: Tallies) -> Iterator[Metric]:
        """The counters and histograms counted since the store began (the monitor's own
        traffic left out, as in every figure)."""
        events = CounterMetricFamily(
            f"{PREFIX}_events",
            "Events counted since the store began, per service and status (success or error).",
            labels=["service", "status"],
        )
        durations = HistogramMetricFamily(
            f"{PREFIX}_duration_seconds",
            "Durations of timed events since the store began, per service.",
            labels=["service"],
        )
        endpoints = HistogramMetricFamily(
            f"{PREFIX}_endpoint_duration_seconds",
            "Durations of endpoint calls (backend http, frontend api) since the store began, "
            f"per service and endpoint key ({OTHER} past the first keys).",
            labels=["service", "endpoint"],
        )
        for service in SERVICES:
            for status in STATUSES:
                events.add_metric([service, status], tallies.events[(service, status)])
            self._cumulative(durations, [service], tallies.durations[service])
            for key, histogram in sorted(tallies.endpoints[service].items()):
                self._cumulative(endpoints, [service, key], histogram)
        gaps = HistogramMetricFamily(
            f"{PREFIX}_trace_gap_seconds",
            "Browser time minus server time of requests both sides saw (same trace id) since "
            "the store began, per endpoint (0 when the browser's is shorter).",
            labels=["endpoint"],
        )
        for key, histogram in sorted(tallies.gaps.items()):
            self._cumulative(gaps, [key], histogram)
        yield from (events, durations, endpoints, gaps)

    def _cumulative(self, family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
        running, buckets = 0, []
        for bound, n in zip((*DURATION_BOUNDS_MS, math.inf), histogram.buckets, strict=True):
            running += n
            buckets.append((floatToGoString(bound / 1000), float(running)))
        family.add_metric(labels, buckets, histogram.sum / 1000)

    def _window(self, tallies: Tallies) -> Iterator[Metric]:
        stats = self._monitor.window_stats()
        window = "over the monitor's sliding window"
        events = _gauge("window_events", f"Events {window}, per service.", ["service"])
        errors = _gauge("window_errors", f"Events with status error {window}, per service.", ["service"])
        timed = _gauge("window_timed_events", f"Timed events {window}, per service.", ["service"])
        durations = _gauge(
            "window_duration_percentile_seconds",
            f"Percentiles of the durations of timed events {window}, per service.",
            ["service", "percentile"],
        )
        ep_events = _gauge("window_endpoint_events", f"Endpoint events {window}.", ["service", "endpoint"])
        ep_errors = _gauge(
            "window_endpoint_errors",
            f"Endpoint events with status error {window}.",
            ["service", "endpoint"],
        )
        ep_durations = _gauge(
            "window_endpoint_duration_percentile_seconds",
            f"Percentiles of the durations of endpoint calls (backend http, frontend api) {window}.",
            ["service", "endpoint", "percentile"],
        )
        for service in SERVICES:
            side = stats.side(service)
            events.add_metric([service], side.total.count)
            errors.add_metric([service], side.total.errors)
            timed.add_metric([service], side.total.timed.count)
            _percentiles(durations, [service], side.total.timed)
            endpoints = _folded(side.endpoints, tallies.endpoints[service], Aggregate)
            for key in sorted(endpoints):
                agg = endpoints[key]
                ep_events.add_metric([service, key], agg.count)
                ep_errors.add_metric([service, key], agg.errors)
                _percentiles(ep_durations, [service, key], agg.timed)
        pairs = _gauge(
            "window_trace_pairs",
            f"Requests both sides saw (same trace id) {window}, per endpoint.",
            ["endpoint"],
        )
        gaps = _gauge(
            "window_trace_gap_percentile_seconds",
            f"Percentiles of browser time minus server time of requests both sides saw {window}, "
            "per endpoint.",
            ["endpoint", "percentile"],
        )
        found = _folded(stats.trace_gaps, tallies.gaps, LatencySketch)
        for key in sorted(found):
            pairs.add_metric([key], found[key].count)
            _percentiles(gaps, [key], found[key])
        yield from (events, errors, timed, durations, ep_events, ep_errors, ep_durations, pairs, gaps)

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

    def _alerts(self) -> Iterator[Metric]:
        """This process's alert messages by outcome, its retries and its queue (--alert-webhook)."""
        status = self._monitor.alerts.status()
        family = CounterMetricFamily(
            f"{PREFIX}_alerts",
            "Alert messages by outcome, summed over the webhooks: sent (a webhook took it), failed "
            "(refused, or failing after every retry), dropped (a webhook's queue was full).",
            labels=["outcome"],
        )
        for outcome in ("sent", "failed", "dropped"):
            family.add_metric([outcome], status[outcome])
        yield family
        yield CounterMetricFamily(
            f"{PREFIX}_alert_retries", "Webhook posts tried again after a failure.", value=status["retries"]
        )
        yield _gauge("alerts_queued", "Alert messages waiting to be posted.", [], status["queued"])
        yield _gauge(
            "alerts_open",
            "Alerts open now (differences at --alert-min-severity or above).",
            [],
            status["open"],
        )

    def _otlp(self) -> Iterator[Metric]:
        receiver = self._spans()
        if receiver is None:
            return
        family = CounterMetricFamily(
            f"{PREFIX}_otlp_spans",
            "OpenTelemetry spans received (OTLP/HTTP and gRPC), by outcome: accepted (stored as events), "
            "skipped (not an HTTP server or client span), rejected (invalid).",
            labels=["outcome"],
        )
        for outcome, n in sorted(receiver.counts().items()):
            family.add_metric([outcome], n)
        yield family
        records = CounterMetricFamily(
            f"{PREFIX}_otlp_log_records",
            "OpenTelemetry log records received (OTLP/HTTP and gRPC), by outcome: accepted (stored as events), "
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


def _percentiles(family: GaugeMetricFamily, labels: list[str], sketch: LatencySketch) -> None:
    """One sample per ``PERCENTILES`` of a sketch, in seconds; none when it is empty."""
    if not sketch.count:
        return
    values = sketch.quantiles(tuple(p / 100 for p in PERCENTILES))
    for percentile, ms in zip(PERCENTILES, values, strict=True):
        family.add_metric([*labels, str(percentile)], (ms or 0.0) / 1000)


Folded = TypeVar("Folded", Aggregate, LatencySketch)


def _folded(
    window: Mapping[str, Folded], kept: Mapping[str, object], empty: Callable[[], Folded]
) -> dict[str, Folded]:
    """The window's figures by the keys the tallies keep, the others merged under ``OTHER``,
    so the window's gauges have no more endpoint labels than the histograms."""
    out: dict[str, Folded] = {}
    for key, figures in window.items():
        if key not in kept:
            key = OTHER
        if key not in out:
            out[key] = empty()
        out[key].merge(figures)
    return out


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
