// Workflows, runs, approval steps and the run timeline. Only approval steps are used: they are
// handled inside the engine and need no worker.
import { describe, expect, it } from 'vitest';
import { retryOn409, waitFor } from '../../helpers/waits.js';
import { isRecentSeconds, RFC3339, UUID, uniq, useContract } from './support.js';

const fx = useContract();

const LOWER_STATUSES = ['pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out'];

/** Create a one-step approval workflow (cleaned up) and return its id. */
async function approvalWorkflow(): Promise<string> {
  const id = uniq('ct-wf');
  const res = await fx.gw.request<{ id: string }>('POST', '/api/v1/workflows', {
    body: { id, name: 'contract approval', steps: { approve: { type: 'approval', name: 'Approve' } } },
    expect: 201,
  });
  fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflows/${id}`, { expect: [204, 404] }));
  expect(res.json).toEqual({ id });
  return id;
}

async function startRun(wfId: string, body: unknown = {}): Promise<string> {
  const res = await fx.gw.request<{ run_id: string }>('POST', `/api/v1/workflows/${wfId}/runs`, { body, expect: 200 });
  const runId = res.json!.run_id;
  fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${runId}`, { expect: [204, 404] }));
  return runId;
}

function approve(wfId: string, runId: string, body: unknown, stepId = 'approve') {
  return retryOn409(() =>
    fx.gw.request('POST', `/api/v1/workflows/${wfId}/runs/${runId}/steps/${stepId}/approve`, { body, expect: [204, 400] }),
  );
}

describe('workflow definitions', () => {
  it('create workflow answers 201 {id}', async () => {
    await approvalWorkflow();
  });

  it('create workflow without an id generates a UUID', async () => {
    const res = await fx.gw.request<{ id: string }>('POST', '/api/v1/workflows', { body: { name: 'contract generated id', steps: {} }, expect: 201 });
    const id = res.json!.id;
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflows/${id}`, { expect: [204, 404] }));
    expect(id).toMatch(UUID);
  });

  it('steps given as an array answer 400 invalid json', async () => {
    const res = await fx.gw.request('POST', '/api/v1/workflows', { body: { id: uniq('ct-wf'), steps: [{ type: 'approval' }] }, expect: [201, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid json\n');
  });

  it('GET workflow returns steps keyed by step id and RFC3339 timestamps', async () => {
    const id = await approvalWorkflow();
    const wf = await fx.gw.getWorkflow(id);
    expect(wf.id).toBe(id);
    expect(Object.keys(wf.steps)).toEqual(['approve']);
    expect(wf.steps.approve.type).toBe('approval');
    expect(wf.created_at).toMatch(RFC3339);
    expect(wf.updated_at).toMatch(RFC3339);
  });

  it('DELETE workflow answers 204, then GET and DELETE answer 404 not found', async () => {
    const id = await approvalWorkflow();
    expect((await fx.gw.request('DELETE', `/api/v1/workflows/${id}`, { expect: 204 })).text).toBe('');
    expect((await fx.gw.request('GET', `/api/v1/workflows/${id}`, { expect: 404 })).text).toBe('not found\n');
    expect((await fx.gw.request('DELETE', `/api/v1/workflows/${id}`, { expect: 404 })).text).toBe('not found\n');
  });

  it('upsert keeps scalar fields left empty but replaces steps wholesale; omitting steps leaves none', async () => {
    const id = await approvalWorkflow();
    await fx.gw.request('POST', '/api/v1/workflows', { body: { id, description: 'second write' }, expect: 201 });
    const wf = await fx.gw.getWorkflow(id);
    expect(wf.name).toBe('contract approval');
    expect(wf.description).toBe('second write');
    expect(Object.keys(wf.steps ?? {})).toEqual([]);
  });

  it('run input is validated against the workflow input_schema: 400 input schema validation failed', async () => {
    const id = uniq('ct-wf');
    await fx.gw.request('POST', '/api/v1/workflows', {
      body: { id, input_schema: { type: 'object', required: ['ct_needed'] }, steps: { approve: { type: 'approval' } } },
      expect: 201,
    });
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflows/${id}`, { expect: [204, 404] }));
    const res = await fx.gw.request('POST', `/api/v1/workflows/${id}/runs`, { body: {}, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toMatch(/^input schema validation failed/);
  });

  it('GET /api/v1/workflows answers a bare array', async () => {
    const res = await fx.gw.request('GET', '/api/v1/workflows', { expect: 200 });
    expect(Array.isArray(res.json)).toBe(true);
  });

  it('starting a run of an unknown workflow answers 404 workflow not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/workflows/${uniq('ct-wf')}/runs`, { body: {}, expect: 404 });
    expect(res.text).toBe('workflow not found\n');
  });

  it('runs of an unknown workflow answer 200 []', async () => {
    const res = await fx.gw.request('GET', `/api/v1/workflows/${uniq('ct-wf')}/runs`, { expect: 200 });
    expect(res.json).toEqual([]);
  });
});

