// Logical Redis backup and restore: SCAN every master and, per batch of keys, pipeline PTTL + DUMP
// and append length-prefixed binary records to disk (archive.ts, .rdump); restore with pipelined
// EXISTS + RESTORE <key> <ttl> <payload> REPLACE.
//
// Speed (docs/benchmarks.md): Redis runs every command on one thread, so the backup's ceiling is
// the server's own cost of SCAN + PTTL + DUMP per key; the client's job is to keep that thread busy
// and to cost less than it. So: SCAN runs ahead on its own connection while up to PIPELINE_DEPTH
// PTTL/DUMP batches are in flight on another (raw RESP, resp.ts: one buffer and one promise per
// batch). Keys stay bytes from the SCAN reply to the request and the record (a key is copied in
// its RESP encoding, never decoded to a string); each DUMP payload is copied from the socket buffer
// straight into a record (DumpSink → RecordChunker) and the records go to the file in 1 MB chunks
// as they arrive. TYPE is read from the payload's first byte (the RDB object type), so it costs no
// command (it is asked only for types the table does not know, e.g. modules), and the per-prefix
// counts find a key's prefix by a hash of its bytes (PrefixCounter), with no string per key.
// Memory is reused rather than fresh (page faults on fresh memory were ~15% of a 100k-key backup's
// CPU): the connections read into one buffer each, a SCAN reply's KeyBlock and a written 1 MB
// record chunk serve again. The file is fdatasynced every 4 MB as it grows, so that closing it
// does not wait for the whole file to reach the disk.
//
// Why PTTL and DUMP are plain pipelined commands, not one Lua script per batch (EVALSHA returning
// PTTL and DUMP of each key, even running the SCAN itself): measured on redis 7.0 (200k keys), the
// script costs the server more per key, not less: SCAN 0.6 + pipelined PTTL/DUMP 2.6 us/key, against
// 3.3-3.5 us/key with PTTL/DUMP in a script and 3.6-3.7 with SCAN in it too. A redis.call goes
// through the same command machinery as a dispatched command, plus converting each reply to Lua
// and back. What a key costs the server here is mostly memory (hash lookups, SCAN's scattered walk
// of the table, LZF and CRC64 of the payload), which batching cannot remove. Nor did dumping keys
// right after SCAN found them (one connection, SCAN one reply ahead, so the server's cache still
// holds them) measurably lower it.
//
// Memory bound: at most PIPELINE_DEPTH batches are in flight (sent, replies pending or being
// encoded) plus the keys SCAN queued for the next ones (at most PIPELINE_DEPTH x sizing.max + one
// SCAN reply), plus the file stream's buffer (4 MB high-water mark, awaited after each batch when
// full) and one 1 MB record chunk (plus at most 4 written ones kept for reuse, and 8 spare
// KeyBlocks). A batch holds at most sizing.max keys and is sized from the bytes the last one
// produced (nextBatchSize), so steady-state memory is about PIPELINE_DEPTH x maxBatchBytes
// (4 x 8 MB), independent of the keyspace size. Restore mirrors it: PIPELINE_DEPTH
// batches of RESTOREs in flight, fed by a reader that holds one 1 MB read chunk (or one record,
// if larger).
import { createReadStream, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import {
  ArchiveError,
  HashingWriter,
  PrefixCounter,
  RDUMP_EXT,
  RDUMP_HEADER,
  RecordChunker,
  encodeEnd,
  encodeRecordHead,
  fromJsonRecord,
  readRdumpBatches,
  recordKeyLabel,
  type FileEntry,
  type RedisDbSection,
  type RedisJsonRecord,
  type RedisRecord,
} from './archive.js';
import { RespBuilder, RespConn, RespError, copyInto, feedValue, type Reply, type ReplySink } from './resp.js';
import { Crc64, RdbChecker, RdbError, streamRdb } from './redis-rdb.js';
import { RdbParseError, RdbRecordParser, VERIFIED_RDB_VERSION, type RdbKeyRecord } from './rdb-records.js';

export interface RedisNode {
  /** host-port label used in file names and messages. */
  label: string;
  client: Redis;
}

export interface RedisSource {
  cluster: boolean;
  nodes: RedisNode[];
}

export function nodeLabel(client: Redis): string {
  const o = client.options;
  return `${o.host ?? '127.0.0.1'}-${o.port ?? 6379}`;
}

/** Every master of a cluster (ioredis nodes('master')), or the one standalone server. */
export function redisSource(client: Redis | Cluster): RedisSource {
  if (isCluster(client)) {
    return { cluster: true, nodes: client.nodes('master').map((c) => ({ label: nodeLabel(c), client: c })) };
  }
  return { cluster: false, nodes: [{ label: nodeLabel(client), client }] };
}

export function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/** redis_version from INFO server. */
export async function redisVersion(client: Redis): Promise<string> {
  const info = await client.info('server');
  return /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
}

/** Non-empty databases from INFO keyspace, with their key counts. */
export async function keyspaceDbs(client: Redis): Promise<Array<{ db: number; keys: number; expires: number }>> {
  const info = await client.info('keyspace');
  const out: Array<{ db: number; keys: number; expires: number }> = [];
  for (const m of info.matchAll(/^db(\d+):keys=(\d+),expires=(\d+)/gm)) out.push({ db: Number(m[1]), keys: Number(m[2]), expires: Number(m[3]) });
  return out;
}

export interface BatchSizing {
  min: number;
  max: number;
  /** Payload bytes one batch should stay under (DUMP sizes are unknown until read). */
  maxBatchBytes: number;
}

export const DEFAULT_SIZING: BatchSizing = { min: 10, max: 2000, maxBatchBytes: 8 * 1024 * 1024 };

/** Batches in flight at once (backup and restore); with the byte budget above this caps memory. */
export const PIPELINE_DEPTH = 4;
/** SCAN COUNT: keys per SCAN call (a hint; SCAN may return more or fewer). */
const SCAN_COUNT = 1000;

/**
 * Next batch size from the bytes the last batch produced: halve when it overshot the byte budget
 * (big values), grow by half when it used under a quarter of it, otherwise keep. This is what keeps
 * memory bounded when a keyspace holds a few huge keys among many small ones.
 */
export function nextBatchSize(current: number, lastBatchBytes: number, sizing: BatchSizing = DEFAULT_SIZING): number {
  let next = current;
  if (lastBatchBytes > sizing.maxBatchBytes) next = Math.floor(current / 2);
  else if (lastBatchBytes < sizing.maxBatchBytes / 4) next = Math.ceil(current * 1.5);
  return Math.max(sizing.min, Math.min(sizing.max, next));
}

export interface RedisProgress {
  phase: 'redis-backup' | 'redis-restore';
  node: string;
  db: number;
  keys: number;
  bytes: number;
  /** Backup: how this node is read (the SYNC/RDB path or SCAN). */
  source?: 'rdb' | 'scan';
  /** Backup: set once per node when it is read with SCAN although RDB was possible in principle: why. */
  note?: string;
}

/** How a node's keys are read: 'auto' (default) picks per node, see chooseBackupPath. */
export type RedisBackupPath = 'auto' | 'rdb' | 'scan';

export interface RedisBackupOptions {
  root: string;
  sizing?: BatchSizing;
  onProgress?: (p: RedisProgress) => void;
  /** 'scan' forces SCAN + PTTL + DUMP; 'rdb' uses SYNC wherever it is safe, whatever the keyspace size. */
  path?: RedisBackupPath;
}

export interface RedisBackupResult {
  server_version: string;
  cluster: boolean;
  dbs: RedisDbSection[];
  files: Record<string, FileEntry>;
  /** Per node: the path used and why (the SCAN path's reason says why RDB was not used or failed). */
  nodes: Array<{ node: string; source: 'rdb' | 'scan'; reason: string }>;
}


// ---------------------------------------------------------------------------------------------
// Keys from SCAN

/**
 * The keys of one SCAN reply, each already written as its request: "PTTL <key>" then "DUMP <key>",
 * the key copied in the RESP encoding SCAN sent it in. A batch's request is then a plain copy of a
 * stretch of `data` (or `data` itself). at[2i] = where key i's request starts (it ends where the
 * next one starts, the last at `used`), at[2i+1] = where its key bytes start (in the PTTL command);
 * len[i] = key length.
 */
class KeyBlock {
  data: Buffer;
  used = 0;
  n = 0;
  at: Int32Array;
  len: Int32Array;
  /** Keys whose batch has not completed yet: at 0 the block can serve again (BlockPool). */
  left = 0;
  constructor(count: number) {
    this.at = new Int32Array(2 * Math.max(16, count));
    this.len = new Int32Array(Math.max(16, count));
    this.data = Buffer.allocUnsafe(Math.max(1024, count * 96));
    this.left = count;
  }
  /** Empty again, for `count` keys (push grows it if they need more room). */
  reset(count: number): void {
    this.used = 0;
    this.n = 0;
    this.left = count;
  }
  push(src: Buffer, head: number, start: number, end: number): void {
    const elen = end + 2 - head;
    const need = 2 * elen + HDR_PTTL.length + HDR_DUMP.length;
    if (this.used + need > this.data.length) {
      const next = Buffer.allocUnsafe(Math.max(2 * this.data.length, this.used + need));
      this.data.copy(next, 0, 0, this.used);
      this.data = next;
    }
    if (this.n === this.len.length) {
      const at = new Int32Array(2 * this.at.length);
      at.set(this.at);
      this.at = at;
      const len = new Int32Array(2 * this.len.length);
      len.set(this.len);
      this.len = len;
    }
    const o = this.used;
    let w = copyInto(this.data, o, HDR_PTTL, 0, HDR_PTTL.length);
    const keyAt = w + (start - head);
    w = copyInto(this.data, w, src, head, end + 2);
    w = copyInto(this.data, w, HDR_DUMP, 0, HDR_DUMP.length);
    this.used = copyInto(this.data, w, src, head, end + 2);
    this.at[2 * this.n] = o;
    this.at[2 * this.n + 1] = keyAt;
    this.len[this.n++] = end - start;
  }
  keyStart(i: number): number {
    return this.at[2 * i + 1]!;
  }
  keyEnd(i: number): number {
    return this.at[2 * i + 1]! + this.len[i]!;
  }
  key(i: number): Buffer {
    return this.data.subarray(this.keyStart(i), this.keyEnd(i));
  }
  /** Where the requests of keys [from, to) are in `data`. */
  requests(from: number, to: number): Buffer {
    return this.data.subarray(this.at[2 * from], to < this.n ? this.at[2 * to] : this.used);
  }
}

/**
 * Spare KeyBlocks: a block serves the next SCAN reply once all its keys were dumped, instead of
 * fresh memory (page faults, and unmaps when freed) for every SCAN reply. Holds at most MAX_SPARE.
 */
class BlockPool {
  private static readonly MAX_SPARE = 8;
  private readonly spare: KeyBlock[] = [];
  block(count: number): KeyBlock {
    const b = this.spare.pop();
    if (!b) return new KeyBlock(count);
    b.reset(count);
    return b;
  }
  /** The keys [from, to) of block are done (their batch completed, the records hold copies). */
  done(block: KeyBlock, from: number, to: number): void {
    block.left -= to - from;
    if (block.left === 0 && this.spare.length < BlockPool.MAX_SPARE) this.spare.push(block);
  }
}

/** A run of keys of one block: [from, to). */
interface Segment {
  block: KeyBlock;
  from: number;
  to: number;
}

/** Keys SCAN found and no batch has taken yet, oldest first. */
class KeyQueue {
  private blocks: KeyBlock[] = [];
  /** Next key of blocks[0]. */
  private pos = 0;
  size = 0;
  push(b: KeyBlock): void {
    if (!b.n) return;
    this.blocks.push(b);
    this.size += b.n;
  }
  take(max: number): Segment[] {
    const segs: Segment[] = [];
    let want = Math.min(max, this.size);
    this.size -= want;
    while (want > 0) {
      const block = this.blocks[0]!;
      const to = Math.min(block.n, this.pos + want);
      segs.push({ block, from: this.pos, to });
      want -= to - this.pos;
      if (to === block.n) {
        this.blocks.shift();
        this.pos = 0;
      } else this.pos = to;
    }
    return segs;
  }
}

/** SCAN's reply, [cursor, [key, ...]], with the keys copied into a KeyBlock. */
class ScanSink implements ReplySink {
  cursor = '';
  /** Undefined when the reply held no key. */
  block: KeyBlock | undefined;
  constructor(private readonly pool: BlockPool) {}
  failure: string | undefined;
  /** 0: reply, 1: cursor, 2: key array, 3: keys, 4: done. */
  private stage = 0;
  private expected = 0;
  get done(): boolean {
    return this.stage === 4;
  }
  array(n: number): void {
    if (this.stage === 0 && n === 2) this.stage = 1;
    else if (this.stage === 2) {
      this.expected = n;
      if (n) this.block = this.pool.block(n);
      this.stage = n ? 3 : 4;
    } else throw new Error('unexpected SCAN reply shape');
  }
  bulk(buf: Buffer, head: number, start: number, end: number): void {
    if (this.stage === 1) {
      this.cursor = buf.toString('latin1', start, end);
      this.stage = 2;
    } else if (this.stage === 3) {
      this.block!.push(buf, head, start, end);
      if (this.block!.n === this.expected) this.stage = 4;
    } else throw new Error('unexpected SCAN reply shape');
  }
  error(message: string): void {
    if (this.stage !== 0) throw new Error('unexpected SCAN reply shape');
    this.failure = message;
    this.stage = 4;
  }
  int(): void {
    throw new Error('unexpected SCAN reply shape');
  }
  nil(): void {
    throw new Error('unexpected SCAN reply shape');
  }
  simple(): void {
    throw new Error('unexpected SCAN reply shape');
  }
}

const SCAN_HEAD = Buffer.from('*4\r\n$4\r\nSCAN\r\n');
const SCAN_COUNT_ARGS = Buffer.from(`$5\r\nCOUNT\r\n$${String(SCAN_COUNT).length}\r\n${SCAN_COUNT}\r\n`);

function scanRequest(cursor: string): Buffer {
  return new RespBuilder(64).raw(SCAN_HEAD).bulkText(cursor).raw(SCAN_COUNT_ARGS).done();
}

// ---------------------------------------------------------------------------------------------
// PTTL + DUMP batches, written as records while the replies arrive

/** What one db's dump has produced so far (shared by its batches). */
interface DbDump {
  records: RecordChunker;
  /** Keys by RDB object type (first byte of the DUMP payload). */
  byRdbType: Float64Array;
  /** Keys of types the table does not know, by the name TYPE gave. */
  byOtherType: Record<string, number>;
  prefixes: PrefixCounter;
  vanished: number;
}

/** TYPE names by RDB object type (the first byte of a DUMP payload); undefined: ask TYPE. */
const RDB_TYPE_NAMES: Array<string | undefined> = [];
for (const [names, ids] of [
  ['string', [0]],
  ['list', [1, 10, 14, 18]],
  ['set', [2, 11, 20]],
  ['zset', [3, 5, 12, 17]],
  ['hash', [4, 9, 13, 16, 22, 23, 24, 25]],
  ['stream', [15, 19, 21]],
] as const) {
  for (const id of ids) RDB_TYPE_NAMES[id] = names;
}
const TYPE_BYTES = new Map<string, Buffer>();
function typeBytes(t: string): Buffer {
  let b = TYPE_BYTES.get(t);
  if (!b) {
    b = Buffer.from(t, 'latin1');
    if (b.length > 255) throw new Error(`redis type name ${t} is longer than 255 bytes`);
    TYPE_BYTES.set(t, b);
  }
  return b;
}
const RDB_TYPE_BYTES = RDB_TYPE_NAMES.map((t) => (t === undefined ? undefined : typeBytes(t)));

/** A key whose payload type the table does not know: written once TYPE has named it. */
interface UntypedRecord {
  key: Buffer;
  p: number;
  e: number;
  v: Buffer;
}

/**
 * The replies of one batch (PTTL then DUMP per key, in the order of its segments). Each key becomes
 * a record in db.records as soon as its DUMP reply is parsed, copied from the socket buffer: no
 * per-key object, string or promise. A failure is kept (the replies still have to be consumed in
 * order) and reported once the batch is complete.
 */
class DumpSink implements ReplySink {
  failure: string | undefined;
  /** Payload bytes of this batch (sizes the next one). */
  bytes = 0;
  untyped: UntypedRecord[] | undefined;
  private seg = 0;
  private i: number;
  private count = 0;
  private awaitingPttl = true;
  private pttl = 0;
  private pttlError: string | undefined;
  /** Capture time for absolute expiry (set at the first reply). */
  private at = 0;
  constructor(
    readonly segs: Segment[],
    readonly total: number,
    private readonly db: DbDump,
  ) {
    this.i = segs[0]?.from ?? 0;
  }
  get done(): boolean {
    return this.count === this.total;
  }
  int(n: number): void {
    if (this.awaitingPttl) this.gotPttl(n, undefined);
    else this.gotDump(null, 0, 0, 'unexpected integer reply to DUMP');
  }
  bulk(buf: Buffer, _head: number, start: number, end: number): void {
    if (this.awaitingPttl) this.gotPttl(0, 'unexpected bulk reply to PTTL');
    else this.gotDump(buf, start, end, undefined);
  }
  nil(): void {
    if (this.awaitingPttl) this.gotPttl(0, 'unexpected nil reply to PTTL');
    else this.gotDump(null, 0, 0, undefined);
  }
  simple(text: string): void {
    if (this.awaitingPttl) this.gotPttl(0, `unexpected reply to PTTL: ${text}`);
    else this.gotDump(null, 0, 0, `unexpected reply to DUMP: ${text}`);
  }
  error(message: string): void {
    if (this.awaitingPttl) this.gotPttl(0, message);
    else this.gotDump(null, 0, 0, message);
  }
  array(): void {
    throw new Error('unexpected array reply to PTTL/DUMP');
  }
  private gotPttl(n: number, err: string | undefined): void {
    this.pttl = n;
    this.pttlError = err;
    this.awaitingPttl = false;
  }
  private gotDump(buf: Buffer | null, start: number, end: number, err: string | undefined): void {
    const block = this.segs[this.seg]!.block;
    const ks = block.keyStart(this.i);
    const ke = block.keyEnd(this.i);
    const why = this.pttlError ?? err;
    if (this.failure) {
      // The batch already failed: only keep the replies in step.
    } else if (why) {
      this.failure = `reading key ${block.data.toString('utf8', ks, ke)} failed: ${why}`;
    } else if (buf === null || this.pttl === -2) {
      // Gone between SCAN and DUMP (expired or deleted): not part of the backup.
      this.db.vanished++;
    } else if (end === start) {
      this.failure = `unexpected empty DUMP reply for key ${block.data.toString('utf8', ks, ke)}`;
    } else {
      if (!this.at) this.at = Date.now();
      const p = this.pttl;
      const e = p >= 0 ? this.at + p : -1;
      const rdbType = buf[start]!;
      const type = RDB_TYPE_BYTES[rdbType];
      this.bytes += end - start;
      if (type) {
        this.db.records.add(type, p, e, block.data, ks, ke, buf, start, end);
        this.db.byRdbType[rdbType]!++;
        this.db.prefixes.add(block.data, ks, ke);
      } else {
        // Copies: the key's block and the read buffer serve again once the batch is done.
        (this.untyped ??= []).push({ key: Buffer.from(block.data.subarray(ks, ke)), p, e, v: Buffer.from(buf.subarray(start, end)) });
      }
    }
    this.awaitingPttl = true;
    this.pttlError = undefined;
    this.count++;
    if (++this.i >= this.segs[this.seg]!.to) {
      this.seg++;
      this.i = this.segs[this.seg]?.from ?? 0;
    }
  }
}

const HDR_PTTL = Buffer.from('*2\r\n$4\r\nPTTL\r\n');
const HDR_DUMP = Buffer.from('*2\r\n$4\r\nDUMP\r\n');
const HDR_TYPE = Buffer.from('*2\r\n$4\r\nTYPE\r\n');
const HDR_EXISTS = Buffer.from('*2\r\n$6\r\nEXISTS\r\n');
const HDR_RESTORE = Buffer.from('*5\r\n$7\r\nRESTORE\r\n');
const ARG_REPLACE = Buffer.from('$7\r\nREPLACE\r\n');

/** PTTL k, DUMP k for every key of the segments: their requests as the KeyBlocks hold them (written together, not copied). */
function dumpRequest(segs: Segment[]): Buffer[] {
  return segs.map(({ block, from, to }) => block.requests(from, to));
}

function segmentKeys(segs: Segment[]): Buffer[] {
  const keys: Buffer[] = [];
  for (const { block, from, to } of segs) for (let i = from; i < to; i++) keys.push(block.key(i));
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Connections

/** What a backup needs from a server: SCAN, PTTL + DUMP batches, and TYPE for unknown types. */
interface DumpConn {
  scan(cursor: string, sink: ScanSink): Promise<ScanSink>;
  /** Several may be in flight; each resolves once its sink is done. */
  dump(segs: Segment[], sink: DumpSink): Promise<DumpSink>;
  types(keys: Buffer[]): Promise<Reply[]>;
  close(): void;
}

/** What a restore needs: EXISTS + RESTORE key ttl payload REPLACE per item (2 replies per item). */
interface RestoreConn {
  restore(items: RestoreItem[]): Promise<Reply[]>;
  close(): void;
}

interface RestoreItem {
  key: Buffer;
  ttl: number;
  payload: Buffer;
}

function typesRequest(keys: Buffer[]): Buffer {
  const b = new RespBuilder(keys.length * 40);
  for (const k of keys) b.raw(HDR_TYPE).bulk(k);
  return b.done();
}

function restoreRequest(items: RestoreItem[]): Buffer {
  let est = 0;
  for (const it of items) est += 2 * it.key.length + it.payload.length + 96;
  const b = new RespBuilder(est);
  for (const it of items) b.raw(HDR_EXISTS).bulk(it.key).raw(HDR_RESTORE).bulk(it.key).bulkText(String(it.ttl)).bulk(it.payload).raw(ARG_REPLACE);
  return b.done();
}

/**
 * The raw RESP path: SCAN on one connection and the PTTL/DUMP batches on another, so the scan runs
 * ahead while batches are in flight (a SCAN only starts once the previous one answered).
 */
class RespDumpConn implements DumpConn {
  private constructor(
    private readonly scanner: RespConn,
    private readonly dumper: RespConn,
  ) {}
  static async open(o: RedisOptions, db: number): Promise<RespDumpConn> {
    const scanner = await RespConn.open(o, db);
    try {
      return new RespDumpConn(scanner, await RespConn.open(o, db));
    } catch (err) {
      scanner.close();
      throw err;
    }
  }
  scan(cursor: string, sink: ScanSink): Promise<ScanSink> {
    return this.scanner.request(scanRequest(cursor), sink);
  }
  dump(segs: Segment[], sink: DumpSink): Promise<DumpSink> {
    return this.dumper.request(dumpRequest(segs), sink);
  }
  types(keys: Buffer[]): Promise<Reply[]> {
    return this.dumper.call(typesRequest(keys), keys.length);
  }
  close(): void {
    this.scanner.close();
    this.dumper.close();
  }
}

class RespRestoreConn implements RestoreConn {
  constructor(private readonly conn: RespConn) {}
  restore(items: RestoreItem[]): Promise<Reply[]> {
    return this.conn.call(restoreRequest(items), items.length * 2);
  }
  close(): void {
    this.conn.close();
  }
}

function toReply(err: Error | null, v: unknown): Reply {
  if (err) return new RespError(err.message);
  if (v == null) return null;
  if (Buffer.isBuffer(v) || typeof v === 'number' || typeof v === 'string') return v;
  return String(v);
}

/**
 * The same commands through ioredis (clients a raw socket cannot reproduce, e.g. Sentinel or a
 * custom connector), fed to the same sinks, so the archive is the same either way.
 */
class PipelineConn implements DumpConn, RestoreConn {
  constructor(
    private readonly client: Redis,
    private readonly scanClient: Redis,
  ) {}
  async scan(cursor: string, sink: ScanSink): Promise<ScanSink> {
    const [next, keys] = await this.scanClient.scanBuffer(cursor, 'COUNT', SCAN_COUNT);
    feedValue(sink, null, [Buffer.from(String(next)), keys]);
    return sink;
  }
  async dump(segs: Segment[], sink: DumpSink): Promise<DumpSink> {
    const pipe = this.client.pipeline();
    for (const k of segmentKeys(segs)) pipe.pttl(k).dumpBuffer(k);
    for (const [err, v] of (await pipe.exec()) ?? []) feedValue(sink, err, v);
    return sink;
  }
  private async exec(pipe: ReturnType<Redis['pipeline']>): Promise<Reply[]> {
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, v]) => toReply(err, v));
  }
  types(keys: Buffer[]): Promise<Reply[]> {
    const pipe = this.client.pipeline();
    for (const k of keys) pipe.type(k);
    return this.exec(pipe);
  }
  restore(items: RestoreItem[]): Promise<Reply[]> {
    const pipe = this.client.pipeline();
    for (const it of items) pipe.exists(it.key).restore(it.key, it.ttl, it.payload, 'REPLACE');
    return this.exec(pipe);
  }
  close(): void {
    this.client.disconnect();
    if (this.scanClient !== this.client) this.scanClient.disconnect();
  }
}

