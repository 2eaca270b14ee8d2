/**
 * Browser logger for the Live Execution Monitor.
 *
 * Captures what a user's browser experiences (API calls, clicks, scrolls, form submits,
 * component lifecycle, page load, web vitals, JS errors) as ExecutionEvents and posts them in
 * batches to `POST {endpoint}/api/live-execution/events`, so the monitor can compare them with
 * the backend's view of the same requests (same `METHOD /route` key, same W3C trace id).
 *
 * Built by `npm run build` to `static/live-monitor.js` (classic script, defines
 * `window.LiveMonitor`) and `static/live-monitor.mjs` (ES module):
 *
 * ```html
 * <script src="http://localhost:5001/static/live-monitor.js"></script>
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
 * web vitals, component trackers), types.ts and util.ts.
 */
import {
  captureInteractions,
  capturePageLoad,
  captureWebVitals,
  createTracker,
  describeElement,
} from "./frontend/capture";
import { captureNetwork } from "./frontend/network";
import { endpointKey, normalizeRoute, serverTimingAppMs } from "./frontend/routes";
import { packBatches, Transport } from "./frontend/transport";
import type {
  CaptureContext,
  CaptureKind,
  ExecutionEvent,
  LiveMonitorHandle,
  LiveMonitorOptions,
} from "./frontend/types";
import { encoder, ms, safely, truncate } from "./frontend/util";

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
export { describeElement, endpointKey, normalizeRoute, packBatches, serverTimingAppMs };

const INGEST_PATH = "/api/live-execution/events";
const MAX_DETAILS_BYTES = 8 * 1024;

type Listener = [EventTarget, string, EventListener, AddEventListenerOptions | boolean];

