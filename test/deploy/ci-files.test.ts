// The CI examples are data: parse them and check the keys that make them work (schedules, manual
// inputs, the CLI call, artifacts kept on failure, JUnit wired into GitLab, history kept between
// runs, the drill's servers, one Node version). Their shell snippets that install packages are run
// with a stand-in apt-get.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { RUNTIME_STAGE } from './dockerfile.js';
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

// ---------------------------------------------------------------------------------------------
// What the CI examples need beyond the CLI call: the drill's servers, history kept across runs,
// one Node version, an install that a newer pnpm 12 does not refuse.

/** Runs a CI shell snippet with a stand-in apt-get; returns the packages it asked apt-get to install. */
function aptInstallsOf(script: string, runbook: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ci-apt-'));
  try {
    const log = join(dir, 'apt.log');
    writeFileSync(join(dir, 'apt-get'), `#!/bin/sh\necho "$@" >> '${log}'\n`, { mode: 0o755 });
    const r = spawnSync('sh', ['-ec', script], { env: { PATH: `${dir}:/usr/bin:/bin`, RUNBOOK: runbook }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
    return lines.filter((l) => /(^|\s)install(\s|$)/.test(l)).flatMap((l) => l.split(/\s+/).filter((a) => a !== 'install' && !a.startsWith('-')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const nodeMajor = (image: string) => Number(/^node:(\d+)\./.exec(image)?.[1]);

describe('GitHub Actions: drill servers, run history, Node version', () => {
  const wf = load('.github/workflows/runbooks-nightly.yml');
  const job = wf.jobs.runbook;
  const steps: Array<{ name?: string; run?: string; uses?: string; if?: string; with?: Record<string, string> }> = job.steps;
  const at = (pred: (s: (typeof steps)[number]) => boolean) => steps.findIndex(pred);
  const runStep = at((s) => s.name === 'Run the runbook');

  it('installs redis-server and nats-server for backup-restore (its scratch restore), and only then', () => {
    const sys = at((s) => !!s.run && /apt-get install/.test(s.run));
    expect(sys).toBeGreaterThanOrEqual(0);
    expect(sys).toBeLessThan(runStep);
    expect(aptInstallsOf(steps[sys]!.run!, 'backup-restore')).toEqual(expect.arrayContaining(['redis-server', 'nats-server']));
    expect(aptInstallsOf(steps[sys]!.run!, 'smoke')).not.toContain('redis-server');
  });

  it('restores reports/.history and the drill record before the run and saves them after it, even on failure', () => {
    const restore = at((s) => !!s.uses?.startsWith('actions/cache/restore@'));
    const save = at((s) => !!s.uses?.startsWith('actions/cache/save@'));
    expect(restore).toBeGreaterThanOrEqual(0);
    expect(restore).toBeLessThan(runStep);
    expect(save).toBeGreaterThan(runStep);
    expect(steps[save]!.if).toBe('always()');
    const paths = (s: (typeof steps)[number]) => s.with!.path!.trim().split('\n').map((p) => p.trim());
    for (const s of [steps[restore]!, steps[save]!]) expect(paths(s)).toEqual(expect.arrayContaining(['reports/.history', 'reports/.drills.jsonl']));
    // Each save is a new entry (cache keys are immutable); the restore takes the newest for the target.
    const key = steps[save]!.with!.key!;
    expect(steps[restore]!.with!.key).toBe(key);
    for (const part of ['github.run_id', 'github.run_attempt', 'matrix.runbook', 'inputs.target']) expect(key).toContain(part);
    const prefix = steps[restore]!.with!['restore-keys']!.trim();
    expect(key.startsWith(prefix)).toBe(true);
    expect(prefix).toContain('inputs.target');
    // History from one target never feeds another: jobs of a target run one at a time.
    expect(job.strategy['max-parallel']).toBe(1);
    expect(wf.concurrency.group).toContain('inputs.target');
  });

  it('runs on the image base (one Node version everywhere: .nvmrc, Dockerfile, GitLab; >= engines)', () => {
    const nvmrc = Number(readFileSync(join(REPO, '.nvmrc'), 'utf8').trim().replace(/^v/, '').split('.')[0]);
    const dockerBase = RUNTIME_STAGE[0]!.args.split(/\s+/)[0]!;
    expect(job.container).toBe(dockerBase);
    expect(load('deploy/ci/gitlab-ci.yml')['.runbook'].image).toBe(dockerBase);
    expect(nodeMajor(dockerBase)).toBe(nvmrc);
    expect(steps.some((s) => s.uses?.startsWith('actions/setup-node@'))).toBe(false);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    const min = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node)!;
    expect(nvmrc).toBeGreaterThanOrEqual(Number(min[1]));
    // The README states the same minimum and names the version the image and CI use.
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    expect(readme).toContain(`Node ${pkg.engines.node.replace('>=', '>= ')}`);
    expect(readme).toMatch(new RegExp(`Node ${nvmrc} LTS`));
  });
});

describe('GitLab CI: drill servers, run history, pnpm', () => {
  const ci = load('deploy/ci/gitlab-ci.yml');
  const template = ci['.runbook'];
  const script = template.before_script.join('\n');

  it('installs redis-server and nats-server for backup-restore only', () => {
    const aptStep = template.before_script.find((l: string) => /apt-get install/.test(l));
    expect(aptInstallsOf(aptStep, 'backup-restore')).toEqual(expect.arrayContaining(['redis-server', 'nats-server']));
    expect(aptInstallsOf(aptStep, 'smoke')).toEqual([]);
  });

  it('keeps reports/.history and the drill record in a per-target cache saved even when a run fails', () => {
    expect(template.cache.key).toContain('$RUNBOOK_TARGET');
    expect(template.cache.paths).toEqual(expect.arrayContaining(['reports/.history/', 'reports/.drills.jsonl']));
    expect(template.cache.when).toBe('always');
    expect(template.resource_group).toContain('$RUNBOOK_TARGET');
  });

  it('installs the pnpm that package.json pins', () => {
    const pinned = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).packageManager;
    expect(script).toContain(`npm install --global ${pinned}`);
  });
});

describe('pnpm-workspace.yaml', () => {
  it('lets a newer pnpm 12 install with a warning instead of refusing the pinned one (pmOnFail)', () => {
    // pnpm 12.23 otherwise stops with ERR_PNPM_PNPM_ENGINE_IDENTITY_MISMATCH when the registry has
    // no signature for the pinned release; proven by hand with pnpm 12.23.0 on a clean clone.
    expect(load('pnpm-workspace.yaml').pmOnFail).toBe('warn');
  });
});
