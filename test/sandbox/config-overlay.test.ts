// The scheduler's pools/timeouts overlay (runtime.md §2.2): seeding cfg:system:default, the
// periodic reload that swaps routing and reconciler timeouts on a hash change, and invalid
// overlays being ignored with the previous values kept.
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, type JobRequest } from '../../helpers/cap/codec.js';
import { buildConfig, DEFAULTS } from '../../sandbox/config.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { startRedis, type ManagedServer } from '../../helpers/processes.js';
import { parsePoolsOverlay, parseTimeoutsOverlay, startConfigOverlay, type ConfigOverlay } from '../../sandbox/scheduler/config-overlay.js';
import type { SandboxDeps } from '../../sandbox/types.js';
import { client, until } from './sandbox-client.js';

const KEY = 'cfg:system:default';

describe('overlay parsing', () => {
  it('pools: single names become lists; an empty topics map is a schema error', () => {
    expect(parsePoolsOverlay({ topics: { 'job.a': 'p1', 'job.b': ['p1', 'p2'] }, pools: { p1: { requires: ['gpu'] }, p2: null } })).toEqual({
      topics: { 'job.a': ['p1'], 'job.b': ['p1', 'p2'] },
      pools: { p1: { requires: ['gpu'] }, p2: { requires: [] } },
    });
    expect(() => parsePoolsOverlay({ topics: {} })).toThrow(/empty/);
    expect(() => parsePoolsOverlay({ topics: { 'job.a': [] } })).toThrow();
    expect(() => parsePoolsOverlay({ topics: { 'job.a': 'p' }, pools: { p: { requires: 'gpu' } } })).toThrow();
    expect(() => parsePoolsOverlay('nope')).toThrow();
  });

  it('timeouts: LoadTimeouts fallbacks (all-zero -> 300/9000/30, partial -> 120/300/30); negatives are schema errors', () => {
    expect(parseTimeoutsOverlay({})).toEqual(DEFAULTS.timeouts);
    expect(parseTimeoutsOverlay({ reconciler: { dispatch_timeout_seconds: 0, running_timeout_seconds: 0, scan_interval_seconds: 0 } })).toEqual(DEFAULTS.timeouts);
    expect(parseTimeoutsOverlay({ reconciler: { dispatch_timeout_seconds: 10 } })).toEqual({ dispatchTimeoutS: 10, runningTimeoutS: 300, scanIntervalS: 30 });
    expect(() => parseTimeoutsOverlay({ reconciler: { scan_interval_seconds: -1 } })).toThrow();
    expect(() => parseTimeoutsOverlay({ reconciler: { scan_interval_seconds: '5' } })).toThrow();
    expect(() => parseTimeoutsOverlay({ topics: { 'job.a': { max_retries: -2 } } })).toThrow();
  });

  it('SCHEDULER_CONFIG_RELOAD_INTERVAL sets schedulerConfigReloadMs (Go duration, default 30 s)', () => {
    expect(buildConfig({}).schedulerConfigReloadMs).toBe(30_000);
    expect(buildConfig({ SCHEDULER_CONFIG_RELOAD_INTERVAL: '250ms' }).schedulerConfigReloadMs).toBe(250);
    expect(buildConfig({ SCHEDULER_CONFIG_RELOAD_INTERVAL: 'soon' }).schedulerConfigReloadMs).toBe(30_000);
  });
});

