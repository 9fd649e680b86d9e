// startSandbox(): a local Cordum stand-in on real redis-server + nats-server. Every component gets
// the same SandboxDeps and talks to the others only through Redis and NATS, like Cordum's services.
// The returned profile points runbooks at it; the API key is referenced by env var name only.
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import type { TargetProfile } from '../helpers/profile-types.js';
import { createBus, ensureStreams, type Bus } from './bus.js';
import { buildConfig } from './config.js';
import { parseFaults } from './faults.js';
import { coreRouteModules, startGateway } from './gateway/index.js';
import { approvalRoutes } from './gateway/routes/approvals.js';
import { policyRoutes } from './gateway/routes/policy.js';
import { workflowRoutes } from './gateway/routes/workflows.js';
import { startSafetyKernel } from './kernel/index.js';
import { makeCertificates } from './certs.js';
import { freePort, startNats, startRedis, type ManagedServer } from '../helpers/processes.js';
import { repoPath } from '../helpers/paths.js';
import { startTlsFront } from './tls-front.js';
import { startScheduler } from './scheduler/index.js';
import { parseSandboxState, seedLivedInConfig, seedLivedInHistory, type LivedInSummary, type SandboxState } from './lived-in.js';
import type { Component, FaultName, SandboxDeps } from './types.js';
import { startWorkflowEngine } from './workflow/index.js';

const SANDBOX_WAIVERS_FILE = repoPath('sandbox/readiness.waivers.yaml');

export const SANDBOX_API_KEY_ENV = 'CORDUM_SANDBOX_API_KEY';

export interface SandboxOptions {
  faults?: FaultName[] | string;
  redisUrl?: string;
  natsUrl?: string;
  apiKey?: string;
  /** Cordum-style environment for the components (API_RATE_LIMIT_RPS, TENANT_ID, ...). process.env is NOT read. */
  env?: Record<string, string>;
  policyReloadMs?: number;
  log?: (line: string) => void;
  /**
   * Serve TLS where a production install does (SANDBOX_TLS=1 from the CLI): the gateway behind an
   * https:// front, NATS requiring TLS with client certificates, Redis on a TLS port with
   * tls-auth-clients. The profile (named `sandbox-tls`) then points at those endpoints with the
   * test CA and client certificate generated at start.
   */
  tls?: boolean;
  /**
   * `fresh` (default): a new install, as recorded from a real one (no bundles, no workers, empty
   * DLQ, nothing submitted). `lived-in`: bundles, a few hundred earlier jobs, DLQ entries, streams
   * with gaps and consumers with acked history (sandbox/lived-in.ts). SANDBOX_STATE from the CLI.
   */
  state?: SandboxState | string;
}

export interface Sandbox {
  profile: TargetProfile;
  apiKey: string;
  redisUrl: string;
  natsUrl: string;
  faults: FaultName[];
  state: SandboxState;
  /** What the lived-in seeding created (lived-in only). */
  livedIn?: LivedInSummary;
  /** Ports the components listen on (127.0.0.1). */
  ports: { gateway: number; gatewayMetrics: number; schedulerMetrics: number; workflowHealth: number };
  /** TLS mode: CA and client certificate files the profile refers to. */
  tls?: { ca: string; cert: string; key: string };
  stop(): Promise<void>;
}

