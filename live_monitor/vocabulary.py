"""The monitor's words, in one place: sides, severities, difference types, components and paths.

Every other module (and, through a test, the dashboard) takes its lists from here, so adding a
difference type or a severity is one edit that the tests then chase through every place that
names them. Standard library only: the lowest layer of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

Service = Literal["backend", "frontend"]
MAX_COMPONENT: Final = 128  # characters of an event's component
MAX_ACTION: Final = 256  # characters of an event's action
Status = Literal["success", "error"]
Severity = Literal["low", "medium", "high"]
DifferenceType = Literal["activity", "performance", "error_rate", "pattern"]
Scope = Literal["service", "endpoint"]
# What kind of work an event is, for the like-for-like rule: the browser's API calls and the
# server requests they make are compared; the rest is reported, never compared with them.
Work = Literal["api_calls", "pages_and_assets", "dependencies", "other"]

SERVICES: Final[tuple[Service, ...]] = get_args(Service)
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)  # in rising order
DIFFERENCE_TYPES: Final[tuple[DifferenceType, ...]] = get_args(DifferenceType)
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
WORKS: Final[tuple[Work, ...]] = get_args(Work)

# Endpoint events: how the two sides meet. A server request and a browser API call of the same
# endpoint share the key "METHOD /route".
ENDPOINT_COMPONENTS: Final[Mapping[Service, str]] = {"backend": "http", "frontend": "api"}
# Calls to other services: a backend's outgoing HTTP calls (to a payment provider), and a
# browser's calls to third parties (analytics, maps: neither same-origin nor a trace target).
# Each side's dependencies, keyed with their host ("GET payments.example.com/v1/charges/:id"),
# never compared with the other side.
OUTGOING_COMPONENT: Final = "http-client"

# The REST API's paths.
API: Final = "/api/live-execution"
EVENTS_PATH: Final = f"{API}/events"
STREAM_PATH: Final = f"{API}/stream"
STATUS_PATH: Final = f"{API}/status"
BASELINE_PATH: Final = f"{API}/baseline"  # the pinned baseline: POST pins, GET compares, DELETE unpins
OTLP_TRACES_PATH: Final = "/v1/traces"
OTLP_LOGS_PATH: Final = "/v1/logs"
HEALTH_PATH: Final = "/health"  # liveness: 200 while the process serves
READY_PATH: Final = "/ready"  # readiness: 200 while the store answers, else 503
METRICS_PATH: Final = "/metrics"  # Prometheus
OPENAPI_PATH: Final = "/api/openapi.json"

# The monitor's own traffic: the dashboard polling the API and the server answering it. It is
# listed (with ?include_self) but never counted as the app's, compared, or alerted on.
OWN_TRAFFIC_TAG: Final = "self_monitor"


def severity_rank(severity: str | None) -> int:
    """0 for none, then 1, 2, 3 for low, medium, high: for sorting and ``min_severity`` floors."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def is_own_path(path: str) -> bool:
    """True when a URL path (query string or not) is one of the monitor's own API paths."""
    return path == API or path.startswith(API + "/") or path.startswith(API + "?")


def is_own_traffic(details: Mapping[str, Any] | None) -> bool:
    """True for an event tagged as the monitor's own traffic (see ``OWN_TRAFFIC_TAG``)."""
    return bool(details) and details.get(OWN_TRAFFIC_TAG) is True  # type: ignore[union-attr]
