// helpers/undo.ts against a started sandbox: each builder removes the object it names (ids that
// need encoding included), an object a step already removed counts as removed, and an undo whose
// path went stale (a renamed route, an id encoded twice) is reported as left behind while the
// object stays, never as "already gone".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient, GatewayError, paths } from '../../helpers/gateway.js';
import { TeardownRegistry, targetExecutor, type TeardownAction, type TeardownOutcome } from '../../helpers/teardown.js';
import { undo } from '../../helpers/undo.js';
import { waitFor } from '../../helpers/waits.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';

let sb: Sandbox;
let gw: GatewayClient;
let n = 0;

beforeAll(async () => {
  sb = await startSandbox();
  gw = new GatewayClient(sb.profile, { apiKey: sb.apiKey });
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await sb?.stop();
});

/** A fresh id with characters that one encoding keeps in one segment and a second one changes. */
const uid = (what: string) => `ut-undo-${what}-${process.pid}-${++n}:x@1`;

async function teardown(actions: Record<string, TeardownAction>): Promise<TeardownOutcome> {
  const reg = new TeardownRegistry('undo.test.ts');
  for (const [label, action] of Object.entries(actions)) reg.add(label, action);
  const exec = targetExecutor(sb.profile, () => gw);
  try {
    return await reg.runAll(exec, AbortSignal.timeout(20_000));
  } finally {
    await exec.close?.();
  }
}

async function exists(path: string): Promise<boolean> {
  return (await gw.request('GET', path, { expect: [200, 404] })).status === 200;
}

async function approvalWorkflow(id: string): Promise<void> {
  await gw.createWorkflow({ id, name: id, steps: { approve: { type: 'approval', name: 'Approve' } } });
  expect(await exists(paths.workflow(id))).toBe(true);
}

describe('undo builders on a sandbox', () => {
  it('remove the workflow, run, job, DLQ entry and lock they name', async () => {
    const wfId = uid('wf');
    await approvalWorkflow(wfId);
    const { run_id: runId } = await gw.startRun(wfId, {});
    // No worker advertises this label: the job stays PENDING until it is cancelled.
    const { job_id: jobId } = await gw.submitJob({ prompt: 'undo test', topic: sb.profile.routing.mapped_topic, labels: { runbook_probe: uid('nobody') } });
    const { job_id: deadId } = await gw.submitJob({ prompt: 'undo test: dead letter', topic: sb.profile.routing.unmapped_topic });
    await waitFor(`a DLQ entry for ${deadId}`, () => gw.dlqList(500), (l) => l.some((e) => e.job_id === deadId), { timeoutMs: 10_000 });
    const resource = uid('lock');
    await gw.lockAcquire({ resource, owner: 'ut-owner', ttl_ms: 60_000 });

    const outcome = await teardown({
      workflow: undo.workflow(wfId),
      run: undo.run(runId),
      job: undo.job(jobId),
      dlq: undo.dlqEntry(deadId),
      lock: undo.lock(resource, 'ut-owner'),
    });
    expect(outcome.leftovers).toEqual([]);
    expect(outcome.removed).toHaveLength(5);
    expect(await exists(paths.workflow(wfId))).toBe(false);
    expect(await exists(paths.run(runId))).toBe(false);
    expect((await gw.getJob(jobId)).state).toBe('CANCELLED');
    expect((await gw.dlqList(500)).map((e) => e.job_id)).not.toContain(deadId);
    await expect(gw.lockGet(resource)).rejects.toMatchObject({ status: 404 } satisfies Partial<GatewayError>);
  }, 60_000);

  it('count an object a step already removed as removed (404 confirmed by a GET)', async () => {
    const wfId = uid('gone');
    await approvalWorkflow(wfId);
    await gw.deleteWorkflow(wfId);
    const outcome = await teardown({ workflow: undo.workflow(wfId), job: undo.job(uid('never-submitted')) });
    expect(outcome.leftovers).toEqual([]);
    expect(outcome.removed).toHaveLength(2);
  });
});

describe('a stale undo path is left behind, not "already gone"', () => {
  it('a hand-written path to a route that does not exist (the router 404)', async () => {
    const wfId = uid('route');
    await approvalWorkflow(wfId);
    const outcome = await teardown({ workflow: { kind: 'http', method: 'DELETE', path: `/api/v1/workflow/${encodeURIComponent(wfId)}` } });
    expect(outcome.removed).toEqual([]);
    expect(outcome.leftovers).toHaveLength(1);
    expect(outcome.leftovers[0]!.error).toMatch(/answered 404 '404 page not found': the gateway has no such route, so this undo path is stale/);
    expect(await exists(paths.workflow(wfId)), 'the workflow stays').toBe(true);
    await gw.deleteWorkflow(wfId);
  });

  it('an id encoded twice: the route answers "not found", and the GET of the object finds it', async () => {
    const wfId = uid('twice');
    await approvalWorkflow(wfId);
    const stale = { ...undo.workflow(wfId), path: `/api/v1/workflows/${encodeURIComponent(encodeURIComponent(wfId))}` };
    const outcome = await teardown({ workflow: stale });
    expect(outcome.removed).toEqual([]);
    expect(outcome.leftovers).toHaveLength(1);
    expect(outcome.leftovers[0]!.error).toContain(`answered 404, but GET ${paths.workflow(wfId)} still finds the object: the undo path is stale`);
    expect(await exists(paths.workflow(wfId)), 'the workflow stays').toBe(true);
    await gw.deleteWorkflow(wfId);
  });

  it('a DLQ entry or lock path that answers 404 (Cordum answers 204/200 even when there is nothing)', async () => {
    const outcome = await teardown({
      dlq: { ...undo.dlqEntry('x'), path: '/api/v1/dead-letters/x' },
      lock: { ...undo.lock('r', 'o'), path: '/api/v1/lock/release' },
    });
    expect(outcome.removed).toEqual([]);
    expect(outcome.leftovers.map((l) => l.label).sort()).toEqual(['dlq', 'lock']);
  });
});
