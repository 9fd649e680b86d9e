// The binary logical dump (.rdump): round trip, framing errors that name file, record and offset,
// format /1 JSONL still readable, and a backup/restore round trip with values larger than a socket
// read or a file read chunk (replies and records split across buffers).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type ManagedServer } from '../../helpers/processes.js';
import { ArchiveError, RDUMP_HEADER, RecordChunker, encodeEnd, encodeRecords, recordKeyLabel, type RedisRecord } from '../../helpers/backup/archive.js';
import { backupRedisLogical, recordBatches, redisSource, restoreRedisLogical } from '../../helpers/backup/redis-logical.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cordum-rb-format-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x61);
const recs = [
  { key: Buffer.from('job:1'), type: Buffer.from('string'), p: -1, e: -1, v: Buffer.from([0, 1, 2, 3]) },
  { key: Buffer.from([0x62, 0xff, 0x00]), type: Buffer.from('hash'), p: 5000, e: 1_700_000_005_000, v: big },
  { key: Buffer.from('ctx:2'), type: Buffer.from('ReJSON-RL'), p: 12, e: 1_700_000_000_012, v: Buffer.from('payload') },
];

function file(name: string, ...parts: Buffer[]): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

async function readAll(path: string, rel: string, size = 2): Promise<RedisRecord[]> {
  const out: RedisRecord[] = [];
  for await (const b of recordBatches(path, rel, size)) out.push(...b);
  return out;
}

async function failure(path: string, rel: string): Promise<ArchiveError> {
  const err = await readAll(path, rel).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArchiveError);
  expect((err as ArchiveError).code).toBe('corrupt-record');
  return err as ArchiveError;
}

describe('binary logical dump format', () => {
  const body = Buffer.concat([RDUMP_HEADER, encodeRecords(recs), encodeEnd(recs.length)]);

  it('round-trips keys, types, TTLs and payloads, including a record larger than a read chunk', async () => {
    const got = await readAll(file('ok.rdump', body), 'redis/ok.rdump');
    expect(got.map((r) => [recordKeyLabel(r), r.t, r.p, r.e])).toEqual([
      ['job:1', 'string', -1, undefined],
      ['base64:Yv8A', 'hash', 5000, 1_700_000_005_000],
      ['ctx:2', 'ReJSON-RL', 12, 1_700_000_000_012],
    ]);
    expect(got[0]!.v).toEqual(Buffer.from([0, 1, 2, 3]));
    expect(got[1]!.v.equals(big)).toBe(true);
  });

  it('names the record and offset of a file cut inside a record', async () => {
    const cut = body.subarray(0, body.length - 30);
    const err = await failure(file('cut.rdump', cut), 'redis/cut.rdump');
    expect(err.message).toMatch(/^archive file redis\/cut\.rdump record 3 at byte \d+: truncated: \d+ bytes of an incomplete record at the end of the file$/);
  });

  it('detects a file cut at a record boundary by the missing end marker', async () => {
    const err = await failure(file('noend.rdump', RDUMP_HEADER, encodeRecords(recs.slice(0, 2))), 'redis/noend.rdump');
    expect(err.message).toBe('archive file redis/noend.rdump ends after 2 records without its end marker (truncated)');
  });

  it('rejects a wrong header, an overrunning key length, a wrong count and trailing bytes', async () => {
    expect((await failure(file('hdr.rdump', Buffer.from('{"k":"x"}\n')), 'redis/hdr.rdump')).message).toMatch(/does not start with the "CRBKRD2\\n" header/);
    const bad = Buffer.from(body);
    // Key length field of the first record: 8 header + 4 length + 1 + 6 ("string") + 16.
    bad.writeUInt32LE(0x7fffffff, 8 + 4 + 1 + 6 + 16);
    expect((await failure(file('klen.rdump', bad), 'redis/klen.rdump')).message).toBe(`archive file redis/klen.rdump record 1 at byte 8: key length ${0x7fffffff} overruns the record`);
    const count = await failure(file('count.rdump', RDUMP_HEADER, encodeRecords(recs), encodeEnd(5)), 'redis/count.rdump');
    expect(count.message).toMatch(/record 4 at byte \d+: end marker says 5 records, the file holds 3/);
    const trailing = await failure(file('trail.rdump', body, Buffer.from('xx')), 'redis/trail.rdump');
    expect(trailing.message).toMatch(/has 2 bytes after its end marker at byte \d+/);
  });

  it('still reads format /1 JSONL dumps', async () => {
    const lines = [
      JSON.stringify({ k: 'a:1', t: 'string', p: -1, v: Buffer.from('x').toString('base64') }),
      JSON.stringify({ kb: Buffer.from([0xff]).toString('base64'), t: 'set', p: 10, e: 99, v: Buffer.from('y').toString('base64') }),
    ];
    const got = await readAll(file('old.jsonl', Buffer.from(lines.join('\n') + '\n')), 'redis/old.jsonl');
    expect(got.map((r) => [recordKeyLabel(r), r.t, r.p, r.e, r.v.toString()])).toEqual([
      ['a:1', 'string', -1, undefined, 'x'],
      ['base64:/w==', 'set', 10, 99, 'y'],
    ]);
    writeFileSync(join(dir, 'bad.jsonl'), 'not json\n');
    expect((await failure(join(dir, 'bad.jsonl'), 'redis/bad.jsonl')).message).toMatch(/^archive file redis\/bad\.jsonl line 1 is not a valid record/);
  });
});

