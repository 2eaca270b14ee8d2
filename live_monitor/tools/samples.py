"""Sample generation: realistic backend and frontend events with injected anomalies, as a stream.

SampleGenerator yields events in timestamp order; ``generate`` writes ``backend_events``,
``frontend_events``, ``backend.log`` (backend_logging_config's JSON log lines) and
``ground_truth.json`` (the injected anomalies, as the comparator should report them), and
replays the events into a monitor on request (live_monitor/tools/replay.py). The command line
lives in generate_sample_logs.py.
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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from backend_logging_config import endpoint_key, normalize_route
from live_monitor.tools.replay import MonitorPoster
from live_monitor.vocabulary import SERVICES, DifferenceType

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

# name -> (difference type, default endpoint key or None for service scope, what it does)
ANOMALIES: dict[str, tuple[DifferenceType, str | None, str]] = {
    "latency_gap": ("performance", "GET /api/orders/:id", "frontend sees +800-1200 ms"),
    "hidden_errors": ("error_rate", "POST /api/cart", "backend fails ~25%%, frontend retries"),
    "lost_requests": ("error_rate", "GET /api/search", "~30%% of calls never reach the backend"),
    "frontend_only": ("pattern", EXTRA_ENDPOINT.key, "calls the backend never sees"),
    "activity_mismatch": ("activity", None, "server-to-server polling requests triple backend traffic"),
}

LOG_FIELDS = "service component action duration_ms status details trace_id span_id".split()
BACKEND_COMPONENTS = {"http", "db", "cache", "job"}
PAGES = ("/", "/products", "/products/{id}", "/cart", "/checkout", "/orders/{id}", "/search")
COMPONENTS = ("ProductList", "ProductCard", "Cart", "CheckoutForm", "SearchBar", "OrderSummary")
LONE_CLICKS = ("a.nav-link", "button#menu-toggle", "img.product-thumb", "button.filter")
QUERIES = ("shoes", "red+dress", "laptop", "coffee+mug", "headphones", "desk+lamp")
# activity kind -> weight, tuned so that normal traffic has about as many events on each side
ACTIVITIES = {"api": 46, "click": 3, "scroll": 4, "page": 3, "update": 5, "unmount": 2, "inp": 2, "job": 1}
# Outside bursts the rate runs below the mean so that bursts (6% of the time at 3.5x) average out.
NORMAL_RATE = 0.84
VITALS = {"LCP": (2500, 4000), "FCP": (1800, 3000), "CLS": (0.1, 0.25), "INP": (200, 500)}


@dataclass(frozen=True)
class Injection:
    """One requested anomaly: its name and the endpoint key it applies to (None = service)."""

    name: str
    key: str | None

    def ground_truth(self) -> dict[str, Any]:
        """The difference the comparator should report for this anomaly."""
        kind, _default, what = ANOMALIES[self.name]
        return {
            "name": self.name,
            "type": kind,
            "key": self.key,
            "expected_severity_at_least": "medium",
            "scope": "service" if self.key is None else "endpoint",
            "description": what.replace("%%", "%"),
        }


def parse_injection(spec: str, known: dict[str, Endpoint]) -> Injection:
    """Parse ``NAME[:ENDPOINT]``; ENDPOINT is ``METHOD /path`` or a path, ids may be concrete."""
    name, _, target = spec.partition(":")
    name = name.strip()
    if name not in ANOMALIES:
        raise ValueError(f"unknown anomaly {name!r}; choose from {', '.join(ANOMALIES)}")
    default = ANOMALIES[name][1]
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


@functools.lru_cache(maxsize=4)
def _iso_second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def iso_ms(ts_ms: int) -> str:
    """Format integer epoch milliseconds as ISO 8601 UTC, e.g. ``2025-01-01T00:00:00.123Z``."""
    sec, ms = divmod(ts_ms, 1000)
    return f"{_iso_second(sec)}.{ms:03d}Z"


class SampleGenerator:
    """Yields sample events in timestamp order, one user or backend activity at a time."""

    def __init__(
        self, seed: int, total: int, start_ms: int, duration_ms: int, injections: list[Injection]
    ) -> None:
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
        self.out: list[dict[str, Any]] = []  # the events of the activity being generated

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
              status: str = "success", trace: str = "", span: str = "") -> None:  # fmt: skip
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
        self.out.append(event)

    def _api_call(self, t: int) -> None:
        r = self.rng
        ep = r.choices(self.endpoints, cum_weights=self.endpoint_weights)[0]
        key, path, page = ep.key, self._concrete(ep.path), self._concrete(r.choice(PAGES))
        if ep.trigger == "form" and r.random() < 0.9:
            details = {"field_count": r.randint(6, 11), "page": "/checkout"}
            self._emit(t, "form", "submit form#checkout", None, details)
            t += r.randint(2, 30)
        elif ep.trigger and r.random() < 0.9:
            self._emit(t, "click", ep.trigger, None, {"page": page})
            t += r.randint(2, 30)
        fe: dict[str, Any] = {"http_status": 200, "path": path, "page": page}
        trace = self._span(128)
        if self._has("frontend_only", key):
            fe_ms = self._ln(ep.median_ms, ep.sigma) + self._ln(30, 0.5)
        elif self._has("lost_requests", key) and r.random() < 0.3:
            fe_ms = self._ln(ep.median_ms, ep.sigma) + self._ln(30, 0.5)
            fe.update(http_status=0, error="TypeError: Failed to fetch")
        else:
            fe_ms = self._backend_attempts(t, ep, path, fe, trace)
        if self._has("latency_gap", key):
            fe_ms += r.uniform(800, 1200)
        code = fe["http_status"]
        status = "error" if code == 0 or code >= 500 else "success"
        self._emit(t, "api", key, fe_ms, fe, status, trace, self._span())

    def _backend_attempts(self, t: int, ep: Endpoint, path: str, fe: dict[str, Any], trace: str) -> float:
        """Emit the backend side of one call, retries included; return the frontend's time."""
        r = self.rng
        hidden = self._has("hidden_errors", ep.key)
        elapsed = 0.0
        for attempt in range(3):
            overhead = max(1.0, self._ln(30, 0.5))  # network and browser time around the request
            sent = t + int(elapsed + overhead * r.uniform(0.3, 0.6)) + 1
            roll = r.random()
            if hidden and r.random() < 0.25:
                code = 500
            else:
                code = 500 if roll < 0.003 else 404 if roll < 0.003 + ep.not_found else ep.ok_status
            be_ms = round(self._ln(ep.median_ms, ep.sigma) * (0.6 if code >= 400 else 1.0), 2)
            self._backend_request(sent, ep, path, code, be_ms, trace)
            elapsed += be_ms + overhead
            fe["http_status"] = code
            if not (hidden and code == 500 and attempt < 2):
                break
            fe["retries"] = attempt + 1
            elapsed += r.uniform(100, 300)  # the client's retry back-off
        return elapsed

    def _backend_request(self, t: int, ep: Endpoint, path: str, code: int, be_ms: float, trace: str) -> None:
        r = self.rng
        span = self._span()
        status = "error" if code >= 500 else "success"
        self._emit(t, "http", ep.key, be_ms, {"http_status": code, "path": path}, status, trace, span)
        cursor = t + max(1, int(be_ms * 0.05))
        budget = be_ms * 0.7
        if ep.cache:
            hit = r.random() < 0.8 and code < 400
            ms = min(self._ln(0.8, 0.5), budget * 0.2)
            details = {"hit": hit, "key": ep.cache.split(" ", 1)[1], "parent_span_id": span}
            self._emit(cursor, "cache", ep.cache, ms, details, "success", trace, self._span())
            cursor, budget = cursor + max(1, int(ms)), budget - ms
            if hit:
                return
        queries = ep.db.split("|") if ep.db else []
        for i, action in enumerate(queries):
            ms = budget * r.uniform(0.3, 0.9) / len(queries)
            table = action.split(" ", 1)[1]
            details = {"table": table, "rows": r.randint(0, 50), "parent_span_id": span}
            failed = code >= 500 and i == len(queries) - 1
            self._emit(
                cursor, "db", action, ms, details, "error" if failed else "success", trace, self._span()
            )
            cursor += max(1, int(ms))

    def _job(self, t: int, heavy: bool) -> None:
        trace, span = self._span(128), self._span()
        if heavy:  # another service polling this one: server requests no browser call made
            details = {"http_status": 200, "path": "/api/payments/status", "caller": "payments-worker"}
            self._emit(
                t, "http", "GET /api/payments/status", self._ln(120, 0.6), details, "success", trace, span
            )
        else:
            self._emit(t, "job", "sync inventory", self._ln(120, 0.6), {}, "success", trace, span)
        for i in range(self.rng.randint(1, 3)):
            component, act = ("db", "query payments") if i % 2 == 0 else ("cache", "set payment")
            details = {"parent_span_id": span}
            self._emit(
                t + 2 + i * 5, component, act, self._ln(4, 0.8), details, "success", trace, self._span()
            )

    def _frontend_ui(self, t: int, kind: str) -> None:
        r = self.rng
        page = self._concrete(r.choice(PAGES))
        if kind == "click":
            self._emit(t, "click", r.choice(LONE_CLICKS), None, {"page": page})
        elif kind == "scroll":
            self._emit(t, "scroll", "scroll", None, {"depth_pct": r.randint(5, 100), "page": page})
        elif kind == "page":
            ttfb = self._ln(180, 0.5)
            dcl = ttfb + self._ln(600, 0.5)
            load = dcl + self._ln(400, 0.6)
            timings = {"ttfb_ms": ttfb, "dom_content_loaded_ms": dcl, "load_ms": load}
            details = {"page": page, **{k: round(v, 1) for k, v in timings.items()}}
            self._emit(t, "page", "load", load, details)
            fcp = ttfb + self._ln(700, 0.4)
            self._vital(t + int(fcp), "FCP", fcp, page)
            lcp = fcp + self._ln(600, 0.6)
            self._vital(t + int(lcp), "LCP", lcp, page)
            for name in r.sample(COMPONENTS, r.randint(1, 3)):
                self._emit(t + int(dcl), name, "mount", self._ln(6, 0.6), {"page": page})
            self._vital(t + int(load) + 500, "CLS", min(self._ln(0.04, 0.9), 1.5), page)
        elif kind == "inp":
            self._vital(t, "INP", self._ln(120, 0.6), page)
        else:  # a component update or unmount
            ms = self._ln(2.5 if kind == "update" else 0.4, 0.7)
            self._emit(t, r.choice(COMPONENTS), kind, ms, {"page": page})

    def _vital(self, t: int, name: str, value: float, page: str) -> None:
        good, poor = VITALS[name]
        rating = "good" if value <= good else "poor" if value > poor else "needs-improvement"
        details = {"value": round(value, 4 if name == "CLS" else 1), "rating": rating, "page": page}
        self._emit(t, "web-vitals", name, None if name == "CLS" else value, details)

    def _activity(self, t: int, remaining: int) -> list[dict[str, Any]]:
        self.out = []
        if self.mismatch and self.counts["backend"] < 3 * self.counts["frontend"]:
            self._job(t, heavy=True)
        else:
            kind = self.rng.choices(ACTIVITY_KINDS, cum_weights=ACTIVITY_CUM_WEIGHTS)[0]
            if kind == "api":
                self._api_call(t)
            elif kind == "job":
                self._job(t, heavy=False)
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
            for event in batch:
                self.counts[event["service"]] += 1
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


