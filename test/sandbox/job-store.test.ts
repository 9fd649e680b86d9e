import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../sandbox/config.js';
import { startRedis, type ManagedServer } from '../../helpers/processes.js';
import { TRANSITIONS, createJobStore, jobRequestFromProtoJson, jobRequestToProtoJson, type RedisJobStore } from '../../sandbox/stores/jobs.js';
import { JOB_STATES, TERMINAL_STATES, type JobState } from '../../sandbox/types.js';

let srv: ManagedServer;
let redis: Redis;
let store: RedisJobStore;
let n = 0;
const newId = () => `job-${Date.now()}-${n++}`;

beforeAll(async () => {
  srv = await startRedis({ persistence: false });
  redis = new Redis(srv.url);
  store = createJobStore(redis, buildConfig({}));
});
afterAll(async () => {
  redis?.disconnect();
  await srv?.stop();
});
beforeEach(async () => {
  await redis.flushall();
});

/** Put a job into `state` through legal steps. */
async function reach(id: string, state: JobState): Promise<void> {
  const path: Record<JobState, JobState[]> = {
    PENDING: ['PENDING'],
    APPROVAL_REQUIRED: ['APPROVAL_REQUIRED'],
    SCHEDULED: ['SCHEDULED'],
    DISPATCHED: ['DISPATCHED'],
    RUNNING: ['RUNNING'],
    SUCCEEDED: ['RUNNING', 'SUCCEEDED'],
    FAILED: ['FAILED'],
    CANCELLED: ['RUNNING', 'CANCELLED'],
    TIMEOUT: ['PENDING', 'TIMEOUT'],
    DENIED: ['PENDING', 'DENIED'],
  };
  for (const s of path[state]) await store.setState(id, s);
}

