import { createServer, request as httpRequest, type Server } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../sandbox/config.js';
import { parseFaults } from '../../sandbox/faults.js';
import { Router, TokenBucket, cleanPath, createHttpHandler, goJson, originAllowed } from '../../sandbox/gateway/http.js';
import { createGatewayMetrics, type GatewayMetrics } from '../../sandbox/gateway/metrics.js';
import { HttpError } from '../../sandbox/gateway/types.js';

const KEY = 'test-key';
interface Stack {
  server: Server;
  base: string;
  metrics: GatewayMetrics;
}

async function stack(env: Record<string, string>, faults: string[] = []): Promise<Stack> {
  const router = new Router();
  router.add('GET', '/health', (_q, r) => r.text(200, 'ok'));
  router.add('GET', '/api/v1/status', (_q, r) => r.json(200, { ok: true, html: '<a&b>' }));
  router.add('GET', '/api/v1/jobs/{id}', (q, r) => r.json(200, { id: q.params.id, role: q.principalRole ?? null, pid: q.principalId ?? null }, { contentType: null }));
  router.add('POST', '/api/v1/jobs/{id}/cancel', (q, r) => r.json(200, { id: q.params.id }));
  router.add('GET', '/api/v1/policy/bundles/snapshots', (_q, r) => r.json(200, { literal: true }));
  router.add('GET', '/api/v1/policy/bundles/{id}', (q, r) => r.json(200, { id: q.params.id }));
  router.add('GET', '/api/v1/artifacts/{ptr}', (q, r) => r.json(200, { ptr: q.params.ptr }));
  router.add('POST', '/api/v1/echo', async (q, r) => r.json(200, await q.json()));
  router.add('DELETE', '/api/v1/boom', () => {
    throw new HttpError(409, 'lock unavailable');
  });
  const metrics = createGatewayMetrics();
  const config = buildConfig(env);
  const server = createServer(createHttpHandler({ config, faults: parseFaults(faults), metrics, router }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, base: `http://127.0.0.1:${port}`, metrics };
}

const call = async (s: Stack, method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
  const res = await request(`${s.base}${path}`, { method: method as 'GET', headers, body });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
};

/** node:http sends the path byte for byte (fetch/undici normalise dot segments). */
function rawGet(s: Stack, path: string, headers: Record<string, string>): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${s.base}/`, { path, headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
    });
    req.on('error', reject);
    req.end();
  });
}

let main: Stack;
beforeAll(async () => {
  main = await stack({ API_KEY: KEY, API_RATE_LIMIT_BURST: '1000' });
});
afterAll(() => {
  main?.server.close();
  main?.server.closeAllConnections();
});

describe('CORS (outermost)', () => {
  it('rejects a foreign origin with 403 even on /health, as plain text', async () => {
    const r = await call(main, 'GET', '/health', { Origin: 'https://evil.example' });
    expect(r.status).toBe(403);
    expect(r.text).toBe('origin not allowed\n');
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
  });
  it('echoes allowed origins and answers OPTIONS with 204 without auth', async () => {
    const ok = await call(main, 'GET', '/health', { Origin: 'http://localhost:3000' });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('ok');
    expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:3000');
    expect(ok.headers.vary).toBe('Origin');
    const pre = await call(main, 'OPTIONS', '/api/v1/anything', { Origin: 'http://127.0.0.1:9' });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-methods']).toBe('GET, POST, DELETE, OPTIONS');
    expect(pre.headers['access-control-allow-headers']).toBe('Content-Type, Authorization, X-API-Key, X-Principal-Id, X-Principal-Role');
    expect(pre.headers['access-control-allow-credentials']).toBeUndefined();
  });
  it('origin rules: localhost family, same host, explicit list, *', () => {
    expect(originAllowed('http://[::1]:8080', 'x', undefined)).toBe(true);
    expect(originAllowed('https://gw.example:8443', 'gw.example:8081', undefined)).toBe(true);
    expect(originAllowed('https://other.example', 'gw.example', undefined)).toBe(false);
    expect(originAllowed('https://a.example', 'x', ['https://a.example'])).toBe(true);
    expect(originAllowed('https://a.example:1', 'x', ['https://a.example'])).toBe(false);
    expect(originAllowed('https://z', 'x', ['*'])).toBe(true);
  });
});

describe('auth', () => {
  it('401 unauthorized (plain text) without or with a wrong key, on unknown /api paths too', async () => {
    for (const headers of [{}, { 'X-API-Key': 'nope' }, { Authorization: `Bearer ${KEY}` }] as Record<string, string>[]) {
      const r = await call(main, 'GET', '/api/v1/status', headers);
      expect(r.status).toBe(401);
      expect(r.text).toBe('unauthorized\n');
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    }
    expect((await call(main, 'GET', '/api/v1/nothing-here')).status).toBe(401);
    expect((await call(main, 'GET', '/api/v1/status', { 'x-api-key': ` "${KEY}" ` })).status).toBe(200);
    expect((await call(main, 'GET', '/health')).status).toBe(200);
  });
  it('no keys configured: anything goes', async () => {
    const open = await stack({});
    expect((await call(open, 'GET', '/api/v1/status')).status).toBe(200);
    expect((await call(open, 'GET', '/api/v1/status', { 'X-API-Key': 'whatever' })).status).toBe(200);
    open.server.close();
  });
});

describe('routing like Go ServeMux', () => {
  const h = { 'X-API-Key': KEY };
  it('404 / 405 with Allow / 307 clean-path redirects', async () => {
    const nf = await call(main, 'GET', '/api/v1/nothing-here', h);
    expect([nf.status, nf.text, nf.headers['content-type']]).toEqual([404, '404 page not found\n', 'text/plain; charset=utf-8']);
    const na = await call(main, 'POST', '/api/v1/status', h);
    expect(na.status).toBe(405);
    expect(na.headers.allow).toBe('GET, HEAD');
    expect(na.text).toBe('Method Not Allowed\n');
    expect((await call(main, 'POST', '/health')).status).toBe(405);
    expect((await call(main, 'HEAD', '/health')).status).toBe(200);
    const redirect = await call(main, 'GET', '/api/v1//jobs/x?a=1', h);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.location).toBe('/api/v1/jobs/x?a=1');
    const dot = await rawGet(main, '/api/v1/jobs/./x', h);
    expect([dot.status, dot.location]).toEqual([307, '/api/v1/jobs/x']);
    expect(cleanPath('/a/b/../c')).toBe('/a/c');
  });
  it('wildcards take one escaped segment, decoded; literals win', async () => {
    const art = await call(main, 'GET', `/api/v1/artifacts/${encodeURIComponent('redis://art:123')}`, h);
    expect(JSON.parse(art.text)).toEqual({ ptr: 'redis://art:123' });
    expect(JSON.parse((await call(main, 'GET', '/api/v1/policy/bundles/snapshots', h)).text)).toEqual({ literal: true });
    expect(JSON.parse((await call(main, 'GET', '/api/v1/policy/bundles/secops~x', h)).text)).toEqual({ id: 'secops~x' });
    expect((await call(main, 'GET', '/api/v1/jobs/a/b', h)).status).toBe(404);
  });
  it('content types, Go JSON escaping, principal normalisation, handler errors', async () => {
    const st = await call(main, 'GET', '/api/v1/status', h);
    expect(st.headers['content-type']).toBe('application/json');
    expect(st.text).toBe('{"ok":true,"html":"\\u003ca\\u0026b\\u003e"}\n');
    const job = await call(main, 'GET', '/api/v1/jobs/j1', { ...h, 'X-Principal-Role': 'SecOps', 'X-Principal-Id': '  bob ' });
    expect(job.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(JSON.parse(job.text)).toEqual({ id: 'j1', role: 'admin', pid: 'bob' });
    const bad = await call(main, 'POST', '/api/v1/echo', h, '{nope');
    expect([bad.status, bad.text]).toEqual([400, 'invalid json\n']);
    const empty = await call(main, 'POST', '/api/v1/echo', h, '');
    expect(empty.status).toBe(400);
    const conflict = await call(main, 'DELETE', '/api/v1/boom', h);
    expect([conflict.status, conflict.text, conflict.headers['x-content-type-options']]).toEqual([409, 'lock unavailable\n', 'nosniff']);
    expect(goJson({ a: 1 })).toBe('{"a":1}\n');
  });
  it('counts routed requests by pattern but not 401/429/CORS-403/404 or /health', async () => {
    const s = await stack({ API_KEY: KEY, API_RATE_LIMIT_BURST: '3', API_RATE_LIMIT_RPS: '1' });
    await call(s, 'GET', '/api/v1/jobs/one', { 'X-API-Key': KEY });
    await call(s, 'GET', '/api/v1/jobs/two', { 'X-API-Key': KEY });
    await call(s, 'GET', '/api/v1/status'); // 401
    await call(s, 'GET', '/api/v1/status', { 'X-API-Key': KEY }); // 429: bucket empty
    await call(s, 'GET', '/health', { Origin: 'https://evil' }); // 403
    await call(s, 'GET', '/health');
    const text = await s.metrics.registry.metrics();
    expect(text).toContain('cordum_api_gateway_http_requests_total{method="GET",route="/api/v1/jobs/{id}",status="200"} 2');
    expect(text).not.toMatch(/requests_total\{[^}]*status="(401|429|403)"/);
    expect(text).not.toContain('route="/health"');
    expect(text).toContain('cordum_api_gateway_http_request_duration_seconds_bucket');
    s.server.close();
  });
});

describe('rate limiting', () => {
  it('429 after the burst, no Retry-After, CORS headers still set; only /api/ paths; OPTIONS exempt', async () => {
    const s = await stack({ API_RATE_LIMIT_BURST: '5', API_RATE_LIMIT_RPS: '1' });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await call(s, 'GET', '/api/v1/status', { Origin: 'http://localhost' })).status);
    expect(codes.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(codes.slice(5)).toEqual([429, 429, 429]);
    const limited = await call(s, 'GET', '/api/v1/nothing', { Origin: 'http://localhost' });
    expect([limited.status, limited.text]).toEqual([429, 'rate limited\n']);
    expect(limited.headers['retry-after']).toBeUndefined();
    expect(Object.keys(limited.headers).some((k) => k.startsWith('x-ratelimit'))).toBe(false);
    expect(limited.headers['access-control-allow-origin']).toBe('http://localhost');
    expect((await call(s, 'GET', '/health')).status).toBe(200);
    expect((await call(s, 'OPTIONS', '/api/v1/status')).status).toBe(204);
    s.server.close();
  });
  it('fault rate-limit-off never answers 429', async () => {
    const s = await stack({ API_RATE_LIMIT_BURST: '2', API_RATE_LIMIT_RPS: '1' }, ['rate-limit-off']);
    const codes = new Set<number>();
    for (let i = 0; i < 20; i++) codes.add((await call(s, 'GET', '/api/v1/status')).status);
    expect([...codes]).toEqual([200]);
    s.server.close();
  });
  it('token bucket refills one token per 1s/rps up to the burst', () => {
    let now = 0;
    const b = new TokenBucket(2, 10, () => now);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
    now = 99;
    expect(b.take()).toBe(false);
    now = 100;
    expect(b.take()).toBe(true);
    now = 10_000;
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
  });
});
