"""GET /api/live-execution/labels: the releases and environments the stored events carry, what
the dashboard's release and environment filter offers, on the memory store and a real Redis."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from live_monitor.vocabulary import API, EVENTS_PATH, OPENAPI_PATH
from tests.helpers import event


@pytest.fixture(params=["memory", "redis"])
def store_app(request: pytest.FixtureRequest) -> Any:
    """A monitor app on the memory store or on a real redis-server."""
    settings = {"store": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    return request.getfixturevalue("make_app")(settings)


def labelled(service: str, release: str | None, environment: str | None, at: float) -> dict[str, Any]:
    """One event of ``release`` in ``environment`` (None: without it) at epoch ``at``."""
    found = {**event(service, "http", "GET /api/x", 10.0), "timestamp": at}
    found.update({k: v for k, v in (("release", release), ("environment", environment)) if v})
    return found


def test_each_release_and_environment_is_counted_the_latest_seen_first(store_app: Any) -> None:
    client = store_app.test_client()
    now = 1_800_000_000.0
    batch = [
        *(labelled("backend", "web@1.4.1", "production", now - 60) for _ in range(3)),
        labelled("frontend", "web@1.4.2", "staging", now - 30),
        labelled("backend", "web@1.4.2", None, now - 10),
        labelled("frontend", None, None, now),  # an event without labels offers none
    ]
    assert client.post(EVENTS_PATH, json=batch).json["accepted"] == 6
    answer = client.get(f"{API}/labels").json
    assert answer["scanned"] == 6
    assert answer["releases"] == [
        {"value": "web@1.4.2", "events": 2, "last_seen": now - 10},
        {"value": "web@1.4.1", "events": 3, "last_seen": now - 60},
    ]
    assert [(e["value"], e["events"]) for e in answer["environments"]] == [("staging", 1), ("production", 3)]
    components = client.get(OPENAPI_PATH).json["components"]
    jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/LabelsAnswer", "components": components}
    ).validate(answer)


def test_a_monitor_without_labelled_events_offers_none(client: Any) -> None:
    assert client.get(f"{API}/labels").json == {"releases": [], "environments": [], "scanned": 0}
