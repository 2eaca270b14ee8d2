"""Which side a span is on, and its key, through the real /v1/traces route: a browser SDK's CLIENT
spans are the frontend's calls, a backend's CLIENT spans its outgoing calls (keyed with their
host), and a SERVER span is keyed by its http.route template, which the browser's calls of the
same route are then keyed by too. The official Python SDK's side of it (a webjs resource and a
plain one in one trace) is in test_web_otlp.py."""

from __future__ import annotations

import pytest

from tests.helpers import API, CLIENT, SERVER, attr, export, post, recent, span

CHARGE = "https://payments.example.com/v1/charges/ch_3Nabc123XYZ"


def sides(client) -> set[tuple[str, str, str]]:
    return {(e["service"], e["component"], e["action"]) for e in recent(client)}


@pytest.mark.parametrize(
    ("attrs", "key"),
    [
        ({"http.request.method": "POST", "url.full": CHARGE}, "POST payments.example.com/v1/charges/:id"),
        (
            {"http.method": "GET", "http.url": "https://Payments.Example.com:8443/v1/x"},
            "GET payments.example.com:8443/v1/x",
        ),
        (
            {
                "http.request.method": "GET",
                "server.address": "inventory",
                "server.port": 8080,
                "url.path": "/items/7",
            },
            "GET inventory:8080/items/:id",
        ),
        (
            {"http.method": "GET", "net.peer.name": "db-api", "net.peer.port": 443, "http.target": "/q?a=1"},
            "GET db-api/q",
        ),
        (
            {"http.method": "GET", "http.host": "stock:9000", "net.peer.port": 9000, "http.target": "/s"},
            "GET stock:9000/s",
        ),
        (
            {"http.request.method": "GET", "server.address": "::1", "server.port": 8080, "url.path": "/v"},
            "GET [::1]:8080/v",
        ),
    ],
)
def test_a_backends_client_spans_are_its_outgoing_calls_keyed_with_their_host(make_app, attrs, key):
    client = make_app().test_client()
    assert post(client, export(span(CLIENT, attrs))).json == {}
    assert sides(client) == {("backend", "http-client", key)}
    data = client.get(f"{API}/data").json
    assert data["frontend"]["window_events"] == 0  # never a browser call, never compared with one
    assert not any(row["seen_by"] in ("frontend", "both") for row in data["endpoints"])


@pytest.mark.parametrize(
    "resource",
    [
        [attr("telemetry.sdk.language", "webjs")],
        [attr("browser.platform", "Linux"), attr("browser.mobile", False)],
        [attr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")],
    ],
)
def test_client_spans_from_a_browser_are_the_frontends_calls(make_app, resource):
    client = make_app().test_client()
    body = export(span(CLIENT, {"http.request.method": "GET", "url.full": "https://shop.test/api/orders/7"}))
    body["resourceSpans"][0]["resource"]["attributes"] += resource
    assert post(client, body).json == {}
    assert sides(client) == {("frontend", "api", "GET /api/orders/:id")}


@pytest.mark.parametrize(
    ("scope", "side"),
    [
        ("@opentelemetry/instrumentation-fetch", ("frontend", "api", "GET /api/orders/:id")),
        ("@opentelemetry/instrumentation-xml-http-request", ("frontend", "api", "GET /api/orders/:id")),
        (
            "opentelemetry.instrumentation.requests",
            ("backend", "http-client", "GET shop.test/api/orders/:id"),
        ),
    ],
)
def test_a_browser_instrumentations_scope_marks_a_browser_whose_resource_does_not(make_app, scope, side):
    """The web SDK set up with resourceFromAttributes({"service.name": ...}) sends no webjs."""
    client = make_app().test_client()
    body = export(span(CLIENT, {"http.request.method": "GET", "url.full": "https://shop.test/api/orders/7"}))
    body["resourceSpans"][0]["scopeSpans"][0]["scope"] = {"name": scope, "version": "0.223.0"}
    assert post(client, body).json == {}
    assert sides(client) == {side}


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("/api/users/<name>", "GET /api/users/:name"),
        ("/api/users/{slug}", "GET /api/users/:slug"),
        ("/api/users/:handle", "GET /api/users/:handle"),
        ("/api/users/<int:number>", "GET /api/users/:id"),
        ("/api/users/<uuid:token>", "GET /api/users/:id"),
        ("/api/users/{userId}", "GET /api/users/:id"),
    ],
)
def test_a_server_span_is_keyed_by_its_route_template_and_keeps_template_and_path(make_app, template, key):
    client = make_app().test_client()
    spans = [
        span(SERVER, {"http.request.method": "GET", "url.path": f"/api/users/{who}", "http.route": template})
        for who in ("alice", "bob", "carol")
    ]
    assert post(client, export(*spans)).json == {}
    events = recent(client)
    assert {e["action"] for e in events} == {key}
    assert sorted((e["details"]["route"], e["details"]["url_path"]) for e in events) == [
        (template, "/api/users/alice"),
        (template, "/api/users/bob"),
        (template, "/api/users/carol"),
    ]


