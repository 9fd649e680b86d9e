// Test harness for the workflow engine: real redis-server + nats-server (JetStream), the sandbox
// bus, the gateway's HTTP stack with only the workflow routes, and the workflow-engine service.
// No scheduler runs: tests play worker/scheduler by publishing JobResults on sys.job.result.
import { createServer, type Server } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { Redis } from 'ioredis';
import { encodePacket, type BusPacket, type JobResult } from '../../helpers/cap/codec.js';
import { createBus, ensureStreams, type Bus } from '../../sandbox/bus.js';
import { buildConfig } from '../../sandbox/config.js';
import { Router, createHttpHandler } from '../../sandbox/gateway/http.js';
import { workflowRoutes } from '../../sandbox/gateway/routes/workflows.js';
import { freePort, startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { FAULTS, type FaultName, type Faults, type SandboxDeps } from '../../sandbox/types.js';
import { startWorkflowEngine } from '../../sandbox/workflow/index.js';
import type { TimelineEvent, WorkflowRun } from '../../sandbox/workflow/models.js';

/** Faults that a test can switch on and off between cases. */
export class MutableFaults implements Faults {
  private readonly set = new Set<FaultName>();
  has(name: FaultName): boolean {
    return this.set.has(name);
  }
  list(): FaultName[] {
    return FAULTS.filter((f) => this.set.has(f));
  }
  enable(...names: FaultName[]): void {
    for (const n of names) this.set.add(n);
  }
  clear(): void {
    this.set.clear();
  }
}

export interface ApiResponse {
  status: number;
  text: string;
  json: any;
}

export interface WorkflowEnv {
  deps: SandboxDeps;
  redis: Redis;
  nc: NatsConnection;
  faults: MutableFaults;
  baseUrl: string;
  healthUrl: string;
  logs: string[];
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  /** Core-NATS JobResult on sys.job.result, as a worker (or a chaos test) would publish it. */
  publishResult(result: JobResult): Promise<void>;
  /** Packets seen on a subject since the env started. */
  seen(subject: string): BusPacket[];
  getRun(runId: string): Promise<WorkflowRun>;
  timeline(runId: string): Promise<TimelineEvent[]>;
  /** Creates a workflow from the given steps and starts a run; returns both ids. */
  startWorkflow(steps: Record<string, unknown>, input?: unknown): Promise<{ workflowId: string; runId: string }>;
  stop(): Promise<void>;
}

/** Polls until `pred` accepts the value, or fails with the last value seen. */
export async function waitFor<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startWorkflowEnv(opts: { scanIntervalMs?: number } = {}): Promise<WorkflowEnv> {
  const servers: ManagedServer[] = [];
  const redisSrv = await startRedis({ persistence: false });
  servers.push(redisSrv);
  const natsSrv = await startNats();
  servers.push(natsSrv);
  const redis = new Redis(redisSrv.url);
  const nc = await connect({ servers: natsSrv.url });
  const logs: string[] = [];
  const log = (component: string, msg: string) => logs.push(`${component}: ${msg}`);
  await ensureStreams(await jetstream(nc).jetstreamManager(), { storage: 'file' });
  const bus: Bus = createBus(nc, (m) => log('bus', m));
  const faults = new MutableFaults();
  const config = buildConfig({}, { workflowScanIntervalMs: opts.scanIntervalMs ?? 5000, rateLimit: { rps: 100_000, burst: 100_000 } });
  const deps: SandboxDeps = { redis, nc, bus, config, faults, log };

  const seen = new Map<string, BusPacket[]>();
  for (const subject of ['sys.job.submit', 'sys.job.cancel', 'sys.workflow.event']) {
    seen.set(subject, []);
    bus.subscribe(subject, (p) => seen.get(subject)!.push(p));
  }

  const router = new Router();
  workflowRoutes(router, deps);
  const server: Server = createServer(createHttpHandler({ config, faults, router, log: (m) => log('http', m) }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  const baseUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const engine = await startWorkflowEngine(deps, { healthPort: await freePort() });
  await nc.flush();

  const api: WorkflowEnv['api'] = async (method, path, body, headers = {}) => {
    const res = await fetch(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  };

  const env: WorkflowEnv = {
    deps,
    redis,
    nc,
    faults,
    baseUrl,
    healthUrl: engine.healthUrl,
    logs,
    api,
    async publishResult(result) {
      nc.publish('sys.job.result', encodePacket({ trace_id: 'test', sender_id: 'test-worker', job_result: result }));
      await nc.flush();
    },
    seen: (subject) => seen.get(subject) ?? [],
    async getRun(runId) {
      const r = await api('GET', `/api/v1/workflow-runs/${runId}`);
      if (r.status !== 200) throw new Error(`GET run ${runId}: ${r.status} ${r.text}`);
      return r.json as WorkflowRun;
    },
    async timeline(runId) {
      return (await api('GET', `/api/v1/workflow-runs/${runId}/timeline`)).json as TimelineEvent[];
    },
    async startWorkflow(steps, input = {}) {
      const created = await api('POST', '/api/v1/workflows', { name: 'test', steps });
      if (created.status !== 201) throw new Error(`create workflow: ${created.status} ${created.text}`);
      const started = await api('POST', `/api/v1/workflows/${created.json.id}/runs`, input);
      if (started.status !== 200) throw new Error(`start run: ${started.status} ${started.text}`);
      return { workflowId: created.json.id as string, runId: started.json.run_id as string };
    },
    async stop() {
      await engine.stop();
      await new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      });
      await bus.close();
      await nc.close();
      redis.disconnect();
      for (const s of servers.reverse()) await s.stop();
    },
  };
  return env;
}

/** Only the fields a test asserts on, so timestamps and ids do not get in the way. */
export function eventShape(e: TimelineEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { type: e.type };
  for (const k of ['step_id', 'status', 'message'] as const) if (e[k] !== undefined) out[k] = e[k];
  return out;
}