/** A cluster target: single-key commands (ioredis routes them per slot), one batch at a time each. */
class ClusterConn implements RestoreConn {
  constructor(private readonly client: Cluster) {}
  private settle<T>(p: Promise<T>): Promise<Reply> {
    return p.then(
      (v) => toReply(null, v),
      (e: Error) => toReply(e, null),
    );
  }
  async restore(items: RestoreItem[]): Promise<Reply[]> {
    return Promise.all(items.flatMap((it) => [this.settle(this.client.exists(it.key)), this.settle(this.client.restore(it.key, it.ttl, it.payload, 'REPLACE'))]));
  }
  close(): void {}
}

/**
 * A promise that is awaited later, possibly after it settles: mark its rejection as handled now so
 * it cannot become an unhandled rejection while earlier batches are processed (awaiting it still
 * throws).
 */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** Sentinel and custom connectors resolve the endpoint themselves: those go through ioredis. */
function needsIoredis(client: Redis): boolean {
  const o = client.options;
  return Boolean(o.sentinels?.length || (o as { Connector?: unknown }).Connector);
}

async function dumpConn(client: Redis, db: number): Promise<DumpConn> {
  if (needsIoredis(client)) return new PipelineConn(client.duplicate({ db }), client.duplicate({ db }));
  return RespDumpConn.open(client.options, db);
}

