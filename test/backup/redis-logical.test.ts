// The logical Redis backup's own promises, on a real redis-server: every key SCAN finds is in the
// archive exactly as DUMP gave it, however the keys fall into SCAN replies and batches; keys deleted
// or changed while the backup runs are either captured in one of their states or counted as
// vanished, never half-written; binary keys and values (RESP-looking bytes, empty key, values larger
// than a socket read) come through byte for byte; and the ioredis path (Sentinel, custom connectors)
// writes the same archive as the raw RESP path. On a cluster every master is scanned and dumped over
// connections of its own, at the same time, and the archive holds each key once; a master lost
// mid-backup fails the backup with its name while the others stop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import * as standaloneModule from 'ioredis/built/connectors/StandaloneConnector.js';
import { startRedis, type ManagedServer } from '../../helpers/processes.js';
import { logicalBackups } from './fixtures.js';
import { PrefixCounter, countPrefix, recordKeyLabel, type RedisRecord } from '../../helpers/backup/archive.js';
import { NODE_CONCURRENCY, redisSource, restoreRedisLogical, type RedisBackupResult } from '../../helpers/backup/redis-logical.js';

/** ioredis' own standalone connector, passed as a custom Connector (CommonJS default export). */
const StandaloneConnector = ((m: { default: unknown }) => (m.default as { default?: unknown }).default ?? m.default)(standaloneModule as { default: unknown });

let dir: string;
let server: ManagedServer;
let redis: Redis;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cordum-rb-logical-'));
  server = await startRedis({ persistence: false });
  redis = new Redis(server.port, '127.0.0.1');
}, 30_000);
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const { backup, records } = logicalBackups(() => dir);

/** key (hex) → DUMP payload, for every key of the current db. */
async function dumpAll(client: Redis): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scanBuffer(cursor, 'COUNT', 1000);
    cursor = String(next);
    const p = client.pipeline();
    for (const k of keys) p.dumpBuffer(k);
    const dumps = (await p.exec()) ?? [];
    keys.forEach((k, i) => {
      const v = dumps[i]![1] as Buffer | null;
      if (v) out.set(k.toString('hex'), v);
    });
  } while (cursor !== '0');
  return out;
}

describe('logical backup: the key set and the values', () => {
  beforeAll(async () => {
    await redis.flushall();
    const p = redis.pipeline();
    for (let i = 0; i < 12_000; i++) p.set(`job:state:${i}`, `v${i}`);
    for (let i = 0; i < 500; i++) p.hset(`job:meta:${i}`, { state: 'SUCCEEDED', n: String(i) });
    for (let i = 0; i < 300; i++) p.sadd(`trace:${i}`, 'a', 'b', String(i));
    await p.exec();
  });

  // Batches of 7 to 64 keys against SCAN replies of ~1000: batches cut SCAN replies in the middle
  // and span two of them, the cases where a key could be skipped or sent twice.
  for (const sizing of [undefined, { min: 7, max: 64, maxBatchBytes: 4096 }]) {
    it(`archives every key exactly once with its DUMP payload (${sizing ? 'batches of 7-64 keys' : 'default batches'})`, async () => {
      const { res, root } = await backup(redis, sizing ? { sizing } : {});
      const want = await dumpAll(redis);
      const [section] = res.dbs;
      const got = await records(root, section!);
      expect(section!.keys).toBe(12_800);
      expect(got.length).toBe(12_800);
      const seen = new Map(got.map((r) => [r.key.toString('hex'), r]));
      expect(seen.size, 'no key twice').toBe(got.length);
      expect([...seen.keys()].sort()).toEqual([...want.keys()].sort());
      const wrong = [...seen].filter(([k, r]) => !r.v.equals(want.get(k)!)).map(([k]) => Buffer.from(k, 'hex').toString());
      expect(wrong, 'keys whose archived payload differs from DUMP').toEqual([]);
      expect(section!.by_type).toEqual({ string: 12_000, hash: 500, set: 300 });
      expect(section!.by_prefix).toEqual({ job: 12_500, trace: 300 });
    });
  }
});