/** Runs cleanup steps in reverse order, continuing past failures; returns the failure messages. */
async function unwind(steps: (() => Promise<unknown>)[]): Promise<string[]> {
  const errors: string[] = [];
  for (const step of [...steps].reverse()) {
    try {
      await step();
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return errors;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const faults = parseFaults(opts.faults);
  const state = parseSandboxState(opts.state);
  const log = opts.log ?? (() => {});
  const componentLog = (component: string, msg: string) => log(`[${component}] ${msg}`);
  const apiKey = opts.apiKey ?? randomBytes(24).toString('base64url');
  const config = buildConfig(opts.env ?? {}, {
    // Fault default-api-key: the documented default key works too, as on an install that kept it.
    apiKeys: faults.has('default-api-key') ? [apiKey, 'super-secret-key'] : [apiKey],
    ...(opts.policyReloadMs !== undefined ? { policyReloadMs: opts.policyReloadMs } : {}),
  });

  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    // TLS mode: a test CA, a server certificate for every loopback name, a client certificate.
    const certs = opts.tls
      ? makeCertificates([
          { name: 'server', cn: 'cordum-sandbox', sans: ['localhost', '127.0.0.1', 'redis', 'nats'], eku: 'serverAuth,clientAuth', days: faults.has('tls-cert-expiring') ? 5 : 90 },
          { name: 'client', cn: 'cordum-runbooks', sans: [], eku: 'clientAuth' },
        ])
      : undefined;
    if (certs) cleanup.push(async () => certs.cleanup());
    const server = certs?.leaves.server;
    const redisTlsPort = certs ? await freePort() : undefined;
    // Servers (in parallel: start-up time is dominated by them).
    const settled = await Promise.allSettled([
      opts.redisUrl ? Promise.resolve(undefined) : startRedis({ persistence: !faults.has('redis-no-persistence'), ...(certs ? { tls: { port: redisTlsPort!, cert: server!.cert, key: server!.key, ca: certs.ca, authClients: true } } : {}) }),
      opts.natsUrl ? Promise.resolve(undefined) : startNats(certs ? { tls: { cert: server!.cert, key: server!.key, ca: certs.ca, verify: true } } : {}),
    ]);
    const [redisSrv, natsSrv] = settled.map((r) => (r.status === 'fulfilled' ? r.value : undefined)) as (ManagedServer | undefined)[];
    if (redisSrv) cleanup.push(() => redisSrv.stop());
    if (natsSrv) cleanup.push(() => natsSrv.stop());
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const redisUrl = opts.redisUrl ?? redisSrv!.url;
    const natsUrl = opts.natsUrl ?? natsSrv!.url;

    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
    redis.on('error', (err) => componentLog('redis', err.message));
    cleanup.push(async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
    await redis.connect().catch((err) => {
      throw new Error(`cannot connect to redis at ${redisUrl}: ${(err as Error).message}`);
    });

    let nc: NatsConnection;
    try {
      const client = certs?.leaves.client;
      nc = await connect({ servers: natsUrl, name: 'cordum-sandbox', maxReconnectAttempts: -1, ...(certs && natsSrv ? { tls: { caFile: certs.ca, certFile: client!.cert, keyFile: client!.key } } : {}) });
    } catch (err) {
      throw new Error(`cannot connect to nats at ${natsUrl}: ${(err as Error).message}`);
    }
    cleanup.push(async () => {
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    });
    await ensureStreams(await jetstreamManager(nc), { storage: faults.has('jetstream-memory-storage') ? 'memory' : 'file' });
    const bus: Bus = createBus(nc, (m) => componentLog('bus', m));
    cleanup.push(() => bus.close());

    const deps: SandboxDeps = { redis, nc, bus, config, faults, log: componentLog };
    // A lived-in install's config-service documents exist before its services (re)start.
    if (state === 'lived-in') await seedLivedInConfig(deps);
    // Each server binds any free port (0) and reports it: a port picked first and bound later could be
    // taken in between by another process (parallel test workers, a second sandbox).

    const track = <C extends Component>(c: C): C => {
      cleanup.push(() => c.stop());
      return c;
    };
    track(await startSafetyKernel(deps));
    const [scheduler, workflow, gateway] = await Promise.all([
      startScheduler(deps, { metricsPort: 0 }).then(track),
      startWorkflowEngine(deps, { healthPort: 0 }).then(track),
      startGateway(deps, {
        port: 0,
        metricsPort: 0,
        routeModules: [...coreRouteModules, policyRoutes, approvalRoutes, workflowRoutes],
      }).then(track),
    ]);

    // TLS mode: clients reach the gateway through an https:// front on its own port.
    let gatewayTlsPort: number | undefined;
    if (certs) {
      const front = await startTlsFront({ port: 0, upstreamPort: gateway.port, cert: server!.cert, key: server!.key });
      cleanup.push(() => front.close());
      gatewayTlsPort = front.port;
    }
    const clientTls = certs ? { ca_file: certs.ca, cert_file: certs.leaves.client.cert, key_file: certs.leaves.client.key } : undefined;

    process.env[SANDBOX_API_KEY_ENV] = apiKey;
    const faultList = faults.list();
    const profile: TargetProfile = {
      name: certs ? 'sandbox-tls' : 'sandbox',
      source: 'sandbox',
      description: certs ? 'local Cordum stand-in with TLS on the gateway, NATS and Redis (SANDBOX_TLS=1)' : 'local Cordum stand-in (pnpm sandbox)',
      gateway: {
        url: certs ? `https://127.0.0.1:${gatewayTlsPort}` : gateway.url,
        ...(certs ? { tls: { ca_file: certs.ca } } : {}),
        api_key_env: SANDBOX_API_KEY_ENV,
        principal: { id: 'runbook-operator', role: 'admin' },
        connect_timeout_ms: 3000,
        request_timeout_ms: 10000,
        tenant: config.tenant,
        rate_limit: { rps: config.rateLimit.rps, burst: config.rateLimit.burst },
      },
      metrics: {
        gateway: gateway.metricsUrl,
        scheduler: scheduler.metricsUrl,
      },
      workflow_engine: { health_url: workflow.healthUrl },
      nats: certs && natsSrv ? { url: natsUrl, tls: clientTls } : { url: natsUrl },
      redis: certs && redisSrv ? { url: `rediss://127.0.0.1:${redisTlsPort}`, tls: clientTls } : { url: redisUrl },
      routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
      policy: { reload_interval_ms: config.policyReloadMs, case_files: [] },
      destructive: { allowed: true },
      // Nobody else uses the sandbox's rate limit: a replay may take all of it.
      policy_impact: { rate_share: 1 },
      // The sandbox is single-node by design; its own waivers say so in the readiness report.
      readiness: { waivers: SANDBOX_WAIVERS_FILE },
      labels: { faults: faultList.join(','), ...(state === 'lived-in' ? { state } : {}) },
    };

    // History goes in through the gateway's own port (plain HTTP even in TLS mode), before anyone else uses it.
    const plain: TargetProfile = { ...profile, gateway: { ...profile.gateway, url: gateway.url, tls: undefined } };
    const livedIn = state === 'lived-in' ? await seedLivedInHistory(deps, { profile: plain, apiKey }) : undefined;
    if (livedIn) log(`[sandbox] lived-in: ${livedIn.historicalJobs} earlier jobs, ${livedIn.platformJobs} through the platform, deleted stream messages ${JSON.stringify(livedIn.deletedStreamMessages)}`);

    let stopping: Promise<void> | undefined;
    return {
      profile,
      apiKey,
      redisUrl,
      natsUrl,
      faults: faultList,
      state,
      ...(livedIn ? { livedIn } : {}),
      ports: { gateway: gateway.port, gatewayMetrics: gateway.metricsPort, schedulerMetrics: portOf(scheduler.metricsUrl), workflowHealth: portOf(workflow.healthUrl) },
      ...(certs ? { tls: { ca: certs.ca, cert: certs.leaves.client.cert, key: certs.leaves.client.key } } : {}),
      stop: () =>
        (stopping ??= (async () => {
          const errors = await unwind(cleanup);
          if (process.env[SANDBOX_API_KEY_ENV] === apiKey) delete process.env[SANDBOX_API_KEY_ENV];
          if (errors.length) log(`[sandbox] stop finished with errors: ${errors.join('; ')}`);
        })()),
    };
  } catch (err) {
    await unwind(cleanup);
    throw err;
  }
}

/** The port of a URL the sandbox's own servers reported. */
function portOf(url: string): number {
  return Number(new URL(url).port);
}
