import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, UnreachableError } from '../../helpers/errors.js';
import { clearSecrets, redact, transcript } from '../../helpers/evidence.js';
import { GatewayClient, GatewayError, type Exchange } from '../../helpers/gateway.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { freePort } from '../../helpers/processes.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let base: string;
let handler: Handler = (_req, res) => res.end('ok');
const seen: Seen[] = [];
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(s);
      handler(s, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

afterEach(() => {
  seen.length = 0;
  handler = (_req, res) => res.end('ok');
  clearSecrets();
});

function profile(over: Partial<TargetProfile['gateway']> = {}, url = base): TargetProfile {
  return {
    name: 'test',
    source: 'test-profile.yaml',
    gateway: { url, api_key_env: 'TEST_KEY', connect_timeout_ms: 3000, request_timeout_ms: 10000, ...over },
    routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
    policy: { reload_interval_ms: 30000, case_files: [] },
    destructive: { allowed: false },
  };
}

const env = { TEST_KEY: 'sekrit-key-123' };

/** Go's http.Error: text/plain, nosniff, message + newline. */
function goError(res: ServerResponse, status: number, msg: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(`${msg}\n`);
}

describe('GatewayClient', () => {
  it('throws GatewayError saying what was called, what came back and what was expected', async () => {
    handler = (_r, res) => goError(res, 400, 'invalid json');
    const gw = new GatewayClient(profile(), { env });
    const err = await gw.submitJob({ prompt: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    const ge = err as GatewayError;
    expect(ge.message).toBe('POST /api/v1/jobs → 400 "invalid json" (expected 200)');
    expect([ge.method, ge.path, ge.status, ge.body]).toEqual(['POST', '/api/v1/jobs', 400, 'invalid json\n']);
    await gw.close();
  });

  it('never parses error bodies, and parses JSON served as text/plain on success', async () => {
    handler = (r, res) => {
      if (r.url.endsWith('/missing')) return goError(res, 404, 'job not found');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(JSON.stringify({ id: 'j1', state: 'PENDING', labels: {} }));
    };
    const gw = new GatewayClient(profile(), { env });
    expect(await gw.getJob('j1')).toMatchObject({ id: 'j1', state: 'PENDING' });
    const r = await gw.request('GET', '/api/v1/jobs/missing', { expect: [200, 404] });
    expect(r).toMatchObject({ status: 404, text: 'job not found\n', json: undefined });
    await expect(gw.getJob('missing')).rejects.toThrow('GET /api/v1/jobs/missing → 404 "job not found" (expected 200)');
    await gw.close();
  });

  it('sends the key and principal headers, and masks the key before onExchange sees it', async () => {
    handler = (_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"job_id":"j","trace_id":"t"}');
    };
    const exchanges: Exchange[] = [];
    const gw = new GatewayClient(profile({ principal: { id: 'alice', role: 'operator' } }), { env, onExchange: (e) => exchanges.push(e) });
    await gw.submitJob({ prompt: 'hello' });
    expect(seen[0].headers['x-api-key']).toBe('sekrit-key-123');
    expect(seen[0].headers['x-principal-id']).toBe('alice');
    expect(seen[0].headers['x-principal-role']).toBe('operator');
    expect(JSON.parse(seen[0].body)).toEqual({ prompt: 'hello' });
    expect(exchanges).toHaveLength(1);
    expect(exchanges[0].requestHeaders['x-api-key']).toBe('***');
    expect(exchanges[0]).toMatchObject({ method: 'POST', url: `${base}/api/v1/jobs`, status: 200, requestBody: '{"prompt":"hello"}' });
    const text = transcript(exchanges[0]);
    expect(text).not.toContain('sekrit-key-123');
    expect(text).toContain('> POST');
    expect(text).toContain('"job_id": "j"');
    // The key is registered for redaction everywhere else too.
    expect(redact('key=sekrit-key-123')).toBe('key=***');
    await gw.close();
  });

  it('per-call principal overrides, apiKey null sends no key, a missing env var is a ConfigError', async () => {
    handler = (_r, res) => res.end('{"job_id":"j"}');
    const gw = new GatewayClient(profile(), { apiKey: null, env: {} });
    await gw.approveJob('j', { reason: 'ok' }, { id: 'bob', role: 'admin' });
    expect(seen[0].headers['x-api-key']).toBeUndefined();
    expect(seen[0].headers['x-principal-id']).toBe('bob');
    expect(seen[0].headers['x-principal-role']).toBe('admin');
    await gw.close();
    expect(() => new GatewayClient(profile(), { env: {} })).toThrow(ConfigError);
    expect(() => new GatewayClient(profile(), { env: {} })).toThrow(/gateway\.api_key_env: environment variable TEST_KEY is not set/);
  });

  it('a key with a line break or control character is a configuration error naming the variable, never the value', () => {
    const cases: Array<[string, RegExp]> = [
      ['k3y-from-a-secret\n', /TEST_KEY holds a line break at its end, which no HTTP header can carry/],
      ['k3y-from-a-file\r\n', /TEST_KEY holds a line break at position 16 of 17/],
      ['k3y\u0000embedded', /TEST_KEY holds a control character \(0x00\) at position 4 of 12/],
    ];
    for (const [value, message] of cases) {
      let err: unknown;
      try {
        new GatewayClient(profile(), { env: { TEST_KEY: value } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(value.trim().slice(0, 8));
      expect((err as Error).message).not.toContain('\n');
    }
    // A tab or a space inside is left to the gateway (a header can carry them).
    expect(() => new GatewayClient(profile(), { env: { TEST_KEY: 'k3y with\tspace' } })).not.toThrow();
  });

  it('encodes pointers and snapshot ids as one segment and writes / as ~ in bundle ids', async () => {
    handler = (r, res) => (r.method === 'DELETE' || r.url.includes('/steps/') ? (res.writeHead(204), res.end()) : res.end('{}'));
    const gw = new GatewayClient(profile(), { env });
    await gw.getArtifact('redis://art:0b8f');
    await gw.getBundle('secops/smoke test');
    await gw.getBundleSnapshot('2026-11-27T10:00:00Z-abcdef0123');
    await gw.memory('redis://ctx:j1');
    await gw.startRun('wf/1', { a: 1 }, { idempotencyKey: 'idem-1' });
    await gw.approveStep('wf', 'run', 'approve', true);
    await gw.listJobs({ state: 'RUNNING', limit: 5, cursor: undefined });
    expect(seen.map((s) => s.url)).toEqual([
      '/api/v1/artifacts/redis%3A%2F%2Fart%3A0b8f',
      '/api/v1/policy/bundles/secops~smoke%20test',
      '/api/v1/policy/bundles/snapshots/2026-11-27T10%3A00%3A00Z-abcdef0123',
      '/api/v1/memory?ptr=redis%3A%2F%2Fctx%3Aj1',
      '/api/v1/workflows/wf%2F1/runs',
      '/api/v1/workflows/wf/runs/run/steps/approve/approve',
      '/api/v1/jobs?state=RUNNING&limit=5',
    ]);
    expect(seen[4].headers['idempotency-key']).toBe('idem-1');
    expect(JSON.parse(seen[4].body)).toEqual({ a: 1 });
    expect(JSON.parse(seen[5].body)).toEqual({ approved: true });
    await gw.close();
  });

  it('backs off on the rate limiter 429 (no Retry-After) and then succeeds', async () => {
    let calls = 0;
    handler = (_r, res) => (++calls <= 2 ? goError(res, 429, 'rate limited') : res.end('{"time":"now"}'));
    const gw = new GatewayClient(profile(), { env, rateLimit: { baseDelayMs: 5, maxDelayMs: 20 } });
    expect(await gw.status()).toMatchObject({ time: 'now' });
    expect(calls).toBe(3);
    expect(gw.stats).toEqual({ requests: 3, retried429: 2, exhausted429: 0 });
    await gw.close();
  });

  it('gives up on a 429 storm within the deadline and says so', async () => {
    handler = (_r, res) => goError(res, 429, 'rate limited');
    const gw = new GatewayClient(profile(), { env, rateLimit: { maxAttempts: 1000, baseDelayMs: 10, maxDelayMs: 40, deadlineMs: 300 } });
    const err = (await gw.status().catch((e: unknown) => e)) as GatewayError;
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.status).toBe(429);
    expect(err.message).toMatch(/^GET \/api\/v1\/status → 429 "rate limited" \(expected 200\); still rate limited after \d+ attempts$/);
    // Bounded by the deadline, not by maxAttempts: 300 ms of waits of at least 5 ms each.
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.length).toBeLessThan(100);
    expect(gw.stats.exhausted429).toBe(1);
    expect(gw.stats.retried429).toBe(seen.length - 1);
    await gw.close();
  });

  it('does not retry the concurrent-runs 429, or when retry429 is off', async () => {
    handler = (_r, res) => goError(res, 429, 'max concurrent runs reached');
    const gw = new GatewayClient(profile(), { env, rateLimit: { baseDelayMs: 1 } });
    await expect(gw.startRun('wf')).rejects.toThrow('→ 429 "max concurrent runs reached"');
    expect(seen).toHaveLength(1);
    handler = (_r, res) => goError(res, 429, 'rate limited');
    const r = await gw.request('GET', '/api/v1/status', { retry429: false, expect: 429 });
    expect(r.status).toBe(429);
    expect(seen).toHaveLength(2);
    await gw.close();
  });

  it('reports a refused connection as UnreachableError naming the URL and the connect timeout', async () => {
    const port = await freePort();
    const gw = new GatewayClient(profile({ connect_timeout_ms: 1500 }, `http://127.0.0.1:${port}`), { env });
    const t0 = Date.now();
    const err = await gw.health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toBe(`gateway unreachable: GET http://127.0.0.1:${port}/health: connection refused (connect timeout 1500 ms)`);
    expect(Date.now() - t0).toBeLessThan(1500 + 1000);
    await gw.close();
  });

  it('reports a server that never answers as UnreachableError naming the request timeout', async () => {
    handler = () => {
      /* never respond */
    };
    const gw = new GatewayClient(profile({ request_timeout_ms: 200 }), { env });
    const err = await gw.status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toBe(`gateway unreachable: GET ${base}/api/v1/status: no complete response within the request timeout of 200 ms`);
    await gw.close();
  });

  it('scrapes metrics without sending the API key', async () => {
    handler = (_r, res) => res.end('# HELP x\ncordum_api_gateway_http_requests_total{route="/api/v1/status"} 1\n');
    const gw = new GatewayClient(profile(), { env });
    expect(await gw.scrapeMetrics(`${base}/metrics`)).toContain('cordum_api_gateway_http_requests_total');
    expect(seen[0].headers['x-api-key']).toBeUndefined();
    expect(await gw.health()).toBe(`# HELP x\ncordum_api_gateway_http_requests_total{route="/api/v1/status"} 1`);
    await gw.close();
  });
});
