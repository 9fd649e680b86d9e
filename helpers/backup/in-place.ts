// Real recovery: restore an archive into the live stores. Guarded (inPlace + the namespace typed
// back), the archive is checked first, writers are frozen for the duration and unfrozen in every
// case. Streams are deleted and restored (the restore API never overwrites); Redis keys are
// RESTOREd with REPLACE (keys written after the backup and absent from it are left alone).
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { readManifest } from './archive.js';
import { restoreRedisLogical, type RedisRestoreResult } from './redis-logical.js';
import { restoreStream, type RestoreStreamResult } from './jetstream-restore.js';
import { VerifyError, verifyArchive, verifyJetStream, verifyRedis } from './verify.js';
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

export async function restoreInPlace(opts: InPlaceOptions): Promise<InPlaceResult> {
  guardInPlace(opts);
  const log = opts.log ?? (() => undefined);
  const manifest = await readManifest(opts.archive);
  const archiveFailures = await verifyArchive(opts.archive, manifest);
  if (archiveFailures.length) throw new VerifyError(archiveFailures);
  return withWritersFrozen(
    opts.freeze,
    opts.namespace,
    async (frozen) => {
      const jsm = await jetstreamManager(opts.nats);
      const streams: RestoreStreamResult[] = [];
      for (const s of manifest.jetstream?.streams ?? []) {
        // Writers are frozen, so nothing recreates the stream between delete and restore.
        const existed = await jsm.streams.delete(s.name).catch(() => false);
        log(`stream ${s.name}: ${existed ? 'deleted' : 'absent'}, restoring`);
        streams.push(await restoreStream(opts.nats, s.name, { dir: join(opts.archive, s.dir) }));
      }
      const redis = await restoreRedisLogical(opts.redis, { root: opts.archive, dbs: manifest.redis?.dbs ?? [] });
      log(`redis: ${redis.restored} keys restored, ${redis.replaced} replaced, ${redis.expired_skipped} expired`);
      const r = await verifyRedis(opts.archive, manifest, opts.redis);
      const j = await verifyJetStream(opts.nats, manifest);
      // Live data may legitimately hold keys the backup lacks: only absences and differences count.
      const failures = [...r.failures.filter((f) => f.code !== 'count-mismatch'), ...j.failures];
      if (failures.length) throw new VerifyError(failures);
      return { frozen, redis, streams };
    },
    { log },
  );
}