let active: Monitor | null = null;
/** Where this bundle was loaded from: the default `endpoint`. */
const scriptOrigin = ((): string | null => {
  try {
    const src = (document.currentScript as HTMLScriptElement | null)?.src;
    return src ? new URL(src).origin : null;
  } catch {
    return null;
  }
})();

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`LiveMonitor: ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** One running logger: options, transport, listeners and patches, and how to undo them. */
class Monitor implements CaptureContext {
  readonly transport: Transport;
  readonly handle: LiveMonitorHandle;
  private readonly service: string;
  private readonly ingestUrl: string;
  private readonly sampled: boolean;
  private readonly listeners: Listener[] = [];
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly restore: Array<() => void> = [];
  private interval: ReturnType<typeof setInterval> | null = null;
  private hidden = false;
  private unloadFlush: ReturnType<typeof setTimeout> | null = null;
  stopped = false;

  constructor(private readonly opts: LiveMonitorOptions) {
    const origin = globalThis.location?.origin;
    const endpoint = opts.endpoint ?? scriptOrigin ?? origin;
    if (typeof endpoint !== "string" || !endpoint) {
      throw new TypeError("LiveMonitor: endpoint (the monitor base URL) is required");
    }
    let base: URL;
    try {
      base = new URL(endpoint, globalThis.location?.href);
    } catch {
      throw new TypeError(`LiveMonitor: endpoint is not a URL: ${endpoint}`);
    }
    const sampleRate = opts.sampleRate ?? 1;
    if (typeof sampleRate !== "number" || !(sampleRate >= 0 && sampleRate <= 1)) {
      throw new RangeError(`LiveMonitor: sampleRate must be between 0 and 1, got ${sampleRate}`);
    }
    if (
      opts.tracePropagationTargets !== undefined &&
      !Array.isArray(opts.tracePropagationTargets)
    ) {
      throw new TypeError("LiveMonitor: tracePropagationTargets must be an array");
    }
    // Accept the ingest URL or the API base too, not only the monitor's base URL.
    const root = base.href.replace(/(\/api\/live-execution(\/events)?)?\/*$/, "");
    this.ingestUrl = root + INGEST_PATH;
    this.service = opts.service ?? "frontend";
    this.sampled = Math.random() < sampleRate;
    const maxRetries = opts.maxRetries ?? 3;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new RangeError(
        `LiveMonitor: maxRetries must be a whole number >= 0, got ${maxRetries}`,
      );
    }
    const beacon = globalThis.navigator?.sendBeacon;
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (opts.ingestKey) headers["X-Ingest-Key"] = String(opts.ingestKey);
    // A beacon cannot carry headers, and a cross-origin JSON beacon needs a CORS preflight.
    const beaconOk = typeof beacon === "function" && base.origin === origin && !opts.ingestKey;
    this.transport = new Transport(
      this.ingestUrl,
      globalThis.fetch,
      headers,
      beaconOk ? (url, data) => beacon.call(globalThis.navigator, url, data) : null,
      {
        batchSize: Math.floor(positive("batchSize", opts.batchSize, 50)),
        maxQueue: Math.floor(positive("maxQueue", opts.maxQueue, 1000)),
        maxRetries,
        retryBaseMs: positive("retryBaseMs", opts.retryBaseMs, 1000),
      },
    );
    const flushIntervalMs = positive("flushIntervalMs", opts.flushIntervalMs, 2000);
    this.handle = this.makeHandle();
    this.interval = setInterval(
      safely(() => this.transport.queued && void this.transport.flush()),
      flushIntervalMs,
    );
    this.install();
  }

  listen(
    target: EventTarget | undefined,
    type: string,
    fn: (ev: Event) => void,
    options: AddEventListenerOptions | boolean = false,
  ): void {
    if (!target?.addEventListener) return;
    const wrapped = safely(fn);
    target.addEventListener(type, wrapped, options);
    this.listeners.push([target, type, wrapped, options]);
  }

  later(fn: () => void, delay: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) safely(fn)();
    }, delay);
    this.timers.add(timer);
    return timer;
  }

  onStop(undo: () => void): void {
    this.restore.push(undo);
  }

  /** Queues one event; fills in timestamp, service and status; never throws. */
  emit(component: string, action: string, fields: Partial<ExecutionEvent> = {}): void {
    if (this.stopped) return;
    try {
      let details = fields.details ?? {};
      if (encoder.encode(JSON.stringify(details)).length > MAX_DETAILS_BYTES) {
        details = { truncated: true };
      }
      const event: ExecutionEvent = {
        timestamp: fields.timestamp ?? new Date().toISOString(),
        service: this.service,
        component: truncate(String(component), 128) || "unknown",
        action: truncate(String(action), 256) || "unknown",
        duration_ms: typeof fields.duration_ms === "number" ? ms(fields.duration_ms) : null,
        status: fields.status === "error" ? "error" : "success",
        details,
      };
      if (fields.trace_id && fields.span_id) {
        event.trace_id = fields.trace_id;
        event.span_id = fields.span_id;
      }
      this.transport.enqueue(event);
      if (this.hidden && !this.unloadFlush) {
        this.unloadFlush = this.later(
          () => ((this.unloadFlush = null), this.transport.flushNow()),
          0,
        );
      }
    } catch {
      this.transport.counters.dropped++;
    }
  }

  private install(): void {
    const win = globalThis as typeof globalThis & Window;
    const doc = globalThis.document;
    const enabled = (kind: CaptureKind): boolean => this.opts.capture?.[kind] !== false;
    if (enabled("api")) {
      captureNetwork(this, {
        ingestUrl: this.ingestUrl,
        sampled: this.sampled,
        tracePropagationTargets: this.opts.tracePropagationTargets,
      });
    }
    captureInteractions(this, enabled);
    this.listen(doc, "visibilitychange", () => {
      this.hidden = doc?.visibilityState === "hidden";
      if (this.hidden) this.transport.flushNow();
    });
    this.listen(win, "pagehide", () => {
      this.hidden = true;
      this.transport.flushNow();
    });
    this.listen(win, "pageshow", () => (this.hidden = false));
    if (enabled("pageLoad")) capturePageLoad(this);
    if (enabled("webVitals")) captureWebVitals(this);
  }

  private makeHandle(): LiveMonitorHandle {
    return {
      trackComponent: (name) => createTracker(this, String(name)),
      record: (component, action, options = {}) => this.emit(component, action, options),
      flush: () => this.transport.flush(),
      stop: safely(() => this.stop()),
      stats: () => {
        const { sent, dropped, retried, failed } = this.transport.counters;
        return { queued: this.transport.queued, sent, dropped, retried, failed };
      },
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.transport.flushNow();
    this.stopped = true;
    for (const [target, type, fn, options] of this.listeners)
      target.removeEventListener(type, fn, options);
    this.listeners.length = 0;
    for (const undo of this.restore) safely(undo)();
    for (const timer of this.timers) clearTimeout(timer);
    if (this.interval !== null) clearInterval(this.interval);
    this.transport.close();
    if (active === this) active = null;
  }
}

/**
 * Starts the logger and returns its handle. A second call while one is running returns the
 * running one. Throws only for invalid options (clear message), never afterwards.
 */
export function initLiveMonitor(options: LiveMonitorOptions = {}): LiveMonitorHandle {
  if (active) {
    console.warn("LiveMonitor: already running; returning the running instance");
    return active.handle;
  }
  active = new Monitor(options ?? {});
  return active.handle;
}

const api = {
  initLiveMonitor,
  normalizeRoute,
  endpointKey,
  describeElement,
  serverTimingAppMs,
  packBatches,
};
if (typeof window !== "undefined") {
  (window as unknown as { LiveMonitor?: typeof api }).LiveMonitor = api;
}
