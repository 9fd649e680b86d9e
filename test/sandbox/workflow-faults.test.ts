// The workflow engine's three faults, each showing the regression a runbook must detect.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JobStatus } from '../../helpers/cap/codec.js';
import { eventShape, startWorkflowEnv, waitFor, type WorkflowEnv } from './workflow-support.js';

const APPROVAL = { approve: { type: 'approval' } };

let env: WorkflowEnv;
beforeAll(async () => {
  env = await startWorkflowEnv();
});
afterAll(async () => {
  await env?.stop();
});
beforeEach(() => env.faults.clear());

const approve = (wf: string, run: string) => env.api('POST', `/api/v1/workflows/${wf}/runs/${run}/steps/approve/approve`, { approved: true });

describe('workflow faults', () => {
  it('approval-ignored: approve answers 204 but the run stays waiting', async () => {
    env.faults.enable('approval-ignored');
    const { workflowId, runId } = await env.startWorkflow(APPROVAL);
    expect((await approve(workflowId, runId)).status).toBe(204);
    const run = await env.getRun(runId);
    expect(run.status).toBe('waiting');
    expect(run.steps.approve.status).toBe('waiting');
    expect((await env.timeline(runId)).map((e) => e.type)).toEqual(['step_waiting', 'run_status']);
    // Validation still happens: the fault only drops the effect.
    expect((await env.api('POST', `/api/v1/workflows/${workflowId}/runs/ghost/steps/approve/approve`, { approved: true })).status).toBe(400);
    env.faults.clear();
    expect((await approve(workflowId, runId)).status).toBe(204);
    expect((await env.getRun(runId)).status).toBe('succeeded');
  });

  it('timeline-missing-approval: the run succeeds but no step_approved event is written', async () => {
    env.faults.enable('timeline-missing-approval');
    const { workflowId, runId } = await env.startWorkflow(APPROVAL);
    expect((await approve(workflowId, runId)).status).toBe(204);
    expect((await env.getRun(runId)).status).toBe('succeeded');
    expect((await env.timeline(runId)).map(eventShape)).toEqual([
      { type: 'step_waiting', step_id: 'approve', status: 'waiting', message: 'approval requested' },
      { type: 'run_status', status: 'waiting' },
      { type: 'run_status', status: 'succeeded' },
    ]);
  });

  it('step-retry-ignored: the first failure fails the step despite max_retries', async () => {
    env.faults.enable('step-retry-ignored');
    const { runId } = await env.startWorkflow({ flaky: { type: 'worker', retry: { max_retries: 2, initial_backoff_sec: 1 } } });
    await env.publishResult({ job_id: `${runId}:flaky@1`, status: JobStatus.FAILED, error_message: 'boom' });
    const run = await waitFor(() => env.getRun(runId), (r) => r.status !== 'running', 3000, 'run to settle');
    expect(run.status).toBe('failed');
    expect(run.steps.flaky).toMatchObject({ status: 'failed', attempts: 1 });
    expect(run.steps.flaky.next_attempt_at).toBeUndefined();
    expect(env.seen('sys.job.submit').some((p) => p.job_request?.job_id === `${runId}:flaky@2`)).toBe(false);
    expect((await env.timeline(runId)).map((e) => e.type)).toEqual(['step_dispatched', 'run_status', 'step_completed', 'run_status']);
  });
});
