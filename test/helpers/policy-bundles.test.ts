// helpers/policy-bundles.ts against a started sandbox (short reload interval): a draft stored
// disabled changes nothing, publishing moves the kernel and the decision, rolling back restores both
// and the bundle map, and the policy audit holds both changes with who made them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '../../helpers/gateway.js';
import {
  DEFAULT_RELOAD_INTERVAL_MS,
  bundleMap,
  bundleMapEquals,
  checkAuditEntry,
  diffBundleMaps,
  kernelReloadWaitMs,
  kernelSnapshot,
  publishAndWaitForKernel,
  putDraft,
  recordedRole,
  rollbackAction,
  rollbackAndWait,
  runnerReloadIntervalMs,
  snapshotBundles,
  waitForKernel,
} from '../../helpers/policy-bundles.js';
import { ENV } from '../../helpers/report/run-contract.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';

const RELOAD_MS = 200;

let sb: Sandbox;
let gw: GatewayClient;

beforeAll(async () => {
  sb = await startSandbox({ policyReloadMs: RELOAD_MS });
  gw = new GatewayClient(sb.profile, { apiKey: sb.apiKey });
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await sb?.stop();
});

function denyRule(ruleId: string, topics: string): string {
  return ['rules:', `  - id: ${ruleId}`, '    decision: deny', `    reason: ${ruleId}`, '    match:', `      topics: ["${topics}"]`, ''].join('\n');
}

