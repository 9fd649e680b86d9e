// Logical Redis backup and restore: SCAN every master and, per batch of keys, pipeline PTTL + DUMP
// and append length-prefixed binary records to disk (archive.ts, .rdump); restore with pipelined
// EXISTS + RESTORE <key> <ttl> <payload> REPLACE.
//
// Speed: SCAN runs one call ahead on the caller's ioredis connection while the PTTL/DUMP batches go
// over a dedicated raw RESP connection (RespConn below): one buffer written and one promise per
// batch, replies parsed straight into views of the socket buffers. ioredis costs a Command object,
// a promise and reply bookkeeping per command, which was most of the time (and the GC load) at
// 2-3 commands per key. TYPE is read from the DUMP payload's first byte (the RDB object type), so
// it costs no command (TYPE is asked only for types the table does not know, e.g. modules).
//
// Memory bound: at most PIPELINE_DEPTH batches are in flight (sent, replies pending or being
// encoded) plus one SCAN reply and the keys queued for the next batch, plus the file stream's
// buffer (4 MB high-water mark; awaited on 'drain' only when write() reports it is full). A batch
// holds at most sizing.max keys and is sized from the bytes the last one produced
// (nextBatchSize), so steady-state memory is about PIPELINE_DEPTH x maxBatchBytes (4 x 8 MB),
// independent of the keyspace size. Restore mirrors it: PIPELINE_DEPTH batches of RESTOREs in
// flight, fed by a reader that holds one 1 MB read chunk (or one record, if larger).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import {
  ArchiveError,
  HashingWriter,
  RDUMP_EXT,
  RDUMP_HEADER,
  countPrefix,
  encodeEnd,
  encodeRecords,
  fromJsonRecord,
  readRdumpBatches,
  recordKeyLabel,
  type FileEntry,
  type RecordToEncode,
  type RedisDbSection,
  type RedisJsonRecord,
  type RedisRecord,
} from './archive.js';

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
}

export interface RedisBackupOptions {
  root: string;
  sizing?: BatchSizing;
  onProgress?: (p: RedisProgress) => void;
}

export interface RedisBackupResult {
  server_version: string;
  cluster: boolean;
  dbs: RedisDbSection[];
  files: Record<string, FileEntry>;
}


// ---------------------------------------------------------------------------------------------
// Connections for the batched commands

/** A RESP reply: integer, bulk (null when nil), simple string, or an error reply. */
type Reply = number | Buffer | string | null | RespError;

class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyError';
  }
}

/** Batched per-key commands; several calls may be in flight at once, replies come in call order. */
interface BatchConn {
  /** PTTL and DUMP per key: 2 replies per key. */
  dump(keys: Buffer[]): Promise<Reply[]>;
  /** TYPE per key. */
  types(keys: Buffer[]): Promise<Reply[]>;
  /** EXISTS and RESTORE key ttl payload REPLACE per item: 2 replies per item. */
  restore(items: RestoreItem[]): Promise<Reply[]>;
  close(): void;
}

