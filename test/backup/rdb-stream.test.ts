// The logical backup's SYNC path on real redis-server 7.0.15: the RDB the server streams is parsed
// into the same .rdump records SCAN + PTTL + DUMP write, and for every key the record's payload is
// byte for byte what `DUMP key` answers, with the TTL PEXPIRETIME gives; restore into a second
// server gives identical data. Every type and encoding 7.0 writes (listpack and hashtable,
// skiplist, quicklist with compressed nodes, intset, LZF and plain strings, integer-encoded
// strings and keys, binary keys, empty values, streams with groups, PEL and consumers), values
// larger than a socket read and than a record chunk, several databases, keys already expired at
// the snapshot, functions, LRU and LFU opcodes. The parser gives the same records whatever the
// chunking of the bytes (down to one byte at a time). What the parser does not know (another RDB
// version, a module type, MODULE_AUX, broken bytes) and what the server refuses (ACL without
// @admin) make the node fall back to SCAN, with the same archive content and the server as it was.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freePort, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { logicalBackups } from './fixtures.js';
import { makeCertificates } from '../../sandbox/certs.js';
import { recordKeyLabel } from '../../helpers/backup/archive.js';
import { chooseBackupPath, rdbPaysOff, restoreRedisLogical, type RedisBackupResult } from '../../helpers/backup/redis-logical.js';
import { Crc64, fetchRdb } from '../../helpers/backup/redis-rdb.js';
import { RdbParseError, RdbRecordParser, lzfDecompress } from '../../helpers/backup/rdb-records.js';
import { canonicalValue } from '../../helpers/backup/verify.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cordum-rb-rdbstream-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { backup, records } = logicalBackups(() => dir);

/** key (hex) → {DUMP payload, PEXPIRETIME, TYPE} for every key of the client's current db. */
async function dumpAll(client: Redis): Promise<Map<string, { v: Buffer; at: number; t: string }>> {
  const out = new Map<string, { v: Buffer; at: number; t: string }>();
  let cursor = '0';
  do {
    const [next, keys] = await client.scanBuffer(cursor, 'COUNT', 1000);
    cursor = String(next);
    const p = client.pipeline();
    for (const k of keys) p.dumpBuffer(k).call('PEXPIRETIME', k).type(k);
    const res = (await p.exec()) ?? [];
    keys.forEach((k, i) => {
      const v = res[3 * i]![1] as Buffer | null;
      if (v) out.set(k.toString('hex'), { v, at: Number(res[3 * i + 1]![1]), t: String(res[3 * i + 2]![1]) });
    });
  } while (cursor !== '0');
  return out;
}

const BIG = randomBytes(3 << 20); // larger than a record chunk: written as the chunks it arrived in
const MID = randomBytes(100_000); // larger than a socket read: spans chunks, copied into a record chunk
const BIG_LZF = Buffer.from('xyz'.repeat(1 << 20));
const EXPIRED = ['exp:1', 'exp:2', 'exp:3'];

