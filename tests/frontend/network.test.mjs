// The page's own requests, as the logger leaves them: the request sent is the one the page made
// (plus a traceparent where the rules add one), its body is never read by the logger, and each
// call is reported once with the status it really got.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { initLiveMonitor } from "../../static/live-monitor.mjs";
import { MONITOR, PAGE_ORIGIN, installBrowser, waitFor } from "./fake_browser.mjs";

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;
let env;
let monitor;
let sent;

/**
 * A fake browser whose fetch keeps each page request as the network would get it (a Request
 * built from fetch's arguments, as fetch itself does) and answers with `answer(request)`.
 */
function start(answer = () => new Response("ok")) {
  env = installBrowser();
  sent = [];
  const fake = env.fetch;
  globalThis.fetch = async (input, init) => {
    if (String(input instanceof Request ? input.url : input).startsWith(MONITOR)) {
      return fake(input, init);
    }
    const request =
      input instanceof Request && !init ? input : new Request(new URL(input, PAGE_ORIGIN), init);
    sent.push(request);
    return fake(request);
  };
  env.route = async (url) => answer(sent.at(-1));
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false, pageLoad: false },
  });
}

async function apiEvents(count) {
  await waitFor(() => monitor.stats().queued >= count, { what: `${count} queued events` });
  await monitor.flush();
  return (await env.events()).filter((e) => e.component === "api");
}

afterEach(() => {
  monitor?.stop();
  env?.uninstall();
  monitor = env = sent = undefined;
});

test("init fields the page inherited from a prototype are sent, with the traceparent", async () => {
  start();
  await fetch("/api/notes", Object.create({ method: "POST", body: "x" }));
  const [request] = sent;
  assert.equal(request.method, "POST");
  assert.equal(await request.text(), "x");
  assert.match(request.headers.get("traceparent"), TRACEPARENT);
  const [event] = await apiEvents(1);
  assert.equal(event.action, "POST /api/notes");
});

test("a Request keeps its method, headers, body and options when the traceparent is added", async () => {
  start();
  const controller = new AbortController();
  const page = new Request(`${PAGE_ORIGIN}/api/items`, {
    method: "PUT",
    headers: { "X-Page": "1", "Content-Type": "application/json" },
    body: '{"n":1}',
    credentials: "omit",
    redirect: "manual",
    cache: "no-store",
    mode: "same-origin",
    referrerPolicy: "no-referrer",
    integrity: "sha256-abc",
    keepalive: true,
    signal: controller.signal,
  });
  await fetch(page);
  const [request] = sent;
  assert.equal(request.method, "PUT");
  assert.equal(await request.text(), '{"n":1}');
  assert.equal(request.headers.get("x-page"), "1");
  assert.equal(request.headers.get("content-type"), "application/json");
  assert.match(request.headers.get("traceparent"), TRACEPARENT);
  for (const field of [
    "credentials",
    "redirect",
    "cache",
    "mode",
    "referrerPolicy",
    "integrity",
    "keepalive",
  ]) {
    assert.equal(request[field], page[field], field);
  }
  assert.equal(page.bodyUsed, true, "the page's request is used, as fetch leaves it");
  controller.abort();
  assert.equal(request.signal.aborted, true, "the page's signal still aborts the request sent");
});

test("a no-cors request goes as the page made it, without a traceparent", async () => {
  start(() => new Response("ok"));
  await fetch("/api/pixel", { mode: "no-cors" });
  assert.equal(sent[0].headers.get("traceparent"), null);
  assert.equal(sent[0].mode, "no-cors");
});

test("the page's response body is never read by the logger", async () => {
  let pulls = 0;
  start(
    () =>
      new Response(
        new ReadableStream(
          { pull: (c) => (pulls++, c.enqueue(new Uint8Array(1024))) },
          { highWaterMark: 0 },
        ),
      ),
  );
  const response = await fetch("/api/stream");
  const reader = response.body.getReader();
  await reader.read();
  await reader.cancel();
  await apiEvents(1);
  assert.equal(pulls, 1, "one chunk pulled: the page's own read");
});

test("a redirect not followed (redirect: manual) is a success, not an error", async () => {
  start();
  const opaque = { type: "opaqueredirect", status: 0, headers: new Headers(), body: null };
  env.route = async () => opaque;
  const response = await fetch("/api/login", { redirect: "manual" });
  assert.equal(response, opaque);
  const [event] = await apiEvents(1);
  assert.equal(event.status, "success");
  assert.equal(event.details.http_status, 0);
  assert.equal(event.details.response_type, "opaqueredirect");
  assert.equal(event.details.error, undefined);
});

test("a reused XHR reports each of its requests once", async () => {
  start();
  const xhr = new XMLHttpRequest();
  const loaded = () =>
    new Promise((resolve) => xhr.addEventListener("loadend", resolve, { once: true }));
  xhr.open("GET", "/api/a/1");
  xhr.send();
  await loaded();
  xhr.open("POST", "/api/b/2");
  xhr.send("x");
  await loaded();
  const events = await apiEvents(2);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(
    (await env.events()).map((e) => [e.action, e.status, e.details.http_status]),
    [
      ["GET /api/a/:id", "success", 200],
      ["POST /api/b/:id", "success", 200],
    ],
  );
  assert.equal(events.length, 2);
});