interface RestoreItem {
  key: Buffer;
  ttl: number;
  payload: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HDR_PTTL = Buffer.from('*2\r\n$4\r\nPTTL\r\n');
const HDR_DUMP = Buffer.from('*2\r\n$4\r\nDUMP\r\n');
const HDR_TYPE = Buffer.from('*2\r\n$4\r\nTYPE\r\n');
const HDR_EXISTS = Buffer.from('*2\r\n$6\r\nEXISTS\r\n');
const HDR_RESTORE = Buffer.from('*5\r\n$7\r\nRESTORE\r\n');
const ARG_REPLACE = Buffer.from('$7\r\nREPLACE\r\n');

function respArgs(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

/** Appends RESP commands into one buffer, growing it as needed. */
class RespBuilder {
  private buf: Buffer;
  private o = 0;
  constructor(estimate: number) {
    this.buf = Buffer.allocUnsafe(Math.max(256, estimate));
  }
  private room(n: number): void {
    if (this.o + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.o + n));
    this.buf.copy(next, 0, 0, this.o);
    this.buf = next;
  }
  raw(b: Buffer): this {
    this.room(b.length);
    this.o += b.copy(this.buf, this.o);
    return this;
  }
  bulk(b: Buffer): this {
    this.room(b.length + 16);
    this.buf[this.o++] = 0x24; // $
    this.o += this.buf.write(String(b.length), this.o, 'latin1');
    this.buf[this.o++] = 13;
    this.buf[this.o++] = 10;
    this.o += b.copy(this.buf, this.o);
    this.buf[this.o++] = 13;
    this.buf[this.o++] = 10;
    return this;
  }
  bulkText(s: string): this {
    return this.bulk(Buffer.from(s, 'latin1'));
  }
  done(): Buffer {
    return this.buf.subarray(0, this.o);
  }
}

interface PendingCall {
  n: number;
  replies: Reply[];
  resolve: (r: Reply[]) => void;
  reject: (e: Error) => void;
}

/**
 * A minimal pipelined RESP2 connection: writes pre-encoded command batches and resolves each batch
 * with its replies (integers, bulk strings as views of the received buffers, simple strings and
 * error replies; no arrays, which none of the commands sent here return).
 */
class RespConn implements BatchConn {
  private readonly queue: PendingCall[] = [];
  private parts: Buffer[] = [];
  private have = 0;
  /** Bytes needed before parsing can make progress (a bulk reply split across reads). */
  private need = 1;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly label: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => this.fail(new Error(`redis connection to ${label}: ${err.message}`)));
    socket.on('close', () => this.fail(new Error(`redis connection to ${label} closed`)));
  }

  /** Connects like the given ioredis client (host/port or path, TLS, AUTH) and SELECTs db. */
  static async open(o: RedisOptions, db: number): Promise<RespConn> {
    const host = o.host ?? '127.0.0.1';
    const port = o.port ?? 6379;
    const label = o.path ?? `${host}:${port}`;
    const socket: Socket = o.tls
      ? tlsConnect({ host, port, ...o.tls })
      : o.path
        ? netConnect(o.path)
        : netConnect({ host, port, ...(o.family ? { family: o.family } : {}) });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error(`connect timed out after ${o.connectTimeout ?? 10_000} ms`)), o.connectTimeout ?? 10_000);
      socket.once(o.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', onErr);
        resolve();
      });
      const onErr = (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`redis connection to ${label}: ${err.message}`));
      };
      socket.once('error', onErr);
    });
    const conn = new RespConn(socket, label);
    try {
      const hello: Buffer[] = [];
      if (o.password) hello.push(respArgs(o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password]));
      if (db) hello.push(respArgs(['SELECT', String(db)]));
      if (hello.length) {
        for (const r of await conn.call(Buffer.concat(hello), hello.length)) if (r instanceof Error) throw new Error(`redis ${label}: ${r.message}`);
      }
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  call(payload: Buffer, n: number): Promise<Reply[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (n === 0) return Promise.resolve([]);
    return new Promise<Reply[]>((resolve, reject) => {
      this.queue.push({ n, replies: [], resolve, reject });
      this.socket.write(payload);
    });
  }

  dump(keys: Buffer[]): Promise<Reply[]> {
    const b = new RespBuilder(keys.length * 64);
    for (const k of keys) b.raw(HDR_PTTL).bulk(k).raw(HDR_DUMP).bulk(k);
    return this.call(b.done(), keys.length * 2);
  }

  types(keys: Buffer[]): Promise<Reply[]> {
    const b = new RespBuilder(keys.length * 40);
    for (const k of keys) b.raw(HDR_TYPE).bulk(k);
    return this.call(b.done(), keys.length);
  }

  restore(items: RestoreItem[]): Promise<Reply[]> {
    let est = 0;
    for (const it of items) est += 2 * it.key.length + it.payload.length + 96;
    const b = new RespBuilder(est);
    for (const it of items) b.raw(HDR_EXISTS).bulk(it.key).raw(HDR_RESTORE).bulk(it.key).bulkText(String(it.ttl)).bulk(it.payload).raw(ARG_REPLACE);
    return this.call(b.done(), items.length * 2);
  }

  close(): void {
    this.failure ??= new Error(`redis connection to ${this.label} closed`);
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.queue.splice(0)) p.reject(this.failure);
  }

  private onData(d: Buffer): void {
    this.parts.push(d);
    this.have += d.length;
    if (this.have < this.need) return;
    const buf = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.have);
    let pos = 0;
    this.need = 1;
    try {
      while (pos < buf.length) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0) {
          this.need = buf.length - pos + 1;
          break;
        }
        const kind = buf[pos];
        let reply: Reply;
        let end = nl + 1;
        if (kind === 0x3a /* : */) {
          reply = parseIntAt(buf, pos + 1, nl - 1);
        } else if (kind === 0x24 /* $ */) {
          const len = parseIntAt(buf, pos + 1, nl - 1);
          if (len < 0) reply = null;
          else {
            end = nl + 1 + len + 2;
            if (end > buf.length) {
              this.need = end - pos;
              break;
            }
            reply = buf.subarray(nl + 1, nl + 1 + len);
          }
        } else if (kind === 0x2b /* + */) {
          reply = buf.toString('latin1', pos + 1, nl - 1);
        } else if (kind === 0x2d /* - */) {
          reply = new RespError(buf.toString('utf8', pos + 1, nl - 1));
        } else {
          throw new Error(`redis connection to ${this.label}: unexpected reply type ${JSON.stringify(String.fromCharCode(kind ?? 0))}`);
        }
        pos = end;
        const head = this.queue[0];
        if (!head) throw new Error(`redis connection to ${this.label}: reply without a request`);
        head.replies.push(reply);
        if (head.replies.length === head.n) {
          this.queue.shift();
          head.resolve(head.replies);
        }
      }
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
      return;
    }
    const rest = buf.subarray(pos);
    this.parts = rest.length ? [rest] : [];
    this.have = rest.length;
  }
}

