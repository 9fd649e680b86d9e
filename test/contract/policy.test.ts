// Policy decision endpoints (protojson, proxied to the safety kernel) and config-service backed
// bundles. Bundle writes are drafts (enabled:false) and are removed again through the config service.
import { describe, expect, it } from 'vitest';
import { GatewayClient } from '../../helpers/gateway.js';
import { startSandbox } from '../../sandbox/index.js';
import { allKeys, itWhen, RFC3339, SKIP, target, uniq, useContract } from './support.js';

const fx = useContract();

const DECISION_KEYS = ['approvalRef', 'approvalRequired', 'constraints', 'decision', 'policySnapshot', 'reason', 'redactedContextPtr', 'ruleId'];
const DECISIONS = [
  'DECISION_TYPE_UNSPECIFIED',
  'DECISION_TYPE_ALLOW',
  'DECISION_TYPE_DENY',
  'DECISION_TYPE_REQUIRE_HUMAN',
  'DECISION_TYPE_THROTTLE',
  'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS',
];

function check(kind: 'evaluate' | 'simulate' | 'explain', body: unknown, expectStatus: number | number[] = 200) {
  return fx.gw.request<Record<string, any>>('POST', `/api/v1/policy/${kind}`, { body, expect: expectStatus });
}

/** A draft rule for a topic nobody else uses, with budgets so constraints are non-empty. */
function constrainedDraft(topic: string): string {
  return [
    'rules:',
    `  - id: ${uniq('ct-rule')}`,
    `    match: { topics: ["${topic}"] }`,
    '    decision: allow_with_constraints',
    '    reason: contract constraints',
    '    constraints:',
    '      budgets: { max_runtime_ms: 1500, max_retries: 2 }',
    '',
  ].join('\n');
}

describe('evaluate / simulate / explain', () => {
  it('evaluate answers protojson with every field emitted in lowerCamelCase', async () => {
    const res = await check('evaluate', { topic: fx.profile.routing.mapped_topic });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    for (const k of DECISION_KEYS) expect(res.json, `key ${k}`).toHaveProperty(k);
    for (const k of allKeys(res.json)) expect(k, `key ${k}`).not.toMatch(/_/);
  });

  it('the decision is a DECISION_TYPE_* enum name', async () => {
    const res = await check('evaluate', { topic: fx.profile.routing.mapped_topic });
    expect(DECISIONS).toContain(res.json!.decision);
  });

  itWhen(!target.external, SKIP.external)('the stock policy allows job.default via rule legacy:default:allow:1', async () => {
    const res = await check('evaluate', { topic: 'job.default' });
    expect(res.json!.decision).toBe('DECISION_TYPE_ALLOW');
    expect(res.json!.ruleId).toBe('legacy:default:allow:1');
    expect(res.json!.constraints).toBeNull();
    expect(res.json!.approvalRequired).toBe(false);
    expect(res.json!.approvalRef).toBe('');
  });

  it('evaluate, simulate and explain answer the identical body for the same request', async () => {
    for (const body of [{ topic: fx.profile.routing.mapped_topic }, { topic: 'sys.ct' }]) {
      const [e, s, x] = await Promise.all([check('evaluate', body), check('simulate', body), check('explain', body)]);
      expect(s.json).toEqual(e.json);
      expect(x.json).toEqual(e.json);
    }
  });

  it('a topic outside job.* answers 200 DECISION_TYPE_DENY with reason unsupported topic', async () => {
    const res = await check('evaluate', { topic: 'sys.x' });
    expect(res.status).toBe(200);
    expect(res.json!.decision).toBe('DECISION_TYPE_DENY');
    expect(res.json!.reason).toBe('unsupported topic');
  });

  it('a missing topic answers 400 topic is required', async () => {
    for (const kind of ['evaluate', 'simulate', 'explain'] as const) {
      const res = await check(kind, { labels: { a: 'b' } }, [200, 400]);
      expect(res.status, kind).toBe(400);
      expect(res.text, kind).toBe('topic is required\n');
    }
  });

  it('a tenant other than the server tenant answers 403 tenant access denied', async () => {
    const res = await check('evaluate', { topic: fx.profile.routing.mapped_topic, tenant: uniq('ct-tenant') }, [200, 403]);
    expect(res.status).toBe(403);
    expect(res.text).toBe('tenant access denied\n');
  });

  it('malformed JSON answers 400', async () => {
    const res = await fx.gw.request('POST', '/api/v1/policy/evaluate', { body: '{"topic":', expect: [200, 400] });
    expect(res.status).toBe(400);
  });

  it('policy decisions have no side effects: job_id in the request creates no job', async () => {
    const jobId = uniq();
    await check('evaluate', { topic: fx.profile.routing.mapped_topic, job_id: jobId });
    const res = await fx.gw.request('GET', `/api/v1/jobs/${jobId}`, { expect: [200, 404] });
    expect(res.status).toBe(404);
  });

  it('GET /api/v1/policy/snapshots answers {snapshots: [...]} newest first, at most 10', async () => {
    const res = await fx.gw.request<{ snapshots: string[] }>('GET', '/api/v1/policy/snapshots', { expect: 200 });
    expect(Object.keys(res.json!)).toEqual(['snapshots']);
    expect(res.json!.snapshots.length).toBeGreaterThanOrEqual(1);
    expect(res.json!.snapshots.length).toBeLessThanOrEqual(10);
    const current = await check('evaluate', { topic: fx.profile.routing.mapped_topic });
    expect(current.json!.policySnapshot).toBe(res.json!.snapshots[0]);
  });
});

