"""The API description is served, states the limits the monitor enforces, and the API passes
every schemathesis check against it."""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, CheckContext, run_checks_for
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.specs.openapi import checks

from live_execution_monitor import create_app
from live_monitor.model.events import MAX_EPOCH, MIN_EPOCH
from live_monitor.vocabulary import (
    API,
    EVENTS_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    OPENAPI_PATH,
    STREAM_PATH,
    is_own_path,
)
from live_monitor.web.openapi import DASHBOARD_LIMIT, openapi
from tests.helpers import ROOT, event, schema_validator

TOKEN, INGEST_KEY = "fuzz-token", "browser-key"
# A monitor asking for credentials, so the document declares them and ignored_auth has work.
app = create_app({"self_monitor": True, "max_body_bytes": 65_536, "token": TOKEN, "ingest_key": INGEST_KEY})
config = SchemathesisConfig.from_dict(
    {
        "headers": {"Host": "localhost"},
        "auth": {"openapi": {"bearer": {"bearer": TOKEN}, "ingestKey": {"api_key": INGEST_KEY}}},
        "generation": {"mode": "all", "max-examples": 150},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "checks": {"enabled": True},
        # The live stream never ends: its first events are read, and fewer examples sent.
        "operations": [
            {"include-path": STREAM_PATH, "max-stream-events": 1, "generation": {"max-examples": 10}}
        ],
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)


def _answer_of(response: Response) -> dict:
    return json.loads(response.content) if response.content else {}


def _only_rejected_for_details(response: Response) -> bool:
    errors = _answer_of(response).get("errors") or [{"error": ""}]
    return response.status_code == 400 and all("details: must be at most" in e["error"] for e in errors)


# Checks waived where the server enforces a rule JSON Schema cannot state: per operation and
# check, and only for the answer that rule gives (the predicate), never for a whole operation.
WAIVERS = {
    (f"POST {EVENTS_PATH}", "positive_data_acceptance"): [
        # An event's details are limited to 8 KiB as JSON: a size in bytes is no JSON Schema keyword.
        _only_rejected_for_details,
        # A body is limited in bytes (--max-body-bytes; 413): no JSON Schema keyword either.
        lambda response: response.status_code == 413,
    ],
    (f"POST {EVENTS_PATH}", "negative_data_rejection"): [
        # Too many events, in more bytes than the body limit: refused with 413, which the check does
        # not count as a rejection.
        lambda response: response.status_code == 413,
        # The valid events of a batch holding invalid ones (or too many) are kept, the others listed:
        # a 200 naming rejected events is the API's partial acceptance, not a schema violation let by.
        lambda response: response.status_code == 200 and _answer_of(response).get("rejected", 0) > 0,
    ],
}


def _waived(case, response: Response) -> list:
    """The checks waived for this answer (see WAIVERS)."""
    return [
        getattr(checks, name)
        for (label, name), excuses in WAIVERS.items()
        if label == case.operation.label and any(excuse(response) for excuse in excuses)
    ]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_passes_every_schemathesis_check(case):
    """Every check schemathesis has (RFC 9110 conformance, the answers' schemas, valid data
    accepted and invalid data refused, ignored credentials, undeclared methods), in the
    examples, coverage and fuzzing phases, with valid and invalid data."""
    response = Response.from_any(case.call())
    case.validate_response(response, excluded_checks=_waived(case, response))


def test_the_run_above_has_every_check_schemathesis_has():
    """All of them, the stateful ones too: they look for resources created and read back by id,
    which this API has none of (no links; so no stateful phase either). Only max_response_time
    is not registered: it needs a time limit, and the suite has no timed tests."""
    operation = schema[f"{API}/data"]["GET"]
    context = CheckContext(
        override=None,
        auth=None,
        headers=None,
        config=schema.config.checks_config_for(operation=operation, phase="fuzzing"),
        transport_kwargs=None,
        response_checks=run_checks_for(schema).for_responses(),
    )
    names = {check.__name__ for check in context.internals.checks}
    assert names == set(CHECKS.get_all_names()) and len(names) >= 14


def test_the_description_is_served_and_describes_every_route():
    served = app.test_client().get(OPENAPI_PATH).json
    assert served["openapi"].startswith("3.1")
    # Flask's <path:key> is OpenAPI's {key}
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if is_own_path(rule.rule)
    }
    assert routes | {HEALTH_PATH, METRICS_PATH, OPENAPI_PATH} <= set(served["paths"])
    # OTLP bodies are protobuf or OTLP JSON, which the OpenTelemetry specification describes.
    assert not any(path.startswith("/v1/") for path in served["paths"])
    assert "OpenTelemetry protocol specification" in served["info"]["description"]
    event = served["components"]["schemas"]["ExecutionEvent"]
    assert event["properties"]["component"]["maxLength"] == 128
    assert set(event["required"]) == {"service", "component", "action"}
    assert served["paths"][EVENTS_PATH]["post"]["security"] == [{"bearer": []}, {"ingestKey": []}]
    assert openapi(app.config["LIVE_MONITOR_SETTINGS"]) == served


