// Policy routes end to end through startSandbox: kernel-proxied protojson endpoints, bundle
// management over the config docs, publish/rollback/audit, and the kernel picking bundles up on reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { pollUntil as until, client } from './sandbox-client.js';

let sb: Sandbox;
/** Raw HTTP against the sandbox gateway (status, text, parsed json). */
const call: ReturnType<typeof client> = (...args) => client(sb)(...args);

beforeAll(async () => {
  sb = await startSandbox({ policyReloadMs: 50, env: { API_RATE_LIMIT_RPS: '10000', API_RATE_LIMIT_BURST: '10000' } });
});
afterAll(async () => {
  await sb?.stop();
});

const DENY_BUNDLE = 'rules:\n  - id: deny-default\n    match: { topics: ["job.default"] }\n    decision: deny\n    reason: closed\n';

describe('policy decision endpoints', () => {
  it('evaluate/simulate/explain answer protojson; validation, tenant and unsupported topics', async () => {
    const ev = await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default', job_id: 'x' });
    expect(ev.status).toBe(200);
    expect(ev.json).toEqual({
      decision: 'DECISION_TYPE_ALLOW',
      reason: '',
      redactedContextPtr: '',
      policySnapshot: expect.stringMatching(/^[0-9a-f]{64}$/),
      ruleId: 'legacy:default:allow:1',
      constraints: null,
      approvalRequired: false,
      approvalRef: '',
      remediations: [],
    });
    expect((await call('POST', '/api/v1/policy/simulate', { topic: 'job.default', job_id: 'x' })).json).toEqual(ev.json);
    expect((await call('POST', '/api/v1/policy/explain', { topic: 'job.default', job_id: 'x' })).json).toEqual(ev.json);
    const sys = await call('POST', '/api/v1/policy/evaluate', { topic: 'sys.x' });
    expect(sys.status).toBe(200);
    expect(sys.json).toMatchObject({ decision: 'DECISION_TYPE_DENY', reason: 'unsupported topic' });
    expect(await call('POST', '/api/v1/policy/evaluate', { tenant: 'default' })).toMatchObject({ status: 400, text: 'topic is required\n' });
    expect(await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default', tenant: 'other' })).toMatchObject({ status: 403, text: 'tenant access denied\n' });
    expect((await call('POST', '/api/v1/policy/evaluate', '')).status).toBe(400);
    expect((await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default', labels: { a: 1 } })).status).toBe(400);
    const snaps = await call('GET', '/api/v1/policy/snapshots');
    expect(snaps.json).toEqual({ snapshots: [ev.json.policySnapshot] });
  });

  it('effective config deny from the config service reaches evaluate', async () => {
    const put = await call('POST', '/api/v1/config', { scope: 'team', scope_id: 'pt-team', data: { safety: { denied_topics: ['job.default'] } } });
    expect(put.status).toBe(204);
    const r = await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default', team_id: 'pt-team' });
    expect(r.json).toMatchObject({ decision: 'DECISION_TYPE_DENY', reason: "topic 'job.default' denied by effective config" });
  });
});

describe('policy bundles', () => {
  it('list/put/get, validation, simulate, publish, snapshots, audit, rollback, kernel reload', async () => {
    expect((await call('GET', '/api/v1/policy/bundles')).json).toEqual({ bundles: {}, items: null, updated_at: '' });
    expect((await call('GET', '/api/v1/policy/rules')).json).toEqual({ items: [] });
    expect(await call('PUT', '/api/v1/policy/bundles/pack~x', { content: DENY_BUNDLE })).toMatchObject({ status: 400 });
    expect(await call('PUT', '/api/v1/policy/bundles/secops~x', { content: '' })).toMatchObject({ status: 400, text: 'content required\n' });
    const bad = await call('PUT', '/api/v1/policy/bundles/secops~x', { content: 'rules:\n  - id: r\n    decision: maybe\n' });
    expect(bad.status).toBe(400);
    expect(bad.text).toMatch(/^invalid policy content: /);

    // A draft (enabled:false) is stored but not live.
    const put = await call('PUT', '/api/v1/policy/bundles/ignored?bundle_id=secops/deny', { content: DENY_BUNDLE, enabled: false, author: 'ann' });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ id: 'secops/deny', updated_at: expect.any(String) });
    const got = await call('GET', '/api/v1/policy/bundles/secops~deny');
    expect(got.json).toMatchObject({ id: 'secops/deny', content: DENY_BUNDLE, enabled: false, author: 'ann' });
    expect((await call('GET', '/api/v1/policy/bundles/secops~nope')).status).toBe(404);
    const list = await call('GET', '/api/v1/policy/bundles');
    expect(list.json.items).toEqual([expect.objectContaining({ id: 'secops/deny', enabled: false, source: 'secops', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) })]);
    expect((await call('GET', '/api/v1/policy/rules')).json).toEqual({ items: [] });
    expect((await call('GET', '/api/v1/policy/rules?include_disabled=true')).json.items[0]).toMatchObject({ id: 'deny-default', source: { fragment_id: 'secops/deny' } });

    // Bundle simulate: stored bundles + draft, no file policy.
    const sim = await call('POST', '/api/v1/policy/bundles/secops~deny/simulate', { request: { topic: 'job.default' }, content: DENY_BUNDLE });
    expect(sim.json).toMatchObject({ decision: 'DECISION_TYPE_DENY', ruleId: 'deny-default', policySnapshot: expect.stringMatching(/^cfg:[0-9a-f]{64}$/) });
    const simOther = await call('POST', '/api/v1/policy/bundles/secops~deny/simulate', { request: { topic: 'job.other' } });
    expect(simOther.json).toMatchObject({ decision: 'DECISION_TYPE_ALLOW', ruleId: '', policySnapshot: '' });
    expect((await call('POST', '/api/v1/policy/bundles/secops~deny/simulate', { request: {} })).status).toBe(400);

    // Kernel still allows: the bundle is disabled.
    const before = (await call('GET', '/api/v1/policy/snapshots')).json.snapshots;
    expect((await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default' })).json.decision).toBe('DECISION_TYPE_ALLOW');

    const pub = await call('POST', '/api/v1/policy/publish', { message: 'go live' }, { 'X-Principal-Id': 'bob', 'X-Principal-Role': 'secops' });
    expect(pub.status).toBe(200);
    expect(pub.json).toEqual({ snapshot_before: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ-[0-9a-f]{10}$/), snapshot_after: expect.any(String), published: ['secops/deny'] });
    const audit = await call('GET', '/api/v1/policy/audit');
    expect(audit.json.items[0]).toMatchObject({ action: 'publish', actor_id: 'bob', role: 'admin', bundle_ids: ['secops/deny'], message: 'go live', snapshot_before: pub.json.snapshot_before });

    // The kernel picks it up on reload: new snapshot first, evaluate now denies.
    const after = await until('kernel reload', async () => (await call('GET', '/api/v1/policy/snapshots')).json.snapshots, (s: string[]) => s.length === before.length + 1);
    expect(after[0]).toMatch(/\|cfg:[0-9a-f]{64}$/);
    expect((await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default' })).json).toMatchObject({ decision: 'DECISION_TYPE_DENY', ruleId: 'deny-default' });

    const snaps = await call('GET', '/api/v1/policy/bundles/snapshots');
    expect(snaps.json.items.map((s: any) => s.id)).toEqual([pub.json.snapshot_after, pub.json.snapshot_before]);
    const full = await call('GET', `/api/v1/policy/bundles/snapshots/${encodeURIComponent(pub.json.snapshot_before)}`);
    expect(full.json.bundles['secops/deny'].enabled).toBe(false);
    expect((await call('GET', '/api/v1/policy/bundles/snapshots/nope')).status).toBe(404);

    expect(await call('POST', '/api/v1/policy/rollback', {})).toMatchObject({ status: 400, text: 'snapshot_id required\n' });
    expect((await call('POST', '/api/v1/policy/rollback', { snapshot_id: 'nope' })).status).toBe(404);
    const rb = await call('POST', '/api/v1/policy/rollback', { snapshot_id: pub.json.snapshot_before });
    expect(rb.json).toMatchObject({ rollback_to: pub.json.snapshot_before });
    expect((await call('GET', '/api/v1/policy/bundles/secops~deny')).json.enabled).toBe(false);
    await until('kernel allows again', async () => (await call('POST', '/api/v1/policy/evaluate', { topic: 'job.default' })).json.decision, (d) => d === 'DECISION_TYPE_ALLOW');
  });
});

describe('policy faults over HTTP', () => {
  it('policy-explain-wrong-rule: explain disagrees with evaluate', async () => {
    const faulty = await startSandbox({ faults: ['policy-explain-wrong-rule'] });
    try {
      const post = (p: string) =>
        fetch(`${faulty.profile.gateway.url}/api/v1/policy/${p}`, { method: 'POST', headers: { 'X-API-Key': faulty.apiKey }, body: JSON.stringify({ topic: 'job.default' }) }).then((r) => r.json() as any);
      const [ev, ex] = [await post('evaluate'), await post('explain')];
      expect(ev.ruleId).toBe('legacy:default:allow:1');
      expect(ex.ruleId).not.toBe(ev.ruleId);
    } finally {
      await faulty.stop();
    }
  });
});
