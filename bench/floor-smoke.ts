// The floor for `pnpm runbook smoke`: the same HTTP calls, in the same order, as a bare script with
// undici (no runner, no Vitest, no report). The one non-HTTP part the smoke needs is a CAP worker so
// the second job can succeed; it uses the project's helper (NATS + Redis), as the smoke does.
// Usage: node --import tsx bench/floor-smoke.ts <profile.json>   (API key from the env var it names)
// Prints one JSON line: {"ms": <time of the calls>, "calls": <HTTP calls>, "maxRssKb": ...}.
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Pool, request } from 'undici';
import { connectBus } from '../helpers/bus.js';
import { redisResultWriter, startCapWorker } from '../helpers/cap-worker.js';
import type { TargetProfile } from '../helpers/profile-types.js';

const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as TargetProfile;
const key = process.env[profile.gateway.api_key_env ?? ''] ?? '';
const base = new URL(profile.gateway.url);
const pool = new Pool(base.origin, { connections: 4 });
let calls = 0;

interface Res {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

async function http(method: string, path: string, opts: { body?: unknown; apiKey?: string | null; expect?: number[] } = {}): Promise<Res> {
  calls++;
  const headers: Record<string, string> = { accept: 'application/json', 'x-principal-id': 'bench', 'x-principal-role': 'admin' };
  const k = opts.apiKey === undefined ? key : opts.apiKey;
  if (k) headers['x-api-key'] = k;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const r = await request(new URL(path, base), { method: method as 'GET', headers, body, dispatcher: pool });
  const text = await r.body.text();
  const expect = opts.expect ?? [200, 201, 204];
  if (!expect.includes(r.statusCode)) throw new Error(`${method} ${path} → ${r.statusCode} ${text.slice(0, 200)}`);
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: r.statusCode, text, json };
}

async function scrape(url: string): Promise<string> {
  calls++;
  const r = await request(url, { method: 'GET' });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`GET ${url} → ${r.statusCode}`);
  return text;
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const enc = encodeURIComponent;

async function main(): Promise<void> {
  const t0 = performance.now();
  const prefix = `bench-floor-${process.pid}`;
  const m = profile.metrics ?? {};
  // 1. Liveness and readiness
  await http('GET', '/health');
  if (m.gateway) await scrape(m.gateway);
  await http('GET', '/api/v1/status');
  if (profile.workflow_engine?.health_url) await scrape(profile.workflow_engine.health_url);
  if (m.gateway) await scrape(m.gateway);
  if (m.scheduler) await scrape(m.scheduler);
  // 2. Auth
  await http('GET', '/api/v1/status', { apiKey: null, expect: [401] });
  await http('GET', '/api/v1/status', { apiKey: `${prefix}-not-a-key`, expect: [401] });
  // 3. Workflow round trip
  const wf = `${prefix}-smoke-approval`;
  await http('POST', '/api/v1/workflows', { body: { id: wf, name: wf, description: 'floor', steps: { approve: { type: 'approval', name: 'Approve' } } } });
  const run = (await http('POST', `/api/v1/workflows/${enc(wf)}/runs`, { body: { runbook: prefix } })).json.run_id as string;
  await http('GET', `/api/v1/workflow-runs/${enc(run)}`);
  await http('POST', `/api/v1/workflows/${enc(wf)}/runs/${enc(run)}/steps/approve/approve`, { body: { approved: true } });
  await until('run succeeded', () => http('GET', `/api/v1/workflow-runs/${enc(run)}`), (r) => r.json?.status === 'succeeded', 5000);
  await http('GET', `/api/v1/workflow-runs/${enc(run)}/timeline`);
  await http('DELETE', `/api/v1/workflow-runs/${enc(run)}`);
  await http('DELETE', `/api/v1/workflows/${enc(wf)}`);
  await http('GET', `/api/v1/workflow-runs/${enc(run)}`, { expect: [404] });
  await http('GET', `/api/v1/workflows/${enc(wf)}`, { expect: [404] });
  // 4. Jobs
  const topic = profile.routing.mapped_topic;
  if (m.scheduler) await scrape(m.scheduler);
  const pending = (await http('POST', '/api/v1/jobs', { body: { prompt: 'floor pending', topic, labels: { runbook_probe: `${prefix}-pending` } } })).json.job_id as string;
  await http('GET', `/api/v1/jobs/${enc(pending)}`);
  await http('POST', `/api/v1/jobs/${enc(pending)}/cancel`);
  await http('GET', `/api/v1/jobs/${enc(pending)}`);
  await http('POST', `/api/v1/jobs/${enc(pending)}/cancel`);
  const bus = await connectBus(profile);
  const redis = profile.redis?.url ? new Redis(profile.redis.url) : undefined;
  const labels = { runbook_probe: `${prefix}-work` };
  const worker = await startCapWorker(bus, { workerId: `${prefix}-worker`, pool: profile.routing.pool, labels, behaviour: { mode: 'succeed', result: { answer: 42 } }, writeResult: redis ? redisResultWriter(redis) : undefined });
  const work = (await http('POST', '/api/v1/jobs', { body: { prompt: 'floor work', topic, labels } })).json.job_id as string;
  await until('job succeeded', () => http('GET', `/api/v1/jobs/${enc(work)}`), (r) => r.json?.state === 'SUCCEEDED', 10_000);
  if (redis) await http('GET', `/api/v1/memory?ptr=${enc(`redis://res:${work}`)}`);
  if (m.scheduler) await scrape(m.scheduler);
  await worker.stop();
  // 5. Locks and artifacts
  const resource = `${prefix}-smoke-lock`;
  await http('POST', '/api/v1/locks/acquire', { body: { resource, owner: 'a', ttl_ms: 30000 } });
  await http('POST', '/api/v1/locks/acquire', { body: { resource, owner: 'b', ttl_ms: 30000 }, expect: [409] });
  await http('POST', '/api/v1/locks/renew', { body: { resource, owner: 'a', ttl_ms: 30000 } });
  await http('POST', '/api/v1/locks/release', { body: { resource, owner: 'a' } });
  await http('GET', `/api/v1/locks?resource=${enc(resource)}`, { expect: [404] });
  const ptr = (await http('POST', '/api/v1/artifacts', { body: { content: 'floor', content_type: 'text/plain', retention: 'short' } })).json.artifact_ptr as string;
  await http('GET', `/api/v1/artifacts/${enc(ptr)}`);
  // 6. Everything is gone
  await http('GET', `/api/v1/workflow-runs/${enc(run)}`, { expect: [404] });
  await http('GET', `/api/v1/workflows/${enc(wf)}`, { expect: [404] });
  await http('GET', '/api/v1/workflows');
  await http('GET', `/api/v1/locks?resource=${enc(resource)}`, { expect: [404] });
  await http('GET', `/api/v1/jobs/${enc(pending)}`);
  await http('GET', `/api/v1/jobs/${enc(work)}`);
  // What the smoke's teardown removes through Redis.
  if (redis) {
    const a = /^redis:\/\/(art:.+)$/.exec(ptr)?.[1];
    await redis.del(`res:${work}`, ...(a ? [a, a.replace(/^art:/, 'art:meta:')] : []));
  }
  const ms = performance.now() - t0;
  await bus.close();
  await redis?.quit();
  await pool.close();
  process.stdout.write(JSON.stringify({ ms, calls, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`floor-smoke: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
