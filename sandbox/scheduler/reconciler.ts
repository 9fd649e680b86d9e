// The scheduler's periodic loops (runtime.md §2.2): the reconciler times out stale DISPATCHED /
// RUNNING jobs and jobs past their job:deadline (TIMEOUT only: no result, no DLQ), and the pending
// replayer re-handles PENDING jobs older than the dispatch timeout. Each tick holds its lock.
import type { BusPacket } from '../../helpers/cap/codec.js';
import { TERMINAL_STATES, type DeliveryOutcome, type JobState, type JobStore, type SandboxDeps } from '../types.js';
import { tryLock } from './locks.js';

const SCAN_LIMIT = 1000;

export function createReconciler(deps: SandboxDeps, store: JobStore, handleJobRequest: (p: BusPacket) => Promise<DeliveryOutcome>) {
  const { redis, config } = deps;
  const log = (msg: string) => deps.log('scheduler', msg);
  // Read on every tick: the config overlay may swap config.timeouts (then call reschedule()).
  const lockTtl = () => Math.max(1000, 2 * config.timeouts.scanIntervalS * 1000);

  const timeout = async (jobId: string, why: string) => {
    try {
      const state = await store.getState(jobId);
      if (state === null || (TERMINAL_STATES as readonly string[]).includes(state)) return;
      await store.setState(jobId, 'TIMEOUT');
      log(`job ${jobId}: TIMEOUT (${why})`);
    } catch (err) {
      log(`job ${jobId}: reconciler timeout failed: ${(err as Error).message}`);
    }
  };

  const staleIn = async (state: JobState, maxAgeS: number, nowUs: number) => {
    for (const id of await store.idsInState(state, SCAN_LIMIT)) {
      const updated = Number((await store.getMeta(id)).updated_at ?? 0);
      if (updated && nowUs - updated >= maxAgeS * 1e6) await timeout(id, `${state.toLowerCase()} longer than ${maxAgeS}s`);
    }
  };

  async function reconcileOnce(): Promise<void> {
    const lock = await tryLock(redis, 'cordum:reconciler:default', lockTtl());
    if (!lock) return;
    try {
      const t = config.timeouts;
      const nowUs = Date.now() * 1000;
      await staleIn('DISPATCHED', t.dispatchTimeoutS, nowUs);
      await staleIn('RUNNING', t.runningTimeoutS, nowUs);
      for (const id of await store.dueDeadlines(Math.floor(Date.now() / 1000))) await timeout(id, 'deadline passed');
    } finally {
      await lock.release().catch(() => {});
    }
  }

  async function replayPendingOnce(): Promise<void> {
    const lock = await tryLock(redis, 'cordum:replayer:pending', lockTtl());
    if (!lock) return;
    try {
      const t = config.timeouts;
      const nowUs = Date.now() * 1000;
      for (const id of await store.idsInState('PENDING', SCAN_LIMIT)) {
        const meta = await store.getMeta(id);
        const updated = Number(meta.updated_at ?? 0);
        if (!updated || nowUs - updated < t.dispatchTimeoutS * 1e6) continue;
        const req = await store.getRequest(id).catch(() => null);
        if (!req) {
          log(`job ${id}: load job request failed`);
          continue;
        }
        await handleJobRequest({ trace_id: meta.trace_id, job_request: req });
      }
    } finally {
      await lock.release().catch(() => {});
    }
  }

  const tick = (fn: () => Promise<void>, name: string) => () =>
    void fn().catch((err) => log(`${name} failed: ${(err as Error).message}`));
  let timers: NodeJS.Timeout[] = [];
  let stopped = false;
  const arm = () => {
    timers.forEach(clearInterval);
    if (stopped) return;
    const everyMs = config.timeouts.scanIntervalS * 1000;
    timers = [setInterval(tick(reconcileOnce, 'reconciler'), everyMs), setInterval(tick(replayPendingOnce, 'pending replayer'), everyMs)];
    timers.forEach((x) => x.unref());
  };
  arm();
  return {
    reconcileOnce,
    replayPendingOnce,
    /** Re-arm the timers with the current config.timeouts.scanIntervalS. */
    reschedule: arm,
    stop: () => {
      stopped = true;
      timers.forEach(clearInterval);
    },
  };
}
