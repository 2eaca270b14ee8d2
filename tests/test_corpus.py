"""The recorded corpus, replayed: what real clients sent, and what the monitor makes of it.

Each scenario under tests/fixtures/corpus/ holds the requests real clients made (the official
OpenTelemetry web SDK in Chromium and Python SDK with the Flask and requests
instrumentations, and examples/shop with the project's own loggers), recorded once by
tests/fixtures/corpus/record.py, and a manifest naming its ground truth. Each is posted, in
order and with its timestamps moved to now, to a fresh monitor; then the live answers
(``/data``, ``/differences``) and the report tool run on a ``/data`` export must find each
injected anomaly with its type and endpoint key, and raise nothing medium or high on healthy
traffic, page noise included.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

import execution_difference_report
from live_monitor.vocabulary import severity_rank
from tests.helpers import API, ROOT

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
SCENARIOS = sorted(p.parent.name for p in CORPUS.glob("*/manifest.json"))
HEALTHY = [name for name in SCENARIOS if name.endswith("-healthy")]
ANOMALOUS = [name for name in SCENARIOS if not name.endswith("-healthy")]
OTEL = [name for name in SCENARIOS if name.startswith("otel-")]
SIDES = ("backend", "frontend")
BROWSER, SERVER = "shop-web", "shop-api"  # the recorded OpenTelemetry services
ROUTE_KEYS = {"GET /api/orders/:id", "GET /api/users/:name", "POST /api/cart"}


def test_the_corpus_is_there_and_modest() -> None:
    """Every scenario the issue names is recorded, and the fixtures stay small."""
    assert set(SCENARIOS) == {
        "otel-healthy",
        "otel-tail-slow",
        "otel-hidden-errors",
        "otel-lost-calls",
        "shop-healthy",
        "shop-tail-slow",
        "shop-hidden-errors",
        "shop-lost-calls",
    }
    size = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    assert size < 2_000_000, size


# -- replay ----------------------------------------------------------------------------------------


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    return zlib.decompress(body) if encoding == "deflate" else body


def _encode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    return zlib.compress(body) if encoding == "deflate" else body


def _proto_times(message: Message, shift: Callable[[int], int]) -> None:
    """Apply ``shift`` to every ``*_unix_nano`` field of ``message``, nested ones included."""
    for field, value in message.ListFields():
        if field.name.endswith("_unix_nano"):
            setattr(message, field.name, shift(value))
        elif field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                _proto_times(item, shift)


def _json_times(node: Any, shift: Callable[[int], int]) -> None:
    """Apply ``shift`` to every ``...UnixNano`` value of an OTLP JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("UnixNano") and value not in (None, "", 0, "0"):
                node[key] = str(shift(int(value)))
            else:
                _json_times(value, shift)
    elif isinstance(node, list):
        for item in node:
            _json_times(item, shift)


def _events(document: Any) -> list[dict[str, Any]]:
    return document if isinstance(document, list) else document["events"]


def _event_ns(event: dict[str, Any]) -> int:
    stamp = event["timestamp"]
    if isinstance(stamp, (int, float)):
        return round(stamp * 1e9)
    return round(datetime.fromisoformat(stamp).timestamp() * 1e9)


@dataclass
class Request:
    """One recorded request, decoded: an OTLP message (protobuf or JSON) or a logger batch."""

    path: str
    content_type: str
    content_encoding: str
    payload: Any

    @classmethod
    def load(cls, folder: Path, entry: dict[str, str]) -> Request:
        raw = _decode((folder / entry["file"]).read_bytes(), entry["content_encoding"])
        if "protobuf" in entry["content_type"]:
            payload: Any = trace_service_pb2.ExportTraceServiceRequest()
            payload.ParseFromString(raw)
        else:
            payload = json.loads(raw)
        return cls(entry["path"], entry["content_type"], entry["content_encoding"], payload)

    def times(self) -> list[int]:
        """Every timestamp it holds, in Unix nanoseconds."""
        found: list[int] = []
        self.shift(lambda ns: found.append(ns) or ns)
        return found

    def shift(self, move: Callable[[int], int]) -> None:
        """Move every timestamp it holds by ``move`` (Unix nanoseconds in, out)."""
        if isinstance(self.payload, Message):
            _proto_times(self.payload, move)
        elif self.path.startswith("/v1/"):
            _json_times(self.payload, move)
        else:
            for event in _events(self.payload):
                stamp = datetime.fromtimestamp(move(_event_ns(event)) / 1e9, UTC)
                event["timestamp"] = stamp.isoformat(timespec="microseconds")

    def body(self) -> bytes:
        """The bytes to post, in the recorded encoding."""
        if isinstance(self.payload, Message):
            data = self.payload.SerializeToString()
        else:
            data = json.dumps(self.payload).encode()
        return _encode(data, self.content_encoding)


