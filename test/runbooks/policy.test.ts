// Runbook `policy` end to end, as on-call runs it: the CLI as a child process against the sandbox
// (started by the runner, or by this test when a profile must add case files), with faults.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';

/** Runs queue for a slot (see cli()), so a test's time includes waiting for one. */
const RUN_TIMEOUT_MS = 90_000;
/** CLI runs at once: each is a tsx + Vitest + Allure process, and the machine has 2 shared cores. */
const MAX_PARALLEL_RUNS = 3;
let running = 0;
const queue: (() => void)[] = [];
async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_PARALLEL_RUNS) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    queue.shift()?.();
  }
}

const ROOT = resolve(import.meta.dirname, '../..');
const ROLLBACK_LABEL = 'policy: roll back the bundle map to the pre-drill snapshot';

const API_KEY = 'policy-runbook-test-key-5d2e8a';

let tmp: string;
/** Sandboxes this file starts itself, so runs can use profiles with extra case files or faults. */
const sandboxes: Record<'healthy' | 'explainWrong' | 'stuck' | 'stuckInterrupt', Sandbox> = {} as never;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { env?: Record<string, string>; stateDir?: string; onStart?: (c: ChildProcess) => void } = {}): Promise<CliResult> {
  return slot(() => spawnCli(args, opts));
}

function spawnCli(args: string[], opts: { env?: Record<string, string>; stateDir?: string; onStart?: (c: ChildProcess) => void }): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/runbook.ts', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        CI: 'true',
        RUNBOOK_REPORTS_DIR: join(tmp, 'reports'),
        // Own state dir per run: the runner replays unfinished journals of a target, and concurrent
        // runs would otherwise see each other's in-flight journals.
        RUNBOOK_STATE_DIR: opts.stateDir ?? mkdtempSync(join(tmp, 'state-')),
        SANDBOX_FAULTS: '',
        [SANDBOX_API_KEY_ENV]: API_KEY,
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    opts.onStart?.(child);
  });
}

function reportDir(r: CliResult): string {
  return resolve(ROOT, r.stdout.trim().split('\n').at(-1)!, '..');
}

