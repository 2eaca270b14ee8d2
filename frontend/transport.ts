/**
 * Getting events to the monitor without getting in the page's way: a bounded queue sent in
 * batches by plain fetch (one request at a time, its answer read), retries that back off while
 * the monitor is away, and at page hide a keepalive send within half the page's allowance, the
 * rest kept in sessionStorage for the page's return or the next page of the same origin.
 */
import type { ExecutionEvent, LiveMonitorStats } from "./types";
import { byteLength, g, JSON_TYPE } from "./util";

/** The largest request body the logger builds (before compression). */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * What the logger may have in flight at page hide: half of the 64 KiB a browser allows the
 * whole page in keepalive requests and beacons, so the page's own beacons keep the other half.
 */
export const UNLOAD_BUDGET_BYTES = 32 * 1024;
/** A page still running this long after it was hidden takes its stored events back. */
const RESUME_AFTER_HIDE_MS = 1000;
const STORE_KEY = "live-monitor:unsent:";
// `{"events":[` + `]}` is 13 bytes; each event counts its comma, one too many.
const WRAPPER_BYTES = 12;

export interface Batch {
  body: string;
  count: number;
}

/** An event waiting to be sent: its JSON, its size with a comma, and when it was queued. */
interface Item {
  text: string;
  bytes: number;
  at: number;
}

/** How the transport sends; the entry point checks the options and fills in defaults. */
export interface TransportOptions {
  /** The ingest URL. */
  url: string;
  /** The page's fetch as it was before the logger wrapped it. */
  send: typeof fetch;
  headers: Record<string, string>;
  /** Whether navigator.sendBeacon may carry a batch (same origin, no ingest key). */
  beacon: boolean;
  batchSize: number;
  maxQueue: number;
  maxRetries: number;
  retryBaseMs: number;
  maxRetryDelayMs: number;
  maxAgeMs: number;
  storeBytes: number;
}

/** What the running monitor uses of its transport. */
export interface Transport {
  stats(): LiveMonitorStats;
  /** Counts an event the logger could not even build (it never reached the queue). */
  lost(): void;
  enqueue(event: ExecutionEvent): void;
  /** Sends what is queued, one batch after another; resolves when that is done or must wait. */
  flush(): Promise<void>;
  /**
   * The page is hidden or going away: sends what fits in the unload budget with keepalive and
   * keeps the rest in the store. With `last` (the monitor stops), sends what is queued once,
   * without retries, and keeps nothing.
   */
  flushNow(last?: boolean): void;
  /** The page is visible again: takes the stored events back and sends as usual. */
  resume(): void;
}

/** A request body: JSON, or its gzip. */
type Payload = string | Uint8Array<ArrayBuffer>;

const bodyOf = (items: Item[]): string => `{"events":[${items.map((i) => i.text).join(",")}]}`;

/** How many items from the head make one body of at most `maxCount` events and `maxBytes`. */
function fitting(items: Item[], maxCount: number, maxBytes: number): number {
  let bytes = WRAPPER_BYTES;
  let n = 0;
  while (n < items.length && n < maxCount && bytes + items[n].bytes <= maxBytes) {
    bytes += items[n++].bytes;
  }
  return n;
}

/** Takes one body's worth (at least one event) off the head of `items`. */
const takeBatch = (items: Item[], maxCount: number): Item[] =>
  items.splice(0, fitting(items, maxCount, MAX_BODY_BYTES) || 1);

const toItem = (text: string, at: number): Item => ({ text, bytes: byteLength(text) + 1, at });

/** Packs serialized events into request bodies of at most `batchSize` events and 64 KiB. */
export function packBatches(events: string[], batchSize: number): Batch[] {
  const items = events.map((text) => toItem(text, 0));
  const batches: Batch[] = [];
  while (items.length) {
    const batch = takeBatch(items, batchSize);
    batches.push({ body: bodyOf(batch), count: batch.length });
  }
  return batches;
}