describe('job store transitions (runtime.md §1.2)', () => {
  it('enforces the full table; same-state is always accepted', async () => {
    const froms: (JobState | '')[] = ['', ...JOB_STATES];
    for (const from of froms) {
      for (const to of JOB_STATES) {
        const id = newId();
        if (from) await reach(id, from);
        const allowed = from === to || (TRANSITIONS[from] ?? []).includes(to);
        const attempt = store.setState(id, to);
        if (allowed) await expect(attempt, `${from || '(none)'} -> ${to}`).resolves.toBeUndefined();
        else await expect(attempt, `${from || '(none)'} -> ${to}`).rejects.toThrow(`invalid transition ${from} -> ${to}`);
      }
    }
    // Terminal states allow nothing else.
    for (const t of TERMINAL_STATES) expect(TRANSITIONS[t]).toBeUndefined();
  });

  it('a corrupted state blocks every transition', async () => {
    const id = newId();
    await store.setState(id, 'RUNNING');
    await redis.hset(`job:meta:${id}`, 'state', 'BOGUS');
    await expect(store.setState(id, 'SUCCEEDED')).rejects.toThrow('invalid transition BOGUS -> SUCCEEDED');
  });

  it('writes every side effect with Cordum key names and types', async () => {
    const id = newId();
    await store.setJobMeta({ job_id: id, topic: 'job.default', tenant_id: 'default', labels: { a: 'b' }, meta: { actor_type: 1, risk_tags: ['x'] } }, { traceId: 'tr-1' });
    await store.setDeadline(id, 1234);
    await store.setState(id, 'PENDING');
    await store.setState(id, 'SCHEDULED');
    await store.setState(id, 'DISPATCHED');
    await store.setState(id, 'RUNNING');
    const meta = await store.getMeta(id);
    expect(meta).toMatchObject({ state: 'RUNNING', attempts: '1', topic: 'job.default', tenant: 'default', trace_id: 'tr-1', labels: '{"a":"b"}', actor_type: 'human', risk_tags: '["x"]', deadline_unix: '1234' });
    expect(Number(meta.updated_at)).toBeGreaterThan(Date.now() * 1000 - 60e6); // µs
    expect(await redis.type(`job:meta:${id}`)).toBe('hash');
    expect(await redis.get(`job:state:${id}`)).toBe('RUNNING');
    expect(await redis.ttl(`job:meta:${id}`)).toBeGreaterThan(7 * 24 * 3600 - 10);
    expect(await redis.zscore('job:index:running', id)).toBe(meta.updated_at);
    expect(await redis.zscore('job:index:pending', id)).toBeNull();
    expect(await redis.zscore('job:recent', id)).toBe(meta.updated_at);
    const events = await redis.lrange(`job:events:${id}`, 0, -1);
    expect(events.map((e) => e.split('|')[1])).toEqual(['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING']);
    expect(events[0]).toMatch(/^\d{16}\|PENDING$/);
    expect(await redis.sismember('job:tenant:active:default', id)).toBe(1);
    expect(await redis.zscore('job:deadline', id)).toBe('1234');

    await store.setState(id, 'SUCCEEDED');
    expect(await redis.zscore('job:deadline', id)).toBeNull();
    expect(await redis.sismember('job:tenant:active:default', id)).toBe(0);
    expect(await redis.zscore('job:index:succeeded', id)).not.toBeNull();
    expect(await store.idsInState('SUCCEEDED', 10)).toEqual([id]);
  });

  it('cancel bypasses the table, keeps the tenant-active quirk, and reports terminal jobs', async () => {
    const id = newId();
    await store.setState(id, 'PENDING');
    // The first state is written before the tenant is known: a job that stays PENDING is not in the set (recorded).
    expect(await redis.sismember('job:tenant:active:default', id)).toBe(0);
    await store.setState(id, 'SCHEDULED');
    expect(await redis.sismember('job:tenant:active:default', id)).toBe(1);
    expect(await store.cancel(id)).toEqual({ state: 'CANCELLED', alreadyTerminal: false });
    expect(await store.getState(id)).toBe('CANCELLED');
    expect(await redis.sismember('job:tenant:active:default', id)).toBe(1); // CancelJob does not SREM
    expect(await store.cancel(id)).toEqual({ state: 'CANCELLED', alreadyTerminal: true });
    expect(await store.cancel('unknown')).toBeNull();
  });

  it('getState falls back to the legacy key; setState does not', async () => {
    const id = newId();
    await store.setState(id, 'RUNNING');
    await redis.del(`job:meta:${id}`);
    expect(await store.getState(id)).toBe('RUNNING');
    await expect(store.setState(id, 'SUCCEEDED')).rejects.toThrow('invalid transition  -> SUCCEEDED');
    await expect(store.setState(id, 'FAILED')).resolves.toBeUndefined();
  });

  it('setJobMeta resets attempts; decisions, result pointer, trace, deadlines', async () => {
    const id = newId();
    await store.setState(id, 'SCHEDULED');
    expect((await store.getMeta(id)).attempts).toBe('1');
    expect(await store.incrAttempts(id)).toBe(2);
    await store.setJobMeta({ job_id: id, topic: 't' });
    expect((await store.getMeta(id)).attempts).toBe('0');

    await store.addDecision(id, { decision: 'ALLOW', checked_at: 1 });
    await store.addDecision(id, { decision: 'DENY', checked_at: 2 });
    expect((await store.listDecisions(id, 10)).map((d) => d.decision)).toEqual(['DENY', 'ALLOW']);
    expect(await redis.type(`job:decisions:${id}`)).toBe('list');

    await store.setResultPtr(id, `redis://res:${id}`);
    expect(await redis.get(`job:result_ptr:${id}`)).toBe(`redis://res:${id}`);
    expect((await store.getMeta(id)).result_ptr).toBe(`redis://res:${id}`);

    await store.addToTrace('t-1', id);
    expect(await redis.smembers('trace:t-1')).toEqual([id]);

    await store.setDeadline(id, 100);
    expect(await store.dueDeadlines(99)).toEqual([]);
    expect(await store.dueDeadlines(100)).toEqual([id]);
  });

  it('job:req is protojson (camelCase, unpopulated emitted) and round-trips', async () => {
    const id = newId();
    const req = {
      job_id: id,
      topic: 'job.default',
      priority: 2,
      env: { tenant_id: 'default' },
      budget: { max_input_tokens: 8000, deadline_ms: 5000 },
      labels: { k: 'v' },
      meta: { actor_type: 2, capability: 'cap', risk_tags: ['r'] },
    };
    await store.putRequest(req);
    const raw = JSON.parse((await redis.get(`job:req:${id}`))!);
    expect(raw).toMatchObject({ jobId: id, priority: 'JOB_PRIORITY_BATCH', adapterId: '', stepIndex: 0, contextHints: null, budget: { maxInputTokens: '8000', deadlineMs: '5000', maxOutputTokens: '0' }, meta: { actorType: 'ACTOR_TYPE_SERVICE', riskTags: ['r'] } });
    expect(await store.getRequest(id)).toEqual({ ...req, budget: { max_input_tokens: 8000, deadline_ms: 5000 } });
    expect(jobRequestFromProtoJson(jobRequestToProtoJson({ job_id: 'x' }))).toEqual({ job_id: 'x' });
    await redis.set(`job:req:${id}`, '{garbage');
    expect(await store.getRequest(id)).toBeNull();
  });

  it('idempotency reservation is SETNX per tenant', async () => {
    expect(await store.reserveIdempotency('default', 'k', 'j1')).toBeNull();
    expect(await store.reserveIdempotency('default', 'k', 'j2')).toBe('j1');
    expect(await redis.get('job:idempotency:default:k')).toBe('j1');
  });
});
