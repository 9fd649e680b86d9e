// The backup-then-restore drill: preflight → backup (Redis logical [+ RDB], JetStream snapshots) →
// archive check → restore into a scratch redis-server + nats-server → verify → measure → record.
// Each phase is a method so a scenario can run them as separate steps; runDrill() runs them all
// with a cleanup that always happens (scratch servers stopped, clients closed, lock released,
// archive removed unless kept).
import { mkdir, rm, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Redis, type Cluster } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect as natsConnect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats, startRedis, type ManagedServer } from '../processes.js';
import { PreconditionError, errorMessage } from '../errors.js';
import { MANIFEST_FORMAT, readManifest, writeManifest, type BackupManifest, type FileEntry, type RdbSection, type StreamSection } from './archive.js';
import { backupRedisLogical, keyspaceDbs, redisSource, redisVersion, restoreRedisLogical, type RedisBackupPath, type RedisBackupResult, type RedisRestoreResult } from './redis-logical.js';
import { fetchRdb } from './redis-rdb.js';
import { natsServerVersion, snapshotStream } from './jetstream-snapshot.js';
import { restoreStream, type RestoreStreamResult } from './jetstream-restore.js';
import { VerifyError, verifyArchive, verifyJetStream, verifyRedis, type RedisVerifyOptions, type RedisVerifySummary, type StreamVerifySummary, type VerifyFailure } from './verify.js';
import type { DrillLock, DrillLockHandle } from './lock.js';
import { appendDrillRecord, recordDrillOnCluster, DRILL_HISTORY_FILE, type DrillConfigMapClient, type DrillRecord, type DrillSizes } from './history.js';

export const DEFAULT_STREAMS = ['CORDUM_SYS', 'CORDUM_JOBS'];

export type DrillPhase = 'preflight' | 'redis-backup' | 'rdb-backup' | 'jetstream-backup' | 'archive-check' | 'scratch-start' | 'redis-restore' | 'jetstream-restore' | 'verify' | 'record' | 'cleanup';

export interface DrillProgress {
  phase: DrillPhase;
  message: string;
  /** Phase-specific counters (keys, bytes, chunks). */
  detail?: Record<string, unknown>;
}

/** Where restored data goes: servers the drill starts (default) or given scratch URLs. */
export interface ScratchTarget {
  redis: Redis;
  nats: NatsConnection;
  /** Stops whatever the drill started for this target. */
  stop(): Promise<void>;
}

export interface DrillOptions {
  /** Target profile name, for the record. */
  target: string;
  redis: Redis | Cluster;
  nats: NatsConnection;
  lock: DrillLock;
  streams?: string[];
  /** Parent directory of archives; default reports/backups. */
  workDir?: string;
  keepArchive?: boolean;
  /** Also fetch a physical RDB from every master. */
  rdb?: boolean | { mode?: 'diskless' | 'disk' };
  /** How the logical Redis backup reads each master: auto (default), rdb (SYNC) or scan (redis-logical.ts). */
  redisPath?: RedisBackupPath;
  owner?: string;
  lockTtlMs?: number;
  /** Give a scratch target instead of starting fresh servers. It must be empty. */
  scratch?: () => Promise<ScratchTarget>;
  verify?: RedisVerifyOptions;
  /** Local history file (false = do not record). */
  historyFile?: string | false;
  /** Record on the cluster too (ConfigMap annotation). */
  cluster?: { kube: DrillConfigMapClient; namespace: string };
  onProgress?: (p: DrillProgress) => void;
  /** Test seams: run between phases. */
  hooks?: {
    afterBackup?: (root: string, manifest: BackupManifest) => Promise<void>;
    afterRestore?: (scratch: ScratchTarget) => Promise<void>;
  };
}

export interface PreflightReport {
  redis_version: string;
  redis_cluster: boolean;
  redis_masters: number;
  redis_keys: number;
  redis_used_memory: number;
  nats_version: string;
  streams: Array<{ name: string; messages: number; bytes: number; storage: string; consumers: number }>;
  free_bytes: number;
  needed_bytes: number;
  lock: string;
}

export interface PhaseTiming {
  started_ms: number;
  duration_ms: number;
}

export interface DrillMeasurements {
  rpo_ms: number;
  rto_ms: number;
  newest_message_at?: string;
  sizes: DrillSizes;
  throughput: { backup_keys_per_s: number; backup_mb_per_s: number; restore_keys_per_s: number; restore_mb_per_s: number };
  phases: Partial<Record<DrillPhase, PhaseTiming>>;
}

