"""Every place that names the monitor's words agrees with live_monitor.vocabulary.

Adding a difference type (or a severity, or a side) is one edit in the vocabulary; these
tests then fail for each place that does not know the new word yet: the Prometheus
metrics, the OpenAPI document, the report's titles and recommendations, and the
dashboard's labels, styles and own-traffic rule (read from the files the browser loads).
"""

from __future__ import annotations

import json
import re
import subprocess
from itertools import product
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from live_execution_monitor import create_app
from live_monitor import vocabulary
from live_monitor.tools import render
from live_monitor.vocabulary import API, DIFFERENCE_TYPES, OWN_TRAFFIC_TAG, SCOPES, SERVICES, SEVERITIES

STATIC = Path(__file__).resolve().parent.parent / "static"


@pytest.fixture(scope="module")
def client():
    app = create_app({"self_monitor": True})
    yield app.test_client()
    app.extensions["live_monitor"].stop()


# --- Prometheus ------------------------------------------------------------------------------


def _label_values(client, family: str, *labels: str) -> set[tuple[str, ...]]:
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    found = {
        tuple(sample.labels[label] for label in labels)
        for metric in text_string_to_metric_families(scrape.get_data(as_text=True))
        for sample in metric.samples
        if metric.name == family
    }
    assert found, f"no {family} series in the scrape"
    return found


def test_the_differences_gauge_has_a_series_for_every_type_and_severity(client):
    found = _label_values(client, "live_monitor_differences", "type", "severity")
    assert found == set(product(DIFFERENCE_TYPES, SEVERITIES))


def test_the_per_service_metrics_have_a_series_for_every_side(client):
    for family in ("live_monitor_events", "live_monitor_window_events", "live_monitor_stored_events"):
        assert _label_values(client, family, "service") == {(s,) for s in SERVICES}, family


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_openapi_document_names_every_type_severity_and_scope(client):
    served = client.get("/api/openapi.json").json
    difference = served["components"]["schemas"]["Difference"]["properties"]
    assert set(difference["type"]["enum"]) == set(DIFFERENCE_TYPES)
    assert set(difference["severity"]["enum"]) == set(SEVERITIES)
    assert set(difference["scope"]["enum"]) == set(SCOPES)
    parameters = served["paths"][f"{API}/differences"]["get"]["parameters"]
    (floor,) = [p for p in parameters if p["name"] == "min_severity"]
    assert set(floor["schema"]["enum"]) == set(SEVERITIES)


def test_the_differences_route_takes_every_severity_as_a_floor(client):
    for severity in SEVERITIES:
        assert client.get(f"{API}/differences?min_severity={severity}").status_code == 200, severity


# --- the report ------------------------------------------------------------------------------


def test_the_report_has_a_title_for_every_type():
    assert set(render.TITLES) == set(DIFFERENCE_TYPES)


def test_the_report_recommends_something_for_every_type_and_only_known_words():
    keys = set(render.RECOMMENDATIONS)
    assert {kind for kind, _, _ in keys} == set(DIFFERENCE_TYPES)
    assert {scope for _, scope, _ in keys} <= {*SCOPES, "any"}
    assert {side for _, _, side in keys} <= set(SERVICES)


# --- the dashboard ---------------------------------------------------------------------------

# Runs dashboard-format.js as the page does (a classic script publishing window.LiveDashboard)
# and prints what it published for difference types.
FORMAT_PROBE = """
const vm = require("node:vm");
const fs = require("node:fs");
const context = vm.createContext({ window: {} });
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context);
const format = context.window.LiveDashboard.format;
process.stdout.write(JSON.stringify({ labels: format.TYPE_LABELS }));
"""