@dataclass
class Replayed:
    """A scenario after its replay: its manifest, the live answers and the report's."""

    manifest: dict[str, Any]
    data: dict[str, Any]
    differences: list[dict[str, Any]]
    report: dict[str, Any]

    def verdicts(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The differences found live and by the report, each named for the failure message."""
        return [("live", self.differences), ("report", self.report["differences"])]


def load(name: str) -> tuple[dict[str, Any], list[Request]]:
    """A scenario's manifest and requests, their timestamps moved so the latest is now."""
    folder = CORPUS / name
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    requests = [Request.load(folder, entry) for entry in manifest["requests"]]
    latest = max(ns for request in requests for ns in request.times())
    offset = round(datetime.now(UTC).timestamp() * 1e9) - latest
    for request in requests:
        request.shift(lambda ns: ns + offset)
    return manifest, requests


def post(client: FlaskClient, request: Request) -> None:
    """Post one recording as its client did; the monitor must take all of it."""
    headers = {"Content-Type": request.content_type}
    if request.content_encoding:
        headers["Content-Encoding"] = request.content_encoding
    answer = client.post(request.path, data=request.body(), headers=headers)
    assert answer.status_code == 200, (request.path, answer.status_code, answer.get_data(as_text=True))
    if isinstance(request.payload, Message):
        taken = trace_service_pb2.ExportTraceServiceResponse.FromString(answer.get_data())
        assert taken.partial_success.rejected_spans == 0, taken
    elif request.path.startswith("/v1/"):
        assert not (answer.json or {}).get("partialSuccess", {}).get("rejectedSpans"), answer.json
    else:
        assert answer.json["accepted"] == len(_events(request.payload)), answer.json


def report_of(export: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The report tool's JSON report on a saved ``/data`` export (both sides in one file)."""
    source, target = folder / "data.json", folder / "report.json"
    source.write_text(json.dumps(export), encoding="utf-8")
    argv = [
        "--backend-data",
        str(source),
        "--frontend-data",
        str(source),
        "--format",
        "json",
        "-o",
        str(target),
    ]
    assert execution_difference_report.main(argv) == 0
    report: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return report


@pytest.fixture(scope="module")
def replay(
    make_app_module: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Replayed]:
    """Replay a scenario into a fresh monitor, once per module: ``replay(name)``."""

    @functools.cache
    def run(name: str) -> Replayed:
        manifest, requests = load(name)
        client = make_app_module().test_client()
        for request in requests:
            post(client, request)
        data = client.get(f"{API}/data?limit=20000").json
        assert len(data["recent_events"]) < 20_000  # the export holds every event
        differences = client.get(f"{API}/differences").json["differences"]
        report = report_of(data, tmp_path_factory.mktemp(name))
        return Replayed(manifest, data, differences, report)

    return run


@pytest.fixture(scope="module")
def make_app_module() -> Iterator[Callable[..., Any]]:
    """Monitor apps for this module (self-monitoring off, so counts are the corpus's alone)."""
    from live_execution_monitor import create_app

    apps: list[Any] = []

    def build() -> Any:
        app = create_app({"self_monitor": False, "max_events": 20_000})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["live_monitor"].stop()


def _brief(differences: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    return [(d["severity"], d["type"], d["key"], d["message"]) for d in differences]


# -- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_traffic_raises_no_medium_or_high_difference(
    replay: Callable[[str], Replayed], name: str
) -> None:
    seen = replay(name)
    assert seen.manifest["expected"] == [] and seen.manifest["quiet"] == ["medium", "high"]
    for where, differences in seen.verdicts():
        loud = [d for d in differences if d["severity"] in ("medium", "high")]
        assert loud == [], (where, _brief(loud))


@pytest.mark.parametrize("name", ANOMALOUS)
def test_an_anomaly_leaves_the_other_endpoints_quiet(replay: Callable[[str], Replayed], name: str) -> None:
    """The untouched endpoints, and the server's calls to its payment provider, stay below the
    manifest's ``quiet`` severities while one endpoint misbehaves."""
    seen = replay(name)
    keys = {expected["key"] for expected in seen.manifest["expected"]}
    for where, differences in seen.verdicts():
        loud = [
            d
            for d in differences
            if d["scope"] == "endpoint" and d["key"] not in keys and d["severity"] in seen.manifest["quiet"]
        ]
        assert loud == [], (where, _brief(loud))


@pytest.mark.parametrize("name", ANOMALOUS)
def test_each_injected_anomaly_is_found_on_its_endpoint(replay: Callable[[str], Replayed], name: str) -> None:
    """Found live and in the report, with its type and key, at least as severe as the manifest's
    ``min_severity`` where it names one (hidden errors on 100+ calls are no "low" matter)."""
    seen = replay(name)
    assert seen.manifest["expected"], "an anomalous scenario names what must be found"
    for where, differences in seen.verdicts():
        found = {(d["type"], d["key"]): d["severity"] for d in differences}
        for expected in seen.manifest["expected"]:
            severity = found.get((expected["type"], expected["key"]))
            assert severity, (where, expected, _brief(differences))
            floor = expected.get("min_severity", "low")
            assert severity_rank(severity) >= severity_rank(floor), (where, expected, severity)


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_live_monitor_and_the_report_agree(replay: Callable[[str], Replayed], name: str) -> None:
    """The dashboard's differences and endpoint rows say what the report says of the same data:
    the same verdicts, and per endpoint the same counts, errors, times and matched requests."""
    seen = replay(name)
    live = sorted((d["type"], d["key"] or "", d["severity"]) for d in seen.differences)
    assert live == sorted((d["type"], d["key"] or "", d["severity"]) for d in seen.report["differences"])
    assert seen.data["differences_count"] == len(seen.differences)
    assert [_row(r) for r in seen.data["endpoints"]] == [_row(r) for r in seen.report["summary"]["endpoints"]]


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """An endpoint row without its rates per minute (live: over the window; report: the file's span)."""
    sides = {side: {k: v for k, v in (row[side] or {}).items() if k != "per_minute"} for side in SIDES}
    return {**row, **sides}


# -- the official SDKs' traces ------------------------------------------------------------------


def _from(data: dict[str, Any], service_name: str) -> list[dict[str, Any]]:
    return [e for e in data["recent_events"] if (e.get("details") or {}).get("service.name") == service_name]


def recorded_spans(name: str, service_name: str) -> list[dict[str, Any]]:
    """The spans ``service_name`` sent in a scenario, in the OTLP JSON shape whatever the encoding."""
    spans: list[dict[str, Any]] = []
    for request in load(name)[1]:
        if not request.path.startswith("/v1/"):
            continue
        payload = request.payload
        document = MessageToDict(payload) if isinstance(payload, Message) else payload
        for resource in document.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
            if attrs["service.name"].get("stringValue") == service_name:
                spans += [span for scope in resource["scopeSpans"] for span in scope["spans"]]
        if isinstance(payload, Message):  # protobuf ids come out of MessageToDict in base64
            for span in spans:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if len(span.get(name) or "") not in (0, 16, 32):
                        span[name] = base64.b64decode(span[name]).hex()
    return spans


def server_requests(name: str) -> dict[str, int]:
    """The server's recorded API requests by route key: the METHOD and the Flask route it reported."""
    counts: dict[str, int] = {}
    for span in recorded_spans(name, SERVER):
        key = ROUTES.get(span["name"])
        if span["kind"] in (2, "SPAN_KIND_SERVER") and key:
            counts[key] = counts.get(key, 0) + 1
    return counts


URL_KEYS = ("http.url", "url.full")
ROUTES = {  # the Flask instrumentation names a SERVER span "METHOD route"
    "GET /api/orders/<int:order_id>": "GET /api/orders/:id",
    "GET /api/users/<name>": "GET /api/users/:name",
    "POST /api/cart": "POST /api/cart",
}


@pytest.mark.parametrize("name", OTEL)
def test_the_recorded_traces_run_browser_server_downstream(name: str) -> None:
    """What the replay rests on, checked in the recording itself: each server API request is
    the child of one browser call and the parent of one call to the payment provider."""
    browser = {span["spanId"] for span in recorded_spans(name, BROWSER)}
    server = recorded_spans(name, SERVER)
    requests = {s["spanId"]: s for s in server if s["name"] in ROUTES}
    assert {s["parentSpanId"] for s in requests.values()} <= browser
    downstream = [s for s in server if s["kind"] in (3, "SPAN_KIND_CLIENT")]
    assert sorted(s["parentSpanId"] for s in downstream) == sorted(requests)
    # the Python instrumentations send the older HTTP conventions by default (http.url)
    urls = [a["value"]["stringValue"] for s in downstream for a in s["attributes"] if a["key"] in URL_KEYS]
    assert len(urls) == len(downstream)
    assert {urlsplit(url).hostname for url in urls} == {"payments.example.com"}


@pytest.mark.parametrize("name", OTEL)
def test_official_sdk_browser_calls_are_keyed_by_the_server_route(
    replay: Callable[[str], Replayed], name: str
) -> None:
    """Every span the web SDK sent is one browser API call, under the route key the server
    reported (``/api/users/alice`` and ``/bob`` meet as ``/api/users/:name``); the server's
    own outgoing calls to the payment provider are never counted as browser calls."""
    data = replay(name).data
    browser = _from(data, BROWSER)
    assert len(browser) == len(recorded_spans(name, BROWSER))
    assert {e["service"] for e in browser} == {"frontend"}
    assert sorted({e["action"] for e in browser}) == sorted(ROUTE_KEYS)
    assert [e for e in _from(data, SERVER) if e["service"] == "frontend"] == []


@pytest.mark.parametrize("name", OTEL)
def test_official_sdk_traces_match_every_browser_call_to_its_server_request(
    replay: Callable[[str], Replayed], name: str
) -> None:
    """browser -> server -> payment provider: each server API request was one browser call of
    its trace, and /data's endpoint rows count every one of them as matched, under the server's
    route key, whatever else (the downstream call) the trace holds."""
    rows = {row["key"]: row for row in replay(name).data["endpoints"]}
    expected = server_requests(name)
    assert set(expected) == ROUTE_KEYS
    matched = {key: (rows.get(key) or {}).get("matched_requests") for key in expected}
    assert matched == expected