async function restoreConn(client: Redis, db: number): Promise<RestoreConn> {
  if (needsIoredis(client)) {
    const c = client.duplicate({ db });
    return new PipelineConn(c, c);
  }
  return new RespRestoreConn(await RespConn.open(client.options, db));
}

// ---------------------------------------------------------------------------------------------
// Backup

/**
 * Masters of a cluster backed up at once. Each is a server of its own (its own command thread), so
 * they add up; each adds one db's pipeline to memory, which stays independent of the keyspace size.
 */
export const NODE_CONCURRENCY = 4;

/** Set when one master's backup failed, so the others stop at their next batch (or RDB chunk). */
interface StopFlag {
  failed: boolean;
  /** Aborted with the flag: closes RDB transfers at once. */
  abort: AbortController;
}

class StoppedError extends Error {
  constructor() {
    super('stopped because another master failed');
  }
}

export async function backupRedisLogical(source: RedisSource, opts: RedisBackupOptions): Promise<RedisBackupResult> {
  const sizing = opts.sizing ?? DEFAULT_SIZING;
  const first = source.nodes[0];
  if (!first) throw new Error('redis backup: no master nodes to back up');
  const server_version = await redisVersion(first.client);
  const stop: StopFlag = { failed: false, abort: new AbortController() };
  const nodes: RedisBackupResult['nodes'] = [];
  const backupNode = async (node: RedisNode) => {
    const choice = await chooseBackupPath(node.client, opts.path ?? 'auto');
    let reason = choice.reason;
    if (choice.source === 'rdb') {
      try {
        const out = await backupNodeRdb(node, source.cluster, opts.root, stop, opts.onProgress);
        nodes.push({ node: node.label, source: 'rdb', reason });
        return out;
      } catch (err) {
        if (!(err instanceof RdbFallback)) throw err;
        reason = `the SYNC path failed (${err.message}); the partial files were discarded and SCAN was used instead`;
      }
    }
    if (stop.failed) throw new StoppedError();
    nodes.push({ node: node.label, source: 'scan', reason });
    // Said once as progress when SYNC was tried and failed, or was requested and is not possible;
    // every node's reason is in the result and the manifest's sections.
    if (choice.source === 'rdb' || opts.path === 'rdb') opts.onProgress?.({ phase: 'redis-backup', node: node.label, db: 0, keys: 0, bytes: 0, source: 'scan', note: reason });
    // Cluster mode has only db 0; standalone: every non-empty database (db 0 always, even if empty).
    const listed = source.cluster ? [] : (await keyspaceDbs(node.client)).map((d) => d.db);
    const dbNumbers = [...new Set([0, ...listed])].sort((a, b) => a - b);
    const out: Array<{ rel: string; section: RedisDbSection; entry: FileEntry }> = [];
    for (const db of dbNumbers) {
      if (stop.failed) throw new StoppedError();
      // Connections of its own per db, so SELECT never changes the caller's client.
      const conn = await dumpConn(node.client, source.cluster ? 0 : db);
      try {
        const rel = `redis/${node.label}.db${db}${RDUMP_EXT}`;
        const got = await dumpDb(conn, node.label, db, join(opts.root, rel), rel, sizing, stop, opts.onProgress);
        out.push({ rel, section: { ...got.section, source: 'scan', rdb_skipped: reason }, entry: got.entry });
      } finally {
        conn.close();
      }
    }
    return out;
  };
  // Up to NODE_CONCURRENCY masters at once; on the first failure the others stop at their next
  // batch, and that failure is reported once all have settled (no file is still being written).
  const results: Array<Awaited<ReturnType<typeof backupNode>>> = [];
  let nextNode = 0;
  let firstError: unknown;
  const worker = async () => {
    while (nextNode < source.nodes.length && !stop.failed) {
      const i = nextNode++;
      try {
        results[i] = await backupNode(source.nodes[i]!);
      } catch (err) {
        if (!(err instanceof StoppedError) && firstError === undefined) firstError = err;
        stop.failed = true;
        stop.abort.abort(new StoppedError());
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(NODE_CONCURRENCY, source.nodes.length) }, worker));
  if (stop.failed) throw firstError ?? new Error('redis backup stopped');
  const dbs: RedisDbSection[] = [];
  const files: Record<string, FileEntry> = {};
  for (const r of results.flat()) {
    files[r.rel] = r.entry;
    dbs.push(r.section);
  }
  return { server_version, cluster: source.cluster, dbs, files, nodes };
}

