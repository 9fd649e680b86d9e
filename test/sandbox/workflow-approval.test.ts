// Approval-step workflows end to end through the gateway routes (api.md §10.6, §12 recipe 3).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eventShape, startWorkflowEnv, waitFor, type WorkflowEnv } from './workflow-support.js';

const APPROVAL = { approve: { type: 'approval', name: 'Approve' } };

let env: WorkflowEnv;
beforeAll(async () => {
  env = await startWorkflowEnv();
});
afterAll(async () => {
  await env?.stop();
});
beforeEach(() => env.faults.clear());

const approveUrl = (wf: string, run: string, step = 'approve') => `/api/v1/workflows/${wf}/runs/${run}/steps/${step}/approve`;

describe('approval workflow', () => {
  it('round-trips: waiting synchronously, 204 approve, succeeded, exactly the 4 documented events', async () => {
    const created = await env.api('POST', '/api/v1/workflows', { name: 'platform-smoke', org_id: 'default', steps: APPROVAL });
    expect(created.status).toBe(201);
    const wfId = created.json.id;
    const started = await env.api('POST', `/api/v1/workflows/${wfId}/runs`, {});
    expect(started.status).toBe(200);
    const runId = started.json.run_id;
    expect(Object.keys(started.json)).toEqual(['run_id']);

    // The first scheduling pass is synchronous: no polling needed.
    const waiting = await env.getRun(runId);
    expect(waiting.status).toBe('waiting');
    expect(waiting.steps.approve.status).toBe('waiting');
    for (const k of ['id', 'workflow_id', 'org_id', 'team_id', 'input', 'context', 'status', 'started_at', 'completed_at', 'output', 'error', 'steps', 'total_cost', 'triggered_by', 'created_at', 'updated_at']) {
      expect(waiting).toHaveProperty(k);
    }
    expect(waiting.completed_at).toBeNull();

    const ok = await env.api('POST', approveUrl(wfId, runId), { approved: true });
    expect(ok.status).toBe(204);
    expect(ok.text).toBe('');
    // Approve is synchronous too.
    const done = await env.getRun(runId);
    expect(done.status).toBe('succeeded');
    expect(done.steps.approve.status).toBe('succeeded');
    expect(done.completed_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);

    const tl = await env.timeline(runId);
    expect(tl.map(eventShape)).toEqual([
      { type: 'step_waiting', step_id: 'approve', status: 'waiting', message: 'approval requested' },
      { type: 'run_status', status: 'waiting' },
      { type: 'step_approved', step_id: 'approve', status: 'succeeded' },
      { type: 'run_status', status: 'succeeded' },
    ]);
    expect(tl.every((e) => e.run_id === runId && e.workflow_id === wfId)).toBe(true);
    expect(tl[0].time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z$/);
    // ?limit takes the first N events, chronologically.
    const first2 = (await env.api('GET', `/api/v1/workflow-runs/${runId}/timeline?limit=2`)).json;
    expect(first2.map((e: any) => e.type)).toEqual(['step_waiting', 'run_status']);

    // Step is no longer waiting.
    const again = await env.api('POST', approveUrl(wfId, runId), { approved: true });
    expect(again).toMatchObject({ status: 400, text: 'step not waiting\n' });

    // Redis layout (runtime.md §5.3).
    expect(await env.redis.zscore('wf:runs:status:succeeded', runId)).not.toBeNull();
    expect(await env.redis.zscore('wf:runs:status:waiting', runId)).toBeNull();
    expect(await env.redis.sismember('wf:runs:active:default', runId)).toBe(0);
    expect(await env.redis.llen(`wf:run:timeline:${runId}`)).toBe(4);

    // Cleanup: run (and its timeline), then workflow.
    expect((await env.api('DELETE', `/api/v1/workflow-runs/${runId}`)).status).toBe(204);
    expect(await env.redis.exists(`wf:run:timeline:${runId}`)).toBe(0);
    expect(await env.timeline(runId)).toEqual([]);
    expect((await env.api('DELETE', `/api/v1/workflow-runs/${runId}`)).text).toBe('not found\n');
    expect((await env.api('DELETE', `/api/v1/workflows/${wfId}`)).status).toBe(204);
    expect(await env.api('DELETE', `/api/v1/workflows/${wfId}`)).toMatchObject({ status: 404, text: 'not found\n' });
  });

  it('rejection fails the step and the run', async () => {
    const { workflowId, runId } = await env.startWorkflow(APPROVAL);
    expect((await env.api('POST', approveUrl(workflowId, runId), { approved: false })).status).toBe(204);
    const run = await env.getRun(runId);
    expect(run.status).toBe('failed');
    expect(run.steps.approve.status).toBe('failed');
    expect((await env.timeline(runId)).slice(2).map(eventShape)).toEqual([
      { type: 'step_rejected', step_id: 'approve', status: 'failed' },
      { type: 'run_status', status: 'failed' },
    ]);
  });

  it('`{}` and a misspelt field reject; an empty body is 400 `invalid body`', async () => {
    const a = await env.startWorkflow(APPROVAL);
    expect(await env.api('POST', approveUrl(a.workflowId, a.runId), '')).toMatchObject({ status: 400, text: 'invalid body\n' });
    expect((await env.getRun(a.runId)).status).toBe('waiting');
    expect((await env.api('POST', approveUrl(a.workflowId, a.runId), {})).status).toBe(204);
    expect((await env.getRun(a.runId)).status).toBe('failed');

    const b = await env.startWorkflow(APPROVAL);
    // The {id} segment is not checked against the run's workflow.
    expect((await env.api('POST', approveUrl('whatever', b.runId), { approve: true })).status).toBe(204);
    expect((await env.getRun(b.runId)).steps.approve.status).toBe('failed');
  });

  it('unknown run → 400 with the engine error text; unknown step → 400; busy run lock → 409', async () => {
    const bogus = await env.api('POST', approveUrl('x', 'no-such-run'), { approved: true });
    expect(bogus.status).toBe(400);
    expect(bogus.text).toBe('get run: get run no-such-run: redis: nil\n');
    const cancelBogus = await env.api('POST', '/api/v1/workflows/x/runs/no-such-run/cancel');
    expect(cancelBogus.status).toBe(400);

    const { workflowId, runId } = await env.startWorkflow(APPROVAL);
    expect(await env.api('POST', approveUrl(workflowId, runId, 'nope'), { approved: true })).toMatchObject({ status: 400, text: 'step not found\n' });

    await env.redis.set(`cordum:wf:run:lock:${runId}`, 'drill', 'PX', 20_000);
    expect(await env.api('POST', approveUrl(workflowId, runId), { approved: true })).toMatchObject({
      status: 409,
      text: 'workflow run is busy, retry\n',
    });
    expect(await env.api('POST', `/api/v1/workflows/${workflowId}/runs/${runId}/cancel`)).toMatchObject({ status: 409 });
    await env.redis.del(`cordum:wf:run:lock:${runId}`);
    expect((await env.api('POST', approveUrl(workflowId, runId), { approved: true })).status).toBe(204);
    expect((await env.getRun(runId)).status).toBe('succeeded');
  });

  it('cancel marks the run and waiting steps cancelled with a `run cancelled` event', async () => {
    const { workflowId, runId } = await env.startWorkflow({ ...APPROVAL, after: { type: 'approval', depends_on: ['approve'] } });
    const res = await env.api('POST', `/api/v1/workflows/ignored/runs/${runId}/cancel`);
    expect(res.status).toBe(204);
    const run = await env.getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.steps.approve.status).toBe('cancelled');
    expect(run.steps.after.status).toBe('cancelled');
    expect((await env.timeline(runId)).at(-1)).toMatchObject({ type: 'run_status', status: 'cancelled', message: 'run cancelled' });
    expect(await env.api('POST', approveUrl(workflowId, runId), { approved: true })).toMatchObject({ status: 400, text: 'step not waiting\n' });
  });

  it('rerun starts a new waiting run; from_step reuses succeeded dependencies', async () => {
    const steps = { first: { type: 'approval' }, second: { type: 'approval', depends_on: ['first'] } };
    const { workflowId, runId } = await env.startWorkflow(steps, { ticket: 7 });

    const fresh = await env.api('POST', `/api/v1/workflow-runs/${runId}/rerun`, '');
    expect(fresh.status).toBe(200);
    const rerun = await env.getRun(fresh.json.run_id);
    expect(rerun.status).toBe('waiting');
    expect(rerun.input).toEqual({ ticket: 7 });
    expect(rerun.rerun_of).toBe(runId);
    expect(rerun.metadata?.rerun_of).toBe(runId);

    // `first` has not succeeded in the original run yet.
    expect(await env.api('POST', `/api/v1/workflow-runs/${runId}/rerun`, { from_step: 'second' })).toMatchObject({
      status: 400,
      text: 'dependency first not succeeded\n',
    });
    expect((await env.api('POST', `/api/v1/workflows/${workflowId}/runs/${runId}/steps/first/approve`, { approved: true })).status).toBe(204);
    const fromStep = await env.api('POST', `/api/v1/workflow-runs/${runId}/rerun`, { from_step: 'second' });
    expect(fromStep.status).toBe(200);
    const partial = await env.getRun(fromStep.json.run_id);
    expect(partial.steps.first.status).toBe('succeeded');
    expect(partial.steps.second.status).toBe('waiting');
    expect(partial.rerun_step).toBe('second');

    expect(await env.api('POST', `/api/v1/workflow-runs/${runId}/rerun`, { from_step: 'ghost' })).toMatchObject({ status: 400, text: 'step not found\n' });
    expect(await env.api('POST', '/api/v1/workflow-runs/ghost-run/rerun', {})).toMatchObject({ status: 404, text: 'run not found\n' });
  });

  it('the engine service answers `ok` on its health port to any method', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const res = await fetch(env.healthUrl, { method });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('ok');
    }
  });
});
