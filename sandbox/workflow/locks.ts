// Redis locks shared with Cordum's other engine instance: the per-run lock
// (cordum:wf:run:lock:<run_id>, 30 s) that serialises every run mutation, and the reconciler
// lock. A lock is a SET NX PX holding a random token; release only deletes our own token.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export const RUN_LOCK_TTL_MS = 30_000;
export const runLockKey = (runId: string) => `cordum:wf:run:lock:${runId}`;
export const RECONCILER_LOCK_KEY = 'cordum:workflow-engine:reconciler:default';

const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
const EXTEND_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

export interface HeldLock {
  release(): Promise<void>;
}

/** One attempt; null when someone else holds the key. */
export async function tryLock(redis: Redis, key: string, ttlMs: number): Promise<HeldLock | null> {
  const token = randomUUID();
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return null;
  return {
    release: async () => {
      await redis.eval(RELEASE_LUA, 1, key, token);
    },
  };
}

/**
 * A lock an instance keeps across ticks (the reconciler's): acquire when free, or extend when it
 * is already ours. Anyone else's value (another replica, or a drill's `SET ... x`) means "skip".
 */
export class LeaseLock {
  private readonly token = randomUUID();
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async acquire(ttlMs: number): Promise<boolean> {
    if ((await this.redis.set(this.key, this.token, 'PX', ttlMs, 'NX')) === 'OK') return true;
    return (await this.redis.eval(EXTEND_LUA, 1, this.key, this.token, String(ttlMs))) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE_LUA, 1, this.key, this.token);
  }
}