// ---------------------------------------------------------------------------------------------
// Choosing the path

/**
 * Time per key of each path, from docs/benchmarks.md (redis 7.0.15, 2 cores, loopback, 100k and 1M
 * keys of the bench's mixed types): the SCAN path is bound by the server's main thread, 3.4-4.9
 * us/key of its CPU, 3.9-5.5 us/key end to end; the SYNC path by the fork that serialises the RDB
 * (server CPU 2.5-3.4 us/key, as for redis-cli --rdb) with our parser running alongside on the other
 * core, 3.4-3.6 us/key end to end. So SYNC saves 0.55-1.9 us/key; the constants below take 0.8,
 * toward the low end, so that a delay is paid only where SYNC clearly wins back. It first waits
 * repl-diskless-sync-delay seconds (default 5) and pays for a fork (a few ms per GB of the server's
 * memory: FORK_MS is generous for the sizes measured, not for a server of tens of GB).
 */
export const SCAN_US_PER_KEY = 3.5;
export const RDB_US_PER_KEY = 2.7;
export const FORK_MS = 20;
/** Used when CONFIG GET is refused (Redis' default). */
export const DEFAULT_DISKLESS_DELAY_S = 5;

/**
 * The rule: SYNC when delay + fork < keys x (SCAN - SYNC cost per key), i.e. with the default 5 s
 * delay from about 6 million keys, with delay 0 from about 25 thousand.
 */