describe('seeding and reload (overlay module on a real Redis)', () => {
  let srv: ManagedServer;
  let redis: Redis;
  const logs: string[] = [];
  const overlays: ConfigOverlay[] = [];

  beforeAll(async () => {
    srv = await startRedis({ persistence: false });
    redis = new Redis(srv.url);
  });
  afterAll(async () => {
    overlays.forEach((o) => o.stop());
    redis?.disconnect();
    await srv?.stop();
  });

  const start = async (onTimeoutsChanged?: () => void) => {
    const config = buildConfig({ SCHEDULER_CONFIG_RELOAD_INTERVAL: '50ms' });
    const deps = { redis, config, log: (c: string, m: string) => logs.push(`${c}: ${m}`) } as unknown as SandboxDeps;
    const overlay = await startConfigOverlay(deps, { config, onTimeoutsChanged });
    overlays.push(overlay);
    return { config, overlay };
  };
  const readDoc = async () => JSON.parse((await redis.get(KEY))!);
  const writeData = async (data: Record<string, unknown>) =>
    redis.set(KEY, JSON.stringify({ ...(await readDoc()), data, updated_at: new Date().toISOString() }));

  it('seeds an absent document with data.pools and data.timeouts from the files', async () => {
    await redis.del(KEY);
    const { overlay } = await start();
    overlay.stop();
    const doc = await readDoc();
    expect(doc).toMatchObject({ scope: 'system', scope_id: 'default', revision: 1 });
    // Go field names, as a real Cordum seeds them (recorded).
    expect(doc.data.pools).toEqual({ Topics: { 'job.default': ['default'] }, Pools: { default: { Requires: [] } } });
    expect(doc.data.timeouts).toEqual({ Reconciler: { DispatchTimeoutSeconds: 300, RunningTimeoutSeconds: 9000, ScanIntervalSeconds: 30 }, Topics: {}, Workflows: {} });
  });

  it('adds only the absent keys to an existing document and keeps the others', async () => {
    const pools = { topics: { 'job.kept': ['kept'] }, pools: { kept: { requires: [] } } };
    await redis.set(KEY, JSON.stringify({ scope: 'system', scope_id: 'default', data: { pools, rate_limits: { x: 1 } }, revision: 1, updated_at: '2026-01-01T00:00:00Z' }));
    const { config, overlay } = await start();
    overlay.stop();
    const doc = await readDoc();
    expect(doc.data.pools).toEqual(pools);
    expect(doc.data.rate_limits).toEqual({ x: 1 });
    expect(doc.data.timeouts.Reconciler.ScanIntervalSeconds).toBe(30);
    // The stored overlay wins over the files at start.
    expect(config.pools.topics).toEqual({ 'job.kept': ['kept'] });
  });

  it('reloads on the interval: a changed overlay swaps pools and timeouts; an invalid one is ignored with a log line', async () => {
    await redis.del(KEY);
    let changed = 0;
    const { config } = await start(() => changed++);
    const seeded = (await readDoc()).data;

    await writeData({ ...seeded, pools: { topics: { 'job.new': 'p' }, pools: { p: {} } }, timeouts: { reconciler: { dispatch_timeout_seconds: 7 } } });
    await until('the overlay applied', async () => (config.pools.topics['job.new'] ? true : undefined));
    await until('the timeouts applied', async () => (config.timeouts.dispatchTimeoutS === 7 ? true : undefined));
    expect(config.timeouts).toEqual({ dispatchTimeoutS: 7, runningTimeoutS: 300, scanIntervalS: 30 });
    expect(changed).toBe(1);

    logs.length = 0;
    await writeData({ pools: { topics: {} }, timeouts: { reconciler: { dispatch_timeout_seconds: -5 } } });
    await until('pools overlay ignored', async () => (logs.some((l) => l.includes('pools overlay ignored')) ? true : undefined));
    await until('timeouts overlay ignored', async () => (logs.some((l) => l.includes('timeouts overlay ignored')) ? true : undefined));
    expect(config.pools.topics).toEqual({ 'job.new': ['p'] });
    expect(config.timeouts.dispatchTimeoutS).toBe(7);
    expect(changed).toBe(1);

    logs.length = 0;
    await redis.set(KEY, '{not json');
    await until('an unreadable document is ignored', async () => (logs.some((l) => l.includes('pools overlay ignored')) ? true : undefined));
    expect(config.pools.topics).toEqual({ 'job.new': ['p'] });
  });
});

