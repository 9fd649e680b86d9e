// Proves a backup is intact and that a restore from it is complete and usable. Each kind of problem
// gets its own failure code and a message naming the file, key, stream or consumer involved:
//   archive:   file missing, size mismatch (truncated), checksum mismatch (corrupted), S2 framing cut short
//   redis:     missing key (with its type), type / value / TTL mismatch, per-type and per-prefix counts
//   jetstream: message count / first+last sequence short of the backup, consumers missing or behind
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Cluster, Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { checkArchiveFiles, countPrefix, recordKey, recordKeyLabel, type BackupManifest, type RedisRecord } from './archive.js';
import { isCluster, recordBatches, redisSource } from './redis-logical.js';
import { checkS2Framing } from './jetstream-restore.js';
import { SNAPSHOT_DATA_FILE, SNAPSHOT_META_FILE, listConsumers } from './jetstream-snapshot.js';

export type VerifyFailureCode =
  | 'file-missing'
  | 'size-mismatch'
  | 'checksum-mismatch'
  | 'truncated-snapshot'
  | 'corrupt-record'
  | 'manifest-corrupt'
  | 'manifest-missing'
  | 'missing-key'
  | 'type-mismatch'
  | 'value-mismatch'
  | 'ttl-mismatch'
  | 'count-mismatch'
  | 'stream-missing'
  | 'stream-mismatch'
  | 'consumer-missing'
  | 'consumer-mismatch';

export interface VerifyFailure {
  code: VerifyFailureCode;
  message: string;
}

export class VerifyError extends Error {
  constructor(readonly failures: VerifyFailure[]) {
    super(`verification failed (${failures.length} problem${failures.length === 1 ? '' : 's'}):\n- ${failures.map((f) => `[${f.code}] ${f.message}`).join('\n- ')}`);
    this.name = 'VerifyError';
  }
}

export function assertNoFailures(failures: VerifyFailure[]): void {
  if (failures.length) throw new VerifyError(failures);
}

/** Before restoring anything: every file hashes as recorded and every snapshot is well-formed. */
export async function verifyArchive(root: string, manifest: BackupManifest): Promise<VerifyFailure[]> {
  const problems = await checkArchiveFiles(root, manifest);
  const failures: VerifyFailure[] = problems.map((e) => ({ code: e.code as VerifyFailureCode, message: e.message }));
  const missing = new Set(problems.filter((e) => e.code === 'file-missing').map((e) => e.file));
  for (const s of manifest.jetstream?.streams ?? []) {
    const dataRel = `${s.dir}/${SNAPSHOT_DATA_FILE}`;
    const metaRel = `${s.dir}/${SNAPSHOT_META_FILE}`;
    if (!missing.has(dataRel)) {
      try {
        await checkS2Framing(join(root, dataRel), dataRel);
      } catch (err) {
        failures.push({ code: 'truncated-snapshot', message: `snapshot of stream ${s.name}: ${(err as Error).message}` });
      }
    }
    if (missing.has(metaRel)) continue;
    try {
      const meta = JSON.parse(await readFile(join(root, metaRel), 'utf8')) as { config?: { name?: string }; state?: unknown };
      if (meta.config?.name !== s.name || !meta.state) failures.push({ code: 'manifest-corrupt', message: `${metaRel} does not hold config/state for stream ${s.name}` });
    } catch (err) {
      failures.push({ code: 'manifest-corrupt', message: `${metaRel} cannot be read as JSON: ${(err as Error).message}` });
    }
  }
  return failures;
}

export interface RedisVerifyOptions {
  /** How many keys per db get a full value (DUMP) and TTL comparison. */
  sampleSize?: number;
  /** Allowed TTL drift, and the window in which a key near its expiry may legitimately be gone. */
  ttlToleranceMs?: number;
  batchSize?: number;
  /** Cap on reported failures per kind so a wholesale loss stays readable. */
  maxReported?: number;
}

