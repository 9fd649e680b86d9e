// Seeded source servers for the backup tests: a real redis-server with every key type (with and
// without TTLs, small and large encodings, a binary key, a second db) and a real nats-server with
// Cordum's two streams, thousands of messages and durable consumers with ack state.
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { join } from 'node:path';
import type { RedisDbSection, RedisRecord } from '../../helpers/backup/archive.js';
import { backupRedisLogical, readRecords, redisSource, type RedisBackupResult } from '../../helpers/backup/redis-logical.js';

export interface Source {
  redisServer: ManagedServer;
  natsServer: ManagedServer;
  redis: Redis;
  nc: NatsConnection;
  /** Keys seeded, per type (db 0 + db 1). */
  seeded: Record<string, number>;
  stop(): Promise<void>;
}

export const SYS_MESSAGES = 3000;
export const JOBS_MESSAGES = 2000;

export async function startSource(): Promise<Source> {
  // diskless-sync-delay 0: an RDB fetch need not wait 5 s for other replicas.
  const redisServer = await startRedis({ persistence: false, extraArgs: ['--repl-diskless-sync-delay', '0'] });
  const natsServer = await startNats();
  const redis = new Redis(redisServer.port, '127.0.0.1');
  const nc = await connect({ servers: natsServer.url });
  const seeded = await seedRedis(redis);
  await seedStreams(nc);
  return {
    redisServer,
    natsServer,
    redis,
    nc,
    seeded,
    stop: async () => {
      redis.disconnect();
      await nc.close();
      await Promise.all([redisServer.stop(), natsServer.stop()]);
    },
  };
}

async function seedRedis(redis: Redis): Promise<Record<string, number>> {
  const seeded: Record<string, number> = {};
  const add = (t: string) => (seeded[t] = (seeded[t] ?? 0) + 1);
  const hour = 3_600_000;
  const p = redis.pipeline();
  for (let i = 0; i < 800; i++) {
    p.set(`job:state:${i}`, `RUNNING-${i}`);
    if (i % 3 === 0) p.pexpire(`job:state:${i}`, hour + i);
    add('string');
  }
  for (let i = 0; i < 300; i++) {
    p.set(`ctx:${i}`, JSON.stringify({ prompt: 'x'.repeat(i), tenant_id: 'default' }), 'PX', 2 * hour);
    add('string');
  }
  p.set('wf:def:marker', JSON.stringify({ id: 'marker', name: 'restore-drill-marker' }));
  add('string');
  p.set(Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0x3a, 0x6b]), Buffer.from([0, 1, 2, 255]));
  add('string');
  p.set('plainkey', 'no prefix');
  add('string');
  for (let i = 0; i < 400; i++) {
    const fields: Record<string, string> = { state: 'SUCCEEDED', topic: 'job.default', attempts: String(i % 5) };
    // A few big hashes leave the listpack encoding.
    if (i % 50 === 0) for (let f = 0; f < 200; f++) fields[`f${f}`] = `v${f}`;
    p.hset(`job:meta:${i}`, fields);
    if (i % 2 === 0) p.pexpire(`job:meta:${i}`, 3 * hour);
    add('hash');
  }
  for (let i = 0; i < 300; i++) {
    p.rpush(`job:events:${i}`, ...Array.from({ length: 1 + (i % 7) }, (_, n) => `${1_700_000_000_000 + n}|STATE${n}`));
    add('list');
  }
  for (let i = 0; i < 300; i++) {
    // Every 30th set is large enough to be hashtable-encoded (DUMP order may change on RESTORE).
    const n = i % 30 === 0 ? 300 : 1 + (i % 9);
    p.sadd(`trace:${i}`, ...Array.from({ length: n }, (_, m) => `job-${i}-${m}`));
    add('set');
  }
  for (let i = 0; i < 300; i++) {
    const n = i % 40 === 0 ? 200 : 1 + (i % 5);
    p.zadd(`wf:runs:${i}`, ...Array.from({ length: n }, (_, m) => [String(1_700_000_000 + m), `run-${i}-${m}`]).flat());
    if (i % 10 === 0) p.pexpire(`wf:runs:${i}`, hour);
    add('zset');
  }
  await p.exec();
  for (let i = 0; i < 60; i++) {
    const key = `mem:${i}:events`;
    for (let e = 0; e < 5; e++) await redis.xadd(key, '*', 'event', `e${e}`, 'job', `${i}`);
    if (i % 3 === 0) {
      await redis.xgroup('CREATE', key, 'readers', '0');
      await redis.xreadgroup('GROUP', 'readers', 'c1', 'COUNT', 2, 'STREAMS', key, '>');
    }
    add('stream');
  }
  // A second database: standalone backups cover every non-empty db.
  const db1 = redis.duplicate({ db: 1 });
  await db1.set('cfg:system:default', JSON.stringify({ data: { pools: {} } }));
  db1.disconnect();
  add('string');
  return seeded;
}

async function seedStreams(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const twoMin = 120_000_000_000;
  await jsm.streams.add({ name: 'CORDUM_SYS', subjects: ['sys.>'], storage: StorageType.File, duplicate_window: twoMin });
  await jsm.streams.add({ name: 'CORDUM_JOBS', subjects: ['job.>', 'worker.*.jobs'], storage: StorageType.File, duplicate_window: twoMin });
  const js = jetstream(nc);
  const publish = async (n: number, subject: (i: number) => string, body: (i: number) => string) => {
    for (let start = 0; start < n; start += 500) {
      const batch: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(n, start + 500); i++) batch.push(js.publish(subject(i), body(i)));
      await Promise.all(batch);
    }
  };
  await publish(SYS_MESSAGES, (i) => (i % 2 ? 'sys.job.submit' : 'sys.job.result'), (i) => JSON.stringify({ job_id: `j${i}`, pad: 'p'.repeat(i % 200) }));
  await publish(JOBS_MESSAGES, (i) => (i % 4 ? 'job.default' : 'worker.w1.jobs'), (i) => `job-request-${i}`);
  // Durable consumers with ack state: the restore must bring back their positions.
  for (const [name, filter] of [
    ['dur_cordum-scheduler__sys_job_submit', 'sys.job.submit'],
    ['dur_cordum-workflow-engine__sys_job_result', 'sys.job.result'],
  ] as const) {
    await jsm.consumers.add('CORDUM_SYS', { durable_name: name, filter_subject: filter, ack_policy: AckPolicy.Explicit });
    const c = await js.consumers.get('CORDUM_SYS', name);
    const msgs = await c.fetch({ max_messages: 25, expires: 2000 });
    let n = 0;
    for await (const m of msgs) {
      if (n++ < 20) m.ack(); // 5 left pending
    }
  }
  await nc.flush();
}

/**
 * Logical backups into numbered folders under dir() (read when called: test files create their
 * folder in beforeAll), and the records of one db section read back.
 */
export function logicalBackups(dir: () => string) {
  let runs = 0;
  return {
    async backup(client: Redis, opts: Partial<Parameters<typeof backupRedisLogical>[1]> = {}): Promise<{ res: RedisBackupResult; root: string }> {
      const root = join(dir(), `b${runs++}`);
      const res = await backupRedisLogical(redisSource(client), { root, ...opts });
      return { res, root };
    },
    async records(root: string, section: RedisDbSection): Promise<RedisRecord[]> {
      const out: RedisRecord[] = [];
      for await (const r of readRecords(join(root, section.file), section.file)) out.push(r);
      return out;
    },
  };
}
