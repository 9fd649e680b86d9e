// /health, /api/v1/status and /api/v1/workers (api.md §10.1). Status is always 200: readiness is in
// the body (redis.ok, nats.connected). Workers are every heartbeat seen since start, never pruned.
import type { NatsConnection } from '@nats-io/nats-core';
import type { Heartbeat } from '../../../helpers/cap/codec.js';
import type { SandboxBus, SandboxDeps } from '../../types.js';
import { rfc3339 } from '../../stores/jobs.js';
import type { RouteModule } from '../types.js';

export interface WorkerRegistry {
  list(): Heartbeat[];
  count(): number;
  stop(): void;
}

/** Remembers the latest heartbeat per worker id from sys.heartbeat (core, no queue, like every gateway replica). */
export function createWorkerRegistry(bus: SandboxBus): WorkerRegistry {
  const workers = new Map<string, Heartbeat>();
  const sub = bus.subscribe('sys.heartbeat', (packet) => {
    const hb = packet.heartbeat;
    if (hb) workers.set(hb.worker_id ?? '', hb);
  });
  return {
    list: () => [...workers.values()],
    count: () => workers.size,
    stop: () => sub.unsubscribe(),
  };
}

/** NATS connection status in Go's words (CONNECTED, RECONNECTING, DISCONNECTED, CLOSED). */
export function trackNatsStatus(nc: NatsConnection): () => string {
  let current = 'CONNECTED';
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') current = 'DISCONNECTED';
      else if (s.type === 'reconnecting') current = 'RECONNECTING';
      else if (s.type === 'reconnect') current = 'CONNECTED';
      else if (s.type === 'close') current = 'CLOSED';
    }
  })().catch(() => {});
  return () => (nc.isClosed() ? 'CLOSED' : current);
}

/** Heartbeat as Go's encoding/json writes the protobuf struct: snake_case, zero values omitted. */
function heartbeatJson(hb: Heartbeat): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(hb)) {
    if (v === undefined || v === null || v === '' || v === 0 || v === false) continue;
    if (Array.isArray(v) && !v.length) continue;
    if (typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length) continue;
    out[k] = v;
  }
  return out;
}

export async function pingRedis(deps: SandboxDeps, timeoutMs = 1000): Promise<{ ok: boolean; error: string }> {
  if (deps.faults.has('gateway-redis-down')) return { ok: false, error: 'dial tcp: connect: connection refused' };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      deps.redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('context deadline exceeded')), timeoutMs);
      }),
    ]);
    return { ok: true, error: '' };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export function createStatusRoutes(ctx: { startedAt: number; workers: WorkerRegistry; natsStatus: () => string }): RouteModule {
  return (routes, deps) => {
    routes.add('GET', '/health', (_req, reply) => reply.text(200, 'ok'));

    routes.add('GET', '/api/v1/status', async (_req, reply) => {
      const status = ctx.natsStatus();
      const server = deps.nc.isClosed() ? '' : deps.nc.getServer();
      reply.json(200, {
        time: rfc3339(),
        uptime_seconds: Math.floor((Date.now() - ctx.startedAt) / 1000),
        build: { ...deps.config.build },
        nats: { connected: status === 'CONNECTED', status, url: server ? `nats://${server}` : '' },
        redis: await pingRedis(deps),
        workers: { count: ctx.workers.count() },
      });
    });

    routes.add('GET', '/api/v1/workers', (_req, reply) => reply.json(200, ctx.workers.list().map(heartbeatJson)));
  };
}
