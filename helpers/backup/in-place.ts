// Real recovery: restore an archive into the live stores. Guarded (inPlace + the namespace typed
// back), the archive is checked first, writers are frozen for the duration and unfrozen in every
// case. Streams are deleted and restored (the restore API never overwrites); Redis keys are
// RESTOREd with REPLACE (keys written after the backup and absent from it are left alone).
// The phases are exported on their own so the backup-restore runbook can run them as steps.
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { readManifest, type BackupManifest } from './archive.js';
import { restoreRedisLogical, type RedisRestoreResult } from './redis-logical.js';
import { restoreStream, type RestoreStreamResult } from './jetstream-restore.js';
import { VerifyError, verifyArchive, verifyJetStream, verifyRedis, type RedisVerifySummary, type StreamVerifySummary } from './verify.js';
import { guardInPlace, withWritersFrozen, type FreezeOps, type FreezeState } from './freeze.js';

export interface InPlaceOptions {
  archive: string;
  namespace: string;
  inPlace?: boolean;
  confirmNamespace?: string;
  redis: Redis | Cluster;
  nats: NatsConnection;
  freeze: FreezeOps;
  log?: (msg: string) => void;
}

export interface InPlaceResult {
  frozen: FreezeState;
  redis: RedisRestoreResult;
  streams: RestoreStreamResult[];
}

/** Read the manifest and check every file's checksum and each snapshot's framing; throws VerifyError. */
export async function checkInPlaceArchive(archive: string): Promise<BackupManifest> {
  const manifest = await readManifest(archive);
  const archiveFailures = await verifyArchive(archive, manifest);
  if (archiveFailures.length) throw new VerifyError(archiveFailures);
  return manifest;
}

export interface RestoreLiveOptions {
  archive: string;
  manifest: BackupManifest;
  redis: Redis | Cluster;
  nats: NatsConnection;
  log?: (msg: string) => void;
  /** Checked between streams and before the Redis restore: an aborted run starts nothing new. */
  signal?: AbortSignal;
}

/** Writers must be frozen: delete and restore each stream, then RESTORE (REPLACE) every key. */
export async function restoreLive(opts: RestoreLiveOptions): Promise<{ redis: RedisRestoreResult; streams: RestoreStreamResult[] }> {
  const log = opts.log ?? (() => undefined);
  const jsm = await jetstreamManager(opts.nats);
  const streams: RestoreStreamResult[] = [];
  for (const s of opts.manifest.jetstream?.streams ?? []) {
    opts.signal?.throwIfAborted();
    // Writers are frozen, so nothing recreates the stream between delete and restore.
    const existed = await jsm.streams.delete(s.name).catch(() => false);
    log(`stream ${s.name}: ${existed ? 'deleted' : 'absent'}, restoring`);
    streams.push(await restoreStream(opts.nats, s.name, { dir: join(opts.archive, s.dir) }));
  }
  opts.signal?.throwIfAborted();
  const redis = await restoreRedisLogical(opts.redis, { root: opts.archive, dbs: opts.manifest.redis?.dbs ?? [] });
  log(`redis: ${redis.restored} keys restored, ${redis.replaced} replaced, ${redis.expired_skipped} expired`);
  return { redis, streams };
}

/** Verify live data against the archive; throws VerifyError. Extra live keys are allowed. */
export async function verifyLive(archive: string, manifest: BackupManifest, redis: Redis | Cluster, nats: NatsConnection): Promise<{ redis: RedisVerifySummary; streams: StreamVerifySummary[] }> {
  const r = await verifyRedis(archive, manifest, redis);
  const j = await verifyJetStream(nats, manifest);
  // Live data may legitimately hold keys the backup lacks: only absences and differences count.
  const failures = [...r.failures.filter((f) => f.code !== 'count-mismatch'), ...j.failures];
  if (failures.length) throw new VerifyError(failures);
  return { redis: r.summary, streams: j.streams };
}

export async function restoreInPlace(opts: InPlaceOptions): Promise<InPlaceResult> {
  guardInPlace(opts);
  const log = opts.log ?? (() => undefined);
  const manifest = await checkInPlaceArchive(opts.archive);
  return withWritersFrozen(
    opts.freeze,
    opts.namespace,
    async (frozen) => {
      const { redis, streams } = await restoreLive({ archive: opts.archive, manifest, redis: opts.redis, nats: opts.nats, log });
      await verifyLive(opts.archive, manifest, opts.redis, opts.nats);
      return { frozen, redis, streams };
    },
    { log },
  );
}
