// The scheduler with the real kernel, real Redis and NATS JetStream, and a fake worker made of a
// core subscription on worker.<id>.jobs plus heartbeats on sys.heartbeat.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { createBus, ensureStreams, type Bus } from '../../sandbox/bus.js';
import { buildConfig } from '../../sandbox/config.js';
import { parseFaults } from '../../sandbox/faults.js';
import { startSafetyKernel } from '../../sandbox/kernel/index.js';
import { startScheduler } from '../../sandbox/scheduler/index.js';
import { createJobStore } from '../../sandbox/stores/jobs.js';
import { decodePacket, type BusPacket, type JobRequest } from '../../helpers/cap/codec.js';
import type { Component, SandboxDeps } from '../../sandbox/types.js';
import { pollUntil as until } from './sandbox-client.js';

const POLICY = [
  'default_tenant: default',
  'rules:',
  '  - id: need-human',
  '    match: { topics: ["job.approve"] }',
  '    decision: require_approval',
  '    reason: a human must look',
].join('\n');

let redisSrv: ManagedServer;
let natsSrv: ManagedServer;
let redis: Redis;
let nc: NatsConnection;
let bus: Bus;
let deps: SandboxDeps;
let kernel: Component;
let scheduler: Component & { metricsUrl: string };
const logs: string[] = [];
const workersToStop = new Set<{ stop(): Promise<void> }>();

beforeAll(async () => {
  [redisSrv, natsSrv] = await Promise.all([startRedis({ persistence: false }), startNats()]);
  redis = new Redis(redisSrv.url);
  nc = await connect({ servers: natsSrv.url });
  await ensureStreams(await jetstream(nc).jetstreamManager(), { storage: 'memory' });
  bus = createBus(nc);
  deps = {
    redis,
    nc,
    bus,
    config: buildConfig(
      {},
      {
        policyFileYaml: POLICY,
        pools: { topics: { 'job.default': ['default'], 'job.approve': ['default'] }, pools: { default: { requires: [] } } },
        timeouts: { dispatchTimeoutS: 300, runningTimeoutS: 9000, scanIntervalS: 0.2 },
      },
    ),
    faults: parseFaults([]),
    log: (c, m) => logs.push(`${c}: ${m}`),
  };
  kernel = await startSafetyKernel(deps);
  scheduler = await startScheduler(deps, { metricsPort: 0 });
});
afterAll(async () => {
  for (const w of workersToStop) await w.stop();
  await scheduler?.stop();
  await kernel?.stop();
  await bus?.close();
  await nc?.close();
  redis?.disconnect();
  await Promise.all([redisSrv?.stop(), natsSrv?.stop()]);
});

const store = () => createJobStore(redis, deps.config);

const stateOf = (id: string) => until(`state of ${id}`, () => store().getState(id), () => true);
const waitState = (id: string, state: string, ms?: number) => until(`state of ${id} -> ${state}`, () => store().getState(id), (s) => s === state, ms);

function submit(req: JobRequest, extra: Partial<BusPacket> = {}) {
  return bus.publishDurable('sys.job.submit', { trace_id: req.job_id, sender_id: 'test', job_request: { tenant_id: 'default', ...req }, ...extra }, extra.sender_id ? undefined : `test:${randomUUID()}`);
}

/** Collect packets on a core subject. */
function collect(subject: string) {
  const got: BusPacket[] = [];
  const sub = nc.subscribe(subject, { callback: (_e, m) => void got.push(decodePacket(m.data)) });
  return { got, stop: () => sub.unsubscribe(), flush: () => nc.flush() };
}