/** The wait a Retry-After header asks for (seconds or an HTTP date), in ms; 0 when none. */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number {
  const value = (header ?? "").trim();
  if (!value) return 0;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? 0 : Math.max(0, date - now);
}

/** gzip of `text`, made with stream reads only (microtasks), so it ends within page hide. */
async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new CompressionStream("gzip");
  const writer = stream.writable.getWriter();
  void writer.write(new TextEncoder().encode(text)).catch(() => undefined);
  void writer.close().catch(() => undefined);
  const reader = stream.readable.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.length;
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Where events wait across a page hide: this tab's sessionStorage, or memory without it. */
interface Store {
  load(): Item[];
  /** Keeps `items` (oldest first) within the bound; returns how many did not fit. */
  save(items: Item[]): number;
}

function createStore(key: string, maxBytes: number): Store {
  let memory: Item[] = [];
  const storage = (): Storage | undefined => {
    try {
      return maxBytes > 0 ? g.sessionStorage : undefined;
    } catch {
      return undefined; // sessionStorage refused (sandboxed frame, storage blocked)
    }
  };
  return {
    load() {
      try {
        const raw = storage()?.getItem(key);
        if (raw) {
          const rows = JSON.parse(raw) as unknown;
          if (!Array.isArray(rows)) return [];
          const valid = (row: unknown): row is [number, object] =>
            Array.isArray(row) && typeof row[0] === "number" && typeof row[1] === "object";
          return rows.filter(valid).map(([at, event]) => toItem(JSON.stringify(event), at));
        }
      } catch {
        // unreadable: nothing stored
      }
      return memory;
    },
    save(items) {
      const kept = fitting(items, Infinity, maxBytes);
      memory = items.slice(0, kept);
      try {
        const store = storage();
        if (store && memory.length) {
          store.setItem(key, `[${memory.map((i) => `[${i.at},${i.text}]`).join(",")}]`);
          memory = [];
        } else store?.removeItem(key);
      } catch {
        // over the storage quota: kept in memory, lost if the page goes away
      }
      return items.length - kept;
    },
  };
}

/**
 * The transport: a bounded queue, batches, retries with backoff and Retry-After, and the
 * unload send with its store. See the README's "Delivery" for the policy.
 */
