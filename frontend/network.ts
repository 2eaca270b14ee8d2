/**
 * API calls seen from the page: fetch and XMLHttpRequest become "api" events keyed like the
 * backend's requests, and calls to `tracePropagationTargets` carry a W3C `traceparent`.
 */
import {
  normalizeRoute,
  serverTimingAppMs,
  serverTimingTraceId,
  traceTargetMatches,
} from "./routes";
import type { CaptureContext, TraceTarget } from "./types";
import { now, randomHex, safely } from "./util";

const BODY_TIMEOUT_MS = 30_000;

/** Where events go (never reported itself), whether this session is sampled, what to trace. */
export interface NetworkOptions {
  ingestUrl: string;
  sampled: boolean;
  tracePropagationTargets: TraceTarget[] | undefined;
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

/** Wraps fetch and XMLHttpRequest until the monitor stops; the page sees no difference. */
export function captureNetwork(ctx: CaptureContext, opts: NetworkOptions): void {
  const calls = new ApiCalls(ctx, opts);
  calls.patchFetch();
  calls.patchXhr();
}

class ApiCalls {
  constructor(
    private readonly ctx: CaptureContext,
    private readonly opts: NetworkOptions,
  ) {}

  /** Decides whether and how one fetch/XHR is reported; null means "leave it alone". */
  private start(rawUrl: string, method: string, existing: string | null): ApiCall | null {
    const url = new URL(rawUrl, globalThis.location?.href);
    if (url.href.startsWith(this.opts.ingestUrl)) return null;
    const propagated = traceTargetMatches(
      url,
      this.opts.tracePropagationTargets,
      globalThis.location?.origin ?? "",
    );
    const sampled = this.opts.sampled;
    if (!sampled && !propagated) return null;
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
        propagated && !existing ? `00-${traceId}-${spanId}-${sampled ? "01" : "00"}` : null,
      propagated: propagated || !!parsed,
    };
  }

  private finish(
    call: ApiCall,
    httpStatus: number,
    timing: string | null,
    error: string | null,
    extra: Record<string, unknown> = {},
  ): void {
    if (!this.opts.sampled) return;
    const failed = error !== null || httpStatus >= 500 || (httpStatus === 0 && !extra.opaque);
    // Without our header the backend started its own trace; its Server-Timing names it.
    const traceId = call.propagated ? call.traceId : serverTimingTraceId(timing);
    this.ctx.emit("api", `${call.method} ${normalizeRoute(call.url.pathname)}`, {
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

  patchFetch(): void {
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
        if (!self.ctx.stopped) {
          const isRequest = typeof Request !== "undefined" && input instanceof Request;
          const headers = new Headers(
            init?.headers ?? (isRequest ? (input as Request).headers : undefined),
          );
          const method = init?.method ?? (isRequest ? (input as Request).method : "GET");
          const url = isRequest ? (input as Request).url : String(input);
          call = self.start(url, method, headers.get("traceparent"));
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
            safely(() => self.finish(c, 0, null, error instanceof Error ? error.name : "Error"))(),
        );
      }
      return promise;
    };
    globalThis.fetch = wrapped as typeof fetch;
    this.ctx.onStop(() => {
      if (globalThis.fetch === wrapped) globalThis.fetch = original;
    });
  }

  private onFetchResponse(call: ApiCall, response: Response): void {
    try {
      const timing = response.headers.get("server-timing");
      const extra = response.type === "opaque" ? { opaque: true } : {};
      const finish = safely(() => this.finish(call, response.status, timing, null, extra));
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

  patchXhr(): void {
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
        const call = s && !self.ctx.stopped ? self.start(s.url, s.method, s.traceparent) : null;
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
            self.finish(call, xhr.status, timing, xhr.status === 0 ? failure : null);
          }),
        );
      })();
      return original.send.call(this, body);
    };
    Object.assign(proto, { open, setRequestHeader, send });
    this.ctx.onStop(() => {
      if (proto.open === open) proto.open = original.open;
      if (proto.send === send) proto.send = original.send;
      if (proto.setRequestHeader === setRequestHeader)
        proto.setRequestHeader = original.setRequestHeader;
    });
  }
}
