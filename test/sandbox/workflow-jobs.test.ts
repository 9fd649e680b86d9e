// Job-type steps: dispatch as CAP JobRequests, results applied by the engine service's durable
// consumer, retries with backoff, the reconciler, run-lock NAKs and cancel. The test plays the
// scheduler/worker by publishing JobResult packets on sys.job.result.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JobStatus } from '../../helpers/cap/codec.js';
import { parseRfc3339Ms } from '../../sandbox/workflow/time.js';
import { eventShape, startWorkflowEnv, waitFor, type WorkflowEnv } from './workflow-support.js';

let env: WorkflowEnv;
beforeAll(async () => {
  // A fast reconciler so the synthesis test does not wait 5 s.
  env = await startWorkflowEnv({ scanIntervalMs: 300 });
});
afterAll(async () => {
  await env?.stop();
});
beforeEach(() => env.faults.clear());

const submitted = (jobId: string) =>
  waitFor(
    async () => env.seen('sys.job.submit').find((p) => p.job_request?.job_id === jobId),
    (p) => !!p,
    3000,
    `JobRequest ${jobId} on sys.job.submit`,
  );

describe('job steps', () => {
  it('dispatches a JobRequest with Cordum fields and completes on a SUCCEEDED result', async () => {
    const { workflowId, runId } = await env.startWorkflow(
      {
        work: {
          type: 'worker',
          input: { prompt: 'hello ${input.name}', who: '${input.name}' },
          timeout_sec: 30,
          route_labels: { gpu: 'yes' },
          meta: { capability: 'demo', actor_type: 'service' },
        },
      },
      { name: 'ada' },
    );
    const jobId = `${runId}:work@1`;
    const running = await env.getRun(runId);
    expect(running.status).toBe('running');
    expect(running.steps.work).toMatchObject({ status: 'running', job_id: jobId, attempts: 1 });

    const packet = (await submitted(jobId))!;
    const req = packet.job_request!;
    expect(req.topic).toBe(`job.workflow.${workflowId}`);
    expect(req.priority).toBe(2); // BATCH
    expect(req.context_ptr).toBe(`redis://ctx:${jobId}`);
    expect(req.labels).toEqual({ gpu: 'yes', workflow_id: workflowId, run_id: runId, step_id: 'work' });
    expect(req.env).toMatchObject({ workflow_id: workflowId, run_id: runId, step_id: 'work', tenant_id: 'default', memory_id: `run:${runId}`, context_mode: 'raw' });
    expect(req.env).toHaveProperty('CORDUM_EFFECTIVE_CONFIG');
    expect(req.budget?.deadline_ms).toBe(30_000);
    expect(req.meta).toMatchObject({ capability: 'demo', actor_type: 2, tenant_id: 'default' });
    expect(JSON.parse((await env.redis.get(`ctx:${jobId}`))!)).toEqual({ prompt: 'hello ada', who: 'ada' });

    await env.publishResult({ job_id: jobId, status: JobStatus.SUCCEEDED, result_ptr: `redis://res:${jobId}` });
    const done = await waitFor(() => env.getRun(runId), (r) => r.status === 'succeeded', 3000, 'run succeeded');
    expect(done.steps.work).toMatchObject({ status: 'succeeded', output: `redis://res:${jobId}` });
    expect((await env.timeline(runId)).map(eventShape)).toEqual([
      { type: 'step_dispatched', step_id: 'work', status: 'running' },
      { type: 'run_status', status: 'running' },
      { type: 'step_completed', step_id: 'work', status: 'succeeded' },
      { type: 'run_status', status: 'succeeded' },
    ]);
    const tl = await env.timeline(runId);
    expect(tl[0]).toMatchObject({ job_id: jobId, data: { context_ptr: `redis://ctx:${jobId}` } });
    expect(tl[2]).toMatchObject({ job_id: jobId, result_ptr: `redis://res:${jobId}` });

    // A duplicate result for the finished job changes nothing.
    await env.publishResult({ job_id: jobId, status: JobStatus.FAILED });
    await env.publishResult({ job_id: 'not-a-workflow-job', status: JobStatus.FAILED });
    const marker = await env.startWorkflow({ a: { type: 'approval' } });
    await waitFor(() => env.getRun(marker.runId), (r) => r.status === 'waiting');
    expect((await env.getRun(runId)).status).toBe('succeeded');
  });

  it('retries FAILED attempts with backoff 1 s then 2 s; no step_completed for retried attempts', async () => {
    const { runId } = await env.startWorkflow({
      flaky: { type: 'worker', topic: 'job.default', retry: { max_retries: 2, initial_backoff_sec: 1 } },
    });
    const fail = (n: number) => env.publishResult({ job_id: `${runId}:flaky@${n}`, status: JobStatus.FAILED, error_code: 'chaos', error_message: `boom ${n}` });

    await submitted(`${runId}:flaky@1`);
    await fail(1);
    const pending = await waitFor(() => env.getRun(runId), (r) => r.steps.flaky.status === 'pending', 3000, 'step pending for retry');
    expect(pending.status).toBe('running');
    expect(pending.steps.flaky.attempts).toBe(1);
    expect(pending.steps.flaky.next_attempt_at).toMatch(/Z$/);
    const backoff1 = parseRfc3339Ms(pending.steps.flaky.next_attempt_at) - parseRfc3339Ms(pending.updated_at);
    expect(backoff1).toBeGreaterThan(900);
    expect(backoff1).toBeLessThanOrEqual(1005); // two clocks: Date.now() vs the hrtime-based RFC3339Nano clock

    await submitted(`${runId}:flaky@2`);
    await waitFor(() => env.getRun(runId), (r) => r.steps.flaky.status === 'running' && r.steps.flaky.attempts === 2);
    await fail(2);
    await submitted(`${runId}:flaky@3`);
    await waitFor(() => env.getRun(runId), (r) => r.steps.flaky.status === 'running' && r.steps.flaky.attempts === 3);
    await fail(3);
    const failed = await waitFor(() => env.getRun(runId), (r) => r.status === 'failed', 3000, 'run failed');
    expect(failed.steps.flaky).toMatchObject({ status: 'failed', attempts: 3, error: { message: 'boom 3' } });
    expect(failed.steps.flaky.next_attempt_at).toBeUndefined();

    const tl = await env.timeline(runId);
    expect(tl.map((e) => [e.type, e.job_id ?? e.status])).toEqual([
      ['step_dispatched', `${runId}:flaky@1`],
      ['run_status', 'running'],
      ['step_dispatched', `${runId}:flaky@2`],
      ['step_dispatched', `${runId}:flaky@3`],
      ['step_completed', `${runId}:flaky@3`],
      ['run_status', 'failed'],
    ]);
    expect(tl[4]).toMatchObject({ status: 'failed', message: 'boom 3' });
    // Gaps between dispatches follow the backoff (plus the time the test took to publish the failure).
    const t = tl.filter((e) => e.type === 'step_dispatched').map((e) => parseRfc3339Ms(e.time));
    expect(t[1] - t[0]).toBeGreaterThanOrEqual(1000);
    expect(t[2] - t[1]).toBeGreaterThanOrEqual(2000);
  });

  it('CANCELLED is never retried; TIMEOUT gives timed_out; unknown status fails with `unexpected status`', async () => {
    const retry = { max_retries: 0 };
    const { runId } = await env.startWorkflow({
      c: { type: 'worker', retry: { max_retries: 3 } },
      t: { type: 'worker', retry },
    });
    await env.publishResult({ job_id: `${runId}:c@1`, status: JobStatus.CANCELLED });
    const r1 = await waitFor(() => env.getRun(runId), (r) => r.steps.c.status !== 'running');
    expect(r1.steps.c.status).toBe('cancelled');
    expect(r1.status).toBe('failed');

    const b = await env.startWorkflow({ t: { type: 'worker' } });
    await env.publishResult({ job_id: `${b.runId}:t@1`, status: JobStatus.TIMEOUT });
    expect((await waitFor(() => env.getRun(b.runId), (r) => r.status !== 'running')).status).toBe('timed_out');

    const c = await env.startWorkflow({ u: { type: 'worker' } });
    await env.publishResult({ job_id: `${c.runId}:u@1`, status: JobStatus.RUNNING });
    const r3 = await waitFor(() => env.getRun(c.runId), (r) => r.status !== 'running');
    expect(r3.steps.u.error?.message).toBe('unexpected status: JOB_STATUS_RUNNING');
  });

  it('a result arriving while the run lock is held is NAKed and applied after release', async () => {
    const { runId } = await env.startWorkflow({ work: { type: 'worker' } });
    await env.redis.set(`cordum:wf:run:lock:${runId}`, 'drill', 'PX', 20_000);
    await env.publishResult({ job_id: `${runId}:work@1`, status: JobStatus.SUCCEEDED });
    // The consumer sees it and NAKs: it stays un-acked while the lock is held.
    await waitFor(
      async () => (await env.deps.nc.request('$JS.API.CONSUMER.INFO.CORDUM_SYS.dur_cordum-workflow-engine__sys_job_result')).json<any>(),
      (info) => info.num_redelivered > 0,
      3000,
      'a redelivery of the NAKed result',
    );
    expect((await env.getRun(runId)).status).toBe('running');
    await env.redis.del(`cordum:wf:run:lock:${runId}`);
    await waitFor(() => env.getRun(runId), (r) => r.status === 'succeeded', 3000, 'run succeeded after unlock');
  });

  it('the reconciler synthesises a result for a step job already terminal in the job store', async () => {
    const { runId } = await env.startWorkflow({ slow: { type: 'worker' } });
    const jobId = `${runId}:slow@1`;
    // The scheduler's reconciler timed the job out: state only, no JobResult published.
    await env.redis.hset(`job:meta:${jobId}`, { state: 'TIMEOUT' });
    const run = await waitFor(() => env.getRun(runId), (r) => r.status !== 'running', 4000, 'reconciled run');
    expect(run.status).toBe('timed_out');
    expect(run.steps.slow.status).toBe('timed_out');
  });

  it('a frozen reconciler lock stops reconciliation', async () => {
    await env.redis.set('cordum:workflow-engine:reconciler:default', 'x', 'PX', 1200);
    const { runId } = await env.startWorkflow({ slow: { type: 'worker' } });
    await env.redis.hset(`job:meta:${runId}:slow@1`, { state: 'SUCCEEDED' });
    // Several scan intervals pass without the run moving; then the lock expires and it completes.
    const held = await waitFor(() => env.redis.pttl('cordum:workflow-engine:reconciler:default'), (ttl) => ttl < 400, 3000);
    expect(held).toBeGreaterThan(0);
    expect((await env.getRun(runId)).status).toBe('running');
    await waitFor(() => env.getRun(runId), (r) => r.status === 'succeeded', 5000, 'run reconciled after the freeze');
  });

  it('cancel publishes a JobCancel for running step jobs and ignores their late results', async () => {
    const { workflowId, runId } = await env.startWorkflow({ work: { type: 'worker' } });
    const jobId = `${runId}:work@1`;
    expect((await env.api('POST', `/api/v1/workflows/${workflowId}/runs/${runId}/cancel`)).status).toBe(204);
    const cancel = await waitFor(
      async () => env.seen('sys.job.cancel').find((p) => p.job_cancel?.job_id === jobId),
      (p) => !!p,
      2000,
      'JobCancel',
    );
    expect(cancel!.job_cancel!.job_id).toBe(jobId);
    await env.publishResult({ job_id: jobId, status: JobStatus.SUCCEEDED });
    const marker = await env.startWorkflow({ a: { type: 'approval' } });
    await waitFor(() => env.getRun(marker.runId), (r) => r.status === 'waiting');
    const run = await env.getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.steps.work.status).toBe('cancelled');
  });
});
