// Schemas (api.md §10.12, runtime.md §5.5), packs and marketplace (api.md §10.14) and the
// "no empty metric families" rule of both /metrics endpoints, on a started sandbox.
import { Redis } from 'ioredis';
import { Counter, Histogram, Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { omitEmptyFamilies } from '../../sandbox/metrics-text.js';
import { SCHEMA_INDEX_CAP } from '../../sandbox/stores/schemas.js';
import { client } from './sandbox-client.js';

let sb: Sandbox;
let redis: Redis;
let call: ReturnType<typeof client>;
let firstScrape: { gateway: string; scheduler: string };

const scrape = async (url: string) => (await request(url)).body.text();

beforeAll(async () => {
  sb = await startSandbox();
  // Before any API call: no labelled gateway/scheduler series exist yet.
  firstScrape = { gateway: await scrape(sb.profile.metrics!.gateway!), scheduler: await scrape(sb.profile.metrics!.scheduler!) };
  redis = new Redis(sb.redisUrl);
  call = client(sb);
});
afterAll(async () => {
  redis?.disconnect();
  await sb?.stop();
});

describe('metrics: families without samples are omitted', () => {
  it('a fresh gateway and scheduler export none of their labelled families, but still the process collectors', () => {
    for (const text of [firstScrape.gateway, firstScrape.scheduler]) {
      expect(text).not.toMatch(/cordum_/);
      expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    }
  });

  it('a family appears with its first sample', async () => {
    await call('GET', '/api/v1/status');
    const text = await scrape(sb.profile.metrics!.gateway!);
    expect(text).toContain('# TYPE cordum_api_gateway_http_requests_total counter');
    expect(text).toContain('cordum_api_gateway_http_requests_total{method="GET",route="/api/v1/status",status="200"} 1');
    expect(text).toContain('# TYPE cordum_api_gateway_http_request_duration_seconds histogram');
  });

  it('omitEmptyFamilies drops HELP/TYPE of empty labelled families and keeps unlabelled zero counters', async () => {
    const registry = new Registry();
    new Counter({ name: 'ct_empty_total', help: 'empty', labelNames: ['a'], registers: [registry] });
    new Histogram({ name: 'ct_empty_seconds', help: 'empty', labelNames: ['a'], registers: [registry] });
    new Counter({ name: 'ct_plain_total', help: 'plain', registers: [registry] });
    new Counter({ name: 'ct_used_total', help: 'used', labelNames: ['a'], registers: [registry] }).inc({ a: 'x' });
    const out = omitEmptyFamilies(await registry.metrics());
    expect(out).not.toContain('ct_empty');
    expect(out).toContain('# HELP ct_plain_total plain\n# TYPE ct_plain_total counter\nct_plain_total 0\n');
    expect(out).toContain('ct_used_total{a="x"} 1');
    expect(out.endsWith('\n')).toBe(true);
  });
});

describe('schemas', () => {
  it('POST stores schema:<id> (STRING, raw JSON) and indexes the id in schema:index (ZSET)', async () => {
    const res = await call('POST', '/api/v1/schemas', { id: 'sb-one', schema: { type: 'object', required: ['a'] } });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(await redis.type('schema:sb-one')).toBe('string');
    expect(JSON.parse((await redis.get('schema:sb-one'))!)).toEqual({ type: 'object', required: ['a'] });
    expect(await redis.type('schema:index')).toBe('zset');
    expect(await redis.zscore('schema:index', 'sb-one')).not.toBeNull();
    expect(await redis.ttl('schema:sb-one')).toBe(-1);
  });

  it('a missing schema is stored as null and read back as null; the schema is not validated', async () => {
    expect((await call('POST', '/api/v1/schemas', { id: 'sb-null' })).status).toBe(204);
    expect(await redis.get('schema:sb-null')).toBe('null');
    expect((await call('GET', '/api/v1/schemas/sb-null')).json).toEqual({ id: 'sb-null', schema: null });
    expect((await call('POST', '/api/v1/schemas', { id: 'sb-odd', schema: 'not a schema' })).status).toBe(204);
  });

  it('the list is ids only, newest first, and honours ?limit', async () => {
    for (const id of ['sb-l1', 'sb-l2', 'sb-l3']) {
      await call('POST', '/api/v1/schemas', { id, schema: {} });
      await new Promise((r) => setTimeout(r, 3)); // distinct millisecond scores
    }
    const all = await call('GET', '/api/v1/schemas');
    expect(all.status).toBe(200);
    expect(all.headers['content-type']).toBe('application/json');
    expect(all.json.schemas.slice(0, 3)).toEqual(['sb-l3', 'sb-l2', 'sb-l1']);
    expect((await call('GET', '/api/v1/schemas?limit=2')).json).toEqual({ schemas: ['sb-l3', 'sb-l2'] });
  });

  it('errors: 400 schema id required, 400 invalid json, 404 schema not found (plain text)', async () => {
    const noId = await call('POST', '/api/v1/schemas', { schema: {} });
    expect([noId.status, noId.text]).toEqual([400, 'schema id required\n']);
    const blank = await call('POST', '/api/v1/schemas', { id: '   ', schema: {} });
    expect([blank.status, blank.text]).toEqual([400, 'schema id required\n']);
    const bad = await call('POST', '/api/v1/schemas', '{nope');
    expect([bad.status, bad.text]).toEqual([400, 'invalid json\n']);
    const empty = await call('POST', '/api/v1/schemas', '');
    expect(empty.status).toBe(400);
    const missing = await call('GET', '/api/v1/schemas/sb-missing');
    expect([missing.status, missing.text, missing.headers['content-type']]).toEqual([404, 'schema not found\n', 'text/plain; charset=utf-8']);
  });

  it('DELETE removes both keys and answers 204 even for an unknown id', async () => {
    await call('POST', '/api/v1/schemas', { id: 'sb-del', schema: {} });
    expect((await call('DELETE', '/api/v1/schemas/sb-del')).status).toBe(204);
    expect(await redis.exists('schema:sb-del')).toBe(0);
    expect(await redis.zscore('schema:index', 'sb-del')).toBeNull();
    const again = await call('DELETE', '/api/v1/schemas/sb-del');
    expect([again.status, again.text]).toEqual([204, '']);
  });

  it(`schema:index is capped at the newest ${SCHEMA_INDEX_CAP}`, async () => {
    // Fill the index directly with old members, then register one schema through the API.
    const args: (string | number)[] = [];
    for (let i = 0; i < SCHEMA_INDEX_CAP + 20; i++) args.push(i, `sb-old-${i}`);
    await redis.zadd('schema:index', ...args);
    await call('POST', '/api/v1/schemas', { id: 'sb-newest', schema: {} });
    expect(await redis.zcard('schema:index')).toBe(SCHEMA_INDEX_CAP);
    expect(await redis.zscore('schema:index', 'sb-newest')).not.toBeNull();
    expect(await redis.zscore('schema:index', 'sb-old-0')).toBeNull();
    expect((await call('GET', '/api/v1/schemas?limit=1')).json).toEqual({ schemas: ['sb-newest'] });
  });
});

describe('packs', () => {
  it('GET /api/v1/packs answers {"items":[]} on a fresh install', async () => {
    const res = await call('GET', '/api/v1/packs');
    expect([res.status, res.text]).toEqual([200, '{"items":[]}\n']);
  });

  it('unknown packs: GET 404 not found, uninstall and verify 404 pack not installed', async () => {
    expect(await call('GET', '/api/v1/packs/sb-nope').then((r) => [r.status, r.text])).toEqual([404, 'not found\n']);
    expect(await call('POST', '/api/v1/packs/sb-nope/uninstall', { purge: true }).then((r) => [r.status, r.text])).toEqual([404, 'pack not installed\n']);
    expect(await call('POST', '/api/v1/packs/sb-nope/uninstall').then((r) => [r.status, r.text])).toEqual([404, 'pack not installed\n']);
    expect(await call('POST', '/api/v1/packs/sb-nope/verify').then((r) => [r.status, r.text])).toEqual([404, 'pack not installed\n']);
  });

  it('the registry cfg:system:packs is listed sorted by id; uninstall marks a pack DISABLED; verify runs its simulations', async () => {
    const record = (id: string) => ({ id, version: '1.0.0', status: 'ACTIVE', installed_at: '2026-01-01T00:00:00Z' });
    const withTests = {
      ...record('sb-b'),
      tests: { policySimulations: [{ name: 'default allows', request: { tenantId: 'default', topic: 'job.default' }, expectDecision: 'ALLOW' }] },
    };
    await call('POST', '/api/v1/config', { scope: 'system', scope_id: 'packs', data: { packs: { 'sb-c': record('sb-c'), 'sb-b': withTests, 'sb-a': record('sb-a') } } });
    try {
      const list = await call('GET', '/api/v1/packs');
      expect(list.json.items.map((p: { id: string }) => p.id)).toEqual(['sb-a', 'sb-b', 'sb-c']);
      expect((await call('GET', '/api/v1/packs/sb-a')).json).toEqual(record('sb-a'));
      const verify = await call('POST', '/api/v1/packs/sb-b/verify');
      expect(verify.status).toBe(200);
      expect(verify.json.pack_id).toBe('sb-b');
      expect(verify.json.results).toHaveLength(1);
      expect(verify.json.results[0]).toMatchObject({ name: 'default allows', expected: 'ALLOW' });
      expect(verify.json.results[0].ok).toBe(verify.json.results[0].got === 'ALLOW');
      const un = await call('POST', '/api/v1/packs/sb-c/uninstall');
      expect([un.status, un.json.status]).toEqual([200, 'DISABLED']);
      expect((await call('GET', '/api/v1/packs/sb-c')).json.status).toBe('DISABLED');
    } finally {
      await redis.del('cfg:system:packs');
    }
  });

  it('install: anything but a valid multipart upload with a `bundle` file answers 400 in plain text, and nothing is installed', async () => {
    const install = async (body: FormData | string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${sb.profile.gateway.url}/api/v1/packs/install`, { method: 'POST', headers: { 'X-API-Key': sb.apiKey, ...headers }, body });
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    };
    const json = await install('{}', { 'content-type': 'application/json' });
    expect([json.status, json.type]).toEqual([400, 'text/plain; charset=utf-8']);
    expect(json.text).toMatch(/multipart/);

    const noBundle = new FormData();
    noBundle.set('force', 'true');
    expect(await install(noBundle)).toMatchObject({ status: 400, text: 'bundle file required\n' });

    const notGzip = new FormData();
    notGzip.set('bundle', new Blob([Buffer.from('plain text')]), 'pack.tgz');
    expect(await install(notGzip)).toMatchObject({ status: 400, text: 'invalid pack bundle: not a gzip archive\n' });

    const gzip = new FormData();
    gzip.set('bundle', new Blob([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])]), 'pack.tgz');
    const notSimulated = await install(gzip);
    expect(notSimulated.status).toBe(400);
    expect(notSimulated.text).toMatch(/not supported by the sandbox\n$/);
    expect((await call('GET', '/api/v1/packs')).json).toEqual({ items: [] });
  });
});

describe('marketplace', () => {
  it('GET /api/v1/marketplace/packs is 200 offline with catalogs[].error set and no items', async () => {
    const res = await call('GET', '/api/v1/marketplace/packs');
    expect(res.status).toBe(200);
    expect(res.json.items).toEqual([]);
    expect(res.json.fetched_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(res.json.catalogs).toHaveLength(1);
    expect(res.json.catalogs[0]).toMatchObject({ enabled: true });
    expect(res.json.catalogs[0].url).toMatch(/^https:\/\//);
    expect(res.json.catalogs[0].error).toEqual(expect.any(String));
  });

  it('POST /api/v1/marketplace/install: 400 without a pack reference, 404 for a pack not in the catalog', async () => {
    const none = await call('POST', '/api/v1/marketplace/install', {});
    expect(none.status).toBe(400);
    const bad = await call('POST', '/api/v1/marketplace/install', '{x');
    expect([bad.status, bad.text]).toEqual([400, 'invalid json\n']);
    const byId = await call('POST', '/api/v1/marketplace/install', { catalog_id: 'official', pack_id: 'sb-pack' });
    expect([byId.status, byId.text]).toEqual([404, 'pack not found in catalog\n']);
    const byUrl = await call('POST', '/api/v1/marketplace/install', { url: 'https://127.0.0.1/x.tgz', sha256: 'ab' });
    expect(byUrl.status).toBe(404);
  });
});
