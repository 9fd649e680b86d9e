// In-engine step types (condition, delay, notify), depends_on ordering and condition gates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobStatus } from '../../helpers/cap/codec.js';
import { parseRfc3339Ms } from '../../sandbox/workflow/time.js';
import { eventShape, startWorkflowEnv, waitFor, type WorkflowEnv } from './workflow-support.js';

let env: WorkflowEnv;
beforeAll(async () => {
  env = await startWorkflowEnv();
});
afterAll(async () => {
  await env?.stop();
});

describe('in-engine steps', () => {
  it('condition steps evaluate against the input; gates skip steps whose condition is false', async () => {
    const { runId } = await env.startWorkflow(
      {
        check: { type: 'condition', condition: "input.amount > 100 && input.currency == 'EUR'" },
        big: { type: 'approval', depends_on: ['check'], condition: 'steps.check.output == true' },
        small: { type: 'approval', depends_on: ['check'], condition: '${!steps.check.output}' },
      },
      { amount: 250, currency: 'EUR' },
    );
    const run = await env.getRun(runId);
    expect(run.steps.check).toMatchObject({ status: 'succeeded', output: true });
    expect(run.steps.big.status).toBe('waiting');
    expect(run.steps.small.status).toBe('succeeded'); // skipped
    expect(run.status).toBe('waiting');
    const tl = await env.timeline(runId);
    expect(tl[0]).toMatchObject({ type: 'step_condition_evaluated', step_id: 'check', status: 'succeeded', data: { value: true } });
    expect(tl.map((e) => e.type)).toEqual(['step_condition_evaluated', 'step_waiting', 'run_status']);
  });

  it('a condition that cannot be evaluated fails the step with step_condition_failed', async () => {
    const { runId } = await env.startWorkflow({ bad: { type: 'condition', condition: 'input.x ==' } });
    const run = await env.getRun(runId);
    expect(run.status).toBe('failed');
    expect((await env.timeline(runId)).map(eventShape)[0]).toMatchObject({ type: 'step_condition_failed', step_id: 'bad', status: 'failed' });
  });

  it('notify publishes a SystemAlert on sys.workflow.event with the rendered payload', async () => {
    const { runId } = await env.startWorkflow(
      { tell: { type: 'notify', input: { level: 'WARN', message: 'deploy ${input.service}', code: 'deploy' } } },
      { service: 'api' },
    );
    expect((await env.getRun(runId)).status).toBe('succeeded');
    const alert = await waitFor(
      async () => env.seen('sys.workflow.event').find((p) => p.trace_id === runId),
      (p) => !!p,
      2000,
      'notify alert',
    );
    expect(alert!.alert).toMatchObject({ level: 'WARN', message: 'deploy api', code: 'deploy', component: 'workflow-engine' });
    expect((await env.timeline(runId))[0]).toMatchObject({
      type: 'step_event_emitted',
      step_id: 'tell',
      status: 'succeeded',
      data: { payload: { level: 'WARN', message: 'deploy api', code: 'deploy' } },
    });
  });

  it('delay steps wait delay_sec, then complete via the in-process timer', async () => {
    const { runId } = await env.startWorkflow({ pause: { type: 'delay', delay_sec: 1 }, after: { type: 'approval', depends_on: ['pause'] } });
    const running = await env.getRun(runId);
    expect(running.status).toBe('running');
    expect(running.steps.pause.status).toBe('running');
    const run = await waitFor(() => env.getRun(runId), (r) => r.status === 'waiting', 3000, 'delay to elapse');
    expect(run.steps.pause.status).toBe('succeeded');
    const tl = await env.timeline(runId);
    expect(tl.map(eventShape)).toEqual([
      { type: 'step_delay_started', step_id: 'pause', status: 'running' },
      { type: 'run_status', status: 'running' },
      { type: 'step_delay_completed', step_id: 'pause', status: 'succeeded' },
      { type: 'step_waiting', step_id: 'after', status: 'waiting', message: 'approval requested' },
      { type: 'run_status', status: 'waiting' },
    ]);
    expect(tl[0].data).toEqual({ delay_ms: 1000 });
    expect(parseRfc3339Ms(tl[2].time) - parseRfc3339Ms(tl[0].time)).toBeGreaterThanOrEqual(1000);
  });

  it('an invalid delay_until fails the step with step_delay_failed', async () => {
    const { runId } = await env.startWorkflow({ pause: { type: 'delay', delay_until: 'tomorrow' } });
    expect((await env.getRun(runId)).status).toBe('failed');
    expect((await env.timeline(runId))[0]).toMatchObject({ type: 'step_delay_failed', step_id: 'pause', status: 'failed' });
  });

  it('depends_on orders job steps; a failed dependency blocks its dependents and fails the run', async () => {
    const { runId } = await env.startWorkflow({
      a: { type: 'worker' },
      b: { type: 'worker', depends_on: ['a'], input: { from: '${steps.a.output}' } },
      c: { type: 'worker', depends_on: ['b'] },
    });
    let run = await env.getRun(runId);
    expect(run.steps.a.status).toBe('running');
    expect(run.steps.b.status).toBe('pending');
    await env.publishResult({ job_id: `${runId}:a@1`, status: JobStatus.SUCCEEDED, result_ptr: 'redis://res:a' });
    run = await waitFor(() => env.getRun(runId), (r) => r.steps.b.status === 'running', 3000, 'b dispatched');
    expect(JSON.parse((await env.redis.get(`ctx:${runId}:b@1`))!)).toEqual({ from: 'redis://res:a' });
    await env.publishResult({ job_id: `${runId}:b@1`, status: JobStatus.FAILED, error_message: 'nope' });
    run = await waitFor(() => env.getRun(runId), (r) => r.status === 'failed', 3000, 'run failed');
    expect(run.steps.c.status).toBe('pending');
    // As on a real Cordum (recorded): the run's error stays null, the failed step says why.
    expect(run.error).toBeNull();
    expect(run.steps.b.error?.message).toBeTruthy();
  });
});