describe('bundle simulate (evaluated in the gateway)', () => {
  it('int64 budget fields come back as JSON strings, int32 fields as numbers, when constraints exist', async () => {
    const topic = `job.${uniq()}`;
    const res = await fx.gw.request<Record<string, any>>('POST', `/api/v1/policy/bundles/secops~${uniq()}/simulate`, {
      body: { request: { topic }, content: constrainedDraft(topic) },
      expect: 200,
    });
    const d = res.json!;
    expect(d.decision).toBe('DECISION_TYPE_ALLOW_WITH_CONSTRAINTS');
    expect(d.constraints.budgets).toEqual({ maxRuntimeMs: '1500', maxRetries: 2, maxArtifactBytes: '0', maxConcurrentJobs: 0 });
    for (const k of allKeys(d)) expect(k, `key ${k}`).not.toMatch(/_/);
  });

  it('bundle simulate answers the policy snapshot as cfg:<sha256>', async () => {
    const topic = `job.${uniq()}`;
    const res = await fx.gw.request<Record<string, any>>('POST', `/api/v1/policy/bundles/secops~${uniq()}/simulate`, {
      body: { request: { topic }, content: constrainedDraft(topic) },
      expect: 200,
    });
    expect(res.json!.policySnapshot).toMatch(/^cfg:[0-9a-f]{64}$/);
  });

  it('bundle simulate without request.topic answers 400', async () => {
    const res = await fx.gw.request('POST', `/api/v1/policy/bundles/secops~${uniq()}/simulate`, {
      body: { request: {}, content: constrainedDraft('job.ct') },
      expect: [200, 400],
    });
    expect(res.status).toBe(400);
  });
});

