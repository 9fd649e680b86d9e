// Runbook `audit-trail` end to end: the CLI as a child process against the runner's sandbox, healthy
// and under the faults it must catch; its evidence file must validate against the schema.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, RUN_TIMEOUT_MS, cleanupRuns, failedSteps, reportText, runRunbook } from '../support/run-runbook.js';

const SCHEMA = JSON.parse(readFileSync(join(ROOT, 'helpers/schemas/audit-evidence.schema.json'), 'utf8')) as object;

function validator() {
  return new Ajv({ allErrors: true, strict: false }).compile(SCHEMA);
}

afterAll(cleanupRuns);

describe.concurrent('pnpm runbook audit-trail', () => {
  it('passes on a healthy sandbox and writes evidence that validates against the schema', async () => {
    const r = await runRunbook('audit-trail');
    const s = r.summary;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(s.status).toBe('passed');
    expect(s.counts.skipped).toBe(0);
    // Documented for real Cordum: reported, not silently passed.
    expect(s.findings.find((f) => f.id === 'workflow-approval-no-identity')).toMatchObject({ severity: 'warn' });

    const doc = JSON.parse(reportText(r, 'artifacts/audit-evidence.json'));
    const validate = validator();
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    expect(doc.run_id).toBe(s.run_id);
    expect(doc.workflow_approvals.map((w: any) => [w.outcome, w.run_status, w.approver])).toEqual([
      ['approved', 'succeeded', null],
      ['rejected', 'failed', null],
    ]);
    const [approved, rejected] = doc.job_approvals;
    expect(approved).toMatchObject({ outcome: 'approved', role: 'admin', decision: 'REQUIRE_APPROVAL', dlq: null });
    expect(approved.approver).toMatch(/^rb-.*-approver$/);
    expect(approved.policy_snapshot).toContain('|cfg:');
    expect(rejected).toMatchObject({ outcome: 'rejected', state_after: 'DENIED', dlq: { reason_code: 'approval_rejected' } });
    expect(doc.policy_changes.map((p: any) => p.action)).toEqual(['publish', 'rollback']);
    expect(doc.policy_changes.every((p: any) => p.actor_id === 'runbook-operator')).toBe(true);
    expect(doc.not_covered).toEqual([]);
    const md = reportText(r, 'artifacts/audit-evidence.md');
    expect(md).toContain(approved.job_id);
    expect(md).toContain('none (Cordum records no approver)');

    // The schema is a real check: evidence without an approver or with a bad time does not validate.
    const broken = structuredClone(doc);
    delete broken.job_approvals[0].approver;
    broken.policy_changes[0].created_at = 'yesterday';
    expect(validate(broken)).toBe(false);
    expect(validate.errors!.map((e) => e.instancePath)).toEqual(expect.arrayContaining(['/job_approvals/0', '/policy_changes/0/created_at']));
  }, RUN_TIMEOUT_MS);

  it('fails step 1 when the timeline has no step_approved event (timeline-missing-approval)', async () => {
    const r = await runRunbook('audit-trail', { faults: 'timeline-missing-approval' });
    const s = r.summary;
    expect(r.code).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((f) => f.name)).toEqual(['Approve a workflow approval step and check the run timeline']);
    expect(failed[0]!.error).toMatch(/timeline: expected event 3 of 4, step_approved with step_id="approve", status="succeeded", after \[1\] run_status status="waiting" .*no step_approved event at all/);
    // One finding does not hide the others: job approvals need nothing from workflow approvals.
    const status = Object.fromEntries(s.steps.map((st) => [st.name, st.status]));
    expect(status['Approve a job and check who, when, why and under which policy']).toBe('passed');
    expect(status['Reject a job and check the record and its dead-letter entry']).toBe('passed');
    expect(status['The policy audit lists the publish and the rollback']).toBe('passed');
    expect(JSON.parse(reportText(r, 'artifacts/audit-evidence.json')).job_approvals).toHaveLength(2);
    expect(s.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails step 4 when job approvals record no approver (approval-identity-dropped), and still removes the rule', async () => {
    const r = await runRunbook('audit-trail', { faults: 'approval-identity-dropped' });
    const s = r.summary;
    expect(r.code).toBe(1);
    const failed = failedSteps(r);
    // The reject step does not need the approve step: it runs and finds the same defect.
    expect(failed.map((f) => f.name)).toEqual(['Approve a job and check who, when, why and under which policy', 'Reject a job and check the record and its dead-letter entry']);
    expect(failed[0]!.error).toMatch(/approved: the audit record is incomplete: approval_by is "", expected "rb-.*-approver" \(X-Principal-Id of the approve call\); approval_role is "", expected "admin"/);
    expect(failed[1]!.error).toMatch(/rejected: the audit record is incomplete: approval_by is ""/);
    // The temporary rule is still removed (the rollback step needs only the rule), and the audit checked.
    const status = Object.fromEntries(s.steps.map((st) => [st.name, st.status]));
    expect(status['Remove the temporary rule by rolling back']).toBe('passed');
    expect(status['The policy audit lists the publish and the rollback']).toBe('passed');
    expect(s.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);
});
