// Each gateway/infrastructure fault this sandbox owns, shown as an observable regression against a
// clean sandbox started with the same settings.
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../helpers/bus.js';
import { startCapWorker } from '../../helpers/cap-worker.js';
import { decodePacket, encodePacket } from '../../helpers/cap/codec.js';
import { SKIPS_KERNEL_TOPIC_PREFIX } from '../../sandbox/faults.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { client, until } from './sandbox-client.js';

interface Env {
  sb: Sandbox;
  api: ReturnType<typeof client>;
  redis: Redis;
  nc: NatsConnection;
  jsm: JetStreamManager;
}
let clean: Env;
let faulty: Env;

async function open(faults: string[]): Promise<Env> {
  const sb = await startSandbox({ faults: faults as never, env: { API_RATE_LIMIT_BURST: '40', API_RATE_LIMIT_RPS: '1' } });
  const nc = await connect({ servers: sb.natsUrl });
  return { sb, api: client(sb), redis: new Redis(sb.redisUrl), nc, jsm: await jetstreamManager(nc) };
}
async function close(e: Env | undefined): Promise<void> {
  if (!e) return;
  e.redis.disconnect();
  await e.nc.close();
  await e.sb.stop();
}

/** The job id of the newest packet on sys.job.submit in the sandbox's CORDUM_SYS stream, if any. */
async function lastSubmittedJob(e: Env): Promise<string | undefined> {
  const msg = await e.jsm.streams.getMessage('CORDUM_SYS', { last_by_subj: 'sys.job.submit' }).catch(() => null);
  return msg ? decodePacket(msg.data).job_request?.job_id : undefined;
}

beforeAll(async () => {
  [clean, faulty] = await Promise.all([
    open([]),
    open(['gateway-redis-down', 'metrics-missing', 'dlq-tap-down', 'dlq-retry-noop', 'rate-limit-off', 'redis-no-persistence', 'jetstream-memory-storage', 'scheduler-skips-kernel']),
  ]);
});
afterAll(async () => {
  await Promise.all([close(clean), close(faulty)]);
});

