"""The API description is served, valid, and the API it describes never answers 5xx to fuzzing."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from live_execution_monitor import create_app
from live_monitor.vocabulary import API
from live_monitor.web.openapi import openapi
from tests.helpers import event

app = create_app({"self_monitor": True, "max_body_bytes": 65_536})
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_server_error(case):
    response = case.call(headers={"Host": "localhost"})
    case.validate_response(response, checks=[not_a_server_error])


def test_the_description_is_served_and_describes_every_route():
    client = create_app({"self_monitor": False}).test_client()
    served = client.get("/api/openapi.json").json
    assert served["openapi"].startswith("3.1")
    routes = {str(rule) for rule in app.url_map.iter_rules() if str(rule).startswith("/api/live-execution")}
    assert routes - {"/api/live-execution/stream"} <= set(served["paths"])
    event = served["components"]["schemas"]["ExecutionEvent"]
    assert event["properties"]["component"]["maxLength"] == 128
    assert set(event["required"]) == {"service", "component", "action"}
    assert openapi() == served


def test_the_event_schema_says_epoch_seconds_and_iso_times_are_both_accepted():
    timestamp = openapi()["components"]["schemas"]["ExecutionEvent"]["properties"]["timestamp"]
    assert {t["type"] for t in timestamp["anyOf"]} == {"string", "number"}


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


def _validator(client, name: str):
    """A validator of the component ``name`` of the document the app serves."""
    served = client.get("/api/openapi.json").json
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": served["components"]}
    )


def _answer(client, path: str) -> dict:
    response = client.get(f"{API}/{path}")
    assert response.status_code == 200
    return response.json


def test_a_data_answer_fits_the_data_schema_and_a_missing_field_does_not(busy_client):
    validator = _validator(busy_client, "DataAnswer")
    data = _answer(busy_client, "data")
    assert {d["type"] for d in data["differences"]} >= {"performance", "error_rate", "pattern"}
    assert {r["seen_by"] for r in data["endpoints"]} == {"both", "frontend"}
    assert data["system"] and data["system_history"] and data["activity_history"] and data["recent_events"]
    validator.validate(data)
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
    validator = _validator(busy_client, "DifferencesAnswer")
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
