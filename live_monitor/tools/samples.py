"""Sample generation: realistic backend and frontend events with injected shapes, as a stream.

A shape is an anomaly a correct monitor flags (a latency gap, hidden errors, a tail-only
slowdown, ...) or healthy real traffic it must not flag (page traces, outgoing calls, pages and
assets, page noise, a sampled browser). SampleGenerator yields events in timestamp order and
counts what it wrote (Census); ``generate`` writes ``backend_events``, ``frontend_events``,
``backend.log`` (backend_logging_config's JSON log lines) and ``ground_truth.json`` (per
shape, what a correct monitor reports, with the run's figures), and replays the events into a
monitor on request (live_monitor/tools/replay.py). The command line lives in
generate_sample_logs.py.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from backend_logging_config import endpoint_key, normalize_route
from live_monitor.model.events import MIN_SAMPLE_RATE
from live_monitor.tools.replay import MonitorPoster
from live_monitor.vocabulary import OUTGOING_COMPONENT, SERVICES, DifferenceType, Scope

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint of the sample shop and how its backend behaves."""

    method: str
    path: str  # concrete path template: {id} becomes a number, {q} a search query
    median_ms: float  # backend latency is lognormal around this median
    sigma: float
    weight: float  # share of API traffic
    ok_status: int = 200
    not_found: float = 0.0  # share of 404 answers
    cache: str = ""  # cache lookup done first; a hit skips the db work
    db: str = ""  # db queries, "|"-separated
    trigger: str = ""  # the click (or form) that starts the call

    @functools.cached_property
    def key(self) -> str:
        """The endpoint key both sides report, e.g. ``GET /api/orders/:id``."""
        return endpoint_key(self.method, self.path.split("?", 1)[0].replace("{id}", "1"))


E = Endpoint
ENDPOINTS = (
    E("GET", "/api/products", 45, 0.45, 22, 200, 0, "get products:list", "query products"),
    E("GET", "/api/products/{id}", 28, 0.4, 18, 200, 0.04, "get item", "query products", "a.card"),
    E("GET", "/api/search?q={q}", 110, 0.6, 12, 200, 0, "", "search products", "input#search"),
    E("GET", "/api/cart", 25, 0.35, 10, 200, 0, "get cart", "query cart_items"),
    E("POST", "/api/cart", 60, 0.45, 10, 201, 0, "", "insert cart_items", "button#add-to-cart"),
    E("DELETE", "/api/cart/items/{id}", 35, 0.4, 3, 204, 0.02, "", "delete cart_items", "a.remove"),
    E("GET", "/api/orders/{id}", 80, 0.55, 8, 200, 0.03, "", "query orders|query order_items"),
    E("POST", "/api/checkout", 320, 0.5, 4, 201, 0, "", "insert orders|update inventory", "form"),
    E("GET", "/api/users/me", 18, 0.3, 8, 200, 0, "get session", "query users"),
)
# The endpoint frontend_only adds when none is named: served by a third party, never our backend.
EXTRA_ENDPOINT = E("GET", "/api/recommendations", 90, 0.5, 6)
# small_sample_errors: two endpoints called a set number of times, each call at a set point of
# the run; (endpoint, calls, hidden server errors among them). Only the sample size differs.
QUIET_ENDPOINT = E("POST", "/api/reviews", 70, 0.4, 0, 201, 0, "", "insert reviews", "button#post-review")
LOUD_ENDPOINT = E("GET", "/api/shipping/quote", 95, 0.45, 0, 200, 0, "", "query shipping_zones")
SMALL_SAMPLES = ((QUIET_ENDPOINT, 12, 1), (LOUD_ENDPOINT, 120, 7))
# activity_mismatch: a payment provider's webhooks, server requests no browser makes.
WEBHOOK_ENDPOINT = E("POST", "/api/webhooks/payments", 40, 0.5, 0, 200, 0, "", "update orders")


@dataclass(frozen=True)
class Outgoing:
    """A call the backend makes to another service while it serves one of its endpoints."""

    method: str
    host: str
    path: str  # {id} becomes a prefixed id such as ch_3Nabc123XYZ
    prefix: str
    median_ms: float

    @property
    def key(self) -> str:
        """The call's key, host included and the id as ``:id``: ``POST payments.example.com/v1/charges/:id``."""
        return f"{self.method} {self.host}{self.path.replace('{id}', ':id')}"


# outgoing_calls: endpoint key -> the call it makes to a provider
OUTGOING = {
    "POST /api/checkout": Outgoing("POST", "payments.example.com", "/v1/charges/{id}", "ch", 140),
    "GET /api/orders/:id": Outgoing("GET", "shipping.example.com", "/v2/shipments/{id}", "shp", 60),
    LOUD_ENDPOINT.key: Outgoing("POST", "shipping.example.com", "/v2/rates", "", 70),
}
# static_files: besides the page itself, the assets a browser cache lacks (about a third of loads)
ASSETS = (
    ("/static/app.js", "application/javascript"),
    ("/static/app.css", "text/css"),
    ("/favicon.ico", "image/x-icon"),
)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class Shape:
    """A shape ``--inject`` adds: an anomaly a monitor must flag, or healthy traffic it must not."""

    what: str
    endpoint: str | None = None  # the default endpoint key; None: the shape takes no endpoint


