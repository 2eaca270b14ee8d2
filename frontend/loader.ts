/**
 * The loader: a stand-in `window.LiveMonitor` that a page defines inline before the bundle, so
 * that the page can call the logger before the bundle has arrived, or while it cannot arrive
 * (the monitor is down), without an error.
 *
 * `npm run build` minifies it into the README's inline snippet (the bundle's URL written in)
 * and into `static/live-monitor-loader.js` (the same loader as a file, for a strict
 * Content-Security-Policy). It loads the bundle with an `async` script tag and, when that
 * fails, tries again with backoff for LOAD_FOR_MS. Until the bundle is there, every call is
 * queued with its time; the bundle then starts the logger with the options of the first
 * `initLiveMonitor` call and replays the queue (frontend_logging_config.ts). It is compiled
 * for old browsers and uses nothing that can throw, so it never breaks the page.
 */
import type { ComponentTracker, LiveMonitorHandle, LiveMonitorOptions } from "./types";

/**
 * One call the page made on a stand-in: the stand-in (handle or tracker), the method, its
 * arguments, when (`performance.now()`), and for `trackComponent` the stand-in tracker it
 * returned. `render` is queued once it has finished: its arguments are the time it started,
 * whether it failed and what it threw.
 */
export type StubCall = [
  target: object,
  method: string,
  args: unknown[],
  at: number,
  made?: ComponentTracker,
];

/** `window.LiveMonitor` until the bundle has arrived. */
export interface LoaderStub {
  initLiveMonitor(options?: LiveMonitorOptions): LiveMonitorHandle;
  /** The calls made so far, oldest first; the bundle replaces `push` to forward later ones. */
  q: StubCall[];
  /** The options of the first `initLiveMonitor` call. */
  o?: LiveMonitorOptions;
  /** The stand-in handle every `initLiveMonitor` call returned. */
  h?: LiveMonitorHandle;
  /** Calls left out because MAX_CALLS were queued. */
  d: number;
}

/** Calls held at most while the bundle is away; later ones are counted in `stats().dropped`. */
export const MAX_CALLS = 1000;
/** How long after the page started the loader keeps trying to load the bundle. */
export const LOAD_FOR_MS = 5 * 60 * 1000;
/** The wait after the first failure; it doubles after each one, up to MAX_WAIT_MS. */
export const FIRST_WAIT_MS = 1000;
export const MAX_WAIT_MS = 60 * 1000;

type Method = (...args: unknown[]) => unknown;

/** Defines the stand-in `LiveMonitor` on `w` (unless one is there) and loads `src` into `d`. */
export function installLoader(w: Window & { LiveMonitor?: unknown }, d: Document, src: string) {
  if (w.LiveMonitor) return;
  const q: StubCall[] = [];
  const clock = () => performance.now();
  const started = clock();
  let wait = FIRST_WAIT_MS;
  const stub: LoaderStub = {
    q,
    d: 0,
    initLiveMonitor(options) {
      stub.o = stub.o || options || {};
      return stub.h || (stub.h = stubHandle());
    },
  };
  const call = (target: object, method: string, args: unknown[], made?: ComponentTracker) => {
    if (q.length < MAX_CALLS) q.push([target, method, args, clock(), made]);
    else stub.d++;
  };
  /** Gives `target` a method for each name that queues its calls. */
  const queueing = <T extends object>(target: T, names: string[]): T => {
    for (const name of names) {
      (target as Record<string, Method>)[name] = (...args) => call(target, name, args);
    }
    return target;
  };
  const stubTracker = (): ComponentTracker => {
    const tracker = queueing({} as ComponentTracker, ["beginRender", "mount", "update", "unmount"]);
    tracker.render = (fn) => {
      const start = clock();
      const done = (failed?: boolean, error?: unknown) =>
        call(tracker, "render", [start, failed, error]);
      let result;
      try {
        result = fn();
      } catch (error) {
        done(true, error);
        throw error;
      }
      const then = result && (result as { then?: unknown }).then;
      if (typeof then == "function") {
        then.call(
          result,
          () => done(),
          (error: unknown) => done(true, error),
        );
      } else done();
      return result;
    };
    return tracker;
  };
  const stubHandle = (): LiveMonitorHandle => {
    const handle = queueing({} as LiveMonitorHandle, ["record", "stop"]);
    handle.trackComponent = (name) => {
      const tracker = stubTracker();
      call(handle, "trackComponent", [name], tracker);
      return tracker;
    };
    handle.flush = () => Promise.resolve();
    handle.stats = () => ({ queued: q.length, sent: 0, dropped: stub.d, retried: 0, failed: 0 });
    return handle;
  };
  const load = () => {
    const script = d.createElement("script");
    script.async = true;
    script.src = src;
    script.onerror = () => {
      script.remove();
      // Jitter, so that pages that lost the monitor together do not all come back at once.
      const delay = wait / 2 + (Math.random() * wait) / 2;
      wait = Math.min(wait * 2, MAX_WAIT_MS);
      if (clock() - started + delay < LOAD_FOR_MS) setTimeout(load, delay);
    };
    (d.head || d.documentElement).appendChild(script);
  };
  w.LiveMonitor = stub;
  load();
}
