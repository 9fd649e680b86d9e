// What the gateway and scheduler write to Redis and publish on NATS: key names and types, units
// inside them, the CAP packets on sys.job.*, JetStream streams/consumers and de-duplication ids.
// Needs direct Redis and NATS access (profile redis.url and nats.url).
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/nats-core';
import { describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, JobStatus, type BusPacket } from '../../helpers/cap/codec.js';
import { waitFor } from '../../helpers/waits.js';
import { describeWhen, isRecentMicros, isRecentSeconds, itWhen, RFC3339, SKIP, submitPinned, target, uniq, useContract, waitForDlqEntry } from './support.js';

const fx = useContract({ redis: true, nats: true });
const ready = target.hasRedis && target.hasNats;
const TWO_MINUTES_NS = 120 * 1e9;

interface Captured {
  subject: string;
  headers: Record<string, string>;
  packet: BusPacket;
}

/** Core subscription that keeps headers (JetStream publishes also reach core subscribers with their headers). */
function capture(subject: string) {
  const got: Captured[] = [];
  const sub = fx.bus!.nc.subscribe(subject, {
    callback: (_err, m: Msg) => {
      const headers: Record<string, string> = {};
      if (m.headers) for (const [k, v] of m.headers) headers[k] = v.join(',');
      try {
        got.push({ subject: m.subject, headers, packet: decodePacket(m.data) });
      } catch {
        // not a CAP packet: ignore
      }
    },
  });
  return {
    async next(pred: (c: Captured) => boolean, what: string): Promise<Captured> {
      return waitFor(what, async () => got.find(pred), (c) => c !== undefined, { timeoutMs: 10_000, intervalMs: 50 }) as Promise<Captured>;
    },
    stop: () => sub.unsubscribe(),
  };
}

let jsmCache: JetStreamManager | undefined;
async function jsm(): Promise<JetStreamManager> {
  jsmCache ??= await jetstreamManager(fx.bus!.nc);
  return jsmCache;
}

