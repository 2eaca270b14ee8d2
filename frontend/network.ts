/**
 * Calls seen from the page: fetch and XMLHttpRequest to the app's own API (same origin or a
 * `tracePropagationTargets` match) become "api" events keyed like the backend's requests; other
 * calls (analytics, maps, payment scripts) become dependencies, component "http-client", keyed
 * with their host as the backend keys its outgoing calls. Calls to the targets carry a `traceparent`.
 *
 * The page's requests are left as it made them: the one change is the added header, on a copy of
 * the request built from the page's own (so every field it set, inherited or not, goes along),
 * and no response body is ever read: when a body ended, and whether it was cut short, comes from
 * the browser's Resource Timing entry of the fetch.
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

// How long a response's body is waited for before its call is reported with the time to its
// headers (a long download, or a browser that gives no Resource Timing entry).
const BODY_TIMEOUT_MS = 30_000;
const TRACEPARENT = "traceparent";
// The components of the app's own API calls and of calls to other services, as the monitor
// names them (ENDPOINT_COMPONENTS and OUTGOING_COMPONENT in its vocabulary).
const API_COMPONENT = "api";
const OUTGOING_COMPONENT = "http-client";
// XMLHttpRequest.readyState after open(): a loadend seen then belongs to a request already ended.
const OPENED = 1;
const DONE = 4;
// Response types that say nothing of the answer: a no-cors call's, a redirect not followed.
const OPAQUE_TYPES = ["opaque", "opaqueredirect"];

/**
 * Reports the end of one call: HTTP status (0: none), Server-Timing, error name, response
 * type ("opaque" and "opaqueredirect" carry no status and are not errors), and when it ended.
 */
type EndCall = (
  status: number,
  timing?: string | null,
  error?: string,
  type?: string,
  end?: number,
) => void;

/** Adds the `traceparent` to the request being made; false when it cannot carry one. */
type AddHeader = (header: string) => boolean;

type Entry = PerformanceResourceTiming;

/** One fetch waiting for its Resource Timing entry (null: none came). */
interface BodyEnd {
  readonly url: string;
  readonly start: number;
  /** Ends the wait: the entry, or null for none (the fetch failed, or no entry came in time). */
  settle(entry: Entry | null): void;
  then(listener: (entry: Entry | null) => void): void;
}

/**
 * Watches the browser's Resource Timing entries for the fetches `watch` is told of; null where
 * the browser has none. An entry goes to the waiting fetch of the same URL started closest to it.
 */
function watchResources(onStop: OnStop): ((url: string, start: number) => BodyEnd) | null {
  const Observer = g.PerformanceObserver;
  if (typeof Observer !== "function" || !Observer.supportedEntryTypes?.includes("resource")) {
    return null;
  }
  const waiting = new Set<BodyEnd>();
  const claim = (entry: Entry): void => {
    if (entry.initiatorType !== "fetch") return;
    let best: BodyEnd | undefined;
    const distance = (w: BodyEnd) => Math.abs(w.start - entry.startTime);
    for (const w of waiting) {
      if (w.url === entry.name && (!best || distance(w) < distance(best))) best = w;
    }
    best?.settle(entry);
  };
  const observer = new Observer(
    safely((list: PerformanceObserverEntryList) => list.getEntries().forEach(claim as never)),
  );
  observer.observe({ type: "resource" });
  onStop(() => {
    observer.disconnect();
    for (const w of [...waiting]) w.settle(null);
  });
  return (url, start) => {
    let found: Entry | null | undefined;
    let listener: ((entry: Entry | null) => void) | undefined;
    const body: BodyEnd = {
      url,
      start,
      settle(entry) {
        if (found !== undefined) return;
        waiting.delete(body);
        clearTimeout(timer);
        found = entry;
        listener?.(entry);
      },
      then(then) {
        if (found === undefined) listener = then;
        else then(found);
      },
    };
    waiting.add(body);
    const timer = setTimeout(() => body.settle(null), BODY_TIMEOUT_MS);
    return body;
  };
}

