// Logical Redis backup and restore: SCAN every master, pipeline TYPE + PTTL + DUMP per batch, and
// stream one JSON line per key to disk; restore with RESTORE <key> <ttl> <payload> REPLACE.
// Memory is bounded by one batch: each batch is written (awaiting backpressure) before the next SCAN.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import {
  ArchiveError,
  HashingWriter,
  countPrefix,
  encodeKey,
  recordKey,
  recordKeyLabel,
  type FileEntry,
  type RedisDbSection,
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

export const DEFAULT_SIZING: BatchSizing = { min: 10, max: 1000, maxBatchBytes: 8 * 1024 * 1024 };

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
      // A dedicated connection per db so SELECT never changes the caller's client.
      const client = source.cluster ? node.client : node.client.duplicate({ db });
      try {
        const rel = `redis/${node.label}.db${db}.jsonl`;
        const section = await dumpDb(client, node.label, db, join(opts.root, rel), rel, sizing, opts.onProgress);
        files[rel] = section.entry;
        dbs.push(section.section);
      } finally {
        if (!source.cluster) client.disconnect();
      }
    }
  }
  return { server_version, cluster: source.cluster, dbs, files };
}

async function dumpDb(
  client: Redis,
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
  let batch = Math.min(sizing.max, Math.max(sizing.min, 500));
  const scan_started_ms = Date.now();
  try {
    let cursor = '0';
    do {
      const [next, found] = await client.scanBuffer(cursor, 'COUNT', batch);
      cursor = String(next);
      // SCAN may return more than COUNT: work through it in slices of the current batch size.
      for (let i = 0; i < found.length; ) {
        const slice = found.slice(i, i + batch);
        i += slice.length;
        const pipe = client.pipeline();
        for (const k of slice) pipe.type(k).pttl(k).dumpBuffer(k);
        const results = (await pipe.exec()) ?? [];
        const at = Date.now();
        let batchBytes = 0;
        const lines: string[] = [];
        slice.forEach((key, j) => {
          const [tErr, type] = results[j * 3] ?? [];
          const [pErr, pttl] = results[j * 3 + 1] ?? [];
          const [dErr, dump] = results[j * 3 + 2] ?? [];
          const err = tErr ?? pErr ?? dErr;
          if (err) throw new Error(`redis backup ${label} db${db}: reading key ${key.toString('utf8')} failed: ${err.message}`);
          // Gone between SCAN and DUMP (expired or deleted): not part of the backup.
          if (type === 'none' || dump == null || pttl === -2) {
            vanished++;
            return;
          }
          const p = Number(pttl);
          const rec: RedisRecord = { ...encodeKey(key), t: String(type), p, ...(p >= 0 ? { e: at + p } : {}), v: (dump as Buffer).toString('base64') };
          batchBytes += (dump as Buffer).length;
          lines.push(JSON.stringify(rec));
          keys++;
          by_type[rec.t] = (by_type[rec.t] ?? 0) + 1;
          countPrefix(by_prefix, key);
        });
        if (lines.length) await out.write(lines.join('\n') + '\n');
        batch = nextBatchSize(batch, batchBytes, sizing);
        onProgress?.({ phase: 'redis-backup', node: label, db, keys, bytes: out.bytes });
      }
    } while (cursor !== '0');
    const entry = await out.close();
    return {
      section: { node: label, db, file: rel, keys, by_type, by_prefix, vanished, scan_started_ms, scan_finished_ms: Date.now() },
      entry,
    };
  } catch (err) {
    out.abort();
    throw err;
  }
}

/** Stream the records of one dump file; a line that does not parse names the file and line. */
export async function* readRecords(path: string, rel: string): AsyncGenerator<RedisRecord> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line) continue;
    let rec: RedisRecord;
    try {
      rec = JSON.parse(line) as RedisRecord;
    } catch (err) {
      throw new ArchiveError('corrupt-record', `archive file ${rel} line ${n} is not a valid record: ${(err as Error).message}`);
    }
    if (typeof rec.t !== 'string' || typeof rec.v !== 'string' || typeof rec.p !== 'number' || (rec.k === undefined && rec.kb === undefined)) {
      throw new ArchiveError('corrupt-record', `archive file ${rel} line ${n} lacks k/t/p/v fields`);
    }
    yield rec;
  }
}

