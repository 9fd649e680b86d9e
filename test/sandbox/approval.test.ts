// Job-level approvals end to end through startSandbox: policy bundle -> APPROVAL_REQUIRED ->
// approvals list -> approve (dispatch to a fake worker) / reject (DLQ) / 409 checks, and the
// approval-identity-dropped fault.
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { decodePacket, encodePacket } from '../../helpers/cap/codec.js';
import { pollUntil as until, client } from './sandbox-client.js';

const APPROVE_BUNDLE = 'rules:\n  - id: prod-needs-human\n    match: { topics: ["job.default"], risk_tags: ["prod"] }\n    decision: require_approval\n    reason: prod change\n';

interface Env {
  sb: Sandbox;
  redis: Redis;
  nc: NatsConnection;
  stop(): Promise<void>;
}

async function start(faults: string[] = []): Promise<Env> {
  const sb = await startSandbox({ faults: faults as never, policyReloadMs: 50, env: { API_RATE_LIMIT_RPS: '10000', API_RATE_LIMIT_BURST: '10000' } });
  const redis = new Redis(sb.redisUrl);
  const nc = await connect({ servers: sb.natsUrl });
  // Fake worker: heartbeats and answers every job with SUCCEEDED.
  nc.subscribe('worker.w-appr.jobs', {
    callback: (_e, m) => {
      const req = decodePacket(m.data).job_request!;
      nc.publish('sys.job.result', encodePacket({ trace_id: req.job_id, sender_id: 'w-appr', job_result: { job_id: req.job_id, status: 5, worker_id: 'w-appr' } }));
    },
  });
  const beat = () => nc.publish('sys.heartbeat', encodePacket({ heartbeat: { worker_id: 'w-appr', pool: 'default', max_parallel_jobs: 4 } }));
  beat();
  const timer = setInterval(beat, 200);
  const env: Env = {
    sb,
    redis,
    nc,
    async stop() {
      clearInterval(timer);
      await nc.close();
      redis.disconnect();
      await sb.stop();
    },
  };
  const put = await call(env, 'PUT', '/api/v1/policy/bundles/secops~approve', { content: APPROVE_BUNDLE });
  expect(put.status).toBe(200);
  await until('kernel loads the bundle', async () => (await call(env, 'GET', '/api/v1/policy/snapshots')).json.snapshots[0], (s: string) => s.includes('|cfg:'));
  return env;
}

/** Raw HTTP against this env's sandbox gateway (status, text, parsed json). */
const call = (env: Env, ...args: Parameters<ReturnType<typeof client>>) => client(env.sb)(...args);

const state = (env: Env, id: string) => env.redis.hget(`job:meta:${id}`, 'state');
const waitState = (env: Env, id: string, s: string) => until(`job ${id} -> ${s}`, () => state(env, id), (v) => v === s);

async function submitHeld(env: Env): Promise<string> {
  const r = await call(env, 'POST', '/api/v1/jobs', { prompt: 'restart prod', topic: 'job.default', risk_tags: ['prod'] });
  expect(r.status).toBe(200);
  await waitState(env, r.json.job_id, 'APPROVAL_REQUIRED');
  return r.json.job_id;
}

describe('job approvals', () => {
  let env: Env;
  beforeAll(async () => {
    env = await start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('lists held jobs and approves them: approval record, PENDING, republish, dispatch', async () => {
    const id = await submitHeld(env);
    const list = await call(env, 'GET', '/api/v1/approvals');
    const item = list.json.items.find((i: any) => i.job.id === id);
    expect(item).toMatchObject({
      decision: 'REQUIRE_APPROVAL',
      policy_rule_id: 'prod-needs-human',
      policy_reason: 'prod change',
      policy_snapshot: expect.stringContaining('|cfg:'),
      job_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      approval_required: false, // the documented read-back quirk
      approval_ref: id,
    });
    expect(item.job.trace_id).toBeUndefined();
    expect(list.json.next_cursor).toBeNull();

    const ok = await call(env, 'POST', `/api/v1/approvals/${id}/approve`, undefined, { 'X-Principal-Id': 'alice', 'X-Principal-Role': 'secops' });
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ job_id: id, trace_id: expect.any(String) });
    await waitState(env, id, 'SUCCEEDED');
    const meta = await env.redis.hgetall(`job:meta:${id}`);
    expect(meta).toMatchObject({ approval_by: 'alice', approval_role: 'admin', approval_policy_snapshot: item.policy_snapshot, approval_job_hash: item.job_hash });
    expect(Number(meta.approval_at)).toBeGreaterThan(1e15);
    const again = await call(env, 'POST', `/api/v1/approvals/${id}/approve`);
    expect(again).toMatchObject({ status: 409, text: 'job not awaiting approval\n' });
    expect(await call(env, 'POST', '/api/v1/approvals/nope/approve')).toMatchObject({ status: 404, text: 'job not found\n' });
  });

  it('reject: DENIED and an approval_rejected DLQ entry', async () => {
    const id = await submitHeld(env);
    const r = await call(env, 'POST', `/api/v1/approvals/${id}/reject`, { reason: 'chaos' }, { 'X-Principal-Id': 'carol' });
    expect(r).toMatchObject({ status: 200, json: { job_id: id } });
    expect(await state(env, id)).toBe('DENIED');
    const entry = await until('dlq entry', async () => (await call(env, 'GET', '/api/v1/dlq')).json?.find((e: any) => e.job_id === id), Boolean);
    expect(entry).toMatchObject({ reason_code: 'approval_rejected', reason: 'chaos', status: 'JOB_STATUS_DENIED' });
    expect(await env.redis.hget(`job:meta:${id}`, 'approval_by')).toBe('carol');
  });

  it('409 when the stored request changed, then 409 when the policy snapshot changed', async () => {
    const id = await submitHeld(env);
    const raw = JSON.parse((await env.redis.get(`job:req:${id}`))!);
    await env.redis.set(`job:req:${id}`, JSON.stringify({ ...raw, topic: 'job.other' }));
    expect(await call(env, 'POST', `/api/v1/approvals/${id}/approve`)).toMatchObject({ status: 409, text: 'job request changed; approval rejected\n' });
    await env.redis.set(`job:req:${id}`, JSON.stringify(raw));

    const snap = (await call(env, 'GET', '/api/v1/policy/snapshots')).json.snapshots[0];
    await call(env, 'PUT', '/api/v1/policy/bundles/secops~extra', { content: 'rules:\n  - id: noop\n    match: { topics: ["job.noop"] }\n    decision: allow\n' });
    await until('kernel reload', async () => (await call(env, 'GET', '/api/v1/policy/snapshots')).json.snapshots[0], (s: string) => s !== snap);
    expect(await call(env, 'POST', `/api/v1/approvals/${id}/approve`)).toMatchObject({ status: 409, text: 'policy snapshot changed; re-evaluate before approving\n' });
    expect(await state(env, id)).toBe('APPROVAL_REQUIRED');
  });
});

describe('fault approval-identity-dropped', () => {
  it('approve records no approver', async () => {
    const env = await start(['approval-identity-dropped']);
    try {
      const id = await submitHeld(env);
      const ok = await call(env, 'POST', `/api/v1/approvals/${id}/approve`, { reason: '' }, { 'X-Principal-Id': 'alice', 'X-Principal-Role': 'admin' });
      expect(ok.status).toBe(200);
      const meta = await env.redis.hgetall(`job:meta:${id}`);
      expect(meta.approval_by).toBe('');
      expect(meta.approval_role).toBe('');
      expect(Number(meta.approval_at)).toBeGreaterThan(0);
    } finally {
      await env.stop();
    }
  });
});
