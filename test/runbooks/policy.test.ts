// Runbook `policy` end to end, as on-call runs it: the CLI as a child process against the sandbox
// the runner starts (with SANDBOX_FAULTS), or, where a profile must add case files, against one
// sandbox this test starts and shares between those runs.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '../../helpers/gateway.js';
import { waitFor } from '../../helpers/waits.js';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, reportText, runCli, runRunbook, writeProfile } from '../support/run-runbook.js';

const ROLLBACK_LABEL = 'policy: roll back the bundle map to the pre-drill snapshot';

/** For the runs whose profile adds a case file (the runner's own sandbox takes no profile). */
let shared: Sandbox;
/** For the Ctrl-C test: published bundles never reach this kernel, so the drill waits in step 5. */
let stuck: Sandbox;

/** A --target profile for the shared sandbox with one extra case file. */
function withCaseFile(name: string, lines: string[]) {
  const profile = writeProfile(
    [
      'name: sandbox',
      'gateway:',
      `  url: ${shared.profile.gateway.url}`,
      `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
      '  principal: { id: policy-tester, role: secops }',
      'policy:',
      `  reload_interval_ms: ${shared.profile.policy.reload_interval_ms}`,
      `  case_files: [./${name}]`,
      'destructive:',
      '  allowed: true',
      '',
    ].join('\n'),
    { [name]: lines.join('\n') + '\n' },
  );
  return { args: ['--target', profile], env: { [SANDBOX_API_KEY_ENV]: shared.apiKey } };
}

/**
 * A --target profile for the stuck sandbox that declares a 10 s reload interval: the drill then
 * waits 25 s (2 x interval + 5 s) for a reload that never comes, so the test's Ctrl-C lands inside
 * that wait however slow the machine is, instead of racing a 7 s window.
 */
function stuckProfile() {
  const profile = writeProfile(
    [
      'name: sandbox',
      'gateway:',
      `  url: ${stuck.profile.gateway.url}`,
      `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
      '  principal: { id: policy-tester, role: secops }',
      'policy:',
      '  reload_interval_ms: 10000',
      'destructive:',
      '  allowed: true',
      '',
    ].join('\n'),
    {},
  );
  return { args: ['--target', profile], env: { [SANDBOX_API_KEY_ENV]: stuck.apiKey } };
}

beforeAll(async () => {
  [shared, stuck] = await Promise.all([startSandbox({ policyReloadMs: 1000 }), startSandbox({ policyReloadMs: 1000, faults: ['policy-reload-stuck'] })]);
}, 60_000);

afterAll(async () => {
  cleanupRuns();
  await Promise.all([shared?.stop(), stuck?.stop()]);
});

