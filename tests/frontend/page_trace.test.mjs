// A page load in the trace of the server's request for the page: its own file, since the
// logger reports a page's load once per page (here: once per test process).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { initLiveMonitor } from "../../static/live-monitor.mjs";
import { MONITOR, assertExecutionEvent, installBrowser, waitFor } from "./fake_browser.mjs";

let env;
let monitor;

afterEach(() => {
  monitor?.stop();
  env?.uninstall();
  monitor = env = undefined;
});

async function sentEvents() {
  await monitor.flush();
  const events = await env.events();
  events.forEach((e) => assertExecutionEvent(assert, e));
  return events;
}

test("page load continues the trace the server put in the page", async (t) => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const nav = { responseStart: 80.5, domContentLoadedEventEnd: 300.25, loadEventEnd: 512 };
  t.mock.method(performance, "getEntriesByType", (type) => (type === "navigation" ? [nav] : []));
  env = installBrowser();
  env.document.readyState = "complete";
  const meta = { getAttribute: (name) => name === "content" && `00-${trace}-00f067aa0ba902b7-01` };
  env.document.querySelector = (selector) =>
    selector === 'meta[name="traceparent"]' ? meta : null;
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
  });
  await waitFor(() => monitor.stats().queued === 1, { what: "page load event" });
  const [event] = await sentEvents();
  assert.equal(event.action, "load");
  assert.equal(event.trace_id, trace);
  assert.equal(event.parent_span_id, "00f067aa0ba902b7", "a child of the server's request");
  assert.match(event.span_id, /^[0-9a-f]{16}$/);
  assert.notEqual(event.span_id, "00f067aa0ba902b7");
});