SHAPES: dict[str, Shape] = {
    # anomalies: a correct monitor reports each at medium or above
    "latency_gap": Shape("frontend sees +800-1200 ms", "GET /api/orders/:id"),
    "hidden_errors": Shape("backend fails ~25%%, frontend retries", "POST /api/cart"),
    "lost_requests": Shape("~30%% of calls never reach the backend", "GET /api/search"),
    "frontend_only": Shape("calls the backend never sees", EXTRA_ENDPOINT.key),
    "activity_mismatch": Shape("payment webhooks, never from the browser, triple backend traffic"),
    "tail_latency": Shape(
        "~10%% of browser calls wait ~1.5 s longer than the server, medians unchanged",
        "GET /api/products/:id",
    ),
    "small_sample_errors": Shape("1 hidden server error in 12 calls, quiet, next to 7 in 120, flagged"),
    # healthy real traffic: a correct monitor raises no medium/high difference for it
    "nested_traces": Shape("page traces: a page load, 2-4 API calls, their server requests and spans"),
    "outgoing_calls": Shape(
        f"backend calls to payment and shipping providers, component {OUTGOING_COMPONENT}"
    ),
    "static_files": Shape("the server also serves the pages, a script, a style sheet and the favicon"),
    "page_noise": Shape("a real page's scrolls, clicks and web vitals around every page load"),
}

# The healthy shapes of real traffic, together (--real-traffic).
REAL_TRAFFIC = ("nested_traces", "outgoing_calls", "static_files", "page_noise")

LOG_FIELDS = "service component action duration_ms status details trace_id span_id parent_span_id".split()
BACKEND_COMPONENTS = {"http", "db", "cache", "job", OUTGOING_COMPONENT}
PAGES = ("/", "/products", "/products/{id}", "/cart", "/checkout", "/orders/{id}", "/search")
COMPONENTS = ("ProductList", "ProductCard", "Cart", "CheckoutForm", "SearchBar", "OrderSummary")
LONE_CLICKS = ("a.nav-link", "button#menu-toggle", "img.product-thumb", "button.filter")
QUERIES = ("shoes", "red+dress", "laptop", "coffee+mug", "headphones", "desk+lamp")
# activity kind -> weight, tuned so that normal traffic has about as many events on each side
ACTIVITIES = {"api": 46, "click": 3, "scroll": 4, "page": 3, "update": 5, "unmount": 2, "inp": 2, "job": 1}
# Outside bursts the rate runs below the mean so that bursts (6% of the time at 3.5x) average out.
NORMAL_RATE = 0.84
VITALS = {
    "LCP": (2500, 4000),
    "FCP": (1800, 3000),
    "CLS": (0.1, 0.25),
    "INP": (200, 500),
    "TTFB": (800, 1800),
}
# small_sample_errors places its calls by the share of events written; it needs room for them.
SMALL_SAMPLE_MIN_EVENTS = 3000


@dataclass(frozen=True)
class Injection:
    """One requested shape: its name and the endpoint key it applies to (None = none)."""

    name: str
    key: str | None


def parse_injection(spec: str, known: dict[str, Endpoint]) -> Injection:
    """Parse ``NAME[:ENDPOINT]``; ENDPOINT is ``METHOD /path`` or a path, ids may be concrete."""
    name, _, target = spec.partition(":")
    name = name.strip()
    if name not in SHAPES:
        raise ValueError(f"unknown anomaly {name!r}; choose from {', '.join(SHAPES)}")
    default = SHAPES[name].endpoint
    target = target.strip()
    if default is None:
        if target:
            raise ValueError(f"{name} applies to the whole service and takes no endpoint")
        return Injection(name, None)
    if not target:
        return Injection(name, default)
    method, _, path = target.partition(" ")
    if method.upper() in METHODS and path.strip():
        key = endpoint_key(method, path.strip())
    else:
        route = normalize_route(target)
        matches = [k for k in known if k.split(" ", 1)[1] == route]
        if len(matches) != 1:
            raise ValueError(f"{spec!r}: give the method too, e.g. '{name}:GET {route}'")
        key = matches[0]
    if key not in known and name != "frontend_only":
        raise ValueError(f"{spec!r}: unknown endpoint {key!r}; known: {', '.join(known)}")
    return Injection(name, key)


