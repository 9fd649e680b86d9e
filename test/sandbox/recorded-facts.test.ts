// The facts a recording of a real Cordum showed and the documents had wrong
// (../shared/cordum/recorded/README.md), each checked against the sandbox, plus the Redis key types
// and TTLs and the JetStream streams and consumers the recording says a real install has.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../../helpers/waits.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { describeWithReference, sharedReference } from '../support/shared-reference.js';
import { client } from './sandbox-client.js';

const recorded = sharedReference('cordum/recorded');

describeWithReference(recorded, 'facts recorded from a real Cordum hold in a fresh sandbox', () => {
  let sb: Sandbox;
  let redis: Redis;
  let nc: NatsConnection;

  beforeAll(async () => {
    sb = await startSandbox();
    redis = new Redis(sb.redisUrl);
    nc = await connect({ servers: sb.natsUrl });
  });
  afterAll(async () => {
    await nc?.close();
    await redis?.quit();
    await sb?.stop();
  });

  // The sandbox's gateway as the recording's client called it (JSON body, an admin principal).
  const call = (method: string, path: string, body?: unknown) =>
    client(sb)(method, path, body, { 'content-type': 'application/json', 'x-principal-id': 'facts', 'x-principal-role': 'admin' });
  const submit = async (topic: string, labels?: Record<string, string>) => (await call('POST', '/api/v1/jobs', { prompt: 'recorded facts', topic, ...(labels ? { labels } : {}) })).json as { job_id: string; trace_id: string };
  const stateOf = (id: string) => waitFor(`job ${id}`, async () => (await call('GET', `/api/v1/jobs/${id}`)).json?.state as string, (s) => !!s, { timeoutMs: 5000 });

  it('a second cancel of a CANCELLED job answers 200 {id, state} without reason; a job that ended otherwise says "job already terminal"', async () => {
    const parked = await submit('job.default', { facts_probe: 'parked' });
    await waitFor('parked job pending', () => stateOf(parked.job_id), (s) => s === 'PENDING', { timeoutMs: 5000 });
    expect((await call('POST', `/api/v1/jobs/${parked.job_id}/cancel`)).json).toEqual({ id: parked.job_id, state: 'CANCELLED' });
    const again = await call('POST', `/api/v1/jobs/${parked.job_id}/cancel`);
    expect([again.status, again.json]).toEqual([200, { id: parked.job_id, state: 'CANCELLED' }]);

    const failed = await submit('job.facts.unmapped');
    await waitFor('unmapped job failed', () => stateOf(failed.job_id), (s) => s === 'FAILED', { timeoutMs: 5000 });
    expect((await call('POST', `/api/v1/jobs/${failed.job_id}/cancel`)).json).toEqual({ id: failed.job_id, state: 'FAILED', reason: 'job already terminal' });
  });

  it('a fresh install has an empty bundle map; a rollback to it answers snapshot_after "" and its audit entry has no snapshot_after', async () => {
    expect((await call('GET', '/api/v1/policy/bundles')).json).toEqual({ bundles: {}, items: null, updated_at: '' });
    const before = (await call('POST', '/api/v1/policy/bundles/snapshots', { note: 'facts: before' })).json;
    expect(before.bundles).toEqual({});
    const content = 'rules:\n  - id: facts-deny\n    decision: deny\n    reason: facts\n    match:\n      topics: ["job.facts.denied"]\n';
    expect((await call('PUT', '/api/v1/policy/bundles/secops~facts', { content })).status).toBe(200);
    expect((await call('POST', '/api/v1/policy/publish', { bundle_ids: ['secops/facts'] })).status).toBe(200);
    const rollback = await call('POST', '/api/v1/policy/rollback', { snapshot_id: before.id });
    expect(rollback.status).toBe(200);
    expect(rollback.json.snapshot_after).toBe('');
    const entry = (await call('GET', '/api/v1/policy/audit')).json.items.find((e: { action: string }) => e.action === 'rollback');
    expect(entry).toBeDefined();
    expect(entry).not.toHaveProperty('snapshot_after');
  });

  it('sys:workers:snapshot omits pools and workers when no worker is alive', async () => {
    const snap = await waitFor('sys:workers:snapshot', () => redis.get('sys:workers:snapshot'), (v) => v !== null, { timeoutMs: 10_000 });
    const doc = JSON.parse(snap!);
    expect(doc).toHaveProperty('captured_at');
    expect(doc).not.toHaveProperty('pools');
    expect(doc).not.toHaveProperty('workers');
    expect(await redis.pttl('sys:workers:snapshot')).toBeGreaterThan(0);
  });

  it('a job that stays PENDING is not in job:tenant:active:<tenant>', async () => {
    const { job_id } = await submit('job.default', { facts_probe: 'pending' });
    await waitFor('pending', () => stateOf(job_id), (s) => s === 'PENDING', { timeoutMs: 5000 });
    expect(await redis.sismember('job:tenant:active:default', job_id)).toBe(0);
    await call('POST', `/api/v1/jobs/${job_id}/cancel`);
  });

  it('the clean-path redirect is 307 (a current Go build)', async () => {
    const res = await call('GET', '/api/v1//status');
    expect(res.status).toBe(307);
    expect(res.headers.location).toBe('/api/v1/status');
  });

  it('job:events, job:result_ptr and trace keys have no TTL; the other job keys have one (types as recorded)', async () => {
    const { job_id, trace_id } = await submit('job.facts.unmapped');
    await waitFor('failed', () => stateOf(job_id), (s) => s === 'FAILED', { timeoutMs: 5000 });
    const lines = readFileSync(join(recorded.path, 'redis-keys-after.txt'), 'utf8').split('\n').filter(Boolean);
    // "<count>\t<pattern>\t<type>\t<ttl|no-ttl>" per line, ids normalised to <uuid>.
    const want = new Map(lines.map((l) => l.trim().split(/\s+/)).map(([, pattern, type, ttl]) => [pattern, { type, ttl }]));
    const checked: string[] = [];
    for (const [key, pattern] of [
      [`job:events:${job_id}`, 'job:events:<uuid>'],
      [`job:result_ptr:${job_id}`, 'job:result_ptr:<uuid>'],
      [`trace:${trace_id}`, 'trace:<uuid>'],
      [`job:meta:${job_id}`, 'job:meta:<uuid>'],
      [`job:state:${job_id}`, 'job:state:<uuid>'],
      [`job:req:${job_id}`, 'job:req:<uuid>'],
      [`job:decisions:${job_id}`, 'job:decisions:<uuid>'],
      ['job:recent', 'job:recent'],
      ['job:index:failed', 'job:index:failed'],
      ['cfg:system:default', 'cfg:system:default'],
    ] as const) {
      const w = want.get(pattern);
      expect(w, `recorded keys list ${pattern}`).toBeDefined();
      const [type, pttl] = [await redis.type(key), await redis.pttl(key)];
      expect({ key: pattern, type, ttl: pttl > 0 ? 'ttl' : 'no-ttl' }).toEqual({ key: pattern, type: w!.type, ttl: w!.ttl });
      checked.push(pattern);
    }
    expect(checked).toHaveLength(10);
  });

  it('JetStream streams and durable consumers are configured as recorded', async () => {
    const want = JSON.parse(readFileSync(join(recorded.path, 'jetstream-after.json'), 'utf8')) as {
      stream: string;
      config: Record<string, unknown>;
      consumers: { name: string; filter_subject: string; ack_policy: string; ack_wait: number; max_deliver: number; deliver_policy: string; max_ack_pending: number }[];
    }[];
    const jsm = await jetstreamManager(nc);
    for (const s of want) {
      const info = await jsm.streams.info(s.stream);
      const c = info.config as unknown as Record<string, unknown>;
      for (const k of ['subjects', 'retention', 'storage', 'num_replicas', 'max_age', 'duplicate_window', 'discard', 'max_msgs', 'max_bytes']) {
        expect({ stream: s.stream, [k]: c[k] }).toEqual({ stream: s.stream, [k]: s.config[k] });
      }
      const got = new Map<string, Record<string, unknown>>();
      for await (const ci of jsm.consumers.list(s.stream)) got.set(ci.name, ci.config as unknown as Record<string, unknown>);
      for (const wc of s.consumers) {
        const gc = got.get(wc.name);
        expect(gc, `consumer ${s.stream}/${wc.name}`).toBeDefined();
        const pick = (o: Record<string, unknown>) => ({ name: wc.name, filter_subject: o.filter_subject, ack_policy: o.ack_policy, ack_wait: o.ack_wait, max_deliver: o.max_deliver, deliver_policy: o.deliver_policy, max_ack_pending: o.max_ack_pending });
        expect(pick(gc!)).toEqual(pick(wc as unknown as Record<string, unknown>));
      }
    }
  });
});
