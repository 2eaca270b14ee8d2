/** Endpoint keys and trace helpers: how a browser call and a backend request find each other. */
import type { TraceTarget } from "./types";
import { withoutQuery } from "./util";

// backend_logging_config._ID: digits, a UUID or 16+ hex characters ("\n?$" mirrors Python's "$"),
// or a prefixed id like "ch_3Nabc123XYZ" (1-8 lowercase letters, "_", 8+ letters and digits, one a digit).
const ID = /^(\d+|([\da-f]{8}(-[\da-f]{4}){3}-[\da-f]{12}|[\da-f]{16,})\n?)$/i;
const PREFIXED_ID = /^[a-z]{1,8}_(?=[A-Za-z]*\d)[A-Za-z\d]{8,}$/;

/**
 * The endpoint route of a path or URL, like `normalize_route` in backend_logging_config.py: no
 * scheme and host, no query or fragment, numeric segments, UUIDs, hex strings of 16+ characters
 * and prefixed ids ("ch_3Nabc123XYZ") become ":id", empty segments and a trailing slash are dropped.
 */
export function normalizeRoute(path: string): string {
  // An absolute URL's path, as Python's urlsplit finds it in a well-formed URL.
  const segments = withoutQuery(path.replace(/^\s*[a-z][a-z\d+.-]*:\/\/[^/?#]*/i, "")).split("/");
  return (
    "/" +
    segments
      .filter((s) => s)
      .map((s) => (ID.test(s) || PREFIXED_ID.test(s) ? ":id" : s))
      .join("/")
  );
}

/** The key both sides share, e.g. "GET /api/orders/:id". */
export function endpointKey(method: string, path: string): string {
  return method.toUpperCase() + " " + normalizeRoute(path);
}

/**
 * The key of a call to another service, with the host it went to, like `outgoing_key` in
 * backend_logging_config.py: "POST www.google-analytics.com/g/collect" (host lowercased, no
 * credentials, the scheme's default port dropped). A URL without a valid host gives the path alone.
 */
export function outgoingKey(method: string, url: string | URL): string {
  let host = "";
  try {
    host = new URL(url).host;
  } catch {
    // A relative URL or a malformed host (e.g. a port that is not a number): the path alone.
  }
  return method.toUpperCase() + " " + host + normalizeRoute(String(url));
}

/** Parses the `dur` of the `app` entry of a Server-Timing header, e.g. "app;dur=12.5". */
export function serverTimingAppMs(header?: string | null): number | null {
  // The `dur` param of the first `app` entry that has one (entries are split at commas).
  const match = /(^|,)\s*app\s*;([^,]*?;)??\s*dur="?([\d.]+)/i.exec(header as string);
  return match ? Number(match[3]) : null;
}

/** The trace id the backend answered in Server-Timing (`traceparent;desc="00-<id>-..."`). */
export function serverTimingTraceId(header?: string | null): string | undefined {
  return /traceparent;\s*desc="?00-([\da-f]{32})-/.exec(header as string)?.[1];
}

/** True when a request to `url` should carry a `traceparent` (see `tracePropagationTargets`). */
export function traceTargetMatches(
  url: URL,
  targets: TraceTarget[] | undefined,
  origin: string,
): boolean {
  const { href, pathname } = url;
  const sameOrigin = url.origin === origin;
  if (!targets) return sameOrigin;
  return targets.some((target) => {
    if (target instanceof RegExp) {
      target.lastIndex = 0;
      return target.test(href);
    }
    if (target[0] === "/" && target[1] !== "/") return sameOrigin && pathname.startsWith(target);
    return href.startsWith(target); // an origin, or a URL prefix
  });
}
