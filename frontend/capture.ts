/**
 * What the user does and sees: clicks, scrolls, form submits, uncaught errors, page load, web
 * vitals and component lifecycle. Never text, values or attributes beyond tag, id and class.
 */
import { onCLS, onFCP, onINP, onLCP, TTFBThresholds } from "web-vitals";
import type { MetricType } from "web-vitals";
import type { CaptureKind, ComponentTracker, Emit, Later, Listen } from "./types";
import {
  errorName,
  g,
  isoNow,
  ms,
  now,
  parseTraceparent,
  randomHex,
  safely,
  withoutQuery,
} from "./util";

// What a click is reported on: the element itself, or the interactive element it is in.
const INTERACTIVE = "a,button,input,select,textarea,label,summary,[role=button],[onclick]";

type Vital = Pick<MetricType, "name" | "value" | "rating">;
// The latest monitor's web-vitals report; undefined until web-vitals is registered.
let vitalsSink: ((metric: Vital) => void) | undefined;
let pageLoadReported = false;

/**
 * A short selector for an element, e.g. `button#save` or `a.nav-link`: tag, id and at most two
 * class names. Never text content, values or other attributes.
 */
export function describeElement(el: Element): string {
  const id = el.getAttribute("id");
  const classes = (el.getAttribute("class") ?? "")
    .split(/\s+/)
    .filter((c) => /^-?[a-z_][\w-]{0,39}$/i.test(c))
    .slice(0, 2);
  return (
    el.tagName.toLowerCase() +
    (id && /^[a-z_][\w:.-]{0,63}$/i.test(id) ? "#" + id : "") +
    classes.map((c) => "." + c).join("")
  );
}

// A burst: the same kind of event on the same element within this window is one event.
const BURST_MS = 1000;
// Elements tracked in one burst window; clicks on more are counted under OVERFLOW_ACTION.
const MAX_BURST_KEYS = 50;
const OVERFLOW_ACTION = "(other elements)";

type Details = Record<string, unknown> | (() => Record<string, unknown>);
interface Held {
  action: string;
  details: Details;
  count: number;
  timestamp: string;
}

/**
 * Coalesces bursts of one kind of event (clicks, scrolls) per key (the element): the first
 * occurrence is reported at once with `details.count` 1; the ones after it within BURST_MS are
 * one event at the end of the window, carrying how many they were as `details.count` (and the
 * latest details). A key stays in the burst while it keeps coming, so a sustained stream is one
 * event a window. Nothing is dropped: the counts of a burst add up to its events.
 */
function bursts(
  kind: string,
  emit: Emit,
  later: Later,
): { add(key: string, action: string, details: Details): void; flush(): void } {
  const held = new Map<string, Held>();
  let timing = false;
  const report = (action: string, details: Details, count: number, timestamp?: string): void => {
    const fields = typeof details === "function" ? details() : details;
    emit(kind, action, { timestamp, details: { ...fields, count } });
  };
  const schedule = (): void => {
    if (!timing) {
      timing = true;
      later(flush, BURST_MS);
    }
  };
  const hold = (key: string, action: string, details: Details): Held => {
    const entry = { action, details, count: 0, timestamp: "" };
    held.set(key, entry);
    schedule();
    return entry;
  };
  /** Reports what each key gathered since its last event; keys that got nothing leave. */
  function flush(): void {
    timing = false;
    for (const [key, entry] of held) {
      if (!entry.count) {
        held.delete(key);
        continue;
      }
      report(entry.action, entry.details, entry.count, entry.timestamp);
      entry.count = 0;
    }
    if (held.size) schedule();
  }
  return {
    /** One occurrence of `action` on `key` (the element), with the details to report. */
    add(key, action, details) {
      let entry = held.get(key);
      if (!entry && held.size >= MAX_BURST_KEYS) {
        // Too many elements in one burst: the rest are counted together.
        entry = held.get(OVERFLOW_ACTION) ?? hold(OVERFLOW_ACTION, OVERFLOW_ACTION, {});
        details = {};
      }
      if (entry) {
        if (!entry.count++) entry.timestamp = isoNow();
        entry.details = details;
        return;
      }
      hold(key, action, details);
      report(action, details, 1);
    },
    flush,
  };
}

