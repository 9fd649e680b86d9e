// Route inventory: every documented REST route is registered. Checked without side effects: a
// PATCH (a method no route uses) on a registered path answers 405 with an Allow header that lists
// the documented method; an unregistered path answers 404.
import { describe, expect, it } from 'vitest';
import { useContract } from './support.js';

const fx = useContract();

/** [method, path with sample ids] from the documented route inventory (WebSocket /api/v1/stream excluded). */
const ROUTES: [string, string][] = [
  ['GET', '/health'],
  ['GET', '/api/v1/status'],
  ['GET', '/api/v1/workers'],
  ['GET', '/api/v1/jobs'],
  ['POST', '/api/v1/jobs'],
  ['GET', '/api/v1/jobs/ct-id'],
  ['GET', '/api/v1/jobs/ct-id/decisions'],
  ['POST', '/api/v1/jobs/ct-id/cancel'],
  ['POST', '/api/v1/jobs/ct-id/remediate'],
  ['GET', '/api/v1/traces/ct-id'],
  ['GET', '/api/v1/memory'],
  ['POST', '/api/v1/artifacts'],
  ['GET', '/api/v1/artifacts/ct-ptr'],
  ['GET', '/api/v1/workflows'],
  ['POST', '/api/v1/workflows'],
  ['GET', '/api/v1/workflows/ct-id'],
  ['DELETE', '/api/v1/workflows/ct-id'],
  ['POST', '/api/v1/workflows/ct-id/runs'],
  ['GET', '/api/v1/workflows/ct-id/runs'],
  ['GET', '/api/v1/workflow-runs'],
  ['GET', '/api/v1/workflow-runs/ct-id'],
  ['GET', '/api/v1/workflow-runs/ct-id/timeline'],
  ['DELETE', '/api/v1/workflow-runs/ct-id'],
  ['POST', '/api/v1/workflow-runs/ct-id/rerun'],
  ['POST', '/api/v1/workflows/ct-id/runs/ct-run/steps/ct-step/approve'],
  ['POST', '/api/v1/workflows/ct-id/runs/ct-run/cancel'],
  ['GET', '/api/v1/approvals'],
  ['POST', '/api/v1/approvals/ct-id/approve'],
  ['POST', '/api/v1/approvals/ct-id/reject'],
  ['GET', '/api/v1/dlq'],
  ['GET', '/api/v1/dlq/page'],
  ['DELETE', '/api/v1/dlq/ct-id'],
  ['POST', '/api/v1/dlq/ct-id/retry'],
  ['POST', '/api/v1/policy/evaluate'],
  ['POST', '/api/v1/policy/simulate'],
  ['POST', '/api/v1/policy/explain'],
  ['GET', '/api/v1/policy/snapshots'],
  ['GET', '/api/v1/policy/rules'],
  ['GET', '/api/v1/policy/bundles'],
  ['GET', '/api/v1/policy/bundles/secops~ct'],
  ['PUT', '/api/v1/policy/bundles/secops~ct'],
  ['POST', '/api/v1/policy/bundles/secops~ct/simulate'],
  ['GET', '/api/v1/policy/bundles/snapshots'],
  ['POST', '/api/v1/policy/bundles/snapshots'],
  ['GET', '/api/v1/policy/bundles/snapshots/ct-id'],
  ['POST', '/api/v1/policy/publish'],
  ['POST', '/api/v1/policy/rollback'],
  ['GET', '/api/v1/policy/audit'],
  ['GET', '/api/v1/config'],
  ['GET', '/api/v1/config/effective'],
  ['POST', '/api/v1/config'],
  ['GET', '/api/v1/locks'],
  ['POST', '/api/v1/locks/acquire'],
  ['POST', '/api/v1/locks/release'],
  ['POST', '/api/v1/locks/renew'],
  ['POST', '/api/v1/schemas'],
  ['GET', '/api/v1/schemas'],
  ['GET', '/api/v1/schemas/ct-id'],
  ['DELETE', '/api/v1/schemas/ct-id'],
  ['GET', '/api/v1/packs'],
  ['GET', '/api/v1/packs/ct-id'],
  ['POST', '/api/v1/packs/install'],
  ['POST', '/api/v1/packs/ct-id/uninstall'],
  ['POST', '/api/v1/packs/ct-id/verify'],
  ['GET', '/api/v1/marketplace/packs'],
  ['POST', '/api/v1/marketplace/install'],
];

async function assertRegistered(method: string, path: string): Promise<void> {
  const res = await fx.raw('PATCH', path);
  expect(res.status, `${method} ${path}: ${res.text.trim()}`).toBe(405);
  expect((res.headers.allow ?? '').split(',').map((s) => s.trim())).toContain(method);
}

describe('route inventory', () => {
  it.each(ROUTES)('%s %s is registered', async (method, path) => {
    await assertRegistered(method, path);
  });

  it('the WebSocket route /api/v1/stream is registered (a plain GET without upgrade is not 404)', async () => {
    const res = await fx.raw('GET', '/api/v1/stream');
    expect(res.status).not.toBe(404);
  });

  it('GET answers on a registered GET route imply HEAD in the Allow header', async () => {
    const res = await fx.raw('PATCH', '/api/v1/status');
    expect((res.headers.allow ?? '').split(',').map((s) => s.trim())).toEqual(expect.arrayContaining(['GET', 'HEAD']));
  });

  it('the literal /api/v1/policy/bundles/snapshots wins over the {id} wildcard', async () => {
    const res = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/policy/bundles/snapshots', { expect: 200 });
    expect(res.json).toHaveProperty('items');
    expect(res.json).not.toHaveProperty('content');
  });
});