describeWhen(ready, SKIP.noBusOrRedis)('Redis keys written on submit', () => {
  it('submit writes ctx:<id> as JSON {prompt, adapter_id, priority, topic, created_at, tenant_id, context}', async () => {
    const { job_id } = await submitPinned(fx, { context: { ct: 1 } });
    const raw = await fx.redis!.get(`ctx:${job_id}`);
    const ctx = JSON.parse(raw!);
    expect(Object.keys(ctx).sort()).toEqual(['adapter_id', 'context', 'created_at', 'priority', 'prompt', 'tenant_id', 'topic']);
    expect(ctx.context).toEqual({ ct: 1 });
    expect(ctx.topic).toBe(fx.profile.routing.mapped_topic);
    expect(await fx.redis!.ttl(`ctx:${job_id}`)).toBeGreaterThan(0);
  });

  it('job:meta:<id> is a HASH with state and updated_at in microseconds', async () => {
    const { job_id, trace_id } = await submitPinned(fx);
    expect(await fx.redis!.type(`job:meta:${job_id}`)).toBe('hash');
    const meta = await fx.redis!.hgetall(`job:meta:${job_id}`);
    expect(meta.state).toBe('PENDING');
    expect(meta.updated_at).toMatch(/^\d+$/);
    expect(isRecentMicros(Number(meta.updated_at))).toBe(true);
    expect(meta.topic).toBe(fx.profile.routing.mapped_topic);
    expect(meta.trace_id).toBe(trace_id);
    expect(await fx.redis!.ttl(`job:meta:${job_id}`)).toBeGreaterThan(0);
  });

  it('job:req:<id> is protojson: camelCase keys with unpopulated fields emitted', async () => {
    const { job_id } = await submitPinned(fx);
    const req = JSON.parse((await fx.redis!.get(`job:req:${job_id}`))!);
    expect(req.jobId).toBe(job_id);
    expect(req.contextPtr).toBe(`redis://ctx:${job_id}`);
    expect(req.topic).toBe(fx.profile.routing.mapped_topic);
    for (const k of Object.keys(req)) expect(k, `key ${k}`).not.toMatch(/_/);
    for (const k of ['parentJobId', 'workflowId', 'adapterId']) expect(req, `unpopulated ${k}`).toHaveProperty(k);
  });

  it('job:events:<id> is a LIST of "<unix micros>|<STATE>" entries starting with PENDING', async () => {
    const { job_id } = await submitPinned(fx);
    expect(await fx.redis!.type(`job:events:${job_id}`)).toBe('list');
    const events = await fx.redis!.lrange(`job:events:${job_id}`, 0, -1);
    expect(events.length).toBeGreaterThanOrEqual(1);
    for (const e of events) expect(e).toMatch(/^\d+\|[A-Z_]+$/);
    const [us, state] = events[0].split('|');
    expect(state).toBe('PENDING');
    expect(isRecentMicros(Number(us))).toBe(true);
  });

  it('job:recent and job:index:pending are ZSETs scored in microseconds', async () => {
    const { job_id } = await submitPinned(fx);
    const recent = await fx.redis!.zscore('job:recent', job_id);
    const pending = await fx.redis!.zscore('job:index:pending', job_id);
    expect(isRecentMicros(Number(recent))).toBe(true);
    expect(isRecentMicros(Number(pending))).toBe(true);
  });

  it('trace:<trace_id> is a SET holding the job id', async () => {
    const { job_id, trace_id } = await submitPinned(fx);
    expect(await fx.redis!.type(`trace:${trace_id}`)).toBe('set');
    expect(await fx.redis!.sismember(`trace:${trace_id}`, job_id)).toBe(1);
  });

  // Recorded on a real Cordum: the first state is written before the tenant is known, so a job
  // enters the set only at its next state change.
  it('a job that stays PENDING is not in job:tenant:active:<tenant>', async () => {
    const { job_id } = await submitPinned(fx);
    const tenant = (await fx.gw.getJob(job_id)).tenant;
    expect(await fx.redis!.sismember(`job:tenant:active:${tenant}`, job_id)).toBe(0);
  });

  it('deadline_ms becomes a job:deadline member scored in unix seconds', async () => {
    const { job_id } = await submitPinned(fx, { deadline_ms: 600_000 });
    const score = await waitFor('job:deadline entry', () => fx.redis!.zscore('job:deadline', job_id), (v) => v !== null, { timeoutMs: 10_000, intervalMs: 100 });
    expect(Math.abs(Number(score) - (Date.now() / 1000 + 600))).toBeLessThan(120);
  });

  // pools, topics and workers are omitempty (recorded): with no live worker only captured_at and topics.
  it('the scheduler keeps sys:workers:snapshot as JSON {captured_at, topics, and pools/workers while a worker lives}', async () => {
    const raw = await waitFor('sys:workers:snapshot', () => fx.redis!.get('sys:workers:snapshot'), (v) => v !== null, { timeoutMs: 8_000, intervalMs: 200 });
    const snap = JSON.parse(raw!);
    expect(snap).toHaveProperty('captured_at');
    expect(Object.keys(snap).every((k) => ['captured_at', 'pools', 'topics', 'workers'].includes(k))).toBe(true);
    if ('workers' in snap) expect(Array.isArray(snap.workers)).toBe(true);
    expect(snap.topics[fx.profile.routing.mapped_topic]).toContain(fx.profile.routing.pool);
  });

  it('an idempotency key is stored as job:idempotency:<tenant>:<key> holding the job id', async () => {
    const key = uniq();
    const { job_id } = await submitPinned(fx, { idempotency_key: key });
    const tenant = (await fx.gw.getJob(job_id)).tenant;
    expect(await fx.redis!.get(`job:idempotency:${tenant}:${key}`)).toBe(job_id);
  });
});

