// The on-disk backup archive: directory layout, manifest, and the checksums that let a drill (or a
// human) prove later that no file changed since the backup was taken.
//
// Layout (one directory per backup):
//   manifest.json                         what was backed up, counts, sizes, sha256 of every file
//   redis/<node>.db<N>.jsonl              logical Redis dump, one JSON record per key (see RedisRecord)
//   redis/<node>.rdb                      optional physical RDB copy per master
//   jetstream/<STREAM>/backup.json        {config, state} exactly as the snapshot API answered
//   jetstream/<STREAM>/stream.tar.s2      snapshot bytes exactly as the server sent them
// The jetstream/<STREAM>/ directories use the same two file names the NATS CLI writes, so either
// tool can restore the other's stream directories.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, stat, writeFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'cordum-runbooks-backup/1';

export type RedisKeyType = 'string' | 'hash' | 'list' | 'set' | 'zset' | 'stream' | string;

/** One key of a logical Redis dump, one JSON line each. */
export interface RedisRecord {
  /** Key as UTF-8 text (absent when the key is not valid UTF-8; then `kb` holds it as base64). */
  k?: string;
  kb?: string;
  /** TYPE at capture. */
  t: RedisKeyType;
  /** PTTL at capture: -1 = no expiry, otherwise remaining milliseconds. */
  p: number;
  /** Absolute expiry (drill clock, epoch ms) = capture time + p; absent when p = -1. */
  e?: number;
  /** DUMP payload, base64. */
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
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
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

/** Text before the first ':' of a (possibly binary) key; non-UTF-8 prefixes are shown as base64. */
export function keyPrefix(key: Buffer): string {
  const i = key.indexOf(0x3a);
  if (i < 0) return NO_PREFIX;
  const raw = key.subarray(0, i);
  const text = raw.toString('utf8');
  return Buffer.from(text, 'utf8').equals(raw) ? text : `base64:${raw.toString('base64')}`;
}

export function countPrefix(counts: Record<string, number>, key: Buffer): void {
  let p = keyPrefix(key);
  if (!(p in counts) && Object.keys(counts).length >= MAX_PREFIXES) p = OTHER_PREFIX;
  counts[p] = (counts[p] ?? 0) + 1;
}

export function recordKey(rec: RedisRecord): Buffer {
  return rec.k !== undefined ? Buffer.from(rec.k, 'utf8') : Buffer.from(rec.kb ?? '', 'base64');
}

/** Human-readable key for messages (binary keys shown as base64). */
export function recordKeyLabel(rec: RedisRecord): string {
  return rec.k ?? `base64:${rec.kb}`;
}

export function encodeKey(key: Buffer): Pick<RedisRecord, 'k' | 'kb'> {
  const text = key.toString('utf8');
  return Buffer.from(text, 'utf8').equals(key) ? { k: text } : { kb: key.toString('base64') };
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

  private constructor(readonly path: string) {
    this.out = createWriteStream(path, { mode: 0o600 });
    this.out.on('error', (err) => (this.failure = err));
  }

  static async create(path: string): Promise<HashingWriter> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    return new HashingWriter(path);
  }

  async write(chunk: Buffer | Uint8Array | string): Promise<void> {
    if (this.failure) throw this.failure;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.hash.update(buf);
    this.bytes += buf.length;
    if (!this.out.write(buf)) {
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
    this.out.destroy();
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
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ArchiveError('manifest-missing', `backup manifest ${path} cannot be read: ${(err as Error).message}`);
  }
  let parsed: BackupManifest;
  try {
    parsed = JSON.parse(text) as BackupManifest;
  } catch (err) {
    throw new ArchiveError('manifest-corrupt', `backup manifest ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed.format !== MANIFEST_FORMAT) {
    throw new ArchiveError('manifest-corrupt', `backup manifest ${path} has format ${JSON.stringify(parsed.format)}, expected ${MANIFEST_FORMAT}`);
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
    try {
      await stat(path);
    } catch {
      problems.push(new ArchiveError('file-missing', `archive file ${rel} is missing (manifest lists ${want.bytes} bytes, sha256 ${want.sha256})`, rel));
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
