// Small hand-written stand-ins for the browser globals the logger touches (window, document,
// location, navigator.sendBeacon, fetch, XMLHttpRequest), so node's test runner can drive the
// built bundle without jsdom. Each test installs a fresh set and removes it afterwards.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const PAGE_ORIGIN = "http://app.test";
export const MONITOR = "http://monitor.test:5001";
export const INGEST = `${MONITOR}/api/live-execution/events`;
const GLOBALS = [
  "window",
  "document",
  "location",
  "navigator",
  "fetch",
  "XMLHttpRequest",
  "addEventListener",
  "removeEventListener",
  "dispatchEvent",
  "scrollY",
  "innerHeight",
];

/** The shared route table both the Python and the TypeScript side must agree on. */
export function routeFixture() {
  const path = fileURLToPath(new URL("../fixtures/route_keys.json", import.meta.url));
  return JSON.parse(readFileSync(path, "utf8"));
}

/** The shared table of outgoing-call keys ([method, url, key]), read by the Python side too. */
export function outgoingFixture() {
  const path = fileURLToPath(new URL("../fixtures/outgoing_keys.json", import.meta.url));
  return JSON.parse(readFileSync(path, "utf8")).outgoing;
}

/** An Event whose `target` is a fake element, as a real click or submit would have. */
export class TargetedEvent extends Event {
  constructor(type, target, init = {}) {
    super(type, { bubbles: true, ...init });
    this.fakeTarget = target;
  }
  get target() {
    return this.fakeTarget;
  }
}

const INTERACTIVE = new Set([
  "a",
  "button",
  "input",
  "select",
  "textarea",
  "label",
  "summary",
  "option",
]);

/** A minimal element; its text and value are there for the logger to ignore. */
export function element(
  tag,
  attrs = {},
  { parent = null, text = "", value = undefined, elements } = {},
) {
  const el = {
    tagName: tag.toUpperCase(),
    parentElement: parent,
    textContent: text,
    innerText: text,
    getAttribute: (name) => (name in attrs ? String(attrs[name]) : null),
    closest(selector) {
      for (let node = el; node; node = node.parentElement) {
        if (INTERACTIVE.has(node.tagName.toLowerCase())) return node;
      }
      return null;
    },
  };
  if (value !== undefined) el.value = value;
  if (elements) el.elements = elements;
  return el;
}

/** Makes an EventTarget remember which listeners it holds, to check that they are removed. */
function counted(target) {
  const add = target.addEventListener.bind(target);
  const remove = target.removeEventListener.bind(target);
  const key = (type, fn, options) =>
    `${type}|${typeof options === "boolean" ? options : !!options?.capture}`;
  target.listeners = new Map();
  target.addEventListener = (type, fn, options) => {
    target.listeners.set(fn, [...(target.listeners.get(fn) ?? []), key(type, fn, options)]);
    add(type, fn, options);
  };
  target.removeEventListener = (type, fn, options) => {
    const left = (target.listeners.get(fn) ?? []).filter((k) => k !== key(type, fn, options));
    if (left.length) target.listeners.set(fn, left);
    else target.listeners.delete(fn);
    remove(type, fn, options);
  };
  return target;
}

/** A fake XMLHttpRequest whose responses come from the same router as the fake fetch. */
function makeXhr(env) {
  return class FakeXhr extends EventTarget {
    open(method, url) {
      this.method = method;
      this.url = url;
      this.headers = {};
      this.status = 0;
      this.responseHeaders = "";
    }
    setRequestHeader(name, value) {
      const key = name.toLowerCase();
      this.headers[key] = key in this.headers ? `${this.headers[key]}, ${value}` : value;
    }
    getAllResponseHeaders() {
      return this.responseHeaders;
    }
    getResponseHeader(name) {
      // As browsers do: every header of that name, joined with ", "; null when there is none.
      const values = this.responseHeaders
        .split(/\r?\n/)
        .filter((line) => line.toLowerCase().startsWith(`${name.toLowerCase()}:`))
        .map((line) => line.slice(name.length + 1).trim());
      return values.length ? values.join(", ") : null;
    }
    send(body) {
      env.pageRequests.push({
        kind: "xhr",
        url: String(this.url),
        method: this.method,
        headers: { ...this.headers },
        body,
      });
      setTimeout(async () => {
        try {
          const response = await env.route(String(this.url), { method: this.method });
          this.status = response.status;
          this.responseHeaders = [...response.headers].map(([k, v]) => `${k}: ${v}\r\n`).join("");
          this.dispatchEvent(new Event("load"));
        } catch {
          this.status = 0;
          this.dispatchEvent(new Event("error"));
        }
        this.dispatchEvent(new Event("loadend"));
      }, 1);
    }
  };
}