export interface RedisVerifySummary {
  checked: number;
  sampled: number;
  /** Archived keys whose expiry falls within the tolerance window: absence is accepted. */
  expiring: number;
  expected_by_type: Record<string, number>;
  actual_by_type: Record<string, number>;
  expected_by_prefix: Record<string, number>;
  actual_by_prefix: Record<string, number>;
}

/**
 * Compare a restored Redis with the archive. Every archived key is checked for presence and type
 * (pipelined TYPE per batch, streaming the archive so memory stays bounded); a spread sample also
 * gets its DUMP compared (falling back to a canonical per-type comparison when encodings differ)
 * and its TTL checked against the absolute expiry recorded at backup. Finally the target's counts
 * per type and per prefix must match what the archive says should be alive.
 */
export async function verifyRedis(
  root: string,
  manifest: BackupManifest,
  target: Redis | Cluster,
  opts: RedisVerifyOptions = {},
): Promise<{ failures: VerifyFailure[]; summary: RedisVerifySummary }> {
  const tolerance = opts.ttlToleranceMs ?? 2000;
  const sampleSize = opts.sampleSize ?? 200;
  const batchSize = opts.batchSize ?? 500;
  const maxReported = opts.maxReported ?? 20;
  const failures: VerifyFailure[] = [];
  const reported: Record<string, number> = {};
  const fail = (code: VerifyFailureCode, message: string) => {
    reported[code] = (reported[code] ?? 0) + 1;
    if (reported[code]! <= maxReported) failures.push({ code, message });
  };
  const summary: RedisVerifySummary = { checked: 0, sampled: 0, expiring: 0, expected_by_type: {}, actual_by_type: {}, expected_by_prefix: {}, actual_by_prefix: {} };
  const expectedMaxByType: Record<string, number> = {};
  const cluster = isCluster(target);
  const dbs = manifest.redis?.dbs ?? [];
  const dbNumbers = [...new Set(dbs.map((d) => d.db))];

  for (const section of dbs) {
    const client: Redis | Cluster = cluster ? target : (target as Redis).duplicate({ db: section.db });
    const stride = Math.max(1, Math.floor(section.keys / sampleSize));
    let index = 0;
    try {
      for await (const batch of recordBatches(join(root, section.file), section.file, batchSize)) {
        const types = await pipelineTypes(client, batch.map(recordKey));
        const now = Date.now();
        const sample: RedisRecord[] = [];
        batch.forEach((rec, i) => {
          const label = recordKeyLabel(rec);
          summary.checked++;
          const nearExpiry = rec.e !== undefined && rec.e - now <= tolerance;
          expectedMaxByType[rec.t] = (expectedMaxByType[rec.t] ?? 0) + 1;
          if (nearExpiry) {
            summary.expiring++;
          } else {
            summary.expected_by_type[rec.t] = (summary.expected_by_type[rec.t] ?? 0) + 1;
            countPrefix(summary.expected_by_prefix, recordKey(rec));
          }
          const actual = types[i];
          if (actual === 'none') {
            if (!nearExpiry) fail('missing-key', `key ${label} (${rec.t}) from ${section.file} is missing on the restored target (db${section.db})`);
          } else if (actual !== rec.t) {
            fail('type-mismatch', `key ${label} is a ${actual} on the restored target but was a ${rec.t} in the backup (${section.file})`);
          } else if (index % stride === 0 && summary.sampled < sampleSize * dbs.length && !nearExpiry) {
            sample.push(rec);
          }
          index++;
        });
        if (sample.length) await compareSample(client, sample, section.file, tolerance, fail);
        summary.sampled += sample.length;
      }
    } finally {
      if (!cluster) (client as Redis).disconnect();
    }
  }

  // Counts on the target, per type and prefix, across every db the archive covers.
  await countTarget(target, cluster ? [0] : dbNumbers, batchSize, summary);
  for (const type of new Set([...Object.keys(summary.expected_by_type), ...Object.keys(summary.actual_by_type), ...Object.keys(expectedMaxByType)])) {
    const min = summary.expected_by_type[type] ?? 0;
    const max = expectedMaxByType[type] ?? 0;
    const got = summary.actual_by_type[type] ?? 0;
    if (got < min || got > max) fail('count-mismatch', `target holds ${got} ${type} keys; the backup says ${min === max ? min : `${min}..${max}`}`);
  }
  for (const prefix of new Set([...Object.keys(summary.expected_by_prefix), ...Object.keys(summary.actual_by_prefix)])) {
    const want = summary.expected_by_prefix[prefix] ?? 0;
    const got = summary.actual_by_prefix[prefix] ?? 0;
    // Keys near expiry are not attributed to prefixes, so allow the expiring count as slack upwards.
    if (got < want || got > want + summary.expiring) fail('count-mismatch', `target holds ${got} keys with prefix "${prefix}"; the backup says ${want}`);
  }
  for (const [code, n] of Object.entries(reported)) {
    if (n > maxReported) failures.push({ code: code as VerifyFailureCode, message: `... and ${n - maxReported} more ${code} problems` });
  }
  return { failures, summary };
}

