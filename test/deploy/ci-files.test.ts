// The CI examples are data: parse them and check the keys that make them work (schedules, manual
// inputs, the CLI call, artifacts kept on failure, JUnit wired into GitLab).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { REPO } from './k8s-fixture.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (path: string): any => parse(readFileSync(join(REPO, path), 'utf8'));
const RUNBOOKS = ['smoke', 'dlq-retry', 'policy', 'audit-trail', 'readiness', 'backup-restore'];

describe('GitHub Actions: .github/workflows/runbooks-nightly.yml', () => {
  const wf = load('.github/workflows/runbooks-nightly.yml');
  const job = wf.jobs.runbook;
  const steps: Array<{ name?: string; run?: string; uses?: string; if?: string; with?: Record<string, unknown> }> = job.steps;

  it('runs nightly and on demand with runbook and target inputs', () => {
    expect(wf.on.schedule.map((s: { cron: string }) => s.cron)).toContain('17 2 * * *');
    const inputs = wf.on.workflow_dispatch.inputs;
    expect(inputs.runbook.options).toEqual(RUNBOOKS);
    expect(inputs.target.type).toBe('string');
    expect(wf.permissions).toEqual({ contents: 'read' });
  });

  it('sets up pnpm and calls the runbook CLI with the chosen runbook and target', () => {
    expect(steps.some((s) => s.uses?.startsWith('pnpm/action-setup@'))).toBe(true);
    expect(steps.some((s) => s.run === 'pnpm install --frozen-lockfile')).toBe(true);
    const run = steps.find((s) => s.name === 'Run the runbook')!.run!;
    expect(run).toContain('pnpm runbook "$RUNBOOK" "$@"');
    expect(run).toContain('--target "$RUNBOOK_TARGET"');
    // Inputs reach the shell as env vars, not as ${{ }} spliced into the script.
    expect(run).not.toContain('${{');
    expect(job.env.RUNBOOK).toBe('${{ matrix.runbook }}');
    expect(job.env.RUNBOOK_TARGET).toContain('inputs.target');
    expect(job.env.CORDUM_API_KEY).toBe('${{ secrets.CORDUM_API_KEY }}');
    expect(job.strategy.matrix.runbook).toContain('inputs.runbook');
  });

  it('always uploads reports/ and writes summary.md to the job summary', () => {
    const upload = steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))!;
    expect(upload.if).toBe('always()');
    expect(upload.with?.path).toBe('reports/');
    const summary = steps.find((s) => s.run?.includes('$GITHUB_STEP_SUMMARY'))!;
    expect(summary.if).toBe('always()');
    expect(summary.run).toContain('summary.md');
  });
});

describe('GitLab CI: deploy/ci/gitlab-ci.yml', () => {
  const ci = load('deploy/ci/gitlab-ci.yml');
  const template = ci['.runbook'];

  it('runs on schedules (nightly group, weekly drill) and manually', () => {
    expect(ci['runbooks:nightly'].rules[0].if).toContain('$CI_PIPELINE_SOURCE == "schedule"');
    expect(ci['runbooks:nightly'].parallel.matrix[0].RUNBOOK).toEqual(['smoke', 'dlq-retry', 'policy', 'audit-trail', 'readiness']);
    expect(ci['runbooks:weekly-drill'].variables.RUNBOOK).toBe('backup-restore');
    expect(ci['runbooks:manual'].rules[0].if).toContain('"web"');
    for (const job of ['runbooks:nightly', 'runbooks:weekly-drill', 'runbooks:manual']) expect(ci[job].extends).toBe('.runbook');
  });

  it('calls the same CLI and keeps artifacts, with JUnit wired into GitLab, even on failure', () => {
    expect(template.image).toMatch(/^node:\d+\.\d+\.\d+-[a-z]+-slim$/);
    expect(template.before_script).toContain('pnpm install --frozen-lockfile');
    expect(template.script.join('\n')).toContain('pnpm runbook "$RUNBOOK" "$@"');
    expect(template.script.join('\n')).toContain('--target "$RUNBOOK_TARGET"');
    expect(template.artifacts.when).toBe('always');
    expect(template.artifacts.paths).toEqual(['reports/']);
    expect(template.artifacts.reports.junit).toBe('reports/*/junit.xml');
  });
});