/** Every type and encoding Redis 7.0 writes, in dbs 0, 1 and 5 (a fixed content, so two servers get the same). */
async function populate(r: Redis): Promise<void> {
  await r.flushall();
  await r.call('FUNCTION', 'FLUSH');
  const p = r.pipeline();
  // Strings: short, integer-encoded (8/16/32 bit), too large for 32 bits, empty, LZF-compressible,
  // incompressible, binary, larger than a socket read, larger than a record chunk.
  p.set('s:short', 'hello');
  for (const [k, v] of [['s:i8', '-7'], ['s:i16', '12345'], ['s:i32', '2147483647'], ['s:i64', '9007199254740993'], ['s:lead0', '007']]) p.set(k!, v!);
  p.set('s:empty', '');
  p.set('s:lzf', 'abc'.repeat(400));
  p.set('s:rand', randomBytes(300).toString('hex'));
  p.set('s:bin', Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0x24, 0xfe]));
  p.set('s:mid', MID);
  p.set('s:big', BIG);
  p.set('s:big-lzf', BIG_LZF);
  // Keys: binary, integer-encoded, LZF-compressed (long and repetitive), empty.
  p.set(Buffer.from([0x6b, 0xff, 0x00, 0x3a, 0x00]), 'binary key');
  p.set('12345', 'integer key');
  p.set('-1', 'negative integer key');
  p.set(`k:${'y'.repeat(120)}`, 'compressed key');
  p.set('', 'empty key');
  // Lists: listpack node, many nodes (compressed in the middle with list-compress-depth 1), big elements.
  p.rpush('l:small', 'a', 'b', '1', '2', '');
  p.rpush('l:big', ...Array.from({ length: 20_000 }, (_, i) => `element-${i % 97}-${i}`));
  p.rpush('l:fat', randomBytes(9000), randomBytes(9000), 'x');
  // Sets: intset small and large, hashtable small and large.
  p.sadd('set:int', 1, 2, 3, -40000, 70000);
  p.sadd('set:int-big', ...Array.from({ length: 1000 }, (_, i) => i * 3));
  p.sadd('set:str', 'a', 'b', 'c');
  p.sadd('set:big', ...Array.from({ length: 5000 }, (_, i) => `m${i}`));
  // Hashes: listpack, hashtable by size, hashtable by value length.
  p.hset('h:small', { f1: 'v1', f2: '2', f3: '' });
  p.hset('h:big', Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, `v${i}`])));
  p.hset('h:longval', { f: 'v'.repeat(200) });
  // Sorted sets: listpack, skiplist with odd scores.
  p.zadd('z:small', 1, 'a', 2.5, 'b', -3, 'c');
  const zbig: Array<string | number> = [];
  for (let i = 0; i < 500; i++) zbig.push(i % 7 === 0 ? -i / 3 : i * 1e290, `member-${i}`);
  p.zadd('z:big', ...zbig, 'inf', 'top', '-inf', 'bottom');
  p.zadd('z:longmember', 1, 'm'.repeat(100));
  // Keys with a TTL.
  p.set('ttl:1', 'a', 'PX', 3_600_000);
  p.hset('ttl:hash', { a: '1' });
  p.pexpireat('ttl:hash', Date.now() + 86_400_000);
  p.set('ttl:short', 'x', 'PX', 600_000);
  await p.exec();
  // Streams: two groups, PEL entries, consumers (one without pending entries), deleted entries,
  // an empty stream with a group, a big stream of several listpack nodes.
  for (let i = 0; i < 60; i++) await r.xadd('st:1', '*', 'n', String(i), 'body', `entry ${i}`);
  await r.xgroup('CREATE', 'st:1', 'g1', '0');
  await r.xgroup('CREATE', 'st:1', 'g2', '0');
  await r.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', 5, 'STREAMS', 'st:1', '>');
  await r.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', 7, 'STREAMS', 'st:1', '>');
  await r.xreadgroup('GROUP', 'g2', 'carol', 'COUNT', 20, 'STREAMS', 'st:1', '>');
  await r.call('XGROUP', 'CREATECONSUMER', 'st:1', 'g2', 'idle-dave');
  const pending = (await r.xrange('st:1', '-', '+', 'COUNT', 3)).map(([id]) => id);
  await r.xack('st:1', 'g1', pending[0]!, pending[1]!);
  await r.xdel('st:1', pending[2]!);
  await r.xgroup('CREATE', 'st:empty', 'g', '$', 'MKSTREAM');
  const sp = r.pipeline();
  for (let i = 0; i < 5000; i++) sp.xadd('st:big', `${1000 + i}-${i % 3}`, 'field', `value-${i}`, 'other', String(i));
  await sp.exec();
  await r.call('FUNCTION', 'LOAD', "#!lua name=rdbtest\nredis.register_function('answer', function() return 42 end)");
  // Keys already expired at the snapshot, still in the dataset (active expiry off, never read).
  await r.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0');
  for (const k of EXPIRED) await r.set(k, 'gone', 'PX', 1);
  await new Promise((res) => setTimeout(res, 20));
  // Other databases.
  await r.select(1);
  await r.set('db1:a', 'one', 'PX', 5_000_000);
  await r.sadd('db1:set', 'x', 'y');
  await r.select(5);
  await r.hset('db5:h', { k: 'v' });
  await r.select(0);
}

function serverArgs(extra: string[]): string[] {
  return ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'yes', ...extra];
}