async function pipelineTypes(client: Redis | Cluster, keys: Buffer[]): Promise<string[]> {
  if (isCluster(client)) return Promise.all(keys.map((k) => client.type(k)));
  const pipe = client.pipeline();
  for (const k of keys) pipe.type(k);
  const res = (await pipe.exec()) ?? [];
  return res.map(([err, t]) => {
    if (err) throw err;
    return String(t);
  });
}

async function compareSample(
  client: Redis | Cluster,
  sample: RedisRecord[],
  file: string,
  tolerance: number,
  fail: (code: VerifyFailureCode, message: string) => void,
): Promise<void> {
  for (const rec of sample) {
    const key = recordKey(rec);
    const label = recordKeyLabel(rec);
    const [dump, pttl] = await Promise.all([client.dumpBuffer(key), client.pttl(key)]);
    const now = Date.now();
    if (dump == null) continue; // vanished since the TYPE check: counted by the count comparison
    const archived = rec.v;
    if (!dump.equals(archived) && !(await sameCanonicalValue(client, key, rec.t, archived))) {
      fail('value-mismatch', `key ${label} (${rec.t}) differs from the backup in ${file}`);
    }
    if (rec.e === undefined) {
      if (pttl !== -1) fail('ttl-mismatch', `key ${label} has a TTL of ${pttl} ms on the target but had none in the backup`);
    } else {
      const want = rec.e - now;
      if (pttl < 0 || Math.abs(pttl - want) > tolerance) fail('ttl-mismatch', `key ${label} has PTTL ${pttl} ms on the target; the backup implies ${want} ms (±${tolerance})`);
    }
  }
}

/**
 * DUMP bytes can legitimately differ (e.g. a hashtable-encoded set iterates in another order after
 * RESTORE). Restore the archived payload under a scratch name next to it and compare both keys'
 * contents canonically (sorted where order is not meaningful). Used only when the bytes differ.
 */
async function sameCanonicalValue(client: Redis | Cluster, key: Buffer, type: string, payload: Buffer): Promise<boolean> {
  // Same hash tag as the key so a cluster keeps both on one slot.
  const tag = key.toString('utf8').replace(/[{}]/g, '');
  const tmp = `__cordum_drill_cmp__:{${tag}}:${process.pid}:${Date.now()}`;
  try {
    await client.restore(tmp, 0, payload, 'REPLACE');
    const [a, b] = await Promise.all([canonicalValue(client, key, type), canonicalValue(client, tmp, type)]);
    return a === b;
  } catch {
    return false;
  } finally {
    await client.del(tmp).catch(() => undefined);
  }
}