/** The document's base URL, which a relative URL in fetch or open() is resolved against. */
const baseUrl = (): string => g.document?.baseURI ?? g.location.href;

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
  /** Decides whether one fetch/XHR is reported (null: leave it alone) and returns how to report
   * its end; adds the `traceparent` where the rules want one and the page set none (`addHeader`). */
  const track: Track = (url, method, existing, addHeader) => {
    if (url.href.startsWith(ingestUrl)) return null;
    const propagated = traceTargetMatches(url, targets, g.location.origin);
    if (!sampled && !propagated) return null;
    // The page's own traceparent names the span the server sees as its parent: report that one.
    const parsed = parseTraceparent(existing);
    const traceId = parsed?.[0] ?? randomHex(16);
    const spanId = parsed?.[1] ?? randomHex(8);
    // The trace the server will see: ours or the page's; else the server starts one.
    const ours = `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
    const sent = parsed || (propagated && !existing && addHeader(ours));
    const start = now();
    const timestamp = isoNow();
    // The app's own API is keyed like the server's requests; a third party's call with its host.
    const own = propagated || url.origin === g.location.origin;
    const component = own ? API_COMPONENT : OUTGOING_COMPONENT;
    const action = own ? endpointKey(method, url.pathname) : outgoingKey(method, url);
    return (status, timing, error, type, endTime = now()) => {
      if (!sampled) return;
      const opaque = OPAQUE_TYPES.includes(type as string);
      const details: Record<string, unknown> = {
        http_status: status,
        url_origin: url.origin,
        backend_ms: serverTimingAppMs(timing),
        sampled: true,
      };
      if (error) details.error = error;
      if (opaque) details.response_type = type;
      emit(component, action, {
        timestamp,
        duration_ms: Math.max(0, endTime - start),
        status: error || status >= 500 || (!status && !opaque) ? "error" : "success",
        details,
        // Without a valid header the backend started its own trace; its Server-Timing names it.
        trace_id: sent ? traceId : serverTimingTraceId(timing),
        span_id: spanId,
        sample_rate: sampleRate < 1 ? sampleRate : undefined,
      });
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

  if (typeof g.fetch === "function") wrapFetch(track, patch, stopped, watchResources(onStop));
  if (typeof g.XMLHttpRequest === "function") wrapXhr(track, patch, stopped);
}

type Track = (url: URL, method: string, existing: string | null, add: AddHeader) => EndCall | null;
type Patch = <T, K extends keyof T>(target: T, key: K, make: (original: T[K]) => T[K]) => void;

/**
 * The page's fetch, reported: once the response's body has ended (its Resource Timing entry),
 * or at its headers where the browser gives no entry or the body is an event stream.
 */
function wrapFetch(
  track: Track,
  patch: Patch,
  stopped: () => boolean,
  watch: ((url: string, start: number) => BodyEnd) | null,
): void {
  patch(
    g,
    "fetch",
    (original) =>
      function (this: unknown, ...args: [RequestInfo | URL, RequestInit?]): Promise<Response> {
        let end: EndCall | null = null;
        let body: BodyEnd | null = null;
        let signal: AbortSignal | null | undefined;
        try {
          if (!stopped()) {
            const [input, init] = args;
            const request = input instanceof Request ? input : null;
            const url = new URL(request ? request.url : String(input), baseUrl());
            const headers = new Headers(init?.headers ?? request?.headers);
            const method = String(init?.method ?? request?.method ?? "GET").toUpperCase();
            signal = init?.signal ?? request?.signal;
            const noCors = (init?.mode ?? request?.mode) === "no-cors";
            end = track(url, method, headers.get(TRACEPARENT), (header) => {
              if (noCors) return false; // the browser would drop the header
              // Built from the page's request, the copy keeps every field it set (inherited
              // ones too, which a spread `{...init}` would lose), its body and its signal. The
              // page's body may now be taken: from here on only `asked` may be sent.
              const asked = new Request(request ?? url.href, init);
              args = [asked];
              args = [withHeader(asked, header, init)];
              return true;
            });
            if (end && watch) body = watch(url.href, now());
          }
        } catch {
          end = null;
        }
        const promise = original.apply(this, args);
        const report = end;
        if (report) {
          promise.then(
            safely((response: Response) => onResponse(report, response, body, signal)),
            (error: unknown) => (body?.settle(null), report(0, null, errorName(error))),
          );
        }
        return promise;
      },
  );
}

/**
 * `request` with the header added. A Request made from another with any field given resets its
 * referrer and referrer policy (and a `window: null`): these are given back as the page set them.
 */
function withHeader(request: Request, header: string, init: RequestInit | undefined): Request {
  const headers = new Headers(request.headers);
  headers.set(TRACEPARENT, header);
  const fields: RequestInit = {
    headers,
    referrer: request.referrer,
    referrerPolicy: request.referrerPolicy,
  };
  if (init?.window === null) fields.window = null;
  return new Request(request, fields);
}

/**
 * Reports a fetch whose headers have come: when its body ended (never reading it), and as an
 * error if Resource Timing saw it cut short (status 0 after a real status): an abort by the
 * page's `signal` or a lost connection.
 */
function onResponse(
  end: EndCall,
  response: Response,
  body: BodyEnd | null,
  signal: AbortSignal | null | undefined,
): void {
  const { status, type, headers } = response;
  const timing = headers.get("server-timing");
  const headersAt = now();
  const streaming = /event-stream/i.test(headers.get("content-type") as string);
  if (!body || !response.body || streaming) {
    body?.settle(null);
    return end(status, timing, undefined, type, headersAt);
  }
  body.then(
    safely((entry: Entry | null) => {
      if (!entry) return end(status, timing, undefined, type, headersAt);
      const cut =
        status > 0 &&
        (entry.responseStatus === undefined ? signal?.aborted : entry.responseStatus === 0);
      const failure = cut ? (signal?.aborted ? "AbortError" : "NetworkError") : undefined;
      end(status, timing, failure, type, Math.max(entry.responseEnd, headersAt));
    }),
  );
}

/**
 * The page's XMLHttpRequests, reported at their loadend. Listeners are added once per XHR
 * object; a reused one reports each request once: a request still open when the page calls
 * open() again ends there (with its status once done, else as aborted).
 */
function wrapXhr(track: Track, patch: Patch, stopped: () => boolean): void {
  const proto = g.XMLHttpRequest.prototype;
  const setHeader = proto.setRequestHeader;
  // Per XHR: [url, method, traceparent the page set itself] of the request being opened.
  const opened = new WeakMap<XMLHttpRequest, [string, string, string | null]>();
  // Per XHR: the reported request in flight, and the error it ends with if it gets no status.
  const inFlight = new WeakMap<XMLHttpRequest, { end: EndCall; failure: string }>();
  const listening = new WeakSet<XMLHttpRequest>();

  /** Reports the request in flight on `xhr`, if any; `cutOff`: the page ended it by open(). */
  const finish = (xhr: XMLHttpRequest, cutOff = false): void => {
    const current = inFlight.get(xhr);
    if (!current) return;
    inFlight.delete(xhr);
    const { status } = xhr;
    // Asked only when exposed: Chrome logs "Refused to get unsafe header" for a hidden one.
    const exposed = /(^|\n)server-timing:/i.test(xhr.getAllResponseHeaders());
    const timing = exposed ? xhr.getResponseHeader("server-timing") : null;
    const error = cutOff ? "AbortError" : status ? undefined : current.failure;
    current.end(status, timing, error);
  };
  const failWith = (xhr: XMLHttpRequest, failure: string): void => {
    const current = inFlight.get(xhr);
    if (current) current.failure = failure;
  };
  const listen = (xhr: XMLHttpRequest): void => {
    if (listening.has(xhr)) return;
    listening.add(xhr);
    xhr.addEventListener("abort", () => failWith(xhr, "AbortError"));
    xhr.addEventListener("timeout", () => failWith(xhr, "TimeoutError"));
    xhr.addEventListener(
      "loadend",
      safely(() => xhr.readyState !== OPENED && finish(xhr)),
    );
  };

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
  before("open", (xhr, [method, url]) => {
    // A request not ended yet ends here: done (the page reopens in its own loadend) or cut off.
    finish(xhr, xhr.readyState !== DONE);
    opened.set(xhr, [String(url), String(method), null]);
  });
  before("setRequestHeader", (xhr, [name, value]) => {
    const s = opened.get(xhr);
    if (s && String(name).toLowerCase() === TRACEPARENT) s[2] = String(value);
  });
  before("send", (xhr) => {
    const s = opened.get(xhr);
    if (!s || stopped()) return;
    const [url, method, existing] = s;
    const add = (header: string) => (setHeader.call(xhr, TRACEPARENT, header), true);
    const end = track(new URL(url, baseUrl()), method.toUpperCase(), existing, add);
    if (!end) return;
    listen(xhr);
    inFlight.set(xhr, { end, failure: "NetworkError" });
  });
}
