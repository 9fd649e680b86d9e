// Runbook `smoke` end to end: the CLI as a child process against its own sandbox. It must pass on a
// healthy sandbox, and each fault must make it exit 1 with the right step failing and a message
// that says what was expected and what the platform did.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '../../helpers/gateway.js';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runRunbook, writeProfile } from '../support/run-runbook.js';

/** For the runs that need a --target profile: with or without Redis, or a topic no pool serves. */
let shared: Sandbox;

beforeAll(async () => {
  shared = await startSandbox();
}, 60_000);

afterAll(async () => {
  cleanupRuns();
  await shared?.stop();
});

/** A --target profile for the shared sandbox; `redis: false` leaves the redis section out. */
function sharedProfile(opts: { redis?: boolean; mappedTopic?: string } = {}) {
  const p = shared.profile;
  const profile = {
    name: 'sandbox-shared',
    gateway: { url: p.gateway.url, api_key_env: SANDBOX_API_KEY_ENV, principal: p.gateway.principal },
    metrics: p.metrics,
    workflow_engine: p.workflow_engine,
    nats: p.nats,
    ...(opts.redis === false ? {} : { redis: p.redis }),
    routing: { ...p.routing, mapped_topic: opts.mappedTopic ?? p.routing.mapped_topic },
    policy: { reload_interval_ms: p.policy.reload_interval_ms },
    destructive: { allowed: false },
  };
  // JSON is YAML: the profile loader reads it as it is.
  return { args: ['--target', writeProfile(JSON.stringify(profile, null, 2) + '\n')], env: { [SANDBOX_API_KEY_ENV]: shared.apiKey } };
}

const RESIDUE_KEY = /^(job:events|job:result_ptr|trace):/;