describe('logical backup: an archive of many MB', () => {
  // ~12 MB of records: a dozen 1 MB record chunks (reused once written), ~40 SCAN replies whose key
  // blocks are reused once dumped (with small batches, a block is dumped over several batches) and
  // background fdatasyncs every 4 MB while batches still arrive.
  beforeAll(async () => {
    await redis.flushall();
    const p = redis.pipeline();
    // Random hex, so DUMP's LZF compression does not shrink the values.
    for (let i = 0; i < 40_000; i++) p.set(`big:${i}`, randomBytes(150).toString('hex'));
    await p.exec();
  });

  for (const sizing of [undefined, { min: 50, max: 300, maxBatchBytes: 1 << 20 }]) {
    it(`holds every key with its DUMP payload (${sizing ? 'batches of 50-300 keys' : 'default batches'})`, async () => {
      const { res, root } = await backup(redis, sizing ? { sizing } : {});
      const [section] = res.dbs;
      expect(Object.values(res.files)[0]!.bytes).toBeGreaterThan(12 << 20);
      const want = await dumpAll(redis);
      const got = await records(root, section!);
      expect(got.length).toBe(40_000);
      expect(new Set(got.map((r) => r.key.toString('hex'))).size, 'no key twice').toBe(40_000);
      const wrong = got.filter((r) => !r.v.equals(want.get(r.key.toString('hex')) ?? Buffer.alloc(0))).map((r) => r.key.toString());
      expect(wrong, 'keys whose archived payload differs from DUMP').toEqual([]);
    });
  }
});

describe('logical backup: keys deleted or changed while it runs', () => {
  it('captures each key in one of its states or counts it as vanished, and every untouched key exactly', async () => {
    await redis.flushall();
    const p = redis.pipeline();
    for (let i = 0; i < 6000; i++) {
      p.set(`keep:${i}`, `k${i}`);
      p.set(`del:${i}`, `d${i}`);
      p.set(`chg:${i}`, `old${i}`);
    }
    await p.exec();
    const writer = redis.duplicate();
    let churn: Promise<unknown> | undefined;
    // Small batches, so most keys are still to be dumped when the first batch reports; the churn
    // then races the rest of the backup.
    const { res, root } = await backup(redis, {
      sizing: { min: 10, max: 50, maxBatchBytes: 1 << 20 },
      onProgress: () => {
        churn ??= (async () => {
          const q = writer.pipeline();
          for (let i = 0; i < 6000; i++) q.del(`del:${i}`).set(`chg:${i}`, `new${i}`);
          await q.exec();
        })();
      },
    });
    await churn;
    writer.disconnect();
    const [section] = res.dbs;
    const got = await records(root, section!);
    expect(got.length).toBe(section!.keys);
    const byKey = new Map(got.map((r) => [recordKeyLabel(r), r]));
    expect(byKey.size, 'no key twice').toBe(got.length);
    // Restore to read values back through Redis itself.
    const scratch = await startRedis({ persistence: false });
    const dst = new Redis(scratch.port, '127.0.0.1');
    try {
      await restoreRedisLogical(dst, { root, dbs: res.dbs });
      const idx = Array.from({ length: 6000 }, (_, i) => i);
      const keep = await dst.mget(idx.map((i) => `keep:${i}`));
      const chg = await dst.mget(idx.map((i) => `chg:${i}`));
      const del = await dst.mget(idx.map((i) => `del:${i}`));
      expect(keep).toEqual(idx.map((i) => `k${i}`));
      let deletedSeen = 0;
      for (const i of idx) {
        expect([`old${i}`, `new${i}`]).toContain(chg[i]);
        if (del[i] !== null) {
          expect(del[i]).toBe(`d${i}`);
          deletedSeen++;
        }
      }
      // Most del: keys were found by SCAN but gone by their DUMP: counted, not archived.
      expect(section!.vanished).toBeGreaterThan(0);
      expect(section!.keys).toBe(12_000 + deletedSeen);
      expect(section!.keys + section!.vanished).toBeLessThanOrEqual(18_000);
      expect(section!.by_prefix.keep).toBe(6000);
      expect(section!.by_prefix.chg).toBe(6000);
    } finally {
      dst.disconnect();
      await scratch.stop();
    }
  });
});

