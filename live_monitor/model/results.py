"""The monitor's results as types: differences, side summaries, endpoint rows and the API answers.

The comparator and the monitor build these; the OpenAPI document is generated from them
(``msgspec.json.schema_components``), so what /data and /differences promise is what the
code is typed to return. ``Difference`` is a Struct; the figures are TypedDicts, plain dicts
at run time, as the report and the dashboard read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

import msgspec

from live_monitor.model.events import ExecutionEvent
from live_monitor.model.thresholds import Thresholds
from live_monitor.vocabulary import DifferenceType, Scope, Service, Severity, Work

__all__ = [
    "VERDICTS",
    "BaselineComparison",
    "Change",
    "ChangeSide",
    "Metric",
    "Presence",
    "Verdict",
    "ActivityPoint",
    "ApiCalls",
    "BaselineAnswer",
    "Basis",
    "Comparison",
    "DataAnswer",
    "Difference",
    "AlertsStatus",
    "DifferencesAnswer",
    "EndpointDrill",
    "EndpointRow",
    "Episode",
    "FilterNote",
    "Figures",
    "HistoryAnswer",
    "LabelSeen",
    "LabelsAnswer",
    "MinuteCalls",
    "PinnedEndpoint",
    "PinnedSide",
    "PinnedSummary",
    "RestoreStatus",
    "SideSummary",
    "StatusAnswer",
    "SystemSample",
    "Waterfall",
]


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    """One place where the two sides differ, with each side's figures and a sentence on it.

    ``key`` is the endpoint key at endpoint scope and None at service scope;
    ``difference_pct`` is the gap in percent (in points for error rates, a share of calls
    for patterns), None when it has no finite value.
    """

    type: DifferenceType
    severity: Severity
    scope: Scope
    key: str | None
    backend: dict[str, Any]
    frontend: dict[str, Any]
    difference_pct: float | None
    message: str
    # Added in issue 17: what the verdict rests on and how sure it is. ``samples`` counts each
    # side's events (or calls) behind it; ``confidence`` is 1 minus the p-value of the test that
    # the gap is not chance (two proportions for error rates, two means for service performance,
    # two counts for activity), None where no test applies (patterns, endpoint medians and tails).
    samples: dict[Service, int] = msgspec.field(default_factory=dict)
    confidence: float | None = None


class Episode(msgspec.Struct, frozen=True, kw_only=True):
    """One difference from the check that first found it to the one that found it gone.

    ``id`` names the difference across checks (its type, scope and endpoint key); ``severity``
    is the highest it reached, ``difference`` the difference as found when it reached it.
    Times are Unix seconds; ``resolved_at`` is None while it is open.
    """

    id: str
    opened_at: float
    resolved_at: float | None = None
    severity: Severity
    difference: Difference


class ApiCalls(TypedDict):
    """A side's API calls alone: the backend's http requests or the browser's api calls."""

    count: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None


class Figures(TypedDict):
    """An aggregate's figures as JSON (``Aggregate.figures``): counts, rates and durations in ms."""

    count: int
    timed_count: int
    error_count: int
    success_rate: float | None
    error_rate: float | None
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    per_minute: NotRequired[float | None]  # given the window's length in minutes


class SideSummary(TypedDict):
    """One side's figures in /data and the report (``summarize``)."""

    total_events: int
    timed_events: int
    error_count: int
    avg_duration_ms: float | None
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    p99_duration_ms: float | None
    success_rate: float | None
    events_per_minute: float | None
    components: dict[str, int]
    api_calls: ApiCalls
    work: dict[Work, int]  # events by kind of work: API calls, pages and assets, dependencies, other
    estimated_events: float  # sampled events counted as the 1/sample_rate events each stands for
    window_events: NotRequired[int]  # the live monitor's: total_events then counts every stored event
    window_minutes: NotRequired[float]  # the report's: the time its files cover


# What the service-wide differences compare: API calls when both sides have some (like for like),
# every event ("operations") when neither has any, nothing when only one side has some.
Basis = Literal["API calls", "operations", "none: one side has no API calls"]


