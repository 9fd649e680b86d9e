// The wire-level pieces on their own: RDB fetch (both transfer modes) checked by redis-check-rdb,
// CRC64, batch sizing, snapshot ack parsing, and a snapshot the server itself rejects on restore.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startNats, startRedis, findBinary, type ManagedServer } from '../../helpers/processes.js';
import { Crc64, fetchRdb, validateRdb } from '../../helpers/backup/redis-rdb.js';
import { DEFAULT_SIZING, nextBatchSize } from '../../helpers/backup/redis-logical.js';
import { parseAckSubject, snapshotStream } from '../../helpers/backup/jetstream-snapshot.js';
import { checkS2Framing, restoreStream } from '../../helpers/backup/jetstream-restore.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cordum-rb-proto-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('batch sizing keeps one batch within the byte budget', () => {
  const s = { min: 10, max: 1000, maxBatchBytes: 1000 };
  it('halves after an oversized batch, grows after a small one, stays in bounds', () => {
    expect(nextBatchSize(500, 5000, s)).toBe(250);
    expect(nextBatchSize(500, 600, s)).toBe(500);
    expect(nextBatchSize(500, 100, s)).toBe(750);
    expect(nextBatchSize(900, 0, s)).toBe(1000);
    expect(nextBatchSize(12, 1e9, s)).toBe(10);
    expect(DEFAULT_SIZING.maxBatchBytes).toBeGreaterThan(0);
  });
  it('converges to the minimum when every key is huge', () => {
    let n = 1000;
    for (let i = 0; i < 20; i++) n = nextBatchSize(n, 64 * 1024 * 1024, DEFAULT_SIZING);
    expect(n).toBe(DEFAULT_SIZING.min);
  });
});

describe('CRC64 (Jones) and snapshot ack subjects', () => {
  it('matches the reference check value', () => {
    expect(new Crc64().update(Buffer.from('123456789')).digest()).toBe(0xe9c6d914c4b8d9can);
  });
  it('parses chunk size and index from the ack subject', () => {
    expect(parseAckSubject('$JS.SNAPSHOT.ACK.ORDERS.7nx6abc.43450.2')).toEqual({ bytes: 43450, index: 2 });
    expect(parseAckSubject('_INBOX.xyz')).toBeUndefined();
  });
});

describe('RDB over the replication protocol', () => {
  let server: ManagedServer;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis({ persistence: false, extraArgs: ['--repl-diskless-sync-delay', '0'] });
    redis = new Redis(server.port, '127.0.0.1');
    const p = redis.pipeline();
    for (let i = 0; i < 2000; i++) p.set(`k:${i}`, `value-${i}`);
    p.hset('h:1', { a: '1', b: '2' });
    await p.exec();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  for (const mode of ['diskless', 'disk'] as const) {
    it(`fetches a valid RDB in ${mode} mode`, async () => {
      const file = join(dir, `${mode}.rdb`);
      const res = await fetchRdb({ host: '127.0.0.1', port: server.port, file, mode, psync: mode === 'disk', timeoutMs: 20_000 });
      expect(res.mode).toBe(mode);
      expect(res.rdb_version).toBe(10);
      expect(readFileSync(file).subarray(0, 9).toString()).toBe('REDIS0010');
      expect(readFileSync(file).length).toBe(res.bytes);
      if (mode === 'disk') expect(res.repl_offset).toBeTypeOf('number');
      const check = findBinary('redis-check-rdb');
      if (check) {
        const out = execFileSync(check, [file]).toString();
        expect(out).toContain('RDB looks OK');
        expect(out).toContain('2001 keys read');
      }
    });
  }

  it('rejects a truncated and a corrupted RDB', async () => {
    const good = readFileSync(join(dir, 'diskless.rdb'));
    writeFileSync(join(dir, 'cut.rdb'), good.subarray(0, good.length - 100));
    await expect(validateRdb(join(dir, 'cut.rdb'))).rejects.toThrow(/no EOF opcode|checksum mismatch/);
    const bad = Buffer.from(good);
    bad[200] ^= 0xff;
    writeFileSync(join(dir, 'bad.rdb'), bad);
    await expect(validateRdb(join(dir, 'bad.rdb'))).rejects.toThrow(/RDB checksum mismatch/);
  });
});

describe('JetStream snapshot and restore', () => {
  let a: ManagedServer;
  let b: ManagedServer;
  let ncA: NatsConnection;
  let ncB: NatsConnection;
  beforeAll(async () => {
    [a, b] = await Promise.all([startNats(), startNats()]);
    ncA = await connect({ servers: a.url });
    ncB = await connect({ servers: b.url });
    await (await jetstreamManager(ncA)).streams.add({ name: 'S', subjects: ['s.>'], storage: StorageType.File });
    const js = jetstream(ncA);
    await Promise.all(Array.from({ length: 1500 }, (_, i) => js.publish(`s.${i % 3}`, `message ${i} ${'x'.repeat(i % 300)}`)));
  });
  afterAll(async () => {
    await ncA?.close();
    await ncB?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('names the server refusing a snapshot of a missing stream', async () => {
    await expect(snapshotStream(ncA, 'MISSING', { root: join(dir, 'js') })).rejects.toThrow(/snapshot of stream MISSING: .*stream not found/);
  });

  it('a truncated snapshot is refused by the server, and the error names stream and reason', async () => {
    const res = await snapshotStream(ncA, 'S', { root: join(dir, 'js') });
    const src = join(dir, 'js', res.section.dir);
    // Cut in the middle of a frame and upload it anyway (bypassing the framing check).
    const data = readFileSync(join(src, 'stream.tar.s2'));
    const cut = data.subarray(0, Math.floor(data.length / 2));
    const dst = join(dir, 'cut');
    mkdirSync(dst, { recursive: true });
    writeFileSync(join(dst, 'stream.tar.s2'), cut);
    copyFileSync(join(src, 'backup.json'), join(dst, 'backup.json'));
    await expect(checkS2Framing(join(dst, 'stream.tar.s2'), 'cut')).rejects.toThrow(/cut is truncated/);
    const outcome = await restoreStream(ncB, 'S', { dir: dst, finalTimeoutMs: 20_000 }).then(
      (r) => ({ ok: true as const, messages: Number(r.state.messages ?? 0) }),
      (e: Error) => ({ ok: false as const, message: e.message }),
    );
    // nats-server 2.9 unpacks only after the upload and names the broken compression.
    expect(outcome).toEqual({ ok: false, message: expect.stringMatching(/restore of stream S: server rejected the snapshot after upload: 500\/10062 restore failed: s2: corrupt input/) });
    // A full restore into the other server (after removing any partial stream) gives everything back.
    await (await jetstreamManager(ncB)).streams.delete('S').catch(() => undefined);
    const full = await restoreStream(ncB, 'S', { dir: src });
    expect(full.state).toMatchObject({ messages: 1500, first_seq: 1, last_seq: 1500 });
    await expect(restoreStream(ncB, 'S', { dir: src })).rejects.toThrow(/already exists on the target/);
  });
});
