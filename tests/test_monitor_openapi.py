"""The API description is served, valid, and the API it describes never answers 5xx to fuzzing."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from live_execution_monitor import create_app
from live_monitor.web.openapi import openapi

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