describe('policy bundles on a sandbox', () => {
  it('snapshots, stores a draft, publishes until the kernel reloads, and rolls back to exactly where it started', async () => {
    const id = 'secops/pb-unit-draft';
    const probe = { topic: 'job.pb-unit.probe' };
    const before = await snapshotBundles(gw, 'policy-bundles unit: before');
    expect(before.snapshotId).toBeTruthy();
    expect(before.kernel).toBe(await kernelSnapshot(gw));
    expect(bundleMapEquals(before.bundles, await bundleMap(gw))).toBe(true);
    const decisionBefore = await gw.policyEvaluate(probe);

    const phases: string[] = [];
    const phase = <T>(name: string, fn: () => Promise<T>) => (phases.push(name), fn());
    await putDraft(gw, id, denyRule('pb-unit-deny', 'job.pb-unit.*'), false, { author: 'unit', message: 'draft', phase });
    expect((await gw.getBundle(id)).enabled).toBe(false);
    // A disabled draft is not live: the decision is unchanged.
    expect((await gw.policyEvaluate(probe)).ruleId ?? '').toBe(decisionBefore.ruleId ?? '');

    const pub = await publishAndWaitForKernel(gw, [id], { reloadIntervalMs: RELOAD_MS, kernelBefore: before.kernel, author: 'unit', message: 'publish', phase });
    expect(pub.response.published).toContain(id);
    expect(pub.kernelBefore).toBe(before.kernel);
    expect(pub.kernelAfter).not.toBe(before.kernel);
    expect(await kernelSnapshot(gw)).toBe(pub.kernelAfter);
    expect(await gw.policyEvaluate(probe)).toMatchObject({ decision: 'DECISION_TYPE_DENY', ruleId: 'pb-unit-deny' });
    expect(diffBundleMaps(before.bundles, await bundleMap(gw))).toMatch(/^added secops\/pb-unit-draft$|changed secops\/pb-unit-draft/);

    const rb = await rollbackAndWait(gw, before.snapshotId, { reloadIntervalMs: RELOAD_MS, kernelBefore: before.kernel, author: 'unit', message: 'rollback', phase });
    expect(rb.response.rollback_to).toBe(before.snapshotId);
    expect(rb.kernelAfter).toBe(before.kernel);
    expect(bundleMapEquals(before.bundles, await bundleMap(gw))).toBe(true);
    expect((await gw.policyEvaluate(probe)).ruleId ?? '').toBe(decisionBefore.ruleId ?? '');
    expect(phases).toEqual([
      `Store ${id} with enabled: false`,
      `Publish ${id} (X-Principal-Id runbook-operator)`,
      'Wait for the kernel snapshot to change',
      `Roll back to bundle snapshot ${before.snapshotId}`,
      'Wait for the kernel snapshot to return to the one before the change',
    ]);

    // The policy audit holds both changes, with the client's principal as recorded by Cordum.
    const items = (await gw.policyAudit()).items ?? [];
    const who = { actorId: 'runbook-operator', role: recordedRole('admin') };
    expect(checkAuditEntry(items, 'publish', pub.response, { ...who, bundleIds: [id] })).toMatchObject({ problems: [], entry: { action: 'publish' } });
    expect(checkAuditEntry(items, 'rollback', rb.response, who)).toMatchObject({ problems: [], entry: { action: 'rollback' } });
    expect(checkAuditEntry(items, 'publish', pub.response, { actorId: 'someone-else', bundleIds: ['secops/other'] }).problems).toEqual([
      'publish entry records actor_id "runbook-operator", expected someone-else (X-Principal-Id)',
      'publish entry lists bundle_ids ["secops/pb-unit-draft"], expected secops/other',
    ]);
    expect(checkAuditEntry(items, 'rollback', { snapshot_before: 'x', snapshot_after: 'nope' }).problems[0]).toMatch(/^no rollback entry with snapshot_after nope in the policy audit/);
  });

  it('treats an omitted, null or empty snapshot_after as the same empty snapshot, and says which it saw', () => {
    // As recorded from a real Cordum: a rollback to the empty map of a fresh install answers
    // snapshot_after "" and its audit entry has no snapshot_after at all.
    const rollbackToEmpty = { id: 'a2', action: 'rollback', actor_id: 'runbooks', role: 'admin', snapshot_before: '2026-12-03T13:14:51Z-d888bf1121', created_at: '2026-12-03T13:14:51Z' };
    const earlier = { ...rollbackToEmpty, id: 'a1', snapshot_before: '2026-12-03T13:10:00Z-0000000000' };
    const response = { rollback_to: '2026-12-03T13:14:23Z-44136fa355', snapshot_after: '', snapshot_before: '2026-12-03T13:14:51Z-d888bf1121' };
    const omitted = checkAuditEntry([earlier, rollbackToEmpty], 'rollback', response, { actorId: 'runbooks', role: 'admin' });
    expect(omitted).toMatchObject({ problems: [], entry: { id: 'a2' } });
    expect(omitted.variant).toMatch(/^snapshot_after omitted/);
    expect(checkAuditEntry([{ ...rollbackToEmpty, snapshot_after: '' }], 'rollback', { ...response, snapshot_after: undefined }).variant).toBe('snapshot_after empty');
    expect(checkAuditEntry([{ ...rollbackToEmpty, snapshot_after: 'x-1' }], 'rollback', { ...response, snapshot_after: 'x-1' }).variant).toBe('snapshot_after set');
    // Still a real check: an entry that records a snapshot where the answer had none is not this rollback.
    expect(checkAuditEntry([{ ...rollbackToEmpty, snapshot_after: 'x-1' }], 'rollback', response).problems[0]).toMatch(/^no rollback entry with snapshot_after \(none: an empty map\)/);
    expect(checkAuditEntry([rollbackToEmpty], 'rollback', { ...response, snapshot_before: 'other' }).problems).toEqual([
      'rollback entry has snapshot_before "2026-12-03T13:14:51Z-d888bf1121", expected other',
    ]);
  });

  it('publishes as another principal when asked, and the audit records that principal', async () => {
    const id = 'secops/pb-unit-principal';
    const before = await snapshotBundles(gw, 'policy-bundles unit: principal');
    await putDraft(gw, id, denyRule('pb-unit-principal', 'job.pb-unit-principal.*'), false);
    const pub = await publishAndWaitForKernel(gw, [id], { reloadIntervalMs: RELOAD_MS, principal: { id: 'pb-unit-publisher', role: 'secops' } });
    const rb = await rollbackAndWait(gw, before.snapshotId, { reloadIntervalMs: RELOAD_MS, kernelBefore: pub.kernelBefore });
    expect(rb.kernelAfter).toBe(pub.kernelBefore);
    const items = (await gw.policyAudit()).items ?? [];
    expect(checkAuditEntry(items, 'publish', pub.response, { actorId: 'pb-unit-publisher', role: 'admin', bundleIds: [id] }).problems).toEqual([]);
  });

  it('says the kernel did not reload in time when the snapshot never gets there, and stops on abort', async () => {
    const now = await kernelSnapshot(gw);
    const started = Date.now();
    await expect(waitForKernel(gw, 'a snapshot that never comes', (s) => s === 'never', { reloadIntervalMs: RELOAD_MS })).rejects.toThrow(
      new RegExp(`^the safety kernel did not reload the policy in time: timed out after 5400 ms waiting for a snapshot that never comes \\(deadline 5400 ms = 2 x policy.reload_interval_ms 200 \\+ 5 s\\); last saw: "${now}"`),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_400);

    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('stop')), 300);
    await expect(waitForKernel(gw, 'an aborted wait', () => false, { reloadIntervalMs: RELOAD_MS, signal: ctl.signal })).rejects.toThrow(/aborted while waiting for an aborted wait/);
  });

  it('fails a publish whose answer leaves out a bundle it was asked to publish', async () => {
    const id = 'secops/pb-unit-partial';
    const before = await snapshotBundles(gw, 'policy-bundles unit: partial');
    await putDraft(gw, id, denyRule('pb-unit-partial', 'job.pb-unit-partial.*'), false);
    await expect(publishAndWaitForKernel(gw, [id, 'secops/pb-unit-never-stored'], { reloadIntervalMs: RELOAD_MS })).rejects.toThrow(
      /^expected publish to list secops\/pb-unit-never-stored as published; it answered \{.*"published":\["secops\/pb-unit-partial"\]/,
    );
    // The stored one was published all the same: rolling back restores the map.
    await rollbackAndWait(gw, before.snapshotId, { reloadIntervalMs: RELOAD_MS, kernelBefore: before.kernel });
    expect(bundleMapEquals(before.bundles, await bundleMap(gw))).toBe(true);
  });
});

