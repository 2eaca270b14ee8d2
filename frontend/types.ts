/** The browser logger's public types, and the hooks its capture modules get from the monitor. */

/** One event as the monitor's ingest endpoint expects it (the README's event schema). */
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
  /** The span this one was made in (16 lowercase hex). */
  parent_span_id?: string;
  /** The share (0..1] of such events this client sends; each stands for 1/sample_rate. */
  sample_rate?: number;
  /** The build and the deployment that sent it (the `release` and `environment` options). */
  release?: string;
  environment?: string;
}

/** A URL prefix or exact origin (a leading "/" means a same-origin path prefix), or a RegExp. */
export type TraceTarget = string | RegExp;

/** What `initLiveMonitor` accepts; every field has a sensible default. */
export interface LiveMonitorOptions {
  /** Monitor base URL, e.g. "http://localhost:5001". Default: where this script came from. */
  endpoint?: string;
  /**
   * Requests that get a `traceparent` header. Default: same-origin requests only. These and
   * same-origin requests are the app's API ("api" events); other calls (analytics, maps) are
   * reported as dependencies: component "http-client", keyed with their host.
   */
  tracePropagationTargets?: TraceTarget[];
  /** Share of page sessions (0..1) whose API calls are reported. Default 1. */
  sampleRate?: number;
  /** Events per request, at most. Default 50. */
  batchSize?: number;
  /** How often queued events are sent. Default 2000 ms. */
  flushIntervalMs?: number;
  /**
   * Events held at most (queued, or in a request awaiting its answer); newer ones are dropped
   * (counted in `stats().dropped`). Default 1000.
   */
  maxQueue?: number;
  /** Sent as `X-Ingest-Key` when the monitor runs with `--token` and `--ingest-key`. */
  ingestKey?: string;
  /** `service` field of every event. Default "frontend". */
  service?: string;
  /**
   * Retries of a batch (network error, 408, 429, 5xx) before it is dropped. Default: no limit;
   * events are retried until they are older than `maxAgeMs`.
   */
  maxRetries?: number;
  /** First retry delay: the cap doubles on each failure, the delay is random below it. Default 1000 ms. */
  retryBaseMs?: number;
  /** Longest wait between two attempts while the monitor is unreachable. Default 60000 ms. */
  maxRetryDelayMs?: number;
  /** Events older than this (since they were recorded) are dropped, not sent. Default 600000 ms (10 min). */
  maxAgeMs?: number;
  /**
   * Bytes of unsent events kept in this tab's sessionStorage when the page is hidden or left,
   * sent by the next page of this origin. Default 1048576 (1 MiB); 0 keeps nothing.
   */
  storeBytes?: number;
  /** Turn single captures off, e.g. `{scrolls: false}`. All are on by default. */
  capture?: Partial<Record<CaptureKind, boolean>>;
  /** On every event: the build (e.g. "1.4.2", 1 to 200 characters), to filter or compare by. */
  release?: string;
  /** On every event: the deployment (e.g. "production", 1 to 64 characters). */
  environment?: string;
}

export type CaptureKind =
  "api" | "clicks" | "scrolls" | "forms" | "pageLoad" | "webVitals" | "errors";

/**
 * Transport counters. Each event is counted once: `recorded + restored = queued + stored +
 * sent + dropped + failed`, where recorded is every event the page made.
 */
export interface LiveMonitorStats {
  /** Waiting to be sent, or in a request awaiting its answer. */
  queued: number;
  /** Accepted by the monitor (or handed to `navigator.sendBeacon` as the page went away). */
  sent: number;
  /** Never sent: queue full, older than `maxAgeMs`, over 64 KiB, store full, retries spent. */
  dropped: number;
  /** Attempts that failed for a while (network error, 408, 429, 5xx) and are tried again. */
  retried: number;
  /** Refused by the monitor for good (a 4xx other than 408 and 429). */
  failed: number;
  /**
   * Kept in sessionStorage since the page was hidden, for its return or the next page.
   * Absent (as `restored`) while only the loader's stub runs: it stores nothing.
   */
  stored?: number;
  /** Taken from the store the previous page of this origin left, at start. */
  restored?: number;
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
  /**
   * Send what is queued now, one batch after another; resolves when all went, or when the
   * monitor is away or asked to wait (the queue then goes at the next attempt).
   */
  flush(): Promise<void>;
  /** Remove every listener, restore fetch/XHR, send what is queued one last time. */
  stop(): void;
  stats(): LiveMonitorStats;
}

/** The fields `emit` takes besides component and action; a trace id may be null (none). */
export type EventFields = Partial<Omit<ExecutionEvent, "trace_id">> & { trace_id?: string | null };

// What the capture modules get from the running monitor (internal).
/** Queues one event; fills in timestamp, service and status; never throws. */
export type Emit = (component: string, action: string, fields?: EventFields) => void;
/** Adds a listener (wrapped so it never throws) that `stop()` removes. */
export type Listen = (
  target: EventTarget | undefined,
  type: string,
  fn: (ev: Event) => void,
  options?: AddEventListenerOptions | boolean,
) => void;
/** Runs `fn` after `delay` ms, unless the monitor has stopped by then. */
export type Later = (fn: () => void, delay: number) => void;
/** Registers an undo step (restore a patched global) for `stop()`. */
export type OnStop = (undo: () => void) => void;
