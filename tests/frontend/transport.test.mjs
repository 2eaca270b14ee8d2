// Getting events to the monitor: batches bounded by count and bytes, plain fetches that leave
// the page's keepalive allowance alone, retries that back off and keep events while the
// monitor is away, and at page hide a keepalive send within budget with the rest stored.
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
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

const UNLOAD_BUDGET = 32 * 1024;
const STORE_KEY = `live-monitor:unsent:${INGEST}`;
let env;
let monitor;
let storage;

/** A sessionStorage stand-in: one Map for "this tab", kept across the pages of a test. */
class FakeStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

/** The fake fetch, with gzip bodies decoded first (their compressed size kept as `zipped`). */
function gunzipping(fetchImpl) {
  return (input, init = {}) => {
    const encoding = new Headers(init.headers).get("content-encoding");
    if (encoding !== "gzip") return fetchImpl(input, init);
    const text = gunzipSync(init.body).toString("utf8");
    return fetchImpl(input, { ...init, body: text, zipped: init.body.byteLength });
  };
}

/** A fresh page: fake browser globals (this test's sessionStorage) and a running logger. */
function start(options = {}, browser = {}) {
  env = installBrowser(browser);
  globalThis.fetch = gunzipping(env.fetch);
  if (storage)
    Object.defineProperty(globalThis, "sessionStorage", { value: storage, configurable: true });
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    retryBaseMs: 1,
    capture: { webVitals: false },
    ...options,
  });
  return monitor;
}

/** The page goes away (or the tab is switched): visibilitychange to hidden, then pagehide. */
function hidePage() {
  env.document.visibilityState = "hidden";
  env.document.dispatchEvent(new Event("visibilitychange"));
  globalThis.dispatchEvent(new Event("pagehide"));
}

function stopPage() {
  monitor?.stop();
  env?.uninstall();
  monitor = env = undefined;
}

afterEach(() => {
  stopPage();
  delete globalThis.sessionStorage;
  storage = undefined;
});

const down = async () => Promise.reject(new TypeError("Failed to fetch"));
const actions = (events) => events.map((e) => e.action);
const sum = (stats) => stats.queued + stats.stored + stats.sent + stats.dropped + stats.failed;

test("posts JSON batches of at most batchSize events with plain fetch, not keepalive", async () => {
  start({ batchSize: 3 });
  for (let i = 0; i < 7; i++) monitor.record("custom", `event-${i}`, { duration_ms: i });
  await monitor.flush();
  assert.deepEqual(
    env.ingestCalls.map((c) => c.body.events.length),
    [3, 3, 1],
  );
  const events = await env.events();
  assert.deepEqual(
    actions(events),
    [0, 1, 2, 3, 4, 5, 6].map((i) => `event-${i}`),
  );
  events.forEach((e) => assertExecutionEvent(assert, e));
  for (const call of env.ingestCalls) {
    assert.equal(call.init.method, "POST");
    assert.ok(!call.init.keepalive, "normal sends leave the page's keepalive allowance alone");
    assert.equal(new Headers(call.init.headers).get("content-type"), "application/json");
  }
  assert.deepEqual(monitor.stats(), {
    queued: 0,
    sent: 7,
    dropped: 0,
    retried: 0,
    failed: 0,
    stored: 0,
    restored: 0,
  });
});

test("the monitor's answer is read, so its connection is freed", async () => {
  let read = 0;
  const answer = () => {
    const response = new Response('{"accepted": 1}');
    const original = response.arrayBuffer.bind(response);
    response.arrayBuffer = () => (read++, original());
    return response;
  };
  start({ batchSize: 1 }, { ingest: async () => answer() });
  monitor.record("custom", "one");
  monitor.record("custom", "two");
  await monitor.flush();
  assert.equal(read, 2);
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
  const { sent, retried, failed, dropped } = monitor.stats();
  assert.deepEqual(
    { sent, retried, failed, dropped },
    { sent: 2, retried: 1, failed: 0, dropped: 0 },
  );
});

