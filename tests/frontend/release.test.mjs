// The `release` and `environment` options: on every event the logger sends (API calls and
// custom events alike), absent when not given, and a clear error for a value no event can hold.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { initLiveMonitor } from "../../static/live-monitor.mjs";
import { MONITOR, assertExecutionEvent, installBrowser, waitFor } from "./fake_browser.mjs";

let env;
let monitor;

function start(options = {}) {
  env = installBrowser({ route: async () => new Response("{}") });
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false, pageLoad: false },
    ...options,
  });
  return monitor;
}

async function sent(count) {
  await waitFor(() => monitor.stats().queued >= count, { what: `${count} queued events` });
  await monitor.flush();
  const events = await env.events();
  events.forEach((e) => assertExecutionEvent(assert, e));
  return events;
}

afterEach(() => {
  monitor?.stop();
  env?.uninstall();
  monitor = env = undefined;
});

test("every event carries the release and the environment it was given", async () => {
  start({ release: "web@1.4.2", environment: "staging" });
  await fetch("/api/orders/42");
  monitor.record("checkout", "pay", { duration_ms: 12 });
  const events = await sent(2);
  assert.deepEqual(events.map((e) => [e.component, e.release, e.environment]).sort(), [
    ["api", "web@1.4.2", "staging"],
    ["checkout", "web@1.4.2", "staging"],
  ]);
});

test("without the options no event names a release or an environment", async () => {
  start({ environment: "production" });
  monitor.record("checkout", "pay");
  const [event] = await sent(1);
  assert.equal(event.environment, "production");
  assert.ok(!("release" in event), "an event says nothing of a release it was not given");
});

test("a release or an environment no event can hold is refused at start", () => {
  env = installBrowser();
  for (const [options, message] of [
    [{ release: "" }, /release must be text of 1 to 200 characters, got $/],
    [{ release: "r".repeat(201) }, /release must be text of 1 to 200 characters/],
    [{ environment: 7 }, /environment must be text of 1 to 64 characters, got 7/],
  ])
    assert.throws(() => initLiveMonitor({ endpoint: MONITOR, ...options }), {
      name: "RangeError",
      message,
    });
});
