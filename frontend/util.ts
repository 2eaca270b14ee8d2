/** Small helpers every part of the browser logger shares. */

export const encoder = new TextEncoder();
export const now = (): number => performance.now();
export const ms = (value: number): number => Math.round(Math.max(0, value) * 1000) / 1000;
export const truncate = (text: string, max: number): string =>
  text.length > max ? text.slice(0, max) : text;
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

/** Random lowercase hex of `bytes` bytes, never all zero (invalid in W3C trace-context). */
export function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(buf);
  else for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  buf[bytes - 1] |= 1; // an all-zero id is invalid in W3C trace-context
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