/** A fake worker: heartbeats now and then, answers jobs with the given reply. */
function fakeWorker(id: string, opts: { labels?: Record<string, string>; reply?: (req: JobRequest) => { status: number; error_code?: string; error_message?: string } | undefined } = {}) {
  const seen: JobRequest[] = [];
  const sub = nc.subscribe(`worker.${id}.jobs`, {
    callback: (_e, m) => {
      const req = decodePacket(m.data).job_request!;
      seen.push(req);
      const r = opts.reply?.(req);
      if (r) bus.publishCore('sys.job.result', { trace_id: req.job_id, sender_id: id, job_result: { job_id: req.job_id, worker_id: id, ...r } });
    },
  });
  const beat = () => bus.publishCore('sys.heartbeat', { sender_id: id, heartbeat: { worker_id: id, pool: 'default', max_parallel_jobs: 4, labels: opts.labels } });
  beat();
  const timer = setInterval(beat, 200);
  const handle = {
    seen,
    async stop() {
      workersToStop.delete(handle);
      clearInterval(timer);
      sub.unsubscribe();
      // Age the worker out of the scheduler's view so later tests start without it.
      bus.publishCore('sys.heartbeat', { sender_id: id, heartbeat: { worker_id: id, pool: 'nowhere' } });
      await nc.flush();
    },
  };
  workersToStop.add(handle);
  return handle;
}

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(scheduler.metricsUrl)).text();
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${want}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('scheduler', () => {
  it('dispatches to a live worker and records the ALLOW decision; success is terminal', async () => {
    await nc.flush();
    const w = fakeWorker('w-ok', { reply: () => ({ status: 5 }) });
    await nc.flush();
    const id = `job-ok-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.default' });
    await waitState(id, 'SUCCEEDED');
    await w.stop();
    expect(w.seen[0]?.job_id).toBe(id);
    expect(JSON.parse(w.seen[0]!.env!.CORDUM_EFFECTIVE_CONFIG!)).toHaveProperty('data');
    const meta = await store().getMeta(id);
    expect(meta.attempts).toBe('1');
    expect(meta.safety_decision).toBe('ALLOW');
    const [d] = await store().listDecisions(id, 10);
    expect(d).toMatchObject({ decision: 'ALLOW', policy_snapshot: expect.stringMatching(/^[0-9a-f]{64}$/), job_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const events = (await redis.lrange(`job:events:${id}`, 0, -1)).map((e) => e.split('|')[1]);
    expect(events).toEqual(['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED']);
    expect(await metricValue('cordum_scheduler_jobs_dispatched_total', { topic: 'job.default' })).toBeGreaterThanOrEqual(1);
    expect(await metricValue('cordum_scheduler_jobs_completed_total', { topic: 'job.default', status: 'JOB_STATUS_SUCCEEDED' })).toBeGreaterThanOrEqual(1);
  });

  it('unmapped topic: FAILED and a no_pool_mapping DLQ packet', async () => {
    const dlq = collect('sys.job.dlq');
    await dlq.flush();
    const id = `job-unmapped-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.chaos.unmapped' });
    await waitState(id, 'FAILED');
    const p = await until('dlq packet', async () => dlq.got.find((x) => x.job_result?.job_id === id), Boolean) as BusPacket;
    dlq.stop();
    expect(p).toMatchObject({
      trace_id: id,
      sender_id: 'cordum-scheduler',
      job_result: { job_id: id, status: 6, error_code: 'no_pool_mapping', error_message: 'no_pool_mapping: topic "job.chaos.unmapped"' },
    });
    expect((await store().getMeta(id)).attempts).toBe('0');
    expect(await metricValue('cordum_scheduler_jobs_completed_total', { topic: 'job.chaos.unmapped', status: 'JOB_STATUS_FAILED' })).toBe(1);
  });

  it('safety deny: DENIED, safety_denied DLQ packet, denied metric, decision recorded', async () => {
    const dlq = collect('sys.job.dlq');
    await dlq.flush();
    const id = `job-deny-${randomUUID()}`;
    await submit({ job_id: id, topic: 'chaos.x' });
    await waitState(id, 'DENIED');
    const p = await until('dlq packet', async () => dlq.got.find((x) => x.job_result?.job_id === id), Boolean) as BusPacket;
    dlq.stop();
    expect(p.job_result).toMatchObject({ status: 8, error_code: 'safety_denied', error_message: 'unsupported topic' });
    expect((await store().listDecisions(id, 5))[0]).toMatchObject({ decision: 'DENY', reason: 'unsupported topic' });
    expect(await metricValue('cordum_scheduler_safety_denied_total', { topic: 'chaos.x' })).toBe(1);
  });

  it('worker failure: FAILED, DLQ packet with the worker error and attempts 1', async () => {
    const dlq = collect('sys.job.dlq');
    await dlq.flush();
    const w = fakeWorker('w-fail', { reply: () => ({ status: 6, error_code: 'chaos', error_message: 'boom' }) });
    await nc.flush();
    const id = `job-fail-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.default' });
    await waitState(id, 'FAILED');
    await w.stop();
    const p = await until('dlq packet', async () => dlq.got.find((x) => x.job_result?.job_id === id), Boolean) as BusPacket;
    dlq.stop();
    expect(p.job_result).toMatchObject({ status: 6, error_code: 'chaos', error_message: 'boom' });
    expect((await store().getMeta(id)).attempts).toBe('1');
  });

  it('a job label is a hard placement constraint: stranded PENDING until a worker carries it', async () => {
    const plain = fakeWorker('w-plain', { reply: () => ({ status: 5 }) });
    await nc.flush();
    const id = `job-label-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.default', labels: { approval_reason: 'ok by me' } });
    // NAK loop: every handling records another decision while the state stays PENDING.
    await until('two handlings', () => store().listDecisions(id, 10), (d) => d.length >= 2, 8000);
    expect(await stateOf(id)).toBe('PENDING');
    expect(plain.seen).toHaveLength(0);
    await plain.stop();
    const labelled = fakeWorker('w-labelled', { labels: { approval_reason: 'ok by me' }, reply: () => ({ status: 5 }) });
    await waitState(id, 'SUCCEEDED', 8000);
    await labelled.stop();
  });

  it('require approval; approval_granted honoured only while the request hash matches', async () => {
    const w = fakeWorker('w-appr', { reply: () => ({ status: 5 }) });
    await nc.flush();
    const id = `job-appr-${randomUUID()}`;
    const req: JobRequest = { job_id: id, topic: 'job.approve', env: { tenant_id: 'default' } };
    await submit(req);
    await waitState(id, 'APPROVAL_REQUIRED');
    const meta = await store().getMeta(id);
    expect(meta).toMatchObject({ safety_decision: 'REQUIRE_APPROVAL', safety_rule_id: 'need-human', safety_approval_ref: id, safety_approval_required: '1' });
    // The gateway's approve sets PENDING and republishes with the labels. A request that changed
    // since the decision is checked again (and held again, now under the new hash).
    const changed: JobRequest = { ...req, env: { tenant_id: 'default', sneaky: '1' } };
    await store().setState(id, 'PENDING');
    await submit({ ...changed, labels: { approval_granted: 'true', 'cordum.bus_msg_id': 'approval:x1' } });
    await until('re-check', () => store().listDecisions(id, 10), (d) => d.length === 2);
    await waitState(id, 'APPROVAL_REQUIRED');
    expect(w.seen).toHaveLength(0);
    // The same request as the one held: the kernel is skipped and the job dispatched.
    await store().setState(id, 'PENDING');
    await submit({ ...changed, labels: { approval_granted: 'true', 'cordum.bus_msg_id': 'approval:x2' } });
    await waitState(id, 'SUCCEEDED');
    await w.stop();
    expect((await store().listDecisions(id, 1))[0]).toMatchObject({ decision: 'ALLOW', reason: 'approval granted' });
  });

  it('reconciler: job:deadline expiry -> TIMEOUT without a DLQ packet', async () => {
    const dlq = collect('sys.job.dlq');
    await dlq.flush();
    const id = `job-deadline-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.default', budget: { deadline_ms: 500 } }); // no worker: stays PENDING
    await until('deadline stored', async () => redis.zscore('job:deadline', id), (v) => v !== null);
    await waitState(id, 'TIMEOUT', 5000);
    expect(await redis.zscore('job:deadline', id)).toBeNull();
    await nc.flush();
    dlq.stop();
    expect(dlq.got.filter((p) => p.job_result?.job_id === id)).toHaveLength(0);
  });

  it('sys.job.cancel cancels a pending job; a later result is ignored', async () => {
    const id = `job-cancel-${randomUUID()}`;
    await submit({ job_id: id, topic: 'job.default' });
    await waitState(id, 'PENDING');
    bus.publishCore('sys.job.cancel', { job_cancel: { job_id: id, reason: 'test' } });
    await waitState(id, 'CANCELLED');
    bus.publishCore('sys.job.result', { job_result: { job_id: id, status: 6 } });
    await nc.flush();
    await until('result handled', () => metricValue('cordum_scheduler_jobs_completed_total', { topic: 'job.default', status: 'JOB_STATUS_FAILED' }), () => true);
    expect(await stateOf(id)).toBe('CANCELLED');
  });

  it('writes sys:workers:snapshot', async () => {
    const snap = JSON.parse((await redis.get('sys:workers:snapshot'))!);
    expect(snap).toMatchObject({ pools: { default: {} }, topics: { 'job.default': ['default'] } });
    expect(Array.isArray(snap.workers)).toBe(true);
  });
});
