// Runbook `dlq-retry` end to end: the CLI as a child process against its own sandbox. It must pass on a
// healthy sandbox, and each fault must make it exit 1 with the right step failing and a message
// that says what was expected and what the platform did.
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runRunbook } from '../support/run-runbook.js';

afterAll(cleanupRuns);

// Concurrent (two at a time): each run starts its own sandbox on free ports.
describe.concurrent('runbook dlq-retry', () => {
  it('passes on a healthy sandbox, reports the stranded retries and leaves nothing behind', async () => {
    const r = await runRunbook('dlq-retry');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary.status).toBe('passed');
    expect(r.summary.steps.map((s) => [s.name, s.status])).toEqual([
      ["Start the runbook's CAP worker", 'passed'],
      ['Inject: a job on an unmapped topic (no_pool_mapping)', 'passed'],
      ['Inject: the worker fails a job with error code runbook_injected', 'passed'],
      ['Inject: a forged failing JobResult for a running job', 'passed'],
      ['Retry each dead-lettered job and prove recovery', 'passed'],
      ['Workflow step retry with backoff', 'passed'],
      // The sandbox runs JetStream with Cordum's consumer names, so this is checked, not skipped.
      ['JetStream consumers show no redelivery loop', 'passed'],
      ['Remove every DLQ entry, job and workflow it created', 'passed'],
      ['Teardown: remove what this run created', 'passed'],
    ]);
    const stranded = r.summary.findings.filter((f) => f.id === 'DLQ-RETRY-STRANDED');
    expect(stranded).toHaveLength(2);
    expect(stranded.every((f) => f.severity === 'warn' && /retry.*dlq_entry.*retry_of_job/.test(f.detail))).toBe(true);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the first injection when the gateway DLQ writer drops packets (dlq-tap-down)', async () => {
    const r = await runRunbook('dlq-retry', { faults: 'dlq-tap-down' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Inject: a job on an unmapped topic (no_pool_mapping)');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/the sys\.job\.dlq packet for \S+ arrived .* but neither GET \/api\/v1\/dlq nor \/api\/v1\/dlq\/page lists it within \d+ ms/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the retry step when retry answers 200 but does nothing (dlq-retry-noop)', async () => {
    const r = await runRunbook('dlq-retry', { faults: 'dlq-retry-noop' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Retry each dead-lettered job and prove recovery');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/answered 200 with job_id \S+-retry-[0-9a-f]{8}, but the original entry is still listed/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the workflow step retry when the retry policy is ignored (step-retry-ignored)', async () => {
    const r = await runRunbook('dlq-retry', { faults: 'step-retry-ignored' });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failedSteps(r);
    expect(first?.name).toBe('Workflow step retry with backoff');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/the run ended 'failed' with step work 'failed' after 1 attempt\(s\).*retry policy was not applied/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);
});