export function rdbPaysOff(keys: number, delaySeconds: number): boolean {
  return delaySeconds * 1000 + FORK_MS < (keys * (SCAN_US_PER_KEY - RDB_US_PER_KEY)) / 1000;
}

export interface PathChoice {
  source: 'rdb' | 'scan';
  reason: string;
  /** SCAN chosen by the cost rule or by request, although SYNC would have been possible. */
  rdbPossible?: boolean;
}

/**
 * Per node: the SYNC/RDB path when it is possible, safe and (auto) pays off, else SCAN. Possible and
 * safe: a direct socket (not Sentinel or a custom connector), Redis 7.0 (RDB version 10, the only
 * one whose layouts were verified here; 7.0 also has REPLCONF rdb-only), repl-diskless-sync yes
 * (confirmed by CONFIG GET: a disk-based SYNC would write dump.rdb into the server's data dir, so
 * when CONFIG GET is refused SCAN is used); auto also wants no fork already running (SYNC would
 * wait for it).
 * Whether the server lets us SYNC at all (ACL @admin, renamed commands) shows only when we try: a
 * refusal falls back to SCAN then.
 */
export async function chooseBackupPath(client: Redis, requested: RedisBackupPath): Promise<PathChoice> {
  if (requested === 'scan') return { source: 'scan', reason: 'SCAN was requested' };
  if (needsIoredis(client)) return { source: 'scan', reason: 'the client connects through Sentinel or a custom connector; SYNC needs a direct socket' };
  const version = await redisVersion(client);
  if (!/^7\.0\./.test(version)) {
    return { source: 'scan', reason: `Redis ${version}: only Redis 7.0's RDB (version ${VERIFIED_RDB_VERSION}) was verified against DUMP here` };
  }
  let diskless: string | undefined;
  let delay = DEFAULT_DISKLESS_DELAY_S;
  try {
    const flat = (await client.call('CONFIG', 'GET', 'repl-diskless-sync*')) as string[];
    const conf = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) conf.set(flat[i]!, flat[i + 1]!);
    diskless = conf.get('repl-diskless-sync');
    const d = Number(conf.get('repl-diskless-sync-delay'));
    if (Number.isFinite(d) && d >= 0) delay = d;
  } catch (err) {
    return {
      source: 'scan',
      reason: `CONFIG GET refused (${(err as Error).message}): repl-diskless-sync cannot be confirmed, and a disk-based SYNC would write dump.rdb into the server's data dir`,
    };
  }
  if (diskless !== 'yes') return { source: 'scan', reason: `repl-diskless-sync is ${diskless ?? 'unknown'}: SYNC would be disk-based and write dump.rdb into the server's data dir` };
  if (requested === 'rdb') return { source: 'rdb', reason: 'SYNC was requested' };
  const persistence = await client.info('persistence');
  if (/^(rdb_bgsave_in_progress|aof_rewrite_in_progress):1/m.test(persistence)) {
    return { source: 'scan', reason: 'a fork (BGSAVE, AOF rewrite or another SYNC) is running on the server; SYNC would wait for it', rdbPossible: true };
  }
  const keys = (await keyspaceDbs(client)).reduce((n, d) => n + d.keys, 0);
  const why = `${keys} keys, repl-diskless-sync-delay ${delay} s: SYNC costs about ${delay} s + ${FORK_MS} ms + ${RDB_US_PER_KEY} us/key, SCAN about ${SCAN_US_PER_KEY} us/key`;
  return rdbPaysOff(keys, delay) ? { source: 'rdb', reason: why } : { source: 'scan', reason: why, rdbPossible: true };
}

