/** Endpoint keys and trace helpers: how a browser call and a backend request find each other. */
import type { TraceTarget } from "./types";

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\n?$/;
const LONG_HEX = /^[0-9a-fA-F]{16,}\n?$/; // "\n?$" mirrors Python's "$"

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
export function serverTimingTraceId(header: string | null): string | null {
  return /traceparent;\s*desc="?00-([0-9a-f]{32})-/.exec(header ?? "")?.[1] ?? null;
}

/** True when a request to `url` should carry a `traceparent` (see `tracePropagationTargets`). */
export function traceTargetMatches(
  url: URL,
  targets: TraceTarget[] | undefined,
  origin: string,
): boolean {
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