def generate(args: Plan) -> int:
    """Write (and with ``args.post`` replay) the sample events; the exit code: 1 if the monitor rejected some."""
    known = {e.key: e for e in ENDPOINTS}
    injections = [parse_injection(spec, known) for spec in args.inject]
    if len(set(injections)) != len(injections):
        raise ValueError("the same anomaly is injected twice")
    only = {i.key for i in injections if i.name == "frontend_only"}
    if any(i.key in only for i in injections if i.name in ("hidden_errors", "lost_requests")):
        raise ValueError("frontend_only leaves no backend side for hidden_errors or lost_requests")
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
        for event in SampleGenerator(args.seed, args.events, start_ms, duration_ms, injections).events():
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
        fh.write(json.dumps([i.ground_truth() for i in injections], indent=2) + "\n")
    counts = f"{writers['backend'].count:,} backend, {writers['frontend'].count:,} frontend"
    sys.stderr.write(f"wrote {done:,} events ({counts}) to {args.out_dir}/\n")
    if poster:
        sys.stderr.write(
            f"posted {poster.sent:,}: accepted {poster.accepted:,}, rejected {poster.rejected:,}\n"
        )
        for err in poster.errors:
            sys.stderr.write(f"  the monitor answered {err}\n")
    return 1 if poster and poster.rejected else 0
