// Wire compatibility with the REFERENCE CAP schemas (loaded read-only at test time): what the sandbox
// publishes decodes with them, and what they encode is accepted by the sandbox's DLQ tap.
import { resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import protobuf from 'protobufjs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { describeWithReference, sharedReference } from '../support/shared-reference.js';
import { client, until } from './sandbox-client.js';

const protoDir = sharedReference('cap/proto').path;
const reference = sharedReference('cap/proto/cordum/agent/v1/buspacket.proto');

function loadReference(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports such as "cordum/agent/v1/job.proto" resolve against the proto dir; google/* are built in.
  root.resolvePath = (_origin, target) => (target.startsWith('google/') ? target : resolve(protoDir, target));
  root.loadSync(['cordum/agent/v1/buspacket.proto'], { keepCase: true });
  return root;
}

const haveReference = reference.present;
let sb: Sandbox;
let nc: NatsConnection;
let redis: Redis;
let BusPacket: protobuf.Type;

beforeAll(async () => {
  if (!haveReference) return;
  BusPacket = loadReference().lookupType('cordum.agent.v1.BusPacket');
  sb = await startSandbox();
  nc = await connect({ servers: sb.natsUrl });
  redis = new Redis(sb.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await nc?.close();
  await sb?.stop();
});

describeWithReference(reference, 'CAP wire compatibility with the reference schemas (sandbox)', () => {
  it('a JobRequest published on sys.job.submit decodes with cordum.agent.v1.BusPacket', async () => {
    const seen: Uint8Array[] = [];
    const sub = nc.subscribe('sys.job.submit', { callback: (_e, m) => void seen.push(m.data) });
    await nc.flush();
    const r = await client(sb)('POST', '/api/v1/jobs', { prompt: 'wire', labels: { a: 'b' }, priority: 'critical', actor_type: 'human', deadline_ms: 5000 });
    const { job_id: id, trace_id: trace } = r.json;
    const raw = await until('submit packet', async () => seen.find((d) => (BusPacket.toObject(BusPacket.decode(d)) as any).job_request?.job_id === id));
    const obj = BusPacket.toObject(BusPacket.decode(raw), { enums: String, longs: Number, defaults: false }) as any;
    sub.unsubscribe();
    expect(obj).toMatchObject({ trace_id: trace, sender_id: 'api-gateway', protocol_version: 1 });
    expect(obj.created_at.seconds).toBeGreaterThan(1_600_000_000);
    expect(obj.job_request).toMatchObject({
      job_id: id,
      topic: 'job.default',
      priority: 'JOB_PRIORITY_CRITICAL',
      context_ptr: `redis://ctx:${id}`,
      tenant_id: 'default',
      labels: { a: 'b' },
      env: { tenant_id: 'default' },
      memory_id: `mem:${id}`,
      budget: { max_input_tokens: 8000, max_output_tokens: 1024, deadline_ms: 5000 },
      meta: { tenant_id: 'default', actor_type: 'ACTOR_TYPE_HUMAN' },
    });
  });

  it('a JobResult encoded with the reference schema on sys.job.dlq is accepted by the tap', async () => {
    const id = `wire-${Date.now()}`;
    await redis.hset(`job:meta:${id}`, { state: 'FAILED', topic: 'job.wire', attempts: '2' });
    const msg = BusPacket.fromObject({
      trace_id: id,
      sender_id: 'cordum-scheduler',
      created_at: { seconds: Math.floor(Date.now() / 1000), nanos: 0 },
      protocol_version: 1,
      job_result: { job_id: id, status: 'JOB_STATUS_TIMEOUT', error_code: 'slow', error_message: 'too slow', execution_ms: 12 },
    });
    nc.publish('sys.job.dlq', BusPacket.encode(msg).finish());
    const entry = await until('dlq entry', async () => {
      const raw = await redis.get(`dlq:entry:${id}`);
      return raw ? JSON.parse(raw) : undefined;
    });
    expect(entry).toMatchObject({ job_id: id, topic: 'job.wire', status: 'JOB_STATUS_TIMEOUT', reason: 'too slow', reason_code: 'slow', last_state: 'FAILED', attempts: 2 });
  });
});
