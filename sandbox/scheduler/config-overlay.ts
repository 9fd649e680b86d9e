// The scheduler's pools/timeouts overlay (runtime.md §2.2). At start the scheduler makes sure the
// config-service document cfg:system:default carries `data.pools` and `data.timeouts`, writing the
// values it loaded from its files for whichever key is absent (other keys are left alone). Then,
// every SCHEDULER_CONFIG_RELOAD_INTERVAL, it re-reads that document; when the hash of the two
// sections changes it swaps the routing table and the reconciler timeouts. A section that does not
// parse or fails validation is ignored with a log line (`pools overlay ignored: ...` /
// `timeouts overlay ignored: ...`) and the previous values stay in force.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULTS } from '../config.js';
import { configKey, type ConfigDoc } from '../stores/config-docs.js';
import { rfc3339Nano } from '../stores/jobs.js';
import type { SandboxConfig, SandboxDeps } from '../types.js';

const DOC_SCOPE = 'system';
const DOC_ID = 'default';
const MAX_SEED_ATTEMPTS = 5;

type Pools = SandboxConfig['pools'];
type Timeouts = SandboxConfig['timeouts'];

export class OverlayError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The document form of the pools the scheduler runs with. Cordum marshals its Go structs, which carry
 * yaml tags but no json tags, so the seeded document uses the Go field names (recorded on a real
 * build): `{"Pools":{"default":{"Requires":[]}},"Topics":{"job.default":["default"]}}`.
 */
export function poolsToDoc(p: Pools): Record<string, unknown> {
  return {
    Pools: Object.fromEntries(Object.entries(p.pools).map(([n, v]) => [n, { Requires: [...(v.requires ?? [])] }])),
    Topics: Object.fromEntries(Object.entries(p.topics).map(([t, list]) => [t, [...list]])),
  };
}

/** The document form of the reconciler timeouts, Go field names as recorded (see poolsToDoc). */
export function timeoutsToDoc(t: Timeouts): Record<string, unknown> {
  return {
    Reconciler: {
      DispatchTimeoutSeconds: t.dispatchTimeoutS,
      RunningTimeoutSeconds: t.runningTimeoutS,
      ScanIntervalSeconds: t.scanIntervalS,
    },
    Topics: {},
    Workflows: {},
  };
}

/**
 * A field of a decoded overlay section, matched as Go's encoding/json matches it (exact name first,
 * then case-insensitively), and also under the yaml-tag name operators write by hand (snake_case).
 */
function field(obj: Record<string, unknown>, ...names: string[]): unknown {
  for (const n of names) if (n in obj) return obj[n];
  const lower = new Map(Object.keys(obj).map((k) => [k.toLowerCase(), k]));
  for (const n of names) {
    const k = lower.get(n.toLowerCase());
    if (k !== undefined) return obj[k];
  }
  return undefined;
}

/** `data.pools` -> routing table; throws OverlayError on a schema problem (e.g. no topics). */
export function parsePoolsOverlay(v: unknown): Pools {
  if (!isObject(v)) throw new OverlayError('pools must be an object');
  const topicsIn = field(v, 'topics');
  const poolsIn = field(v, 'pools');
  if (!isObject(topicsIn)) throw new OverlayError('pools.topics must be an object');
  if (poolsIn !== undefined && poolsIn !== null && !isObject(poolsIn)) throw new OverlayError('pools.pools must be an object');
  const topics: Record<string, string[]> = {};
  for (const [topic, raw] of Object.entries(topicsIn)) {
    const list = typeof raw === 'string' ? [raw] : raw;
    if (!Array.isArray(list) || !list.length || list.some((x) => typeof x !== 'string' || !x.trim())) {
      throw new OverlayError(`pools.topics.${topic} must name at least one pool`);
    }
    topics[topic] = list as string[];
  }
  if (!Object.keys(topics).length) throw new OverlayError('pools.topics is empty');
  const pools: Record<string, { requires?: string[] }> = {};
  for (const [name, raw] of Object.entries((poolsIn as Record<string, unknown> | undefined | null) ?? {})) {
    if (raw === null) {
      pools[name] = { requires: [] };
      continue;
    }
    if (!isObject(raw)) throw new OverlayError(`pools.pools.${name} must be an object`);
    const req = field(raw, 'requires') ?? [];
    if (!Array.isArray(req) || req.some((x) => typeof x !== 'string')) throw new OverlayError(`pools.pools.${name}.requires must be a list of strings`);
    pools[name] = { requires: req as string[] };
  }
  return { topics, pools };
}

/** `data.timeouts` -> reconciler timeouts with LoadTimeouts' fallbacks; throws OverlayError on a schema problem. */
export function parseTimeoutsOverlay(v: unknown): Timeouts {
  if (!isObject(v)) throw new OverlayError('timeouts must be an object');
  const nonNegative = (x: unknown, where: string): number => {
    if (x === undefined || x === null) return 0;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) throw new OverlayError(`${where} must be a number >= 0`);
    return x;
  };
  // Per-topic and per-workflow entries are validated like Cordum does, and otherwise unused.
  for (const section of ['topics', 'workflows'] as const) {
    const entries = field(v, section);
    if (entries === undefined || entries === null) continue;
    if (!isObject(entries)) throw new OverlayError(`timeouts.${section} must be an object`);
    for (const [name, e] of Object.entries(entries)) {
      if (!isObject(e)) throw new OverlayError(`timeouts.${section}.${name} must be an object`);
      for (const [k, x] of Object.entries(e)) nonNegative(x, `timeouts.${section}.${name}.${k}`);
    }
  }
  const r = field(v, 'reconciler');
  if (r !== undefined && r !== null && !isObject(r)) throw new OverlayError('timeouts.reconciler must be an object');
  const rec = (r ?? {}) as Record<string, unknown>;
  const d = nonNegative(field(rec, 'DispatchTimeoutSeconds', 'dispatch_timeout_seconds'), 'timeouts.reconciler.dispatch_timeout_seconds');
  const run = nonNegative(field(rec, 'RunningTimeoutSeconds', 'running_timeout_seconds'), 'timeouts.reconciler.running_timeout_seconds');
  const scan = nonNegative(field(rec, 'ScanIntervalSeconds', 'scan_interval_seconds'), 'timeouts.reconciler.scan_interval_seconds');
  if (!d && !run && !scan) return { ...DEFAULTS.timeouts };
  return { dispatchTimeoutS: d || 120, runningTimeoutS: run || 300, scanIntervalS: scan || 30 };
}