class Comparison(TypedDict):
    """Service-wide ratios and gaps, backend against frontend (``comparison``); over all events,
    reported but never judged, when ``basis`` says only one side has API calls."""

    performance_ratio: float | None
    avg_duration_diff_ms: float | None
    success_rate_diff: float | None
    activity_ratio: float | None
    basis: Basis  # what the service-wide figures compare (like for like), or why nothing is


class EndpointRow(TypedDict):
    """One endpoint key as both sides saw it (``endpoint_rows``); a side that never did is None."""

    key: str
    backend: Figures | None
    frontend: Figures | None
    gap_p50_ms: float | None
    gap_p95_ms: float | None
    matched_requests: int
    matched_gap_p50_ms: float | None
    matched_gap_p95_ms: float | None
    seen_by: Literal["both"] | Service
    work: Work  # "pages_and_assets" for a server's page or static-file key, else "api_calls"


class SystemSample(TypedDict):
    """One reading of the machine and the monitor's process; rates are per second since the last."""

    timestamp: float
    cpu_percent: float
    memory_percent: float
    process_cpu_percent: float
    process_rss_bytes: int
    disk_read_bytes_per_s: float
    disk_write_bytes_per_s: float
    net_sent_bytes_per_s: float
    net_recv_bytes_per_s: float


class ActivityPoint(TypedDict):
    """Events each side sent between two system samples: one point of the activity chart."""

    timestamp: float
    backend: int
    frontend: int


if TYPE_CHECKING:  # the answers hold these as JSON builtins (Thresholds.as_dict, ExecutionEvent.to_dict) ...
    ThresholdsJSON = dict[str, Any]
    EventJSON = dict[str, Any]
else:  # ... which the schema describes by the types they come from
    ThresholdsJSON = Thresholds
    EventJSON = ExecutionEvent


class FilterNote(TypedDict):
    """What a view filtered by ``?release=``/``?environment=`` was computed from: the stored
    events (``scanned``, both sides), not the running window statistics, which hold all events
    together. ``covers_window`` is false when the store had evicted events of the window."""

    release: str | None
    environment: str | None
    scanned: int
    matched_backend: int
    matched_frontend: int
    covers_window: bool


class DataAnswer(TypedDict):
    """``GET /data``: everything the dashboard draws, in one answer a poll."""

    monitoring: bool
    uptime_seconds: float
    window_seconds: float
    generated_at: str | None
    backend: SideSummary
    frontend: SideSummary
    comparison: Comparison
    endpoints: list[EndpointRow]
    differences_count: int
    differences: list[Difference]
    thresholds: ThresholdsJSON
    system: SystemSample | None
    system_history: list[SystemSample]
    activity_history: list[ActivityPoint]
    recent_events: list[EventJSON]
    filter: NotRequired[FilterNote]  # only in a view filtered by release or environment


class OtlpSignalStatus(TypedDict):
    """One OTLP signal's items by outcome, and its whole exports refused by reason."""

    accepted: int
    skipped: int
    rejected: int
    refused: dict[str, int]


class OtlpGrpcStatus(TypedDict):
    """The OTLP/gRPC port, and whether this process listens on it."""

    port: int
    listening: bool


class AlertsStatus(TypedDict):
    """This process's alert messages by outcome, summed over its webhooks (``--alert-webhook``)."""

    process_id: int  # the process whose counters these are (with --workers, each has its own)
    webhooks: int  # URLs messages go to
    min_severity: Severity  # a difference at this severity or above opens an alert
    open: int  # alerts open now (every process's, from the store)
    checks: int  # checks of the differences this process ran while monitoring
    sent: int  # messages a webhook took (answered 2xx)
    failed: int  # messages given up on: refused (4xx) or still failing after every retry
    dropped: int  # messages not queued: a webhook's queue was full
    retries: int  # posts tried again after a failure
    queued: int  # messages waiting to be posted
    check_errors: int  # checks that failed (the store unreachable, mostly)


class RestoreStatus(TypedDict):
    """The ``--persist`` journal read back at start, while the monitor already serves."""

    state: Literal["restoring", "restored", "failed"]  # failed: the journal could not be read (see error)
    loaded: int  # journaled events read back so far
    total: int | None  # events to read back (the newest --max-events of each side); null until known
    waiting: int  # events received during the restore: journaled and acknowledged, stored after the journal's
    skipped: int  # journaled events that could not be read back (unreadable, or against a rule added since)
    seconds: float  # how long the restore has taken so far
    error: str | None  # why the restore stopped short, else null