describe('runs', () => {
  it('start run answers 200 {run_id} and the body is the run input', async () => {
    const wf = await approvalWorkflow();
    const res = await fx.gw.request<Record<string, string>>('POST', `/api/v1/workflows/${wf}/runs`, { body: { ct_input: 'x', n: 2 }, expect: 200 });
    const runId = res.json!.run_id;
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${runId}`, { expect: [204, 404] }));
    expect(Object.keys(res.json!)).toEqual(['run_id']);
    expect(runId).toMatch(UUID);
    const run = await fx.gw.getRun(runId);
    expect(run.input).toEqual({ ct_input: 'x', n: 2 });
  });

  it('an empty start-run body means input {}', async () => {
    const wf = await approvalWorkflow();
    const res = await fx.gw.request<{ run_id: string }>('POST', `/api/v1/workflows/${wf}/runs`, { expect: 200 });
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${res.json!.run_id}`, { expect: [204, 404] }));
    expect((await fx.gw.getRun(res.json!.run_id)).input).toEqual({});
  });

  it('a non-object start-run body answers 400 invalid json', async () => {
    const wf = await approvalWorkflow();
    const res = await fx.gw.request('POST', `/api/v1/workflows/${wf}/runs`, { body: '[1,2]', expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid json\n');
  });

  it('an approval-first run is already waiting when start returns, with the step waiting', async () => {
    const wf = await approvalWorkflow();
    const run = await fx.gw.getRun(await startRun(wf));
    expect(run.status).toBe('waiting');
    expect(run.steps.approve.status).toBe('waiting');
    expect(run.workflow_id).toBe(wf);
  });

  it('run records carry lower-case statuses and RFC3339 timestamps', async () => {
    const wf = await approvalWorkflow();
    const run = await fx.gw.getRun(await startRun(wf));
    expect(LOWER_STATUSES).toContain(run.status);
    for (const s of Object.values(run.steps)) expect(LOWER_STATUSES).toContain(s.status);
    expect(run.created_at).toMatch(RFC3339);
    expect(run.updated_at).toMatch(RFC3339);
    expect(run.started_at === null || RFC3339.test(run.started_at)).toBe(true);
    expect(run.completed_at).toBeNull();
    for (const k of ['id', 'workflow_id', 'org_id', 'team_id', 'input', 'context', 'status', 'started_at', 'completed_at', 'output', 'error', 'steps', 'total_cost', 'triggered_by', 'created_at', 'updated_at']) {
      expect(run, `key ${k}`).toHaveProperty(k);
    }
  });

  it('reusing an Idempotency-Key header answers the first run_id', async () => {
    const wf = await approvalWorkflow();
    const key = uniq();
    const first = await fx.gw.startRun(wf, {}, { idempotencyKey: key });
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${first.run_id}`, { expect: [204, 404] }));
    const again = await fx.gw.startRun(wf, {}, { idempotencyKey: key });
    expect(again.run_id).toBe(first.run_id);
  });

  it('the run idempotency key is global across workflows', async () => {
    const wfA = await approvalWorkflow();
    const wfB = await approvalWorkflow();
    const key = uniq();
    const first = await fx.gw.startRun(wfA, {}, { idempotencyKey: key });
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${first.run_id}`, { expect: [204, 404] }));
    const other = await fx.gw.startRun(wfB, {}, { idempotencyKey: key });
    expect(other.run_id).toBe(first.run_id);
  });

  it('GET of an unknown run answers 404 not found', async () => {
    const res = await fx.gw.request('GET', `/api/v1/workflow-runs/${uniq()}`, { expect: 404 });
    expect(res.text).toBe('not found\n');
  });

  it('DELETE run answers 204, then GET answers 404 not found', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    expect((await fx.gw.request('DELETE', `/api/v1/workflow-runs/${runId}`, { expect: 204 })).text).toBe('');
    expect((await fx.gw.request('GET', `/api/v1/workflow-runs/${runId}`, { expect: 404 })).text).toBe('not found\n');
  });

  it('DELETE of an unknown run answers 404 not found', async () => {
    const res = await fx.gw.request('DELETE', `/api/v1/workflow-runs/${uniq()}`, { expect: 404 });
    expect(res.text).toBe('not found\n');
  });

  it('the runs list answers {items, next_cursor} with next_cursor in unix seconds', async () => {
    const wf = await approvalWorkflow();
    await startRun(wf);
    const page = await fx.gw.listRuns({ limit: 1 });
    expect(Object.keys(page).sort()).toEqual(['items', 'next_cursor']);
    expect(page.items).toHaveLength(1);
    expect(isRecentSeconds(page.next_cursor)).toBe(true);
    expect(page.next_cursor).toBe(Math.floor(Date.parse(page.items![0].updated_at) / 1000) - 1);
  });

  it('rerun answers 200 with a new run_id that starts from scratch with the same input', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf, { ct: 'rerun' });
    const res = await fx.gw.request<{ run_id: string }>('POST', `/api/v1/workflow-runs/${runId}/rerun`, { body: {}, expect: 200 });
    const newId = res.json!.run_id;
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflow-runs/${newId}`, { expect: [204, 404] }));
    expect(newId).not.toBe(runId);
    const run = await fx.gw.getRun(newId);
    expect(run.status).toBe('waiting');
    expect(run.input).toEqual({ ct: 'rerun' });
  });

  it('rerun of an unknown run answers 404 run not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/workflow-runs/${uniq()}/rerun`, { body: {}, expect: 404 });
    expect(res.text).toBe('run not found\n');
  });

  it('cancel of an unknown run answers 400 (not 404)', async () => {
    const res = await fx.gw.request('POST', `/api/v1/workflows/${uniq('ct-wf')}/runs/${uniq()}/cancel`, { expect: [204, 400, 404] });
    expect(res.status).toBe(400);
  });

  it('run cancel answers 204 and marks the run and its waiting step cancelled', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    await retryOn409(() => fx.gw.request('POST', `/api/v1/workflows/${wf}/runs/${runId}/cancel`, { expect: 204 }));
    const run = await fx.gw.getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.steps.approve.status).toBe('cancelled');
  });
});