// Concurrent (two at a time): each run starts its own sandbox on free ports.
describe.concurrent('runbook smoke', () => {
  it('passes on a healthy sandbox and leaves nothing behind', async () => {
    const r = await runRunbook('smoke');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary.status).toBe('passed');
    expect(failedSteps(r)).toEqual([]);
    expect(r.summary.steps.map((s) => s.name)).toEqual([
      'Liveness and readiness',
      'Auth is enforced',
      'Workflow round trip',
      'Jobs',
      'A CAP worker completes a job the safety kernel allowed',
      'Locks and artifacts round trip',
      'Everything it created is gone',
      'Teardown: remove what this run created',
    ]);
    expect(r.summary.steps.every((s) => s.status === 'passed')).toBe(true);
    expect(r.summary.teardown.left_behind).toEqual([]);
    // The kernel's decision on the job it ran is evidence in the report.
    expect(r.summary.findings.find((f) => f.id === 'SMOKE-KERNEL-DECISION')?.detail).toMatch(/under policy snapshot \S+; [1-9]\d* recorded check/);
  }, RUN_TIMEOUT_MS);

  it('fails the CAP worker step when the scheduler dispatches without asking the safety kernel (scheduler-skips-kernel)', async () => {
    const r = await runRunbook('smoke', { faults: 'scheduler-skips-kernel' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('A CAP worker completes a job the safety kernel allowed');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/ran \(SUCCEEDED\) but carries no safety decision: .* the scheduler dispatched it without asking the safety kernel, so policy does not apply to job\.default/);
    // One finding does not hide the others: the steps after it still ran.
    const status = Object.fromEntries(r.summary.steps.map((s) => [s.name, s.status]));
    expect(status['Locks and artifacts round trip']).toBe('passed');
    expect(status['Everything it created is gone']).toBe('passed');
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('a failure in Jobs does not skip the worker, locks, artifacts and leftover checks; the verdict is the first failure', async () => {
    // A topic no pool serves: the scheduler fails the "pending" probe (no_pool_mapping) and the worker's job.
    const { args, env } = sharedProfile({ mappedTopic: 'job.runbook.no-pool' });
    const r = await runRunbook('smoke', { args, env });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((f) => f.name)).toEqual(['Jobs', 'A CAP worker completes a job the safety kernel allowed']);
    expect(failed[0]?.error).toMatch(/expected job \S+ \(labels .*\) to stay PENDING; it is FAILED/);
    const status = Object.fromEntries(r.summary.steps.map((s) => [s.name, s.status]));
    expect(status['Locks and artifacts round trip']).toBe('passed');
    expect(status['Everything it created is gone']).toBe('passed');
    expect(r.summary.teardown.left_behind).toEqual([]);
    expect(r.stdout + r.stderr).not.toMatch(/skipped because 'Jobs' failed/);
  }, RUN_TIMEOUT_MS);

  it('with Redis in the profile, teardown deletes the keys Cordum never expires, for its own jobs only', async () => {
    const gw = new GatewayClient(shared.profile);
    const redis = new Redis(shared.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      // Someone else's job on the same platform: its keys must survive the run's teardown.
      const other = await gw.submitJob({ prompt: 'not the runbook', topic: 'job.default', labels: { owner: 'someone-else' } });
      await gw.cancelJob(other.job_id);
      const { args, env } = sharedProfile();
      const r = await runRunbook('smoke', { args, env });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const residue = r.summary.teardown.removed_by_steps.filter((t) => t.label.startsWith('residue: job '));
      expect(residue).toHaveLength(2);
      const keys = residue.flatMap((t) => t.action.split(' ').slice(1));
      expect(keys.every((k) => RESIDUE_KEY.test(k))).toBe(true);
      expect(keys.filter((k) => k.startsWith('trace:'))).toHaveLength(2);
      expect(await redis.exists(...keys)).toBe(0);
      expect(await redis.exists(`job:events:${other.job_id}`, `trace:${other.trace_id}`)).toBe(2);
      expect(r.summary.findings.some((f) => f.id === 'residue-no-ttl')).toBe(false);
    } finally {
      redis.disconnect();
      await gw.close();
    }
  }, RUN_TIMEOUT_MS);

  it('without Redis in the profile, the summary lists the keys left for good, with a count', async () => {
    const { args, env } = sharedProfile({ redis: false });
    const r = await runRunbook('smoke', { args, env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const f = r.summary.findings.find((x) => x.id === 'residue-no-ttl');
    // Two jobs, three keys each (events, result pointer, trace).
    expect(f?.title).toBe('6 Redis key(s) left for good (no TTL)');
    expect(f?.detail).toMatch(/has no redis section, so teardown could not delete 6 Redis key\(s\) that Cordum never expires/);
    const section = r.summary.sections.map((x) => x.markdown).join('\n');
    expect(section).toMatch(/\*\*Residue\*\* \(smoke\.test\.ts\): 6 Redis key\(s\) with no TTL/);
    expect(section.match(/`job:events:[^`]+`/g)).toHaveLength(2);
    expect(r.summary.teardown.removed_by_steps.some((t) => t.label.startsWith('residue:'))).toBe(false);
  }, RUN_TIMEOUT_MS);

  it('fails Liveness and readiness when the gateway cannot reach Redis (gateway-redis-down)', async () => {
    const r = await runRunbook('smoke', { faults: 'gateway-redis-down' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Liveness and readiness');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/expected \/api\/v1\/status redis\.ok=true; the gateway reports redis\.ok=false/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails Workflow round trip when approvals are accepted but ignored (approval-ignored)', async () => {
    const r = await runRunbook('smoke', { faults: 'approval-ignored' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Workflow round trip');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/run stayed 'waiting' after approve \(204\): expected 'succeeded'/);
    // The run and workflow it created are still removed by teardown.
    expect(r.summary.teardown.left_behind).toEqual([]);
    expect(r.summary.steps.find((s) => s.name.startsWith('Teardown'))?.status).toBe('passed');
  }, RUN_TIMEOUT_MS);

  it('fails Liveness and readiness when the gateway metrics endpoint is gone (metrics-missing)', async () => {
    const r = await runRunbook('smoke', { faults: 'metrics-missing' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Liveness and readiness');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/expected gateway metrics at \S+ to answer 200 with Prometheus text; it answered 404/);
  }, RUN_TIMEOUT_MS);
});
