import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, type BusPacket } from '../../helpers/cap/codec.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { buildConfig } from '../../sandbox/config.js';
import { createJobStore } from '../../sandbox/stores/jobs.js';
import { client, until, type Reply } from './sandbox-client.js';

let sb: Sandbox;
let api: ReturnType<typeof client>;
let redis: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  sb = await startSandbox({ env: { API_RATE_LIMIT_BURST: '100000' } });
  api = client(sb);
  redis = new Redis(sb.redisUrl);
  nc = await connect({ servers: sb.natsUrl });
});
afterAll(async () => {
  redis?.disconnect();
  await nc?.close();
  await sb?.stop();
});

/** Collect packets seen on a core subject. */
function tap(subject: string) {
  const seen: BusPacket[] = [];
  const sub = nc.subscribe(subject, { callback: (_e, m) => void seen.push(decodePacket(m.data)) });
  return { seen, stop: () => sub.unsubscribe(), ready: () => nc.flush() };
}

/**
 * A job that exists only in Redis (never published), so the running scheduler cannot touch it:
 * keeps these gateway tests independent of scheduler behaviour.
 */
async function seedJob(topic: string, state: 'PENDING' | 'FAILED' = 'PENDING', prompt = 'seeded'): Promise<string> {
  const id = `seed-${Math.random().toString(16).slice(2, 10)}`;
  const store = createJobStore(redis, buildConfig({}));
  await store.setJobMeta({ job_id: id, topic, tenant_id: 'default' }, { traceId: `trace-${id}` });
  await store.addToTrace(`trace-${id}`, id);
  await redis.set(`ctx:${id}`, JSON.stringify({ prompt, topic }));
  await store.setState(id, state);
  return id;
}

const submit = async (body: Record<string, unknown>): Promise<Reply> => api('POST', '/api/v1/jobs', body);