class Census:
    """What was written, counted as it is generated: the figures the ground truth states."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()

    def add(self, event: dict[str, Any]) -> None:
        """Count one event and take off its tags (marks for the census, never written)."""
        side, component, action = event["service"], event["component"], event["action"]
        self.counts[(side, component, action)] += 1
        self.counts[(side, component)] += 1
        if event["status"] == "error":
            self.counts[(side, component, action, "error")] += 1
        for tag in event.pop("_tags", ()):
            self.counts[("tag", tag)] += 1
            self.counts[("tag", tag, action)] += 1

    def keys(self, side: str, component: str, tag: str = "") -> list[str]:
        """The actions seen of one side's component (with ``tag``: only tagged ones), sorted."""
        found = {k[2] for k in self.counts if len(k) == 3 and k[:2] == (side, component)}
        return sorted(a for a in found if not tag or self.counts[("tag", tag, a)])

    def calls(self, key: str) -> dict[str, Any]:
        """Browser calls and server requests of an endpoint key, and the errors of each."""
        c = self.counts
        return {
            "calls": c[("frontend", "api", key)],
            "browser_errors": c[("frontend", "api", key, "error")],
            "server_requests": c[("backend", "http", key)],
            "server_errors": c[("backend", "http", key, "error")],
        }


def truth_entry(name: str, type_: DifferenceType, key: str | None, flagged: bool, description: str,
                *, scope: Scope | None = None, **facts: Any) -> dict[str, Any]:  # fmt: skip
    """One ground-truth line: what a correct monitor reports about a shape, with its figures.

    ``flagged``: a difference of ``type_`` on ``key`` at medium or above; otherwise no
    medium/high one. A null key at endpoint scope means on no endpoint that another line flags.
    """
    scope = scope or ("service" if key is None else "endpoint")
    where = f"on {key}" if key else "at service scope" if scope == "service" else "on any other endpoint"
    if flagged:
        verdict = {
            "expected_severity_at_least": "medium",
            "expect": f"a medium or high {type_} difference {where}",
        }
    else:
        verdict = {"expected_severity_at_most": "low", "expect": f"no medium/high {type_} difference {where}"}
    head = {"name": name, "type": type_, "key": key, "scope": scope, "flagged": flagged}
    return {**head, **verdict, "description": description, **facts}


def ground_truth(injections: list[Injection], census: Census, sample_rate: float) -> list[dict[str, Any]]:
    """Every line of ground_truth.json: per shape, what a correct monitor reports.

    A quiet line that a flagged one contradicts (the same type, scope and key) is left out: page
    noise does not hide an injected activity mismatch.
    """
    lines = [line for inj in injections for line in _truth_lines(inj, census)]
    if sample_rate < 1:
        what = f"the browser reports {sample_rate:g} of its page sessions' API calls (sample_rate)"
        figures: dict[str, Any] = {
            "sample_rate": sample_rate,
            "browser_calls": census.counts[("frontend", "api")],
        }
        figures["server_requests"] = census.counts[("backend", "http")]
        lines.append(truth_entry("sampled_browser", "activity", None, False, what, **figures))
        lines.append(truth_entry("sampled_browser", "activity", None, False, what, scope="endpoint"))
    flagged = {(t["type"], t["scope"], t["key"]) for t in lines if t["flagged"]}
    return [t for t in lines if t["flagged"] or (t["type"], t["scope"], t["key"]) not in flagged]


def _truth_lines(inj: Injection, census: Census) -> list[dict[str, Any]]:
    """The ground-truth lines of one injected shape."""
    name, key, what = inj.name, inj.key, SHAPES[inj.name].what.replace("%%", "%")
    c = census.counts
    kinds: dict[str, DifferenceType] = {
        "latency_gap": "performance",
        "hidden_errors": "error_rate",
        "lost_requests": "error_rate",
        "frontend_only": "pattern",
        "activity_mismatch": "activity",
    }
    if name in kinds:
        return [truth_entry(name, kinds[name], key, True, what)]
    if name == "tail_latency" and key:  # it always has one (its default)
        figures: dict[str, Any] = {
            "calls": c[("frontend", "api", key)],
            "slow_calls": c[("tag", "tail_slow", key)],
        }
        return [truth_entry(name, "performance", key, True, what, **figures, extra_ms=[1300, 1700])]
    if name == "small_sample_errors":
        return [
            truth_entry(name, "error_rate", ep.key, ep is LOUD_ENDPOINT,
                        f"{errors} hidden server error(s) in {n} calls", **census.calls(ep.key))
            for ep, n, errors in SMALL_SAMPLES
        ]  # fmt: skip
    service = [truth_entry(name, t, None, False, what) for t in ("activity", "performance")]
    if name == "nested_traces":
        traces = {"page_traces": c[("tag", "page_trace")], "browser_calls": c[("tag", "in_page")]}
        traces["joined_calls"] = c[("tag", "joined")]
        return [truth_entry(name, "performance", None, False, what, scope="endpoint", **traces)]
    if name == "outgoing_calls":
        outgoing = census.keys("backend", OUTGOING_COMPONENT)
        lines = [truth_entry(name, "pattern", None, False, what)]
        return lines + [
            truth_entry(name, "pattern", k, False, f"{k}: a call the backend makes",
                        calls=c[("backend", OUTGOING_COMPONENT, k)])
            for k in outgoing
        ]  # fmt: skip
    if name == "static_files":
        return service + [
            truth_entry(name, "pattern", k, False, f"{k}: a page or asset the server sends",
                        requests=c[("backend", "http", k)])
            for k in census.keys("backend", "http", "served")
        ]  # fmt: skip
    figures = {"browser_events": c[("tag", "noise")], "page_loads": c[("frontend", "page", "load")]}
    return [{**line, **figures} for line in service]  # page_noise