describe('record chunks reused once written', () => {
  it('a chunk serves again only after the writer is done with it: the bytes written are the records', async () => {
    // 300 records of 100-400 bytes through 1 KB chunks, flushed every 7 records as a backup
    // flushes per batch. The writer holds what it is given and copies it out later, in order, as
    // a file stream does; a chunk reused too early would show in the copied bytes.
    const many = Array.from({ length: 300 }, (_, i) => ({
      key: Buffer.from(`k:${i}`),
      type: Buffer.from(i % 3 ? 'string' : 'hash'),
      p: i % 5 ? -1 : 1000 + i,
      e: i % 5 ? -1 : 1_700_000_000_000 + i,
      v: Buffer.alloc(100 + ((i * 37) % 300), i & 0xff),
    }));
    const held: Array<{ bytes: Buffer; written?: () => void }> = [];
    const out: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    const chunker = new RecordChunker((bytes, written) => void held.push({ bytes, written }), 1024, true);
    const writeSome = async () => {
      await new Promise((r) => setImmediate(r));
      for (const h of held.splice(0, 2)) {
        memory.add(h.bytes.buffer);
        out.push(Buffer.from(h.bytes));
        h.written?.();
      }
    };
    for (let i = 0; i < many.length; i++) {
      const r = many[i]!;
      chunker.add(r.type, r.p, r.e, r.key, 0, r.key.length, r.v, 0, r.v.length);
      if (i % 7 === 6) {
        chunker.flush();
        await writeSome();
      }
    }
    chunker.flush();
    while (held.length) await writeSome();
    expect(Buffer.concat(out).equals(encodeRecords(many))).toBe(true);
    expect(memory.size, 'chunks were reused').toBeLessThan(40);
  });
});

describe('logical backup and restore round trip', () => {
  let a: ManagedServer;
  let b: ManagedServer;
  let src: Redis;
  let dst: Redis;
  beforeAll(async () => {
    [a, b] = await Promise.all([startRedis({ persistence: false }), startRedis({ persistence: false })]);
    src = new Redis(a.port, '127.0.0.1');
    dst = new Redis(b.port, '127.0.0.1');
    const p = src.pipeline();
    for (let i = 0; i < 3000; i++) p.set(`k:${i}`, `v${i}`);
    p.set('huge:string', Buffer.alloc(2 * 1024 * 1024 + 3, 0x62));
    p.rpush('huge:list', ...Array.from({ length: 5000 }, (_, i) => `item-${i}-${'x'.repeat(200)}`));
    p.hset('h:ttl', { a: '1' });
    p.pexpire('h:ttl', 3_600_000);
    await p.exec();
  }, 30_000);
  afterAll(async () => {
    src?.disconnect();
    dst?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('restores every key with its value and TTL', async () => {
    const root = join(dir, 'roundtrip');
    const res = await backupRedisLogical(redisSource(src), { root });
    const [section] = res.dbs;
    expect(section).toMatchObject({ db: 0, keys: 3003, file: `redis/127.0.0.1-${a.port}.db0.rdump`, vanished: 0 });
    expect(section!.by_type).toEqual({ string: 3001, list: 1, hash: 1 });
    expect(readFileSync(join(root, section!.file)).length).toBe(res.files[section!.file]!.bytes);
    const restored = await restoreRedisLogical(dst, { root, dbs: res.dbs });
    expect(restored).toMatchObject({ restored: 3003, expired_skipped: 0, replaced: 0 });
    expect(await dst.dbsize()).toBe(3003);
    for (const key of ['k:0', 'k:2999', 'huge:string', 'huge:list', 'h:ttl']) {
      expect((await dst.dumpBuffer(key))!.equals((await src.dumpBuffer(key))!), key).toBe(true);
    }
    const ttl = await dst.pttl('h:ttl');
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(await dst.pttl('k:0')).toBe(-1);
  });
});