describe('status', () => {
  it('/health, /api/v1/status and /api/v1/workers', async () => {
    const h = await api('GET', '/health');
    expect([h.status, h.text]).toEqual([200, 'ok']);
    const s = await api('GET', '/api/v1/status');
    expect(s.status).toBe(200);
    expect(s.json).toMatchObject({ build: { version: 'dev' }, nats: { connected: true, status: 'CONNECTED' }, redis: { ok: true, error: '' }, workers: { count: 0 } });
    expect(s.json.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    nc.publish('sys.heartbeat', encodePacket({ heartbeat: { worker_id: 'w-1', pool: 'default', max_parallel_jobs: 4, active_jobs: 0 } }));
    const workers = await until('worker listed', async () => {
      const w = await api('GET', '/api/v1/workers');
      return w.json.length ? w.json : undefined;
    });
    expect(workers).toEqual([{ worker_id: 'w-1', pool: 'default', max_parallel_jobs: 4 }]);
  });
});

describe('jobs', () => {
  it('submit validates like Cordum', async () => {
    expect([(await submit({})).status, (await submit({})).text]).toEqual([400, 'prompt is required\n']);
    expect((await submit({ prompt: 'x', topic: 'sys.x' })).text).toBe('topic must start with job.\n');
    expect((await submit({ prompt: 'x'.repeat(100_001) })).text).toBe('prompt too long (>100000 chars)\n');
    expect((await submit({ prompt: 'x', org_id: 'other' })).status).toBe(403);
    expect((await submit({ prompt: 'x', tenant_id: 'other' })).text).toBe('tenant access denied\n');
    expect((await submit({ prompt: 'x', actor_type: 'robot' })).text).toBe("actor_type must be 'human' or 'service'\n");
    expect((await submit({ prompt: 'x', labels: { a: 1 } })).text).toBe('invalid json\n');
    expect((await api('POST', '/api/v1/jobs', '{oops')).text).toBe('invalid json\n');
    expect((await submit({ prompt: 'x', max_output_tokens: -1 })).status).toBe(400);
    expect((await submit({ prompt: 'x', tags: Array.from({ length: 51 }, (_, i) => `t${i}`) })).status).toBe(400);
  });

  it('submit persists ctx, PENDING, meta, req, trace and publishes the request durably', async () => {
    const t = tap('sys.job.submit');
    await t.ready();
    const r = await submit({ prompt: 'hello', topic: 'job.default', context: { a: 1 }, labels: { l: 'v' }, priority: 'batch', actor_type: 'Service', capability: 'c' }, );
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const { job_id: id, trace_id: trace } = r.json;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const ctx = JSON.parse((await redis.get(`ctx:${id}`))!);
    expect(ctx).toMatchObject({ prompt: 'hello', priority: 'batch', topic: 'job.default', tenant_id: 'default', context: { a: 1 } });
    expect(await redis.ttl(`ctx:${id}`)).toBeGreaterThan(86_000);
    expect(await redis.lindex(`job:events:${id}`, 0)).toMatch(/\|PENDING$/);
    expect(await redis.hgetall(`job:meta:${id}`)).toMatchObject({ topic: 'job.default', tenant: 'default', trace_id: trace, actor_type: 'service', capability: 'c' });
    expect(JSON.parse((await redis.get(`job:req:${id}`))!)).toMatchObject({ jobId: id, priority: 'JOB_PRIORITY_BATCH', contextPtr: `redis://ctx:${id}`, memoryId: `mem:${id}` });
    expect(await redis.smembers(`trace:${trace}`)).toEqual([id]);
    const pkt = await until('submit packet', async () => t.seen.find((p) => p.job_request?.job_id === id));
    expect(pkt.trace_id).toBe(trace);
    expect(pkt.sender_id).toBe('api-gateway');
    expect(pkt.job_request).toMatchObject({ topic: 'job.default', priority: 2, labels: { l: 'v' }, budget: { max_input_tokens: 8000, max_output_tokens: 1024 }, meta: { actor_type: 2, capability: 'c' } });
    t.stop();
  });

  it('secret references add the risk tag and label', async () => {
    const r = await submit({ prompt: 'use ${secrets.TOKEN} please' });
    const meta = await redis.hgetall(`job:meta:${r.json.job_id}`);
    expect(JSON.parse(meta.risk_tags)).toContain('secrets');
    expect(JSON.parse(meta.labels)).toMatchObject({ secrets_present: 'true' });
  });

  it('idempotency per tenant returns the original ids', async () => {
    const a = await submit({ prompt: 'x', idempotency_key: 'idem-1' });
    const b = await submit({ prompt: 'y', idempotency_key: 'idem-1' });
    expect(b.status).toBe(200);
    expect(b.json).toEqual(a.json);
    await redis.set('job:idempotency:default:idem-ghost', 'no-such-job');
    expect((await submit({ prompt: 'x', idempotency_key: 'idem-ghost' })).status).toBe(409);
  });

  it('detail: all documented keys, no JSON content type, DLQ merge, 404', async () => {
    const { job_id: id } = (await submit({ prompt: 'd', labels: { run_id: 'r1' } })).json;
    const d = await api('GET', `/api/v1/jobs/${id}`);
    expect(d.status).toBe(200);
    expect(d.headers['content-type']).toBe('text/plain; charset=utf-8');
    for (const k of ['id', 'state', 'trace_id', 'topic', 'tenant', 'actor_id', 'actor_type', 'idempotency_key', 'capability', 'pack_id', 'risk_tags', 'requires', 'attempts', 'context_ptr', 'context', 'result_ptr', 'result', 'safety_decision', 'safety_reason', 'safety_rule_id', 'safety_snapshot', 'safety_constraints', 'safety_remediations', 'safety_job_hash', 'approval_required', 'approval_ref', 'labels', 'workflow_id', 'run_id', 'step_id']) {
      expect(d.json, k).toHaveProperty(k);
    }
    expect(d.json).toMatchObject({ id, context_ptr: `redis://ctx:${id}`, run_id: 'r1', approval_required: false });
    expect(d.json.error_code).toBeUndefined();
    await redis.set(`dlq:entry:${id}`, JSON.stringify({ job_id: id, status: 'JOB_STATUS_DENIED', reason: 'nope', reason_code: 'safety_denied', last_state: 'DENIED', attempts: 3, created_at: new Date().toISOString() }));
    expect((await api('GET', `/api/v1/jobs/${id}`)).json).toMatchObject({ error_message: 'nope', error_status: 'JOB_STATUS_DENIED', error_code: 'safety_denied', last_state: 'DENIED', attempts: 3 });
    await redis.del(`dlq:entry:${id}`);
    const nf = await api('GET', '/api/v1/jobs/unknown-job');
    expect([nf.status, nf.text]).toEqual([404, 'job not found\n']);
  });

  it('list: µs cursor normalisation, filters, next_cursor; traces; decisions', async () => {
    // Seeded with fixed 2001-era µs scores so background activity (always "now") cannot interleave.
    const ids: string[] = [];
    const base = 1e15;
    for (let i = 0; i < 3; i++) {
      const id = await seedJob('job.listing');
      await redis.zadd('job:recent', base + (i + 1) * 1000, id);
      await redis.hset(`job:meta:${id}`, 'updated_at', String(base + (i + 1) * 1000));
      ids.push(id);
    }
    const newest = base + 3000;
    const page = await api('GET', `/api/v1/jobs?limit=2&cursor=${newest}`);
    expect(page.json.items.map((i: { id: string }) => i.id)).toEqual([ids[2], ids[1]]);
    expect(page.json.items[0].updated_at).toBe(newest);
    expect(page.json.next_cursor).toBe(base + 2000 - 1);
    const next = await api('GET', `/api/v1/jobs?limit=2&cursor=${page.json.next_cursor}`);
    expect(next.json.items[0].id).toBe(ids[0]);
    // The same instant in milliseconds and in seconds is normalised to µs.
    expect((await api('GET', `/api/v1/jobs?limit=1&cursor=${(base + 3000) / 1000}`)).json.items[0].id).toBe(ids[2]);
    expect((await api('GET', `/api/v1/jobs?limit=1&cursor=${base / 1e6 + 1}`)).json.items[0].id).toBe(ids[2]);
    const filtered = await api('GET', `/api/v1/jobs?limit=3&cursor=${newest}&topic=job.listing&state=pending`);
    expect(filtered.json.items.map((i: { id: string }) => i.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect((await api('GET', `/api/v1/jobs?limit=3&cursor=${newest}&state=RUNNING`)).json).toEqual({ items: [], next_cursor: null });
    expect((await api('GET', '/api/v1/jobs?tenant=other')).status).toBe(403);
    const trace = (await api('GET', `/api/v1/jobs/${ids[0]}`)).json.trace_id;
    const tr = await api('GET', `/api/v1/traces/${trace}`);
    expect(tr.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(tr.json).toMatchObject([{ id: ids[0], updated_at: 0, topic: 'job.listing' }]);
    expect((await api('GET', '/api/v1/traces/nope')).json).toEqual([]);
    expect((await api('GET', '/api/v1/jobs/nope/decisions')).json).toEqual([]);
    await redis.rpush(`job:decisions:${ids[0]}`, JSON.stringify({ decision: 'ALLOW', reason: '', checked_at: 5 }), JSON.stringify({ decision: 'DENY', checked_at: 6 }));
    expect((await api('GET', `/api/v1/jobs/${ids[0]}/decisions?limit=1`)).json).toEqual([{ decision: 'DENY', checked_at: 6 }]);
  });

  it('cancel: PENDING -> CANCELLED with synthetic result and JobCancel; terminal answer; 404', async () => {
    const results = tap('sys.job.result');
    const cancels = tap('sys.job.cancel');
    await results.ready();
    const { job_id: id } = (await submit({ prompt: 'c' })).json;
    const r = await api('POST', `/api/v1/jobs/${id}/cancel`);
    expect([r.status, r.json]).toEqual([200, { id, state: 'CANCELLED' }]);
    const res = await until('synthetic result', async () => results.seen.find((p) => p.job_result?.job_id === id));
    expect(res.job_result?.status).toBe(7);
    await until('job cancel', async () => cancels.seen.find((p) => p.job_cancel?.job_id === id));
    const again = await api('POST', `/api/v1/jobs/${id}/cancel`);
    // A job already CANCELLED answers without reason (recorded on a real Cordum).
    expect(again.json).toEqual({ id, state: 'CANCELLED' });
    expect((await api('POST', '/api/v1/jobs/nope/cancel')).status).toBe(404);
    results.stop();
    cancels.stop();
  });
});

describe('DLQ tap and routes', () => {
  const publishDlq = (jobId: string, code: string, msg: string) =>
    nc.publish('sys.job.dlq', encodePacket({ trace_id: jobId, sender_id: 'cordum-scheduler', job_result: { job_id: jobId, status: 6, error_code: ` ${code} `, error_message: msg } }));

  it('the tap writes the entry, overwrites res:<id> and sets result_ptr', async () => {
    const id = await seedJob('job.dlq.test', 'FAILED');
    await redis.set(`res:${id}`, '{"worker":"output"}');
    publishDlq(id, 'chaos', 'boom');
    const entry = await until('dlq entry', async () => ((await api('GET', '/api/v1/dlq')).json as any[]).find((e) => e.job_id === id));
    expect(entry).toMatchObject({ job_id: id, topic: 'job.dlq.test', status: 'JOB_STATUS_FAILED', reason: 'boom', reason_code: 'chaos', last_state: 'FAILED' });
    expect(entry.attempts).toBeUndefined();
    expect(entry.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Number(await redis.zscore('dlq:index', id))).toBe(Math.floor(Date.parse(entry.created_at) / 1000));
    const res = JSON.parse((await redis.get(`res:${id}`))!);
    expect(res).toMatchObject({ job_id: id, status: 'JOB_STATUS_FAILED', error: { message: 'boom' }, processed_by: 'cordum-scheduler' });
    expect(await redis.hget(`job:meta:${id}`, 'result_ptr')).toBe(`redis://res:${id}`);
    const detail = (await api('GET', `/api/v1/jobs/${id}`)).json;
    expect(detail).toMatchObject({ result_ptr: `redis://res:${id}`, result: { processed_by: 'cordum-scheduler' }, error_code: 'chaos' });
  });

  it('page uses a seconds cursor; delete is 204 even when unknown', async () => {
    for (const id of ['p-1', 'p-2']) publishDlq(id, 'x', 'y');
    await until('entries', async () => {
      const items = (await api('GET', '/api/v1/dlq?limit=100')).json as any[];
      return items.filter((e) => e.job_id.startsWith('p-')).length === 2 ? true : undefined;
    });
    const page = await api('GET', '/api/v1/dlq/page?limit=1');
    expect(page.json.items).toHaveLength(1);
    expect(page.json.next_cursor).toBe(Math.floor(Date.parse(page.json.items[0].created_at) / 1000) - 1);
    const future = await api('GET', `/api/v1/dlq/page?limit=100&cursor=${Math.floor(Date.now() / 1000) + 10}`);
    expect(future.json.next_cursor).toBeNull();
    const past = await api('GET', '/api/v1/dlq/page?limit=100&cursor=1000');
    expect(past.json.items).toEqual([]);
    expect((await api('DELETE', '/api/v1/dlq/p-1')).status).toBe(204);
    expect((await api('DELETE', '/api/v1/dlq/never-existed')).status).toBe(204);
    expect(await redis.exists('dlq:entry:p-1')).toBe(0);
  });

  it('retry: new id, trace, minimal request, ctx copy, old entry deleted; 404 and missing topic', async () => {
    const submits = tap('sys.job.submit');
    await submits.ready();
    const id = await seedJob('job.retry.me', 'FAILED', 'again');
    await redis.hset(`job:meta:${id}`, { labels: '{"keep":"no"}', capability: 'cap' });
    publishDlq(id, 'chaos', 'boom');
    await until('entry', async () => ((await redis.exists(`dlq:entry:${id}`)) ? true : undefined));
    const r = await api('POST', `/api/v1/dlq/${id}/retry`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.json)).toEqual(['job_id']);
    const newId: string = r.json.job_id;
    expect(newId).toMatch(new RegExp(`^${id}-retry-[0-9a-f]{8}$`));
    expect(await redis.exists(`dlq:entry:${id}`)).toBe(0);
    expect(await redis.zscore('dlq:index', id)).toBeNull();
    expect(await redis.smembers(`trace:dlq-retry-${id}`)).toEqual([newId]);
    expect(JSON.parse((await redis.get(`ctx:${newId}`))!).prompt).toBe('again');
    const pkt = await until('retry submit', async () => submits.seen.find((p) => p.job_request?.job_id === newId));
    expect(pkt.trace_id).toBe(`dlq-retry-${id}`);
    expect(pkt.job_request).toMatchObject({ topic: 'job.retry.me', context_ptr: `redis://ctx:${newId}`, tenant_id: 'default', labels: { retry: 'true', dlq_entry: id, retry_of_job: id } });
    expect(pkt.job_request?.env).toMatchObject({ tenant_id: 'default', retry_of_job: id });
    expect(pkt.job_request?.labels?.keep).toBeUndefined();
    expect(pkt.job_request?.meta).toBeUndefined();
    expect(pkt.job_request?.priority).toBeUndefined();
    expect(pkt.job_request?.budget).toBeUndefined();
    expect((await api('POST', '/api/v1/dlq/nope/retry')).status).toBe(404);
    publishDlq('phantom', 'x', 'y');
    await until('phantom entry', async () => ((await redis.exists('dlq:entry:phantom')) ? true : undefined));
    const missing = await api('POST', '/api/v1/dlq/phantom/retry');
    expect([missing.status, missing.text]).toEqual([400, 'missing topic for retry\n']);
    submits.stop();
  });
});

describe('locks, artifacts, memory, config', () => {
  it('lock recipe: acquire, conflict, renew, release, gone', async () => {
    const a = await api('POST', '/api/v1/locks/acquire', { resource: 'rb', owner: 'o1', ttl_ms: 10_000 });
    expect(a.json).toMatchObject({ resource: 'rb', mode: 'exclusive', owners: { o1: 1 } });
    expect((await api('POST', '/api/v1/locks/acquire', { resource: 'rb', owner: 'o2' })).text).toBe('lock unavailable\n');
    expect((await api('POST', '/api/v1/locks/renew', { resource: 'rb', owner: 'o1', ttl_ms: 20_000 })).status).toBe(200);
    expect((await api('POST', '/api/v1/locks/renew', { resource: 'rb', owner: 'o2' })).status).toBe(404);
    expect((await api('POST', '/api/v1/locks/release', { resource: 'rb', owner: 'o2' })).json).toMatchObject({ released: true, lock: { owners: { o1: 1 } } });
    expect((await api('POST', '/api/v1/locks/release', { resource: 'rb', owner: 'o1' })).json).toEqual({ lock: null, released: true });
    expect((await api('GET', '/api/v1/locks?resource=rb')).status).toBe(404);
    expect((await api('GET', '/api/v1/locks')).text).toBe('resource required\n');
    expect((await api('POST', '/api/v1/locks/acquire', { resource: 'x' })).text).toBe('resource and owner required\n');
    expect((await api('POST', '/api/v1/locks/acquire', '')).status).toBe(400);
  });

  it('artifacts round-trip with an encoded pointer', async () => {
    const put = await api('POST', '/api/v1/artifacts', { content: 'hello', content_type: 'text/plain', retention: 'short' });
    expect(put.json.artifact_ptr).toMatch(/^redis:\/\/art:[0-9a-f-]{36}$/);
    expect(put.json.size_bytes).toBe(5);
    const uuid = put.json.artifact_ptr.slice('redis://art:'.length);
    expect(await redis.ttl(`art:${uuid}`)).toBeLessThanOrEqual(86_400);
    const got = await api('GET', `/api/v1/artifacts/${encodeURIComponent(put.json.artifact_ptr)}`);
    expect(got.json).toMatchObject({ artifact_ptr: put.json.artifact_ptr, content_base64: Buffer.from('hello').toString('base64'), metadata: { content_type: 'text/plain', size_bytes: 5, retention: 'short', labels: { tenant_id: 'default' } } });
    expect((await api('POST', '/api/v1/artifacts', { content: '' })).text).toBe('content required\n');
    expect((await api('POST', '/api/v1/artifacts?max_bytes=2', { content: 'abc' })).status).toBe(413);
    expect((await api('GET', `/api/v1/artifacts/${encodeURIComponent('redis://art:nope')}`)).status).toBe(404);
    expect((await api('GET', '/api/v1/artifacts/not-a-pointer')).status).toBe(500);
    expect((await api('GET', `/api/v1/artifacts/${put.json.artifact_ptr}`)).status).toBe(307); // raw // gets cleaned
  });

  it('memory reads ctx:/res:/mem: keys', async () => {
    const { job_id: id } = (await submit({ prompt: 'mem' })).json;
    const ctx = await api('GET', `/api/v1/memory?ptr=${encodeURIComponent(`redis://ctx:${id}`)}`);
    expect(ctx.json).toMatchObject({ pointer: `redis://ctx:${id}`, key: `ctx:${id}`, kind: 'context', json: { prompt: 'mem' } });
    await redis.rpush('mem:m1:events', 'a', 'b');
    expect((await api('GET', '/api/v1/memory?key=mem:m1:events')).json.json).toEqual({ redis_type: 'list', length: 2, items: ['a', 'b'] });
    expect((await api('GET', '/api/v1/memory')).text).toBe('missing ptr or key\n');
    expect((await api('GET', '/api/v1/memory?key=job:meta:x')).status).toBe(400);
    expect((await api('GET', '/api/v1/memory?key=res:none')).status).toBe(404);
  });

  it('config: get/post/effective with tenant rules', async () => {
    expect((await api('GET', '/api/v1/config?scope=org&scope_id=default')).status).toBe(404);
    expect((await api('POST', '/api/v1/config', { scope: 'org', scope_id: 'default', data: { safety: { denied_topics: ['job.x'] } } })).status).toBe(204);
    const doc = await api('GET', '/api/v1/config?scope=org&scope_id=default');
    expect(doc.json).toMatchObject({ scope: 'org', scope_id: 'default', revision: 1, data: { safety: { denied_topics: ['job.x'] } } });
    expect((await api('POST', '/api/v1/config', { scope: 'org', scope_id: 'acme', data: {} })).status).toBe(403);
    expect((await api('GET', '/api/v1/config?scope=org&scope_id=acme')).status).toBe(403);
    expect((await api('POST', '/api/v1/config', { scope_id: 'x' })).text).toBe('scope required\n');
    expect((await api('POST', '/api/v1/config', { scope: 'team' })).text).toBe('scope_id required for non-system scope\n');
    await api('POST', '/api/v1/config', { scope: 'team', scope_id: 't1', data: { safety: { x: 1 } } });
    const eff = await api('GET', '/api/v1/config/effective?team_id=t1');
    expect(eff.json.data.safety).toEqual({ x: 1 });
    expect(eff.json.version).toContain('team:1');
    expect((await api('GET', '/api/v1/config/effective?org_id=acme')).status).toBe(403);
    await api('POST', '/api/v1/config', { scope: 'org', scope_id: 'default', data: {} });
  });
});
