/**
 * Calls seen from the page: fetch and XMLHttpRequest to the app's own API (same origin or a
 * `tracePropagationTargets` match) become "api" events keyed like the backend's requests; other
 * calls (analytics, maps, payment scripts) become dependencies, component "http-client", keyed
 * with their host as the backend keys its outgoing calls. Calls to the targets carry a `traceparent`.
 */
import {
  endpointKey,
  outgoingKey,
  serverTimingAppMs,
  serverTimingTraceId,
  traceTargetMatches,
} from "./routes";
import type { Emit, OnStop, TraceTarget } from "./types";
import { errorName, g, isoNow, now, parseTraceparent, randomHex, safely } from "./util";

const BODY_TIMEOUT_MS = 30_000;
const TRACEPARENT = "traceparent";
// The components of the app's own API calls and of calls to other services, as the monitor
// names them (ENDPOINT_COMPONENTS and OUTGOING_COMPONENT in its vocabulary).
const API_COMPONENT = "api";
const OUTGOING_COMPONENT = "http-client";

/** Reports the end of one call: HTTP status (0: none), Server-Timing, error name, opaque. */
type EndCall = (status: number, timing?: string | null, error?: string, opaque?: boolean) => void;

/** One reported call: the `traceparent` to add (null: none) and how to report its end. */
interface Call {
  header: string | null;
  end: EndCall;
}

/**
 * Wraps fetch and XMLHttpRequest until the monitor stops; the page sees no difference.
 * Calls to `ingestUrl` (the logger's own) are never reported; when this session is not
 * `sampled`, calls are only traced, not reported. Below a `sampleRate` of 1 each reported call
 * carries it as `sample_rate`, so the monitor can count it for the sessions not sampled.
 */
export function captureNetwork(
  emit: Emit,
  onStop: OnStop,
  stopped: () => boolean,
  ingestUrl: string,
  sampled: boolean,
  sampleRate: number,
  targets: TraceTarget[] | undefined,
): void {
  /** Decides whether and how one fetch/XHR is reported; null means "leave it alone". */
  const track = (rawUrl: string, method?: string, existing?: string | null): Call | null => {
    const url = new URL(rawUrl, g.location.href);
    if (url.href.startsWith(ingestUrl)) return null;
    const propagated = traceTargetMatches(url, targets, g.location.origin);
    if (!sampled && !propagated) return null;
    // The page's own traceparent names the span the server sees as its parent: report that one.
    const parsed = parseTraceparent(existing);
    const traceId = parsed?.[0] ?? randomHex(16);
    const spanId = parsed?.[1] ?? randomHex(8);
    // The trace the server will see: ours or the page's; else the server starts one.
    const sent = parsed || (propagated && !existing);
    const start = now();
    const timestamp = isoNow();
    // The app's own API is keyed like the server's requests; a third party's call with its host.
    const own = propagated || url.origin === g.location.origin;
    const component = own ? API_COMPONENT : OUTGOING_COMPONENT;
    const action = own
      ? endpointKey(method || "GET", url.pathname)
      : outgoingKey(method || "GET", url);
    return {
      header: propagated && !existing ? `00-${traceId}-${spanId}-${sampled ? "01" : "00"}` : null,
      end: (status, timing, error, opaque) => {
        if (!sampled) return;
        const details: Record<string, unknown> = {
          http_status: status,
          url_origin: url.origin,
          backend_ms: serverTimingAppMs(timing),
          sampled: true,
        };
        if (error) details.error = error;
        if (opaque) details.opaque = true;
        emit(component, action, {
          timestamp,
          duration_ms: now() - start,
          status: error || status >= 500 || (!status && !opaque) ? "error" : "success",
          details,
          // Without a valid header the backend started its own trace; its Server-Timing names it.
          trace_id: sent ? traceId : serverTimingTraceId(timing),
          span_id: spanId,
          sample_rate: sampleRate < 1 ? sampleRate : undefined,
        });
      },
    };
  };

  /** Replaces `target[key]` until the monitor stops (unless the page replaced it since). */
  function patch<T, K extends keyof T>(target: T, key: K, make: (original: T[K]) => T[K]): void {
    const original = target[key];
    const replacement = make(original);
    target[key] = replacement;
    onStop(() => {
      if (target[key] === replacement) target[key] = original;
    });
  }

  /** Reports a fetch once its body is read to the end (by a clone), or at once if streaming. */
  const onResponse = (end: EndCall, response: Response): void => {
    const { headers } = response;
    const done = safely(() =>
      end(response.status, headers.get("server-timing"), undefined, response.type === "opaque"),
    );
    if (
      !response.body ||
      response.bodyUsed ||
      /event-stream/i.test(headers.get("content-type") as string)
    ) {
      return done();
    }
    const reader = response.clone().body!.getReader();
    const timeout = setTimeout(() => void reader.cancel().catch(() => {}), BODY_TIMEOUT_MS);
    const pump = (): Promise<unknown> => reader.read().then((r) => r.done || pump());
    const finish = () => (clearTimeout(timeout), done());
    pump().then(finish, finish);
  };

  if (typeof g.fetch === "function") {
    patch(
      g,
      "fetch",
      (original) =>
        function (this: unknown, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
          let call: Call | null = null;
          let args: [RequestInfo | URL, RequestInit?] = [input, init];
          try {
            if (!stopped()) {
              const request = input instanceof Request ? input : null;
              const headers = new Headers(init?.headers ?? request?.headers);
              call = track(
                request?.url ?? String(input),
                init?.method ?? request?.method,
                headers.get(TRACEPARENT),
              );
              if (call?.header) {
                headers.set(TRACEPARENT, call.header);
                args = [input, { ...init, headers }];
              }
            }
          } catch {
            call = null;
          }
          const promise = original.apply(this, args);
          if (call) {
            const { end } = call;
            promise.then(
              safely((response: Response) => onResponse(end, response)),
              (error: unknown) => end(0, null, errorName(error)),
            );
          }
          return promise;
        },
    );
  }

  const Xhr = g.XMLHttpRequest;
  if (typeof Xhr !== "function") return;
  const proto = Xhr.prototype;
  const setHeader = proto.setRequestHeader;
  // Per request: [url, method, traceparent the page set itself], as `track` takes them.
  const state = new WeakMap<XMLHttpRequest, [string, string, string | null]>();
  /** Runs `hook` (never throwing) before each call of the XHR method `key`. */
  const before = (
    key: "open" | "setRequestHeader" | "send",
    hook: (xhr: XMLHttpRequest, args: string[]) => void,
  ): void =>
    patch(
      proto,
      key,
      (original) =>
        function (this: XMLHttpRequest, ...args: string[]) {
          safely(hook)(this, args);
          return (original as (...a: string[]) => void).apply(this, args);
        },
    );
  before("open", (xhr, [method, url]) => state.set(xhr, [url, method, null]));
  before("setRequestHeader", (xhr, [name, value]) => {
    const s = state.get(xhr);
    if (s && name.toLowerCase() === TRACEPARENT) s[2] = value;
  });
  before("send", (xhr) => {
    const s = state.get(xhr);
    const call = s && !stopped() ? track(...s) : null;
    if (!call) return;
    if (call.header) setHeader.call(xhr, TRACEPARENT, call.header);
    let failure = "NetworkError";
    xhr.addEventListener("abort", () => (failure = "AbortError"));
    xhr.addEventListener("timeout", () => (failure = "TimeoutError"));
    xhr.addEventListener(
      "loadend",
      safely(() => {
        const { status } = xhr;
        call.end(status, xhr.getResponseHeader("server-timing"), status ? undefined : failure);
      }),
    );
  });
}
