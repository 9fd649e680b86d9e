// The on-disk backup archive: directory layout, manifest, and the checksums that let a drill (or a
// human) prove later that no file changed since the backup was taken.
//
// Layout (one directory per backup):
//   manifest.json                         what was backed up, counts, sizes, sha256 of every file
//   redis/<node>.db<N>.rdump              logical Redis dump, length-prefixed binary records (see
//                                         encodeRecords); format /1 archives hold .jsonl instead
//                                         (one JSON line per key), which restore and verify still read
//   redis/<node>.rdb                      optional physical RDB copy per master
//   jetstream/<STREAM>/backup.json        {config, state} exactly as the snapshot API answered
//   jetstream/<STREAM>/stream.tar.s2      snapshot bytes exactly as the server sent them
// The jetstream/<STREAM>/ directories use the same two file names the NATS CLI writes, so either
// tool can restore the other's stream directories.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, fdatasync, type WriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { copyInto } from './resp.js';
import { MiB, readUserFileAsync } from '../files.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'cordum-runbooks-backup/2';
/** Format /1 differs only in its Redis files (JSONL with base64 payloads); it is still readable. */
export const MANIFEST_FORMAT_V1 = 'cordum-runbooks-backup/1';

export type RedisKeyType = 'string' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | string;

/** One key of a logical Redis dump, as read back from an archive file. */
export interface RedisRecord {
  /** Key bytes. */
  key: Buffer;
  /** TYPE at capture. */
  t: RedisKeyType;
  /** PTTL at capture: -1 = no expiry, otherwise remaining milliseconds. */
  p: number;
  /** Absolute expiry (drill clock, epoch ms) = capture time + p; absent when p = -1. */
  e?: number;
  /** DUMP payload. */
  v: Buffer;
}

/** A format /1 JSONL line: key as UTF-8 text (`k`) or base64 (`kb`), payload base64. */
export interface RedisJsonRecord {
  k?: string;
  kb?: string;
  t: RedisKeyType;
  p: number;
  e?: number;
  v: string;
}

export interface FileEntry {
  bytes: number;
  sha256: string;
}

export interface RedisDbSection {
  node: string;
  db: number;
  file: string;
  keys: number;
  by_type: Record<string, number>;
  by_prefix: Record<string, number>;
  /** Keys SCAN returned but that were gone (expired/deleted) by the time DUMP ran. */
  vanished: number;
  /** Newest absolute expiry seen is irrelevant for RPO; the scan window is what matters. */
  scan_started_ms: number;
  scan_finished_ms: number;
  /**
   * How the records were read (absent in archives from before the RDB path: 'scan'). 'rdb': parsed
   * from the RDB the server streamed over SYNC, as of its fork; scan_started_ms is then the
   * snapshot time (client clock) and vanished is 0.
   */
  source?: 'scan' | 'rdb';
  /** RDB path: keys in the snapshot whose expiry was at or before the snapshot time (not archived). */
  expired_at_snapshot?: number;
  /** SCAN path chosen or fallen back to: why the RDB path was not used for this node. */
  rdb_skipped?: string;
}

export interface RdbSection {
  node: string;
  file: string;
  bytes: number;
  rdb_version: number;
  mode: 'diskless' | 'disk';
}

export interface StreamSection {
  name: string;
  dir: string;
  /** State from the snapshot response (the moment the snapshot began). */
  state: Record<string, unknown> & { messages: number; first_seq: number; last_seq: number; last_ts?: string; consumer_count?: number };
  consumers: ConsumerSummary[];
  chunks: number;
  bytes: number;
  started_ms: number;
  finished_ms: number;
}

export interface ConsumerSummary {
  name: string;
  durable: boolean;
  delivered_stream_seq: number;
  ack_floor_stream_seq: number;
  num_ack_pending: number;
  /** The subjects it delivers (filter_subject / filter_subjects); absent or empty: every subject. */
  filter_subjects?: string[];
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT | typeof MANIFEST_FORMAT_V1;
  source: string;
  started_at: string;
  finished_at: string;
  redis?: {
    server_version: string;
    cluster: boolean;
    dbs: RedisDbSection[];
    rdb: RdbSection[];
  };
  jetstream?: {
    server_version: string;
    streams: StreamSection[];
  };
  /** Every data file, path relative to the archive root. */
  files: Record<string, FileEntry>;
}

/** Keys are grouped by the text before the first ':'; the number of groups is capped so a keyspace
 * of colon-less keys cannot make the counters grow without bound. */
