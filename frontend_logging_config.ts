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
 */
import { onCLS, onFCP, onINP, onLCP, onTTFB } from "web-vitals";
import type { MetricType } from "web-vitals";

/** One event as the monitor's ingest endpoint expects it (DESIGN.md, ExecutionEvent). */
export interface ExecutionEvent {
  timestamp: string;
  service: string;
  component: string;
  action: string;
  duration_ms: number | null;
  status: "success" | "error";
  details: Record<string, unknown>;
  trace_id?: string;
  span_id?: string;
}

/** A URL prefix or exact origin (a leading "/" means a same-origin path prefix), or a RegExp. */
export type TraceTarget = string | RegExp;

/** What `initLiveMonitor` accepts; every field has a sensible default. */
export interface LiveMonitorOptions {
  /** Monitor base URL, e.g. "http://localhost:5001". Default: where this script came from. */
  endpoint?: string;
  /** Requests that get a `traceparent` header. Default: same-origin requests only. */
  tracePropagationTargets?: TraceTarget[];
  /** Share of page sessions (0..1) whose API calls are reported. Default 1. */
  sampleRate?: number;
  /** Events per request, at most. Default 50. */
  batchSize?: number;
  /** How often queued events are sent. Default 2000 ms. */
  flushIntervalMs?: number;
  /** Events held at most (queued plus awaiting retry); newer ones are dropped. Default 1000. */
  maxQueue?: number;
  /** Sent as `X-Ingest-Key` when the monitor runs with `--token` and `--ingest-key`. */
  ingestKey?: string;
  /** `service` field of every event. Default "frontend". */
  service?: string;
  /** Retries of a failed batch (429, 5xx, network error) before it is dropped. Default 3. */
  maxRetries?: number;
  /** First retry delay; doubles on each try, with jitter. Default 1000 ms. */
  retryBaseMs?: number;
  /** Turn single captures off, e.g. `{scrolls: false}`. All are on by default. */
  capture?: Partial<Record<CaptureKind, boolean>>;
}

export type CaptureKind =
  "api" | "clicks" | "scrolls" | "forms" | "pageLoad" | "webVitals" | "errors";

/** Transport counters: events waiting, accepted by the monitor, dropped, retries, given up. */
export interface LiveMonitorStats {
  queued: number;
  sent: number;
  dropped: number;
  retried: number;
  failed: number;
}

/** Optional fields of a custom event recorded with `handle.record()`. */
export interface RecordOptions {
  duration_ms?: number | null;
  status?: "success" | "error";
  details?: Record<string, unknown>;
}

/**
 * Lifecycle events of one UI component (component = its name, action mount/update/unmount).
 *
 * Call `beginRender()` when rendering starts; the next `mount()` or `update()` reports the
 * time since then as `duration_ms` (null when `beginRender()` was not called). `render(fn)`
 * times `fn` (sync, or until its promise settles) and reports "mount" the first time and
 * "update" after that; it returns what `fn` returns and rethrows what `fn` throws. React:
 * `t.beginRender()` in the body, `useEffect(() => { t.mount(); return () => t.unmount(); }, [])`;
 * Vue: `onBeforeMount(t.beginRender)`, `onMounted(t.mount)`, `onUpdated(t.update)`,
 * `onUnmounted(t.unmount)`.
 */
export interface ComponentTracker {
  beginRender(): void;
  mount(details?: Record<string, unknown>): void;
  update(details?: Record<string, unknown>): void;
  unmount(details?: Record<string, unknown>): void;
  render<T>(fn: () => T): T;
}

/** What `initLiveMonitor` returns. */
export interface LiveMonitorHandle {
  /** A lifecycle tracker for the component called `name` (e.g. "Cart"). */
  trackComponent(name: string): ComponentTracker;
  /** A custom event, e.g. `record("checkout", "pay", {duration_ms: 120})`. */
  record(component: string, action: string, options?: RecordOptions): void;
  /** Send what is queued now; resolves after each batch's first try (retries go on). */
  flush(): Promise<void>;
  /** Remove every listener, restore fetch/XHR, send what is queued one last time. */
  stop(): void;
  stats(): LiveMonitorStats;
}