test("Retry-After in seconds on a 429 delays the retry and holds back new batches", async () => {
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
  await waitFor(() => monitor.stats().sent === 2, { what: "delivery after Retry-After" });
  const gap = env.ingestCalls[1].at - env.ingestCalls[0].at;
  assert.ok(gap >= 1000, `retried after ${gap} ms, Retry-After asked for 1000`);
  assert.deepEqual(actions(env.ingestCalls[1].body.events), ["one", "two"]);
});

test("Retry-After as an HTTP date on a 503 is honoured", async () => {
  let until;
  start(
    {},
    {
      ingest: async (_body, n) => {
        if (n > 1) return new Response("{}");
        const date = new Date(Date.now() + 2000).toUTCString(); // whole seconds: 1 to 2 s away
        until = Date.parse(date);
        return new Response("down", { status: 503, headers: { "Retry-After": date } });
      },
    },
  );
  monitor.record("custom", "one");
  await monitor.flush();
  await waitFor(() => monitor.stats().sent === 1, { what: "delivery after the date" });
  assert.ok(env.ingestCalls[1].at >= until, "not retried before the date the monitor named");
});

test("while the monitor is unreachable one probe at a time backs off; nothing is lost", async () => {
  let reachable = false;
  let inFlight = 0;
  let most = 0;
  const options = { batchSize: 5, flushIntervalMs: 10, retryBaseMs: 10, maxRetryDelayMs: 200 };
  start(options, {
    ingest: async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      if (!reachable) throw new TypeError("Failed to fetch");
      return new Response("{}");
    },
  });
  const started = Date.now();
  for (let i = 0; i < 60; i++) {
    monitor.record("custom", `e${i}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const attempts = env.ingestCalls.length;
  const ticks = Math.round((Date.now() - started) / options.flushIntervalMs);
  // without backoff every flush tick and every full batch would try again
  assert.ok(attempts < ticks / 2, `${attempts} attempts in ${ticks} flush intervals`);
  assert.equal(most, 1, "never more than one request at a time");
  assert.equal(monitor.stats().dropped, 0);
  reachable = true;
  await waitFor(() => monitor.stats().sent === 60, { what: "all delivered once back" });
  const delivered = actions(await env.events()).slice(-60);
  assert.deepEqual(
    delivered,
    Array.from({ length: 60 }, (_, i) => `e${i}`),
  );
  assert.equal(sum(monitor.stats()), 60);
});

test("events older than maxAgeMs are dropped and counted, not sent", async () => {
  let reachable = false;
  start(
    { maxAgeMs: 300, retryBaseMs: 20, maxRetryDelayMs: 40, flushIntervalMs: 20 },
    {
      ingest: async () => (reachable ? new Response("{}") : down()),
    },
  );
  monitor.record("custom", "old-1");
  monitor.record("custom", "old-2");
  await monitor.flush();
  await new Promise((resolve) => setTimeout(resolve, 320));
  reachable = true;
  monitor.record("custom", "new");
  await waitFor(() => monitor.stats().sent === 1, { what: "the fresh event" });
  assert.deepEqual(actions(env.ingestCalls.at(-1).body.events), ["new"]);
  assert.equal(monitor.stats().dropped, 2);
  assert.equal(sum(monitor.stats()), 3);
});

test("maxRetries, when given, drops a batch after that many retries", async () => {
  start({ maxRetries: 2 }, { ingest: down });
  monitor.record("custom", "lost");
  await monitor.flush();
  await waitFor(() => monitor.stats().dropped === 1, { what: "batch given up" });
  assert.equal(env.ingestCalls.length, 3);
  const { retried, failed, queued } = monitor.stats();
  assert.deepEqual({ retried, failed, queued }, { retried: 2, failed: 0, queued: 0 });
});

test("a 400 is counted failed and not retried; the next batch still goes", async () => {
  start(
    { batchSize: 1 },
    {
      ingest: async (_body, n) =>
        new Response(n === 1 ? '{"error": "bad"}' : "{}", { status: n === 1 ? 400 : 200 }),
    },
  );
  monitor.record("custom", "bad");
  monitor.record("custom", "good");
  await monitor.flush();
  assert.equal(env.ingestCalls.length, 2);
  const { failed, sent, retried } = monitor.stats();
  assert.deepEqual({ failed, sent, retried }, { failed: 1, sent: 1, retried: 0 });
});

test("a 413 halves the batch until the monitor takes it", async () => {
  start(
    { batchSize: 8 },
    {
      ingest: async (body) => new Response("{}", { status: body.events.length > 2 ? 413 : 200 }),
    },
  );
  for (let i = 0; i < 8; i++) monitor.record("custom", `e${i}`);
  await monitor.flush();
  await waitFor(() => monitor.stats().sent === 8, { what: "smaller batches" });
  assert.equal(monitor.stats().failed, 0);
});

test("the queue is bounded and counts what it drops", async () => {
  start({ maxQueue: 5, batchSize: 100 });
  for (let i = 0; i < 8; i++) monitor.record("custom", `e${i}`);
  const { queued, dropped } = monitor.stats();
  assert.deepEqual({ queued, dropped }, { queued: 5, dropped: 3 });
  await monitor.flush();
  assert.deepEqual(actions(await env.events()), ["e0", "e1", "e2", "e3", "e4"]);
  assert.equal(monitor.stats().sent, 5);
});

test("events awaiting a retry count against the queue bound", async () => {
  start(
    { maxQueue: 3, retryBaseMs: 60_000 },
    { ingest: async () => new Response("down", { status: 503 }) },
  );
  for (let i = 0; i < 3; i++) monitor.record("custom", `e${i}`);
  await monitor.flush();
  monitor.record("custom", "overflow");
  const { queued, dropped, retried } = monitor.stats();
  assert.deepEqual({ queued, dropped, retried }, { queued: 3, dropped: 1, retried: 1 });
});

test("the flush interval sends queued events", async () => {
  start({ flushIntervalMs: 20 });
  monitor.record("custom", "tick");
  await waitFor(() => monitor.stats().sent === 1, { what: "interval flush" });
});

test("at page hide a cross-origin monitor gets a gzip keepalive fetch, not a beacon", async () => {
  start();
  monitor.record("custom", "bye");
  globalThis.dispatchEvent(new Event("pagehide"));
  await waitFor(() => env.ingestCalls.length === 1, { what: "keepalive post on pagehide" });
  assert.equal(env.beacons.length, 0);
  const [call] = env.ingestCalls;
  assert.equal(call.init.keepalive, true);
  assert.equal(new Headers(call.init.headers).get("content-encoding"), "gzip");
  assert.deepEqual(actions(call.body.events), ["bye"]);
  await waitFor(() => monitor.stats().sent === 1, { what: "the answer booked" });
});

test("without CompressionStream a same-origin monitor gets a JSON beacon", async (t) => {
  const saved = globalThis.CompressionStream;
  delete globalThis.CompressionStream;
  t.after(() => (globalThis.CompressionStream = saved));
  env = installBrowser({ sameOriginMonitor: true });
  monitor = initLiveMonitor({
    endpoint: PAGE_ORIGIN,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
  });
  monitor.record("custom", "before-hide");
  env.document.visibilityState = "hidden";
  env.document.dispatchEvent(new Event("visibilitychange"));
  await waitFor(() => env.beacons.length === 1, { what: "the beacon" });
  assert.equal(env.beacons[0].url, `${PAGE_ORIGIN}/api/live-execution/events`);
  assert.equal(env.beacons[0].blob.type, "application/json");
  assert.deepEqual(actions(await env.events()), ["before-hide"]);
  monitor.record("custom", "while-hidden");
  await waitFor(() => env.beacons.length === 2, { what: "beacon for an event while hidden" });
  assert.equal(monitor.stats().sent, 2);
});

test("an ingest key is sent as X-Ingest-Key, so page hide uses fetch, not a beacon", async () => {
  env = installBrowser({ sameOriginMonitor: true });
  globalThis.fetch = gunzipping(env.fetch);
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

/** `count` events of about 500 bytes each that gzip cannot shrink much. */
function recordNoise(count) {
  for (let i = 0; i < count; i++) {
    const noise = Array.from({ length: 30 }, () => Math.random().toString(36).slice(2)).join("");
    monitor.record("custom", `n${i}`, { details: { noise: noise.slice(0, 400) } });
  }
}

test("unload past the budget: what fits goes with keepalive, the rest on the next page", async () => {
  storage = new FakeStorage();
  start({ batchSize: 500 });
  recordNoise(400); // about 200 KB
  hidePage();
  await waitFor(() => env.ingestCalls.length > 0, { what: "the unload send" });
  const unloadCalls = [...env.ingestCalls];
  const zipped = unloadCalls.reduce((total, call) => total + call.init.zipped, 0);
  assert.ok(zipped <= UNLOAD_BUDGET, `${zipped} compressed bytes in flight at unload`);
  const first = monitor.stats();
  assert.ok(first.stored > 0 && storage.getItem(STORE_KEY), "the rest is in sessionStorage");
  assert.equal(sum(first), 400);
  // The page is gone: its logger ends with no store left to send from (a dead page sends
  // nothing more), and a new page of the same origin starts with this tab's store.
  delete globalThis.sessionStorage;
  stopPage();
  start();
  await waitFor(() => monitor.stats().sent === first.stored, { what: "the stored rest" });
  assert.equal(monitor.stats().restored, first.stored);
  assert.equal(storage.getItem(STORE_KEY), null, "taken from the store");
  const all = actions(await env.events());
  const unloaded = unloadCalls.flatMap((c) => c.body.events.map((e) => e.action));
  const received = [...unloaded, ...all];
  assert.equal(received.length, 400, "each event exactly once");
  assert.deepEqual(
    [...new Set(received)].sort(),
    Array.from({ length: 400 }, (_, i) => `n${i}`).sort(),
  );
});

test("a page that comes back takes its stored events back and sends them itself", async () => {
  storage = new FakeStorage();
  start();
  recordNoise(200);
  hidePage();
  const hidden = monitor.stats();
  assert.ok(hidden.stored > 0);
  env.document.visibilityState = "visible";
  env.document.dispatchEvent(new Event("visibilitychange"));
  await waitFor(() => monitor.stats().sent === 200, { what: "all sent once visible" });
  assert.equal(monitor.stats().stored, 0);
  assert.equal(storage.getItem(STORE_KEY), null);
  const received = actions(await env.events());
  assert.equal(new Set(received).size, 200);
  assert.equal(received.length, 200, "no event twice");
});

test("a monitor unreachable at page hide: everything is stored, nothing sent", async () => {
  storage = new FakeStorage();
  start({ retryBaseMs: 60_000 }, { ingest: down });
  monitor.record("custom", "first");
  await monitor.flush();
  const probes = env.ingestCalls.length;
  monitor.record("custom", "second");
  hidePage();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(env.ingestCalls.length, probes, "no keepalive send that would fail");
  const stats = monitor.stats();
  assert.deepEqual([stats.stored, stats.queued, stats.dropped], [2, 0, 0]);
});

test("the store is bounded by storeBytes; what does not fit is counted dropped", async () => {
  storage = new FakeStorage();
  start({ storeBytes: 4096, retryBaseMs: 60_000 }, { ingest: down });
  recordNoise(1);
  await monitor.flush();
  recordNoise(30);
  hidePage();
  const stats = monitor.stats();
  assert.ok(stats.stored > 0 && stats.stored < 31, `${stats.stored} stored`);
  assert.equal(stats.dropped, 31 - stats.stored);
  assert.ok(storage.getItem(STORE_KEY).length <= 4096);
});

test("stop() sends what is queued once", async () => {
  start({ batchSize: 2 });
  for (let i = 0; i < 5; i++) monitor.record("custom", `e${i}`);
  monitor.stop();
  await waitFor(() => monitor.stats().sent === 5, { what: "last send" });
  assert.equal(env.ingestCalls.length, 3);
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
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, maxAgeMs: 0 }),
    /maxAgeMs must be a positive number, got 0/,
  );
  assert.throws(
    () => initLiveMonitor({ endpoint: MONITOR, storeBytes: -1 }),
    /storeBytes must be a whole number >= 0, got -1/,
  );
  assert.throws(() => initLiveMonitor({ endpoint: "" }), /endpoint must be the monitor.s base URL/);
  assert.equal(env.listenerCount(), 0, "a refused start installs nothing");
  assert.equal(fetch, env.fetch, "nor wraps fetch");
});