/** Listens for clicks, submits, scrolls and errors, as far as `enabled` allows. */
export function captureInteractions(
  emit: Emit,
  listen: Listen,
  later: Later,
  enabled: (kind: CaptureKind) => boolean,
): void {
  const doc = g.document;
  const recentErrors = new Map<string, number>();
  const clicks = bursts("click", emit, later);
  const scrolls = bursts("scroll", emit, later);
  // A page going away gets the counts held so far, before the monitor sends what is queued.
  const flush = (): void => (clicks.flush(), scrolls.flush());
  listen(doc, "visibilitychange", () => doc.visibilityState === "hidden" && flush());
  listen(g, "pagehide", flush);

  if (enabled("clicks")) {
    listen(
      doc,
      "click",
      (ev) => {
        const node = ev.target as Element | null;
        // A click on text targets the text node: take its element.
        const base = node?.closest ? node : node?.parentElement;
        if (!base?.closest) return;
        const el = base.closest(INTERACTIVE) ?? base;
        const selector = describeElement(el);
        // The selector is all a click event says of its element: clicks on two elements
        // alike (two "button.add") make one burst.
        clicks.add(selector, selector, {
          tag: el.tagName.toLowerCase(),
          id: el.getAttribute("id") || null,
          selector,
        });
      },
      true,
    );
  }

  if (enabled("forms")) {
    listen(
      doc,
      "submit",
      (ev) => {
        const form = ev.target as HTMLFormElement | null;
        if (form?.tagName?.toUpperCase() !== "FORM") return;
        const id = form.getAttribute("id");
        const name = form.getAttribute("name");
        emit("form", "submit " + (id ? "form#" + id : name ? `form[name=${name}]` : "form"), {
          details: {
            form_id: id || null,
            form_name: name || null,
            field_count: form.elements?.length ?? 0,
          },
        });
      },
      true,
    );
  }

  // How far down the page the user has seen, read when the event is reported.
  const depth = (): Record<string, unknown> => {
    const height = Math.max(doc.documentElement.scrollHeight, doc.body?.scrollHeight ?? 0);
    const seen = g.scrollY + g.innerHeight;
    return { depth_pct: height > 0 ? Math.min(100, Math.round((seen / height) * 100)) : 100 };
  };
  if (enabled("scrolls")) {
    listen(g, "scroll", () => scrolls.add("scroll", "scroll", depth), { passive: true });
  }

  if (!enabled("errors")) return;
  /** Reports one error, unless the same one was reported in the last second (a loop). */
  const report = (
    action: string,
    message: string,
    key: string,
    source: string | null = null,
    line: number | null = null,
    col: number | null = null,
  ): void => {
    const t = now();
    const seen = recentErrors.get(key);
    if (recentErrors.size > 50) recentErrors.clear();
    recentErrors.set(key, t);
    if (seen !== undefined && t - seen < 1000) return;
    emit("error", action, {
      status: "error",
      details: { message: message.slice(0, 300), source, line, col },
    });
  };
  listen(g, "error", (event) => {
    const ev = event as ErrorEvent;
    if (typeof ev.message !== "string" && !ev.error) return;
    const message = ev.message || String(ev.error);
    const { filename, lineno, colno } = ev;
    const key = `${message}|${filename}|${lineno}|${colno}`;
    report("window.onerror", message, key, filename ? withoutQuery(filename) : null, lineno, colno);
  });
  listen(g, "unhandledrejection", (ev) => {
    const reason: unknown = (ev as PromiseRejectionEvent).reason;
    const message =
      reason instanceof Error
        ? `${reason.name}: ${reason.message}`
        : typeof reason === "string"
          ? reason
          : "non-error rejection";
    report("unhandledrejection", message, message);
  });
}

/**
 * Once per page, when the load event is over: the page load's navigation timings (if `load`)
 * and the TTFB web vital (to the web-vitals monitor, if any). Both come from the same
 * navigation entry, which is why web-vitals' onTTFB, a second reader of it, is not bundled.
 * A page whose server put its trace in `<meta name="traceparent">` has its load reported in
 * that trace, as a child of the server's request for the page (`parent_span_id`).
 */
