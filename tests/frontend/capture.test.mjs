// What the page does, captured without leaking what the user typed or read: clicks, form
// submits, scrolls, errors, component lifecycle and page load.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { describeElement, initLiveMonitor } from "../../static/live-monitor.mjs";
import {
  MONITOR,
  TargetedEvent,
  assertExecutionEvent,
  element,
  installBrowser,
  waitFor,
} from "./fake_browser.mjs";

let env;
let monitor;

function start(options = {}) {
  env = installBrowser();
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
    ...options,
  });
  return monitor;
}

async function sentEvents() {
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

test("a click is reported by a short selector, never by text or values", async () => {
  start();
  const button = element(
    "button",
    { id: "save", class: "btn  primary extra", "data-user": "alice@example.com" },
    {
      text: "Pay secret-amount",
    },
  );
  const icon = element("span", { class: "icon" }, { parent: button, text: "secret-icon-text" });
  env.document.dispatchEvent(new TargetedEvent("click", icon));
  const input = element("input", { class: "search" }, { value: "hunter2-password" });
  env.document.dispatchEvent(new TargetedEvent("click", input));
  const events = await sentEvents();
  assert.deepEqual(
    events.map((e) => [e.component, e.action, e.duration_ms]),
    [
      ["click", "button#save.btn.primary", null],
      ["click", "input.search", null],
    ],
  );
  assert.deepEqual(events[0].details, {
    tag: "button",
    id: "save",
    selector: "button#save.btn.primary",
    count: 1,
  });
  const text = JSON.stringify(events);
  for (const secret of ["secret", "hunter2", "alice@example.com", "Pay"])
    assert.ok(!text.includes(secret), secret);
});

test("describeElement keeps odd ids and class names out of the selector", () => {
  assert.equal(describeElement(element("A", { class: "nav-link" })), "a.nav-link");
  assert.equal(describeElement(element("div", { id: "has space", class: "a:b ok" })), "div.ok");
});

test("a form submit reports its id or name and field count, never the values", async () => {
  start();
  const fields = [
    element("input", { name: "card" }, { value: "4111 1111 1111 1111" }),
    element("input", { name: "cvc" }, { value: "987" }),
    element("button", { type: "submit" }, { text: "Buy" }),
  ];
  env.document.dispatchEvent(
    new TargetedEvent("submit", element("form", { id: "checkout" }, { elements: fields })),
  );
  env.document.dispatchEvent(
    new TargetedEvent("submit", element("form", { name: "login" }, { elements: [] })),
  );
  const [checkout, login] = await sentEvents();
  assert.equal(checkout.component, "form");
  assert.equal(checkout.action, "submit form#checkout");
  assert.deepEqual(checkout.details, { form_id: "checkout", form_name: null, field_count: 3 });
  assert.equal(login.action, "submit form[name=login]");
  assert.equal(login.details.form_name, "login");
  const text = JSON.stringify([checkout, login]);
  for (const secret of ["4111", "987", "card", "cvc"]) assert.ok(!text.includes(secret), secret);
});

test("scrolls are one event a second, counting the scrolls, with the last depth", async () => {
  start();
  globalThis.scrollY = 1000;
  globalThis.dispatchEvent(new Event("scroll"));
  globalThis.scrollY = 2000;
  for (let i = 0; i < 20; i++) globalThis.dispatchEvent(new Event("scroll"));
  assert.equal(monitor.stats().queued, 1, "only the first scroll of the second is kept at once");
  await waitFor(() => monitor.stats().queued === 2, { what: "trailing scroll event" });
  const events = await sentEvents();
  assert.deepEqual(
    events.map((e) => [e.component, e.action, e.details.depth_pct, e.details.count]),
    [
      ["scroll", "scroll", 50, 1],
      ["scroll", "scroll", 75, 20],
    ],
  );
});

/** The events of each `component` sent so far, once their counts add up to `total`. */
async function counted(component, total) {
  const of = async () => (await env.events()).filter((e) => e.component === component);
  const sum = async () => (await of()).reduce((n, e) => n + e.details.count, 0);
  await waitFor(async () => (await monitor.flush(), (await sum()) >= total), {
    what: `${total} ${component}s counted`,
  });
  assert.equal(await sum(), total);
  return of();
}

test("2,000 clicks in one task are a few events whose counts add up to 2,000", async () => {
  start();
  const button = element("button", { id: "buy" });
  for (let i = 0; i < 2000; i++) env.document.dispatchEvent(new TargetedEvent("click", button));
  const clicks = await counted("click", 2000);
  assert.deepEqual(
    clicks.map((e) => [e.action, e.details.count]),
    [
      ["button#buy", 1], // the first at once: a click that navigates away is not held back
      ["button#buy", 1999],
    ],
  );
  assert.equal(monitor.stats().dropped, 0);
});

test("a burst over many elements keeps one event per element, then counts the rest together", async () => {
  start();
  const buttons = Array.from({ length: 100 }, (_, i) => element("button", { id: `b${i}` }));
  for (let i = 0; i < 2000; i++) {
    env.document.dispatchEvent(new TargetedEvent("click", buttons[i % 100]));
  }
  const clicks = await counted("click", 2000);
  assert.ok(clicks.length <= 101, `${clicks.length} events`);
  const overflow = clicks.filter((e) => e.action === "(other elements)");
  assert.equal(overflow.length, 1);
  assert.equal(overflow[0].details.count, 50 * 20);
  assert.equal(monitor.stats().dropped, 0);
});

test("clicks held in a burst are sent when the page is hidden, not lost", async () => {
  start();
  const link = element("a", { id: "next" });
  for (let i = 0; i < 3; i++) env.document.dispatchEvent(new TargetedEvent("click", link));
  env.document.visibilityState = "hidden";
  env.document.dispatchEvent(new Event("visibilitychange"));
  const sent = await waitFor(async () => {
    const clicks = (await env.events()).filter((e) => e.component === "click");
    return clicks.length === 2 && clicks;
  });
  assert.deepEqual(
    sent.map((e) => e.details.count),
    [1, 2],
  );
});

test("JS errors and unhandled rejections are reported without queries or stacks", async () => {
  start();
  const error = Object.assign(new Event("error"), {
    message: "TypeError: " + "x".repeat(400),
    filename: "http://app.test/static/app.js?token=secret#frag",
    lineno: 12,
    colno: 34,
    error: new Error("boom"),
  });
  globalThis.dispatchEvent(error);
  globalThis.dispatchEvent(
    Object.assign(new Event("unhandledrejection"), { reason: new RangeError("bad range") }),
  );
  const [onerror, rejection] = await sentEvents();
  assert.equal(onerror.component, "error");
  assert.equal(onerror.action, "window.onerror");
  assert.equal(onerror.status, "error");
  assert.equal(onerror.details.message.length, 300);
  assert.equal(onerror.details.source, "http://app.test/static/app.js");
  assert.equal(onerror.details.line, 12);
  assert.equal(onerror.details.col, 34);
  assert.equal(rejection.action, "unhandledrejection");
  assert.equal(rejection.status, "error");
  assert.equal(rejection.details.message, "RangeError: bad range");
  assert.ok(!JSON.stringify([onerror, rejection]).includes("secret"));
});

test("an error thrown in a loop is reported once, not once a frame", async () => {
  start();
  for (let i = 0; i < 30; i++) {
    globalThis.dispatchEvent(
      Object.assign(new Event("error"), { message: "loop", filename: "a.js", lineno: 1, colno: 2 }),
    );
  }
  globalThis.dispatchEvent(Object.assign(new Event("error"), { message: "other" }));
  const events = await sentEvents();
  assert.deepEqual(
    events.map((e) => e.details.message),
    ["loop", "other"],
  );
});

test("component lifecycle: measured renders, plain updates, unmount, render(fn)", async () => {
  start();
  const cart = monitor.trackComponent("Cart");
  cart.beginRender();
  const until = performance.now() + 15;
  while (performance.now() < until);
  cart.mount();
  cart.update();
  cart.unmount();
  const list = monitor.trackComponent("List");
  assert.equal(
    list.render(() => 42),
    42,
  );
  assert.throws(
    () =>
      list.render(() => {
        throw new SyntaxError("render failed");
      }),
    SyntaxError,
  );
  const asyncResult = list.render(async () => "done");
  assert.equal(await asyncResult, "done");
  await waitFor(() => monitor.stats().queued === 6, { what: "six lifecycle events" });
  const events = await sentEvents();
  const rows = events.map((e) => [e.component, e.action, e.status]);
  assert.deepEqual(rows, [
    ["Cart", "mount", "success"],
    ["Cart", "update", "success"],
    ["Cart", "unmount", "success"],
    ["List", "mount", "success"],
    ["List", "update", "error"],
    ["List", "update", "success"],
  ]);
  assert.ok(events[0].duration_ms >= 14, `render took ${events[0].duration_ms} ms`);
  assert.equal(events[1].duration_ms, null, "update without beginRender is not timed");
  assert.equal(events[2].duration_ms, null);
  assert.equal(typeof events[3].duration_ms, "number");
});

test("page load is reported once from Navigation Timing", async (t) => {
  const nav = { responseStart: 80.5, domContentLoadedEventEnd: 300.25, loadEventEnd: 512 };
  t.mock.method(performance, "getEntriesByType", (type) => (type === "navigation" ? [nav] : []));
  env = installBrowser();
  env.document.readyState = "complete";
  monitor = initLiveMonitor({
    endpoint: MONITOR,
    flushIntervalMs: 60_000,
    capture: { webVitals: false },
  });
  await waitFor(() => monitor.stats().queued === 1, { what: "page load event" });
  const [event] = await sentEvents();
  assert.equal(event.component, "page");
  assert.equal(event.action, "load");
  assert.equal(event.duration_ms, 512);
  assert.deepEqual(event.details, {
    ttfb_ms: 80.5,
    dom_content_loaded_ms: 300.25,
    load_ms: 512,
    path: "/shop/cart",
  });
  assert.equal(event.trace_id, undefined, "no traceparent in the page: no trace");
});

test("stop() removes every listener", async () => {
  env = installBrowser();
  const before = env.listenerCount();
  monitor = initLiveMonitor({ endpoint: MONITOR, capture: { webVitals: false } });
  assert.ok(env.listenerCount() >= before + 8, `${env.listenerCount()} listeners while running`);
  monitor.stop();
  assert.equal(env.listenerCount(), before);
  env.document.dispatchEvent(new TargetedEvent("click", element("button", { id: "late" })));
  env.document.dispatchEvent(new TargetedEvent("submit", element("form", { id: "late" })));
  globalThis.dispatchEvent(new Event("scroll"));
  globalThis.dispatchEvent(Object.assign(new Event("error"), { message: "late" }));
  monitor.trackComponent("Late").mount();
  const { queued, sent, dropped } = monitor.stats();
  assert.deepEqual({ queued, sent, dropped }, { queued: 0, sent: 0, dropped: 0 });
  assert.equal(env.ingestCalls.length, 0);
});

test("web vitals capture does not disturb a page without the APIs it needs", async () => {
  env = installBrowser();
  monitor = initLiveMonitor({ endpoint: MONITOR, flushIntervalMs: 60_000 });
  monitor.record("custom", "still-works");
  const events = await sentEvents();
  assert.deepEqual(
    events.map((e) => e.action),
    ["still-works"],
  );
});
