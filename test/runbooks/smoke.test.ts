// Runbook `smoke` end to end: the CLI as a child process against its own sandbox. It must pass on a
// healthy sandbox, and each fault must make it exit 1 with the right step failing and a message
// that says what was expected and what the platform did.
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runRunbook } from '../support/run-runbook.js';

afterAll(cleanupRuns);

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
      'Locks and artifacts round trip',
      'Everything it created is gone',
      'Teardown: remove what this run created',
    ]);
    expect(r.summary.steps.every((s) => s.status === 'passed')).toBe(true);
    expect(r.summary.teardown.left_behind).toEqual([]);
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
