/** Getting events to the monitor: a bounded queue, batches, retries, beacons on page hide. */
import type { ExecutionEvent, LiveMonitorStats } from "./types";
import { byteLength, g, JSON_TYPE } from "./util";

const MAX_BODY_BYTES = 64 * 1024;
const MAX_RETRY_DELAY_MS = 60_000;

export interface Batch {
  body: string;
  count: number;
}

/** What the running monitor uses of its transport. */
export interface Transport {
  readonly counters: Omit<LiveMonitorStats, "queued">;
  /** Events queued or in flight (awaiting their answer or a retry). */
  queued(): number;
  enqueue(event: ExecutionEvent): void;
  /** Sends what is queued; resolves after each batch's first try (retries go on). */
  flush(): Promise<void>;
  /**
   * Sends everything now (queued and awaiting retry) in a way that survives page unload. With
   * `last` (the monitor stops), a failure after that is given up, not retried.
   */
  flushNow(last?: boolean): void;
}

/** Packs serialized events into request bodies of at most `batchSize` events and 64 KiB. */
export function packBatches(events: string[], batchSize: number): Batch[] {
  const batches: Batch[] = [];
  let parts: string[] = [];
  // `{"events":[` + `]}` is 13 bytes; each event below counts one comma too many.
  let bytes = 12;
  // `${parts}` joins the serialized events with commas.
  const cut = () =>
    parts.length && batches.push({ body: `{"events":[${parts}]}`, count: parts.length });
  for (const event of events) {
    const size = byteLength(event) + 1;
    if (parts.length >= batchSize || bytes + size > MAX_BODY_BYTES) {
      cut();
      parts = [];
      bytes = 12;
    }
    bytes += size;
    parts.push(event);
  }
  cut();
  return batches;
}

/**
 * Bounded queue, batching, retries with backoff (and Retry-After), and beacon sends when the
 * page goes away (`beacon`: whether navigator.sendBeacon may carry them). `send` is the
 * page's fetch as it was before the logger wrapped it.
 */
export function createTransport(
  url: string,
  send: typeof fetch,
  headers: Record<string, string>,
  beacon: boolean,
  batchSize: number,
  maxQueue: number,
  maxRetries: number,
  retryBaseMs: number,
): Transport {
  const counters = { sent: 0, dropped: 0, retried: 0, failed: 0 };
  const queue: string[] = [];
  const retries = new Map<ReturnType<typeof setTimeout>, Batch>();
  let pending = 0;
  let chain = Promise.resolve();
  let pausedUntil = 0;
  let closed = false;

  const queued = () => queue.length + pending;
  const take = (events: string[]): Batch[] => {
    pending += events.length;
    return packBatches(events, batchSize);
  };
  const settle = (batch: Batch, outcome: "sent" | "failed"): void => {
    pending -= batch.count;
    counters[outcome] += batch.count;
  };

  async function post(batch: Batch, attempt: number): Promise<void> {
    let response: Response | undefined;
    try {
      response = await send.call(g, url, {
        method: "POST",
        headers,
        body: batch.body,
        keepalive: true,
        credentials: "omit",
      });
    } catch {
      // a network error: retried below like a 503
    }
    try {
      if (response?.ok) return settle(batch, "sent");
      const status = response?.status;
      // No answer (a network error), 429 and 5xx are worth another try; anything else is final.
      if (
        (status !== undefined && status !== 429 && status < 500) ||
        attempt >= maxRetries ||
        closed
      ) {
        return settle(batch, "failed");
      }
      // Retry-After: seconds or an HTTP date (never more than the longest retry delay).
      const header = response?.headers.get("retry-after") as string;
      const asked = Math.min(
        MAX_RETRY_DELAY_MS,
        Math.max(0, Number(header) * 1000 || Date.parse(header) - Date.now() || 0),
      );
      // The monitor asked everyone to wait: hold new batches back too, not only this one.
      if (asked) pausedUntil = Math.max(pausedUntil, Date.now() + asked);
      const backoff = retryBaseMs * 2 ** attempt * (0.5 + Math.random() / 2);
      counters.retried++;
      const timer = setTimeout(
        () => {
          retries.delete(timer);
          void post(batch, attempt + 1);
        },
        Math.min(MAX_RETRY_DELAY_MS, Math.max(backoff, asked)),
      );
      retries.set(timer, batch);
    } catch {
      settle(batch, "failed");
    }
  }

  const flush = (): Promise<void> =>
    (chain = chain
      .then(async () => {
        while (queue.length && Date.now() >= pausedUntil) {
          for (const batch of take(queue.splice(0, batchSize))) await post(batch, 0);
        }
      })
      .catch(() => undefined));

  return {
    counters,
    queued,
    flush,
    enqueue(event) {
      const text = JSON.stringify(event);
      if (queued() >= maxQueue || byteLength(text) + 20 > MAX_BODY_BYTES) {
        counters.dropped++;
      } else if (queue.push(text) >= batchSize) {
        void flush();
      }
    },
    flushNow(last) {
      if (last) closed = true;
      const batches = take(queue.splice(0));
      for (const [timer, batch] of retries) {
        clearTimeout(timer);
        batches.push(batch);
      }
      retries.clear();
      for (const batch of batches) {
        let sent;
        try {
          sent = beacon && navigator.sendBeacon(url, new Blob([batch.body], { type: JSON_TYPE }));
        } catch {
          // no beacon: a keepalive fetch below instead
        }
        if (sent) settle(batch, "sent");
        else void post(batch, maxRetries);
      }
    },
  };
}
