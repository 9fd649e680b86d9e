// The scheduler service: consumes sys.job.submit / sys.job.result durably and sys.job.cancel /
// sys.heartbeat on core NATS, asks the safety kernel, routes and dispatches, DLQs failures,
// writes sys:workers:snapshot every 5 s, runs the reconciler and pending replayer, and serves
// its Prometheus metrics on its own port.
import type { Component, SandboxConfig, SandboxDeps } from '../types.js';
import { startConfigOverlay } from './config-overlay.js';
import { createJobStore } from '../stores/jobs.js';
import { createConfigStore } from '../stores/config-docs.js';
import { createKernelClient } from '../kernel/client.js';
import { createEngine } from './engine.js';
import { createSchedulerMetrics, serveMetrics } from './metrics.js';
import { createReconciler } from './reconciler.js';
import { createSafetyChecker } from './safety.js';
import { WorkerRegistry } from './workers.js';

const QUEUE = 'cordum-scheduler';
const SNAPSHOT_INTERVAL_MS = 5_000;
const KERNEL_TIMEOUT_MS = 2_000;

export async function startScheduler(sharedDeps: SandboxDeps, opts: { metricsPort: number }): Promise<Component & { metricsUrl: string }> {
  // The scheduler's own copy of the config: the pools/timeouts overlay swaps its routing and
  // reconciler timeouts without touching what the other components were given.
  const config: SandboxConfig = { ...sharedDeps.config };
  const deps: SandboxDeps = { ...sharedDeps, config };
  const { redis, bus } = deps;
  const log = (msg: string) => deps.log('scheduler', msg);
  const store = createJobStore(redis, config);
  const metrics = createSchedulerMetrics();
  const workers = new WorkerRegistry();
  const checkSafety = createSafetyChecker(createKernelClient(deps.nc, { timeoutMs: KERNEL_TIMEOUT_MS }));
  const engine = createEngine({ deps, store, configs: createConfigStore(redis), metrics, workers, checkSafety });

  // Seed cfg:system:default and load the overlay before anything routes (a failure here is fatal, as
  // a scheduler that cannot reach its config service does not start).
  let reconciler: ReturnType<typeof createReconciler> | undefined;
  const overlay = await startConfigOverlay(deps, { config, onTimeoutsChanged: () => reconciler?.reschedule() });

  const heartbeats = bus.subscribe('sys.heartbeat', (p) => {
    if (p.heartbeat) workers.observe(p.heartbeat);
  });
  const cancels = bus.subscribe('sys.job.cancel', (p) => void engine.handleCancel(p), QUEUE);

  const writeSnapshot = async () => {
    // pools, topics and workers are omitempty in Cordum: with no live worker only captured_at and
    // topics appear, and topics only when pools.yaml maps some (recorded on a real build).
    const live = workers.live();
    const snapshot = {
      captured_at: new Date().toISOString(),
      ...(live.length ? { pools: config.pools.pools } : {}),
      ...(Object.keys(config.pools.topics).length ? { topics: config.pools.topics } : {}),
      ...(live.length ? { workers: live } : {}),
    };
    await redis.set('sys:workers:snapshot', JSON.stringify(snapshot), 'EX', config.dataTtlS);
  };
  const snapshotTimer = setInterval(() => void writeSnapshot().catch((e) => log(`worker snapshot failed: ${(e as Error).message}`)), SNAPSHOT_INTERVAL_MS);
  snapshotTimer.unref();
  await writeSnapshot().catch(() => {});

  const server = await serveMetrics(metrics, opts.metricsPort);
  const submit = await bus.consumeDurable({ subject: 'sys.job.submit', queue: QUEUE, stream: 'CORDUM_SYS' }, (p) => engine.handleJobRequest(p));
  const results = await bus.consumeDurable({ subject: 'sys.job.result', queue: QUEUE, stream: 'CORDUM_SYS' }, (p) => engine.handleJobResult(p));
  reconciler = createReconciler(deps, store, (p) => engine.handleJobRequest(p));

  return {
    name: 'scheduler',
    metricsUrl: server.url,
    stop: async () => {
      overlay.stop();
      reconciler?.stop();
      clearInterval(snapshotTimer);
      heartbeats.unsubscribe();
      cancels.unsubscribe();
      await Promise.allSettled([submit.stop(), results.stop()]);
      await server.close();
    },
  };
}