describe('logical backup: binary keys and values', () => {
  const keys = [
    Buffer.alloc(0), // the empty key
    Buffer.from('$5\r\nCRLF:\r\n*2\r\n'), // RESP-looking bytes inside a key
    Buffer.from([0x62, 0xff, 0x00, 0x3a, 0x0d, 0x0a]),
    Buffer.from('plain'),
  ];
  const values = [Buffer.from([0, 13, 10, 36, 255]), Buffer.alloc(0), Buffer.alloc(200_000, 0xfe), Buffer.from('-ERR not an error\r\n')];

  it('restores every byte of keys and values that look like RESP, are empty, or span socket reads', async () => {
    await redis.flushall();
    for (let i = 0; i < keys.length; i++) await redis.set(keys[i]!, values[i]!);
    await redis.pexpire(keys[1]!, 3_600_000);
    const { res, root } = await backup(redis);
    const [section] = res.dbs;
    expect(section!.keys).toBe(keys.length);
    expect(section!.by_prefix).toEqual({ '(none)': 2, '$5\r\nCRLF': 1, 'base64:Yv8A': 1 });
    const got = await records(root, section!);
    expect(got.map((r) => r.key.toString('hex')).sort()).toEqual(keys.map((k) => k.toString('hex')).sort());
    const scratch = await startRedis({ persistence: false });
    const dst = new Redis(scratch.port, '127.0.0.1');
    try {
      const r = await restoreRedisLogical(dst, { root, dbs: res.dbs });
      expect(r.restored).toBe(keys.length);
      for (let i = 0; i < keys.length; i++) expect((await dst.getBuffer(keys[i]!))!.equals(values[i]!), keys[i]!.toString('hex')).toBe(true);
      expect(await dst.pttl(keys[1]!)).toBeGreaterThan(3_500_000);
      expect(await dst.pttl(keys[0]!)).toBe(-1);
    } finally {
      dst.disconnect();
      await scratch.stop();
    }
  });
});

describe('logical backup through ioredis (Sentinel, custom connectors)', () => {
  it('writes the same records as the raw RESP path', async () => {
    await redis.flushall();
    const p = redis.pipeline();
    for (let i = 0; i < 3000; i++) p.set(`k:${i}`, `v${i}`, 'PX', 3_600_000 + i);
    p.rpush('list:1', 'a', 'b');
    p.set(Buffer.from([0xff, 0x3a]), Buffer.from([0]));
    await p.exec();
    const viaIoredis = new Redis({ host: '127.0.0.1', port: server.port, Connector: StandaloneConnector as never });
    try {
      const a = await backup(redis);
      const b = await backup(viaIoredis, { sizing: { min: 10, max: 300, maxBatchBytes: 1 << 20 } });
      const norm = async (x: { res: RedisBackupResult; root: string }) =>
        (await records(x.root, x.res.dbs[0]!))
          .map((r) => ({ key: r.key.toString('hex'), t: r.t, p: r.p > 0, v: r.v.toString('hex') }))
          .sort((m, n) => (m.key < n.key ? -1 : 1));
      expect(await norm(b)).toEqual(await norm(a));
      expect(b.res.dbs[0]!.by_type).toEqual({ string: 3001, list: 1 });
      expect(b.res.dbs[0]!.by_prefix).toEqual(a.res.dbs[0]!.by_prefix);
    } finally {
      viaIoredis.disconnect();
    }
  });
});

describe('prefix counts', () => {
  it('PrefixCounter gives what countPrefix gives, past the cap and for binary and colon-less keys', () => {
    const keys: Buffer[] = [];
    for (let i = 0; i < 3000; i++) keys.push(Buffer.from(`p${i % 1200}:x:${i}`));
    keys.splice(500, 0, Buffer.from('nocolon'), Buffer.from([0xc3, 0x28, 0x3a, 1]), Buffer.from('(other):y'), Buffer.from('(none):z'), Buffer.from('é:1'));
    keys.push(Buffer.from('late-nocolon'), Buffer.from('p5:again'));
    const want: Record<string, number> = {};
    const counter = new PrefixCounter();
    for (const k of keys) {
      countPrefix(want, k);
      // Keys sit inside a larger buffer, as they do in a SCAN reply.
      const host = Buffer.concat([Buffer.from('xx'), k, Buffer.from('yy')]);
      counter.add(host, 2, 2 + k.length);
    }
    expect(Object.keys(want).length, 'the cap was reached').toBe(1000);
    expect(want['(other)'], 'keys past the cap counted under (other)').toBeGreaterThan(100);
    expect(counter.result()).toEqual(want);
  });
});