function parseIntAt(buf: Buffer, from: number, to: number): number {
  let neg = false;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c === 0x2d) neg = true;
    else n = n * 10 + (c - 48);
  }
  return neg ? -n : n;
}

function toReply(err: Error | null, v: unknown): Reply {
  if (err) return new RespError(err.message);
  if (v == null) return null;
  if (Buffer.isBuffer(v) || typeof v === 'number' || typeof v === 'string') return v;
  return String(v);
}

/** The same batches through ioredis pipelines (clients RespConn cannot reproduce, e.g. Sentinel). */
class PipelineConn implements BatchConn {
  constructor(
    private readonly client: Redis,
    private readonly owned: boolean,
  ) {}
  private async exec(pipe: ReturnType<Redis['pipeline']>): Promise<Reply[]> {
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, v]) => toReply(err, v));
  }
  dump(keys: Buffer[]): Promise<Reply[]> {
    const pipe = this.client.pipeline();
    for (const k of keys) pipe.pttl(k).dumpBuffer(k);
    return this.exec(pipe);
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
    if (this.owned) this.client.disconnect();
  }
}

/** A cluster target: single-key commands (ioredis routes them per slot), one batch at a time each. */
class ClusterConn implements BatchConn {
  constructor(private readonly client: Cluster) {}
  private settle<T>(p: Promise<T>): Promise<Reply> {
    return p.then(
      (v) => toReply(null, v),
      (e: Error) => toReply(e, null),
    );
  }
  async dump(keys: Buffer[]): Promise<Reply[]> {
    return Promise.all(keys.flatMap((k) => [this.settle(this.client.pttl(k)), this.settle(this.client.dumpBuffer(k))]));
  }
  async types(keys: Buffer[]): Promise<Reply[]> {
    return Promise.all(keys.map((k) => this.settle(this.client.type(k))));
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

/** A batch connection to the same server and db as `client`. */
async function batchConn(client: Redis, db: number): Promise<BatchConn> {
  const o = client.options;
  // Sentinel and custom connectors resolve the endpoint themselves: use ioredis for those.
  if (o.sentinels?.length || (o as { Connector?: unknown }).Connector) return new PipelineConn(client.duplicate({ db }), true);
  return RespConn.open(o, db);
}

// ---------------------------------------------------------------------------------------------
// Backup

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

export async function backupRedisLogical(source: RedisSource, opts: RedisBackupOptions): Promise<RedisBackupResult> {
  const sizing = opts.sizing ?? DEFAULT_SIZING;
  const dbs: RedisDbSection[] = [];
  const files: Record<string, FileEntry> = {};
  const first = source.nodes[0];
  if (!first) throw new Error('redis backup: no master nodes to back up');
  const server_version = await redisVersion(first.client);
  for (const node of source.nodes) {
    // Cluster mode has only db 0; standalone: every non-empty database (db 0 always, even if empty).
    const listed = source.cluster ? [] : (await keyspaceDbs(node.client)).map((d) => d.db);
    const dbNumbers = [...new Set([0, ...listed])].sort((a, b) => a - b);
    for (const db of dbNumbers) {
      // Dedicated connections per db so SELECT never changes the caller's client: one (ioredis)
      // for SCAN, one for the DUMP batches. Cluster masters only have db 0.
      const client = source.cluster ? node.client : node.client.duplicate({ db });
      let conn: BatchConn | undefined;
      try {
        conn = await batchConn(node.client, source.cluster ? 0 : db);
        const rel = `redis/${node.label}.db${db}${RDUMP_EXT}`;
        const section = await dumpDb(client, conn, node.label, db, join(opts.root, rel), rel, sizing, opts.onProgress);
        files[rel] = section.entry;
        dbs.push(section.section);
      } finally {
        conn?.close();
        if (!source.cluster) client.disconnect();
      }
    }
  }
  return { server_version, cluster: source.cluster, dbs, files };
}

async function dumpDb(
  client: Redis,
  conn: BatchConn,
  label: string,
  db: number,
  path: string,
  rel: string,
  sizing: BatchSizing,
  onProgress?: (p: RedisProgress) => void,
): Promise<{ section: RedisDbSection; entry: FileEntry }> {
  const out = await HashingWriter.create(path);
  const by_type: Record<string, number> = {};
  const by_prefix: Record<string, number> = {};
  let keys = 0;
  let vanished = 0;
  let batch = Math.min(sizing.max, Math.max(sizing.min, 1000));
  const scan_started_ms = Date.now();
  const inflight: Array<{ keys: Buffer[]; replies: Promise<Reply[]> }> = [];
  let stopScan = false;
  let roomFreed: (() => void) | undefined;
  try {
    out.writeNow(RDUMP_HEADER);
    // SCAN runs on its own (the caller's ioredis connection), independently of the batches, and
    // stays ahead until `queue` holds enough keys for every batch the pipeline can take; the
    // batches take keys from the queue. (A SCAN only starts once the previous one answered, so
    // waiting for it in line with the batches would make every batch pay a SCAN round trip.)
    let queue: Buffer[] = [];
    let qpos = 0;
    let scanDone = false;
    let scanError: Error | undefined;
    let keysArrived: (() => void) | undefined;
    const queued = () => queue.length - qpos;
    const queueLimit = PIPELINE_DEPTH * sizing.max + SCAN_COUNT;
    const scanner = (async () => {
      let cursor = '0';
      do {
        while (queued() >= queueLimit && !stopScan) await new Promise<void>((r) => (roomFreed = r));
        if (stopScan) return;
        const [next, found] = await client.scanBuffer(cursor, 'COUNT', SCAN_COUNT);
        cursor = String(next);
        if (found.length) {
          queue = qpos ? queue.slice(qpos).concat(found) : queue.length ? queue.concat(found) : found;
          qpos = 0;
        }
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
    for (;;) {
      // Fill the pipeline: up to PIPELINE_DEPTH batches in flight.
      while (inflight.length < PIPELINE_DEPTH) {
        if (scanError) throw new Error(`redis backup ${label} db${db}: SCAN failed: ${scanError.message}`);
        if (queued() >= batch || (scanDone && queued() > 0)) {
          const slice = queue.slice(qpos, qpos + batch);
          qpos += slice.length;
          roomFreed?.();
          inflight.push({ keys: slice, replies: quiet(conn.dump(slice)) });
          continue;
        }
        if (scanDone) break;
        // Not enough keys for a full batch: send what there is rather than idle, else wait.
        if (!inflight.length && queued() > 0) {
          const slice = queue.slice(qpos);
          qpos = queue.length;
          roomFreed?.();
          inflight.push({ keys: slice, replies: quiet(conn.dump(slice)) });
          continue;
        }
        if (inflight.length) break;
        await new Promise<void>((r) => (keysArrived = r));
        keysArrived = undefined;
      }
      const head = inflight.shift();
      if (!head) break;
      const replies = await head.replies;
      const at = Date.now();
      const recs: Array<RecordToEncode & { t: string }> = [];
      let unknown: number[] | undefined;
      let batchBytes = 0;
      for (let j = 0; j < head.keys.length; j++) {
        const key = head.keys[j]!;
        const pttl = replies[2 * j];
        const dump = replies[2 * j + 1];
        const err = pttl instanceof Error ? pttl : dump instanceof Error ? dump : undefined;
        if (err) throw new Error(`redis backup ${label} db${db}: reading key ${key.toString('utf8')} failed: ${err.message}`);
        // Gone between SCAN and DUMP (expired or deleted): not part of the backup.
        if (dump == null || pttl === -2) {
          vanished++;
          continue;
        }
        if (!Buffer.isBuffer(dump) || typeof pttl !== 'number' || dump.length === 0) {
          throw new Error(`redis backup ${label} db${db}: unexpected PTTL/DUMP reply for key ${key.toString('utf8')}`);
        }
        const t = RDB_TYPE_NAMES[dump[0]!];
        if (t === undefined) (unknown ??= []).push(recs.length);
        recs.push({ key, t: t ?? '', type: typeBytes(t ?? ''), p: pttl, e: pttl >= 0 ? at + pttl : -1, v: dump });
        batchBytes += dump.length;
      }
      if (unknown) {
        // Module types (and any RDB type newer than this table): ask the server.
        const types = await conn.types(unknown.map((i) => recs[i]!.key));
        unknown.forEach((i, n) => {
          const t = types[n];
          if (t instanceof Error || typeof t !== 'string' || t === 'none') {
            throw new Error(`redis backup ${label} db${db}: TYPE of key ${recs[i]!.key.toString('utf8')} failed: ${t instanceof Error ? t.message : String(t)}`);
          }
          recs[i]!.type = typeBytes(t);
          recs[i]!.t = t;
        });
      }
      for (const r of recs) {
        by_type[r.t] = (by_type[r.t] ?? 0) + 1;
        countPrefix(by_prefix, r.key);
      }
      keys += recs.length;
      if (recs.length && !out.writeNow(encodeRecords(recs))) await out.drained();
      batch = nextBatchSize(batch, batchBytes, sizing);
      onProgress?.({ phase: 'redis-backup', node: label, db, keys, bytes: out.bytes });
    }
    await scanner;
    if (scanError) throw new Error(`redis backup ${label} db${db}: SCAN failed: ${(scanError as Error).message}`);
    out.writeNow(encodeEnd(keys));
    const entry = await out.close();
    return {
      section: { node: label, db, file: rel, keys, by_type, by_prefix, vanished, scan_started_ms, scan_finished_ms: Date.now() },
      entry,
    };
  } catch (err) {
    out.abort();
    stopScan = true;
    roomFreed?.();
    throw err;
  }
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
    const conn: BatchConn = cluster ? new ClusterConn(target) : await batchConn(target as Redis, section.db);
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
