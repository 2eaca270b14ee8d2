/**
 * What the user does and sees: clicks, scrolls, form submits, uncaught errors, page load, web
 * vitals and component lifecycle. Never text, values or attributes beyond tag, id and class.
 */
import { onCLS, onFCP, onINP, onLCP, onTTFB } from "web-vitals";
import type { MetricType } from "web-vitals";
import type { CaptureContext, CaptureKind, ComponentTracker } from "./types";
import { ms, now, safely, truncate, withoutQuery } from "./util";

const MAX_MESSAGE_CHARS = 300;
const INTERACTIVE = "a,button,input,select,textarea,label,summary,option,[role=button],[onclick]";

let vitalsSink: ((metric: MetricType) => void) | null = null;
let pageLoadReported = false;

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

/** Listens for clicks, submits, scrolls and errors, as far as `enabled` allows. */
export function captureInteractions(
  ctx: CaptureContext,
  enabled: (kind: CaptureKind) => boolean,
): void {
  const page = new Interactions(ctx);
  const win = globalThis as typeof globalThis & Window;
  const doc = globalThis.document;
  if (enabled("clicks")) ctx.listen(doc, "click", (ev) => page.onClick(ev), true);
  if (enabled("forms")) ctx.listen(doc, "submit", (ev) => page.onSubmit(ev), true);
  if (enabled("scrolls")) ctx.listen(win, "scroll", () => page.onScroll(), { passive: true });
  if (enabled("errors")) {
    ctx.listen(win, "error", (ev) => page.onError(ev as ErrorEvent));
    ctx.listen(win, "unhandledrejection", (ev) => page.onRejection(ev as PromiseRejectionEvent));
  }
}

class Interactions {
  private lastScroll = -Infinity;
  private scrollTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly recentErrors = new Map<string, number>();

  constructor(private readonly ctx: CaptureContext) {}

  onClick(ev: Event): void {
    let el = ev.target as Element | null;
    if (el && typeof el.closest !== "function") el = (el as unknown as Node).parentElement ?? null;
    if (!el || typeof el.closest !== "function") return;
    el = el.closest(INTERACTIVE) ?? el;
    const selector = describeElement(el);
    this.ctx.emit("click", selector, {
      details: { tag: el.tagName.toLowerCase(), id: el.getAttribute("id") || null, selector },
    });
  }

  onSubmit(ev: Event): void {
    const form = ev.target as HTMLFormElement | null;
    if (!form || form.tagName?.toUpperCase() !== "FORM") return;
    const id = form.getAttribute("id");
    const name = form.getAttribute("name");
    const label = id ? `form#${id}` : name ? `form[name=${name}]` : "form";
    const count = form.elements?.length;
    this.ctx.emit("form", `submit ${label}`, {
      details: {
        form_id: id || null,
        form_name: name || null,
        field_count: typeof count === "number" ? count : 0,
      },
    });
  }

  onScroll(): void {
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
      this.ctx.emit("scroll", "scroll", { details: { depth_pct: depth } });
    } else if (!this.scrollTimer) {
      this.scrollTimer = this.ctx.later(() => {
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

  onError(ev: ErrorEvent): void {
    if (typeof ev.message !== "string" && !ev.error) return;
    const message = ev.message || String(ev.error);
    if (this.repeated(`${message}|${ev.filename}|${ev.lineno}|${ev.colno}`)) return;
    this.ctx.emit("error", "window.onerror", {
      status: "error",
      details: {
        message: truncate(message, MAX_MESSAGE_CHARS),
        source: ev.filename ? withoutQuery(ev.filename) : null,
        line: ev.lineno ?? null,
        col: ev.colno ?? null,
      },
    });
  }

  onRejection(ev: PromiseRejectionEvent): void {
    const reason: unknown = ev.reason;
    const message =
      reason instanceof Error
        ? `${reason.name}: ${reason.message}`
        : typeof reason === "string"
          ? reason
          : "non-error rejection";
    if (this.repeated(message)) return;
    this.ctx.emit("error", "unhandledrejection", {
      status: "error",
      details: {
        message: truncate(message, MAX_MESSAGE_CHARS),
        source: null,
        line: null,
        col: null,
      },
    });
  }
}

/** Reports the page load's navigation timings once per page, when the load event is over. */
export function capturePageLoad(ctx: CaptureContext): void {
  const doc = globalThis.document;
  if (pageLoadReported || !doc) return;
  const report = (): void => {
    const nav = performance.getEntriesByType?.("navigation")[0] as
      PerformanceNavigationTiming | undefined;
    if (!nav || pageLoadReported) return;
    pageLoadReported = true;
    const load = nav.loadEventEnd || now();
    ctx.emit("page", "load", {
      timestamp: new Date(performance.timeOrigin).toISOString(),
      duration_ms: load,
      details: {
        ttfb_ms: ms(nav.responseStart),
        dom_content_loaded_ms: ms(nav.domContentLoadedEventEnd),
        load_ms: ms(load),
        path: globalThis.location?.pathname ?? null,
      },
    });
  };
  if (doc.readyState === "complete") ctx.later(report, 0);
  else ctx.listen(globalThis as typeof globalThis & Window, "load", () => ctx.later(report, 0));
}

/** web-vitals cannot unsubscribe: register once a page and feed whichever monitor is active. */
export function captureWebVitals(ctx: CaptureContext): void {
  const flag = globalThis as { __liveMonitorVitals?: boolean };
  const mine = (metric: MetricType): void => {
    const timed = metric.name !== "CLS";
    ctx.emit("web-vitals", metric.name, {
      duration_ms: timed ? metric.value : null,
      details: { value: Math.round(metric.value * 10000) / 10000, rating: metric.rating },
    });
  };
  vitalsSink = mine;
  ctx.onStop(() => {
    if (vitalsSink === mine) vitalsSink = null;
  });
  if (flag.__liveMonitorVitals) return;
  flag.__liveMonitorVitals = true;
  const sink = safely((metric: MetricType) => vitalsSink?.(metric));
  const watchers = [onFCP, onLCP, onCLS, onINP, onTTFB] as Array<(cb: typeof sink) => void>;
  for (const on of watchers) safely(on)(sink);
}

/** The lifecycle tracker behind `handle.trackComponent(name)` (see ComponentTracker). */
export function createTracker(ctx: CaptureContext, name: string): ComponentTracker {
  let started: number | null = null;
  let mounted = false;
  const lifecycle = (action: string, details?: Record<string, unknown>) => {
    const duration = started === null ? null : now() - started;
    started = null;
    ctx.emit(name, action, { duration_ms: duration, details: details ?? {} });
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
      ctx.emit(name, "unmount", { details: details ?? {} });
    }),
    render: <T>(fn: () => T): T => {
      const start = now();
      const action = mounted ? "update" : "mount";
      mounted = true;
      const done = safely((error: unknown) =>
        ctx.emit(name, action, {
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