class StatusAnswer(TypedDict):
    """``GET /status``: the monitoring state, the sampler's health and the ingest counters."""

    monitoring: bool
    uptime_seconds: float
    started_at: str | None
    interval_seconds: float
    last_sample_age_seconds: float | None
    sampler_errors: int
    backend_events: int
    frontend_events: int
    differences_found: int
    received: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]  # the 20 most frequent reasons
    evicted: int
    evicted_by_service: dict[Service, int]
    restored: int
    self_events: int
    self_events_dropped: int  # this process's own API calls not recorded: the store was down
    stored: dict[Service, int]
    totals: dict[Service, int]
    otlp: dict[Literal["traces", "logs"], OtlpSignalStatus]  # both transports together
    otlp_grpc: OtlpGrpcStatus
    live_streams: int  # this process's open /stream connections
    alerts: AlertsStatus
    restoring: bool  # the --persist journal is being read back: /ready answers 503 until it is all in
    restore: RestoreStatus | None  # null without --persist


class DifferencesAnswer(TypedDict):
    """``GET /differences``: the differences now detected, most severe first."""

    differences: list[Difference]
    count: int
    thresholds: ThresholdsJSON
    filter: NotRequired[FilterNote]  # only in a view filtered by release or environment


class LabelSeen(TypedDict):
    """One release or environment the stored events carry."""

    value: str
    events: int  # stored events that carry it (both sides, the monitor's own traffic left out)
    last_seen: float  # the newest of them, epoch seconds


class LabelsAnswer(TypedDict):
    """``GET /labels``: the releases and environments of the stored events, the most recently
    seen first: the values ``?release=`` and ``?environment=`` can filter by."""

    releases: list[LabelSeen]
    environments: list[LabelSeen]
    scanned: int  # stored events read (both sides)


class HistoryAnswer(TypedDict):
    """``GET /differences/history``: differences as they opened and resolved, the newest first."""

    episodes: list[Episode]
    count: int
    open: int  # of ``episodes``, those still open


# --- one endpoint, drilled into (GET /endpoints/<key>) -----------------------------------------


