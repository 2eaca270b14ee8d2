// Getting events to the monitor: batches bounded by count and bytes, retries, a bounded
// queue, and beacons when the page goes away.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { initLiveMonitor } from "../../static/live-monitor.mjs";
import {
  INGEST,
  MONITOR,
  PAGE_ORIGIN,
  assertExecutionEvent,
  installBrowser,
  waitFor,
} from "./fake_browser.mjs";

let env;
let monitor;

function start(options = {}, browser = {}) {
  env = installBrowser(browser);
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    retryBaseMs: 1,
    capture: { webVitals: false },
    ...options,
  });
  return monitor;
}

afterEach(() => {
  monitor?.stop();
  env?.uninstall();
  monitor = env = undefined;
});

test("posts JSON batches of at most batchSize events with keepalive", async () => {
  start({ batchSize: 3 });
  for (let i = 0; i < 7; i++) monitor.record("custom", `event-${i}`, { duration_ms: i });
  await monitor.flush();
  assert.deepEqual(
    env.ingestCalls.map((c) => c.body.events.length),
    [3, 3, 1],
  );
  const events = await env.events();
  assert.deepEqual(
    events.map((e) => e.action),
    [0, 1, 2, 3, 4, 5, 6].map((i) => `event-${i}`),
  );
  events.forEach((e) => assertExecutionEvent(assert, e));
  for (const call of env.ingestCalls) {
    assert.equal(call.init.method, "POST");
    assert.equal(call.init.keepalive, true);
    assert.equal(new Headers(call.init.headers).get("content-type"), "application/json");
  }
  assert.deepEqual(monitor.stats(), { queued: 0, sent: 7, dropped: 0, retried: 0, failed: 0 });
});

test("a full batch is sent without waiting for the flush interval", async () => {
  start({ batchSize: 4 });
  for (let i = 0; i < 4; i++) monitor.record("custom", "tick");
  await waitFor(() => monitor.stats().sent === 4, { what: "batch sent by size" });
});

test("no request body exceeds 64 KiB, and every event still arrives", async () => {
  start({ batchSize: 50 });
  const filler = "x".repeat(7000);
  for (let i = 0; i < 30; i++) monitor.record("custom", `big-${i}`, { details: { filler } });
  await monitor.flush();
  assert.ok(env.ingestCalls.length >= 4, `split into ${env.ingestCalls.length} requests`);
  for (const call of env.ingestCalls)
    assert.ok(call.bytes <= 64 * 1024, `body of ${call.bytes} bytes`);
  assert.equal((await env.events()).length, 30);
  assert.equal(monitor.stats().sent, 30);
});

test("a 503 is retried and the batch then delivered once", async () => {
  start({}, { ingest: async (_body, n) => new Response("busy", { status: n === 1 ? 503 : 200 }) });
  monitor.record("custom", "one");
  monitor.record("custom", "two");
  await monitor.flush();
  await waitFor(() => monitor.stats().sent === 2, { what: "retried batch delivered" });
  assert.equal(env.ingestCalls.length, 2);
  assert.deepEqual(env.ingestCalls[1].body, env.ingestCalls[0].body);
  assert.deepEqual(monitor.stats(), { queued: 0, sent: 2, dropped: 0, retried: 1, failed: 0 });
});

test("Retry-After on 429 delays the retry and holds back new batches", async () => {
  start(
    {},
    {
      ingest: async (_body, n) =>
        n === 1
          ? new Response("slow down", { status: 429, headers: { "Retry-After": "1" } })
          : new Response("{}"),
    },
  );
  monitor.record("custom", "one");
  await monitor.flush();
  monitor.record("custom", "two");
  await monitor.flush();
  assert.equal(env.ingestCalls.length, 1, "nothing new is sent while the monitor asked to wait");
  await waitFor(() => monitor.stats().sent === 1, { what: "delivery after Retry-After" });
  const gap = env.ingestCalls[1].at - env.ingestCalls[0].at;
  assert.ok(gap >= 900, `retried after ${gap} ms, Retry-After asked for 1000`);
  await monitor.flush();
  const delivered = env.ingestCalls.slice(1).flatMap((c) => c.body.events.map((e) => e.action));
  assert.deepEqual(delivered.sort(), ["one", "two"]);
});

test("network errors are retried, then the batch is given up and counted as failed", async () => {
  start(
    { maxRetries: 2 },
    { ingest: async () => Promise.reject(new TypeError("Failed to fetch")) },
  );
  monitor.record("custom", "lost");
  await monitor.flush();
  await waitFor(() => monitor.stats().failed === 1, { what: "batch given up" });
  assert.equal(env.ingestCalls.length, 3);
  assert.deepEqual(monitor.stats(), { queued: 0, sent: 0, dropped: 0, retried: 2, failed: 1 });
});