const INGEST_PATH = "/api/live-execution/events";
const MAX_BODY_BYTES = 64 * 1024;
const MAX_DETAILS_BYTES = 8 * 1024;
const MAX_MESSAGE_CHARS = 300;
const BODY_TIMEOUT_MS = 30_000;
const MAX_RETRY_DELAY_MS = 60_000;
const INTERACTIVE = "a,button,input,select,textarea,label,summary,option,[role=button],[onclick]";
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\n?$/;
const LONG_HEX = /^[0-9a-fA-F]{16,}\n?$/; // "\n?$" mirrors Python's "$"
const encoder = new TextEncoder();

/** The path of a URL the way Python's `urllib.parse.urlsplit(url).path` finds it. */
function urlsplitPath(url: string): string {
  url = url.replace(/^[\x00-\x20]+/, "").replace(/[\t\r\n]/g, "");
  const colon = url.indexOf(":");
  if (colon > 0 && /^[A-Za-z][A-Za-z0-9+.-]*$/.test(url.slice(0, colon))) {
    url = url.slice(colon + 1);
  }
  if (url.startsWith("//")) {
    const end = url.slice(2).search(/[/?#]/);
    url = end < 0 ? "" : url.slice(2 + end);
  }
  return url;
}

/**
 * The endpoint route of a path or URL, exactly like `normalize_route` in
 * backend_logging_config.py: no query or fragment, numeric segments, UUIDs and hex strings of
 * 16+ characters become ":id", empty segments and a trailing slash are dropped.
 */
export function normalizeRoute(path: string): string {
  if (path.includes("://")) path = urlsplitPath(path);
  path = path.split("?", 1)[0].split("#", 1)[0];
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (!segment) continue;
    const isId = /^[0-9]+$/.test(segment) || UUID.test(segment) || LONG_HEX.test(segment);
    segments.push(isId ? ":id" : segment);
  }
  return "/" + segments.join("/");
}

/** The key both sides share, e.g. "GET /api/orders/:id". */
export function endpointKey(method: string, path: string): string {
  return `${method.toUpperCase()} ${normalizeRoute(path)}`;
}

/**
 * A short selector for an element, e.g. `button#save` or `a.nav-link`: tag, id and at most two
 * class names. Never text content, values or other attributes.
 */
export function describeElement(el: Element): string {
  let selector = el.tagName.toLowerCase();
  const id = el.getAttribute("id");
  if (id && /^[A-Za-z_][\w:.-]{0,63}$/.test(id)) selector += "#" + id;
  const classes = (el.getAttribute("class") ?? "").split(/\s+/);
  for (const cls of classes.filter((c) => /^-?[A-Za-z_][\w-]{0,39}$/.test(c)).slice(0, 2)) {
    selector += "." + cls;
  }
  return selector;
}

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(buf);
  else for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  buf[bytes - 1] |= 1; // an all-zero id is invalid in W3C trace-context
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

const now = (): number => performance.now();
const ms = (value: number): number => Math.round(Math.max(0, value) * 1000) / 1000;
const truncate = (text: string, max: number): string =>
  text.length > max ? text.slice(0, max) : text;
const withoutQuery = (url: string): string => url.split(/[?#]/, 1)[0];

/** Parses the `dur` of the `app` entry of a Server-Timing header, e.g. "app;dur=12.5". */
export function serverTimingAppMs(header: string | null | undefined): number | null {
  for (const entry of (header ?? "").split(",")) {
    const [name, ...params] = entry.split(";").map((p) => p.trim());
    if (name !== "app") continue;
    for (const param of params) {
      const match = /^dur="?([0-9.]+)"?$/i.exec(param);
      if (match) return Number(match[1]);
    }
  }
  return null;
}

/** The trace id the backend answered in Server-Timing (`traceparent;desc="00-<id>-..."`). */
function serverTimingTraceId(header: string | null): string | null {
  return /traceparent;\s*desc="?00-([0-9a-f]{32})-/.exec(header ?? "")?.[1] ?? null;
}

function traceTargetMatches(url: URL, targets: TraceTarget[] | undefined, origin: string): boolean {
  if (!targets) return url.origin === origin;
  return targets.some((target) => {
    if (target instanceof RegExp) {
      target.lastIndex = 0;
      return target.test(url.href);
    }
    if (target.startsWith("/") && !target.startsWith("//")) {
      return url.origin === origin && url.pathname.startsWith(target);
    }
    return url.origin === target || url.href.startsWith(target);
  });
}

interface Batch {
  body: string;
  count: number;
}

/** Packs serialized events into request bodies of at most `batchSize` events and 64 KiB. */
export function packBatches(events: string[], batchSize: number): Batch[] {
  const batches: Batch[] = [];
  const overhead = encoder.encode('{"events":[]}').length;
  let parts: string[] = [];
  let bytes = overhead;
  for (const event of events) {
    const size = encoder.encode(event).length + (parts.length ? 1 : 0);
    if (parts.length && (parts.length >= batchSize || bytes + size > MAX_BODY_BYTES)) {
      batches.push({ body: `{"events":[${parts.join(",")}]}`, count: parts.length });
      parts = [];
      bytes = overhead;
    }
    bytes += encoder.encode(event).length + (parts.length ? 1 : 0);
    parts.push(event);
  }
  if (parts.length) batches.push({ body: `{"events":[${parts.join(",")}]}`, count: parts.length });
  return batches;
}

function retryAfterMs(header: string | null): number {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : 0;
}

/** Bounded queue, batching, retries with backoff, and beacon sends when the page goes away. */
class Transport {
  readonly counters = { sent: 0, dropped: 0, retried: 0, failed: 0 };
  private queue: string[] = [];
  private pending = 0;
  private retries = new Map<ReturnType<typeof setTimeout>, Batch>();
  private chain: Promise<void> = Promise.resolve();
  private pausedUntil = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly fetchFn: typeof fetch,
    private readonly headers: Record<string, string>,
    private readonly beacon: ((url: string, data: Blob) => boolean) | null,
    private readonly cfg: {
      batchSize: number;
      maxQueue: number;
      maxRetries: number;
      retryBaseMs: number;
    },
  ) {}

  get queued(): number {
    return this.queue.length + this.pending;
  }

  enqueue(event: ExecutionEvent): void {
    if (this.queued >= this.cfg.maxQueue) {
      this.counters.dropped++;
      return;
    }
    const text = JSON.stringify(event);
    if (encoder.encode(text).length + 20 > MAX_BODY_BYTES) {
      this.counters.dropped++;
      return;
    }
    this.queue.push(text);
    if (this.queue.length >= this.cfg.batchSize) void this.flush();
  }

  flush(): Promise<void> {
    this.chain = this.chain.then(() => this.drain()).catch(() => undefined);
    return this.chain;
  }

  private async drain(): Promise<void> {
    while (this.queue.length && Date.now() >= this.pausedUntil) {
      const batches = this.take(this.queue.splice(0, this.cfg.batchSize));
      for (const batch of batches) await this.post(batch, 0);
    }
  }

  private take(events: string[]): Batch[] {
    this.pending += events.length;
    return packBatches(events, this.cfg.batchSize);
  }

  private settle(batch: Batch, outcome: "sent" | "failed"): void {
    this.pending -= batch.count;
    this.counters[outcome] += batch.count;
  }

  private async post(batch: Batch, attempt: number): Promise<void> {
    let response: Response | null = null;
    try {
      response = await this.fetchFn.call(globalThis, this.url, {
        method: "POST",
        headers: this.headers,
        body: batch.body,
        keepalive: true,
        credentials: "omit",
      });
    } catch {
      response = null;
    }
    try {
      this.retryLater(batch, attempt, response);
    } catch {
      this.settle(batch, "failed");
    }
  }

  private retryLater(batch: Batch, attempt: number, response: Response | null): void {
    if (response && response.ok) return this.settle(batch, "sent");
    const retryable = !response || response.status === 429 || response.status >= 500;
    if (!retryable || attempt >= this.cfg.maxRetries || this.closed) {
      return this.settle(batch, "failed");
    }
    const asked = retryAfterMs(response?.headers.get("retry-after") ?? null);
    // The monitor asked everyone to wait: hold new batches back too, not only this one.
    if (asked) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + asked);
    const backoff = this.cfg.retryBaseMs * 2 ** attempt * (0.5 + Math.random() / 2);
    const delay = Math.min(MAX_RETRY_DELAY_MS, Math.max(backoff, asked));
    this.counters.retried++;
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      void this.post(batch, attempt + 1);
    }, delay);
    this.retries.set(timer, batch);
  }

  /** Sends everything now (queued and awaiting retry) in a way that survives page unload. */
  flushNow(): void {
    const batches = this.take(this.queue.splice(0));
    for (const [timer, batch] of this.retries) {
      clearTimeout(timer);
      batches.push(batch);
    }
    this.retries.clear();
    for (const batch of batches) {
      let sent = false;
      try {
        sent = !!this.beacon?.(this.url, new Blob([batch.body], { type: "application/json" }));
      } catch {
        sent = false;
      }
      if (sent) this.settle(batch, "sent");
      else void this.post(batch, this.cfg.maxRetries);
    }
  }

  /** Cancels pending retries; their events count as failed. */
  close(): void {
    this.closed = true;
    for (const [timer, batch] of this.retries) {
      clearTimeout(timer);
      this.settle(batch, "failed");
    }
    this.retries.clear();
  }
}

