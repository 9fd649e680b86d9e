// Runbook `readiness` end to end: live on the sandbox (passes, with the sandbox's single-node
// waiver shown as waived), each live fault fails exactly its check, and static mode on the
// project's compliant fixture namespace passes while a broken copy fails.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runRunbook } from '../support/run-runbook.js';

const scratch = mkdtempSync(join(tmpdir(), 'readiness-rb-'));
afterAll(() => {
  cleanupRuns();
  rmSync(scratch, { recursive: true, force: true });
});

function audit(reportDir: string): { results: { id: string; status: string }[] } {
  return JSON.parse(readFileSync(join(reportDir, 'artifacts', 'readiness.json'), 'utf8'));
}

function statusOf(reportDir: string, id: string): string | undefined {
  return audit(reportDir).results.find((r) => r.id === id)?.status;
}

describe.concurrent('runbook readiness', () => {
  it('passes live on a healthy sandbox, reporting the single-node waiver as waived', async () => {
    const r = await runRunbook('readiness');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(failedSteps(r)).toEqual([]);
    expect(statusOf(r.reportDir!, 'persistence.streams-replicated')).toBe('waived');
    expect(statusOf(r.reportDir!, 'persistence.redis-live')).toBe('pass');
    expect(statusOf(r.reportDir!, 'persistence.streams-file-backed')).toBe('pass');
  }, RUN_TIMEOUT_MS);

  for (const [fault, check, section] of [
    ['redis-no-persistence', 'persistence.redis-live', 'Persistence and state'],
    ['jetstream-memory-storage', 'persistence.streams-file-backed', 'Persistence and state'],
    ['rate-limit-off', 'limits.rate-limit-live', 'Limits and policy'],
  ] as const) {
    it(`fails ${check} when the sandbox runs with ${fault}`, async () => {
      const r = await runRunbook('readiness', { faults: fault });
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const failed = failedSteps(r);
      expect(failed.map((s) => s.name)).toEqual([section]);
      expect(failed[0].error).toContain(check);
      const fails = audit(r.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id);
      expect(fails).toEqual([check]);
    }, RUN_TIMEOUT_MS);
  }

  it('audits manifests statically: the compliant namespace passes, a copy without NetworkPolicies fails', async () => {
    const good = await runRunbook('readiness', { env: { READINESS_MANIFESTS: join(ROOT, 'test/fixtures/readiness/compliant') } });
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(audit(good.reportDir!).results.some((x) => x.status === 'pass')).toBe(true);

    const broken = join(scratch, 'broken');
    cpSync(join(ROOT, 'test/fixtures/readiness/compliant'), broken, { recursive: true });
    // Drop every NetworkPolicy: the namespace is then open, which the audit must flag.
    writeFileSync(join(broken, '40-network-policies.yaml'), '');
    const bad = await runRunbook('readiness', { env: { READINESS_MANIFESTS: broken } });
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(failedSteps(bad).map((s) => s.name)).toContain('NetworkPolicies');
  }, RUN_TIMEOUT_MS);
});