// ---------------------------------------------------------------------------------------------
// The RDB path: parse the RDB the server streams over SYNC into the same records

/** The SYNC path could not be used for this node (refused, unsupported content, broken stream): use SCAN. */
class RdbFallback extends Error {}

/** A key's record goes to the file as its own writes (no copy into a record chunk) from this payload size. */
const DIRECT_PAYLOAD_BYTES = 256 * 1024;
/** Progress is reported every this many keys. */
const RDB_PROGRESS_KEYS = 5000;

/** One db's file while the RDB path writes it. */
class RdbDbFile {
  readonly records: RecordChunker;
  readonly byRdbType = new Float64Array(256);
  readonly prefixes = new PrefixCounter();
  expired = 0;
  private constructor(
    readonly db: number,
    readonly rel: string,
    readonly out: HashingWriter,
  ) {
    this.records = new RecordChunker((bytes, written) => out.writeNow(bytes, written), undefined, true);
  }
  static async open(root: string, label: string, db: number): Promise<RdbDbFile> {
    const rel = `redis/${label}.db${db}${RDUMP_EXT}`;
    const out = await HashingWriter.create(join(root, rel), { syncEveryBytes: 4 << 20 });
    out.writeNow(RDUMP_HEADER);
    return new RdbDbFile(db, rel, out);
  }
  async close(): Promise<FileEntry> {
    this.records.flush();
    this.out.writeNow(encodeEnd(this.records.records));
    return this.out.close();
  }
}

/** Errors of our own files (disk full...): SCAN would meet them too, so they fail the backup. */
class LocalWriteError extends Error {
  constructor(readonly cause: Error) {
    super(cause.message);
  }
}

/**
 * One node through SYNC: the RDB is parsed as it arrives (rdb-records.ts) and every key becomes the
 * record SCAN + PTTL + DUMP would have written for it at the snapshot's time, one file per db.
 *
 * Snapshot time and TTLs: the RDB holds absolute expiry times in the server's clock. The snapshot
 * is the fork's moment, which lies after TIME (asked just before SYNC) and at or after ctime (the
 * AUX field the fork writes first: Unix seconds, so up to 1 s early); the later of the two is the
 * closest lower bound, within a few ms of the fork with delay 0 and within 1 s with a delay.
 * A key whose expiry is at or before it is skipped (it was logically gone, as for SCAN's PTTL -2);
 * otherwise p = expiry - snapshot (what PTTL would have said at the fork) and e = expiry moved into
 * our clock by the offset TIME showed (the SCAN path's e is our clock at the PTTL reply + p), so
 * restore's remainingTtl means the same for both.
 */
async function backupNodeRdb(
  node: RedisNode,
  cluster: boolean,
  root: string,
  stop: StopFlag,
  onProgress?: (p: RedisProgress) => void,
): Promise<Array<{ rel: string; section: RedisDbSection; entry: FileEntry }>> {
  const label = node.label;
  const o = node.client.options;
  let serverBefore: number;
  let offset: number;
  try {
    const t0 = Date.now();
    const [sec, usec] = (await node.client.time()) as Array<string | number>;
    const t1 = Date.now();
    serverBefore = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    offset = Math.round((t0 + t1) / 2 - serverBefore);
  } catch (err) {
    throw new RdbFallback(`TIME failed: ${(err as Error).message}`);
  }
  let ctimeMs = 0;
  let snapshot = -1;
  const checker = new RdbChecker();
  const crc = new Crc64();
  const done: Array<{ rel: string; section: RedisDbSection; entry: FileEntry }> = [];
  const opened: string[] = [];
  let cur: RdbDbFile | undefined;
  let lastReport = 0;
  let finishing: Promise<void> | undefined;
  /** Set when the transfer failed: no further file is opened, and the ones opened are removed. */
  let abandoned = false;
  const section = (f: RdbDbFile, entry: FileEntry): { rel: string; section: RedisDbSection; entry: FileEntry } => {
    const by_type: Record<string, number> = {};
    f.byRdbType.forEach((n, t) => {
      if (n) by_type[RDB_TYPE_NAMES[t]!] = (by_type[RDB_TYPE_NAMES[t]!] ?? 0) + n;
    });
    const snapshotClient = snapshot + offset;
    return {
      rel: f.rel,
      entry,
      section: {
        node: label,
        db: f.db,
        file: f.rel,
        keys: f.records.records,
        by_type,
        by_prefix: f.prefixes.result(),
        vanished: 0,
        scan_started_ms: snapshotClient,
        scan_finished_ms: Date.now(),
        source: 'rdb',
        expired_at_snapshot: f.expired,
      },
    };
  };
  const local = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new LocalWriteError(err as Error);
    }
  };
  /** Close the current db's file and open db's (db < 0: only close). */
  const switchDb = async (db: number) => {
    const prev = cur;
    cur = undefined;
    if (prev) done.push(section(prev, await local(prev.close())));
    if (db < 0 || abandoned) return;
    const f = await local(RdbDbFile.open(root, label, db));
    opened.push(join(root, f.rel));
    cur = f;
  };
  const footer = Buffer.alloc(10);
  const typeByte = Buffer.alloc(1);
  const writeRecord = (rec: RdbKeyRecord, parser: RdbRecordParser) => {
    const f = cur!;
    if (rec.expireMs >= 0 && rec.expireMs <= snapshot) {
      f.expired++;
      return;
    }
    const p = rec.expireMs >= 0 ? rec.expireMs - snapshot : -1;
    const e = rec.expireMs >= 0 ? rec.expireMs + offset : -1;
    const type = RDB_TYPE_BYTES[rec.type]!;
    const vlen = rec.valueLength;
    const payloadLen = 1 + vlen + 10;
    try {
      if (payloadLen <= DIRECT_PAYLOAD_BYTES) {
        // Built in place in the record chunk: type byte, value, version, CRC64 of those.
        const at = f.records.reserve(type, p, e, rec.key, rec.ks, rec.ke, payloadLen);
        const buf = f.records.current;
        buf[at] = rec.type;
        const v = parser.copyValue(buf, at + 1);
        buf.writeUInt16LE(VERIFIED_RDB_VERSION, v);
        crc.reset().update(buf.subarray(at, v + 2));
        crc.writeLE(buf, v + 2);
      } else {
        // A big value goes to the file as the chunks it arrived in, between its head and footer.
        f.records.flush();
        typeByte[0] = rec.type;
        const parts = parser.valueParts();
        footer.writeUInt16LE(VERIFIED_RDB_VERSION, 0);
        crc.reset().update(typeByte);
        for (const part of parts) crc.update(part);
        crc.update(footer.subarray(0, 2));
        crc.writeLE(footer, 2);
        f.out.writeNow(encodeRecordHead(type, p, e, rec.key, rec.ks, rec.ke, payloadLen));
        f.out.writeNow(Buffer.from(typeByte));
        for (const part of parts) f.out.writeNow(part);
        f.out.writeNow(Buffer.from(footer));
        f.records.records++;
      }
    } catch (err) {
      throw new LocalWriteError(err as Error);
    }
    f.byRdbType[rec.type]!++;
    f.prefixes.add(rec.key, rec.ks, rec.ke);
  };
  const parser = new RdbRecordParser({
    aux(key, value) {
      if (key === 'ctime') ctimeMs = Number(value.toString('latin1')) * 1000;
    },
    selectDb(db) {
      if (cluster && db !== 0) throw new RdbParseError('corrupt', `a cluster node's RDB holds db${db}`);
      // The fork's moment, in the server's clock: see above.
      if (snapshot < 0) snapshot = Math.max(serverBefore, Number.isFinite(ctimeMs) ? ctimeMs : 0);
      return switchDb(db);
    },
    record: writeRecord,
  });
  const report = () => {
    const f = cur;
    if (!f || parser.keys - lastReport < RDB_PROGRESS_KEYS) return;
    lastReport = parser.keys;
    onProgress?.({ phase: 'redis-backup', node: label, db: f.db, keys: f.records.records, bytes: f.out.bytes, source: 'rdb' });
  };
  // Bytes that arrive while the parser waits (a db's file being switched) or the file is full are
  // queued in the parser; one loop at a time resumes it, so no item is parsed before its db's file
  // is open.
  const consume = (b: Buffer): void | Promise<void> => {
    if (stop.failed) throw new StoppedError();
    checker.update(b);
    parser.push(b);
    report();
    if (finishing) return finishing;
    if (parser.blocked || cur?.out.full) {
      finishing = (async () => {
        try {
          for (;;) {
            if (abandoned) break;
            if (parser.blocked) {
              await parser.blocked;
              parser.resume();
            } else if (cur?.out.full) await local(cur.out.drained());
            else break;
          }
        } finally {
          finishing = undefined;
        }
      })();
      return finishing;
    }
  };
  const cleanup = () => {
    cur?.out.abort();
    cur = undefined;
    for (const path of opened) rmSync(path, { force: true });
  };
  try {
    await streamRdb(
      {
        host: o.host ?? '127.0.0.1',
        port: o.port ?? 6379,
        path: o.path,
        tls: o.tls,
        username: o.username,
        password: o.password,
        strict: true,
        idleTimeoutMs: 60_000,
        signal: stop.abort.signal,
      },
      consume,
    );
    parser.finish();
    checker.finish(`the RDB streamed by ${label}`);
    if (snapshot < 0) snapshot = Math.max(serverBefore, Number.isFinite(ctimeMs) ? ctimeMs : 0);
    // db 0 always has a file (as the SCAN path writes one), even when empty.
    if (!done.some((d) => d.section.db === 0) && cur?.db !== 0) {
      const last = cur;
      cur = undefined;
      if (last) done.push(section(last, await local(last.close())));
      await switchDb(0);
    }
    await switchDb(-1);
    const last = done.at(-1)!;
    onProgress?.({ phase: 'redis-backup', node: label, db: last.section.db, keys: last.section.keys, bytes: last.entry.bytes, source: 'rdb' });
    return done.sort((a, b) => a.section.db - b.section.db);
  } catch (err) {
    // A db switch may still be under way (the transfer fails without waiting for it): let it
    // settle, so no file is created or truncated after the cleanup (the SCAN path writes the same
    // paths next).
    abandoned = true;
    await finishing?.catch(() => undefined);
    cleanup();
    if (err instanceof StoppedError || stop.failed) throw new StoppedError();
    if (err instanceof LocalWriteError) throw err.cause;
    throw new RdbFallback((err as Error).message);
  }
}