describe('policy bundle helpers without a target', () => {
  it('diffs bundle maps by key and field, ignoring key order', () => {
    const a = { 'secops/a': { content: 'x', enabled: true }, 'secops/b': { content: 'y' } };
    expect(diffBundleMaps(a, { 'secops/b': { content: 'y' }, 'secops/a': { enabled: true, content: 'x' } })).toBe('');
    expect(bundleMapEquals(a, { ...a })).toBe(true);
    expect(diffBundleMaps(a, { 'secops/a': { content: 'z', enabled: true }, 'secops/c': {} })).toBe('added secops/c; removed secops/b; changed secops/a (content)');
    expect(bundleMapEquals(a, {})).toBe(false);
  });

  it('derives the kernel wait from the reload interval and reads the interval from the runner profile', () => {
    expect(kernelReloadWaitMs(1_000)).toBe(7_000);
    const dir = mkdtempSync(join(tmpdir(), 'policy-bundles-'));
    try {
      const file = join(dir, 'target.json');
      writeFileSync(file, JSON.stringify({ policy: { reload_interval_ms: 1234 } }));
      expect(runnerReloadIntervalMs({ [ENV.TARGET_FILE]: file })).toBe(1234);
      writeFileSync(file, JSON.stringify({ policy: {} }));
      expect(runnerReloadIntervalMs({ [ENV.TARGET_FILE]: file })).toBe(DEFAULT_RELOAD_INTERVAL_MS);
      expect(runnerReloadIntervalMs({ [ENV.TARGET_FILE]: join(dir, 'missing.json') })).toBe(DEFAULT_RELOAD_INTERVAL_MS);
      expect(runnerReloadIntervalMs({})).toBe(DEFAULT_RELOAD_INTERVAL_MS);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps roles as Cordum records them, and builds the teardown rollback', () => {
    expect(['secops', ' Operator ', 'admin', 'Viewer'].map(recordedRole)).toEqual(['admin', 'admin', 'admin', 'viewer']);
    expect(rollbackAction('snap:1', { author: 'me', message: 'undo' })).toEqual({
      kind: 'http',
      method: 'POST',
      path: '/api/v1/policy/rollback',
      body: { snapshot_id: 'snap:1', author: 'me', message: 'undo' },
      okStatuses: [200],
    });
  });
});
