// Redis locks the scheduler holds (runtime.md §5.5): SET NX PX with a random token, released only
// by the holder.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface HeldLock {
  release(): Promise<void>;
}

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export async function tryLock(redis: Redis, key: string, ttlMs: number): Promise<HeldLock | undefined> {
  const token = `${Math.floor(Date.now() / 1000)}:${randomUUID()}`;
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return undefined;
  return { release: async () => void (await redis.eval(RELEASE, 1, key, token)) };
}

/** Poll for the lock every `pollMs` until `waitMs` has passed (Cordum: 25 ms / 2 s for job locks). */
export async function acquireLock(redis: Redis, key: string, ttlMs: number, waitMs: number, pollMs = 25): Promise<HeldLock | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const l = await tryLock(redis, key, ttlMs);
    if (l || Date.now() >= deadline) return l;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
