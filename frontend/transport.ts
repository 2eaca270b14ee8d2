/** Getting events to the monitor: a bounded queue, batches, retries, beacons on page hide. */
import type { ExecutionEvent } from "./types";
import { encoder } from "./util";

const MAX_BODY_BYTES = 64 * 1024;
const MAX_RETRY_DELAY_MS = 60_000;

export interface Batch {
  body: string;
  count: number;
}

/** Packs serialized events into request bodies of at most `batchSize` events and 64 KiB. */
export function packBatches(events: string[], batchSize: number): Batch[] {
  const batches: Batch[] = [];
  const overhead = encoder.encode('{"events":[]}').length;
  let parts: string[] = [];
  let bytes = overhead;
  for (const event of events) {
    const size = encoder.encode(event).length + (parts.length ? 1 : 0);
    if (parts.length && (parts.length >= batchSize || bytes + size > MAX_BODY_BYTES)) {
      batches.push({ body: `{"events":[${parts.join(",")}]}`, count: parts.length });
      parts = [];
      bytes = overhead;
    }
    bytes += encoder.encode(event).length + (parts.length ? 1 : 0);
    parts.push(event);
  }
  if (parts.length) batches.push({ body: `{"events":[${parts.join(",")}]}`, count: parts.length });
  return batches;
}

function retryAfterMs(header: string | null): number {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : 0;
}

/** Bounded queue, batching, retries with backoff, and beacon sends when the page goes away. */
export class Transport {
  readonly counters = { sent: 0, dropped: 0, retried: 0, failed: 0 };
  private queue: string[] = [];
  private pending = 0;
  private retries = new Map<ReturnType<typeof setTimeout>, Batch>();
  private chain: Promise<void> = Promise.resolve();
  private pausedUntil = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly fetchFn: typeof fetch,
    private readonly headers: Record<string, string>,
    private readonly beacon: ((url: string, data: Blob) => boolean) | null,
    private readonly cfg: {
      batchSize: number;
      maxQueue: number;
      maxRetries: number;
      retryBaseMs: number;
    },
  ) {}

  get queued(): number {
    return this.queue.length + this.pending;
  }

  enqueue(event: ExecutionEvent): void {
    if (this.queued >= this.cfg.maxQueue) {
      this.counters.dropped++;
      return;
    }
    const text = JSON.stringify(event);
    if (encoder.encode(text).length + 20 > MAX_BODY_BYTES) {
      this.counters.dropped++;
      return;
    }
    this.queue.push(text);
    if (this.queue.length >= this.cfg.batchSize) void this.flush();
  }

  flush(): Promise<void> {
    this.chain = this.chain.then(() => this.drain()).catch(() => undefined);
    return this.chain;
  }

  private async drain(): Promise<void> {
    while (this.queue.length && Date.now() >= this.pausedUntil) {
      const batches = this.take(this.queue.splice(0, this.cfg.batchSize));
      for (const batch of batches) await this.post(batch, 0);
    }
  }

  private take(events: string[]): Batch[] {
    this.pending += events.length;
    return packBatches(events, this.cfg.batchSize);
  }

  private settle(batch: Batch, outcome: "sent" | "failed"): void {
    this.pending -= batch.count;
    this.counters[outcome] += batch.count;
  }

  private async post(batch: Batch, attempt: number): Promise<void> {
    let response: Response | null = null;
    try {
      response = await this.fetchFn.call(globalThis, this.url, {
        method: "POST",
        headers: this.headers,
        body: batch.body,
        keepalive: true,
        credentials: "omit",
      });
    } catch {
      response = null;
    }
    try {
      this.retryLater(batch, attempt, response);
    } catch {
      this.settle(batch, "failed");
    }
  }

  private retryLater(batch: Batch, attempt: number, response: Response | null): void {
    if (response && response.ok) return this.settle(batch, "sent");
    const retryable = !response || response.status === 429 || response.status >= 500;
    if (!retryable || attempt >= this.cfg.maxRetries || this.closed) {
      return this.settle(batch, "failed");
    }
    const asked = retryAfterMs(response?.headers.get("retry-after") ?? null);
    // The monitor asked everyone to wait: hold new batches back too, not only this one.
    if (asked) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + asked);
    const backoff = this.cfg.retryBaseMs * 2 ** attempt * (0.5 + Math.random() / 2);
    const delay = Math.min(MAX_RETRY_DELAY_MS, Math.max(backoff, asked));
    this.counters.retried++;
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      void this.post(batch, attempt + 1);
    }, delay);
    this.retries.set(timer, batch);
  }

  /** Sends everything now (queued and awaiting retry) in a way that survives page unload. */
  flushNow(): void {
    const batches = this.take(this.queue.splice(0));
    for (const [timer, batch] of this.retries) {
      clearTimeout(timer);
      batches.push(batch);
    }
    this.retries.clear();
    for (const batch of batches) {
      let sent = false;
      try {
        sent = !!this.beacon?.(this.url, new Blob([batch.body], { type: "application/json" }));
      } catch {
        sent = false;
      }
      if (sent) this.settle(batch, "sent");
      else void this.post(batch, this.cfg.maxRetries);
    }
  }

  /** Cancels pending retries; their events count as failed. */
  close(): void {
    this.closed = true;
    for (const [timer, batch] of this.retries) {
      clearTimeout(timer);
      this.settle(batch, "failed");
    }
    this.retries.clear();
  }
}