@functools.lru_cache(maxsize=4)
def _iso_second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def iso_ms(ts_ms: int) -> str:
    """Format integer epoch milliseconds as ISO 8601 UTC, e.g. ``2025-01-01T00:00:00.123Z``."""
    sec, ms = divmod(ts_ms, 1000)
    return f"{_iso_second(sec)}.{ms:03d}Z"


class SampleGenerator:
    """Yields sample events in timestamp order, one user or backend activity at a time."""

    def __init__(self, seed: int, total: int, start_ms: int, duration_ms: int, injections: list[Injection],
                 sample_rate: float = 1.0) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.total, self.start_ms, self.end_ms = total, start_ms, start_ms + duration_ms
        self.counts = {"backend": 0, "frontend": 0}
        self.by_name: dict[str, set[str]] = {}
        for inj in injections:
            self.by_name.setdefault(inj.name, set()).add(inj.key or "")
        self.endpoints = list(ENDPOINTS)
        for key in self.by_name.get("frontend_only", set()) - {e.key for e in ENDPOINTS}:
            method, path = key.split(" ", 1)
            self.endpoints.append(E(method, path.replace(":id", "{id}"), 90, 0.5, 6))
        self.endpoint_weights = list(itertools.accumulate(e.weight for e in self.endpoints))
        self.mismatch = "activity_mismatch" in self.by_name
        self.nested, self.outgoing, self.static, self.noise = (s in self.by_name for s in REAL_TRAFFIC)
        self.sample_rate = sample_rate
        self.schedule = self._schedule() if "small_sample_errors" in self.by_name else []
        self.census = Census()
        self.emitted = self.tail_calls = 0
        self.out: list[dict[str, Any]] = []  # the events of the activity being generated

    def _schedule(self) -> list[tuple[float, Endpoint, bool]]:
        """small_sample_errors' calls, latest first: the share of events after which each is due
        (all within the first 90%), its endpoint, and whether it fails on the server."""
        calls = []
        for ep, n, errors in SMALL_SAMPLES:
            failing = set(self.rng.sample(range(n), errors))
            calls += [(0.9 * (i + 0.5) / n, ep, i in failing) for i in range(n)]
        return sorted(calls, key=lambda call: -call[0])

    def _has(self, name: str, key: str) -> bool:
        return key in self.by_name.get(name, ())

    def _span(self, bits: int = 64) -> str:
        return f"{self.rng.getrandbits(bits) or 1:0{bits // 4}x}"

    def _ln(self, median: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    def _concrete(self, template: str) -> str:
        r = self.rng
        return template.replace("{id}", str(r.randint(1, 99999))).replace("{q}", r.choice(QUERIES))

    def _emit(self, ts_ms: int, component: str, action: str, ms: float | None, details: dict[str, Any],
              status: str = "success", trace: str = "", span: str = "", parent: str = "") -> dict[str, Any]:  # fmt: skip
        event: dict[str, Any] = {
            "timestamp": ts_ms,  # formatted on release, once it is known to be in order
            "service": "backend" if component in BACKEND_COMPONENTS else "frontend",
            "component": component,
            "action": action,
            "duration_ms": None if ms is None else round(ms, 2),
            "status": status,
            "details": details,
        }
        if trace:
            event["trace_id"], event["span_id"] = trace, span
        if parent:
            event["parent_span_id"] = parent
        self.out.append(event)
        return event

    def _api_activity(self, t: int, ep: Endpoint | None = None, error: bool = False) -> None:
        """API traffic: one call, or with nested_traces a page trace (a page load and 2-4 calls).

        With a sample rate, the browser reports a page session's calls or none of them.
        """
        r = self.rng
        sampled = self.sample_rate >= 1 or r.random() < self.sample_rate
        if not self.nested:
            self._api_call(t, ep, error, sampled)
            return
        trace, root, page = self._span(128), self._span(), self._concrete(r.choice(PAGES))
        at = t + int(self._page_load(t, page, trace, root) * r.uniform(0.4, 0.9))
        for i in range(r.randint(2, 4)):
            end = self._api_call(at, ep if i == 0 else None, error and i == 0, sampled, trace, root, page)
            at = end + r.randint(300, 4000)  # the user reads, then clicks again

    def _api_call(self, t: int, ep: Endpoint | None = None, error: bool = False, sampled: bool = True,
                  trace: str = "", parent: str = "", page: str = "") -> int:  # fmt: skip
        """One browser API call (reported if ``sampled``) and its server side; returns its end.

        ``ep`` is a scheduled call (``error``: its server request fails behind a fallback);
        ``trace``/``parent``/``page``: the page trace it is part of.
        """
        r = self.rng
        scheduled = ep is not None
        ep = ep or r.choices(self.endpoints, cum_weights=self.endpoint_weights)[0]
        key, path = ep.key, self._concrete(ep.path)
        page = page or self._concrete(r.choice(PAGES))
        if ep.trigger == "form" and r.random() < 0.9:
            details = {"field_count": r.randint(6, 11), "page": "/checkout"}
            self._emit(t, "form", "submit form#checkout", None, details)
            t += r.randint(2, 30)
        elif ep.trigger and r.random() < 0.9:
            self._emit(t, "click", ep.trigger, None, {"page": page})
            t += r.randint(2, 30)
        fe: dict[str, Any] = {"http_status": 200, "path": path, "page": page}
        trace = trace or self._span(128)
        mark, tags = len(self.out), ["in_page"] if parent else []
        if self._has("frontend_only", key):
            fe_ms = self._ln(ep.median_ms, ep.sigma) + self._ln(30, 0.5)
        elif self._has("lost_requests", key) and r.random() < 0.3:
            fe_ms = self._ln(ep.median_ms, ep.sigma) + self._ln(30, 0.5)
            fe.update(http_status=0, error="TypeError: Failed to fetch")
        else:
            fe_ms = self._backend_attempts(t, ep, path, fe, trace, error if scheduled else None)
            tags.append("joined")
        if self._has("latency_gap", key):
            fe_ms += r.uniform(800, 1200)
        if sampled and self._has("tail_latency", key):
            self.tail_calls += 1
            if self.tail_calls % 10 == 0:  # every tenth reported call waits ~1.5 s in the browser
                fe_ms += r.uniform(1300, 1700)
                tags.append("tail_slow")
        code = fe["http_status"]
        status = "error" if code == 0 or code >= 500 else "success"
        span = self._span()
        for event in self.out[mark:]:  # the server requests were made in this call's span
            if event["component"] == "http":
                event["parent_span_id"] = span
        if sampled:
            event = self._emit(t, "api", key, fe_ms, fe, status, trace, span, parent)
            if self.sample_rate < 1:
                event["sample_rate"] = self.sample_rate
            event["_tags"] = tags
        return t + int(fe_ms)

    def _backend_attempts(self, t: int, ep: Endpoint, path: str, fe: dict[str, Any], trace: str,
                          scheduled_error: bool | None = None) -> float:  # fmt: skip
        """Emit the backend side of one call, retries included; return the frontend's time.

        A scheduled call (``scheduled_error`` not None) answers its usual status and fails
        only as told.
        """
        r = self.rng
        hidden = self._has("hidden_errors", ep.key)
        elapsed = 0.0
        for attempt in range(3):
            overhead = max(1.0, self._ln(30, 0.5))  # network and browser time around the request
            sent = t + int(elapsed + overhead * r.uniform(0.3, 0.6)) + 1
            roll = r.random()
            if hidden and r.random() < 0.25:
                code = 500
            elif scheduled_error is not None:
                code = ep.ok_status
            else:
                code = 500 if roll < 0.003 else 404 if roll < 0.003 + ep.not_found else ep.ok_status
            be_ms = round(self._ln(ep.median_ms, ep.sigma) * (0.6 if code >= 400 else 1.0), 2)
            out_ms = round(self._ln(OUTGOING[ep.key].median_ms, 0.5), 2) if self._calls_out(ep) else 0.0
            be_ms = round(be_ms + out_ms, 2)
            self._backend_request(sent, ep, path, code, be_ms, trace, out_ms, bool(scheduled_error))
            elapsed += be_ms + overhead
            fe["http_status"] = code
            if not (hidden and code == 500 and attempt < 2):
                break
            fe["retries"] = attempt + 1
            elapsed += r.uniform(100, 300)  # the client's retry back-off
        return elapsed

    def _calls_out(self, ep: Endpoint) -> bool:
        return self.outgoing and ep.key in OUTGOING

    def _backend_request(self, t: int, ep: Endpoint, path: str, code: int, be_ms: float, trace: str,
                         out_ms: float = 0.0, failed: bool = False) -> None:  # fmt: skip
        """A server request and the work inside it: an outgoing call, a cache lookup, db queries.

        ``failed``: the request fails on the server (its outgoing call or its last query) while
        the client gets its usual answer, a fallback.
        """
        r = self.rng
        span = self._span()
        status = "error" if code >= 500 or failed else "success"
        details: dict[str, Any] = {"http_status": code, "path": path}
        if failed:
            details["error"] = "upstream failed; served a fallback"
        self._emit(t, "http", ep.key, be_ms, details, status, trace, span)
        cursor = t + max(1, int(be_ms * 0.05))
        budget = (be_ms - out_ms) * 0.7
        if out_ms:
            self._outgoing(cursor, OUTGOING[ep.key], out_ms, trace, span, failed)
            cursor += max(1, int(out_ms))
        if ep.cache:
            hit = r.random() < 0.8 and code < 400
            ms = min(self._ln(0.8, 0.5), budget * 0.2)
            details = {"hit": hit, "key": ep.cache.split(" ", 1)[1]}
            self._emit(cursor, "cache", ep.cache, ms, details, "success", trace, self._span(), span)
            cursor, budget = cursor + max(1, int(ms)), budget - ms
            if hit:
                return
        queries = ep.db.split("|") if ep.db else []
        for i, action in enumerate(queries):
            ms = budget * r.uniform(0.3, 0.9) / len(queries)
            details = {"table": action.split(" ", 1)[1], "rows": r.randint(0, 50)}
            failed_query = (code >= 500 or (failed and not out_ms)) and i == len(queries) - 1
            status = "error" if failed_query else "success"
            self._emit(cursor, "db", action, ms, details, status, trace, self._span(), span)
            cursor += max(1, int(ms))

    def _outgoing(self, t: int, call: Outgoing, ms: float, trace: str, parent: str, failed: bool) -> None:
        """The backend's call to a provider, keyed with its host; its id is a prefixed one."""
        r = self.rng
        ident = f"{call.prefix}_{r.randint(1, 9)}{''.join(r.choices(ALNUM, k=13))}"
        url = f"https://{call.host}{call.path.replace('{id}', ident)}"
        code, status = (503, "error") if failed else (200, "success")
        details = {"http_status": code, "url": url}
        self._emit(t, OUTGOING_COMPONENT, call.key, ms, details, status, trace, self._span(), parent)

    def _job(self, t: int) -> None:
        trace, span = self._span(128), self._span()
        self._emit(t, "job", "sync inventory", self._ln(120, 0.6), {}, "success", trace, span)
        for i in range(self.rng.randint(1, 3)):
            component, act = ("db", "query payments") if i % 2 == 0 else ("cache", "set payment")
            ms = self._ln(4, 0.8)
            self._emit(t + 2 + i * 5, component, act, ms, {}, "success", trace, self._span(), span)

    def _webhook(self, t: int) -> None:
        """activity_mismatch: a payment provider's webhook, a server request no browser made."""
        ep = WEBHOOK_ENDPOINT
        be_ms = round(self._ln(ep.median_ms, ep.sigma), 2)
        self._backend_request(t, ep, ep.path, ep.ok_status, be_ms, self._span(128))

    def _frontend_ui(self, t: int, kind: str) -> None:
        r = self.rng
        page = self._concrete(r.choice(PAGES))
        if kind == "click":
            self._emit(t, "click", r.choice(LONE_CLICKS), None, {"page": page})
        elif kind == "scroll":
            self._emit(t, "scroll", "scroll", None, {"depth_pct": r.randint(5, 100), "page": page})
        elif kind == "page":
            self._page_load(t, page)
        elif kind == "inp":
            self._vital(t, "INP", self._ln(120, 0.6), page)
        else:  # a component update or unmount
            ms = self._ln(2.5 if kind == "update" else 0.4, 0.7)
            self._emit(t, r.choice(COMPONENTS), kind, ms, {"page": page})

    def _page_load(self, t: int, page: str, trace: str = "", span: str = "") -> float:
        """A page load with its vitals and mounts (and, as asked, its server side and noise).

        ``trace``/``span``: the page trace it is the root of. Returns the load time.
        """
        r = self.rng
        ttfb = self._ln(180, 0.5)
        dcl = ttfb + self._ln(600, 0.5)
        load = dcl + self._ln(400, 0.6)
        timings = {"ttfb_ms": ttfb, "dom_content_loaded_ms": dcl, "load_ms": load}
        details = {"page": page, **{k: round(v, 1) for k, v in timings.items()}}
        event = self._emit(t, "page", "load", load, details, trace=trace, span=span)
        if trace:
            event["_tags"] = ["page_trace"]
        fcp = ttfb + self._ln(700, 0.4)
        self._vital(t + int(fcp), "FCP", fcp, page)
        lcp = fcp + self._ln(600, 0.6)
        self._vital(t + int(lcp), "LCP", lcp, page)
        for name in r.sample(COMPONENTS, r.randint(1, 3)):
            self._emit(t + int(dcl), name, "mount", self._ln(6, 0.6), {"page": page})
        self._vital(t + int(load) + 500, "CLS", min(self._ln(0.04, 0.9), 1.5), page)
        if self.static:
            self._page_served(t, page, ttfb)
        if self.noise:
            self._page_noise(t, page, ttfb, load)
        return load

    def _page_served(self, t: int, page: str, ttfb: float) -> None:
        """static_files: the server sends the page, then the assets the browser cache lacks."""
        r = self.rng
        self._served(t + 1, page, "text/html; charset=utf-8", ttfb * r.uniform(0.3, 0.7))
        at = t + int(ttfb) + r.randint(5, 40)
        for path, content_type in ASSETS:
            if r.random() < 0.35:
                self._served(at, path, content_type, self._ln(2, 0.6))
                at += r.randint(1, 15)

    def _served(self, t: int, path: str, content_type: str, ms: float) -> None:
        """A page or asset request: a server root span (a navigation carries no traceparent)."""
        details = {"http_status": 200, "path": path, "content_type": content_type}
        event = self._emit(
            t, "http", endpoint_key("GET", path), ms, details, "success", self._span(128), self._span()
        )
        event["_tags"] = ["served"]

    def _page_noise(self, t: int, page: str, ttfb: float, load: float) -> None:
        """page_noise: what a real page sends besides its API calls while a user reads it."""
        r = self.rng
        mark = len(self.out)
        self._vital(t + int(ttfb), "TTFB", ttfb, page)
        at = t + int(load)
        for _ in range(r.randint(2, 6)):
            at += r.randint(400, 3000)
            self._emit(at, "scroll", "scroll", None, {"depth_pct": r.randint(5, 100), "page": page})
        for _ in range(r.randint(1, 3)):
            at += r.randint(200, 2000)
            self._emit(at, "click", r.choice(LONE_CLICKS), None, {"page": page})
        self._vital(at + r.randint(50, 400), "INP", self._ln(120, 0.6), page)
        for event in self.out[mark:]:
            event["_tags"] = ["noise"]

    def _vital(self, t: int, name: str, value: float, page: str) -> None:
        good, poor = VITALS[name]
        rating = "good" if value <= good else "poor" if value > poor else "needs-improvement"
        details = {"value": round(value, 4 if name == "CLS" else 1), "rating": rating, "page": page}
        self._emit(t, "web-vitals", name, None if name == "CLS" else value, details)

    def _activity(self, t: int, remaining: int) -> list[dict[str, Any]]:
        self.out = []
        if self.schedule and self.emitted >= self.schedule[-1][0] * self.total:
            _due, ep, error = self.schedule.pop()
            self._api_activity(t, ep, error)
        elif self.mismatch and self.counts["backend"] < 3 * self.counts["frontend"]:
            self._webhook(t)
        else:
            kind = self.rng.choices(ACTIVITY_KINDS, cum_weights=ACTIVITY_CUM_WEIGHTS)[0]
            if kind == "api":
                self._api_activity(t)
            elif kind == "job":
                self._job(t)
            else:
                self._frontend_ui(t, kind)
        if len(self.out) > remaining:  # the last few events: single clicks fill the exact total
            self.out = []
            self._frontend_ui(t, "click")
        return self.out

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield exactly ``total`` events, sorted by timestamp, with ISO timestamps.

        Arrivals are a Poisson process whose rate is re-aimed at the end of the span after
        every activity; about six bursts at 2.4-6x the normal rate (bursts hold ~20% of events). Events wait in a small heap
        only until the clock passes them, so memory does not grow with ``total``.
        """
        r = self.rng
        duration = self.end_ms - self.start_ms
        t = float(self.start_ms)
        emitted = activities = 0
        burst_until, multiplier = -1.0, NORMAL_RATE
        heap: list[tuple[int, int, dict[str, Any]]] = []
        seq = 0
        while emitted < self.total:
            remaining = self.total - emitted
            per_activity = emitted / activities if activities else 2.5
            base = max(0.0, self.end_ms - t) / max(1.0, remaining / per_activity)
            dt = r.expovariate(1.0) * base / multiplier
            t += dt
            if t > burst_until:
                multiplier = NORMAL_RATE
                if r.random() < dt / max(1.0, duration / 6):
                    burst_until = t + max(2000.0, duration * r.uniform(0.005, 0.015))
                    multiplier = r.uniform(2, 5)
            now = int(t)
            while heap and heap[0][0] <= now:
                yield self._release(heapq.heappop(heap)[2])
            batch = self._activity(now, remaining)
            activities += 1
            emitted += len(batch)
            self.emitted = emitted
            for event in batch:
                self.counts[event["service"]] += 1
                self.census.add(event)
                seq += 1
                heapq.heappush(heap, (event["timestamp"], seq, event))
        while heap:
            yield self._release(heapq.heappop(heap)[2])

    @staticmethod
    def _release(event: dict[str, Any]) -> dict[str, Any]:
        event["timestamp"] = iso_ms(event["timestamp"])
        return event


ACTIVITY_KINDS, ACTIVITY_CUM_WEIGHTS = list(ACTIVITIES), list(itertools.accumulate(ACTIVITIES.values()))
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def log_line(event: dict[str, Any]) -> dict[str, Any]:
    """Turn a backend event into a backend_logging_config JSON log record."""
    details = event["details"]
    component = event["component"]
    code = details.get("http_status", 0)
    level = "ERROR" if event["status"] == "error" else "WARNING" if code >= 400 else "INFO"
    ms = event["duration_ms"]
    if component == "http":
        message = f"{event['action'].split(' ', 1)[0]} {details['path']} {code} in {ms:.1f} ms"
    elif component == OUTGOING_COMPONENT:
        message = f"{event['action'].split(' ', 1)[0]} {details['url']} {code} in {ms:.1f} ms"
    elif "hit" in details:
        message = f"cache {event['action']} {'hit' if details['hit'] else 'miss'} in {ms:.2f} ms"
    else:
        message = f"{component} {event['action']} took {ms:.1f} ms"
    head = {"timestamp": event["timestamp"], "level": level, "logger": f"shop.{component}"}
    return {**head, "message": message, **{k: event.get(k) for k in LOG_FIELDS}}


class EventWriter:
    """Writes events one at a time as JSON Lines or as one JSON array (streamed)."""

    def __init__(self, path: str, fmt: str) -> None:
        self.array, self.count = fmt == "json", 0
        self._fh: IO[str] = open(path, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._fh.write("[" if self.array else "")

    def write(self, obj: dict[str, Any]) -> None:
        text = _COMPACT.encode(obj)
        self._fh.write(("\n" if not self.count else ",\n") + text if self.array else text + "\n")
        self.count += 1

    def close(self) -> None:
        self._fh.write(("\n]\n" if self.count else "]\n") if self.array else "")
        self._fh.close()


class Progress:
    """A one-line progress report on stderr, redrawn at most five times a second."""

    def __init__(self, total: int, enabled: bool, label: str) -> None:
        self.total, self.enabled, self.label = total, enabled, label
        self.started = self._last = time.monotonic()

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (force or now - self._last >= 0.2):
            self._last = now
            pct = 100.0 * done / self.total if self.total else 100.0
            rate = done / max(now - self.started, 1e-9)
            line = f"{self.label} [{'#' * int(pct / 5):<20}] {pct:5.1f}% {done:,}/{self.total:,}"
            sys.stderr.write(f"\r{line} {rate:,.0f}/s{extra}")
            sys.stderr.flush()

    def finish(self, done: int, extra: str = "") -> None:
        self.update(done, extra, force=True)
        if self.enabled:
            sys.stderr.write("\n")


@dataclass(frozen=True)
class Plan:
    """What to generate: how many events over which span, the anomalies, where they go."""

    events: int
    seed: int
    start_ms: int
    duration_ms: int
    inject: list[str]
    out_dir: str
    format: str
    post: str | None = None  # a monitor's URL to replay the events into as well
    rate: float = 500.0  # events/s with post (0 = no pacing)
    token: str | None = None
    progress: bool = False  # on stderr even when it is not a terminal
    browser_sample_rate: float = 1.0  # the share of page sessions whose API calls the browser reports


def generate(args: Plan) -> int:
    """Write (and with ``args.post`` replay) the sample events; the exit code: 1 if the monitor rejected some."""
    known = {e.key: e for e in ENDPOINTS}
    injections = [parse_injection(spec, known) for spec in args.inject]
    if len(set(injections)) != len(injections):
        raise ValueError("the same anomaly is injected twice")
    only = {i.key for i in injections if i.name == "frontend_only"}
    if any(i.key in only for i in injections if i.name in ("hidden_errors", "lost_requests")):
        raise ValueError("frontend_only leaves no backend side for hidden_errors or lost_requests")
    if any(i.name == "small_sample_errors" for i in injections) and args.events < SMALL_SAMPLE_MIN_EVENTS:
        raise ValueError(f"small_sample_errors needs --events {SMALL_SAMPLE_MIN_EVENTS} or more")
    if not MIN_SAMPLE_RATE <= args.browser_sample_rate <= 1:
        raise ValueError(f"the browser sample rate must be from {MIN_SAMPLE_RATE} to 1")
    start_ms, duration_ms = args.start_ms, args.duration_ms
    poster = MonitorPoster(args.post, args.rate, args.token) if args.post else None
    if poster:
        poster.check()
    os.makedirs(args.out_dir, exist_ok=True)
    out = functools.partial(os.path.join, args.out_dir)
    writers = {side: EventWriter(out(f"{side}_events.{args.format}"), args.format) for side in SERVICES}
    log = EventWriter(out("backend.log"), "jsonl")
    show = (args.progress or sys.stderr.isatty()) and (args.events >= 100_000 or poster is not None)
    progress = Progress(args.events, show, "posting" if poster else "generating")
    done = 0
    try:
        generator = SampleGenerator(
            args.seed, args.events, start_ms, duration_ms, injections, args.browser_sample_rate
        )
        for event in generator.events():
            writers[event["service"]].write(event)
            if event["service"] == "backend":
                log.write(log_line(event))
            if poster:
                poster.add(event)
            done += 1
            if done % 1000 == 0:
                progress.update(done, f" accepted {poster.accepted:,}" if poster else "")
        if poster:
            poster.flush()
    finally:
        for writer in (*writers.values(), log):
            writer.close()
        if poster:
            poster.close()
    progress.finish(done, f" accepted {poster.accepted:,}" if poster else "")
    with open(out("ground_truth.json"), "w", encoding="utf-8") as fh:
        truth = ground_truth(injections, generator.census, args.browser_sample_rate)
        fh.write(json.dumps(truth, indent=2) + "\n")
    counts = f"{writers['backend'].count:,} backend, {writers['frontend'].count:,} frontend"
    sys.stderr.write(f"wrote {done:,} events ({counts}) to {args.out_dir}/\n")
    if poster:
        sys.stderr.write(
            f"posted {poster.sent:,}: accepted {poster.accepted:,}, rejected {poster.rejected:,}\n"
        )
        for err in poster.errors:
            sys.stderr.write(f"  the monitor answered {err}\n")
    return 1 if poster and poster.rejected else 0