def test_the_limits_the_settings_set_are_stated_and_hold_at_their_bounds(make_app):
    """A client generated from the document of a monitor run with other limits sends nothing
    it refuses: the bounds come from the settings, not from the document's defaults."""
    small = make_app({"history": 120, "max_events": 50, "max_batch_events": 7, "max_body_bytes": 2048})
    client = small.test_client()
    served = client.get(OPENAPI_PATH).json
    params = {p["name"]: p["schema"] for p in served["paths"][f"{API}/data"]["get"]["parameters"]}
    # limit: both sides' events, but never less than the dashboard asks for
    assert (params["history"]["maximum"], params["limit"]["maximum"]) == (120, DASHBOARD_LIMIT)
    large = make_app({"max_events": 600}).test_client().get(OPENAPI_PATH).json
    (limit,) = [p for p in large["paths"][f"{API}/data"]["get"]["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 1200
    for name, top in (("history", 120), ("limit", DASHBOARD_LIMIT)):
        assert client.get(f"{API}/data?{name}={top}").status_code == 200
        assert client.get(f"{API}/data?{name}={top + 1}").status_code == 400
    assert client.get(f"{API}/data?limit=+5").status_code == 400  # digits only, as "integer" says
    include_self = re.compile(params["include_self"]["pattern"])
    for word in ("TRUE", "no", "1", "Yes", "maybe", "2", "", "true "):
        answered = client.get(f"{API}/data", query_string={"include_self": word}).status_code
        assert answered == (200 if include_self.match(word) else 400), word
    assert served["components"]["schemas"]["Batch"]["oneOf"][0]["maxItems"] == 7
    answer = client.post(EVENTS_PATH, json=[event("backend", "db", "q", 1.0)] * 8).json
    assert (answer["accepted"], answer["rejected"]) == (7, 1)
    ingest = served["paths"][EVENTS_PATH]["post"]
    assert "at most 2,048 bytes" in ingest["responses"]["413"]["description"]
    assert "security" not in ingest and "securitySchemes" not in served["components"]  # no token


def test_the_dashboard_never_asks_data_for_more_events_than_any_monitor_serves():
    """The dashboard's largest /data limit is the least greatest limit the API states."""
    script = (ROOT / "static" / "dashboard.js").read_text()
    [asked] = re.findall(r"const limit = Math\.min\((\d+), Math\.max\(state\.eventLimit", script)
    assert int(asked) == DASHBOARD_LIMIT


# Timestamps the schema and the server both take, and both refuse (ISO forms msgspec reads,
# calendar dates, the range's ends, other digits, a trailing newline).
BOTH_TAKE = [
    "2024-02-29T12:00:00Z",
    "2024-02-29 12:00:00.123456789+0130",
    "2000-02-29t00:00:00z",
    "1971-01-01T00:00:00",
    "2999-12-30T23:59:59.999-23:59",
    0,
    MIN_EPOCH,
    1_700_000_000,
    MAX_EPOCH - 1,
]
BOTH_REFUSE = [
    "2023-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "2024-01-01",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00+01",
    "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
    "2024-01-01T00:00:00Z\n",
    "",
    1e-7,
    -1,
    MAX_EPOCH,
    True,
]
# The pattern leaves out the range's first and last days, where the offset decides.
ONLY_THE_SERVER_TAKES = ["1970-01-01T12:00:00Z", "2999-12-31T00:00:00+01:00"]


def test_the_schema_and_the_server_agree_on_every_form_and_bound_of_a_timestamp(make_app):
    client = make_app().test_client()
    validator = schema_validator(client, "ExecutionEvent")

    def verdicts(stamp) -> tuple[bool, bool]:
        sent = {**event("backend", "db", "q", 1.0), "timestamp": stamp}
        taken = client.post(EVENTS_PATH, json=[sent]).json.get("accepted") == 1
        return validator.is_valid(sent), taken

    assert {stamp: verdicts(stamp) for stamp in BOTH_TAKE} == dict.fromkeys(BOTH_TAKE, (True, True))
    assert {str(s): verdicts(s) for s in BOTH_REFUSE} == dict.fromkeys(map(str, BOTH_REFUSE), (False, False))
    assert {s: verdicts(s) for s in ONLY_THE_SERVER_TAKES} == dict.fromkeys(
        ONLY_THE_SERVER_TAKES, (False, True)
    )


# --- the answers fit the schemas generated from their types ----------------------------------


@pytest.fixture(scope="module")
def busy_client():
    """A monitor that saw both sides disagree (differences of several types), one system sample."""
    busy = create_app({"self_monitor": True})
    client = busy.test_client()
    events = (
        [event("backend", "http", "GET /api/x", 20.0, "error" if i < 8 else "success") for i in range(30)]
        + [event("frontend", "api", "GET /api/x", 950.0) for _ in range(30)]
        + [event("frontend", "api", "GET /api/ghost", 40.0) for _ in range(30)]
        + [event("backend", "db", "SELECT x", None) for _ in range(5)]
        + [event("frontend", "click", "button", None)]
    )
    assert client.post(f"{API}/events", json={"events": events}).json["accepted"] == len(events)
    busy.extensions["live_monitor"].sampler.tick()  # a system sample and an activity point
    yield client
    busy.extensions["live_monitor"].stop()


def _answer(client, path: str) -> dict:
    response = client.get(f"{API}/{path}")
    assert response.status_code == 200
    return response.json


def test_a_data_answer_fits_the_data_schema_and_a_missing_field_does_not(busy_client):
    validator = schema_validator(busy_client, "DataAnswer")
    data = _answer(busy_client, "data")
    assert {d["type"] for d in data["differences"]} >= {"performance", "error_rate", "pattern"}
    assert {r["seen_by"] for r in data["endpoints"]} == {"both", "frontend"}
    assert data["system"] and data["system_history"] and data["activity_history"] and data["recent_events"]
    validator.validate(data)
    schema_validator(busy_client, "DataAnswer", closed=True).validate(data)  # no field left undescribed
    for broken in (
        _without(data, "backend", "total_events"),
        _without(data, "comparison", "performance_ratio"),
        _without(data, "recent_events", 0, "service"),
        _without(data, "endpoints", 0, "gap_p50_ms"),
        _without(data, "differences", 0, "severity"),
        _without(data, "system", "cpu_percent"),
        {**data, "differences_count": "3"},
    ):
        assert not validator.is_valid(broken)


def test_a_differences_answer_fits_its_schema_and_a_type_outside_the_vocabulary_does_not(busy_client):
    validator = schema_validator(busy_client, "DifferencesAnswer")
    answer = _answer(busy_client, "differences")
    assert answer["count"] == len(answer["differences"]) >= 3
    validator.validate(answer)
    assert not validator.is_valid(_without(answer, "differences", 0, "message"))
    assert not validator.is_valid(_without(answer, "count"))
    first = answer["differences"][0]
    for field, word in (("type", "latency"), ("severity", "critical"), ("scope", "global")):
        assert not validator.is_valid({**answer, "differences": [{**first, field: word}]})


def _without(answer: dict, *path) -> dict:
    """A deep copy of ``answer`` with the item at ``path`` (keys and list indexes) removed."""
    copy = json.loads(json.dumps(answer))
    *parents, last = path
    node = copy
    for step in parents:
        node = node[step]
    del node[last]
    return copy


def test_a_status_answer_fits_its_schema_and_a_counter_as_text_does_not(busy_client):
    validator = schema_validator(busy_client, "StatusAnswer", closed=True)  # every field described
    status = _answer(busy_client, "status")
    assert status["accepted"] > 0
    validator.validate(status)
    assert not validator.is_valid({**status, "otlp_grpc": {"port": 4317, "listening": "no"}})
    assert not validator.is_valid({**status, "accepted": "96"})
    assert not validator.is_valid(_without(status, "totals"))