/**
 * Installs fake browser globals. `route(url, init)` answers page requests (return a Response
 * or throw); `ingest(body)` answers the logger's posts (default 200). Returns the recorders.
 */
export function installBrowser({ route, ingest, sameOriginMonitor = false } = {}) {
  const windowTarget = counted(new EventTarget());
  const document = Object.assign(counted(new EventTarget()), {
    readyState: "loading",
    visibilityState: "visible",
    currentScript: null,
    documentElement: { scrollHeight: 4000 },
    body: { scrollHeight: 4000 },
  });
  const env = {
    ingestUrl: sameOriginMonitor ? `${PAGE_ORIGIN}/api/live-execution/events` : INGEST,
    ingestCalls: [],
    pageRequests: [],
    beacons: [],
    document,
    route: route ?? (async () => new Response("ok", { status: 200 })),
    ingest: ingest ?? (async () => new Response('{"accepted": 0}', { status: 200 })),
  };
  /** Listeners currently registered on the fake window and document. */
  env.listenerCount = () => windowTarget.listeners.size + document.listeners.size;
  env.fetch = async function fakeFetch(input, init = {}) {
    const url = input instanceof Request ? input.url : String(input);
    if (url === env.ingestUrl) {
      const body = JSON.parse(init.body);
      env.ingestCalls.push({
        url,
        init,
        body,
        bytes: Buffer.byteLength(init.body),
        at: Date.now(),
      });
      return env.ingest(body, env.ingestCalls.length);
    }
    const headers = new Headers(
      init.headers ?? (input instanceof Request ? input.headers : undefined),
    );
    const method = init.method ?? (input instanceof Request ? input.method : "GET");
    env.pageRequests.push({ kind: "fetch", url, method, headers });
    const start = performance.now();
    const response = await env.route(url, init);
    // As a browser does once the body has come: the fetch's Resource Timing entry.
    const timing = {
      startTime: start,
      endTime: performance.now(),
      finalConnectionTimingInfo: null,
    };
    const name = new URL(url, PAGE_ORIGIN).href;
    performance.markResourceTiming(timing, name, "fetch", globalThis, "", {}, response.status, "");
    return response;
  };
  const values = {
    window: globalThis,
    document,
    location: new URL(`${PAGE_ORIGIN}/shop/cart?session=secret`),
    navigator: {
      sendBeacon(url, blob) {
        env.beacons.push({ url, blob });
        return true;
      },
    },
    fetch: env.fetch,
    XMLHttpRequest: makeXhr(env),
    addEventListener: windowTarget.addEventListener.bind(windowTarget),
    removeEventListener: windowTarget.removeEventListener.bind(windowTarget),
    dispatchEvent: windowTarget.dispatchEvent.bind(windowTarget),
    scrollY: 0,
    innerHeight: 1000,
  };
  const saved = GLOBALS.map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]);
  for (const [name, value] of Object.entries(values)) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
  }
  env.uninstall = () => {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globalThis[name];
    }
  };
  /** Every event the monitor received so far, in order (fetch posts and beacons). */
  env.events = async () => {
    const fromBeacons = await Promise.all(
      env.beacons.map(async (b) => JSON.parse(await b.blob.text()).events),
    );
    return [...env.ingestCalls.flatMap((c) => c.body.events), ...fromBeacons.flat()];
  };
  return env;
}

/** Polls `predicate` until it returns a truthy value or the deadline passes. */
export async function waitFor(predicate, { timeoutMs = 3000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Checks an event against the README's ExecutionEvent schema. */
export function assertExecutionEvent(assert, event) {
  assert.ok(
    !Number.isNaN(Date.parse(event.timestamp)) && event.timestamp.endsWith("Z"),
    `timestamp ${event.timestamp}`,
  );
  assert.equal(event.service, "frontend");
  assert.ok(
    typeof event.component === "string" &&
      event.component.length > 0 &&
      event.component.length <= 128,
  );
  assert.ok(
    typeof event.action === "string" && event.action.length > 0 && event.action.length <= 256,
  );
  assert.ok(
    event.duration_ms === null || (typeof event.duration_ms === "number" && event.duration_ms >= 0),
  );
  assert.ok(["success", "error"].includes(event.status));
  assert.equal(typeof event.details, "object");
  assert.ok(Buffer.byteLength(JSON.stringify(event.details)) <= 8192);
  if ("trace_id" in event) assert.match(event.trace_id, /^[0-9a-f]{32}$/);
  if ("span_id" in event) assert.match(event.span_id, /^[0-9a-f]{16}$/);
  if ("parent_span_id" in event) assert.match(event.parent_span_id, /^[0-9a-f]{16}$/);
  if ("sample_rate" in event) assert.ok(event.sample_rate > 0 && event.sample_rate <= 1);
}