describe.concurrent('pnpm runbook policy', () => {
  it('passes on a healthy sandbox, reporting explain and bundle simulate as findings', async () => {
    // The command on-call types: no --target, the runner starts its own sandbox.
    const r = await runRunbook('policy');
    const s = r.summary;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(s.status).toBe('passed');
    expect(s.counts.skipped).toBe(0);
    expect(s.steps.map((st) => st.name)).toContain('Publish the draft and wait for the kernel to load it');
    const ids = s.findings.map((f) => f.id);
    expect(ids).toContain('policy-explain-adds-nothing');
    expect(s.findings.find((f) => f.id === 'policy-bundle-simulate-ignores-file-policy')).toMatchObject({ severity: 'warn' });
    expect(reportText(r, 'artifacts/policy-decisions.md')).toContain('legacy:default:allow:1');
  }, RUN_TIMEOUT_MS);

  it('fails step 2 when explain names another rule than evaluate (policy-explain-wrong-rule)', async () => {
    const r = await runRunbook('policy', { faults: 'policy-explain-wrong-rule' });
    expect(r.code).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((f) => f.name)).toEqual(['Evaluate, simulate and explain agree with every case']);
    expect(failed[0]!.error).toMatch(/policy case\(s\) failed; case 'the default job topic is allowed by the tenant list' \(runbooks\/cases\/stock-policy\.cases\.yaml:\d+\): explain names rule "legacy:default:deny:1", the case expects "legacy:default:allow:1"/);
    expect(failed[0]!.error).toContain('explain disagrees with evaluate on ruleId');
    // One finding does not hide the others: the drill does not need the case table and still ran.
    const status = Object.fromEntries(r.summary.steps.map((s) => [s.name, s.status]));
    expect(status['Publish the draft and wait for the kernel to load it']).toBe('passed');
    expect(status['The policy audit records both actions and the bundles are exactly as before']).toBe('passed');
  }, RUN_TIMEOUT_MS);

  it('fails step 5 when published bundles never reach the kernel, and teardown rolls back (policy-reload-stuck)', async () => {
    const r = await runRunbook('policy', { faults: 'policy-reload-stuck' });
    const s = r.summary;
    expect(r.code).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((f) => f.name)).toEqual(['Publish the draft and wait for the kernel to load it']);
    expect(failed[0]!.error).toMatch(/the safety kernel did not reload the policy in time: timed out after 7000 ms waiting for the safety kernel to load the published bundle/);
    expect(s.steps.find((st) => st.name.startsWith('Teardown'))?.status).toBe('passed');
    const journal = reportText(r, 'teardown-journal.jsonl').trim().split('\n').map((l) => JSON.parse(l));
    expect(journal.find((e) => e.op === 'add' && e.label.startsWith(ROLLBACK_LABEL))?.action).toMatchObject({ method: 'POST', path: '/api/v1/policy/rollback' });
    expect(journal.some((e) => e.op === 'done' && e.label.startsWith(ROLLBACK_LABEL))).toBe(true);
  }, RUN_TIMEOUT_MS);

  it('fails step 2 when a profile case file expects the wrong decision, naming the case file and line', async () => {
    const r = await runRunbook(
      'policy',
      withCaseFile('team.cases.yaml', ['cases:', '  - name: team expects job.default to be denied', '    request: { topic: job.default }', '    expect: { decision: DENY, rule_id: team-deny }']),
    );
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((f) => f.name), r.stdout).toEqual(['Evaluate, simulate and explain agree with every case']);
    expect(failed[0]!.error).toMatch(/^1 of 5 policy case\(s\) failed; case 'team expects job\.default to be denied' \(.*team\.cases\.yaml:2\): evaluate decided DECISION_TYPE_ALLOW, the case expects DECISION_TYPE_DENY/);
  }, RUN_TIMEOUT_MS);

  it('stops with a configuration error (exit 2) naming the file and line of a malformed case file', async () => {
    const { args, env } = withCaseFile('broken.cases.yaml', ['cases:', '  - name: typo', '    request: { topic: job.default }', '    expect: { decison: ALLOW, rule_id: "" }']);
    const r = await runCli(['policy', ...args], { env });
    const text = r.stdout + r.stderr + (r.summary ? JSON.stringify(r.summary.steps) : '');
    expect(text).toMatch(/broken\.cases\.yaml:4: unknown field 'cases\[0\]\.expect\.decison'/);
    expect(r.code).toBe(2);
  }, RUN_TIMEOUT_MS);

  it('rolls back through teardown when interrupted after publishing, and the report says so', async () => {
    let stdout = '';
    let started!: (c: ChildProcess) => void;
    const child = new Promise<ChildProcess>((resolve) => (started = resolve));
    const { args, env } = stuckProfile();
    const run = runRunbook('policy', {
      args,
      env,
      onStart: (c) => {
        c.stdout!.on('data', (d) => (stdout += d));
        started(c);
      },
    });
    let ended = false;
    run.then(
      () => (ended = true),
      () => (ended = true),
    );
    // The run may queue for a slot first; the deadline below counts from its start.
    const runner = await child;
    // The drill's publish is the event to wait for: from then on step 5 waits for a kernel reload
    // this sandbox never does (25 s), so Ctrl-C lands inside the drill by construction.
    const observer = new GatewayClient(stuck.profile, { apiKey: stuck.apiKey });
    try {
      await waitFor(
        'the drill to publish its draft on the stuck sandbox (or the run to end first)',
        async () => ended || ((await observer.policyAudit()).items ?? []).some((e) => e.action === 'publish' && /policy drill publish/.test(e.message ?? '')),
        (seen) => seen,
        { timeoutMs: 90_000, intervalMs: 250 },
      );
    } finally {
      await observer.close();
    }
    expect(ended, `the run ended before the drill published; stdout so far:\n${stdout}`).toBe(false);
    runner.kill('SIGINT');
    const r = await run;
    const s = r.summary;
    expect(r.code, `${JSON.stringify(s.steps)}\n${r.stdout}\n${r.stderr}`).toBe(130);
    expect(s.status).toBe('interrupted');
    expect(s.interrupted_reason).toBe('interrupted by Ctrl-C (SIGINT)');
    expect(s.steps.find((st) => st.name === 'Publish the draft and wait for the kernel to load it')).toMatchObject({ status: 'failed', exit_code: 130, error_code: 'RB_INTERRUPTED' });
    expect(s.teardown.left_behind).toEqual([]);
    const journal = reportText(r, 'teardown-journal.jsonl');
    expect(journal).toMatch(new RegExp(`"op":"done".*"label":"${ROLLBACK_LABEL}`));
    const teardown = s.steps.find((st) => st.name.startsWith('Teardown'));
    expect(teardown?.status).toBe('passed');
  }, RUN_TIMEOUT_MS);
});