describeWhen(ready, SKIP.noBusOrRedis)('CAP packets on the bus', () => {
  it('the JobRequest on sys.job.submit decodes with our codec and carries the documented fields', async () => {
    const cap = capture('sys.job.submit');
    try {
      const label = uniq();
      const { job_id } = await submitPinned(fx, { labels: { 'ct-pin': label }, principal_id: 'ct-principal' });
      const got = await cap.next((c) => c.packet.job_request?.job_id === job_id, `JobRequest ${job_id}`);
      const p = got.packet;
      expect(p.protocol_version).toBe(1);
      expect(typeof p.created_at).toBe('number');
      const req = p.job_request!;
      expect(req.topic).toBe(fx.profile.routing.mapped_topic);
      expect(req.context_ptr).toBe(`redis://ctx:${job_id}`);
      expect(req.labels).toMatchObject({ 'ct-pin': label });
      expect(req.principal_id).toBe('ct-principal');
      expect(req.tenant_id).toBeTruthy();
      expect(req.memory_id).toBe(`mem:${job_id}`);
      expect(req.priority).toBe(1); // interactive is the default priority
    } finally {
      cap.stop();
    }
  });

  it('the gateway publishes a submit with Nats-Msg-Id jobreq:<job_id>', async () => {
    const cap = capture('sys.job.submit');
    try {
      const { job_id } = await submitPinned(fx);
      const got = await cap.next((c) => c.packet.job_request?.job_id === job_id, `JobRequest ${job_id}`);
      expect(got.headers['Nats-Msg-Id']).toBe(`jobreq:${job_id}`);
    } finally {
      cap.stop();
    }
  });

  it('the scheduler DLQ packet for an unmapped topic: Nats-Msg-Id sys.job.dlq:<id>, trace = job id, sender cordum-scheduler, status FAILED', async () => {
    const cap = capture('sys.job.dlq');
    try {
      const topic = `job.${uniq()}.unmapped`;
      const res = await fx.gw.request<{ job_id: string }>('POST', '/api/v1/jobs', { body: { prompt: 'contract: dlq packet', topic }, expect: 200 });
      const id = res.json!.job_id;
      fx.cleanup(() => fx.gw.dlqDelete(id));
      const got = await cap.next((c) => c.packet.job_result?.job_id === id, `DLQ packet for ${id}`);
      expect(got.headers['Nats-Msg-Id']).toBe(`sys.job.dlq:${id}`);
      expect(got.packet.trace_id).toBe(id);
      expect(got.packet.sender_id).toBe('cordum-scheduler');
      const r = got.packet.job_result!;
      expect(r.status).toBe(JobStatus.FAILED);
      expect(r.error_code).toBe('no_pool_mapping');
      expect(r.error_message).toBe(`no_pool_mapping: topic "${topic}"`);
      expect(r.worker_id ?? '').toBe('');
      expect(r.result_ptr ?? '').toBe('');
      await waitForDlqEntry(fx.gw, id);
    } finally {
      cap.stop();
    }
  });

  it('DLQ entries are stored as dlq:entry:<id> JSON and indexed in dlq:index scored in unix seconds', async () => {
    const topic = `job.${uniq()}.unmapped`;
    const res = await fx.gw.request<{ job_id: string }>('POST', '/api/v1/jobs', { body: { prompt: 'contract: dlq keys', topic }, expect: 200 });
    const id = res.json!.job_id;
    fx.cleanup(() => fx.gw.dlqDelete(id));
    await waitForDlqEntry(fx.gw, id);
    expect(await fx.redis!.type(`dlq:entry:${id}`)).toBe('string');
    const entry = JSON.parse((await fx.redis!.get(`dlq:entry:${id}`))!);
    expect(entry).toMatchObject({ job_id: id, topic, reason_code: 'no_pool_mapping', status: 'JOB_STATUS_FAILED', last_state: 'FAILED' });
    expect(entry.created_at).toMatch(RFC3339);
    expect(await fx.redis!.ttl(`dlq:entry:${id}`)).toBe(-1);
    expect(isRecentSeconds(Number(await fx.redis!.zscore('dlq:index', id)))).toBe(true);
    const synthetic = JSON.parse((await fx.redis!.get(`res:${id}`))!);
    expect(synthetic).toMatchObject({ job_id: id, processed_by: 'cordum-scheduler' });
  });
});

