import { describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../helpers/gateway.js';
import { retryOn409, WaitAbortedError, waitFor, WaitTimeoutError } from '../../helpers/waits.js';

describe('waitFor', () => {
  /** The pauses waitFor takes between probes until `probes` have run, on fake timers. */
  async function pausesBetween(probes: number, intervalMs?: number): Promise<number[]> {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const at: number[] = [];
      const done = waitFor('the probe count', async () => at.push(Date.now()), (n) => n >= probes, { timeoutMs: 600_000, intervalMs });
      while (at.length < probes) await vi.advanceTimersByTimeAsync(5);
      await done;
      return at.slice(1).map((t, i) => t - at[i]!);
    } finally {
      vi.useRealTimers();
    }
  }

  it('probes again after 50 ms, doubling the pause up to its interval: quick changes are seen quickly, long waits settle', async () => {
    expect(await pausesBetween(7)).toEqual([50, 100, 200, 250, 250, 250]);
    expect(await pausesBetween(8, 1000)).toEqual([50, 100, 200, 400, 800, 1000, 1000]);
    // An interval shorter than the first pause is used from the start.
    expect(await pausesBetween(4, 20)).toEqual([20, 20, 20]);
  });

  it('returns the first value that satisfies the condition', async () => {
    let n = 0;
    const v = await waitFor('n to reach 3', async () => ++n, (x) => x >= 3, { timeoutMs: 5000, intervalMs: 1 });
    expect(v).toBe(3);
  });

  it('times out with the last value it saw, as compact JSON', async () => {
    const err = await waitFor('job j1 to be SUCCEEDED', async () => ({ id: 'j1', state: 'PENDING' }), (j) => j.state === 'SUCCEEDED', {
      timeoutMs: 60,
      intervalMs: 10,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toBe('timed out after 60 ms waiting for job j1 to be SUCCEEDED; last saw: {"id":"j1","state":"PENDING"}');
    expect((err as WaitTimeoutError).probes).toBeGreaterThan(0);
  });

  it('reports the last error when the probe kept failing', async () => {
    const err = await waitFor('the gateway', () => Promise.reject(new Error('connection refused')), () => true, { timeoutMs: 30, intervalMs: 5 }).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe('timed out after 30 ms waiting for the gateway; last saw: error: connection refused');
  });

  it('does not let a hanging probe push the deadline out', async () => {
    const err = await waitFor('a hung probe', () => new Promise<number>(() => {}), () => true, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('timed out after 50 ms waiting for a hung probe; last saw: nothing (no probe completed)');
  });

  it('rejects promptly on abort, also mid-pause', async () => {
    const ac = new AbortController();
    const p = waitFor('forever', async () => 1, () => false, { timeoutMs: 60_000, intervalMs: 60_000, signal: ac.signal });
    setImmediate(() => ac.abort(new Error('interrupted by user')));
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitAbortedError);
    expect((err as Error).message).toBe('aborted while waiting for forever: interrupted by user');
    const pre = new AbortController();
    pre.abort();
    await expect(waitFor('x', async () => 1, () => true, { timeoutMs: 1000, signal: pre.signal })).rejects.toBeInstanceOf(WaitAbortedError);
  });
});

describe('retryOn409', () => {
  const busy = () => new GatewayError('POST', '/api/v1/workflows/w/runs/r/steps/s/approve', 409, 'workflow run is busy, retry\n', [204]);

  it('retries "workflow run is busy" until it goes through', async () => {
    let n = 0;
    const r = await retryOn409(
      async () => {
        if (++n < 3) throw busy();
        return 'done';
      },
      { intervalMs: 1 },
    );
    expect([r, n]).toEqual(['done', 3]);
  });

  it('rethrows other errors at once and gives up at the deadline', async () => {
    const other = new GatewayError('POST', '/x', 409, 'lock unavailable\n', [200]);
    let n = 0;
    await expect(
      retryOn409(async () => {
        n++;
        throw other;
      }),
    ).rejects.toBe(other);
    expect(n).toBe(1);
    const err = await retryOn409(async () => Promise.reject(busy()), { timeoutMs: 40, intervalMs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(/^timed out after 40 ms waiting for the workflow run lock to be free; last saw: error: POST .* → 409 "workflow run is busy, retry"/);
  });
});
