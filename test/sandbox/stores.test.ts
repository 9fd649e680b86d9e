import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type ManagedServer } from '../../helpers/processes.js';
import { createConfigStore } from '../../sandbox/stores/config-docs.js';
import { DLQ_KEEP, createDlqStore } from '../../sandbox/stores/dlq.js';
import { createLockStore } from '../../sandbox/stores/locks.js';

let srv: ManagedServer;
let redis: Redis;
beforeAll(async () => {
  srv = await startRedis({ persistence: false });
  redis = new Redis(srv.url);
});
afterAll(async () => {
  redis?.disconnect();
  await srv?.stop();
});
beforeEach(async () => {
  await redis.flushall();
});

describe('DLQ store (runtime.md §3.3)', () => {
  it('stores STRING JSON entries and a ZSET index scored in seconds, newest first', async () => {
    const dlq = createDlqStore(redis);
    await dlq.put({ job_id: 'a', status: 'JOB_STATUS_FAILED', created_at: '2026-01-01T00:00:01.5Z' });
    await dlq.put({ job_id: 'b', status: 'JOB_STATUS_DENIED', created_at: '2026-01-01T00:00:03Z' });
    expect(await redis.type('dlq:entry:a')).toBe('string');
    expect(await redis.ttl('dlq:entry:a')).toBe(-1);
    expect(await redis.zscore('dlq:index', 'a')).toBe(String(Date.parse('2026-01-01T00:00:01Z') / 1000));
    expect((await dlq.list(10)).map((e) => e.job_id)).toEqual(['b', 'a']);
    expect((await dlq.page(Date.parse('2026-01-01T00:00:02Z') / 1000, 10)).map((e) => e.job_id)).toEqual(['a']);
    await redis.zadd('dlq:index', 5e9, 'ghost'); // index member without an entry is invisible
    expect((await dlq.list(10)).map((e) => e.job_id)).toEqual(['b', 'a']);
    await dlq.delete('a');
    expect(await redis.exists('dlq:entry:a')).toBe(0);
    expect(await redis.zscore('dlq:index', 'a')).toBeNull();
  });

  it('trims the index to the newest 1000 and leaves orphaned entry keys', async () => {
    const dlq = createDlqStore(redis);
    const base = Date.parse('2026-01-01T00:00:00Z');
    const pipe = redis.pipeline();
    for (let i = 0; i < DLQ_KEEP; i++) pipe.zadd('dlq:index', base / 1000 + 10 + i, `x${i}`);
    await pipe.exec();
    await dlq.put({ job_id: 'old', created_at: new Date(base).toISOString() });
    await dlq.put({ job_id: 'new', created_at: new Date(base + 5_000_000).toISOString() });
    expect(await redis.zcard('dlq:index')).toBe(DLQ_KEEP);
    expect(await redis.zscore('dlq:index', 'old')).toBeNull();
    expect(await redis.exists('dlq:entry:old')).toBe(1);
  });
});

describe('lock store (api.md §10.13)', () => {
  it('exclusive, re-entrant, shared, upgrade, release counts, renew', async () => {
    const locks = createLockStore(redis);
    const a = await locks.acquire('r1', 'alice', undefined, 0);
    expect(a).toMatchObject({ resource: 'r1', mode: 'exclusive', owners: { alice: 1 } });
    expect((a as { expires_at: string }).expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const pttl = await redis.pttl('lock:r1');
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    expect(await locks.acquire('r1', 'bob', 'exclusive', 1000)).toBe('unavailable');
    expect(await locks.acquire('r1', 'bob', 'shared', 1000)).toBe('unavailable');
    expect(await locks.acquire('r1', 'alice', 'exclusive', 60_000)).toMatchObject({ owners: { alice: 2 } });
    expect(await locks.release('r1', 'bob')).toMatchObject({ owners: { alice: 2 } }); // non-owner: unchanged
    expect(await locks.release('r1', 'alice')).toMatchObject({ owners: { alice: 1 } });
    expect(await locks.release('r1', 'alice')).toBeNull();
    expect(await locks.get('r1')).toBeNull();
    expect(await locks.release('r1', 'alice')).toBeNull();

    await locks.acquire('r2', 'alice', 'shared', 5000);
    expect(await locks.acquire('r2', 'bob', 'shared', 5000)).toMatchObject({ mode: 'shared', owners: { alice: 1, bob: 1 } });
    expect(await locks.acquire('r2', 'alice', 'exclusive', 5000)).toBe('unavailable');
    await locks.release('r2', 'bob');
    expect(await locks.acquire('r2', 'alice', 'exclusive', 5000)).toMatchObject({ mode: 'exclusive', owners: { alice: 2 } });
    expect(await locks.renew('r2', 'bob', 1000)).toBeNull();
    expect(await locks.renew('r2', 'alice', 90_000)).toMatchObject({ owners: { alice: 2 } });
    expect(await redis.pttl('lock:r2')).toBeGreaterThan(60_000);
  });
});

describe('config service store', () => {
  it('replaces documents with revision 1 and merges scopes shallowly', async () => {
    const cfg = createConfigStore(redis);
    await cfg.put({ scope: 'system', scope_id: 'default', data: { a: { x: 1 }, b: 1 } });
    await cfg.put({ scope: 'org', scope_id: 'default', data: { a: { y: 2 } }, meta: { who: 't' } });
    const doc = JSON.parse((await redis.get('cfg:org:default'))!);
    expect(doc).toMatchObject({ scope: 'org', scope_id: 'default', data: { a: { y: 2 } }, revision: 1, meta: { who: 't' } });
    expect(doc.updated_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    const eff = await cfg.effective({ org: 'default', team: 'none' });
    expect(eff.data).toEqual({ a: { y: 2 }, b: 1 });
    expect(eff.version).toBe('system:1|org:1');
    expect(eff.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await cfg.get('team', 'none')).toBeNull();
  });
});