describeWhen(ready, SKIP.noBusOrRedis)('JetStream', () => {
  it('stream CORDUM_SYS takes sys.> on file storage with a 2-minute duplicate window', async () => {
    const si = await (await jsm()).streams.info('CORDUM_SYS');
    expect(si.config.subjects).toEqual(['sys.>']);
    expect(si.config.storage).toBe('file');
    expect(si.config.retention).toBe('limits');
    expect(si.config.duplicate_window).toBe(TWO_MINUTES_NS);
  });

  it('stream CORDUM_JOBS takes job.> and worker.*.jobs on file storage with a 2-minute duplicate window', async () => {
    const si = await (await jsm()).streams.info('CORDUM_JOBS');
    expect([...si.config.subjects].sort()).toEqual(['job.>', 'worker.*.jobs']);
    expect(si.config.storage).toBe('file');
    expect(si.config.duplicate_window).toBe(TWO_MINUTES_NS);
  });

  it('the streams have no MaxMsgs or MaxBytes limits', async () => {
    for (const name of ['CORDUM_SYS', 'CORDUM_JOBS']) {
      const si = await (await jsm()).streams.info(name);
      expect(si.config.max_msgs, name).toBe(-1);
      expect(si.config.max_bytes, name).toBe(-1);
    }
  });

  it.each([
    ['dur_cordum-scheduler__sys_job_submit', 'sys.job.submit', 'cordum-scheduler'],
    ['dur_cordum-scheduler__sys_job_result', 'sys.job.result', 'cordum-scheduler'],
    ['dur_cordum-workflow-engine__sys_job_result', 'sys.job.result', 'cordum-workflow-engine'],
    ['dur_sys_job_dlq', 'sys.job.dlq', undefined],
  ])('durable consumer %s on %s (deliver group %s): explicit ack, 10-minute ack wait, unlimited deliveries', async (name, subject, group) => {
    const ci = await (await jsm()).consumers.info('CORDUM_SYS', name);
    expect(ci.config.durable_name).toBe(name);
    expect(ci.config.filter_subject).toBe(subject);
    expect(ci.config.deliver_group || undefined).toBe(group);
    expect(ci.config.ack_policy).toBe('explicit');
    expect(ci.config.max_deliver ?? -1).toBe(-1);
    expect(ci.config.max_ack_pending).toBe(2048);
    expect(ci.config.ack_wait).toBe(10 * 60 * 1e9);
  });

  it('a JobResult JS-published twice with Nats-Msg-Id sys.job.dlq:<id> within 2 min is stored once', async () => {
    const id = uniq();
    fx.cleanup(async () => {
      await waitForDlqEntry(fx.gw, id).catch(() => undefined);
      await fx.gw.dlqDelete(id);
    });
    const js = jetstream(fx.bus!.nc);
    const packet = encodePacket({
      trace_id: id,
      sender_id: 'ct-contract',
      job_result: { job_id: id, status: JobStatus.FAILED, error_code: 'ct_dedup', error_message: 'contract de-dup check' },
    });
    const first = await js.publish('sys.job.dlq', packet, { msgID: `sys.job.dlq:${id}` });
    const second = await js.publish('sys.job.dlq', packet, { msgID: `sys.job.dlq:${id}` });
    expect(first.duplicate).toBe(false);
    expect(second.duplicate).toBe(true);
    expect(second.seq).toBe(first.seq);
    expect(first.stream).toBe('CORDUM_SYS');
  });

  it("a JobRequest JS-published with the gateway's id jobreq:<job_id> right after submit is dropped as a duplicate", async () => {
    const { job_id } = await submitPinned(fx);
    const js = jetstream(fx.bus!.nc);
    const ack = await js.publish(
      'sys.job.submit',
      encodePacket({ trace_id: job_id, sender_id: 'ct-contract', job_request: { job_id, topic: fx.profile.routing.mapped_topic } }),
      { msgID: `jobreq:${job_id}` },
    );
    expect(ack.duplicate).toBe(true);
  });
});



describeWhen(ready, SKIP.noBusOrRedis)('heartbeats', () => {
  // The gateway never forgets a worker it has seen, so this leaves an entry in /api/v1/workers until
  // the gateway restarts: only where the profile allows changes. The pool is unique and unmapped,
  // so the scheduler never routes to it.
  itWhen(target.destructiveAllowed, SKIP.notDestructive)('a heartbeat shows in /api/v1/workers with snake_case keys and zero values omitted', async () => {
    const workerId = uniq('ct-worker');
    const pool = uniq('ct-pool');
    await fx.bus!.publish('sys.heartbeat', { sender_id: workerId, heartbeat: { worker_id: workerId, pool, max_parallel_jobs: 2, labels: { ct: 'yes' } } });
    const workers = await waitFor(
      `worker ${workerId} listed`,
      () => fx.gw.workers(),
      (ws) => ws.some((w) => w.worker_id === workerId),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const w = workers.find((x) => x.worker_id === workerId)!;
    expect(w).toEqual({ worker_id: workerId, pool, max_parallel_jobs: 2, labels: { ct: 'yes' } });
  });
});