describe('sandbox faults', () => {
  it('profiles label the faults', () => {
    expect(clean.sb.profile.labels).toEqual({ faults: '' });
    expect(faulty.sb.faults).toContain('metrics-missing');
    expect(faulty.sb.profile.labels?.faults).toContain('gateway-redis-down');
  });

  it('gateway-redis-down: /api/v1/status is still 200 but redis.ok=false with an error', async () => {
    const ok = await clean.api('GET', '/api/v1/status');
    expect(ok.json.redis).toEqual({ ok: true, error: '' });
    const bad = await faulty.api('GET', '/api/v1/status');
    expect(bad.status).toBe(200);
    expect(bad.json.redis.ok).toBe(false);
    expect(bad.json.redis.error).not.toBe('');
    expect(bad.json.nats.connected).toBe(true);
  });

  it('metrics-missing: the gateway metrics endpoint answers 404', async () => {
    await clean.api('GET', '/api/v1/status');
    const good = await request(clean.sb.profile.metrics!.gateway!);
    expect(good.statusCode).toBe(200);
    expect(await good.body.text()).toContain('cordum_api_gateway_http_requests_total{method="GET",route="/api/v1/status",status="200"}');
    const bad = await request(faulty.sb.profile.metrics!.gateway!);
    expect(bad.statusCode).toBe(404);
    await bad.body.dump();
  });

  it('redis-no-persistence: CONFIG GET shows AOF and RDB snapshots off', async () => {
    expect(await clean.redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(((await clean.redis.config('GET', 'save')) as string[])[1]).not.toBe('');
    expect(await faulty.redis.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
    expect(await faulty.redis.config('GET', 'save')).toEqual(['save', '']);
  });

  it('jetstream-memory-storage: both streams use memory storage', async () => {
    for (const name of ['CORDUM_SYS', 'CORDUM_JOBS']) {
      expect((await clean.jsm.streams.info(name)).config.storage).toBe('file');
      expect((await faulty.jsm.streams.info(name)).config.storage).toBe('memory');
    }
  });

  it('dlq-tap-down: the durable tap consumes sys.job.dlq but writes nothing', async () => {
    const packet = (id: string) => encodePacket({ trace_id: id, sender_id: 'test', job_result: { job_id: id, status: 6, error_code: 'x', error_message: 'y' } });
    await jetstream(clean.nc).publish('sys.job.dlq', packet('tap-1'));
    await until('clean tap entry', async () => ((await clean.redis.exists('dlq:entry:tap-1')) ? true : undefined));

    const ack = await jetstream(faulty.nc).publish('sys.job.dlq', packet('tap-1'));
    // Wait until the tap has received and acknowledged the message, then check nothing was written.
    await until('faulty tap consumed', async () => {
      const info = await faulty.jsm.consumers.info('CORDUM_SYS', 'dur_sys_job_dlq');
      return info.delivered.stream_seq >= ack.seq && info.num_ack_pending === 0 ? true : undefined;
    });
    expect(await faulty.redis.exists('dlq:entry:tap-1')).toBe(0);
    expect(await faulty.redis.zcard('dlq:index')).toBe(0);
    expect(await faulty.redis.exists('res:tap-1')).toBe(0);
  });

  it('dlq-retry-noop: 200 with a retry id, but nothing is published and the entry stays', async () => {
    const seed = async (e: Env, id: string) => {
      await e.redis.hset(`job:meta:${id}`, { state: 'FAILED', topic: 'job.noop.test', tenant: 'default' });
      await e.redis.set(`dlq:entry:${id}`, JSON.stringify({ job_id: id, topic: 'job.noop.test', status: 'JOB_STATUS_FAILED', created_at: new Date().toISOString() }));
      await e.redis.zadd('dlq:index', Math.floor(Date.now() / 1000), id);
    };
    await seed(faulty, 'noop-1');
    const r = await faulty.api('POST', '/api/v1/dlq/noop-1/retry');
    expect(r.status).toBe(200);
    expect(r.json.job_id).toMatch(/^noop-1-retry-[0-9a-f]{8}$/);
    // A real retry's publish is acknowledged by JetStream before the 200 and the stream keeps it
    // (limits retention), so the stream is the record of what was published: no waiting, no luck.
    expect(await lastSubmittedJob(faulty)).not.toBe(r.json.job_id);
    expect(await faulty.redis.exists('dlq:entry:noop-1')).toBe(1);
    expect(await faulty.redis.exists(`job:meta:${r.json.job_id}`)).toBe(0);

    // The same check sees a real retry on the clean sandbox.
    await seed(clean, 'noop-1');
    const good = await clean.api('POST', '/api/v1/dlq/noop-1/retry');
    expect(good.status).toBe(200);
    expect(await lastSubmittedJob(clean)).toBe(good.json.job_id);
    expect(await clean.redis.exists('dlq:entry:noop-1')).toBe(0);
  });
  // Last: it drains the clean gateway's bucket.
  it('scheduler-skips-kernel: jobs on one topic prefix run without a safety check; other topics are still checked', async () => {
    // Runs to completion through a real CAP worker; state and decisions are read from Redis, so the
    // gateway's small token bucket (burst 40, 1/s) is left for the rate-limit test.
    const run = async (e: Env, topic: string, tag: string) => {
      const bus = await connectBus(e.sb.profile);
      const worker = await startCapWorker(bus, { workerId: `kernel-${tag}`, pool: 'default', labels: { probe: tag }, behaviour: { mode: 'succeed', result: { ok: true } } });
      try {
        const res = await e.api('POST', '/api/v1/jobs', { prompt: 'kernel probe', topic, labels: { probe: tag } });
        const id = (res.json as { job_id: string }).job_id;
        await until(`job ${id} on ${topic} to end`, async () => {
          const st = await e.redis.get(`job:state:${id}`);
          return st && ['SUCCEEDED', 'FAILED', 'DENIED'].includes(st) ? st : undefined;
        }, 15_000);
        return { state: await e.redis.get(`job:state:${id}`), decision: (await e.redis.hget(`job:meta:${id}`, 'safety_decision')) ?? '', decisions: await e.redis.llen(`job:decisions:${id}`) };
      } finally {
        await worker.stop();
        await bus.close();
      }
    };
    expect(SKIPS_KERNEL_TOPIC_PREFIX).toBe('job.default');
    expect(await run(clean, 'job.default', 'clean')).toEqual({ state: 'SUCCEEDED', decision: 'ALLOW', decisions: 1 });
    expect(await run(faulty, 'job.default', 'skipped')).toEqual({ state: 'SUCCEEDED', decision: '', decisions: 0 });
    // A topic outside the prefix: unmapped, so it fails placement, but only after the kernel's check.
    expect(await run(faulty, 'job.runbook.unmapped', 'checked')).toEqual({ state: 'FAILED', decision: 'ALLOW', decisions: 1 });
  }, 60_000);

  it('rate-limit-off: never 429 where the clean gateway limits', async () => {
    const statuses = async (e: Env) => {
      const out = new Set<number>();
      for (let i = 0; i < 45; i++) out.add((await e.api('GET', '/api/v1/workers')).status);
      return out;
    };
    expect((await statuses(clean)).has(429)).toBe(true);
    expect([...(await statuses(faulty))]).toEqual([200]);
  });

});
