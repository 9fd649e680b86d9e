// The API gateway: HTTP listener (middleware + routes), the WebSocket stream on the same listener,
// a separate /metrics listener, the sys.heartbeat worker registry and the sys.job.dlq tap.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Component, SandboxDeps } from '../types.js';
import { startDlqTap } from './dlq-tap.js';
import { Router, createHttpHandler } from './http.js';
import { closeServer, createGatewayMetrics, serveMetrics } from './metrics.js';
import { artifactRoutes } from './routes/artifacts.js';
import { configRoutes } from './routes/config.js';
import { dlqRoutes } from './routes/dlq.js';
import { jobRoutes } from './routes/jobs.js';
import { lockRoutes } from './routes/locks.js';
import { memoryRoutes } from './routes/memory.js';
import { packRoutes } from './routes/packs.js';
import { schemaRoutes } from './routes/schemas.js';
import { createStatusRoutes, createWorkerRegistry, trackNatsStatus } from './routes/status.js';
import { createStreamHub } from './stream.js';
import type { RouteModule } from './types.js';

/** The route modules this module owns (health/status/workers and the stream are always registered by startGateway). */
export const coreRouteModules: RouteModule[] = [jobRoutes, dlqRoutes, lockRoutes, artifactRoutes, memoryRoutes, configRoutes, schemaRoutes, packRoutes];

export interface GatewayHandle extends Component {
  url: string;
  metricsUrl: string;
  port: number;
  metricsPort: number;
}

export async function startGateway(
  deps: SandboxDeps,
  opts: { port: number; metricsPort: number; routeModules?: RouteModule[] },
): Promise<GatewayHandle> {
  const log = (m: string) => deps.log('gateway', m);
  const metrics = createGatewayMetrics();
  const workers = createWorkerRegistry(deps.bus);
  const router = new Router();
  createStatusRoutes({ startedAt: Date.now(), workers, natsStatus: trackNatsStatus(deps.nc) })(router, deps);
  const stream = createStreamHub(deps);
  stream.routes(router, deps);
  for (const mod of opts.routeModules ?? coreRouteModules) mod(router, deps);

  const tap = await startDlqTap(deps);
  const handler = createHttpHandler({ config: deps.config, faults: deps.faults, metrics, router, log });
  const server = createServer(handler);
  server.on('upgrade', (req, socket, head) => stream.onUpgrade(req, socket, head, handler));
  server.keepAliveTimeout = 5_000;
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, '127.0.0.1', () => resolve());
    });
    metricsServer = await serveMetrics(metrics, opts.metricsPort, deps.faults);
  } catch (err) {
    workers.stop();
    await tap.stop();
    await stream.stop();
    if (server.listening) await closeServer(server);
    throw new Error(`gateway could not listen: ${(err as Error).message}`);
  }

  // Port 0 means "any free one": the bound ports are the ones reported.
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    name: 'gateway',
    url: `http://127.0.0.1:${port}`,
    metricsUrl: metricsServer.url,
    port,
    metricsPort: metricsServer.port,
    stop: () =>
      (stopped ??= (async () => {
        workers.stop();
        await tap.stop();
        await stream.stop();
        await Promise.all([closeServer(server), metricsServer!.close()]);
      })()),
  };
}