async function expectServerAsItWas(r: Redis, s: ManagedServer): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const repl = await r.info('replication');
    const pers = await r.info('persistence');
    if (/connected_slaves:0/.test(repl) && /rdb_bgsave_in_progress:0/.test(pers)) break;
    if (Date.now() > deadline) throw new Error(`the server still has a replica or a fork: ${repl} ${pers}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  expect(readdirSync(s.dir).filter((f) => f.endsWith('.rdb')), 'no dump.rdb written into the server dir').toEqual([]);
}

/** The archive's records of every db, checked against the server's DUMP/PEXPIRETIME/TYPE of each key. */
async function expectRecordsAreDumps(r: Redis, res: RedisBackupResult, root: string): Promise<number> {
  let checked = 0;
  for (const section of res.dbs) {
    await r.select(section.db);
    const want = await dumpAll(r);
    const got = await records(root, section);
    expect(got.length).toBe(section.keys);
    const keys = got.map((x) => x.key.toString('hex'));
    expect(new Set(keys).size, 'no key twice').toBe(keys.length);
    expect(keys.sort(), `db${section.db} key set`).toEqual([...want.keys()].sort());
    for (const rec of got) {
      const w = want.get(rec.key.toString('hex'))!;
      const label = `db${section.db} ${recordKeyLabel(rec)}`;
      expect(rec.v.equals(w.v), `${label}: payload equals DUMP (${rec.v.length} vs ${w.v.length} bytes)`).toBe(true);
      expect(rec.t, label).toBe(w.t);
      if (w.at < 0) {
        expect(rec.p, label).toBe(-1);
        expect(rec.e, label).toBeUndefined();
      } else {
        expect(Math.abs(rec.e! - w.at), `${label}: expiry ${rec.e} vs PEXPIRETIME ${w.at}`).toBeLessThan(50);
        expect(rec.e! - rec.p, `${label}: e - p is the snapshot time`).toBe(section.scan_started_ms);
        expect(rec.p).toBeGreaterThan(0);
      }
      checked++;
    }
  }
  await r.select(0);
  return checked;
}

describe('SYNC path: records equal DUMP byte for byte', () => {
  // A: compression on, LRU policy (IDLE opcodes), compressed quicklist nodes. B: compression off, LFU (FREQ opcodes).
  const variants = [
    { name: 'rdbcompression yes, LRU, list-compress-depth 1', args: ['--maxmemory-policy', 'allkeys-lru', '--list-compress-depth', '1'] },
    { name: 'rdbcompression no, LFU', args: ['--rdbcompression', 'no', '--maxmemory-policy', 'allkeys-lfu'] },
  ];
  for (const variant of variants) {
    describe(variant.name, () => {
      let server: ManagedServer;
      let scratch: ManagedServer;
      let r: Redis;
      beforeAll(async () => {
        [server, scratch] = await Promise.all([startRedis({ persistence: false, extraArgs: serverArgs(variant.args) }), startRedis({ persistence: false })]);
        r = new Redis(server.port, '127.0.0.1');
        await populate(r);
      });
      afterAll(async () => {
        r?.disconnect();
        await Promise.all([server?.stop(), scratch?.stop()]);
      });

      it('archives every key as DUMP gives it, with PEXPIRETIME, skips keys expired at the snapshot, and restores identical data', async () => {
        const progress: Array<{ source?: string; keys: number }> = [];
        const { res, root } = await backup(r, { path: 'rdb', onProgress: (p) => progress.push(p) });
        expect(res.nodes).toEqual([{ node: `127.0.0.1-${server.port}`, source: 'rdb', reason: 'SYNC was requested' }]);
        expect(res.dbs.map((d) => [d.db, d.source])).toEqual([
          [0, 'rdb'],
          [1, 'rdb'],
          [5, 'rdb'],
        ]);
        expect(res.dbs[0]!.expired_at_snapshot).toBe(EXPIRED.length);
        expect(progress.every((p) => p.source === 'rdb')).toBe(true);
        await expectServerAsItWas(r, server);
        const checked = await expectRecordsAreDumps(r, res, root);
        expect(checked).toBe(40);
        expect(res.dbs[0]!.by_type).toMatchObject({ string: expect.any(Number), list: 3, set: 4, hash: 4, zset: 3, stream: 3 });
        // Restore into an empty server: same content, same TTLs.
        const dst = new Redis(scratch.port, '127.0.0.1');
        try {
          const restored = await restoreRedisLogical(dst, { root, dbs: res.dbs });
          expect(restored.restored).toBe(checked);
          for (const section of res.dbs) {
            await r.select(section.db);
            await dst.select(section.db);
            for (const rec of await records(root, section)) {
              const label = `db${section.db} ${recordKeyLabel(rec)}`;
              expect(await canonicalValue(dst, rec.key, rec.t), label).toBe(await canonicalValue(r, rec.key, rec.t));
              if (rec.t === 'stream') {
                expect(JSON.stringify(await dst.call('XINFO', 'GROUPS', rec.key)), label).toBe(JSON.stringify(await r.call('XINFO', 'GROUPS', rec.key)));
              }
              const [a, b] = [await dst.pttl(rec.key), await r.pttl(rec.key)];
              if (b < 0) expect(a, label).toBe(b);
              else expect(Math.abs(a - b), `${label}: PTTL ${a} vs ${b}`).toBeLessThan(1000);
            }
          }
        } finally {
          await r.select(0);
          dst.disconnect();
        }
      }, 120_000);

      it('the parser gives the same records however the bytes are cut, each one a DUMP payload once footed', async () => {
        const file = join(dir, `whole-${randomBytes(4).toString('hex')}.rdb`);
        await fetchRdb({ host: '127.0.0.1', port: server.port, file });
        const rdb = readFileSync(file);
        const whole = parseAll(rdb, () => rdb.length);
        // The opcodes this server writes were met: LRU idle times or LFU counters, the function library, AUX, RESIZEDB.
        expect(lastSkipped).toMatchObject({ functions: 1, resizedb: 3, aux: expect.any(Number) });
        if (variant.args.includes('allkeys-lru')) expect(lastSkipped!.idle).toBe(whole.length);
        else expect(lastSkipped!.freq).toBe(whole.length);
        let seed = 7;
        const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 3000;
        expect(parseAll(rdb, () => 1 + rand())).toEqual(whole);
        expect(parseAll(rdb, () => 65536)).toEqual(whole);
        // One byte at a time, except inside the big strings (each passed in one piece; s:big-lzf is
        // stored plain when compression is off).
        const regions = [MID, BIG, BIG_LZF].map((v) => {
          const at = rdb.indexOf(v.subarray(0, 64));
          expect(at === -1 ? v === BIG_LZF : at > 0).toBe(true);
          return [at, at + v.length - 16];
        });
        expect(parseAll(rdb, (i) => regions.find(([s, e]) => i >= s! && i < e!)?.[1]! - i || 1)).toEqual(whole);
        // Each record + footer is the key's DUMP.
        for (const rec of whole) {
          await r.select(rec.db);
          const dump = await r.dumpBuffer(Buffer.from(rec.key, 'hex'));
          if (EXPIRED.includes(Buffer.from(rec.key, 'hex').toString())) continue;
          expect(payload(rec.type, Buffer.from(rec.value, 'hex')).equals(dump!), `db${rec.db} ${Buffer.from(rec.key, 'hex').toString()}`).toBe(true);
        }
        await r.select(0);
      }, 120_000);
    });
  }
});

interface Parsed {
  db: number;
  type: number;
  expire: number;
  key: string;
  value: string;
}

let lastSkipped: RdbRecordParser['skipped'] | undefined;

/** Parse `rdb` fed in pieces of size(offset) bytes. */
function parseAll(rdb: Buffer, size: (offset: number) => number): Parsed[] {
  const out: Parsed[] = [];
  const parser = new RdbRecordParser({
    selectDb: () => undefined,
    record(rec, p) {
      const parts = Buffer.concat(p.valueParts());
      const copy = Buffer.alloc(rec.valueLength);
      expect(p.copyValue(copy, 0)).toBe(rec.valueLength);
      expect(copy.equals(parts)).toBe(true);
      out.push({ db: rec.db, type: rec.type, expire: rec.expireMs, key: rec.key.toString('hex', rec.ks, rec.ke), value: parts.toString('hex') });
    },
  });
  for (let i = 0; i < rdb.length; ) {
    const n = size(i);
    parser.push(rdb.subarray(i, i + n));
    i += n;
  }
  parser.finish();
  lastSkipped = parser.skipped;
  return out;
}

function payload(type: number, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([type]), value, Buffer.from([10, 0])]);
  const crc = Buffer.alloc(8);
  new Crc64().update(body).writeLE(crc, 0);
  return Buffer.concat([body, crc]);
}

// ---------------------------------------------------------------------------------------------
// Hand-made RDBs for what a real 7.0 server cannot produce

function rdbLen(n: number): Buffer {
  if (n < 64) return Buffer.from([n]);
  if (n < 16384) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0x80;
  b.writeUInt32BE(n, 1);
  return b;
}
const rdbStr = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([rdbLen(b.length), b]);
};

/** A whole RDB: magic, SELECTDB 0, the given items, EOF and a valid CRC. */
function craft(version: number, ...items: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from(`REDIS${String(version).padStart(4, '0')}`), Buffer.from([0xfa]), rdbStr('ctime'), rdbStr('1700000000'), Buffer.from([0xfe, 0]), ...items, Buffer.from([0xff])]);
  const crc = Buffer.alloc(8);
  new Crc64().update(body).writeLE(crc, 0);
  return Buffer.concat([body, crc]);
}
const stringKey = (k: string, v: string) => Buffer.concat([Buffer.from([0]), rdbStr(k), rdbStr(v)]);

function parseError(rdb: Buffer): RdbParseError | undefined {
  try {
    parseAll(rdb, () => 5);
    return undefined;
  } catch (err) {
    return err as RdbParseError;
  }
}

describe('RDB parser: what it does not know stops it', () => {
  it('a well-formed hand-made RDB parses', () => {
    // EXPIRETIME_MS (8 bytes LE, ms) before c; the old EXPIRETIME (4 bytes LE, seconds) before e.
    const ms = Buffer.alloc(8);
    ms.writeBigInt64LE(1_700_000_000_123n);
    const got = parseAll(craft(10, stringKey('a', 'b'), Buffer.from([0xfc]), ms, stringKey('c', 'd'), Buffer.from([0xfd, 0x10, 0x27, 0, 0]), stringKey('e', 'f')), () => 3);
    expect(got).toEqual([
      { db: 0, type: 0, expire: -1, key: Buffer.from('a').toString('hex'), value: rdbStr('b').toString('hex') },
      { db: 0, type: 0, expire: 1_700_000_000_123, key: Buffer.from('c').toString('hex'), value: rdbStr('d').toString('hex') },
      { db: 0, type: 0, expire: 10_000_000, key: Buffer.from('e').toString('hex'), value: rdbStr('f').toString('hex') },
    ]);
  });
  it.each([
    ['RDB version 12', craft(12, stringKey('a', 'b')), 'unsupported', /RDB version 12: only version 10/],
    ['RDB version 9', craft(9, stringKey('a', 'b')), 'unsupported', /RDB version 9/],
    ['a module value (type 7)', craft(10, stringKey('a', 'b'), Buffer.from([7]), rdbStr('m'), Buffer.from([0x81, 1, 2, 3, 4, 5, 6, 7, 8])), 'unsupported', /value type 7 module/],
    ['a value type never written by 7.0 (13, hash ziplist)', craft(10, Buffer.from([13]), rdbStr('h'), rdbStr('zl')), 'unsupported', /value type 13/],
    ['an unknown type byte (42)', craft(10, Buffer.from([42]), rdbStr('x'), rdbStr('y')), 'unsupported', /value type 42 \(unknown\)/],
    ['MODULE_AUX', craft(10, stringKey('a', 'b'), Buffer.from([0xf7, 1, 2, 3])), 'unsupported', /opcode 0xf7 MODULE_AUX/],
    ['an unknown opcode (0xf1)', craft(10, Buffer.from([0xf1])), 'unsupported', /opcode 0xf1 \(unknown\)/],
    ['a quicklist node container 3', craft(10, Buffer.from([18]), rdbStr('l'), rdbLen(1), rdbLen(3), rdbStr('x')), 'unsupported', /container 3/],
    ['a bad length byte', craft(10, Buffer.from([0]), rdbStr('k'), Buffer.from([0x85])), 'corrupt', /bad length byte 0x85/],
    ['an unknown string encoding', craft(10, Buffer.from([0]), rdbStr('k'), Buffer.from([0xc5])), 'unsupported', /string encoding 5/],
    ['no REDIS magic', Buffer.concat([Buffer.from('RADIS0010'), Buffer.alloc(20)]), 'corrupt', /REDIS magic/],
  ])('%s', (_what, rdb, kind, message) => {
    const err = parseError(rdb);
    expect(err).toBeInstanceOf(RdbParseError);
    expect(err!.kind).toBe(kind);
    expect(err!.message).toMatch(message);
  });
  it('a stream cut anywhere is truncated, never a record too many or a short one', () => {
    const rdb = craft(10, stringKey('a', 'x'.repeat(100)), stringKey('b', 'y'));
    for (let cut = 0; cut < rdb.length; cut++) {
      const got: string[] = [];
      const parser = new RdbRecordParser({ selectDb: () => undefined, record: (rec, p) => void got.push(Buffer.concat(p.valueParts()).toString()) });
      parser.push(rdb.subarray(0, cut));
      expect(() => parser.finish(), `cut at ${cut}`).toThrow(/ended after \d+ bytes.*truncated/);
      // Records that were emitted are whole.
      for (const v of got) expect([rdbStr('x'.repeat(100)).toString(), rdbStr('y').toString()]).toContain(v);
    }
  });
  it('bytes after the checksum are refused', () => {
    expect(parseError(Buffer.concat([craft(10, stringKey('a', 'b')), Buffer.from('extra')]))?.message).toMatch(/after the RDB's end/);
  });
  it('LZF decompression refuses input that does not give the stated length', () => {
    expect(lzfDecompress(Buffer.from([2, 0x61, 0x62, 0x63]), 3)?.toString()).toBe('abc');
    expect(lzfDecompress(Buffer.from([2, 0x61, 0x62, 0x63]), 4)).toBeUndefined();
    expect(lzfDecompress(Buffer.from([0x20, 0x05]), 4)).toBeUndefined(); // a back reference before the start
  });
});

// ---------------------------------------------------------------------------------------------
// Fallbacks on a real server

/**
 * A proxy in front of a real server: ordinary connections pass through; a replication connection
 * (one that starts with REPLCONF) is answered by the proxy, which sends `rdb` as a diskless
 * transfer (or `rdb` then closes, without the end mark, when `closeEarly`).
 */
async function rdbProxy(target: number, rdb: () => Buffer, closeEarly = false, piece = 0): Promise<{ port: number; syncs: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { port: 0, syncs: 0, close: async () => undefined as void };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.once('data', (first) => {
      if (!first.includes('REPLCONF')) {
        const up = netConnect({ host: '127.0.0.1', port: target });
        sockets.add(up);
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        up.write(first);
        client.pipe(up);
        up.pipe(client);
        return;
      }
      let seen = first.toString('latin1');
      const answer = () => {
        while (seen.includes('REPLCONF')) {
          seen = seen.replace('REPLCONF', '');
          client.write('+OK\r\n');
        }
        if (seen.includes('SYNC\r\n')) {
          state.syncs++;
          const mark = 'm'.repeat(40);
          client.write(`$EOF:${mark}\r\n`);
          seen = '';
          const body = rdb();
          const finish = () => {
            if (closeEarly) client.end();
            else client.write(mark);
          };
          if (!piece) {
            client.write(body);
            return finish();
          }
          // In pieces, each its own TCP segment (a read of its own on the other side).
          client.setNoDelay(true);
          void (async () => {
            for (let i = 0; i < body.length && !client.destroyed; i += piece) {
              client.write(body.subarray(i, i + piece));
              await new Promise((res) => setTimeout(res, 1));
            }
            finish();
          })();
        }
      };
      answer();
      client.on('data', (d) => {
        seen += d.toString('latin1');
        answer();
      });
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  state.port = (server.address() as { port: number }).port;
  state.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((res) => server.close(() => res()));
  };
  return state;
}

describe('SYNC path fallbacks', () => {
  let server: ManagedServer;
  let r: Redis;
  let realRdb: Buffer;
  /** The archive of the plain SCAN path, normalised, to compare fallbacks with. */
  let scanArchive: string;
  beforeAll(async () => {
    server = await startRedis({ persistence: false, extraArgs: serverArgs([]) });
    r = new Redis(server.port, '127.0.0.1');
    const p = r.pipeline();
    for (let i = 0; i < 300; i++) p.set(`k:${i}`, `v${i}`);
    p.hset('h', { a: '1' });
    p.set(Buffer.from([0xff, 0x00]), 'bin', 'PX', 3_600_000);
    await p.exec();
    // Small dbs right after each other: two SELECTDBs can come in one read.
    await r.select(2);
    await r.rpush('db2:l', 'a', 'b');
    await r.select(3);
    await r.set('c', 'd');
    await r.select(4);
    await r.set('e', 'f');
    await r.select(0);
    const file = join(dir, 'fallback.rdb');
    await fetchRdb({ host: '127.0.0.1', port: server.port, file });
    realRdb = readFileSync(file);
    const { res, root } = await backup(r, { path: 'scan' });
    scanArchive = await normalised(res, root);
  });
  afterAll(async () => {
    r?.disconnect();
    await server?.stop();
  });

  async function normalised(res: RedisBackupResult, root: string): Promise<string> {
    const out: string[] = [];
    for (const section of res.dbs) {
      for (const rec of await records(root, section)) out.push(`${section.db} ${rec.key.toString('hex')} ${rec.t} ${rec.p > 0} ${rec.v.toString('hex')}`);
    }
    return out.sort().join('\n');
  }

  it('the SYNC path writes what the SCAN path writes', async () => {
    const { res, root } = await backup(r, { path: 'rdb' });
    expect(res.nodes[0], res.nodes[0]!.reason).toMatchObject({ source: 'rdb' });
    expect(await normalised(res, root)).toBe(scanArchive);
  });

  it('the RDB arriving in reads of 41 bytes (each handed on as the held-back 40 and 1 more): the same archive', async () => {
    const proxy = await rdbProxy(server.port, () => realRdb, false, 41);
    const client = new Redis(proxy.port, '127.0.0.1');
    try {
      const { res, root } = await backup(client, { path: 'rdb' });
      expect(res.nodes[0], res.nodes[0]!.reason).toMatchObject({ source: 'rdb' });
      expect(res.dbs.map((d) => d.db)).toEqual([0, 2, 3, 4]);
      expect(await normalised(res, root)).toBe(scanArchive);
    } finally {
      client.disconnect();
      await proxy.close();
    }
  }, 60_000);

  it('an ACL user without @admin: SYNC refused, SCAN used, same archive, the server as it was', async () => {
    await r.call('ACL', 'SETUSER', 'backup', 'on', '>secret', '~*', '&*', '+@all', '-@admin');
    const client = new Redis({ host: '127.0.0.1', port: server.port, username: 'backup', password: 'secret' });
    try {
      // CONFIG is @admin too: the path is refused before any SYNC.
      expect((await chooseBackupPath(client, 'rdb')).reason).toMatch(/CONFIG GET refused.*NOPERM/);
      const notes: string[] = [];
      const { res, root } = await backup(client, { path: 'rdb', onProgress: (p) => p.note && notes.push(p.note) });
      expect(res.nodes[0]!.source).toBe('scan');
      expect(notes).toEqual([expect.stringMatching(/CONFIG GET refused/)]);
      expect(await normalised(res, root)).toBe(scanArchive);
      // With CONFIG allowed but SYNC/REPLCONF still refused, SYNC is tried and refused.
      await r.call('ACL', 'SETUSER', 'backup', '+config|get');
      const second = await backup(client, { path: 'rdb' });
      expect(second.res.nodes[0]).toMatchObject({ source: 'scan', reason: expect.stringMatching(/SYNC path failed \(REPLCONF capa eof .* answered -NOPERM/) });
      expect(second.res.dbs[0]!.rdb_skipped).toMatch(/NOPERM/);
      expect(await normalised(second.res, second.root)).toBe(scanArchive);
      await expectServerAsItWas(r, server);
    } finally {
      client.disconnect();
      await r.call('ACL', 'DELUSER', 'backup');
    }
  });

  const flipInString = (rdb: Buffer) => {
    const b = Buffer.from(rdb);
    b[b.indexOf(Buffer.from('v150')) + 1] ^= 0x01; // a value byte: still parses, the trailer CRC no longer matches
    return b;
  };
  const version12 = (rdb: Buffer) => {
    const b = Buffer.from(rdb);
    b.write('REDIS0012', 0, 'latin1');
    const crc = new Crc64().update(b.subarray(0, b.length - 8));
    crc.writeLE(b, b.length - 8);
    return b;
  };
  const withModuleAux = (rdb: Buffer) => {
    const body = Buffer.concat([rdb.subarray(0, rdb.length - 9), Buffer.from([0xf7, 0x81, 1, 2, 3, 4, 5, 6, 7, 8]), Buffer.from([0xff])]);
    const crc = Buffer.alloc(8);
    new Crc64().update(body).writeLE(crc, 0);
    return Buffer.concat([body, crc]);
  };
  it.each([
    ['RDB version 12', version12, false, /RDB version 12/],
    ['MODULE_AUX', withModuleAux, false, /opcode 0xf7 MODULE_AUX/],
    ['an unknown type byte', (b: Buffer) => craft(10, stringKey('a', 'b'), Buffer.from([99]), rdbStr('x'), rdbStr('y')), false, /value type 99/],
    ['a bad trailer CRC', flipInString, false, /RDB checksum mismatch/],
    ['a stream truncated before its end mark', (b: Buffer) => b.subarray(0, Math.floor(b.length / 2)), false, /ended after \d+ bytes.*truncated/],
    ['a connection closed mid-stream', (b: Buffer) => b.subarray(0, Math.floor(b.length / 2)), true, /closed early/],
  ] as const)('%s: no record from the stream, SCAN used, same archive', async (_what, mutate, closeEarly, why) => {
    const proxy = await rdbProxy(server.port, () => mutate(realRdb), closeEarly);
    const client = new Redis(proxy.port, '127.0.0.1');
    try {
      const { res, root } = await backup(client, { path: 'rdb' });
      expect(proxy.syncs).toBe(1);
      expect(res.nodes[0]!.source).toBe('scan');
      expect(res.nodes[0]!.reason).toMatch(why);
      expect(res.dbs.every((d) => d.source === 'scan')).toBe(true);
      expect(await normalised(res, root)).toBe(scanArchive);
      // Only the SCAN path's files are there.
      expect(readdirSync(join(root, 'redis')).sort()).toEqual(res.dbs.map((d) => d.file.slice('redis/'.length)).sort());
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });

  it('auto: SYNC when the delay is small against the keyspace, SCAN with the default 5 s delay', async () => {
    expect(rdbPaysOff(1_000, 0)).toBe(false);
    expect(rdbPaysOff(100_000, 0)).toBe(true);
    expect(rdbPaysOff(1_000_000, 5)).toBe(false);
    expect(rdbPaysOff(10_000_000, 5)).toBe(true);
    const big = r.pipeline();
    for (let i = 0; i < 60_000; i++) big.set(`auto:${i}`, 'x');
    await big.exec();
    try {
      const choice = await chooseBackupPath(r, 'auto');
      expect(choice).toMatchObject({ source: 'rdb', reason: expect.stringMatching(/60\d{3} keys, repl-diskless-sync-delay 0 s/) });
      await r.config('SET', 'repl-diskless-sync-delay', '5');
      expect(await chooseBackupPath(r, 'auto')).toMatchObject({ source: 'scan', reason: expect.stringMatching(/delay 5 s/) });
      expect(await chooseBackupPath(r, 'rdb')).toMatchObject({ source: 'rdb' });
      await r.config('SET', 'repl-diskless-sync', 'no');
      expect(await chooseBackupPath(r, 'rdb')).toMatchObject({ source: 'scan', reason: expect.stringMatching(/repl-diskless-sync is no: .*dump\.rdb/) });
      const { res } = await backup(r, { path: 'rdb' });
      expect(res.nodes[0]!.source).toBe('scan');
      expect(existsSync(join(server.dir, 'dump.rdb'))).toBe(false);
    } finally {
      await r.config('SET', 'repl-diskless-sync', 'yes');
      await r.config('SET', 'repl-diskless-sync-delay', '0');
      const del = r.pipeline();
      for (let i = 0; i < 60_000; i++) del.del(`auto:${i}`);
      await del.exec();
    }
  }, 60_000);
});

describe('SYNC path over TLS', () => {
  it('reads the RDB through TLS, as the client is configured, with the same records as DUMP', async () => {
    const pki = makeCertificates([{ name: 'server', cn: 'redis', sans: ['127.0.0.1', 'localhost'], eku: 'serverAuth,clientAuth' }]);
    const tlsPort = await freePort();
    const server = await startRedis({ persistence: false, extraArgs: serverArgs([]), tls: { port: tlsPort, cert: pki.leaves.server!.cert, key: pki.leaves.server!.key, ca: pki.ca, authClients: false } });
    const client = new Redis({ host: '127.0.0.1', port: tlsPort, tls: { ca: readFileSync(pki.ca) } });
    try {
      const p = client.pipeline();
      for (let i = 0; i < 500; i++) p.set(`tls:${i}`, `value-${i}`.repeat(i % 7), 'PX', 1_000_000 + i);
      p.hset('tls:h', { a: MID });
      await p.exec();
      const { res, root } = await backup(client, { path: 'rdb' });
      expect(res.nodes[0], res.nodes[0]!.reason).toMatchObject({ node: `127.0.0.1-${tlsPort}`, source: 'rdb' });
      expect(await expectRecordsAreDumps(client, res, root)).toBe(501);
    } finally {
      client.disconnect();
      await server.stop();
      pki.cleanup();
    }
  }, 60_000);
});