export const MAX_PREFIXES = 1000;
export const NO_PREFIX = '(none)';
export const OTHER_PREFIX = '(other)';

/** The bytes as text when they are valid UTF-8, else undefined (fast path for plain ASCII). */
function utf8Text(raw: Buffer): string | undefined {
  let ascii = true;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return raw.toString('latin1');
  const text = raw.toString('utf8');
  return Buffer.from(text, 'utf8').equals(raw) ? text : undefined;
}

/** Text before the first ':' of a (possibly binary) key; non-UTF-8 prefixes are shown as base64. */
export function keyPrefix(key: Buffer): string {
  const i = key.indexOf(0x3a);
  if (i < 0) return NO_PREFIX;
  const raw = key.subarray(0, i);
  return utf8Text(raw) ?? `base64:${raw.toString('base64')}`;
}

export function countPrefix(counts: Record<string, number>, key: Buffer): void {
  let p = keyPrefix(key);
  if (!(p in counts) && Object.keys(counts).length >= MAX_PREFIXES) p = OTHER_PREFIX;
  counts[p] = (counts[p] ?? 0) + 1;
}

interface PrefixLabel {
  label: string;
  n: number;
}

/**
 * countPrefix for a whole keyspace without a string per key: a prefix is looked up by a hash of its
 * bytes (different bytes always make a different label), and its label is made once. result()
 * equals what countPrefix gives for the same keys in the same order, cap included. Memory stays
 * bounded: only prefixes that got a label of their own (at most MAX_PREFIXES) are remembered.
 */
export class PrefixCounter {
  private readonly byHash = new Map<number, Array<{ bytes: Buffer; to: PrefixLabel }>>();
  private readonly byLabel = new Map<string, PrefixLabel>();
  /** Where colon-less keys go (NO_PREFIX, or OTHER_PREFIX if the cap came first). */
  private none: PrefixLabel | undefined;

  add(key: Uint8Array, start: number, end: number): void {
    let colon = -1;
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) {
      const c = key[i]!;
      if (c === 0x3a) {
        colon = i;
        break;
      }
      h = Math.imul(h ^ c, 0x01000193);
    }
    if (colon < 0) {
      (this.none ??= this.labelFor(NO_PREFIX)).n++;
      return;
    }
    const len = colon - start;
    const known = this.byHash.get(h);
    if (known) {
      next: for (const k of known) {
        if (k.bytes.length !== len) continue;
        for (let i = 0; i < len; i++) if (k.bytes[i] !== key[start + i]) continue next;
        k.to.n++;
        return;
      }
    }
    const bytes = Buffer.from(key.subarray(start, colon));
    const to = this.labelFor(utf8Text(bytes) ?? `base64:${bytes.toString('base64')}`);
    to.n++;
    if (to.label === OTHER_PREFIX && this.byLabel.size >= MAX_PREFIXES) return; // refused by the cap: not remembered
    if (known) known.push({ bytes, to });
    else this.byHash.set(h, [{ bytes, to }]);
  }

  /** The label's counter; a new one while under the cap, else OTHER_PREFIX's (as countPrefix does). */
  private labelFor(label: string): PrefixLabel {
    let l = this.byLabel.get(label);
    if (l) return l;
    if (this.byLabel.size >= MAX_PREFIXES) label = OTHER_PREFIX;
    l = this.byLabel.get(label);
    if (!l) this.byLabel.set(label, (l = { label, n: 0 }));
    return l;
  }

  result(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.byLabel.values()) out[l.label] = l.n;
    return out;
  }
}

export function recordKey(rec: RedisRecord): Buffer {
  return rec.key;
}

/** Human-readable key for messages (binary keys shown as base64). */
export function recordKeyLabel(rec: RedisRecord): string {
  return utf8Text(rec.key) ?? `base64:${rec.key.toString('base64')}`;
}

/** A format /1 JSONL line as a record. */
export function fromJsonRecord(rec: RedisJsonRecord): RedisRecord {
  const key = rec.k !== undefined ? Buffer.from(rec.k, 'utf8') : Buffer.from(rec.kb ?? '', 'base64');
  return { key, t: rec.t, p: rec.p, ...(rec.e !== undefined ? { e: rec.e } : {}), v: Buffer.from(rec.v, 'base64') };
}

