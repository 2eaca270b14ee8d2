/** Small helpers every part of the browser logger shares. */

/** The page's global object; read on use, never cached, so a page's later patches count. */
export const g = globalThis as typeof globalThis & Window;
const encoder = new TextEncoder();
export const byteLength = (text: string): number => encoder.encode(text).length;
export const now = (): number => performance.now();
export const isoNow = (time = Date.now()): string => new Date(time).toISOString();
export const JSON_TYPE = "application/json";
/** What a report may say about a thrown value: an Error's name, never its message. */
export const errorName = (error: unknown): string =>
  error instanceof Error ? error.name : "Error";
export const ms = (value: number): number => Math.round(Math.max(0, value) * 1000) / 1000;
export const withoutQuery = (url: string): string => url.split(/[?#]/, 1)[0];

/** Wraps `fn` so that it never throws: the logger must never break the host page. */
export function safely<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch {
      // the logger must never break the host page
    }
  };
}

/** The trace id and parent span id of a W3C `traceparent` (version 00), or null if invalid. */
export function parseTraceparent(header: string | null | undefined): [string, string] | null {
  const match = /^00-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}$/.exec(String(header ?? "").trim());
  return match && /[^0]/.test(match[1]) && /[^0]/.test(match[2]) ? [match[1], match[2]] : null;
}

/** Random lowercase hex of `bytes` bytes, never all zero (invalid in W3C trace-context). */
export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  buf[0] |= 1;
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