def test_a_browser_call_is_keyed_by_the_servers_template_and_both_meet(make_app):
    """The browser only knows /api/users/alice; the server said /api/users/<name>."""
    client = make_app().test_client()
    server = {"http.request.method": "GET", "url.path": "/api/users/alice", "http.route": "/api/users/<name>"}
    browser = {"http.request.method": "GET", "url.full": "https://shop.test/api/users/alice?tab=2"}
    assert post(client, export(span(SERVER, server))).json == {}
    assert post(client, export(span(CLIENT, browser, span_id="00f067aa0ba902b7"), browser=True)).json == {}
    call = next(e for e in recent(client) if e["service"] == "frontend")
    assert (call["action"], call["details"]["url_key"]) == ("GET /api/users/:name", "GET /api/users/alice")
    assert call["details"]["url_path"] == "/api/users/alice"
    [row] = client.get(f"{API}/data").json["endpoints"]
    assert (row["key"], row["seen_by"]) == ("GET /api/users/:name", "both")


def test_a_server_span_names_its_parent_and_meets_that_browser_call_among_others(make_app):
    """A trace with two browser calls of one key and their two server requests (children of each
    call by parentSpanId), the server's spans in the other order: each request meets its own
    call. By key alone the fast call would meet the slow request and the gap would be 850 ms."""
    client = make_app().test_client()
    attrs = {"http.request.method": "GET", "url.path": "/api/orders/7"}
    calls = [("00f067aa0ba902b7", 100.0, 50.0), ("00f067aa0ba902b8", 900.0, 800.0)]  # browser, server ms
    for call_id, browser_ms, _ in calls:
        browser = span(CLIENT, attrs, span_id=call_id, duration_ms=browser_ms)
        assert post(client, export(browser, browser=True)).json == {}
    for i, (call_id, _, server_ms) in enumerate(reversed(calls)):
        server = span(
            SERVER, attrs, span_id=f"aaaaaaaaaaaaaaa{i}", parentSpanId=call_id, duration_ms=server_ms
        )
        assert post(client, export(server)).json == {}
    requests = [e for e in recent(client) if e["service"] == "backend"]
    assert {e["parent_span_id"] for e in requests} == {call_id for call_id, _, _ in calls}
    [row] = client.get(f"{API}/data").json["endpoints"]
    assert row["matched_requests"] == 2
    assert row["gap_p95_ms"] <= 110  # gaps of 50 and 100 ms: each call met its own request


def test_a_root_span_or_an_unreadable_parent_leaves_no_parent_and_keeps_the_span(make_app):
    client = make_app().test_client()
    attrs = {"http.request.method": "GET", "url.path": "/api/x"}
    for i, parent in enumerate(("", "0000000000000000", "not-hex")):
        body = export(span(SERVER, attrs, span_id=f"bbbbbbbbbbbbbbb{i}", parentSpanId=parent))
        assert post(client, body).json == {}
    assert [e.get("parent_span_id") for e in recent(client)] == [None, None, None]


@pytest.mark.parametrize(
    ("trace_state", "rate"),
    [
        ("ot=th:c", 0.25),  # threshold 0xc0000000000000: a quarter of traces kept
        ("vendor=x,ot=rv:abcdef12345678;th:8", 0.5),
        ("ot=th:0", None),  # every trace kept: not a sample
        ("ot=th:zz", None),  # unreadable: the span counts as itself
        ("", None),
    ],
)
def test_an_otel_samplers_threshold_in_the_trace_state_is_the_events_sample_rate(make_app, trace_state, rate):
    client = make_app().test_client()
    body = export(span(SERVER, {"http.request.method": "GET", "url.path": "/api/x"}, traceState=trace_state))
    assert post(client, body).json == {}
    [event] = recent(client)
    assert event.get("sample_rate") == rate