// ---------------------------------------------------------------------------------------------
// Binary logical dump (.rdump), format /2. All integers little-endian.
//   header   8 bytes  "CRBKRD2\n"
//   record   u32 body length, then the body:
//              u8 type length, type (ASCII, e.g. "hash" or a module type name)
//              f64 PTTL at capture (-1 = no expiry)
//              f64 absolute expiry, epoch ms (-1 when there is none)
//              u32 key length, key bytes
//              DUMP payload (the rest of the body)
//   end      u32 0xFFFFFFFF, f64 number of records; nothing may follow
// The end marker makes a file cut at a record boundary detectable without the manifest; the
// manifest's sha256 still covers every byte.

export const RDUMP_EXT = '.rdump';
export const RDUMP_HEADER = Buffer.from('CRBKRD2\n', 'latin1');
const RDUMP_END = 0xffffffff;
/** Fixed part of a record body: type length byte, PTTL, expiry, key length. */
const RDUMP_FIXED = 1 + 8 + 8 + 4;

export interface RecordToEncode {
  key: Buffer;
  /** Type name as bytes (ASCII). */
  type: Buffer;
  p: number;
  /** Absolute expiry, or -1. */
  e: number;
  v: Buffer;
}

/** Bytes one record takes in the file. */
export function recordSize(typeLen: number, keyLen: number, valueLen: number): number {
  return 4 + RDUMP_FIXED + typeLen + keyLen + valueLen;
}

/** A record's bytes before its payload (length, type, PTTL, expiry, key), for a payload written separately. */
export function encodeRecordHead(type: Buffer, p: number, e: number, key: Uint8Array, ks: number, ke: number, payloadLen: number): Buffer {
  const head = Buffer.allocUnsafe(recordSize(type.length, ke - ks, 0));
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  view.setUint32(0, recordSize(type.length, ke - ks, payloadLen) - 4, true);
  head[4] = type.length;
  let o = copyInto(head, 5, type, 0, type.length);
  view.setFloat64(o, p, true);
  view.setFloat64(o + 8, e, true);
  view.setUint32(o + 16, ke - ks, true);
  copyInto(head, o + 20, key, ks, ke);
  return head;
}

/** Encode records into one buffer. */
export function encodeRecords(recs: RecordToEncode[]): Buffer {
  let size = 0;
  for (const r of recs) size += recordSize(r.type.length, r.key.length, r.v.length);
  const parts: Buffer[] = [];
  const chunker = new RecordChunker((b) => parts.push(b), Math.max(1, size));
  for (const r of recs) chunker.add(r.type, r.p, r.e, r.key, 0, r.key.length, r.v, 0, r.v.length);
  chunker.flush();
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}

/**
 * Packs records into large chunks as they arrive and hands each filled stretch to `emit` (the file
 * writer): one write per chunk rather than per key or per batch. Key and payload are byte ranges of
 * their source buffers, so callers copy straight from socket buffers. Emitted buffers are views of
 * a chunk that is not written again while the writer may hold them; a chunk is replaced when full.
 *
 * With `recycle`, a full chunk's last stretch is emitted with a `written` callback, which the
 * writer calls once that stretch (and so, writes completing in order, the whole chunk) is on its
 * way to the file; the chunk then serves again instead of a fresh one. A backup fills one chunk
 * per ~7000 keys, and fresh memory costs page faults and unmaps each time (a fifth of a short
 * backup's CPU before this); at most RECYCLED_CHUNKS are kept, so memory stays what it was.
 */