describe('on a started sandbox', () => {
  let sb: Sandbox;
  let nc: NatsConnection;
  let redis: Redis;
  let call: ReturnType<typeof client>;
  const logs: string[] = [];

  beforeAll(async () => {
    sb = await startSandbox({ env: { SCHEDULER_CONFIG_RELOAD_INTERVAL: '100ms' }, log: (l) => logs.push(l) });
    nc = await connect({ servers: sb.natsUrl });
    redis = new Redis(sb.redisUrl);
    call = client(sb);
  });
  afterAll(async () => {
    await nc?.close();
    redis?.disconnect();
    await sb?.stop();
  });

  /** A worker in pool `pool` that records dispatched jobs and never answers. */
  function silentWorker(id: string, pool: string) {
    const seen: JobRequest[] = [];
    const sub = nc.subscribe(`worker.${id}.jobs`, { callback: (_e, m) => void seen.push(decodePacket(m.data).job_request!) });
    const beat = () => nc.publish('sys.heartbeat', encodePacket({ sender_id: id, heartbeat: { worker_id: id, pool, max_parallel_jobs: 8 } }));
    beat();
    const timer = setInterval(beat, 200);
    return { seen, stop: () => (clearInterval(timer), sub.unsubscribe()) };
  }
  const jobState = async (id: string) => (await call('GET', `/api/v1/jobs/${id}`)).json?.state as string | undefined;

  it('GET /api/v1/config answers the seeded system/default document on a fresh install', async () => {
    const res = await call('GET', '/api/v1/config');
    expect(res.status).toBe(200);
    expect(Object.keys(res.json.data).sort()).toEqual(['pools', 'timeouts']);
  });

  it('a topic mapped through the overlay is routed, and shorter reconciler timeouts take effect', async () => {
    const worker = silentWorker('sb-overlay-w', 'overlay-pool');
    try {
      const before = await call('POST', '/api/v1/jobs', { prompt: 'x', topic: 'job.sb-overlay' });
      await until('unmapped job fails', async () => ((await jobState(before.json.job_id)) === 'FAILED' ? true : undefined), 10_000);

      const doc = (await call('GET', '/api/v1/config')).json;
      const data = {
        ...doc.data,
        pools: { topics: { ...doc.data.pools.Topics, 'job.sb-overlay': ['overlay-pool'] }, pools: { ...doc.data.pools.Pools, 'overlay-pool': { requires: [] } } },
        timeouts: { reconciler: { dispatch_timeout_seconds: 1, running_timeout_seconds: 1, scan_interval_seconds: 0.2 } },
      };
      expect((await call('POST', '/api/v1/config', { scope: 'system', scope_id: 'default', data })).status).toBe(204);
      await until('overlay applied', async () => (logs.filter((l) => l.includes('pools overlay applied')).length >= 2 ? true : undefined));

      const after = await call('POST', '/api/v1/jobs', { prompt: 'x', topic: 'job.sb-overlay' });
      const id = after.json.job_id as string;
      await until('dispatched to the overlay pool', async () => (worker.seen.some((r) => r.job_id === id) ? true : undefined), 10_000);
      // Nobody answers: the 1 s dispatch timeout, scanned every 200 ms, times the job out.
      await until('reconciler TIMEOUT', async () => ((await jobState(id)) === 'TIMEOUT' ? true : undefined), 10_000);

      // An invalid overlay keeps the routing that is in force.
      await call('POST', '/api/v1/config', { scope: 'system', scope_id: 'default', data: { ...data, pools: { topics: {} } } });
      await until('pools overlay ignored', async () => (logs.some((l) => l.includes('pools overlay ignored')) ? true : undefined));
      const kept = await call('POST', '/api/v1/jobs', { prompt: 'x', topic: 'job.sb-overlay' });
      await until('still routed', async () => (worker.seen.some((r) => r.job_id === kept.json.job_id) ? true : undefined), 10_000);
    } finally {
      worker.stop();
    }
  });
});