export interface ConfigOverlay {
  /** Re-read cfg:system:default now (what the timer does). */
  reloadOnce(): Promise<void>;
  stop(): void;
}

export interface OverlayTarget {
  /** The scheduler's own config object: its `pools` and `timeouts` are replaced in place. */
  config: SandboxConfig;
  /** Called after `config.timeouts` changed (the reconciler re-arms its timers). */
  onTimeoutsChanged?: () => void;
}

/** Add the absent keys to cfg:system:default (optimistic transaction, retried on a concurrent write). */
async function seed(deps: SandboxDeps, config: SandboxConfig): Promise<void> {
  // WATCH is per connection: use one of our own so other components' MULTIs cannot clear it.
  const redis = deps.redis.duplicate();
  try {
    await seedWith(redis, config);
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

async function seedWith(redis: Redis, config: SandboxConfig): Promise<void> {
  const key = configKey(DOC_SCOPE, DOC_ID);
  for (let attempt = 0; attempt < MAX_SEED_ATTEMPTS; attempt++) {
    await redis.watch(key);
    const raw = await redis.get(key);
    let doc: ConfigDoc | undefined;
    if (raw !== null) {
      try {
        const parsed: unknown = JSON.parse(raw);
        if (isObject(parsed)) doc = parsed as unknown as ConfigDoc;
      } catch {
        doc = undefined;
      }
      if (!doc) {
        // An unreadable document is not overwritten: the reload logs it and keeps the file values.
        await redis.unwatch();
        return;
      }
    }
    const data: Record<string, unknown> = isObject(doc?.data) ? { ...doc!.data } : {};
    if (doc && 'pools' in data && 'timeouts' in data) {
      await redis.unwatch();
      return;
    }
    if (!('pools' in data)) data.pools = poolsToDoc(config.pools);
    if (!('timeouts' in data)) data.timeouts = timeoutsToDoc(config.timeouts);
    const next: ConfigDoc = {
      ...(doc ?? {}),
      scope: DOC_SCOPE,
      scope_id: DOC_ID,
      data,
      revision: doc?.revision ?? 1,
      updated_at: rfc3339Nano(),
    };
    const done = await redis.multi().set(key, JSON.stringify(next)).exec();
    if (done) return; // null = the key changed under us: read again
  }
  throw new Error('could not seed cfg:system:default: concurrent writes');
}

export async function startConfigOverlay(deps: SandboxDeps, target: OverlayTarget): Promise<ConfigOverlay> {
  const log = (msg: string) => deps.log('scheduler', msg);
  const key = configKey(DOC_SCOPE, DOC_ID);
  let lastPoolsHash: string | undefined;
  let lastTimeoutsHash: string | undefined;
  let running: Promise<void> | undefined;

  const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v ?? null)).digest('hex');

  const apply = async (): Promise<void> => {
    const raw = await deps.redis.get(key);
    if (raw === null) return; // nothing to overlay: keep what runs
    let data: Record<string, unknown>;
    try {
      const doc: unknown = JSON.parse(raw);
      if (!isObject(doc) || !isObject(doc.data)) throw new OverlayError('document has no data object');
      data = doc.data;
    } catch (err) {
      const h = hash(raw);
      if (h !== lastPoolsHash) log(`pools overlay ignored: ${(err as Error).message}`);
      if (h !== lastTimeoutsHash) log(`timeouts overlay ignored: ${(err as Error).message}`);
      lastPoolsHash = lastTimeoutsHash = h;
      return;
    }
    if ('pools' in data) {
      const h = hash(data.pools);
      if (h !== lastPoolsHash) {
        lastPoolsHash = h;
        try {
          target.config.pools = parsePoolsOverlay(data.pools);
          log('pools overlay applied');
        } catch (err) {
          log(`pools overlay ignored: ${(err as Error).message}`);
        }
      }
    }
    if ('timeouts' in data) {
      const h = hash(data.timeouts);
      if (h !== lastTimeoutsHash) {
        lastTimeoutsHash = h;
        try {
          const next = parseTimeoutsOverlay(data.timeouts);
          const prev = target.config.timeouts;
          target.config.timeouts = next;
          if (next.dispatchTimeoutS !== prev.dispatchTimeoutS || next.runningTimeoutS !== prev.runningTimeoutS || next.scanIntervalS !== prev.scanIntervalS) {
            target.onTimeoutsChanged?.();
          }
          log('timeouts overlay applied');
        } catch (err) {
          log(`timeouts overlay ignored: ${(err as Error).message}`);
        }
      }
    }
  };

  const reloadOnce = () =>
    (running ??= apply()
      .catch((err) => log(`config overlay reload failed: ${(err as Error).message}`))
      .finally(() => {
        running = undefined;
      }));

  await seed(deps, target.config);
  await reloadOnce();
  const timer = setInterval(() => void reloadOnce(), deps.config.schedulerConfigReloadMs);
  timer.unref();
  return { reloadOnce, stop: () => clearInterval(timer) };
}