export class RecordChunker {
  private chunk: Buffer;
  private view: DataView;
  private start = 0;
  private o = 0;
  private readonly spare: Buffer[] = [];
  records = 0;
  constructor(
    private readonly emit: (bytes: Buffer, written?: () => void) => void,
    private readonly chunkSize = 1 << 20,
    private readonly recycle = false,
  ) {
    this.chunk = Buffer.allocUnsafe(chunkSize);
    this.view = new DataView(this.chunk.buffer, this.chunk.byteOffset, this.chunk.length);
  }
  /** Bytes packed but not yet emitted. */
  get pending(): number {
    return this.o - this.start;
  }
  add(type: Buffer, p: number, e: number, key: Uint8Array, ks: number, ke: number, v: Uint8Array, vs: number, ve: number): void {
    // reserve() may move on to a new chunk: take this.chunk after it.
    const o = this.reserve(type, p, e, key, ks, ke, ve - vs);
    copyInto(this.chunk, o, v, vs, ve);
  }
  /**
   * Pack one record whose payload (payloadLen bytes) the caller writes itself, into `current` at the
   * returned offset, before the next call (the RDB path builds DUMP payloads in place this way).
   */
  reserve(type: Buffer, p: number, e: number, key: Uint8Array, ks: number, ke: number, payloadLen: number): number {
    const tlen = type.length;
    const klen = ke - ks;
    const size = recordSize(tlen, klen, payloadLen);
    if (this.o + size > this.chunk.length) this.nextChunk(size);
    const out = this.chunk;
    const view = this.view;
    let o = this.o;
    view.setUint32(o, size - 4, true);
    out[o + 4] = tlen;
    o = copyInto(out, o + 5, type, 0, tlen);
    view.setFloat64(o, p, true);
    view.setFloat64(o + 8, e, true);
    view.setUint32(o + 16, klen, true);
    o = copyInto(out, o + 20, key, ks, ke);
    this.o = o + payloadLen;
    this.records++;
    return o;
  }
  /** The chunk reserve() packed into. */
  get current(): Buffer {
    return this.chunk;
  }
  /** Emit what is packed so far. */
  flush(): void {
    if (this.o > this.start) this.emit(this.chunk.subarray(this.start, this.o));
    this.start = this.o;
  }

  /** Retire the full chunk (to the spares once written, when recycling) and start another. */
  private nextChunk(size: number): void {
    const full = this.chunk;
    if (this.recycle && this.o > this.start && full.length === this.chunkSize) {
      this.emit(full.subarray(this.start, this.o), () => {
        if (this.spare.length < RECYCLED_CHUNKS) this.spare.push(full);
      });
    } else this.flush();
    this.chunk = size <= this.chunkSize ? (this.spare.pop() ?? Buffer.allocUnsafe(this.chunkSize)) : Buffer.allocUnsafe(size);
    this.view = new DataView(this.chunk.buffer, this.chunk.byteOffset, this.chunk.length);
    this.start = this.o = 0;
  }
}

/** Written chunks a recycling RecordChunker keeps for reuse (the file stream holds about 4 MB). */
const RECYCLED_CHUNKS = 4;

export function encodeEnd(records: number): Buffer {
  const out = Buffer.allocUnsafe(12);
  out.writeUInt32LE(RDUMP_END, 0);
  out.writeDoubleLE(records, 4);
  return out;
}

/**
 * Stream the records of a .rdump file in batches of up to `size`. Records are views into the read
 * buffers (no per-key copies); memory is one read chunk (or one record, if larger) plus the batch.
 * Any framing problem names the file, the record number and its byte offset.
 */
export async function* readRdumpBatches(path: string, rel: string, size: number): AsyncGenerator<RedisRecord[]> {
  const bad = (n: number, at: number, what: string) => new ArchiveError('corrupt-record', `archive file ${rel} record ${n} at byte ${at}: ${what}`, rel);
  let parts: Buffer[] = [];
  let have = 0;
  /** Bytes needed before parsing can progress. */
  let need = RDUMP_HEADER.length;
  let offset = 0; // file offset of parts[0][0]
  let headerSeen = false;
  let ended = false;
  let n = 0;
  let batch: RedisRecord[] = [];
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    parts.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    if (have < need) continue;
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
    let pos = 0;
    if (!headerSeen) {
      if (!buf.subarray(0, RDUMP_HEADER.length).equals(RDUMP_HEADER)) {
        throw new ArchiveError('corrupt-record', `archive file ${rel} does not start with the ${JSON.stringify(RDUMP_HEADER.toString('latin1'))} header`, rel);
      }
      headerSeen = true;
      pos = RDUMP_HEADER.length;
    }
    need = 0;
    while (pos < buf.length) {
      if (ended) throw new ArchiveError('corrupt-record', `archive file ${rel} has ${buf.length - pos} bytes after its end marker at byte ${offset + pos}`, rel);
      if (buf.length - pos < 4) {
        need = 4;
        break;
      }
      const len = buf.readUInt32LE(pos);
      if (len === RDUMP_END) {
        if (buf.length - pos < 12) {
          need = 12;
          break;
        }
        const count = buf.readDoubleLE(pos + 4);
        if (count !== n) throw bad(n + 1, offset + pos, `end marker says ${count} records, the file holds ${n}`);
        ended = true;
        pos += 12;
        continue;
      }
      if (len < RDUMP_FIXED) throw bad(n + 1, offset + pos, `body length ${len} is shorter than a record`);
      if (buf.length - pos < 4 + len) {
        need = 4 + len;
        break;
      }
      const b = pos + 4;
      const tlen = buf[b]!;
      const klenAt = b + 1 + tlen + 16;
      if (1 + tlen + 16 + 4 > len) throw bad(n + 1, offset + pos, `type length ${tlen} overruns the record`);
      const klen = buf.readUInt32LE(klenAt);
      if (RDUMP_FIXED + tlen + klen > len) throw bad(n + 1, offset + pos, `key length ${klen} overruns the record`);
      const p = buf.readDoubleLE(b + 1 + tlen);
      const e = buf.readDoubleLE(b + 1 + tlen + 8);
      if (!Number.isInteger(p) || p < -1 || !Number.isInteger(e) || e < -1) throw bad(n + 1, offset + pos, `bad TTL fields (${p}, ${e})`);
      const t = buf.toString('latin1', b + 1, b + 1 + tlen);
      const key = buf.subarray(klenAt + 4, klenAt + 4 + klen);
      const v = buf.subarray(klenAt + 4 + klen, b + len);
      n++;
      batch.push(e >= 0 ? { key, t, p, e, v } : { key, t, p, v });
      pos = b + len;
      if (batch.length >= size) {
        yield batch;
        batch = [];
      }
    }
    offset += pos;
    const rest = buf.subarray(pos);
    parts = rest.length ? [rest] : [];
    have = rest.length;
  }
  if (!headerSeen) throw new ArchiveError('corrupt-record', `archive file ${rel} is ${have} bytes, too short for the header`, rel);
  if (have) throw bad(n + 1, offset, `truncated: ${have} bytes of an incomplete record at the end of the file`);
  if (!ended) throw new ArchiveError('corrupt-record', `archive file ${rel} ends after ${n} records without its end marker (truncated)`, rel);
  if (batch.length) yield batch;
}