class Distribution(TypedDict):
    """Values counted on a log scale (``edges_ms`` of the answer that holds it): ``counts[i]``
    values above ``edges_ms[i]`` and at most ``edges_ms[i + 1]``, ``zeros`` values of 0."""

    count: int
    zeros: int
    counts: list[int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class SideDrill(TypedDict):
    """One side's view of an endpoint: the window's figures and latency distribution, and the
    HTTP statuses of its calls among the events scanned (``"none"``: no status given)."""

    figures: Figures
    latency: Distribution
    statuses: dict[str, int]
    errors_scanned: int


class GapDrill(TypedDict):
    """Browser-minus-server milliseconds of the endpoint's requests matched by trace id, on their
    own log scale (a gap below 0 counts as 0, as in the endpoint rows)."""

    edges_ms: list[float]
    distribution: Distribution


class Waterfall(TypedDict):
    """One matched request as a waterfall, in epoch seconds on the browser's clock.

    The browser's start and end are measured. The server's start and end are placed inside the
    browser's span (``estimated``): the two clocks differ, so the server's span is its duration
    (the ``Server-Timing`` app figure the browser read when it has one, else the server event's
    own) with the rest of the browser's wait split evenly before and after it.
    ``server_clock_offset_ms`` is the server's own start minus that placement: how far its clock
    seems off (network asymmetry included)."""

    trace_id: str
    browser_action: str
    browser_start: float
    browser_end: float
    server_start: float
    server_end: float
    browser_ms: float
    server_ms: float
    server_ms_from: Literal["server_timing", "server_event"]
    estimated: list[Literal["server_start", "server_end"]]
    server_clock_offset_ms: float
    http_status: int | None
    status: Literal["success", "error"]


class MinuteCalls(TypedDict):
    """The endpoint's calls per side in one minute (``minute``: its start, epoch seconds)."""

    minute: float
    backend: int
    frontend: int


class Scanned(TypedDict):
    """The newest events read for the event-level figures (statuses, waterfalls, calls over
    time): at most ``limit`` of each side, whatever the store holds, so the cost stays flat."""

    limit: int
    backend: int
    frontend: int
    since: float | None
    matched: int


class EndpointDrill(TypedDict):
    """``GET /endpoints/<key>``: one endpoint, both sides, side by side. The distributions and
    figures cover the statistics window; statuses, waterfalls and calls over time the newest
    events scanned (``scanned``)."""

    key: str
    window_seconds: float
    edges_ms: list[float]  # the latency scale both sides share
    backend: SideDrill | None
    frontend: SideDrill | None
    gaps: GapDrill
    slowest: list[Waterfall]  # the slowest matched requests (by the browser's time) first
    differences: list[Difference]
    calls_per_minute: list[MinuteCalls]
    scanned: Scanned
    filter: NotRequired[FilterNote]  # only in a view filtered by release or environment


# --- what changed since a baseline (model/baseline.py compares; the report and the live monitor answer) ---

Metric = Literal["p50_ms", "p95_ms", "gap_p50_ms", "error_rate", "calls_per_minute"]
# regression / improvement: worse / better, surely and by at least a low level; changed: a volume
# that moved (traffic is neither better nor worse); unchanged: within the levels, or not sure.
Verdict = Literal["regression", "improvement", "changed", "unchanged", "not enough samples"]
VERDICTS: tuple[Verdict, ...] = ("regression", "improvement", "changed", "not enough samples", "unchanged")
ChangeSide = Literal["backend", "frontend", "both"]  # "both": the gap between the two sides


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One figure of one endpoint and side, in the baseline and now, and the verdict on it.

    ``change`` is now minus then in the figure's unit (percentage points for ``error_rate``);
    ``change_pct`` is that change as a % of the baseline's figure. ``confidence`` is 1 minus the
    p-value of ``test`` adjusted for the number of figures tested together (Benjamini-Hochberg),
    None where no test applies (a gap from medians per side).
    """

    key: str
    side: ChangeSide
    metric: Metric
    verdict: Verdict
    severity: Severity | None
    baseline: float | None
    current: float | None
    change: float | None
    change_pct: float | None
    samples: dict[Literal["baseline", "current"], int]
    confidence: float | None
    test: str
    message: str


class Presence(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint side one run saw and the other did not: new since the baseline, or vanished."""

    key: str
    side: Service
    calls: int
    calls_per_minute: float | None


class BaselineComparison(msgspec.Struct, frozen=True, kw_only=True):
    """The report's ``baseline`` section: every change judged, most severe regression first,
    the endpoints new or vanished, and the differences between the sides that are new (or worse)
    since the baseline."""

    baseline: dict[str, Any]
    distributions: bool  # both runs carry distributions, so every latency change was tested
    changes: list[Change]
    new_endpoints: list[Presence]
    vanished_endpoints: list[Presence]
    new_differences: list[Difference]
    counts: dict[Verdict, int]
    levels: dict[str, Any]
    notes: list[str]


class PinnedSide(TypedDict):
    """One endpoint seen from one side in the pinned window."""

    calls: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    calls_per_minute: float | None


class PinnedEndpoint(TypedDict):
    """One endpoint key in the pinned window: each side that saw it, and its gap (browser minus
    server at p50, from requests joined by trace id when there are enough)."""

    key: str
    backend: PinnedSide | None
    frontend: PinnedSide | None
    gap_p50_ms: float | None


class PinnedSummary(TypedDict):
    """What the pinned baseline holds, as figures (its distributions stay in the store)."""

    pinned_at: float  # Unix seconds
    window_seconds: float
    endpoints: list[PinnedEndpoint]
    differences: list[Difference]  # the differences between the sides when it was pinned


class BaselineAnswer(TypedDict):
    """``/baseline``: the pinned baseline and what changed since, per endpoint key and side;
    both None while none is pinned."""

    pinned: bool
    baseline: PinnedSummary | None
    since_baseline: BaselineComparison | None