test("a 400 is not retried", async () => {
  start({}, { ingest: async () => new Response('{"error": "bad"}', { status: 400 }) });
  monitor.record("custom", "bad");
  await monitor.flush();
  assert.equal(env.ingestCalls.length, 1);
  assert.equal(monitor.stats().failed, 1);
});

test("the queue is bounded and counts what it drops", async () => {
  start({ maxQueue: 5, batchSize: 100 });
  for (let i = 0; i < 8; i++) monitor.record("custom", `e${i}`);
  assert.deepEqual(monitor.stats(), { queued: 5, sent: 0, dropped: 3, retried: 0, failed: 0 });
  await monitor.flush();
  assert.deepEqual(
    (await env.events()).map((e) => e.action),
    ["e0", "e1", "e2", "e3", "e4"],
  );
  assert.equal(monitor.stats().sent, 5);
});

test("events awaiting retry count against the queue bound", async () => {
  start(
    { maxQueue: 3, retryBaseMs: 60_000 },
    { ingest: async () => new Response("down", { status: 503 }) },
  );
  for (let i = 0; i < 3; i++) monitor.record("custom", `e${i}`);
  await monitor.flush();
  monitor.record("custom", "overflow");
  assert.deepEqual(monitor.stats(), { queued: 3, sent: 0, dropped: 1, retried: 1, failed: 0 });
});

test("the flush interval sends queued events", async () => {
  start({ flushIntervalMs: 20 });
  monitor.record("custom", "tick");
  await waitFor(() => monitor.stats().sent === 1, { what: "interval flush" });
});

test("a same-origin monitor gets a JSON beacon when the page is hidden", async () => {
  env = installBrowser({ sameOriginMonitor: true });
  monitor = initLiveMonitor({
    endpoint: PAGE_ORIGIN,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
  });
  monitor.record("custom", "before-hide");
  env.document.visibilityState = "hidden";
  env.document.dispatchEvent(new Event("visibilitychange"));
  assert.equal(env.beacons.length, 1);
  assert.equal(env.beacons[0].url, `${PAGE_ORIGIN}/api/live-execution/events`);
  assert.equal(env.beacons[0].blob.type, "application/json");
  assert.deepEqual(
    (await env.events()).map((e) => e.action),
    ["before-hide"],
  );
  monitor.record("custom", "while-hidden");
  await waitFor(() => env.beacons.length === 2, { what: "beacon for an event while hidden" });
  assert.equal(monitor.stats().sent, 2);
});

test("a cross-origin monitor gets keepalive fetches on pagehide, not beacons", async () => {
  start();
  monitor.record("custom", "bye");
  globalThis.dispatchEvent(new Event("pagehide"));
  await waitFor(() => env.ingestCalls.length === 1, { what: "keepalive post on pagehide" });
  assert.equal(env.beacons.length, 0);
  assert.equal(env.ingestCalls[0].init.keepalive, true);
});

test("an ingest key is sent as X-Ingest-Key, so pagehide uses fetch, not a beacon", async () => {
  env = installBrowser({ sameOriginMonitor: true });
  monitor = initLiveMonitor({
    endpoint: PAGE_ORIGIN,
    ingestKey: "pub-123",
    capture: { webVitals: false },
  });
  monitor.record("custom", "bye");
  globalThis.dispatchEvent(new Event("pagehide"));
  await waitFor(() => env.ingestCalls.length === 1, { what: "keepalive post with the key" });
  assert.equal(env.beacons.length, 0);
  assert.equal(new Headers(env.ingestCalls[0].init.headers).get("x-ingest-key"), "pub-123");
});

test("the endpoint may be given as the monitor, its API base or its ingest URL", async () => {
  for (const endpoint of [`${MONITOR}/`, `${MONITOR}/api/live-execution`, INGEST]) {
    start({ endpoint });
    monitor.record("custom", "tick");
    await monitor.flush();
    assert.equal(env.ingestCalls.length, 1, endpoint);
    monitor.stop();
    env.uninstall();
  }
});

test("invalid options fail with a clear message", () => {
  env = installBrowser();
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, sampleRate: 2 }),
    /sampleRate must be 0, or between 0.0001 and 1/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, sampleRate: 0.00001 }),
    /sampleRate must be 0, or between 0.0001 and 1/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, batchSize: 0 }),
    /batchSize must be a positive number/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: "http://[bad" }),
    /endpoint must be the monitor.s base URL, got http:\/\/\[bad/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, maxRetries: -1 }),
    /maxRetries must be a whole number >= 0, got -1/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, flushIntervalMs: "5" }),
    /flushIntervalMs must be a positive number, got 5/,
  );
  assert.throws(() => initLiveMonitor({ endpoint: "" }), /endpoint must be the monitor.s base URL/);
  assert.equal(env.listenerCount(), 0, "a refused start installs nothing");
  assert.equal(fetch, env.fetch, "nor wraps fetch");
});