def test_the_dashboard_has_a_label_for_every_type():
    out = subprocess.run(
        ["node", "-e", FORMAT_PROBE, str(STATIC / "dashboard-format.js")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    labels = json.loads(out.stdout)["labels"]
    assert set(labels) == set(DIFFERENCE_TYPES)
    assert all(isinstance(text, str) and text.strip() for text in labels.values())


def _js_list(source: str, name: str) -> list[str]:
    """The strings of ``const NAME = ["a", "b"];`` in ``source``: nothing else may be in the brackets."""
    found = re.search(rf"const {name} = \[([^\]]*)\];", source)
    assert found, f"no `const {name} = [...];`"
    items = [item.strip() for item in found.group(1).split(",") if item.strip()]
    assert all(re.fullmatch(r'"[^"\\]*"', item) for item in items), items
    return [json.loads(item) for item in items]


def test_the_dashboard_ranks_and_styles_every_severity():
    dashboard = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    assert _js_list(dashboard, "SEVERITIES") == list(SEVERITIES)  # in rising order
    css = (STATIC / "dashboard.css").read_text(encoding="utf-8")
    for severity in SEVERITIES:
        assert re.search(rf"\.sev-{severity}\s*\{{", css), f".sev-{severity} has no style"
        assert re.search(rf"\.sev-badge-{severity}\s*\{{", css), f".sev-badge-{severity} has no style"


def test_the_dashboard_colours_and_styles_every_side():
    charts = (STATIC / "dashboard-charts.js").read_text(encoding="utf-8")
    colors = re.search(r"const COLORS = \{([^}]*)\};", charts)
    assert colors, "no `const COLORS = {...};` in dashboard-charts.js"
    assert set(SERVICES) <= set(re.findall(r"^\s*(\w+):", colors.group(1), re.MULTILINE))
    css = (STATIC / "dashboard.css").read_text(encoding="utf-8")
    for side in SERVICES:
        for kind in ("seen", "side"):
            assert re.search(rf"\.{kind}-{side}\s*\{{", css), f".{kind}-{side} has no style"


# --- the monitor's own traffic ---------------------------------------------------------------


def test_the_dashboard_reads_the_own_traffic_tag_the_server_writes(client):
    dashboard = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    rule = re.search(
        r"function isOwn\(event\) \{\s*return Boolean\(event\.details && event\.details\.(\w+) === true\);\s*\}",
        dashboard,
    )
    assert rule, "isOwn is no longer the tag test alone"
    assert rule.group(1) == OWN_TRAFFIC_TAG
    client.get(f"{API}/status")  # self-monitoring records the server's side of this request
    recent = client.get(f"{API}/data?limit=50").json["recent_events"]
    own = [e for e in recent if e["action"] == f"GET {API}/status"]
    assert own and all(e["details"].get(OWN_TRAFFIC_TAG) is True for e in own)
    assert all(vocabulary.is_own_traffic(e["details"]) for e in own)


def test_the_clients_post_to_the_api_path_the_monitor_serves():
    """The copyable backend file, the browser logger and the dashboard each write the API path
    themselves (they cannot import the package): each must be the vocabulary's."""
    import backend_logging_config

    root = STATIC.parent
    assert backend_logging_config.MONITOR_BASE_PATH == API
    assert backend_logging_config.EVENTS_PATH == vocabulary.EVENTS_PATH
    logger = (root / "frontend_logging_config.ts").read_text()
    assert re.search(r'^const INGEST_PATH = "([^"]+)";$', logger, re.M)[1] == vocabulary.EVENTS_PATH
    dashboard = (STATIC / "dashboard.js").read_text()
    assert re.search(r'const API_PATH = "([^"]+)";', dashboard)[1] == API


def test_the_browser_logger_names_api_calls_and_dependencies_as_the_monitor_does():
    """The logger's fetch/XHR events meet the server's requests only as ``api`` events, and its
    third-party calls are dependencies only under the backend's outgoing-call component."""
    network = (STATIC.parent / "frontend" / "network.ts").read_text()
    assert (
        re.search(r'^const API_COMPONENT = "([^"]+)";$', network, re.M)[1]
        == vocabulary.ENDPOINT_COMPONENTS["frontend"]
    )
    assert (
        re.search(r'^const OUTGOING_COMPONENT = "([^"]+)";$', network, re.M)[1]
        == vocabulary.OUTGOING_COMPONENT
    )