export interface HashingWriterOptions {
  /**
   * fdatasync in the background each time this many more bytes have been written, so that close()
   * (which fsyncs) has only the tail left to flush instead of the whole file: Redis does the same
   * for its own RDB files (rdb-save-incremental-fsync, every 4 MB). 0: only at close.
   */
  syncEveryBytes?: number;
}

/**
 * An append-only file writer that hashes and counts as it writes and honours backpressure: write()
 * resolves only once the OS stream can take more, so a producer awaiting it never buffers more than
 * one batch in memory.
 */
export class HashingWriter {
  private readonly hash = createHash('sha256');
  private readonly out: WriteStream;
  private failure: Error | undefined;
  bytes = 0;
  /** Bytes the stream has handed to the file, and how many of them a background fdatasync covered. */
  private written = 0;
  private synced = 0;
  private syncing: Promise<void> | undefined;
  private closing = false;
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    private readonly syncEvery: number,
  ) {
    // A few MB of buffering lets batch-sized writes flow without a drain wait on every one.
    this.out = createWriteStream(path, { mode: 0o600, highWaterMark: 4 << 20 });
    this.out.on('error', (err) => (this.failure = err));
    this.out.once('open', (fd: number) => (this.fd = fd));
  }

  static async create(path: string, opts: HashingWriterOptions = {}): Promise<HashingWriter> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return new HashingWriter(path, opts.syncEveryBytes ?? 0);
  }

  async write(chunk: Buffer | Uint8Array | string): Promise<void> {
    if (!this.writeNow(chunk)) await this.drained();
  }

  /**
   * Write without waiting; returns false when the stream's buffer is over its high-water mark, and
   * the caller should then await drained() before writing more (for synchronous per-chunk paths).
   * `written` is called once the stream no longer needs the bytes (not if the write failed).
   */
  writeNow(chunk: Buffer | Uint8Array | string, written?: () => void): boolean {
    if (this.failure) throw this.failure;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.hash.update(buf);
    this.bytes += buf.length;
    // `written`: the caller may reuse buf's memory once the stream is done with it (not on error).
    if (!this.syncEvery) return written ? this.out.write(buf, (err) => err || written()) : this.out.write(buf);
    const n = buf.length;
    return this.out.write(buf, (err) => {
      if (err) return;
      this.written += n;
      this.syncInBackground();
      written?.();
    });
  }

  /** One fdatasync at a time; its errors are left to close()'s fsync, which reports them. */
  private syncInBackground(): void {
    const fd = this.fd;
    if (this.syncing || this.closing || typeof fd !== 'number' || this.written - this.synced < this.syncEvery) return;
    const upTo = this.written;
    this.syncing = new Promise<void>((resolve) =>
      fdatasync(fd, (err) => {
        if (!err) this.synced = upTo;
        this.syncing = undefined;
        resolve();
      }),
    );
  }

  /** True while the stream's buffer is over its high-water mark: await drained() before writing more. */
  get full(): boolean {
    return this.out.writableNeedDrain;
  }

  /** Resolves once the stream has drained (immediately when it is not over its high-water mark). */
  async drained(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.out.writableNeedDrain) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (err: Error) => reject(err);
        this.out.once('error', onErr);
        this.out.once('drain', () => {
          this.out.off('error', onErr);
          resolve();
        });
      });
    }
  }

  /** Flush, fsync and close; returns size and sha256 for the manifest. */
  async close(): Promise<FileEntry> {
    if (this.failure) throw this.failure;
    // No background fdatasync may still use the descriptor when the stream closes it.
    this.closing = true;
    await this.syncing;
    await new Promise<void>((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const fh = await open(this.path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }

  /** Abandon the file (on error paths); never throws. */
  abort(): void {
    this.closing = true;
    if (this.syncing) void this.syncing.then(() => this.out.destroy());
    else this.out.destroy();
  }
}

export async function sha256File(path: string): Promise<FileEntry> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

export async function writeManifest(root: string, manifest: BackupManifest): Promise<void> {
  await writeFile(join(root, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
}

export async function readManifest(root: string): Promise<BackupManifest> {
  const path = join(root, MANIFEST_FILE);
  let text: string;
  try {
    // Bounded and type-checked: --archive names a folder the operator chose.
    text = await readUserFileAsync(path, { what: 'backup manifest', maxBytes: 64 * MiB });
  } catch (err) {
    throw new ArchiveError('manifest-missing', `backup manifest ${(err as Error).message.replace(`${path}: backup manifest `, `${path} `)}`);
  }
  let parsed: BackupManifest;
  try {
    parsed = JSON.parse(text) as BackupManifest;
  } catch (err) {
    throw new ArchiveError('manifest-corrupt', `backup manifest ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed.format !== MANIFEST_FORMAT && parsed.format !== MANIFEST_FORMAT_V1) {
    throw new ArchiveError('manifest-corrupt', `backup manifest ${path} has format ${JSON.stringify(parsed.format)}, expected ${MANIFEST_FORMAT} (or ${MANIFEST_FORMAT_V1})`);
  }
  return parsed;
}

export type ArchiveFailureCode = 'manifest-missing' | 'manifest-corrupt' | 'file-missing' | 'size-mismatch' | 'checksum-mismatch' | 'truncated-snapshot' | 'corrupt-record';

export class ArchiveError extends Error {
  constructor(
    readonly code: ArchiveFailureCode,
    message: string,
    /** Archive-relative path of the file concerned, when there is one. */
    readonly file?: string,
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

/**
 * Re-hash every file the manifest lists. Returns one precise message per problem: a missing file,
 * a size that differs (typically truncation), or same size but different content (corruption).
 */
export async function checkArchiveFiles(root: string, manifest: BackupManifest): Promise<ArchiveError[]> {
  const problems: ArchiveError[] = [];
  for (const [rel, want] of Object.entries(manifest.files)) {
    const path = join(root, rel);
    let isFile: boolean;
    try {
      isFile = (await stat(path)).isFile();
    } catch {
      problems.push(new ArchiveError('file-missing', `archive file ${rel} is missing (manifest lists ${want.bytes} bytes, sha256 ${want.sha256})`, rel));
      continue;
    }
    // A FIFO or a device in place of an archive file would block or never end the hashing.
    if (!isFile) {
      problems.push(new ArchiveError('file-missing', `archive file ${rel} is not a regular file (manifest lists ${want.bytes} bytes)`, rel));
      continue;
    }
    const got = await sha256File(path);
    if (got.bytes !== want.bytes) {
      problems.push(
        new ArchiveError('size-mismatch', `archive file ${rel} is ${got.bytes} bytes, manifest says ${want.bytes} (truncated or appended); sha256 expected ${want.sha256}, got ${got.sha256}`, rel),
      );
    } else if (got.sha256 !== want.sha256) {
      problems.push(new ArchiveError('checksum-mismatch', `checksum mismatch for archive file ${rel}: expected sha256 ${want.sha256}, got ${got.sha256}`, rel));
    }
  }
  return problems;
}