describe('job steps without a worker', () => {
  it('a worker step defaults to topic job.workflow.<id>, is unmapped, and fails its run', async () => {
    const wf = uniq('ct-wf');
    await fx.gw.request('POST', '/api/v1/workflows', { body: { id: wf, steps: { work: { type: 'worker' } } }, expect: 201 });
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/workflows/${wf}`, { expect: [204, 404] }));
    const runId = await startRun(wf);
    const jobId = `${runId}:work@1`;
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/dlq/${encodeURIComponent(jobId)}`, { expect: 204 }));
    // Failure reaches the run through the result tap or, at the latest, the workflow reconciler (every 5 s).
    const run = await waitFor('run failed', () => fx.gw.getRun(runId), (r) => r.status === 'failed', { timeoutMs: 12_000, intervalMs: 200 });
    expect(run.steps.work.status).toBe('failed');
    expect(run.steps.work.job_id).toBe(jobId);
    const job = await fx.gw.getJob(jobId);
    expect(job.topic).toBe(`job.workflow.${wf}`);
    expect(job.state).toBe('FAILED');
    const events = await fx.gw.timeline(runId);
    expect(events.map((e) => [e.type, e.status])).toEqual([
      ['step_dispatched', 'running'],
      ['run_status', 'running'],
      ['step_completed', 'failed'],
      ['run_status', 'failed'],
    ]);
    expect(events[0].data).toMatchObject({ context_ptr: `redis://ctx:${jobId}` });
  });
});