export async function canonicalValue(client: Redis | Cluster, key: Buffer | string, type: string): Promise<string> {
  const b64 = (v: unknown): unknown => (Buffer.isBuffer(v) ? v.toString('base64') : Array.isArray(v) ? v.map(b64) : v);
  switch (type) {
    case 'string':
      return JSON.stringify(b64(await client.getBuffer(key)));
    case 'hash': {
      const flat = (await client.callBuffer('HGETALL', key)) as Buffer[];
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(JSON.stringify([flat[i]!.toString('base64'), flat[i + 1]!.toString('base64')]));
      return pairs.sort().join(',');
    }
    case 'list':
      return JSON.stringify(b64(await client.callBuffer('LRANGE', key, 0, -1)));
    case 'set':
      return ((await client.callBuffer('SMEMBERS', key)) as Buffer[]).map((m) => m.toString('base64')).sort().join(',');
    case 'zset':
      return JSON.stringify(b64(await client.callBuffer('ZRANGE', key, 0, -1, 'WITHSCORES')));
    case 'stream': {
      const entries = await client.callBuffer('XRANGE', key, '-', '+');
      const groups = (await client.call('XINFO', 'GROUPS', key)) as unknown[];
      return JSON.stringify([b64(entries), groups]);
    }
    default:
      return JSON.stringify(b64(await client.dumpBuffer(key)));
  }
}

async function countTarget(target: Redis | Cluster, dbs: number[], batchSize: number, summary: RedisVerifySummary): Promise<void> {
  const source = redisSource(target);
  for (const node of source.nodes) {
    for (const db of source.cluster ? [0] : dbs) {
      const client = source.cluster ? node.client : node.client.duplicate({ db });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await client.scanBuffer(cursor, 'COUNT', batchSize);
          cursor = String(next);
          const fresh = keys.filter((k) => !k.toString('utf8').startsWith('__cordum_drill_cmp__:'));
          if (!fresh.length) continue;
          const types = await pipelineTypes(client, fresh);
          fresh.forEach((k, i) => {
            const t = types[i]!;
            if (t === 'none') return;
            summary.actual_by_type[t] = (summary.actual_by_type[t] ?? 0) + 1;
            countPrefix(summary.actual_by_prefix, k);
          });
        } while (cursor !== '0');
      } finally {
        if (!source.cluster) client.disconnect();
      }
    }
  }
}

export interface StreamVerifySummary {
  name: string;
  backup: { messages: number; first_seq: number; last_seq: number; num_deleted?: number; consumers: string[] };
  restored: { messages: number; first_seq: number; last_seq: number; num_deleted?: number; consumers: string[] };
  /** Differences that are not a loss, e.g. a consumer position that moved back over sequences it would never deliver. */
  notes: string[];
}

function numberOr(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}

/**
 * The first message a consumer with these filters would deliver whose sequence lies in one of the
 * gaps (from, to]: what a consumer restored at `from` instead of `to` would get again. None means
 * the positions differ only by sequences it never delivers (deleted messages, other subjects), as
 * when the server rewinds a filtered consumer past deleted messages at the tail on restore.
 */
async function firstMessageInGaps(nc: NatsConnection, stream: string, filters: string[], gaps: [number, number][]): Promise<{ seq: number; subject: string } | undefined> {
  for (const [from, to] of gaps) {
    if (from >= to) continue;
    for (const subject of filters.length ? filters : ['>']) {
      const next = await nextMessage(nc, stream, from + 1, subject);
      if (next && next.seq <= to) return next;
    }
  }
  return undefined;
}

/** STREAM.MSG.GET with next_by_subj: the first message on `subject` at or after `seq` (2.9+). */
async function nextMessage(nc: NatsConnection, stream: string, seq: number, subject: string): Promise<{ seq: number; subject: string } | undefined> {
  const res = await nc.request(`$JS.API.STREAM.MSG.GET.${stream}`, JSON.stringify({ seq, next_by_subj: subject }), { timeout: 10_000 });
  const body = res.json<{ message?: { seq: number; subject: string }; error?: { code: number; err_code?: number; description?: string } }>();
  if (body.message) return { seq: body.message.seq, subject: body.message.subject };
  // 10037: no message found at or after seq.
  if (body.error?.code === 404 || body.error?.err_code === 10037) return undefined;
  throw new Error(`reading stream ${stream} from sequence ${seq} on ${subject}: ${body.error?.code ?? '?'} ${body.error?.description ?? 'no message and no error'}`);
}

