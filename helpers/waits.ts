// Deadline polls. Cordum is asynchronous everywhere (job states, DLQ entries, kernel reloads), so
// runbooks poll; every poll here has a hard deadline and, when it runs out, says what it last saw:
// "still PENDING" and "never got an answer" need different fixes.
import type { GatewayError } from './gateway.js';

export interface WaitOptions {
  timeoutMs: number;
  /**
   * Longest pause between probes (default 250 ms). The first pauses are shorter (50 ms, doubling up
   * to this), so a state that changes within milliseconds is seen within milliseconds, while a long
   * wait settles at this pace: a handful of extra probes, well inside Cordum's shared limiter (50 per
   * second on average, bursts of 100).
   */
  intervalMs?: number;
  signal?: AbortSignal;
}

export class WaitTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastValue: unknown,
    readonly lastError: unknown,
    readonly probes: number,
    /** Already formatted "last saw" text, for callers that summarise themselves (e.g. bus subscriptions). */
    lastDescription?: string,
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}; last saw: ${lastDescription ?? describeLast(lastValue, lastError, probes)}`);
    this.name = 'WaitTimeoutError';
  }
}

export class WaitAbortedError extends Error {
  constructor(what: string, reason: unknown) {
    super(`aborted while waiting for ${what}${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
    this.name = 'WaitAbortedError';
  }
}

const NOTHING = Symbol('nothing');

/** waitFor's first pause between probes; it doubles up to the wait's interval. */
const FIRST_PAUSE_MS = 50;

/**
 * Probe until `until(value)` holds or the deadline passes. A probe that throws counts as "not yet"
 * (its error is what the timeout message shows). A probe that hangs cannot push the deadline out:
 * each probe gets a signal that aborts at the deadline (and on the caller's signal), so a probe that
 * passes it on (an HTTP request) is cancelled, not merely abandoned.
 */
export async function waitFor<T>(
  what: string,
  probe: (signal: AbortSignal) => Promise<T>,
  until: (v: T) => boolean,
  opts: WaitOptions,
): Promise<T> {
  const interval = opts.intervalMs ?? 250;
  let pause = Math.min(FIRST_PAUSE_MS, interval);
  const deadline = Date.now() + opts.timeoutMs;
  let last: T | typeof NOTHING = NOTHING;
  let lastError: unknown;
  let probes = 0;
  throwIfAborted(opts.signal, what);
  for (;;) {
    const remaining = deadline - Date.now();
    // Always give the first probe a chance, even with a tiny remaining budget.
    const limit = anySignal(opts.signal, AbortSignal.timeout(Math.max(remaining, 1)))!;
    let outcome: Outcome<T>;
    try {
      outcome = { kind: 'value', value: await untilAborted(() => probe(limit), limit) };
    } catch (error) {
      throwIfAborted(opts.signal, what);
      outcome = limit.aborted ? { kind: 'deadline' } : { kind: 'error', error };
    }
    if (outcome.kind !== 'deadline') probes++;
    if (outcome.kind === 'value') {
      last = outcome.value;
      lastError = undefined;
      if (until(outcome.value)) return outcome.value;
    } else if (outcome.kind === 'error') {
      lastError = outcome.error;
    }
    const left = deadline - Date.now();
    if (left <= 0 || outcome.kind === 'deadline') {
      throw new WaitTimeoutError(what, opts.timeoutMs, last === NOTHING ? undefined : last, lastError, probes);
    }
    await sleep(Math.min(pause, left), opts.signal, what);
    pause = Math.min(pause * 2, interval);
  }
}

export interface RetryOn409Options {
  /** Total time allowed (default 15000 ms: the workflow reconciler holds the run lock about every 5 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 300 ms, plus up to 50% jitter). */
  intervalMs?: number;
  signal?: AbortSignal;
  /** Which 409s to retry (default: Cordum's "workflow run is busy, retry"). */
  match?: (err: GatewayError) => boolean;
  what?: string;
}

/** Retry `fn` while it fails with Cordum's 409 "workflow run is busy, retry"; anything else is rethrown. */
export async function retryOn409<R>(fn: () => Promise<R>, opts: RetryOn409Options = {}): Promise<R> {
  const timeoutMs = opts.timeoutMs ?? 15000;
  const interval = opts.intervalMs ?? 300;
  const match = opts.match ?? ((e: GatewayError) => /busy/i.test(e.body));
  const what = opts.what ?? 'the workflow run lock to be free';
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  for (;;) {
    throwIfAborted(opts.signal, what);
    attempts++;
    try {
      return await fn();
    } catch (err) {
      if (!isConflict(err) || !match(err)) throw err;
      const pause = Math.round(interval * (1 + Math.random() * 0.5));
      if (Date.now() + pause > deadline) {
        throw new WaitTimeoutError(what, timeoutMs, undefined, err, attempts);
      }
      await sleep(pause, opts.signal, what);
    }
  }
}

/** An abortable pause for the few places that must wait a fixed time (e.g. a kernel reload interval). */
export function sleep(ms: number, signal?: AbortSignal, what = 'a pause'): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new WaitAbortedError(what, signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new WaitAbortedError(what, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type Outcome<T> = { kind: 'value'; value: T } | { kind: 'error'; error: unknown } | { kind: 'deadline' };

/**
 * Settle with `work`, or reject with the signal's reason as soon as it aborts, whichever comes first.
 * The one place the code stops waiting for work that cannot be cancelled itself (a step function
 * that ignores its signal, an ioredis command, a graceful close). Whatever accepts a signal (HTTP
 * requests, sleeps, polls) should get it instead, so the work itself stops. The abandoned promise is
 * silenced so it cannot become an unhandled rejection later.
 */
export function untilAborted<T>(work: Promise<T> | (() => Promise<T> | T), signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let p: Promise<T>;
  try {
    p = typeof work === 'function' ? Promise.resolve(work()) : work;
  } catch (err) {
    p = Promise.reject(err);
  }
  p.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Wait for `work` at most `ms` (best effort: closes, notifications); true when it settled in time. */
export async function settleWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  const limit = AbortSignal.timeout(ms);
  try {
    await untilAborted(work, limit);
  } catch {
    return !limit.aborted;
  }
  return true;
}

/** One signal that aborts when any of the given ones does (undefined entries are skipped; none: undefined). */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length <= 1 ? present[0] : AbortSignal.any(present);
}

/** A GatewayError (helpers/gateway.ts) with status 409, told by its fields: waits stays free of the HTTP stack. */
function isConflict(err: unknown): err is GatewayError {
  const e = err as Partial<GatewayError> | undefined;
  return err instanceof Error && e?.status === 409 && typeof e.body === 'string' && typeof e.method === 'string';
}

function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new WaitAbortedError(what, signal.reason);
}

const MAX_LAST_CHARS = 500;

function describeLast(value: unknown, error: unknown, probes: number): string {
  let text: string;
  if (error !== undefined) text = `error: ${error instanceof Error ? error.message : String(error)}`;
  else if (probes === 0) text = 'nothing (no probe completed)';
  else if (value === undefined) text = 'undefined';
  else text = compactJson(value);
  return text.length > MAX_LAST_CHARS ? `${text.slice(0, MAX_LAST_CHARS)}…` : text;
}

export function compactJson(v: unknown): string {
  try {
    return (
      JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? `<${x.length} bytes>` : x)) ?? String(v)
    );
  } catch {
    return String(v);
  }
}