describe('bundles', () => {
  it('the bundle list answers items: null (not []) when no bundle exists', async (ctx) => {
    // On the sandbox, a sandbox of its own: "no bundle" must not depend on running before the tests
    // below that store bundles. A real target is read as it is (and may already have bundles).
    const fresh = target.external ? undefined : await startSandbox();
    const gw = fresh ? new GatewayClient(fresh.profile, { apiKey: fresh.apiKey }) : fx.gw;
    const res = await gw.request<Record<string, unknown>>('GET', '/api/v1/policy/bundles', { expect: 200 }).finally(async () => {
      if (fresh) await gw.close().finally(() => fresh.stop());
    });
    const body = res.json!;
    expect(body).toHaveProperty('bundles');
    expect(body).toHaveProperty('items');
    expect(body).toHaveProperty('updated_at');
    const count = Object.keys((body.bundles as Record<string, unknown> | null) ?? {}).length;
    if (count > 0) {
      expect(fresh, 'a fresh sandbox has policy bundles').toBeUndefined();
      expect(Array.isArray(body.items)).toBe(true);
      ctx.skip('the target already has policy bundles; the empty case cannot be observed');
    }
    expect(body.items).toBeNull();
  });

  it('PUT of a bundle id outside secops/ answers 400', async () => {
    const res = await fx.gw.request('PUT', `/api/v1/policy/bundles/${uniq()}~draft`, { body: { content: 'rules: []\n', enabled: false }, expect: [200, 400] });
    expect(res.status).toBe(400);
  });

  it('GET of an unknown bundle answers 404 bundle not found', async () => {
    const res = await fx.gw.request('GET', `/api/v1/policy/bundles/secops~${uniq()}`, { expect: 404 });
    expect(res.text).toBe('bundle not found\n');
  });

  itWhen(target.destructiveAllowed, SKIP.notDestructive)('a bundle id written with ~ for / is stored and read back as secops/<name>', async () => {
    const name = uniq();
    const id = `secops/${name}`;
    fx.cleanup(() => removeBundle(id));
    const put = await fx.gw.request<Record<string, string>>('PUT', `/api/v1/policy/bundles/secops~${name}`, {
      body: { content: constrainedDraft(`job.${name}`), enabled: false, author: 'contract' },
      expect: 200,
    });
    expect(Object.keys(put.json!).sort()).toEqual(['id', 'updated_at']);
    expect(put.json!.id).toBe(id);
    const got = await fx.gw.request<Record<string, unknown>>('GET', `/api/v1/policy/bundles/secops~${name}`, { expect: 200 });
    expect(got.json).toMatchObject({ id, enabled: false });
    const byQuery = await fx.gw.request<Record<string, unknown>>('GET', `/api/v1/policy/bundles/ignored`, { query: { bundle_id: id }, expect: 200 });
    expect(byQuery.json!.id).toBe(id);
    const list = await fx.gw.bundles();
    const item = (list.items ?? []).find((i) => i.id === id);
    expect(item).toMatchObject({ id, enabled: false, source: 'secops' });
    expect(item!.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  itWhen(target.destructiveAllowed, SKIP.notDestructive)('PUT with invalid policy content answers 400 invalid policy content', async () => {
    const name = uniq();
    fx.cleanup(() => removeBundle(`secops/${name}`));
    const res = await fx.gw.request('PUT', `/api/v1/policy/bundles/secops~${name}`, { body: { content: 'rules: [ {', enabled: false }, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/^invalid policy content: /);
  });

  itWhen(target.destructiveAllowed, SKIP.notDestructive)('PUT with empty content answers 400 content required', async () => {
    const name = uniq();
    fx.cleanup(() => removeBundle(`secops/${name}`));
    const res = await fx.gw.request('PUT', `/api/v1/policy/bundles/secops~${name}`, { body: { content: '', enabled: false }, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('content required\n');
  });

  it('GET /api/v1/policy/rules answers {items: [...]}', async () => {
    const res = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/policy/rules', { expect: 200 });
    expect(Array.isArray(res.json!.items)).toBe(true);
  });

  it('GET /api/v1/policy/audit answers {items}', async () => {
    const res = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/policy/audit', { expect: 200 });
    expect(res.json).toHaveProperty('items');
  });

  itWhen(target.destructiveAllowed, SKIP.notDestructive)('a bundle snapshot gets an id <RFC3339>-<10 hex> and reads back by its encoded id', async () => {
    const snap = await fx.gw.request<Record<string, any>>('POST', '/api/v1/policy/bundles/snapshots', { body: { note: 'contract' }, expect: 200 });
    expect(snap.json!.id).toMatch(/^\d{4}-\d{2}-\d{2}T[^ ]+-[0-9a-f]{10}$/);
    expect(snap.json!.created_at).toMatch(RFC3339);
    expect(snap.json!).toHaveProperty('bundles');
    const got = await fx.gw.getBundleSnapshot(snap.json!.id);
    expect(got.id).toBe(snap.json!.id);
    expect(got.note).toBe('contract');
  });

  it('rollback without snapshot_id answers 400 snapshot_id required', async () => {
    const res = await fx.gw.request('POST', '/api/v1/policy/rollback', { body: {}, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('snapshot_id required\n');
  });

  it('GET of an unknown bundle snapshot answers 404 snapshot not found', async () => {
    const res = await fx.gw.request('GET', `/api/v1/policy/bundles/snapshots/${encodeURIComponent(`2020-01-01T00:00:00Z-${uniq()}`)}`, { expect: 404 });
    expect(res.text).toBe('snapshot not found\n');
  });
});

/** There is no bundle DELETE route: remove the draft from cfg:system:policy through the config service (read-modify-write). */
async function removeBundle(id: string): Promise<void> {
  const res = await fx.gw.request<{ scope: string; scope_id: string; data: { bundles?: Record<string, unknown> }; meta?: Record<string, unknown> }>(
    'GET',
    '/api/v1/config',
    { query: { scope: 'system', scope_id: 'policy' }, expect: [200, 404] },
  );
  const doc = res.json;
  if (!doc?.data?.bundles || !(id in doc.data.bundles)) return;
  delete doc.data.bundles[id];
  await fx.gw.setConfig({ scope: 'system', scope_id: 'policy', data: doc.data, ...(doc.meta ? { meta: doc.meta } : {}) });
}