/**
 * One db into one file. SCAN runs on its own, ahead of the batches, until the queue holds keys for
 * every batch the pipeline can take; up to PIPELINE_DEPTH PTTL/DUMP batches are in flight; each
 * reply becomes a record as it is parsed, and the records go to the file in 1 MB chunks, waiting
 * for the file when it falls behind (backpressure).
 */
async function dumpDb(
  conn: DumpConn,
  label: string,
  db: number,
  path: string,
  rel: string,
  sizing: BatchSizing,
  stop: StopFlag,
  onProgress?: (p: RedisProgress) => void,
): Promise<{ section: RedisDbSection; entry: FileEntry }> {
  const out = await HashingWriter.create(path, { syncEveryBytes: 4 << 20 });
  const state: DbDump = {
    records: new RecordChunker((bytes, written) => out.writeNow(bytes, written), undefined, true),
    byRdbType: new Float64Array(256),
    byOtherType: {},
    prefixes: new PrefixCounter(),
    vanished: 0,
  };
  let batch = Math.min(sizing.max, Math.max(sizing.min, 1000));
  const scan_started_ms = Date.now();
  const inflight: Array<Promise<DumpSink>> = [];
  const queue = new KeyQueue();
  const pool = new BlockPool();
  let stopScan = false;
  let roomFreed: (() => void) | undefined;
  const fail = (what: string) => new Error(`redis backup ${label} db${db}: ${what}`);
  try {
    out.writeNow(RDUMP_HEADER);
    let scanDone = false;
    let scanError: Error | undefined;
    let keysArrived: (() => void) | undefined;
    const queueLimit = PIPELINE_DEPTH * sizing.max + SCAN_COUNT;
    const scanner = (async () => {
      let cursor = '0';
      do {
        while (queue.size >= queueLimit && !stopScan) await new Promise<void>((r) => (roomFreed = r));
        if (stopScan) return;
        const got = await conn.scan(cursor, new ScanSink(pool));
        if (got.failure) throw new Error(got.failure);
        cursor = got.cursor;
        if (got.block) queue.push(got.block);
        keysArrived?.();
      } while (cursor !== '0');
    })().then(
      () => {
        scanDone = true;
        keysArrived?.();
      },
      (err: Error) => {
        scanError = err;
        keysArrived?.();
      },
    );
    const send = (n: number) => {
      const segs = queue.take(n);
      roomFreed?.();
      inflight.push(quiet(conn.dump(segs, new DumpSink(segs, n, state))));
    };
    for (;;) {
      // Fill the pipeline: up to PIPELINE_DEPTH batches in flight.
      while (inflight.length < PIPELINE_DEPTH) {
        if (stop.failed) throw new StoppedError();
        if (scanError) throw fail(`SCAN failed: ${scanError.message}`);
        if (queue.size >= batch || (scanDone && queue.size > 0)) send(Math.min(batch, queue.size));
        else if (scanDone) break;
        // Not enough keys for a full batch: send what there is rather than idle, else wait.
        else if (!inflight.length && queue.size > 0) send(queue.size);
        else if (inflight.length) break;
        else {
          await new Promise<void>((r) => (keysArrived = r));
          keysArrived = undefined;
        }
      }
      const head = inflight.shift();
      if (!head) break;
      const sink = await head.catch((err: Error) => {
        throw fail(err.message);
      });
      if (sink.failure) throw fail(sink.failure);
      for (const seg of sink.segs) pool.done(seg.block, seg.from, seg.to);
      if (sink.untyped) await writeUntyped(conn, sink.untyped, state, fail);
      state.records.flush();
      await out.drained();
      batch = nextBatchSize(batch, sink.bytes, sizing);
      onProgress?.({ phase: 'redis-backup', node: label, db, keys: state.records.records, bytes: out.bytes });
    }
    await scanner;
    if (scanError) throw fail(`SCAN failed: ${(scanError as Error).message}`);
    const keys = state.records.records;
    out.writeNow(encodeEnd(keys));
    const entry = await out.close();
    const by_type: Record<string, number> = {};
    state.byRdbType.forEach((n, t) => {
      if (n) by_type[RDB_TYPE_NAMES[t]!] = (by_type[RDB_TYPE_NAMES[t]!] ?? 0) + n;
    });
    for (const [t, n] of Object.entries(state.byOtherType)) by_type[t] = (by_type[t] ?? 0) + n;
    return {
      section: { node: label, db, file: rel, keys, by_type, by_prefix: state.prefixes.result(), vanished: state.vanished, scan_started_ms, scan_finished_ms: Date.now() },
      entry,
    };
  } catch (err) {
    out.abort();
    stopScan = true;
    roomFreed?.();
    throw err;
  }
}

