// Gateway Prometheus metrics on their separate listener: series names, the route label, and what
// is not counted. Counters are compared before/after, never assumed to start at zero.
import { describe, expect, it } from 'vitest';
import { findSamples, parseMetrics, sumSamples, type MetricsPage } from '../../helpers/metrics.js';
import { describeWhen, itWhen, SKIP, target, uniq, useContract } from './support.js';

const fx = useContract();
const REQS = 'cordum_api_gateway_http_requests_total';
const DURATION = 'cordum_api_gateway_http_request_duration_seconds';

async function scrape(): Promise<MetricsPage> {
  return parseMetrics(await fx.gw.scrapeMetrics(fx.profile.metrics!.gateway!));
}

describeWhen(target.hasGatewayMetrics, SKIP.noMetrics)('gateway metrics', () => {
  it('the metrics listener needs no API key and serves the Prometheus text format', async () => {
    const res = await fx.raw('GET', fx.profile.metrics!.gateway!, { key: 'none' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('the route label is the registered pattern, not the concrete path', async () => {
    const id = uniq();
    await fx.gw.request('GET', `/api/v1/jobs/${id}`, { expect: 404 });
    const page = await scrape();
    expect(findSamples(page, REQS, { method: 'GET', route: '/api/v1/jobs/{id}', status: '404' }).length).toBe(1);
    expect(page.samples.some((s) => s.name === REQS && (s.labels.route ?? '').includes(id))).toBe(false);
  });

  it('the requests counter has method, route and status (numeric string) labels', async () => {
    await fx.gw.status();
    const page = await scrape();
    const [sample] = findSamples(page, REQS, { method: 'GET', route: '/api/v1/status', status: '200' });
    expect(sample).toBeDefined();
    expect(Object.keys(sample!.labels).sort()).toEqual(['method', 'route', 'status']);
    expect(page.types.get(REQS.replace(/_total$/, '')) ?? page.types.get(REQS)).toBe('counter');
  });

  it('a status call increments the counter for route /api/v1/status', async () => {
    const before = sumSamples(await scrape(), REQS, { method: 'GET', route: '/api/v1/status', status: '200' });
    await fx.gw.status();
    const after = sumSamples(await scrape(), REQS, { method: 'GET', route: '/api/v1/status', status: '200' });
    expect(after - before).toBeGreaterThanOrEqual(1);
  });

  it('the duration histogram has method and route labels and _bucket/_sum/_count series', async () => {
    await fx.gw.status();
    const page = await scrape();
    expect(page.types.get(DURATION)).toBe('histogram');
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const [s] = findSamples(page, DURATION + suffix, { method: 'GET', route: '/api/v1/status' });
      expect(s, suffix).toBeDefined();
      expect(s!.labels).not.toHaveProperty('status');
    }
  });

  itWhen(target.authConfigured, SKIP.noAuth)('401 responses from auth are not counted', async () => {
    const route = '/api/v1/workflow-runs';
    const before = await scrape();
    const res = await fx.raw('GET', route, { key: 'none' });
    expect(res.status).toBe(401);
    const after = await scrape();
    expect(sumSamples(after, REQS, { route, status: '401' })).toBe(sumSamples(before, REQS, { route, status: '401' }));
    expect(findSamples(after, REQS, { status: '401' })).toEqual([]);
  });

  it('/health is not counted', async () => {
    await fx.raw('GET', '/health', { key: 'none' });
    const page = await scrape();
    expect(findSamples(page, REQS, { route: '/health' })).toEqual([]);
    expect(findSamples(page, `${DURATION}_count`, { route: '/health' })).toEqual([]);
  });

  it('requests rejected by CORS are not counted', async () => {
    const route = '/api/v1/traces/{id}';
    const before = sumSamples(await scrape(), REQS, { route });
    const res = await fx.raw('GET', `/api/v1/traces/${uniq()}`, { headers: { origin: 'https://ct-foreign.example.com' } });
    expect(res.status).toBe(403);
    expect(sumSamples(await scrape(), REQS, { route })).toBe(before);
  });

  it('404 for an unknown route is not attributed to any registered route', async () => {
    await fx.raw('GET', `/api/v1/${uniq()}`);
    const page = await scrape();
    expect(page.samples.some((s) => s.name === REQS && (s.labels.route ?? '').startsWith('/api/v1/ct-'))).toBe(false);
  });
});