describe('approval steps and timeline', () => {
  it('approve with {"approved": true} answers 204 and the run succeeds', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    const res = await approve(wf, runId, { approved: true });
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    const run = await waitFor('run succeeded', () => fx.gw.getRun(runId), (r) => r.status === 'succeeded', { timeoutMs: 5000, intervalMs: 100 });
    expect(run.steps.approve.status).toBe('succeeded');
    expect(run.completed_at).toMatch(RFC3339);
  });

  it('approve with {} rejects the step and fails the run', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    const res = await approve(wf, runId, {});
    expect(res.status).toBe(204);
    const run = await fx.gw.getRun(runId);
    expect(run.steps.approve.status).toBe('failed');
    expect(run.status).toBe('failed');
  });

  it('approve with an empty body answers 400 invalid body', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    const res = await approve(wf, runId, '');
    expect(res.status).toBe(400);
    expect(res.text).toBe('invalid body\n');
    expect((await fx.gw.getRun(runId)).status).toBe('waiting');
  });

  it('approve on an unknown run answers 400 (not 404)', async () => {
    const wf = await approvalWorkflow();
    const res = await approve(wf, uniq(), { approved: true });
    expect(res.status).toBe(400);
  });

  it('approve of a step that is no longer waiting answers 400 step not waiting', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    await approve(wf, runId, { approved: true });
    const res = await approve(wf, runId, { approved: true });
    expect(res.status).toBe(400);
    expect(res.text).toBe('step not waiting\n');
  });

  it('the {id} segment of the approve URL is not checked against the run', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    const res = await approve(uniq('ct-other-wf'), runId, { approved: true });
    expect(res.status).toBe(204);
    expect((await fx.gw.getRun(runId)).status).toBe('succeeded');
  });

  it('the timeline of an approved run is step_waiting, run_status waiting, step_approved, run_status succeeded', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    await approve(wf, runId, { approved: true });
    const events = await waitFor('four timeline events', () => fx.gw.timeline(runId), (e) => e.length >= 4, { timeoutMs: 5000, intervalMs: 100 });
    expect(events.map((e) => [e.type, e.step_id ?? '', e.status])).toEqual([
      ['step_waiting', 'approve', 'waiting'],
      ['run_status', '', 'waiting'],
      ['step_approved', 'approve', 'succeeded'],
      ['run_status', '', 'succeeded'],
    ]);
    expect(events[0].message).toBe('approval requested');
    for (const e of events) expect(e.time).toMatch(RFC3339);
  });

  it('the timeline of a rejected run ends step_rejected failed, run_status failed', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    await approve(wf, runId, { approved: false });
    const events = await fx.gw.timeline(runId);
    expect(events.slice(-2).map((e) => [e.type, e.status])).toEqual([
      ['step_rejected', 'failed'],
      ['run_status', 'failed'],
    ]);
  });

  it('the timeline has no run_started event', async () => {
    const wf = await approvalWorkflow();
    const events = await fx.gw.timeline(await startRun(wf));
    expect(events.map((e) => e.type)).not.toContain('run_started');
  });

  it('the timeline of an unknown run answers 200 []', async () => {
    const res = await fx.gw.request('GET', `/api/v1/workflow-runs/${uniq()}/timeline`, { expect: 200 });
    expect(res.json).toEqual([]);
  });

  it('deleting a run also deletes its timeline', async () => {
    const wf = await approvalWorkflow();
    const runId = await startRun(wf);
    await fx.gw.request('DELETE', `/api/v1/workflow-runs/${runId}`, { expect: 204 });
    const res = await fx.gw.request('GET', `/api/v1/workflow-runs/${runId}/timeline`, { expect: 200 });
    expect(res.json).toEqual([]);
  });
});