/** Batches of records, so restore and verify can pipeline. */
export async function* recordBatches(path: string, rel: string, size: number): AsyncGenerator<RedisRecord[]> {
  let batch: RedisRecord[] = [];
  for await (const rec of readRecords(path, rel)) {
    batch.push(rec);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
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
 * one pipeline per batch; a cluster target gets single-key commands with bounded concurrency,
 * because ioredis refuses pipelines that span slots.
 */
export async function restoreRedisLogical(target: Redis | Cluster, opts: RedisRestoreOptions): Promise<RedisRestoreResult> {
  const started = Date.now();
  const size = opts.batchSize ?? 500;
  const result: RedisRestoreResult = { restored: 0, expired_skipped: 0, replaced: 0, by_type: {}, bytes: 0, duration_ms: 0 };
  const cluster = isCluster(target);
  for (const section of opts.dbs) {
    if (cluster && section.db !== 0) throw new Error(`redis restore: archive holds db${section.db} (${section.file}) but the target is a cluster, which only has db 0`);
    const client: Redis | Cluster = cluster ? target : (target as Redis).duplicate({ db: section.db });
    try {
      for await (const batch of recordBatches(join(opts.root, section.file), section.file, size)) {
        const now = Date.now();
        const live: Array<{ rec: RedisRecord; key: Buffer; ttl: number; payload: Buffer }> = [];
        for (const rec of batch) {
          const ttl = remainingTtl(rec, now);
          if (ttl === 0) {
            result.expired_skipped++;
            continue;
          }
          live.push({ rec, key: recordKey(rec), ttl: ttl < 0 ? 0 : ttl, payload: Buffer.from(rec.v, 'base64') });
        }
        const replies = cluster ? await restoreEach(client, live) : await restorePipelined(client as Redis, live);
        live.forEach((item, i) => {
          const [existsErr, existed, restoreErr] = replies[i] ?? [];
          const err = existsErr ?? restoreErr;
          if (err) throw new Error(`RESTORE of key ${recordKeyLabel(item.rec)} (${item.rec.t}) from ${section.file} failed: ${err.message}`);
          if (existed === 1) result.replaced++;
          result.restored++;
          result.bytes += item.payload.length;
          result.by_type[item.rec.t] = (result.by_type[item.rec.t] ?? 0) + 1;
        });
        opts.onProgress?.({ phase: 'redis-restore', node: section.node, db: section.db, keys: result.restored, bytes: result.bytes });
      }
    } finally {
      if (!cluster) (client as Redis).disconnect();
    }
  }
  result.duration_ms = Date.now() - started;
  return result;
}

type RestoreReply = [Error | null, number, Error | null];

async function restorePipelined(client: Redis, items: Array<{ key: Buffer; ttl: number; payload: Buffer }>): Promise<RestoreReply[]> {
  if (!items.length) return [];
  const pipe = client.pipeline();
  for (const it of items) pipe.exists(it.key).restore(it.key, it.ttl, it.payload, 'REPLACE');
  const res = (await pipe.exec()) ?? [];
  return items.map((_, i) => [res[i * 2]?.[0] ?? null, Number(res[i * 2]?.[1] ?? 0), res[i * 2 + 1]?.[0] ?? null]);
}

async function restoreEach(client: Redis | Cluster, items: Array<{ key: Buffer; ttl: number; payload: Buffer }>): Promise<RestoreReply[]> {
  // One batch in flight at a time; ioredis still writes these back-to-back per node socket.
  return Promise.all(
    items.map(async (it): Promise<RestoreReply> => {
      try {
        const existed = await client.exists(it.key);
        await client.restore(it.key, it.ttl, it.payload, 'REPLACE');
        return [null, existed, null];
      } catch (err) {
        return [null, 0, err as Error];
      }
    }),
  );
}