/** Records of module types (and RDB types newer than the table): TYPE names them, then they are written. */
async function writeUntyped(conn: DumpConn, recs: UntypedRecord[], state: DbDump, fail: (what: string) => Error): Promise<void> {
  const types = await conn.types(recs.map((r) => r.key));
  recs.forEach((r, i) => {
    const t = types[i];
    if (t === 'none') {
      state.vanished++; // deleted since its DUMP
      return;
    }
    if (t instanceof Error || typeof t !== 'string') {
      throw fail(`TYPE of key ${r.key.toString('utf8')} failed: ${t instanceof Error ? t.message : String(t)}`);
    }
    state.records.add(typeBytes(t), r.p, r.e, r.key, 0, r.key.length, r.v, 0, r.v.length);
    state.byOtherType[t] = (state.byOtherType[t] ?? 0) + 1;
    state.prefixes.add(r.key, 0, r.key.length);
  });
}

/** Stream the records of a format /1 JSONL dump file; a line that does not parse names the file and line. */
export async function* readJsonRecords(path: string, rel: string): AsyncGenerator<RedisRecord> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line) continue;
    let rec: RedisJsonRecord;
    try {
      rec = JSON.parse(line) as RedisJsonRecord;
    } catch (err) {
      throw new ArchiveError('corrupt-record', `archive file ${rel} line ${n} is not a valid record: ${(err as Error).message}`, rel);
    }
    if (typeof rec.t !== 'string' || typeof rec.v !== 'string' || typeof rec.p !== 'number' || (rec.k === undefined && rec.kb === undefined)) {
      throw new ArchiveError('corrupt-record', `archive file ${rel} line ${n} lacks k/t/p/v fields`, rel);
    }
    yield fromJsonRecord(rec);
  }
}

/**
 * Batches of records from one dump file (binary .rdump, or a format /1 .jsonl), so restore and
 * verify can pipeline. Records are views into the read buffers (never reused, so they stay valid);
 * each batch held keeps its buffers alive.
 */
export async function* recordBatches(path: string, rel: string, size: number): AsyncGenerator<RedisRecord[]> {
  if (!rel.endsWith('.jsonl')) {
    yield* readRdumpBatches(path, rel, size);
    return;
  }
  let batch: RedisRecord[] = [];
  for await (const rec of readJsonRecords(path, rel)) {
    batch.push(rec);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Stream the records of one dump file, one by one. */
export async function* readRecords(path: string, rel: string): AsyncGenerator<RedisRecord> {
  for await (const batch of recordBatches(path, rel, 1000)) yield* batch;
}

/** Milliseconds of TTL left now, -1 for no expiry, 0 when it already expired. */
export function remainingTtl(rec: RedisRecord, now = Date.now()): number {
  if (rec.e === undefined) return -1;
  return Math.max(0, rec.e - now);
}

export interface RedisRestoreOptions {
  root: string;
  dbs: RedisDbSection[];
  batchSize?: number;
  onProgress?: (p: RedisProgress) => void;
}

export interface RedisRestoreResult {
  restored: number;
  /** Keys whose TTL ran out between backup and restore (not restored, by design). */
  expired_skipped: number;
  /** Keys that already existed on the target (in a fresh scratch target: duplicates SCAN returned). */
  replaced: number;
  by_type: Record<string, number>;
  bytes: number;
  duration_ms: number;
}

/**
 * RESTORE every archived key into the target. TTLs keep their absolute expiry: the ttl passed is
 * what is left of it now, and keys already past it are skipped and counted. Standalone targets get
 * one pipelined batch of EXISTS + RESTORE per batch of records, PIPELINE_DEPTH batches in flight;
 * a cluster target gets single-key commands (ioredis refuses pipelines that span slots), with the
 * same number of batches in flight.
 */
export async function restoreRedisLogical(target: Redis | Cluster, opts: RedisRestoreOptions): Promise<RedisRestoreResult> {
  const started = Date.now();
  const size = opts.batchSize ?? 1000;
  const result: RedisRestoreResult = { restored: 0, expired_skipped: 0, replaced: 0, by_type: {}, bytes: 0, duration_ms: 0 };
  const cluster = isCluster(target);
  for (const section of opts.dbs) {
    if (cluster && section.db !== 0) throw new Error(`redis restore: archive holds db${section.db} (${section.file}) but the target is a cluster, which only has db 0`);
    const conn: RestoreConn = cluster ? new ClusterConn(target) : await restoreConn(target as Redis, section.db);
    const inflight: Array<{ items: Array<RestoreItem & { rec: RedisRecord }>; replies: Promise<Reply[]> }> = [];
    const settle = async () => {
      const head = inflight.shift()!;
      const replies = await head.replies;
      head.items.forEach((item, i) => {
        const existed = replies[2 * i];
        const restored = replies[2 * i + 1];
        const err = existed instanceof Error ? existed : restored instanceof Error ? restored : undefined;
        if (err) throw new Error(`RESTORE of key ${recordKeyLabel(item.rec)} (${item.rec.t}) from ${section.file} failed: ${err.message}`);
        if (existed === 1) result.replaced++;
        result.restored++;
        result.bytes += item.payload.length;
        result.by_type[item.rec.t] = (result.by_type[item.rec.t] ?? 0) + 1;
      });
      opts.onProgress?.({ phase: 'redis-restore', node: section.node, db: section.db, keys: result.restored, bytes: result.bytes });
    };
    try {
      for await (const batch of recordBatches(join(opts.root, section.file), section.file, size)) {
        const now = Date.now();
        const live: Array<RestoreItem & { rec: RedisRecord }> = [];
        for (const rec of batch) {
          const ttl = remainingTtl(rec, now);
          if (ttl === 0) {
            result.expired_skipped++;
            continue;
          }
          live.push({ rec, key: rec.key, ttl: ttl < 0 ? 0 : ttl, payload: rec.v });
        }
        if (!live.length) continue;
        inflight.push({ items: live, replies: quiet(conn.restore(live)) });
        if (inflight.length >= PIPELINE_DEPTH) await settle();
      }
      while (inflight.length) await settle();
    } finally {
      conn.close();
    }
  }
  result.duration_ms = Date.now() - started;
  return result;
}
