// Paces requests under the gateway's rate limit. Cordum's limiter is one token bucket for the
// whole gateway process (api.md §4), shared with every real client, so a read-only replay must
// not spend it faster than the profile allows: requests START at most `rps` per second, evenly
// spaced (no use of the burst), while up to `concurrency` of them may be in flight so that
// latency does not lower the pace. Every wait ends when the signal aborts.
import { setTimeout as delay } from 'node:timers/promises';

export interface PacerOptions {
  /** Request starts per second (> 0). */
  rps: number;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  signal?: AbortSignal;
}

export class Pacer {
  readonly intervalMs: number;
  private next = 0;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly concurrency: number;
  /** Requests started through this pacer. */
  started = 0;

  constructor(private readonly opts: PacerOptions) {
    if (!(opts.rps > 0)) throw new Error(`pacer: rps must be > 0, got ${opts.rps}`);
    this.intervalMs = 1000 / opts.rps;
    this.concurrency = Math.max(1, opts.concurrency ?? 16);
  }

  /** Run `fn` once a start slot and an in-flight slot are free. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.slot();
    const now = performance.now();
    const at = Math.max(now, this.next);
    this.next = at + this.intervalMs;
    try {
      if (at > now) {
        try {
          await delay(at - now, undefined, { signal: this.opts.signal });
        } catch (err) {
          // The stop's own reason (a step timeout, Ctrl-C), not timers' generic AbortError.
          throw this.opts.signal?.aborted ? this.opts.signal.reason : err;
        }
      }
      this.opts.signal?.throwIfAborted();
      this.started++;
      return await fn();
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  /** Map every item through `fn`, paced; results keep the input order. The first failure rejects. */
  async map<I, O>(items: readonly I[], fn: (item: I, index: number) => Promise<O>): Promise<O[]> {
    return Promise.all(items.map((item, i) => this.run(() => fn(item, i))));
  }

  private async slot(): Promise<void> {
    while (this.inFlight >= this.concurrency) {
      this.opts.signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        this.waiting.push(() => {
          this.opts.signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        this.opts.signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    this.opts.signal?.throwIfAborted();
    this.inFlight++;
  }
}