interface ApiCall {
  method: string;
  url: URL;
  start: number;
  timestamp: string;
  traceId: string;
  spanId: string;
  traceparent: string | null;
  propagated: boolean;
}

type Listener = [EventTarget, string, EventListener, AddEventListenerOptions | boolean];

let active: Monitor | null = null;
let vitalsSink: ((metric: MetricType) => void) | null = null;
let pageLoadReported = false;
const scriptOrigin = ((): string | null => {
  try {
    const src = (document.currentScript as HTMLScriptElement | null)?.src;
    return src ? new URL(src).origin : null;
  } catch {
    return null;
  }
})();

function safely<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch {
      // the logger must never break the host page
    }
  };
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`LiveMonitor: ${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

class Monitor {
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
  private stopped = false;
  private lastScroll = -Infinity;
  private scrollTimer: ReturnType<typeof setTimeout> | null = null;
  private unloadFlush: ReturnType<typeof setTimeout> | null = null;
  private readonly recentErrors = new Map<string, number>();

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

  private enabled(kind: CaptureKind): boolean {
    return this.opts.capture?.[kind] !== false;
  }

  private listen(
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

  private later(fn: () => void, delay: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) safely(fn)();
    }, delay);
    this.timers.add(timer);
    return timer;
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
    if (this.enabled("api")) {
      this.patchFetch();
      this.patchXhr();
    }
    if (this.enabled("clicks")) this.listen(doc, "click", (ev) => this.onClick(ev), true);
    if (this.enabled("forms")) this.listen(doc, "submit", (ev) => this.onSubmit(ev), true);
    if (this.enabled("scrolls"))
      this.listen(win, "scroll", () => this.onScroll(), { passive: true });
    if (this.enabled("errors")) {
      this.listen(win, "error", (ev) => this.onError(ev as ErrorEvent));
      this.listen(win, "unhandledrejection", (ev) => this.onRejection(ev as PromiseRejectionEvent));
    }
    this.listen(doc, "visibilitychange", () => {
      this.hidden = doc?.visibilityState === "hidden";
      if (this.hidden) this.transport.flushNow();
    });
    this.listen(win, "pagehide", () => {
      this.hidden = true;
      this.transport.flushNow();
    });
    this.listen(win, "pageshow", () => (this.hidden = false));
    if (this.enabled("pageLoad") && !pageLoadReported && doc) {
      if (doc.readyState === "complete") this.later(() => this.reportPageLoad(), 0);
      else this.listen(win, "load", () => this.later(() => this.reportPageLoad(), 0));
    }
    if (this.enabled("webVitals")) this.watchVitals();
  }

  private onClick(ev: Event): void {
    let el = ev.target as Element | null;
    if (el && typeof el.closest !== "function") el = (el as unknown as Node).parentElement ?? null;
    if (!el || typeof el.closest !== "function") return;
    el = el.closest(INTERACTIVE) ?? el;
    const selector = describeElement(el);
    this.emit("click", selector, {
      details: { tag: el.tagName.toLowerCase(), id: el.getAttribute("id") || null, selector },
    });
  }

  private onSubmit(ev: Event): void {
    const form = ev.target as HTMLFormElement | null;
    if (!form || form.tagName?.toUpperCase() !== "FORM") return;
    const id = form.getAttribute("id");
    const name = form.getAttribute("name");
    const label = id ? `form#${id}` : name ? `form[name=${name}]` : "form";
    const count = form.elements?.length;
    this.emit("form", `submit ${label}`, {
      details: {
        form_id: id || null,
        form_name: name || null,
        field_count: typeof count === "number" ? count : 0,
      },
    });
  }

  private onScroll(): void {
    const since = now() - this.lastScroll;
    if (since >= 1000) {
      this.lastScroll = now();
      const root = globalThis.document?.documentElement;
      const height = Math.max(
        root?.scrollHeight ?? 0,
        globalThis.document?.body?.scrollHeight ?? 0,
      );
      const seen = (globalThis.scrollY ?? 0) + (globalThis.innerHeight ?? 0);
      const depth = height > 0 ? Math.min(100, Math.round((seen / height) * 100)) : 100;
      this.emit("scroll", "scroll", { details: { depth_pct: depth } });
    } else if (!this.scrollTimer) {
      this.scrollTimer = this.later(() => {
        this.scrollTimer = null;
        this.onScroll();
      }, 1000 - since);
    }
  }

  /** True for an error already reported in the last second (an error in a loop is one event). */
  private repeated(key: string): boolean {
    const t = now();
    const seen = this.recentErrors.get(key);
    if (this.recentErrors.size > 50) this.recentErrors.clear();
    this.recentErrors.set(key, t);
    return seen !== undefined && t - seen < 1000;
  }

  private onError(ev: ErrorEvent): void {
    if (typeof ev.message !== "string" && !ev.error) return;
    const message = ev.message || String(ev.error);
    if (this.repeated(`${message}|${ev.filename}|${ev.lineno}|${ev.colno}`)) return;
    this.emit("error", "window.onerror", {
      status: "error",
      details: {
        message: truncate(message, MAX_MESSAGE_CHARS),
        source: ev.filename ? withoutQuery(ev.filename) : null,
        line: ev.lineno ?? null,
        col: ev.colno ?? null,
      },
    });
  }

  private onRejection(ev: PromiseRejectionEvent): void {
    const reason: unknown = ev.reason;
    const message =
      reason instanceof Error
        ? `${reason.name}: ${reason.message}`
        : typeof reason === "string"
          ? reason
          : "non-error rejection";
    if (this.repeated(message)) return;
    this.emit("error", "unhandledrejection", {
      status: "error",
      details: {
        message: truncate(message, MAX_MESSAGE_CHARS),
        source: null,
        line: null,
        col: null,
      },
    });
  }

  private reportPageLoad(): void {
    const nav = performance.getEntriesByType?.("navigation")[0] as
      PerformanceNavigationTiming | undefined;
    if (!nav || pageLoadReported) return;
    pageLoadReported = true;
    const load = nav.loadEventEnd || now();
    this.emit("page", "load", {
      timestamp: new Date(performance.timeOrigin).toISOString(),
      duration_ms: load,
      details: {
        ttfb_ms: ms(nav.responseStart),
        dom_content_loaded_ms: ms(nav.domContentLoadedEventEnd),
        load_ms: ms(load),
        path: globalThis.location?.pathname ?? null,
      },
    });
  }

  /** web-vitals cannot unsubscribe: register once a page and feed whichever monitor is active. */
  private watchVitals(): void {
    const flag = globalThis as { __liveMonitorVitals?: boolean };
    vitalsSink = (metric) => {
      const timed = metric.name !== "CLS";
      this.emit("web-vitals", metric.name, {
        duration_ms: timed ? metric.value : null,
        details: { value: Math.round(metric.value * 10000) / 10000, rating: metric.rating },
      });
    };
    if (flag.__liveMonitorVitals) return;
    flag.__liveMonitorVitals = true;
    const sink = safely((metric: MetricType) => vitalsSink?.(metric));
    const watchers = [onFCP, onLCP, onCLS, onINP, onTTFB] as Array<(cb: typeof sink) => void>;
    for (const on of watchers) safely(on)(sink);
  }

  /** Decides whether and how one fetch/XHR is reported; null means "leave it alone". */
  private startApiCall(rawUrl: string, method: string, existing: string | null): ApiCall | null {
    const url = new URL(rawUrl, globalThis.location?.href);
    if (url.href.startsWith(this.ingestUrl)) return null;
    const propagated = traceTargetMatches(
      url,
      this.opts.tracePropagationTargets,
      globalThis.location?.origin ?? "",
    );
    if (!this.sampled && !propagated) return null;
    const parsed = existing
      ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(existing.trim())
      : null;
    const traceId = parsed?.[1] ?? randomHex(16);
    const spanId = parsed?.[2] ?? randomHex(8);
    return {
      method: (method || "GET").toUpperCase(),
      url,
      start: now(),
      timestamp: new Date().toISOString(),
      traceId,
      spanId,
      traceparent:
        propagated && !existing ? `00-${traceId}-${spanId}-${this.sampled ? "01" : "00"}` : null,
      propagated: propagated || !!parsed,
    };
  }

  private finishApiCall(
    call: ApiCall,
    httpStatus: number,
    timing: string | null,
    error: string | null,
    extra: Record<string, unknown> = {},
  ): void {
    if (!this.sampled) return;
    const failed = error !== null || httpStatus >= 500 || (httpStatus === 0 && !extra.opaque);
    // Without our header the backend started its own trace; its Server-Timing names it.
    const traceId = call.propagated ? call.traceId : serverTimingTraceId(timing);
    this.emit("api", `${call.method} ${normalizeRoute(call.url.pathname)}`, {
      timestamp: call.timestamp,
      duration_ms: now() - call.start,
      status: failed ? "error" : "success",
      details: {
        http_status: httpStatus,
        url_origin: call.url.origin,
        backend_ms: serverTimingAppMs(timing),
        sampled: true,
        ...(error !== null ? { error } : {}),
        ...extra,
      },
      ...(traceId ? { trace_id: traceId, span_id: call.spanId } : {}),
    });
  }

  private patchFetch(): void {
    const original = globalThis.fetch;
    if (typeof original !== "function") return;
    const self = this;
    const wrapped = function (
      this: unknown,
      input: RequestInfo | URL,
      init?: RequestInit,
    ): Promise<Response> {
      let call: ApiCall | null = null;
      let args: [RequestInfo | URL, RequestInit | undefined] = [input, init];
      try {
        if (!self.stopped) {
          const isRequest = typeof Request !== "undefined" && input instanceof Request;
          const headers = new Headers(
            init?.headers ?? (isRequest ? (input as Request).headers : undefined),
          );
          const method = init?.method ?? (isRequest ? (input as Request).method : "GET");
          const url = isRequest ? (input as Request).url : String(input);
          call = self.startApiCall(url, method, headers.get("traceparent"));
          if (call?.traceparent) {
            headers.set("traceparent", call.traceparent);
            args = [input, { ...init, headers }];
          }
        }
      } catch {
        call = null;
        args = [input, init];
      }
      const promise = original.apply(this, args);
      if (call) {
        const c = call;
        promise.then(
          (response) => self.onFetchResponse(c, response),
          (error: unknown) =>
            safely(() =>
              self.finishApiCall(c, 0, null, error instanceof Error ? error.name : "Error"),
            )(),
        );
      }
      return promise;
    };
    globalThis.fetch = wrapped as typeof fetch;
    this.restore.push(() => {
      if (globalThis.fetch === wrapped) globalThis.fetch = original;
    });
  }

  private onFetchResponse(call: ApiCall, response: Response): void {
    try {
      const timing = response.headers.get("server-timing");
      const extra = response.type === "opaque" ? { opaque: true } : {};
      const finish = safely(() => this.finishApiCall(call, response.status, timing, null, extra));
      const streaming = /event-stream/i.test(response.headers.get("content-type") ?? "");
      if (!response.body || streaming || response.bodyUsed) return finish();
      const reader = response.clone().body!.getReader();
      const timeout = setTimeout(
        () => void reader.cancel().catch(() => undefined),
        BODY_TIMEOUT_MS,
      );
      const pump = (): Promise<void> => reader.read().then((r) => (r.done ? undefined : pump()));
      pump().then(
        () => (clearTimeout(timeout), finish()),
        () => (clearTimeout(timeout), finish()),
      );
    } catch {
      // reported nothing rather than disturb the page
    }
  }

  private patchXhr(): void {
    const Xhr = globalThis.XMLHttpRequest;
    if (typeof Xhr !== "function") return;
    const proto = Xhr.prototype;
    const original = {
      open: proto.open,
      send: proto.send,
      setRequestHeader: proto.setRequestHeader,
    };
    const state = new WeakMap<
      XMLHttpRequest,
      { method: string; url: string; traceparent: string | null }
    >();
    const self = this;
    const open = function (this: XMLHttpRequest, ...args: unknown[]): void {
      safely(() =>
        state.set(this, { method: String(args[0]), url: String(args[1]), traceparent: null }),
      )();
      return (original.open as (...a: unknown[]) => void).apply(this, args);
    };
    const setRequestHeader = function (this: XMLHttpRequest, name: string, value: string): void {
      safely(() => {
        const s = state.get(this);
        if (s && String(name).toLowerCase() === "traceparent") s.traceparent = String(value);
      })();
      return original.setRequestHeader.call(this, name, value);
    };
    const send = function (
      this: XMLHttpRequest,
      body?: Document | XMLHttpRequestBodyInit | null,
    ): void {
      safely(() => {
        const s = state.get(this);
        const call = s && !self.stopped ? self.startApiCall(s.url, s.method, s.traceparent) : null;
        if (!call) return;
        if (call.traceparent) original.setRequestHeader.call(this, "traceparent", call.traceparent);
        const xhr = this;
        let failure = "NetworkError";
        xhr.addEventListener("abort", () => (failure = "AbortError"));
        xhr.addEventListener("timeout", () => (failure = "TimeoutError"));
        xhr.addEventListener(
          "loadend",
          safely(() => {
            const headers = xhr.getAllResponseHeaders() ?? "";
            const timing = /^server-timing:\s*(.*)$/im.exec(headers)?.[1] ?? null;
            self.finishApiCall(call, xhr.status, timing, xhr.status === 0 ? failure : null);
          }),
        );
      })();
      return original.send.call(this, body);
    };
    Object.assign(proto, { open, setRequestHeader, send });
    this.restore.push(() => {
      if (proto.open === open) proto.open = original.open;
      if (proto.send === send) proto.send = original.send;
      if (proto.setRequestHeader === setRequestHeader)
        proto.setRequestHeader = original.setRequestHeader;
    });
  }

  private makeHandle(): LiveMonitorHandle {
    return {
      trackComponent: (name) => this.tracker(String(name)),
      record: (component, action, options = {}) => this.emit(component, action, options),
      flush: () => this.transport.flush(),
      stop: safely(() => this.stop()),
      stats: () => {
        const { sent, dropped, retried, failed } = this.transport.counters;
        return { queued: this.transport.queued, sent, dropped, retried, failed };
      },
    };
  }

  private tracker(name: string): ComponentTracker {
    let started: number | null = null;
    let mounted = false;
    const lifecycle = (action: string, details?: Record<string, unknown>) => {
      const duration = started === null ? null : now() - started;
      started = null;
      this.emit(name, action, { duration_ms: duration, details: details ?? {} });
    };
    return {
      beginRender: safely(() => (started = now())),
      mount: safely(
        (details?: Record<string, unknown>) => ((mounted = true), lifecycle("mount", details)),
      ),
      update: safely((details?: Record<string, unknown>) => lifecycle("update", details)),
      unmount: safely((details?: Record<string, unknown>) => {
        mounted = false;
        started = null;
        this.emit(name, "unmount", { details: details ?? {} });
      }),
      render: <T>(fn: () => T): T => {
        const start = now();
        const action = mounted ? "update" : "mount";
        mounted = true;
        const done = safely((error: unknown) =>
          this.emit(name, action, {
            duration_ms: now() - start,
            status: error === undefined ? "success" : "error",
            details:
              error === undefined ? {} : { error: error instanceof Error ? error.name : "Error" },
          }),
        );
        let result: T;
        try {
          result = fn();
        } catch (error) {
          done(error ?? "error");
          throw error;
        }
        const thenable = result as unknown as PromiseLike<unknown> | null;
        if (thenable && typeof thenable.then === "function") {
          thenable.then(
            () => done(undefined),
            (error: unknown) => done(error ?? "error"),
          );
        } else {
          done(undefined);
        }
        return result;
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
    vitalsSink = null;
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