export function createTransport(options: TransportOptions): Transport {
  const { url, send, headers, batchSize, maxQueue, maxRetries, retryBaseMs } = options;
  const { maxRetryDelayMs, maxAgeMs } = options;
  const counters = { sent: 0, dropped: 0, retried: 0, failed: 0, restored: 0 };
  const store = createStore(STORE_KEY + url, options.storeBytes);
  let stored = 0;
  let queue: Item[] = [];
  let inFlight: Item[] = [];
  let posting = 0;
  let abort: AbortController | undefined;
  let keepaliveBytes = 0;
  let keepaliveEvents = 0;
  let failures = 0;
  let attempts = 0;
  let split = 0;
  let resumeAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let draining: Promise<void> | undefined;
  let unloading = false;
  let parked = false;
  let closed = false;

  const queued = () => queue.length + posting + keepaliveEvents;
  /** Makes `items` the store's content; what is beyond its bound is dropped and counted. */
  const keep = (items: Item[]): void => {
    const over = store.save(items);
    counters.dropped += over;
    stored = items.length - over;
  };
  const later = (fn: () => void, delay: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, delay);
  };
  /** Drops (and counts) what is older than maxAgeMs: nobody wants it any more. */
  const fresh = (items: Item[]): Item[] => {
    const oldest = Date.now() - maxAgeMs;
    const kept = items.filter((i) => i.at >= oldest);
    counters.dropped += items.length - kept.length;
    return kept;
  };

  /** The wait is over (a timer may fire a little early by the clock): send, or take back. */
  function wake(): void {
    const left = resumeAt - Date.now();
    if (left > 0) {
      later(wake, left); // a timer may fire a millisecond early by the wall clock a date is on
      return;
    }
    resumeAt = 0;
    if (parked) resume();
    else void flush();
  }

  /** The monitor is away or asked to wait: the next attempt after a backoff with full jitter. */
  function backOff(retryAfter: string | null): void {
    const cap = Math.min(maxRetryDelayMs, retryBaseMs * 2 ** Math.min(failures - 1, 30));
    const delay = Math.max(Math.random() * cap, Math.min(retryAfterMs(retryAfter), maxAgeMs));
    resumeAt = Date.now() + delay;
    later(wake, delay);
  }

  /** Books a batch's answer (status 0: none); true when the next batch may go at once. */
  function settle(batch: Item[], status: number, retryAfter: string | null): boolean {
    if (status >= 200 && status < 300) {
      counters.sent += batch.length;
      failures = attempts = split = 0;
      return true;
    }
    if (status === 413 && batch.length > 1) {
      split = Math.ceil(batch.length / 2); // the monitor takes smaller bodies: halve and resend
      queue.unshift(...batch);
      return true;
    }
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      counters.failed += batch.length; // refused for good: sending it again changes nothing
      attempts = 0;
      return true;
    }
    failures++;
    if (closed || ++attempts > maxRetries) {
      counters.dropped += batch.length;
      attempts = 0;
    } else {
      counters.retried++;
      queue.unshift(...batch);
    }
    if (!closed) backOff(retryAfter);
    return false;
  }

  /** One plain POST (no keepalive); its answer is read so the connection is freed. */
  async function post(batch: Item[], signal?: AbortSignal): Promise<[number, string | null]> {
    posting += batch.length;
    try {
      const init = { method: "POST", headers, body: bodyOf(batch), credentials: "omit", signal };
      const response = await send.call(g, url, init as RequestInit);
      await response.arrayBuffer().catch(() => undefined);
      return [response.status, response.headers.get("retry-after")];
    } catch {
      return [0, null]; // a network error (or the browser's CORS refusal): tried again later
    } finally {
      posting -= batch.length;
    }
  }

  /** Sends the queue's head; one such request at a time, so an absent monitor gets one probe. */
  async function attempt(): Promise<boolean> {
    queue = fresh(queue);
    const batch = takeBatch(queue, split || batchSize);
    if (!batch.length) return false;
    inFlight = batch;
    abort = typeof AbortController === "function" ? new AbortController() : undefined;
    const [status, retryAfter] = await post(batch, abort?.signal);
    if (inFlight !== batch) return false; // taken over by a page hide
    inFlight = [];
    return settle(batch, status, retryAfter);
  }

  async function drain(): Promise<void> {
    while (queue.length && !parked && Date.now() >= resumeAt) {
      if (!(await attempt()) || closed) return;
    }
  }

  const flush = (): Promise<void> =>
    (draining ??= drain()
      .catch(() => undefined)
      .finally(() => (draining = undefined)));

  /** One unload body from the store's head: its events, and the bytes to post. */
  async function unloadBody(room: number, zip: boolean): Promise<[Item[], Payload, number]> {
    const items = store.load();
    let n = fitting(items, batchSize, zip ? MAX_BODY_BYTES : Math.min(room, MAX_BODY_BYTES));
    while (n) {
      const text = bodyOf(items.slice(0, n));
      if (!zip) return [items.slice(0, n), text, byteLength(text)];
      const packed = await gzip(text);
      if (packed.length <= room) return [items.slice(0, n), packed, packed.length];
      n = Math.min(n - 1, Math.floor((n * room) / packed.length));
    }
    return [[], "", 0];
  }

  /** Hands one unload body to the browser; false when it refused it. */
  function handOver(batch: Item[], body: Payload, size: number, zip: boolean): boolean {
    if (!zip && options.beacon) {
      let taken = false;
      try {
        taken = navigator.sendBeacon(url, new Blob([body], { type: JSON_TYPE }));
      } catch {
        // no beacon: refused like a full allowance
      }
      if (taken) counters.sent += batch.length;
      return taken;
    }
    keepaliveBytes += size;
    keepaliveEvents += batch.length;
    const init: RequestInit = {
      method: "POST",
      headers: zip ? { ...headers, "Content-Encoding": "gzip" } : headers,
      body,
      keepalive: true,
      credentials: "omit",
    };
    let status = 0;
    let retryAfter: string | null = null;
    void send
      .call(g, url, init)
      .then(async (response) => {
        status = response.status;
        retryAfter = response.headers.get("retry-after");
        await response.arrayBuffer().catch(() => undefined);
      })
      .catch(() => undefined)
      .then(() => {
        keepaliveBytes -= size;
        keepaliveEvents -= batch.length;
        // Still running: booked like any answer; a batch to send again waits in the store
        // while the page is hidden, in the queue otherwise.
        if (settle(batch, status, retryAfter) || !parked || closed) return;
        const back = queue.splice(0, batch.length);
        keep([...back, ...store.load()]);
      });
    return true;
  }

  /** Sends stored events within the unload budget, one body after another. */
  async function sendStored(): Promise<void> {
    if (unloading) return;
    unloading = true;
    const zip = typeof CompressionStream === "function";
    try {
      for (;;) {
        const room = UNLOAD_BUDGET_BYTES - keepaliveBytes;
        const [batch, body, size] = await unloadBody(room, zip);
        const now = store.load();
        // The store changed while the body was compressed: build it again.
        if (batch.length && now[batch.length - 1]?.text !== batch[batch.length - 1].text) continue;
        if (!batch.length || !parked) return;
        if (!handOver(batch, body, size, zip)) return; // refused: the store keeps it
        keep(now.slice(batch.length));
      }
    } finally {
      unloading = false;
    }
  }

  /** Takes the stored events back into the queue (the page runs on) and sends as usual. */
  function resume(): void {
    if (!parked || closed) return;
    parked = false;
    const back = store.load();
    keep([]);
    queue = [...back, ...queue];
    if (Date.now() >= resumeAt) void flush();
    else later(wake, resumeAt - Date.now());
  }

  /** Page hide: everything unsent into the store, then what fits sent with keepalive. */
  function hide(): void {
    parked = true;
    let items = queue;
    queue = [];
    // A probe to an unreachable monitor would fail: its events are kept instead.
    if (inFlight.length && failures) {
      items = [...inFlight, ...items];
      inFlight = [];
      abort?.abort();
    }
    keep(fresh([...store.load(), ...items]));
    // Sent at once while the monitor answers; kept for later while it does not.
    if (!failures) void sendStored().catch(() => undefined);
    later(resume, RESUME_AFTER_HIDE_MS);
  }

  /** The monitor stops: what is queued or stored goes once, without retries. */
  function close(): void {
    closed = true;
    clearTimeout(timer);
    const items = [...store.load(), ...queue];
    keep([]);
    queue = [];
    while (items.length) {
      const batch = takeBatch(items, batchSize);
      const body = bodyOf(batch);
      const size = byteLength(body);
      // with keepalive while the budget lasts: stop() may be called as the page goes away
      if (size > UNLOAD_BUDGET_BYTES - keepaliveBytes || !handOver(batch, body, size, false)) {
        void post(batch).then(([status]) => settle(batch, status, null));
      }
    }
  }

  // What the previous page of this origin (same tab) could not send goes first.
  const left = fresh(store.load());
  if (left.length) {
    store.save([]);
    counters.restored = left.length;
    queue = left;
    setTimeout(() => void flush(), 0);
  }

  return {
    stats: () => ({ queued: queued(), stored, ...counters }),
    lost: () => void counters.dropped++,
    flush,
    enqueue(event) {
      const text = JSON.stringify(event);
      if (queued() >= maxQueue || byteLength(text) + 1 + WRAPPER_BYTES > MAX_BODY_BYTES) {
        counters.dropped++;
      } else if (queue.push(toItem(text, Date.now())) >= batchSize && !parked) {
        void flush();
      }
    },
    flushNow: (last) => (last ? close() : hide()),
    resume,
  };
}
