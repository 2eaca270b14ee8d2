/**
 * Browser logger for the Live Execution Monitor.
 *
 * Captures what a user's browser experiences (API calls, clicks, scrolls, form submits,
 * component lifecycle, page load, web vitals, JS errors) as ExecutionEvents and posts them in
 * batches to `POST {endpoint}/api/live-execution/events`, so the monitor can compare them with
 * the backend's view of the same requests (same `METHOD /route` key, same W3C trace id).
 *
 * Built by `npm run build` to `static/live-monitor.js` (classic script, defines
 * `window.LiveMonitor`), `static/live-monitor.mjs` (ES module) and the npm package
 * `dist/live-monitor-browser` (ES module and types, no global). Pages load the classic script
 * with the README's loader (frontend/loader.ts), a stand-in `LiveMonitor` that queues the
 * page's calls until this bundle arrives and replays them (see `replay` below):
 *
 * ```html
 * <script>(the loader, from the README)</script>
 * <script>
 *   const monitor = LiveMonitor.initLiveMonitor({endpoint: "http://localhost:5001"});
 *   const cart = monitor.trackComponent("Cart");
 *   cart.beginRender(); renderCart(); cart.mount();
 * </script>
 * ```
 *
 * The logger never throws into the host page: every hook is wrapped, and a failure inside
 * the logger leaves the page's own fetch/XHR, listeners and promises behaving as before.
 *
 * This file is the entry point (options, the running monitor, the public API); the parts live
 * in frontend/: routes.ts (endpoint keys, trace targets), transport.ts (queue, batches,
 * retries), network.ts (fetch and XHR), capture.ts (clicks, scrolls, forms, errors, page load,
 * web vitals, component trackers), loader.ts (the stand-in), types.ts and util.ts.
 */
import {
  captureInteractions,
  capturePageLoad,
  captureWebVitals,
  createTracker,
  describeElement,
} from "./frontend/capture";
import type { LoaderStub, StubCall } from "./frontend/loader";
import { captureNetwork } from "./frontend/network";
import { endpointKey, normalizeRoute, outgoingKey, serverTimingAppMs } from "./frontend/routes";
import { createTransport, packBatches } from "./frontend/transport";
import type {
  CaptureKind,
  Emit,
  ExecutionEvent,
  Listen,
  LiveMonitorHandle,
  LiveMonitorOptions,
} from "./frontend/types";
import { byteLength, g, isoNow, JSON_TYPE, ms, now, safely } from "./frontend/util";

export type {
  CaptureKind,
  ComponentTracker,
  ExecutionEvent,
  LiveMonitorHandle,
  LiveMonitorOptions,
  LiveMonitorStats,
  RecordOptions,
  TraceTarget,
} from "./frontend/types";
export {
  describeElement,
  endpointKey,
  normalizeRoute,
  outgoingKey,
  packBatches,
  serverTimingAppMs,
};

const INGEST_PATH = "/api/live-execution/events";
const MAX_DETAILS_BYTES = 8 * 1024;
const text = (value: unknown, max: number): string => String(value).slice(0, max) || "unknown";

let active: LiveMonitorHandle | null = null;
/** Where this bundle was loaded from: the default `endpoint`. */
const scriptSrc = (g.document?.currentScript as HTMLScriptElement | null | undefined)?.src;
const scriptOrigin = scriptSrc ? new URL(scriptSrc).origin : null;

/** Throws a clear message saying what the option `name` must be, unless `valid`. */
function check(name: string, value: unknown, valid: unknown, must: string): asserts valid {
  if (!valid) throw new RangeError(`LiveMonitor: ${name} must be ${must}, got ${String(value)}`);
}

