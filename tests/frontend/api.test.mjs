// API calls seen from the page: fetch and XHR become "api" events keyed like the backend's,
// with a traceparent only where the page allows it, and the page's own results untouched.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { initLiveMonitor } from "../../static/live-monitor.mjs";
import {
  MONITOR,
  INGEST,
  PAGE_ORIGIN,
  assertExecutionEvent,
  installBrowser,
  waitFor,
} from "./fake_browser.mjs";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
let env;
let monitor;

function start(options = {}, browser = {}) {
  env = installBrowser(browser);
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
    ...options,
  });
  return monitor;
}

async function apiEvents(count) {
  await waitFor(() => monitor.stats().queued >= count, { what: `${count} queued events` });
  await monitor.flush();
  const events = (await env.events()).filter((e) => e.component === "api");
  events.forEach((e) => assertExecutionEvent(assert, e));
  return events;
}

afterEach(() => {
  monitor?.stop();
  env?.uninstall();
  monitor = env = undefined;
});

test("a traced fetch carries a traceparent and its event the same ids", async () => {
  start(
    { tracePropagationTargets: ["http://api.test"] },
    {
      route: async (url) =>
        url.startsWith("http://api.test")
          ? new Response('{"ok": true}', { headers: { "Server-Timing": "db;dur=3, app;dur=12.5" } })
          : new Response("plain"),
    },
  );
  const traced = await fetch("http://api.test/api/orders/42?expand=items", { method: "post" });
  assert.equal(await traced.text(), '{"ok": true}', "the page still reads its own body");
  await fetch("http://other.test/api/users/7");
  const [tracedReq, otherReq] = env.pageRequests;
  const match = TRACEPARENT.exec(tracedReq.headers.get("traceparent"));
  assert.ok(
    match,
    `traceparent header on the target request: ${tracedReq.headers.get("traceparent")}`,
  );
  assert.equal(otherReq.headers.get("traceparent"), null, "no traceparent outside the targets");

  const [tracedEvent] = await apiEvents(1);
  const otherEvent = (await env.events()).find((e) => e.component === "http-client");
  assert.equal(tracedEvent.action, "POST /api/orders/:id");
  assert.equal(tracedEvent.status, "success");
  assert.equal(tracedEvent.trace_id, match[1]);
  assert.equal(tracedEvent.span_id, match[2]);
  assert.equal(tracedEvent.details.http_status, 200);
  assert.equal(tracedEvent.details.url_origin, "http://api.test");
  assert.equal(tracedEvent.details.backend_ms, 12.5);
  assert.equal(tracedEvent.details.sampled, true);
  assert.equal(tracedEvent.sample_rate, undefined, "every session reports: no sample rate");
  assert.equal(tracedEvent.parent_span_id, undefined, "the call starts the trace");
  assert.equal(typeof tracedEvent.duration_ms, "number");
  assert.equal(otherEvent.action, "GET other.test/api/users/:id", "another origin: a dependency");
  assert.equal(otherEvent.trace_id, undefined);
  assert.equal(otherEvent.details.backend_ms, null);
});