function summaryOf(r: CliResult): Record<string, any> {
  const file = join(reportDir(r), 'summary.json');
  if (!existsSync(file)) throw new Error(`no summary.json; exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

function failedSteps(s: Record<string, any>): { name: string; error: string }[] {
  return s.steps.filter((st: any) => st.status === 'failed');
}

/** A profile for one of this file's sandboxes, optionally with an extra case file. */
function profileFor(sb: Sandbox, caseFile?: { name: string; text: string }): string {
  const dir = mkdtempSync(join(tmp, 'profile-'));
  if (caseFile) writeFileSync(join(dir, caseFile.name), caseFile.text);
  const file = join(dir, 'sandbox.yaml');
  writeFileSync(
    file,
    [
      'name: sandbox',
      'gateway:',
      `  url: ${sb.profile.gateway.url}`,
      `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
      '  principal: { id: policy-tester, role: secops }',
      'policy:',
      '  reload_interval_ms: 1000',
      ...(caseFile ? [`  case_files: [./${caseFile.name}]`] : []),
      'destructive:',
      '  allowed: true',
      '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'policy-runbook-'));
  const start = (faults: string[]) => startSandbox({ policyReloadMs: 1000, apiKey: API_KEY, faults: faults as never });
  [sandboxes.healthy, sandboxes.explainWrong, sandboxes.stuck, sandboxes.stuckInterrupt] = await Promise.all([
    start([]),
    start(['policy-explain-wrong-rule']),
    start(['policy-reload-stuck']),
    start(['policy-reload-stuck']),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(sandboxes).map((sb) => sb?.stop()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.concurrent('pnpm runbook policy', () => {
  it('passes on a healthy sandbox, reporting explain and bundle simulate as findings', async () => {
    // The command on-call types: no --target, the runner starts its own sandbox.
    const r = await cli(['policy']);
    const s = summaryOf(r);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(s.status).toBe('passed');
    expect(s.counts.skipped).toBe(0);
    expect(s.steps.map((st: any) => st.name)).toContain('Publish the draft and wait for the kernel to load it');
    const ids = s.findings.map((f: any) => f.id);
    expect(ids).toContain('policy-explain-adds-nothing');
    expect(s.findings.find((f: any) => f.id === 'policy-bundle-simulate-ignores-file-policy')).toMatchObject({ severity: 'warn' });
    expect(readFileSync(join(reportDir(r), 'artifacts/policy-decisions.md'), 'utf8')).toContain('legacy:default:allow:1');
  }, RUN_TIMEOUT_MS);

  it('fails step 2 when explain names another rule than evaluate (policy-explain-wrong-rule)', async () => {
    const r = await cli(['policy', '--target', profileFor(sandboxes.explainWrong)]);
    const s = summaryOf(r);
    expect(r.code).toBe(1);
    const failed = failedSteps(s);
    expect(failed.map((f) => f.name)).toEqual(['Evaluate, simulate and explain agree with every case']);
    expect(failed[0]!.error).toMatch(/policy case\(s\) failed; case 'the default job topic is allowed by the tenant list' \(runbooks\/cases\/stock-policy\.cases\.yaml:\d+\): explain names rule "legacy:default:deny:1", the case expects "legacy:default:allow:1"/);
    expect(failed[0]!.error).toContain('explain disagrees with evaluate on ruleId');
  }, RUN_TIMEOUT_MS);

  it('fails step 5 when published bundles never reach the kernel, and teardown rolls back (policy-reload-stuck)', async () => {
    const r = await cli(['policy', '--target', profileFor(sandboxes.stuck)]);
    const s = summaryOf(r);
    expect(r.code).toBe(1);
    const failed = failedSteps(s);
    expect(failed.map((f) => f.name)).toEqual(['Publish the draft and wait for the kernel to load it']);
    expect(failed[0]!.error).toMatch(/the safety kernel did not reload the policy in time: timed out after 7000 ms waiting for the safety kernel to load the published bundle/);
    expect(s.steps.find((st: any) => st.name.startsWith('Teardown')).status).toBe('passed');
    const journal = readFileSync(join(reportDir(r), 'teardown-journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(journal.find((e) => e.op === 'add' && e.label.startsWith(ROLLBACK_LABEL))?.action).toMatchObject({ method: 'POST', path: '/api/v1/policy/rollback' });
    expect(journal.some((e) => e.op === 'done' && e.label.startsWith(ROLLBACK_LABEL))).toBe(true);
  }, RUN_TIMEOUT_MS);

  it('fails step 2 when a profile case file expects the wrong decision, naming the case file and line', async () => {
    const profile = profileFor(sandboxes.healthy, {
      name: 'team.cases.yaml',
      text: ['cases:', '  - name: team expects job.default to be denied', '    request: { topic: job.default }', '    expect: { decision: DENY, rule_id: team-deny }', ''].join('\n'),
    });
    const r = await cli(['policy', '--target', profile]);
    const s = summaryOf(r);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(s);
    expect(failed.map((f) => f.name)).toEqual(['Evaluate, simulate and explain agree with every case']);
    expect(failed[0]!.error).toMatch(/^1 of 5 policy case\(s\) failed; case 'team expects job\.default to be denied' \(.*team\.cases\.yaml:2\): evaluate decided DECISION_TYPE_ALLOW, the case expects DECISION_TYPE_DENY/);
  }, RUN_TIMEOUT_MS);

  it('stops with a configuration error (exit 2) naming the file and line of a malformed case file', async () => {
    const profile = profileFor(sandboxes.healthy, {
      name: 'broken.cases.yaml',
      text: ['cases:', '  - name: typo', '    request: { topic: job.default }', '    expect: { decison: ALLOW, rule_id: "" }', ''].join('\n'),
    });
    const r = await cli(['policy', '--target', profile]);
    const text = r.stdout + r.stderr + (existsSync(join(reportDir(r), 'summary.json')) ? JSON.stringify(summaryOf(r).steps) : '');
    expect(text).toMatch(/broken\.cases\.yaml:4: unknown field 'cases\[0\]\.expect\.decison'/);
    expect(r.code).toBe(2);
  }, RUN_TIMEOUT_MS);

  it('rolls back through teardown when interrupted after publishing, and the report says so', async () => {
    const stateDir = mkdtempSync(join(tmp, 'state-int-'));
    const journals = join(stateDir, 'journals', 'sandbox');
    const published = () =>
      existsSync(journals) &&
      readdirSync(journals).some((f) => {
        const text = readFileSync(join(journals, f), 'utf8');
        return text.includes(ROLLBACK_LABEL) && text.includes('draft');
      });
    const holder: { child?: ChildProcess } = {};
    const run = cli(['policy', '--target', profileFor(sandboxes.stuckInterrupt)], { stateDir, onStart: (c) => (holder.child = c) });
    // The rollback is registered before the draft is stored; once the runner prints step 4 as
    // done, the publish follows and the step waits on the (stuck) kernel reload.
    while (!holder.child) await new Promise((r) => setTimeout(r, 100));
    const child = holder.child;
    const deadline = Date.now() + 45_000;
    let seen = '';
    child.stdout!.on('data', (d) => (seen += d));
    while (!(published() && /✓ Snapshot the bundles/.test(seen))) {
      if (Date.now() > deadline) throw new Error(`the drill never reached the publish step; stdout so far:\n${seen}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    child.kill('SIGINT');
    const r = await run;
    const s = summaryOf(r);
    expect(r.code).toBe(130);
    expect(s.status).toBe('interrupted');
    expect(s.teardown.left_behind).toEqual([]);
    const journal = readFileSync(join(reportDir(r), 'teardown-journal.jsonl'), 'utf8');
    expect(journal).toMatch(new RegExp(`"op":"done".*"label":"${ROLLBACK_LABEL}`));
    const teardown = s.steps.find((st: any) => st.name.startsWith('Teardown'));
    expect(teardown.status).toBe('passed');
  }, RUN_TIMEOUT_MS);
});