/**
 * Compare each restored stream with the state the snapshot response recorded. Writers may append
 * while a snapshot runs and the archive then holds more than that state says, so the restored
 * stream may be longer, never shorter: first_seq must match, messages and last_seq must be >=.
 * Every consumer present at backup must exist, and its positions cannot have gone backwards over
 * a message it delivers. On a lived-in stream (deleted messages, gaps) the server may restore a
 * filtered consumer a few sequences back, onto sequences it never delivers: that is noted, not failed.
 */
export async function verifyJetStream(nc: NatsConnection, manifest: BackupManifest): Promise<{ failures: VerifyFailure[]; streams: StreamVerifySummary[] }> {
  const jsm = await jetstreamManager(nc);
  const failures: VerifyFailure[] = [];
  const streams: StreamVerifySummary[] = [];
  for (const s of manifest.jetstream?.streams ?? []) {
    const info = await jsm.streams.info(s.name).catch(() => undefined);
    if (!info) {
      failures.push({ code: 'stream-missing', message: `stream ${s.name} does not exist on the restored target` });
      continue;
    }
    const st = info.state;
    const want = s.state;
    if (want.messages > 0 && st.first_seq !== want.first_seq) failures.push({ code: 'stream-mismatch', message: `stream ${s.name} first_seq is ${st.first_seq} on the target, ${want.first_seq} in the backup` });
    if (st.last_seq < want.last_seq) failures.push({ code: 'stream-mismatch', message: `stream ${s.name} last_seq is ${st.last_seq} on the target, short of ${want.last_seq} in the backup` });
    if (st.messages < want.messages) failures.push({ code: 'stream-mismatch', message: `stream ${s.name} holds ${st.messages} messages on the target, short of ${want.messages} in the backup` });
    const notes: string[] = [];
    const restoredConsumers = await listConsumers(nc, s.name);
    const byName = new Map(restoredConsumers.map((c) => [c.name, c]));
    for (const c of s.consumers.filter((c) => c.durable)) {
      const r = byName.get(c.name);
      if (!r) {
        failures.push({ code: 'consumer-missing', message: `consumer ${c.name} of stream ${s.name} is missing on the restored target` });
        continue;
      }
      if (r.ack_floor_stream_seq >= c.ack_floor_stream_seq && r.delivered_stream_seq >= c.delivered_stream_seq) continue;
      const position = `restored at delivered ${r.delivered_stream_seq} / ack floor ${r.ack_floor_stream_seq}, behind the backup's ${c.delivered_stream_seq} / ${c.ack_floor_stream_seq}`;
      const lost = await firstMessageInGaps(nc, s.name, r.filter_subjects ?? c.filter_subjects ?? [], [
        // Delivered first: the message it would hand out next says most about what was lost.
        [r.delivered_stream_seq, c.delivered_stream_seq],
        [r.ack_floor_stream_seq, c.ack_floor_stream_seq],
      ]);
      if (lost) {
        failures.push({
          code: 'consumer-mismatch',
          message: `consumer ${s.name}/${c.name} ${position}: message ${lost.seq} (${lost.subject}) lies in between, so it would be delivered again`,
        });
      } else {
        notes.push(`consumer ${s.name}/${c.name} ${position}, but no message it delivers lies in between (the sequences are deleted or on other subjects): it resumes at the same message`);
      }
    }
    streams.push({
      name: s.name,
      backup: { messages: want.messages, first_seq: want.first_seq, last_seq: want.last_seq, num_deleted: numberOr(want.num_deleted), consumers: s.consumers.map((c) => c.name) },
      restored: { messages: st.messages, first_seq: st.first_seq, last_seq: st.last_seq, num_deleted: st.num_deleted ?? 0, consumers: restoredConsumers.map((c) => c.name) },
      notes,
    });
  }
  return { failures, streams };
}

/** Whether a stream holds at least one message on the subject (marker checks). */
export async function streamHasSubject(nc: NatsConnection, stream: string, subject: string): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const msg = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
  return msg != null;
}