export interface DrillResult {
  status: 'passed' | 'failed';
  archive: string;
  manifest?: BackupManifest;
  preflight?: PreflightReport;
  /** How the logical backup read each master (the RDB over SYNC, or SCAN) and why, and the keys per db. */
  redisBackup?: { nodes: RedisBackupResult['nodes']; dbs: Array<{ node: string; db: number; keys: number; source: 'rdb' | 'scan' }> };
  redisRestore?: RedisRestoreResult;
  streamRestores: RestoreStreamResult[];
  redisVerify?: RedisVerifySummary;
  streamVerify: StreamVerifySummary[];
  failures: VerifyFailure[];
  measurements?: DrillMeasurements;
  record?: DrillRecord;
  error?: string;
}

/** Redis "major.minor" as a number for compatibility checks (DUMP versions only go up). */
function versionNumber(v: string): number {
  const [maj, min] = v.split('.').map(Number);
  return (maj ?? 0) * 1000 + (min ?? 0);
}

export async function startScratchTarget(): Promise<ScratchTarget> {
  const servers: ManagedServer[] = [];
  const clients: { redis?: Redis; nats?: NatsConnection } = {};
  try {
    const r = await startRedis({ persistence: false });
    servers.push(r);
    const n = await startNats();
    servers.push(n);
    clients.redis = new Redis(r.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 2 });
    await clients.redis.connect();
    clients.nats = await natsConnect({ servers: n.url });
  } catch (err) {
    clients.redis?.disconnect();
    await clients.nats?.close();
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  const { redis, nats } = clients as { redis: Redis; nats: NatsConnection };
  return {
    redis,
    nats,
    stop: async () => {
      redis.disconnect();
      await nats.close().catch(() => undefined);
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

export class RestoreDrill {
  readonly streams: string[];
  readonly root: string;
  readonly result: DrillResult;
  readonly phases: Partial<Record<DrillPhase, PhaseTiming>> = {};
  private lockHandle?: DrillLockHandle;
  private scratch?: ScratchTarget;
  private readonly startedAt = new Date();
  private manifest: BackupManifest;
  private backupStartMs = 0;
  private backupEndMs = 0;

  constructor(readonly opts: DrillOptions) {
    this.streams = opts.streams ?? DEFAULT_STREAMS;
    const stamp = this.startedAt.toISOString().replace(/[:.]/g, '-');
    this.root = resolve(opts.workDir ?? 'reports/backups', `${opts.target}-${stamp}`);
    this.result = { status: 'failed', archive: this.root, streamRestores: [], streamVerify: [], failures: [] };
    this.manifest = { format: MANIFEST_FORMAT, source: opts.target, started_at: this.startedAt.toISOString(), finished_at: '', files: {} };
  }

  private progress(phase: DrillPhase, message: string, detail?: Record<string, unknown>): void {
    this.opts.onProgress?.({ phase, message, detail });
  }

  async timed<T>(phase: DrillPhase, fn: () => Promise<T>): Promise<T> {
    const started_ms = Date.now();
    this.progress(phase, `${phase} started`);
    try {
      return await fn();
    } finally {
      this.phases[phase] = { started_ms, duration_ms: Date.now() - started_ms };
      this.progress(phase, `${phase} finished in ${this.phases[phase]!.duration_ms} ms`);
    }
  }

  /** Connectivity, versions, sizes, free disk, no cluster resharding, exclusive lock. */
  async preflight(): Promise<PreflightReport> {
    return this.timed('preflight', async () => {
      const src = redisSource(this.opts.redis);
      let redisKeys = 0;
      let usedMemory = 0;
      for (const node of src.nodes) {
        try {
          await node.client.ping();
        } catch (err) {
          throw new PreconditionError(`redis master ${node.label} does not answer PING: ${errorMessage(err)}`);
        }
        redisKeys += (await keyspaceDbs(node.client)).reduce((n, d) => n + d.keys, 0);
        usedMemory += Number(/used_memory:(\d+)/.exec(await node.client.info('memory'))?.[1] ?? 0);
        if (src.cluster) {
          const nodes = String(await node.client.call('CLUSTER', 'NODES'));
          if (/\[\d+-[<>]-/.test(nodes) || /\bfail\??\b/.test(nodes)) throw new PreconditionError(`redis cluster is resharding or has failed nodes (CLUSTER NODES on ${node.label}); a logical backup now could miss keys`);
        }
      }
      const redis_version = src.nodes[0] ? await redisVersion(src.nodes[0].client) : 'unknown';
      try {
        await this.opts.nats.flush();
      } catch (err) {
        throw new PreconditionError(`NATS does not answer: ${errorMessage(err)}`);
      }
      const jsm = await jetstreamManager(this.opts.nats);
      const streams: PreflightReport['streams'] = [];
      for (const name of this.streams) {
        const info = await jsm.streams.info(name).catch((err: Error) => {
          throw new PreconditionError(`stream ${name} is not available on the source: ${err.message}`);
        });
        if (info.config.storage !== 'file') throw new PreconditionError(`stream ${name} uses ${info.config.storage} storage; the snapshot API only supports file streams`);
        streams.push({ name, messages: info.state.messages, bytes: info.state.bytes, storage: info.config.storage, consumers: info.state.consumer_count });
      }
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      const fs = await statfs(this.root);
      const free_bytes = fs.bavail * fs.bsize;
      // Archive ≈ used memory × 4/3 (base64) + stream bytes; the scratch servers hold another copy.
      const needed_bytes = Math.ceil((usedMemory * 1.4 + streams.reduce((n, s) => n + s.bytes, 0)) * 2 + 64 * 1024 * 1024);
      if (free_bytes < needed_bytes) throw new PreconditionError(`only ${free_bytes} bytes free under ${this.root}; the drill needs about ${needed_bytes}`);
      const owner = this.opts.owner ?? `restore-drill-${process.pid}-${this.startedAt.getTime()}`;
      this.lockHandle = await this.opts.lock.acquire(owner, this.opts.lockTtlMs ?? 30 * 60_000);
      const report: PreflightReport = {
        redis_version,
        redis_cluster: src.cluster,
        redis_masters: src.nodes.length,
        redis_keys: redisKeys,
        redis_used_memory: usedMemory,
        nats_version: natsServerVersion(this.opts.nats),
        streams,
        free_bytes,
        needed_bytes,
        lock: this.lockHandle.description,
      };
      this.result.preflight = report;
      return report;
    });
  }

  async backupRedis(): Promise<void> {
    this.backupStartMs ||= Date.now();
    await this.timed('redis-backup', async () => {
      const res = await backupRedisLogical(redisSource(this.opts.redis), {
        root: this.root,
        path: this.opts.redisPath,
        onProgress: (p) => this.progress('redis-backup', `${p.node} db${p.db}: ${p.keys} keys`, { ...p }),
      });
      this.result.redisBackup = { nodes: res.nodes, dbs: res.dbs.map((d) => ({ node: d.node, db: d.db, keys: d.keys, source: d.source ?? 'scan' })) };
      this.manifest.redis = { server_version: res.server_version, cluster: res.cluster, dbs: res.dbs, rdb: [] };
      Object.assign(this.manifest.files, res.files);
    });
    if (this.opts.rdb) {
      await this.timed('rdb-backup', async () => {
        const mode = typeof this.opts.rdb === 'object' ? this.opts.rdb.mode : undefined;
        const rdb: RdbSection[] = [];
        for (const node of redisSource(this.opts.redis).nodes) {
          const o = node.client.options;
          const rel = `redis/${node.label}.rdb`;
          const got = await fetchRdb({
            host: o.host ?? '127.0.0.1',
            port: o.port ?? 6379,
            tls: o.tls,
            username: o.username,
            password: o.password,
            file: join(this.root, rel),
            mode,
          });
          rdb.push({ node: node.label, file: rel, bytes: got.bytes, rdb_version: got.rdb_version, mode: got.mode });
          this.manifest.files[rel] = { bytes: got.bytes, sha256: got.sha256 };
          this.progress('rdb-backup', `${node.label}: ${got.bytes} bytes (${got.mode})`);
        }
        this.manifest.redis!.rdb = rdb;
      });
    }
  }

  async backupJetStream(): Promise<void> {
    this.backupStartMs ||= Date.now();
    await this.timed('jetstream-backup', async () => {
      const streams: StreamSection[] = [];
      for (const name of this.streams) {
        const res = await snapshotStream(this.opts.nats, name, {
          root: this.root,
          onProgress: (p) => this.progress('jetstream-backup', `${name}: ${p.chunks} chunks, ${p.bytes} bytes`, { ...p }),
        });
        streams.push(res.section);
        Object.assign(this.manifest.files, res.files);
      }
      this.manifest.jetstream = { server_version: natsServerVersion(this.opts.nats), streams };
    });
    this.backupEndMs = Date.now();
  }

  /**
   * Only take a checked archive, no scratch restore: preflight, both backups and the archive check,
   * then the drill's own resources go while the archive stays. Returns the archive folder (the
   * in-place restore's first half, and how tests make an archive to restore from).
   */
  async archiveOnly(): Promise<string> {
    try {
      await this.preflight();
      await this.backupRedis();
      await this.backupJetStream();
      await this.checkArchive();
    } finally {
      await this.cleanup({ keepArchive: true });
    }
    return this.root;
  }

  /** Write the manifest, then re-read everything from disk and check it before any restore. */
  async checkArchive(): Promise<BackupManifest> {
    this.backupEndMs ||= Date.now();
    this.manifest.finished_at = new Date(this.backupEndMs).toISOString();
    await writeManifest(this.root, this.manifest);
    this.result.manifest = this.manifest;
    await this.opts.hooks?.afterBackup?.(this.root, this.manifest);
    return this.timed('archive-check', async () => {
      const manifest = await readManifest(this.root);
      const failures = await verifyArchive(this.root, manifest);
      if (failures.length) {
        this.result.failures.push(...failures);
        throw new VerifyError(failures);
      }
      return manifest;
    });
  }

  /** Fresh scratch servers (or the given ones) and the restore into them. */
  async restoreToScratch(manifest: BackupManifest): Promise<void> {
    const scratch = await this.timed('scratch-start', () => (this.opts.scratch ?? startScratchTarget)());
    this.scratch = scratch;
    const scratchVersion = await redisVersion(scratch.redis);
    const sourceVersion = manifest.redis?.server_version ?? '0.0';
    if (versionNumber(scratchVersion) < versionNumber(sourceVersion)) {
      throw new PreconditionError(`scratch redis-server ${scratchVersion} is older than the source ${sourceVersion}: its DUMP payloads cannot be RESTOREd there`);
    }
    if ((await scratch.redis.dbsize()) !== 0) throw new PreconditionError('the scratch Redis is not empty; a drill restores only into an empty target');
    await this.timed('redis-restore', async () => {
      this.result.redisRestore = await restoreRedisLogical(scratch.redis, {
        root: this.root,
        dbs: manifest.redis?.dbs ?? [],
        onProgress: (p) => this.progress('redis-restore', `db${p.db}: ${p.keys} keys`, { ...p }),
      });
    });
    await this.timed('jetstream-restore', async () => {
      for (const s of manifest.jetstream?.streams ?? []) {
        const res = await restoreStream(scratch.nats, s.name, {
          dir: join(this.root, s.dir),
          // The scratch server is standalone: one replica, no placement.
          configOverride: { num_replicas: 1, placement: undefined },
          onProgress: (p) => this.progress('jetstream-restore', `${s.name}: ${p.bytes}/${p.total} bytes`, { ...p }),
        });
        this.result.streamRestores.push(res);
      }
    });
    await this.opts.hooks?.afterRestore?.(scratch);
  }

  get scratchTarget(): ScratchTarget | undefined {
    return this.scratch;
  }

  async verify(manifest: BackupManifest): Promise<void> {
    const scratch = this.scratch;
    if (!scratch) throw new Error('verify() before restoreToScratch()');
    await this.timed('verify', async () => {
      const r = await verifyRedis(this.root, manifest, scratch.redis, this.opts.verify);
      this.result.redisVerify = r.summary;
      const j = await verifyJetStream(scratch.nats, manifest);
      this.result.streamVerify = j.streams;
      const failures = [...r.failures, ...j.failures];
      this.result.failures.push(...failures);
      if (failures.length) throw new VerifyError(failures);
    });
  }

  measure(): DrillMeasurements {
    const m = this.manifest;
    const p = this.phases;
    const dur = (ph: DrillPhase) => p[ph]?.duration_ms ?? 0;
    const redisKeys = (m.redis?.dbs ?? []).reduce((n, d) => n + d.keys, 0);
    const redisBytes = (m.redis?.dbs ?? []).reduce((n, d) => n + (m.files[d.file]?.bytes ?? 0), 0);
    const jsBytes = (m.jetstream?.streams ?? []).reduce((n, s) => n + s.bytes, 0);
    const archiveBytes = Object.values(m.files).reduce((n: number, f: FileEntry) => n + f.bytes, 0);
    // RPO: anything written after the capture began may be missing (SCAN dumps are fuzzy over the
    // scan window; each stream snapshot is as of its own start), so count from the earliest start.
    const captureStarts = [...(m.redis?.dbs ?? []).map((d) => d.scan_started_ms), ...(m.jetstream?.streams ?? []).map((s) => s.started_ms)];
    const captureStart = captureStarts.length ? Math.min(...captureStarts) : this.backupStartMs;
    const newest = (m.jetstream?.streams ?? []).map((s) => s.state.last_ts).filter((t): t is string => !!t && !t.startsWith('0001')).sort().at(-1);
    const restorePhases: DrillPhase[] = ['scratch-start', 'redis-restore', 'jetstream-restore', 'verify'];
    const backupMs = dur('redis-backup') + dur('jetstream-backup');
    const restoreMs = dur('redis-restore') + dur('jetstream-restore');
    const perS = (n: number, ms: number) => (ms > 0 ? Math.round((n / ms) * 1000 * 100) / 100 : 0);
    const measurements: DrillMeasurements = {
      rpo_ms: Math.max(0, (this.backupEndMs || Date.now()) - captureStart),
      rto_ms: restorePhases.reduce((n, ph) => n + dur(ph), 0),
      newest_message_at: newest,
      sizes: {
        redis_keys: redisKeys,
        redis_bytes: redisBytes,
        jetstream_messages: (m.jetstream?.streams ?? []).reduce((n, s) => n + s.state.messages, 0),
        jetstream_bytes: jsBytes,
        archive_bytes: archiveBytes,
      },
      throughput: {
        backup_keys_per_s: perS(redisKeys, dur('redis-backup')),
        backup_mb_per_s: perS(archiveBytes / 1e6, backupMs),
        restore_keys_per_s: perS(this.result.redisRestore?.restored ?? 0, dur('redis-restore')),
        restore_mb_per_s: perS(((this.result.redisRestore?.bytes ?? 0) + jsBytes) / 1e6, restoreMs),
      },
      phases: this.phases,
    };
    this.result.measurements = measurements;
    return measurements;
  }

  /** Append to the history file and, on clusters, annotate the drills ConfigMap. */
  async record(status: 'passed' | 'failed', error?: string): Promise<DrillRecord> {
    const m = this.result.measurements ?? this.measure();
    const record: DrillRecord = {
      kind: 'restore-drill',
      target: this.opts.target,
      started_at: this.startedAt.toISOString(),
      finished_at: new Date().toISOString(),
      status,
      rpo_ms: this.manifest.finished_at ? m.rpo_ms : null,
      rto_ms: this.result.redisRestore ? m.rto_ms : null,
      sizes: m.sizes,
      ...(error ? { error: error.split('\n')[0] } : {}),
    };
    if (this.opts.historyFile !== false) await appendDrillRecord(record, this.opts.historyFile ?? DRILL_HISTORY_FILE);
    if (this.opts.cluster) await recordDrillOnCluster(this.opts.cluster.kube, this.opts.cluster.namespace, record);
    this.result.record = record;
    this.result.status = status;
    return record;
  }

  /** Always safe to call, any number of times; collects (does not throw) secondary errors. */
  async cleanup(opts: { keepArchive?: boolean } = {}): Promise<string[]> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
      }
    };
    if (this.scratch) {
      const s = this.scratch;
      this.scratch = undefined;
      await step('stopping scratch servers', () => s.stop());
    }
    if (this.lockHandle) {
      const l = this.lockHandle;
      this.lockHandle = undefined;
      await step(`releasing ${l.description}`, () => l.release());
    }
    if (!(opts.keepArchive ?? this.opts.keepArchive)) await step(`removing ${this.root}`, () => rm(this.root, { recursive: true, force: true }));
    this.progress('cleanup', problems.length ? `cleanup left problems: ${problems.join('; ')}` : 'cleanup done');
    return problems;
  }
}

/**
 * Run the whole drill. Resolves with the result when it passes; otherwise records the failure and
 * rejects with the original error (VerifyError carries the individual failures). The archive is
 * kept after a failure, for inspection, unless the preflight failed before anything was written.
 */
export async function runDrill(opts: DrillOptions): Promise<DrillResult> {
  const drill = new RestoreDrill(opts);
  let failed: unknown;
  try {
    await drill.preflight();
    await drill.backupRedis();
    await drill.backupJetStream();
    const manifest = await drill.checkArchive();
    await drill.restoreToScratch(manifest);
    await drill.verify(manifest);
    drill.measure();
    await drill.timed('record', () => drill.record('passed'));
    return drill.result;
  } catch (err) {
    failed = err;
    drill.result.error = errorMessage(err);
    drill.measure();
    if (drill.result.preflight) await drill.record('failed', errorMessage(err)).catch(() => undefined);
    throw err;
  } finally {
    const keep = failed !== undefined && drill.result.preflight !== undefined ? true : undefined;
    await drill.cleanup({ keepArchive: keep });
  }
}

