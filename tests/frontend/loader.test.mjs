// The loader (frontend/loader.ts): the README holds exactly what the build makes; with the
// bundle away it queues the page's calls and tries again with backoff for a bounded time;
// when the bundle arrives, the queued calls become events with the times they were made.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { afterEach, test } from "node:test";
import { gzipSync } from "node:zlib";
import { loaderSnippet, README_BUNDLE_URL } from "../../scripts/build-frontend.mjs";
import { MONITOR, installBrowser, waitFor } from "./fake_browser.mjs";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const BUNDLE = readFileSync(new URL("../../static/live-monitor.js", import.meta.url), "utf8");
const snippet = await loaderSnippet();
const LOAD_FOR_MS = 5 * 60 * 1000;
let env;
let monitor;

afterEach(() => {
  monitor?.stop();
  monitor = undefined;
  delete globalThis.LiveMonitor;
  env?.uninstall();
  env = undefined;
});

/** The README's browser snippet: the html block of "Instrument your frontend". */
function readmeHtml() {
  const section = README.slice(README.indexOf("## 🧩 Instrument your frontend\n"));
  return /```html\n([\s\S]*?)```/.exec(section)[1];
}

/** A document whose script tags are recorded (never loaded): the page's side of the loader. */
function scriptsOf(document) {
  const scripts = [];
  document.createElement = (tag) => ({ tag, remove() {} });
  document.head = { appendChild: (el) => scripts.push(el) };
  return scripts;
}

/** Runs the loader with the browser functions it uses given, as a page's inline script. */
function runLoader(globals = {}) {
  const names = Object.keys(globals);
  new Function(...names, snippet)(...Object.values(globals));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("the README's snippet is the loader the build makes, at the size it states", () => {
  const [, loader] = /<script>\n(.*)\n<\/script>/.exec(readmeHtml());
  assert.equal(loader, snippet, "README.md's loader differs: paste the one npm run build makes");
  assert.ok(loader.includes(JSON.stringify(README_BUNDLE_URL)));
  const stated = /The first script is the loader \(([\d,]+) bytes, ([\d,]+) gzipped/.exec(README);
  assert.ok(stated, "the README does not state the loader's size");
  const number = (text) => Number(text.replace(/,/g, ""));
  assert.equal(number(stated[1]), Buffer.byteLength(snippet));
  assert.equal(number(stated[2]), gzipSync(snippet).length);
});

test("while the bundle cannot load, tries back off to a minute apart and stop after 5 minutes", () => {
  let now = 0;
  let timer = null;
  const page = { document: {}, window: {} };
  const scripts = scriptsOf(page.document);
  runLoader({
    window: page.window,
    document: page.document,
    performance: { now: () => now },
    setTimeout: (fn, delay) => void (timer = { fn, delay }),
  });
  const monitor = page.window.LiveMonitor.initLiveMonitor({ endpoint: MONITOR });
  const delays = [];
  for (;;) {
    monitor.record("checkout", "pay", { duration_ms: 5 }); // never throws, bundle or not
    const script = scripts.at(-1);
    assert.equal(script.async, true);
    assert.equal(script.src, README_BUNDLE_URL);
    script.onerror(); // the monitor is down
    if (!timer) break;
    delays.push(timer.delay);
    now += timer.delay;
    const { fn } = timer;
    timer = null;
    fn();
  }
  delays.forEach((delay, i) => {
    const wait = Math.min(1000 * 2 ** i, 60_000);
    assert.ok(delay >= wait / 2 && delay <= wait, `try ${i + 2} after ${delay} ms`);
  });
  assert.ok(now < LOAD_FOR_MS && now > LOAD_FOR_MS - 60_000, `last try at ${now} ms`);
  assert.ok(scripts.length >= 8 && scripts.length <= 14, `${scripts.length} tries`);
  assert.deepEqual(monitor.stats(), {
    queued: scripts.length,
    sent: 0,
    dropped: 0,
    retried: 0,
    failed: 0,
  });
});

test("the calls made before the bundle become events with their own times", async () => {
  env = installBrowser();
  const scripts = scriptsOf(env.document);
  runLoader();
  assert.equal(scripts[0].src, README_BUNDLE_URL);
  monitor = LiveMonitor.initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false, pageLoad: false },
  });
  const madeAt = Date.now();
  monitor.record("checkout", "pay", { duration_ms: 12, details: { step: 1 } });
  const cart = monitor.trackComponent("Cart");
  cart.beginRender();
  await sleep(30);
  cart.mount();
  assert.equal(
    cart.render(() => "drawn"),
    "drawn",
  );
  let settle;
  const pending = cart.render(() => new Promise((resolve) => (settle = resolve)));
  assert.throws(() => cart.render(() => assert.fail("boom")), /boom/);
  await monitor.flush(); // the stand-in's: nothing to send yet
  await sleep(30);
  const loadedAt = Date.now();
  new Function(BUNDLE)(); // the bundle arrives
  settle("late");
  assert.equal(await pending, "late");
  await waitFor(() => monitor.stats().queued >= 5, { what: "5 queued events" });
  await monitor.flush();
  const events = await env.events();
  assert.deepEqual(
    events.map((e) => [e.component, e.action, e.status]),
    [
      ["checkout", "pay", "success"],
      ["Cart", "mount", "success"],
      ["Cart", "update", "success"],
      ["Cart", "update", "error"],
      ["Cart", "update", "success"],
    ],
  );
  const [pay, mount] = events;
  assert.deepEqual([pay.duration_ms, pay.details], [12, { step: 1 }]);
  assert.ok(Math.abs(Date.parse(pay.timestamp) - madeAt) < 15, "the record keeps its time");
  assert.ok(Date.parse(mount.timestamp) < loadedAt && mount.duration_ms >= 25, "timed as made");
  assert.ok(Date.parse(events[4].timestamp) >= loadedAt, "the late render is sent as it settles");
  assert.equal(monitor.stats().sent, 5, "the page's handle is now the logger's own");
  assert.equal(typeof LiveMonitor.normalizeRoute, "function");
});