test("by default only same-origin requests are traced; RegExp and path targets work", async () => {
  start({}, {});
  await fetch("/api/items/");
  await fetch("http://cdn.test/lib.js");
  assert.match(env.pageRequests[0].headers.get("traceparent"), TRACEPARENT);
  assert.equal(env.pageRequests[1].headers.get("traceparent"), null);
  monitor.stop();
  env.uninstall();

  start({ tracePropagationTargets: [/^http:\/\/cdn\.test\//, "/api/"] });
  await fetch("http://cdn.test/lib.js");
  await fetch(new Request(`${PAGE_ORIGIN}/api/x`, { headers: { "X-Keep": "1" } }));
  await fetch("/static/app.css");
  const [cdn, api, css] = env.pageRequests;
  assert.match(cdn.headers.get("traceparent"), TRACEPARENT);
  assert.match(api.headers.get("traceparent"), TRACEPARENT);
  assert.equal(api.headers.get("x-keep"), "1", "the page's own headers survive");
  assert.equal(css.headers.get("traceparent"), null);
});

test("third-party calls are dependencies keyed with their host; same-origin calls stay api", async (t) => {
  t.mock.method(Math, "random", () => 0.2); // a sampled session: rates and statuses as for api
  start(
    { sampleRate: 0.5, tracePropagationTargets: ["https://api.example.com"] },
    { route: async (url) => new Response(null, { status: url.includes("/boom") ? 503 : 204 }) },
  );
  await fetch("https://www.google-analytics.com/g/collect?v=2&cid=1.2", { method: "POST" });
  const xhr = new XMLHttpRequest();
  xhr.open("GET", "https://Maps.Example.com:443/tiles/12/2048/1361.png");
  xhr.send();
  await fetch("https://sentry.example.com/boom");
  await fetch("/api/orders/7");
  await fetch("https://api.example.com/v1/users/42");
  await waitFor(() => monitor.stats().queued === 5, { what: "5 queued events" });
  await monitor.flush();
  const events = await env.events();
  events.forEach((e) => assertExecutionEvent(assert, e));
  assert.deepEqual(events.map((e) => [e.component, e.action, e.status, e.sample_rate]).sort(), [
    ["api", "GET /api/orders/:id", "success", 0.5],
    ["api", "GET /v1/users/:id", "success", 0.5],
    ["http-client", "GET maps.example.com/tiles/:id/:id/1361.png", "success", 0.5],
    ["http-client", "GET sentry.example.com/boom", "error", 0.5],
    ["http-client", "POST www.google-analytics.com/g/collect", "success", 0.5],
  ]);
  const analytics = events.find((e) => e.action.startsWith("POST www.google"));
  assert.equal(analytics.details.http_status, 204);
  assert.equal(analytics.details.url_origin, "https://www.google-analytics.com");
  const traced = env.pageRequests.filter((r) => r.kind === "fetch" && r.headers.get("traceparent"));
  assert.deepEqual(
    traced.map((r) => r.url),
    ["https://api.example.com/v1/users/42"],
    "only the trace targets carry a traceparent",
  );
  assert.equal(env.pageRequests.find((r) => r.kind === "xhr").headers.traceparent, undefined);
});

test("a rejected fetch still rejects for the page; its event has http_status 0", async () => {
  const failure = new TypeError("Failed to fetch");
  start({}, { route: async () => Promise.reject(failure) });
  await assert.rejects(fetch("/api/orders/9"), (error) => error === failure);
  const [event] = await apiEvents(1);
  assert.equal(event.action, "GET /api/orders/:id");
  assert.equal(event.status, "error");
  assert.equal(event.details.http_status, 0);
});

test("a 500 is an error, a 404 keeps its status but is not", async () => {
  start(
    {},
    { route: async (url) => new Response("x", { status: url.endsWith("/boom") ? 500 : 404 }) },
  );
  const boom = await fetch("/api/boom");
  assert.equal(boom.status, 500, "the page sees the real response");
  await fetch("/api/missing");
  const events = await apiEvents(2);
  const e500 = events.find((e) => e.action === "GET /api/boom");
  const e404 = events.find((e) => e.action === "GET /api/missing");
  assert.equal(e500.status, "error");
  assert.equal(e500.details.http_status, 500);
  assert.equal(e404.status, "success");
  assert.equal(e404.details.http_status, 404);
});

test("XMLHttpRequest calls are reported and traced like fetch", async () => {
  start(
    {},
    {
      route: async () =>
        new Response("{}", { status: 201, headers: { "server-timing": "app;dur=4" } }),
    },
  );
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", "/api/carts/3f2b8c1e-9a4d-4e2b-8c1e-9a4d4e2b8c1e");
  xhr.setRequestHeader("Content-Type", "application/json");
  xhr.send("{}");
  const [event] = await apiEvents(1);
  const match = TRACEPARENT.exec(env.pageRequests[0].headers.traceparent);
  assert.ok(match, "traceparent set on the XHR");
  assert.equal(env.pageRequests[0].headers["content-type"], "application/json");
  assert.equal(event.action, "PUT /api/carts/:id");
  assert.equal(event.details.http_status, 201);
  assert.equal(event.details.backend_ms, 4);
  assert.equal(event.trace_id, match[1]);
});

test("an untraced call takes the trace id the backend puts in Server-Timing", async () => {
  const backendTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const SPAN = "00f067aa0ba902b7";
  start(
    { tracePropagationTargets: [] },
    {
      route: async () =>
        new Response("{}", {
          headers: {
            "Server-Timing": `app;dur=2.0, traceparent;desc="00-${backendTrace}-${SPAN}-01"`,
          },
        }),
    },
  );
  await fetch("/api/orders/1");
  assert.equal(env.pageRequests[0].headers.get("traceparent"), null);
  const [event] = await apiEvents(1);
  assert.equal(event.trace_id, backendTrace);
  assert.match(event.span_id, /^[0-9a-f]{16}$/);
  assert.equal(event.details.backend_ms, 2);
});

test("an XHR that gets no response is an error with http_status 0", async () => {
  start({}, { route: async () => Promise.reject(new TypeError("offline")) });
  const xhr = new XMLHttpRequest();
  xhr.open("GET", "/api/orders/5");
  xhr.send();
  const [event] = await apiEvents(1);
  assert.equal(event.status, "error");
  assert.equal(event.details.http_status, 0);
  assert.equal(event.details.error, "NetworkError");
});

test("the logger's own posts to the monitor are never reported as api calls", async () => {
  start();
  await fetch("/api/one");
  await apiEvents(1);
  await fetch(INGEST, { method: "POST", body: '{"events": []}' });
  monitor.record("custom", "tick");
  await monitor.flush();
  const events = await env.events();
  assert.deepEqual(
    events.map((e) => e.action),
    ["GET /api/one", "tick"],
  );
});

test("sampleRate 0 drops api events but keeps other events", async () => {
  start({ sampleRate: 0 });
  await fetch("/api/one");
  monitor.record("custom", "tick");
  await monitor.flush();
  const events = await env.events();
  assert.deepEqual(
    events.map((e) => e.component),
    ["custom"],
  );
});

test("a sampled session's api events carry the sample rate, its other events do not", async (t) => {
  t.mock.method(Math, "random", () => 0.2); // this session is in the sampled 25%
  start({ sampleRate: 0.25 });
  await fetch("/api/one");
  const xhr = new XMLHttpRequest();
  xhr.open("GET", "/api/two");
  xhr.send();
  monitor.record("custom", "tick");
  await waitFor(() => monitor.stats().queued === 3, { what: "3 queued events" });
  await monitor.flush();
  const events = await env.events();
  events.forEach((e) => assertExecutionEvent(assert, e));
  assert.deepEqual(events.map((e) => [e.action, e.sample_rate]).sort(), [
    ["GET /api/one", 0.25],
    ["GET /api/two", 0.25],
    ["tick", undefined],
  ]);
});

test("a session outside the sample sends no api event, only traces its calls", async (t) => {
  t.mock.method(Math, "random", () => 0.3);
  start({ sampleRate: 0.25 });
  await fetch("/api/one");
  monitor.record("custom", "tick");
  await monitor.flush();
  assert.deepEqual(
    (await env.events()).map((e) => [e.action, e.sample_rate]),
    [["tick", undefined]],
  );
  assert.match(env.pageRequests[0].headers.get("traceparent"), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
});

test("a page's own invalid traceparent is left alone and the server's trace is reported", async () => {
  const serverTrace = "0af7651916cd43dd8448eb211c80319c";
  start(
    {},
    {
      route: async () =>
        new Response("ok", {
          headers: { "Server-Timing": `traceparent;desc="00-${serverTrace}-b7ad6b7169203331-01"` },
        }),
    },
  );
  const zero = `00-${"0".repeat(32)}-${"0".repeat(16)}-01`;
  await fetch("/api/orders/1", { headers: { traceparent: zero } });
  const [event] = await apiEvents(1);
  assert.equal(env.pageRequests[0].headers.get("traceparent"), zero);
  assert.equal(event.trace_id, serverTrace);
});

test("stop() restores fetch and XHR and reports nothing afterwards", async () => {
  env = installBrowser();
  const originalFetch = globalThis.fetch;
  const proto = XMLHttpRequest.prototype;
  const originalXhr = {
    open: proto.open,
    send: proto.send,
    setRequestHeader: proto.setRequestHeader,
  };
  monitor = initLiveMonitor({ endpoint: MONITOR, capture: { webVitals: false } });
  assert.notEqual(globalThis.fetch, originalFetch, "fetch is wrapped while running");
  monitor.stop();
  assert.equal(globalThis.fetch, originalFetch);
  assert.equal(proto.open, originalXhr.open);
  assert.equal(proto.send, originalXhr.send);
  assert.equal(proto.setRequestHeader, originalXhr.setRequestHeader);
  await fetch("/api/after-stop");
  assert.equal(monitor.stats().queued, 0);
  assert.equal(env.pageRequests[0].headers.get("traceparent"), null);
});
