// Every runbook on a lived-in sandbox (SANDBOX_STATE=lived-in: policy bundles, a few hundred earlier
// jobs with approvals, denials and DLQ entries, streams with deleted messages, consumers with acked
// history). A healthy installation that has been used must not make any runbook cry wolf: each one
// passes here as it does on a fresh sandbox (the per-runbook files cover fresh and the faults).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendRunHistory } from '../../helpers/history.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runRunbook } from '../support/run-runbook.js';

const LIVED_IN = { SANDBOX_STATE: 'lived-in' };
const scratch = mkdtempSync(join(tmpdir(), 'lived-in-rb-'));
afterAll(() => {
  cleanupRuns();
  rmSync(scratch, { recursive: true, force: true });
});

/** What a failed run says, for the assertion message. */
function why(r: { stdout: string; stderr: string; summary: { steps: { name: string; status: string; error?: string }[] } }): string {
  const failed = r.summary.steps.filter((s) => s.status === 'failed').map((s) => `${s.name}: ${s.error ?? ''}`);
  return `${failed.join('\n')}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

describe.concurrent('runbooks on a lived-in sandbox', () => {
  for (const name of ['smoke', 'dlq-retry', 'policy', 'audit-trail', 'backup-restore'] as const) {
    it(`${name} passes and leaves nothing behind`, async () => {
      const r = await runRunbook(name, { env: LIVED_IN });
      expect(r.code, why(r)).toBe(0);
      expect(r.summary.status).toBe('passed');
      expect(failedSteps(r)).toEqual([]);
      expect(r.summary.teardown.left_behind).toEqual([]);
    }, RUN_TIMEOUT_MS);
  }

  it('readiness passes live after a restore drill and the functional runbooks', async () => {
    // The history readiness audits (functional runs and a restore drill of the `sandbox` target) is
    // seeded as in test/runbooks/readiness.test.ts; the audit itself runs on a lived-in sandbox.
    const reports = join(scratch, 'readiness');
    mkdirSync(reports, { recursive: true });
    const at = new Date(Date.now() - 86_400_000).toISOString();
    writeFileSync(join(reports, '.drills.jsonl'), `${JSON.stringify({ kind: 'restore-drill', target: 'sandbox', started_at: at, finished_at: at, status: 'passed' })}\n`);
    for (const runbook of ['smoke', 'dlq-retry', 'policy', 'audit-trail']) {
      await appendRunHistory(reports, { runbook, target: 'sandbox', status: 'passed', start: at, end: at, duration_ms: 1000, steps: [] });
    }
    const r = await runRunbook('readiness', { env: { ...LIVED_IN, RUNBOOK_REPORTS_DIR: reports } });
    expect(r.code, why(r)).toBe(0);
    expect(failedSteps(r)).toEqual([]);
  }, RUN_TIMEOUT_MS);
});