test("the loader holds 1,000 calls and counts the rest as dropped", async () => {
  env = installBrowser();
  scriptsOf(env.document);
  runLoader();
  monitor = LiveMonitor.initLiveMonitor({ endpoint: MONITOR, maxQueue: 2000 });
  for (let i = 0; i < 1005; i++) monitor.record("burst", "click", { details: { i } });
  assert.equal(monitor.stats().dropped, 5);
  new Function(BUNDLE)();
  assert.equal(monitor.stats().dropped, 5);
  await waitFor(() => monitor.stats().queued + monitor.stats().sent >= 1000, { what: "replay" });
});

test("options the stand-in could not check are reported in the console, never thrown", () => {
  env = installBrowser();
  scriptsOf(env.document);
  runLoader();
  const stand = LiveMonitor.initLiveMonitor({ endpoint: MONITOR, sampleRate: 2 });
  stand.record("checkout", "pay");
  const reported = [];
  const error = console.error;
  console.error = (...args) => reported.push(args.join(" "));
  try {
    new Function(BUNDLE)();
    stand.record("checkout", "pay");
    stand.trackComponent("Cart").mount();
  } finally {
    console.error = error;
  }
  assert.equal(reported.length, 1);
  assert.match(reported[0], /sampleRate must be 0, or between 0.0001 and 1, got 2/);
  assert.equal(env.ingestCalls.length, 0);
});

test("a page that already has the logger keeps it: the loader does nothing", () => {
  env = installBrowser();
  const scripts = scriptsOf(env.document);
  new Function(BUNDLE)();
  const real = globalThis.LiveMonitor;
  runLoader();
  assert.equal(globalThis.LiveMonitor, real);
  assert.equal(scripts.length, 0);
});