/** One running logger: checks the options, then installs every capture until `stop()`. */
function start(opts: LiveMonitorOptions): LiveMonitorHandle {
  type NumberOption =
    "batchSize" | "maxQueue" | "retryBaseMs" | "flushIntervalMs" | "maxRetryDelayMs" | "maxAgeMs";
  const positive = (name: NumberOption, fallback: number): number => {
    const value = opts[name] ?? fallback;
    check(
      name,
      value,
      typeof value === "number" && value > 0 && value < Infinity,
      "a positive number",
    );
    return value;
  };
  const origin = g.location?.origin;
  const endpoint = opts.endpoint ?? scriptOrigin ?? origin;
  let base: URL | undefined;
  try {
    if (typeof endpoint === "string" && endpoint) base = new URL(endpoint, g.location?.href);
  } catch {
    // not a URL: refused below
  }
  check("endpoint", endpoint, base, "the monitor's base URL");
  const sampleRate = opts.sampleRate ?? 1;
  // The monitor takes rates from 0.0001 (an event then stands for 10,000); 0 reports no calls.
  const rateOk =
    typeof sampleRate === "number" &&
    (sampleRate === 0 || (sampleRate >= 0.0001 && sampleRate <= 1));
  check("sampleRate", sampleRate, rateOk, "0, or between 0.0001 and 1");
  const maxRetries = opts.maxRetries ?? Infinity;
  const retriesOk = maxRetries === Infinity || (Number.isInteger(maxRetries) && maxRetries >= 0);
  check("maxRetries", maxRetries, retriesOk, "a whole number >= 0");
  const storeBytes = opts.storeBytes ?? 1024 * 1024;
  check(
    "storeBytes",
    storeBytes,
    Number.isInteger(storeBytes) && storeBytes >= 0,
    "a whole number >= 0",
  );
  const targets = opts.tracePropagationTargets;
  check("tracePropagationTargets", targets, !targets || Array.isArray(targets), "an array");
  const labels: Pick<ExecutionEvent, "release" | "environment"> = {};
  for (const name of ["release", "environment"] as const) {
    const [value, max] = [opts[name], name === "release" ? 200 : 64];
    const ok = value === undefined || (typeof value === "string" && !!value && value.length <= max);
    check(name, value, ok, `text of 1 to ${max} characters`);
    if (value !== undefined) labels[name] = value;
  }
  const flushIntervalMs = positive("flushIntervalMs", 2000);
  // Accept the ingest URL or the API base too, not only the monitor's base URL.
  const ingestUrl = base.href.replace(/(\/api\/live-execution(\/events)?)?\/*$/, "") + INGEST_PATH;
  const service = opts.service ?? "frontend";
  const sampled = Math.random() < sampleRate;
  const headers: Record<string, string> = { "Content-Type": JSON_TYPE };
  if (opts.ingestKey) headers["X-Ingest-Key"] = opts.ingestKey;
  // A beacon cannot carry headers, and a cross-origin JSON beacon needs a CORS preflight.
  const beacon = base.origin === origin && !opts.ingestKey;
  const transport = createTransport({
    url: ingestUrl,
    send: g.fetch,
    headers,
    beacon,
    batchSize: Math.floor(positive("batchSize", 50)),
    maxQueue: Math.floor(positive("maxQueue", 1000)),
    maxRetries,
    retryBaseMs: positive("retryBaseMs", 1000),
    maxRetryDelayMs: positive("maxRetryDelayMs", 60_000),
    maxAgeMs: positive("maxAgeMs", 600_000),
    storeBytes,
  });
  const { flush, flushNow } = transport;
  const undo: Array<() => void> = [];
  let stopped = false;
  let hidden = false;
  let hiding = false; // a flushNow is scheduled for the events recorded while hidden

  const later = (fn: () => void, delay: number): void =>
    void setTimeout(() => stopped || safely(fn)(), delay);

  const onStop = (fn: () => void): void => void undo.push(fn);
  const listen: Listen = (target, type, fn, options) => {
    if (!target?.addEventListener) return;
    const wrapped = safely(fn);
    target.addEventListener(type, wrapped, options);
    onStop(() => target.removeEventListener(type, wrapped, options));
  };
  const emit: Emit = (component, action, fields = {}) => {
    if (stopped) return;
    try {
      let details = fields.details ?? {};
      if (byteLength(JSON.stringify(details)) > MAX_DETAILS_BYTES) details = { truncated: true };
      const event: ExecutionEvent = {
        timestamp: fields.timestamp ?? isoNow(),
        service,
        component: text(component, 128),
        action: text(action, 256),
        duration_ms: typeof fields.duration_ms === "number" ? ms(fields.duration_ms) : null,
        status: fields.status === "error" ? "error" : "success",
        details,
      };
      if (fields.trace_id && fields.span_id) {
        event.trace_id = fields.trace_id;
        event.span_id = fields.span_id;
        if (fields.parent_span_id) event.parent_span_id = fields.parent_span_id;
      }
      if (fields.sample_rate) event.sample_rate = fields.sample_rate;
      Object.assign(event, labels);
      transport.enqueue(event);
      // The page is going away: send at once (the flush interval may never come).
      if (hidden && !hiding) {
        hiding = true;
        later(() => ((hiding = false), flushNow()), 0);
      }
    } catch {
      transport.lost();
    }
  };

  const enabled = (kind: CaptureKind): boolean => opts.capture?.[kind] !== false;
  const doc = g.document;
  if (enabled("api"))
    captureNetwork(emit, onStop, () => stopped, ingestUrl, sampled, sampleRate, targets);
  captureInteractions(emit, listen, later, enabled);
  // Hidden or going away: what fits goes with keepalive, the rest waits in the store; back
  // (visible, or restored from the back/forward cache): the stored events are sent as usual.
  const shown = (): void => {
    hidden = false;
    transport.resume();
  };
  listen(doc, "visibilitychange", () => {
    if (doc.visibilityState !== "hidden") return shown();
    hidden = true;
    flushNow();
  });
  listen(g, "pagehide", () => {
    hidden = true;
    flushNow();
  });
  listen(g, "pageshow", shown);
  const load = enabled("pageLoad");
  const vitals = enabled("webVitals");
  if (vitals) captureWebVitals(emit);
  if (load || vitals) capturePageLoad(emit, listen, later, load);
  const interval = setInterval(() => void flush(), flushIntervalMs);

  const handle: LiveMonitorHandle = {
    trackComponent: (name) => createTracker(emit, name),
    record: emit,
    flush,
    stop: safely(() => {
      if (stopped) return;
      flushNow(true);
      stopped = true;
      clearInterval(interval);
      for (const step of undo) safely(step)();
      if (active === handle) active = null;
    }),
    stats: transport.stats,
  };
  return handle;
}

/**
 * Starts the logger and returns its handle. A second call while one is running returns the
 * running one. Throws only for invalid options (clear message), never afterwards.
 */
export function initLiveMonitor(options?: LiveMonitorOptions): LiveMonitorHandle {
  if (active) console.warn("LiveMonitor: already running");
  return (active ??= start(options ?? {}));
}

/**
 * Replays the loader's queued calls on `handle` (frontend/loader.ts): each as if made when it
 * was, its events stamped with that time and its trackers timed by it. `real` maps each
 * stand-in (handle, trackers) to what now stands behind it.
 */
function replayer(handle: LiveMonitorHandle, stand: object | undefined) {
  let at: number | null = null; // when the call being replayed was made (performance.now())
  const clock = (): number => at ?? now();
  const record = handle.record as Emit; // record is emit: it takes a timestamp too
  const emit: Emit = (component, action, fields = {}) =>
    record(
      component,
      action,
      at === null ? fields : { ...fields, timestamp: isoNow(performance.timeOrigin + at) },
    );
  const real = new Map<object, object>(stand ? [[stand, handle]] : []);
  const call = ([target, method, args, time, made]: StubCall): void => {
    const to = real.get(target) as Record<string, (...a: unknown[]) => unknown> | undefined;
    if (method === "trackComponent" && made)
      real.set(made, createTracker(emit, String(args[0]), clock));
    else if (method === "record") emit(...(args as Parameters<Emit>));
    else if (method === "render" && to) {
      const [started, failed, error] = args;
      at = started as number;
      to.render(() => {
        at = time;
        if (failed) throw error;
      });
    } else to?.[method]?.(...args);
  };
  const run = (queued: StubCall): void => {
    at = queued[3];
    try {
      call(queued);
    } catch {
      // a render that failed in the page: its error event is out, the page had the throw
    } finally {
      at = null;
    }
  };
  return { run, real };
}

/**
 * Starts the logger the loader's stand-in was asked for, replays the calls queued there, then
 * turns the stand-ins the page holds into the real ones and forwards what still reaches the
 * queue (a render that settles later).
 */
function replay(stub: LoaderStub): void {
  if (!stub.o) return;
  let handle: LiveMonitorHandle;
  try {
    handle = initLiveMonitor(stub.o);
  } catch (error) {
    // The stand-in could not check the options; the page must not get the error now.
    console.error(String(error));
    stub.q.push = () => 0;
    return;
  }
  const { run, real } = replayer(handle, stub.h);
  stub.q.forEach(run);
  stub.q.length = 0;
  stub.q.push = (...calls) => (calls.forEach(run), 0);
  const stats = handle.stats;
  for (const [from, to] of real) Object.assign(from, to);
  if (stub.h) {
    // What the stand-in had to leave out is counted as dropped.
    stub.h.stats = () => {
      const counts = stats();
      return { ...counts, dropped: counts.dropped + stub.d };
    };
  }
}

/** The classic-script build's `LiveMonitor` global, taking over from the loader's stand-in. */
function installGlobal(): void {
  const global = g as { LiveMonitor?: object };
  const stub = global.LiveMonitor as LoaderStub | undefined;
  global.LiveMonitor = {
    initLiveMonitor,
    normalizeRoute,
    endpointKey,
    describeElement,
    serverTimingAppMs,
    packBatches,
  };
  if (!stub || !Array.isArray(stub.q)) return;
  safely(replay)(stub);
  stub.initLiveMonitor = initLiveMonitor; // for a page that kept the stand-in itself
}

/** Set to false by the npm package's build: an app that imports the logger gets no global. */
declare const LIVE_MONITOR_GLOBAL: boolean | undefined;
if (typeof LIVE_MONITOR_GLOBAL === "undefined" || LIVE_MONITOR_GLOBAL) installGlobal();
