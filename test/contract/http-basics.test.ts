// Cross-cutting HTTP behaviour of the gateway: middleware order, error format, content types,
// routing answers (404/405/307 or 301), CORS and API-key auth.
import { describe, expect, it } from 'vitest';
import { itWhen, RFC3339, SKIP, target, useContract } from './support.js';

const fx = useContract();

const FOREIGN_ORIGIN = 'https://ct-foreign.example.com';
const LOCAL_ORIGIN = 'http://localhost:3000';
const CORS_METHODS = ['GET', 'POST', 'DELETE', 'OPTIONS'];
const CORS_HEADERS = ['Content-Type', 'Authorization', 'X-API-Key', 'X-Principal-Id', 'X-Principal-Role'];

function list(h: string | undefined): string[] {
  return (h ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

describe('health', () => {
  it('GET /health answers 200 with the text ok and needs no API key', async () => {
    const res = await fx.raw('GET', '/health', { key: 'none' });
    expect(res.status).toBe(200);
    expect(res.text.trim()).toBe('ok');
    expect(() => JSON.parse(res.text)).toThrow();
  });

  it('HEAD /health answers 200', async () => {
    const res = await fx.raw('HEAD', '/health', { key: 'none' });
    expect(res.status).toBe(200);
  });

  it('POST /health answers 405 with an Allow header', async () => {
    const res = await fx.raw('POST', '/health', { key: 'none' });
    expect(res.status).toBe(405);
    expect(list(res.headers.allow)).toContain('GET');
    expect(list(res.headers.allow)).not.toContain('POST');
  });
});

describe('error format', () => {
  it('error bodies are plain text ending in a newline, never JSON', async () => {
    const res = await fx.raw('GET', `/api/v1/jobs/ct-missing-${Date.now()}`);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.text.endsWith('\n')).toBe(true);
    expect(res.text).toBe('job not found\n');
    expect(() => JSON.parse(res.text)).toThrow();
  });

  it('error responses carry X-Content-Type-Options: nosniff', async () => {
    const res = await fx.raw('GET', `/api/v1/jobs/ct-missing-${Date.now()}`);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('malformed JSON in a request body answers 400 invalid json', async () => {
    const res = await fx.raw('POST', '/api/v1/jobs', { body: '{"prompt":', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid json\n');
  });

  it.each([
    '/api/v1/jobs',
    '/api/v1/workflows',
    '/api/v1/config',
    '/api/v1/locks/acquire',
    '/api/v1/artifacts',
    '/api/v1/policy/evaluate',
  ])('POST %s with an empty body answers 400', async (path) => {
    const res = await fx.raw('POST', path);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('the request Content-Type is never checked (a JSON body sent as text/plain is accepted)', async () => {
    const res = await fx.raw('POST', '/api/v1/policy/evaluate', { body: JSON.stringify({ topic: 'sys.ct' }), headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
  });
});

describe('routing', () => {
  itWhen(target.authConfigured, SKIP.noAuth)('unknown /api paths answer 401 unauthorized before 404 when the key is missing', async () => {
    const res = await fx.raw('GET', '/api/v1/ct-no-such-route', { key: 'none' });
    expect(res.status).toBe(401);
    expect(res.text).toBe('unauthorized\n');
  });

  itWhen(target.authConfigured, SKIP.noAuth)('unknown /api paths answer 401 unauthorized before 404 when the key is wrong', async () => {
    const res = await fx.raw('GET', '/api/v1/ct-no-such-route', { key: 'wrong' });
    expect(res.status).toBe(401);
    expect(res.text).toBe('unauthorized\n');
  });

  it('unknown /api paths answer 404 with the text 404 page not found once the key is valid', async () => {
    const res = await fx.raw('GET', '/api/v1/ct-no-such-route');
    expect(res.status).toBe(404);
    expect(res.text).toBe('404 page not found\n');
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('a wrong method on a known route answers 405 Method Not Allowed with an Allow header', async () => {
    const res = await fx.raw('DELETE', '/api/v1/status');
    expect(res.status).toBe(405);
    expect(res.text).toBe('Method Not Allowed\n');
    expect(list(res.headers.allow)).toContain('GET');
  });

  itWhen(target.authConfigured, SKIP.noAuth)('a wrong method on a known /api route answers 401 (not 405) without a key', async () => {
    const res = await fx.raw('DELETE', '/api/v1/status', { key: 'none' });
    expect(res.status).toBe(401);
  });

  // 307 with a current Go build, 301 with older Go (api.md): either is the clean-path redirect.
  it('a path containing // is redirected (307, or 301 with older Go) to the cleaned path', async () => {
    const res = await fx.raw('GET', '/api/v1//status');
    expect([301, 307]).toContain(res.status);
    expect(res.headers.location).toBe('/api/v1/status');
  });

  it('the clean-path redirect keeps the query string', async () => {
    const res = await fx.raw('GET', '/api/v1//jobs?limit=1');
    expect([301, 307]).toContain(res.status);
    expect(res.headers.location).toBe('/api/v1/jobs?limit=1');
  });

  it('a percent-encoded slash inside a path segment does not split it', async () => {
    const res = await fx.raw('GET', `/api/v1/jobs/ct-a%2Fb-${Date.now()}`);
    expect(res.status).toBe(404);
    expect(res.text).toBe('job not found\n');
  });
});

describe('auth', () => {
  itWhen(target.authConfigured, SKIP.noAuth)('an /api call without X-API-Key answers 401 unauthorized', async () => {
    const res = await fx.raw('GET', '/api/v1/status', { key: 'none' });
    expect(res.status).toBe(401);
    expect(res.text).toBe('unauthorized\n');
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  itWhen(target.authConfigured, SKIP.noAuth)('an /api call with an unknown key answers 401 unauthorized', async () => {
    const res = await fx.raw('GET', '/api/v1/status', { key: 'wrong' });
    expect(res.status).toBe(401);
    expect(res.text).toBe('unauthorized\n');
  });

  itWhen(target.authConfigured, SKIP.noAuth)('Authorization: Bearer <key> is not accepted in place of X-API-Key', async () => {
    const res = await fx.raw('GET', '/api/v1/status', { key: 'none', headers: { authorization: `Bearer ${fx.apiKey}` } });
    expect(res.status).toBe(401);
  });

  itWhen(target.authConfigured, SKIP.noAuth)('the key value is trimmed and surrounding quotes are stripped', async () => {
    const res = await fx.raw('GET', '/api/v1/status', { key: 'none', headers: { 'x-api-key': ` "${fx.apiKey}" ` } });
    expect(res.status).toBe(200);
  });

  itWhen(target.authConfigured, SKIP.noAuth)('paths outside /api/ need no key (404, not 401)', async () => {
    const res = await fx.raw('GET', '/ct-not-api', { key: 'none' });
    expect(res.status).toBe(404);
    expect(res.text).toBe('404 page not found\n');
  });
});

describe('content types', () => {
  it('GET /api/v1/status serves application/json with the documented fields', async () => {
    const res = await fx.gw.request<Record<string, any>>('GET', '/api/v1/status', { expect: 200 });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const s = res.json!;
    expect(s.time).toMatch(RFC3339);
    expect(Number.isInteger(s.uptime_seconds)).toBe(true);
    expect(Object.keys(s.build).sort()).toEqual(['commit', 'date', 'version']);
    expect(typeof s.nats.connected).toBe('boolean');
    expect(typeof s.nats.status).toBe('string');
    expect(typeof s.nats.url).toBe('string');
    expect(s.redis.ok).toBe(true);
    expect(s.redis.error).toBe('');
    expect(Number.isInteger(s.workers.count)).toBe(true);
  });

  it('GET /api/v1/workers answers a bare JSON array', async () => {
    const res = await fx.gw.request('GET', '/api/v1/workers', { expect: 200 });
    expect(Array.isArray(res.json)).toBe(true);
  });

  it('GET /api/v1/jobs/{id} serves JSON as text/plain', async () => {
    const sub = await fx.gw.request<{ job_id: string }>('POST', '/api/v1/jobs', {
      body: { prompt: 'contract: content type', topic: fx.profile.routing.mapped_topic, labels: { 'ct-pin': `ct-${Date.now()}` } },
      expect: 200,
    });
    const id = sub.json!.job_id;
    fx.cleanup(() => fx.gw.request('POST', `/api/v1/jobs/${id}/cancel`, { expect: [200, 404] }));
    const res = await fx.raw('GET', `/api/v1/jobs/${id}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(JSON.parse(res.text).id).toBe(id);
  });

  it('GET /api/v1/traces/{id} serves JSON as text/plain', async () => {
    const res = await fx.raw('GET', `/api/v1/traces/ct-trace-${Date.now()}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(JSON.parse(res.text)).toEqual([]);
  });

  it('plain JSON escapes <, > and & inside strings as \\u003c, \\u003e and \\u0026', async () => {
    const lock = `ct-<lock>&-${Date.now()}`;
    const acq = await fx.raw('POST', '/api/v1/locks/acquire', { body: JSON.stringify({ resource: lock, owner: 'ct-owner', ttl_ms: 5000 }) });
    fx.cleanup(() => fx.gw.lockRelease({ resource: lock, owner: 'ct-owner' }));
    expect(acq.status).toBe(200);
    expect(acq.text).toContain('\\u003clock\\u003e\\u0026');
    expect(JSON.parse(acq.text).resource).toBe(lock);
  });
});

describe('CORS', () => {
  it('a foreign Origin gets 403 origin not allowed even on /health', async () => {
    const res = await fx.raw('GET', '/health', { key: 'none', headers: { origin: FOREIGN_ORIGIN } });
    expect(res.status).toBe(403);
    expect(res.text).toBe('origin not allowed\n');
  });

  it('a foreign Origin gets 403 before auth on /api paths', async () => {
    const res = await fx.raw('GET', '/api/v1/status', { key: 'none', headers: { origin: FOREIGN_ORIGIN } });
    expect(res.status).toBe(403);
    expect(res.text).toBe('origin not allowed\n');
  });

  it('an allowed (localhost) Origin is echoed in Access-Control-Allow-Origin with Vary: Origin', async () => {
    const res = await fx.raw('GET', '/health', { key: 'none', headers: { origin: LOCAL_ORIGIN } });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(LOCAL_ORIGIN);
    expect(list(res.headers.vary)).toContain('Origin');
  });

  it('OPTIONS answers 204 with the allow-lists, without a key', async () => {
    const res = await fx.raw('OPTIONS', '/api/v1/jobs', { key: 'none', headers: { origin: LOCAL_ORIGIN, 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(list(res.headers['access-control-allow-methods'])).toEqual(CORS_METHODS);
    expect(list(res.headers['access-control-allow-headers'])).toEqual(CORS_HEADERS);
  });

  it('the CORS allow-lists omit PUT and Idempotency-Key', async () => {
    const res = await fx.raw('OPTIONS', '/api/v1/policy/bundles/secops~ct', { key: 'none', headers: { origin: LOCAL_ORIGIN } });
    expect(list(res.headers['access-control-allow-methods'])).not.toContain('PUT');
    expect(list(res.headers['access-control-allow-headers']).map((h) => h.toLowerCase())).not.toContain('idempotency-key');
  });

  it('CORS never sets Allow-Credentials, Max-Age or Expose-Headers', async () => {
    const res = await fx.raw('OPTIONS', '/api/v1/jobs', { key: 'none', headers: { origin: LOCAL_ORIGIN } });
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers['access-control-max-age']).toBeUndefined();
    expect(res.headers['access-control-expose-headers']).toBeUndefined();
  });

  it('requests without an Origin header always pass the CORS layer', async () => {
    const res = await fx.raw('GET', '/health', { key: 'none' });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});