/** A 3-master Redis Cluster on free ports (no replicas), built with redis-cli --cluster create. */
async function startCluster(): Promise<{ servers: ManagedServer[]; stop(): Promise<void> }> {
  const servers = await Promise.all(
    [0, 1, 2].map(() => startRedis({ persistence: false, extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'] })),
  );
  const stop = async () => void (await Promise.all(servers.map((s) => s.stop())));
  try {
    execFileSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe', timeout: 30_000 });
    const deadline = Date.now() + 20_000;
    for (const s of servers) {
      const c = new Redis(s.port, '127.0.0.1');
      try {
        while (!/cluster_state:ok/.test(await c.cluster('INFO'))) {
          if (Date.now() > deadline) throw new Error(`cluster node ${s.port} not ok within 20 s`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        c.disconnect();
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { servers, stop };
}

describe('logical backup of a Redis Cluster', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>>;
  let client: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
    client = new Cluster([{ host: '127.0.0.1', port: cluster.servers[0]!.port }]);
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    for (let i = 0; i < 6000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => client.set(`job:state:${i + j}`, `v${i + j}`, 'PX', 3_600_000)));
    }
  }, 60_000);
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it(`backs up every master at once (up to ${NODE_CONCURRENCY}), each key exactly once, and restores them all`, async () => {
    const masters = redisSource(client).nodes;
    expect(masters.length).toBe(3);
    // The second master is paused (every command waits) for longer than a whole backup of the
    // others takes: backed up at once, the third reports progress before the second; one master
    // after the other, it could not start before the second was done. (Not the first master: the
    // backup asks it for the server version before any master starts.)
    const paused = masters[1]!;
    const pauser = new Redis(paused.client.options.port!, '127.0.0.1');
    await pauser.call('CLIENT', 'PAUSE', '1500', 'ALL');
    pauser.disconnect();
    const firstProgress: string[] = [];
    const { res, root } = await backup(client as unknown as Redis, {
      sizing: { min: 10, max: 100, maxBatchBytes: 1 << 20 },
      onProgress: (p) => {
        if (!firstProgress.includes(p.node)) firstProgress.push(p.node);
      },
    });
    expect(res.cluster).toBe(true);
    expect(res.dbs.map((d) => d.node).sort()).toEqual(masters.map((m) => m.label).sort());
    expect(firstProgress.length).toBe(3);
    expect(firstProgress.indexOf(masters[2]!.label), 'the third master made progress while the second was paused').toBeLessThan(firstProgress.indexOf(paused.label));
    const all: RedisRecord[] = [];
    for (const section of res.dbs) {
      const recs = await records(root, section);
      expect(recs.length).toBe(section.keys);
      expect(section.keys, `${section.node} holds a share of the keys`).toBeGreaterThan(0);
      all.push(...recs);
    }
    const keys = all.map(recordKeyLabel);
    expect(new Set(keys).size, 'no key in two masters\' files').toBe(keys.length);
    expect(keys.sort()).toEqual(Array.from({ length: 6000 }, (_, i) => `job:state:${i}`).sort());
    const scratch = await startRedis({ persistence: false });
    const dst = new Redis(scratch.port, '127.0.0.1');
    try {
      expect((await restoreRedisLogical(dst, { root, dbs: res.dbs })).restored).toBe(6000);
      expect(await dst.get('job:state:4321')).toBe('v4321');
      expect(await dst.pttl('job:state:4321')).toBeGreaterThan(3_000_000);
    } finally {
      dst.disconnect();
      await scratch.stop();
    }
  }, 60_000);

  it('the SYNC path: one SYNC per master, each key once, the same records as the SCAN path', async () => {
    const masters = redisSource(client).nodes;
    for (const m of masters) await m.client.config('SET', 'repl-diskless-sync-delay', '0');
    try {
      const norm = async (x: { res: RedisBackupResult; root: string }) => {
        const out: string[] = [];
        for (const section of x.res.dbs) {
          expect(section.db).toBe(0);
          for (const r of await records(x.root, section)) out.push(`${section.node} ${r.key.toString('hex')} ${r.t} ${r.p > 3_000_000} ${r.v.toString('hex')}`);
        }
        return out.sort();
      };
      const viaRdb = await backup(client as unknown as Redis, { path: 'rdb' });
      expect(viaRdb.res.nodes.map((n) => n.source)).toEqual(['rdb', 'rdb', 'rdb']);
      expect(viaRdb.res.dbs.map((d) => d.source)).toEqual(['rdb', 'rdb', 'rdb']);
      const viaScan = await backup(client as unknown as Redis, { path: 'scan' });
      const a = await norm(viaRdb);
      expect(a.length).toBe(6000);
      expect(a).toEqual(await norm(viaScan));
    } finally {
      for (const m of masters) await m.client.config('SET', 'repl-diskless-sync-delay', '5');
    }
  }, 60_000);

  // Waiting: the others' SYNC waits out repl-diskless-sync-delay (nothing but keep-alive newlines
  // arrive, so only the abort can close it early). Streaming: their forks send 2 ms per key.
  for (const phase of ['waiting for its fork', 'streaming its RDB'] as const) {
  it(`a master that fails while the others' SYNC is ${phase} closes their SYNC connections and ends their forks`, async () => {
    // Not the first master: the backup asks that one for the server version before any starts.
    const [first, victimNode, third] = redisSource(client).nodes;
    const others = [first!, third!];
    const victim = new Redis(victimNode!.client.options.port!, '127.0.0.1');
    // The victim refuses SYNC (falls back to SCAN) and DUMP (fails), once a pause of 1 s is over;
    // by then the others' SYNC is waiting 5 s for its fork, or streaming for ~4 s.
    await victim.call('ACL', 'SETUSER', 'default', '-replconf', '-dump');
    const streamingPhase = phase === 'streaming its RDB';
    for (const o of others) await o.client.config('SET', 'repl-diskless-sync-delay', streamingPhase ? '0' : '5');
    for (const o of others) await o.client.config('SET', 'rdb-key-save-delay', streamingPhase ? '2000' : '0');
    await victim.call('CLIENT', 'PAUSE', '1000', 'ALL');
    const streaming = async () => {
      for (const o of others) if (!/connected_slaves:1/.test(await o.client.info('replication'))) return false;
      return true;
    };
    let sawStreaming = false;
    try {
      const started = Date.now();
      const pending = backup(client as unknown as Redis, { path: 'rdb' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      for (let i = 0; i < 100 && !sawStreaming; i++) {
        sawStreaming = await streaming();
        await new Promise((r) => setTimeout(r, 10));
      }
      const err = await pending;
      const failedAt = Date.now();
      // The victim fails after its 1 s pause; the others' SYNC would take 4-5 s more unless closed.
      expect(failedAt - started, 'the backup ended soon after the victim failed').toBeLessThan(3000);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/NOPERM/);
      expect(sawStreaming, 'the other masters had their SYNC connection').toBe(true);
      for (const o of others) {
        for (;;) {
          const repl = await o.client.info('replication');
          const pers = await o.client.info('persistence');
          if (/connected_slaves:0/.test(repl) && /rdb_bgsave_in_progress:0/.test(pers)) break;
          expect(Date.now() - failedAt, `${o.label}: SYNC connection and fork gone`).toBeLessThan(2000);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } finally {
      await victim.call('ACL', 'SETUSER', 'default', '+@all');
      victim.disconnect();
      for (const o of others) await o.client.config('SET', 'rdb-key-save-delay', '0');
      for (const o of others) await o.client.config('SET', 'repl-diskless-sync-delay', '5');
    }
  }, 60_000);
  }

  it('a master that fails mid-backup (DUMP refused) fails the backup naming it and its key; the other masters stop', async () => {
    const [first, ...others] = redisSource(client).nodes;
    const victim = new Redis(first!.client.options.port!, '127.0.0.1');
    const victimLabel = first!.label;
    const progress = new Map<string, number>();
    await victim.call('ACL', 'SETUSER', 'default', '-dump');
    // The other masters are paused until well after the victim's first DUMP failed, so what they
    // do once they resume shows whether they stop (left running, each would get all its ~2000 keys).
    for (const o of others) {
      const pauser = new Redis(o.client.options.port!, '127.0.0.1');
      await pauser.call('CLIENT', 'PAUSE', '1500', 'ALL');
      pauser.disconnect();
    }
    try {
      const err = await backup(client as unknown as Redis, {
        sizing: { min: 10, max: 20, maxBatchBytes: 1 << 20 },
        onProgress: (p) => progress.set(p.node, p.keys),
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(new RegExp(`^redis backup ${victimLabel} db0: reading key job:state:\\d+ failed: NOPERM`));
      expect(progress.has(victimLabel), 'the failing master wrote nothing').toBe(false);
      // The others stopped at their next batch: neither got through its ~2000 keys.
      for (const [node, keys] of progress) expect(keys, node).toBeLessThan(1500);
    } finally {
      await victim.call('ACL', 'SETUSER', 'default', '+@all');
      victim.disconnect();
    }
  }, 60_000);
});
