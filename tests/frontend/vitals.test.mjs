// Web vitals: FCP, LCP, CLS and INP come from web-vitals; TTFB from the navigation entry the
// page-load event reads too. A page reports its load once, so this file holds one such page.
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

test("a prerendered page reports TTFB from its activation, once it is shown", async (t) => {
  // While prerendering, a browser reports activationStart 0; it is set when the page is shown.
  const nav = { responseStart: 1900, activationStart: 0, domContentLoadedEventEnd: 2500 };
  nav.loadEventEnd = 3000;
  t.mock.method(performance, "getEntriesByType", (type) => (type === "navigation" ? [nav] : []));
  t.mock.method(performance, "now", () => 10_000);
  env = installBrowser();
  Object.assign(env.document, { readyState: "complete", prerendering: true });
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { pageLoad: false },
  });
  monitor.record("custom", "before-activation");
  // Let the 0 ms timers already scheduled run (same delay: they fire in order), so that a
  // report that did not wait for activation would happen now, with activationStart still 0.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(monitor.stats().queued, 1, "nothing reported while prerendering");

  Object.assign(nav, { activationStart: 100 });
  env.document.prerendering = false;
  env.document.dispatchEvent(new Event("prerenderingchange"));
  await waitFor(() => monitor.stats().queued === 2, { what: "the TTFB event" });
  await monitor.flush();
  const events = await env.events();
  events.forEach((e) => assertExecutionEvent(assert, e));
  assert.deepEqual(
    events.map((e) => [e.component, e.action]),
    [
      ["custom", "before-activation"],
      ["web-vitals", "TTFB"],
    ],
    "TTFB after activation, and no page-load event (capture.pageLoad is off)",
  );
  const ttfb = events[1];
  assert.equal(ttfb.duration_ms, 1800, "responseStart - activationStart");
  assert.deepEqual(ttfb.details, { value: 1800, rating: "needs-improvement" });
});