export function capturePageLoad(emit: Emit, listen: Listen, later: Later, load: boolean): void {
  const doc = g.document;
  if (!doc) return;
  const report = (): void => {
    const nav = performance.getEntriesByType("navigation")[0] as
      (PerformanceNavigationTiming & { activationStart?: number }) | undefined;
    if (!nav || pageLoadReported) return;
    pageLoadReported = true;
    const { responseStart } = nav;
    const end = nav.loadEventEnd || now();
    // As web-vitals measures it: from the page's activation (if it was prerendered), and not at
    // all when the browser reports no first-byte time or an impossible one.
    if (responseStart > 0 && responseStart < now()) {
      const value = Math.max(responseStart - (nav.activationStart ?? 0), 0);
      const [good, poor] = TTFBThresholds;
      const rating = value > poor ? "poor" : value > good ? "needs-improvement" : "good";
      vitalsSink?.({ name: "TTFB", value, rating });
    }
    if (!load) return;
    const meta = doc.querySelector?.('meta[name="traceparent"]')?.getAttribute("content");
    const trace = parseTraceparent(meta);
    emit("page", "load", {
      ...(trace && { trace_id: trace[0], span_id: randomHex(8), parent_span_id: trace[1] }),
      timestamp: isoNow(performance.timeOrigin),
      duration_ms: end,
      details: {
        ttfb_ms: ms(responseStart),
        dom_content_loaded_ms: ms(nav.domContentLoadedEventEnd),
        load_ms: ms(end),
        path: g.location?.pathname ?? null,
      },
    });
  };
  // Once loaded and, for a prerendered page, shown (activated), as web-vitals waits too.
  const ready = (): void => {
    if ((doc as { prerendering?: boolean }).prerendering) listen(doc, "prerenderingchange", ready);
    else if (doc.readyState !== "complete") listen(g, "load", ready);
    else later(report, 0);
  };
  ready();
}

/**
 * FCP, LCP, CLS and INP from web-vitals (TTFB: see capturePageLoad). web-vitals cannot
 * unsubscribe: register once a page and feed the latest monitor that asked (whose `emit` does
 * nothing once it has stopped).
 */
export function captureWebVitals(emit: Emit): void {
  if (!vitalsSink) {
    const sink = safely((metric: Vital) => vitalsSink!(metric));
    const watchers = [onFCP, onLCP, onCLS, onINP] as Array<(report: typeof sink) => void>;
    for (const on of watchers) safely(on)(sink);
  }
  vitalsSink = ({ name, value, rating }) =>
    emit("web-vitals", name, {
      duration_ms: name === "CLS" ? null : value,
      details: { value: Math.round(value * 10000) / 10000, rating },
    });
}

/**
 * The lifecycle tracker behind `handle.trackComponent(name)` (see ComponentTracker). `clock`
 * is where its times come from: the loader's replay gives each queued call the time it was made.
 */
export function createTracker(emit: Emit, name: string, clock = now): ComponentTracker {
  let started: number | null = null;
  let mounted = false;
  // emit never throws, so neither do these.
  const timed =
    (action: string) =>
    (details: Record<string, unknown> = {}): void => {
      const duration = started && clock() - started;
      started = null;
      if (action === "mount") mounted = true;
      emit(name, action, { duration_ms: duration, details });
    };
  return {
    beginRender: () => void (started = clock()),
    mount: timed("mount"),
    update: timed("update"),
    unmount: (details = {}) => {
      mounted = false;
      started = null;
      emit(name, "unmount", { details });
    },
    render<T>(fn: () => T): T {
      const start = clock();
      const action = mounted ? "update" : "mount";
      mounted = true;
      const done = (failed: boolean, error?: unknown) =>
        emit(name, action, {
          duration_ms: clock() - start,
          status: failed ? "error" : "success",
          details: failed ? { error: errorName(error) } : {},
        });
      let result: T;
      try {
        result = fn();
      } catch (error) {
        done(true, error);
        throw error;
      }
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
        (result as PromiseLike<unknown>).then(
          () => done(false),
          (error: unknown) => done(true, error),
        );
      } else {
        done(false);
      }
      return result;
    },
  };
}
