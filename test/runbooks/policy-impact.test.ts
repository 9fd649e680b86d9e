// Runbook `policy-impact` end to end, as a reviewer runs it: the CLI as a child process against a
// sandbox holding 300 varied decided jobs (seeded through the API by test/support/seed-jobs.ts),
// and against the runner's own sandbox with the fault that makes bundle simulation ignore drafts.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, reportText, runCli, runRunbook, writeProfile, type RunResult } from '../support/run-runbook.js';
import { SEED_BUNDLE_ID, seedBundle, seedLivedInJobs, type SeededJobs } from '../support/seed-jobs.js';

let sb: Sandbox;
let seeded: SeededJobs;

beforeAll(async () => {
  // A limiter above what two concurrent replays use (2 x 200/s), so runs do not throttle each other.
  sb = await startSandbox({ policyReloadMs: 1000, env: { API_RATE_LIMIT_RPS: '1000', API_RATE_LIMIT_BURST: '1000' } });
  seeded = await seedLivedInJobs(sb);
}, 180_000);

afterAll(async () => {
  cleanupRuns();
  await sb?.stop();
});

/** A --target profile for the seeded sandbox, a draft file next to it, and the run's arguments. */
function impactRun(draft: string, extra: { args?: string[]; profile?: string[] } = {}) {
  const profile = writeProfile(
    [
      'name: lived-in',
      'gateway:',
      `  url: ${sb.profile.gateway.url}`,
      `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
      '  rate_limit: { rps: 200, burst: 1000 }',
      'redis:',
      `  url: ${sb.redisUrl}`,
      'policy_impact:',
      '  rate_share: 1',
      ...(extra.profile ?? []),
      '',
    ].join('\n'),
    { 'draft.yaml': draft },
  );
  const draftFile = join(profile, '..', 'draft.yaml');
  return { args: ['--target', profile, '--draft', draftFile, ...(extra.args ?? [])], env: { [SANDBOX_API_KEY_ENV]: sb.apiKey } };
}

const DENY_MAIL = ['rules:', '  - id: impact-deny-mail', '    decision: deny', '    reason: no more mail', '    match: { topics: ["job.mail.*"] }', ''].join('\n');

function impactJson(r: RunResult) {
  return JSON.parse(reportText(r, 'artifacts/policy-impact.json')) as {
    summary: { jobs: number; flipped: number; byKind: Record<string, { count: number; examples: string[] }>; byTopic: { topic: string; kind: string; count: number }[]; byRule: { rule: string; kind: string; count: number }[] };
    pace: { requests: number; retried_429: number };
  };
}

/** Every file of a report, read as text (the payload marker must be in none of them). */
function allReportText(dir: string): string {
  let text = '';
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    text += statSync(p).isDirectory() ? allReportText(p) : readFileSync(p, 'latin1');
  }
  return text;
}

describe.concurrent('pnpm runbook policy-impact', () => {
  it('a draft denying one topic reports exactly that topic\'s jobs as ALLOW→DENY, and never a payload', async () => {
    const r = await runRunbook('policy-impact', impactRun(DENY_MAIL));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const j = impactJson(r);
    const mail = seeded.idsOf('job.mail.send');
    expect(j.summary.jobs).toBe(seeded.topics.size);
    expect(j.summary.flipped).toBe(mail.length);
    expect(Object.keys(j.summary.byKind)).toEqual(['allow_to_deny']);
    expect(j.summary.byTopic).toEqual([expect.objectContaining({ topic: 'job.mail.send', kind: 'allow_to_deny', count: mail.length })]);
    expect(j.summary.byRule).toEqual([expect.objectContaining({ rule: 'impact-deny-mail', count: mail.length })]);
    expect(r.summary.findings.find((f) => f.id === 'policy-impact-allow-to-deny')).toMatchObject({ severity: 'info' });
    expect(reportText(r, 'summary.md')).toMatch(/\| ALLOW→DENY \| `job\.mail\.send` \| 20 \|/);
    expect(allReportText(r.reportDir!)).not.toContain(seeded.payloadMarker);
  }, RUN_TIMEOUT_MS);

  it('fails when ALLOW→DENY exceeds the profile\'s share, listing every flipped job', async () => {
    const r = await runRunbook('policy-impact', impactRun(DENY_MAIL, { profile: ['  max_allow_to_deny_share: 0'] }));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(failedSteps(r).map((s) => s.name)).toEqual(["Judge the flips by the profile's rules"]);
    const listed = reportText(r, 'artifacts/policy-impact-forbidden-jobs.tsv').trim().split('\n').slice(1).map((l) => l.split('\t')[0]).sort();
    expect(listed).toEqual(seeded.idsOf('job.mail.send'));
  }, RUN_TIMEOUT_MS);

  it('fails on REQUIRE_HUMAN→ALLOW when a draft loosens the require-approval rule of the bundle it replaces', async () => {
    const r = await runRunbook('policy-impact', impactRun(seedBundle({ paymentsDecision: 'allow' }), { args: ['--bundle-id', SEED_BUNDLE_ID] }));
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((s) => s.name)).toEqual(["Judge the flips by the profile's rules"]);
    const payments = seeded.idsOf('job.payments.refund');
    expect(failed[0]!.error).toMatch(new RegExp(`the draft makes ${payments.length} forbidden decision flip\\(s\\): ${payments.length} REQUIRE_HUMAN→ALLOW`));
    const j = impactJson(r);
    expect(j.summary.flipped).toBe(payments.length);
    expect(j.summary.byTopic).toEqual([expect.objectContaining({ topic: 'job.payments.refund', kind: 'require_human_to_allow' })]);
  }, RUN_TIMEOUT_MS);

  it('an empty draft reports no flips', async () => {
    const r = await runRunbook('policy-impact', impactRun('rules: []\n', { args: ['--jobs', '250'] }));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const j = impactJson(r);
    expect(j.summary.jobs).toBe(250);
    expect(j.summary.flipped).toBe(0);
    expect(reportText(r, 'summary.md')).toContain('No decision flips.');
  }, RUN_TIMEOUT_MS);

  it('catches bundle simulation that ignores the draft with its canary (policy-simulate-ignores-draft)', async () => {
    const r = await runRunbook('policy-impact', { faults: 'policy-simulate-ignores-draft', args: ['--draft', 'runbooks/cases/impact-example.draft.yaml'] });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((s) => s.name)).toEqual(['Prove that bundle simulation applies the draft (canary)']);
    expect(failed[0]!.error).toMatch(/bundle simulation did not apply the content it was sent/);
    expect(r.summary.steps.find((s) => s.name === 'Replay each job without and with the draft')?.status).toBe('skipped');
  }, RUN_TIMEOUT_MS);

  it('bad input: a missing or invalid draft file is one line and exit 2', async () => {
    const missing = impactRun(DENY_MAIL);
    missing.args[missing.args.indexOf('--draft') + 1] = '/nonexistent/draft.yaml';
    const invalid = impactRun('rules:\n  - id: typo\n    decision: deni\n');
    const noDraft = impactRun(DENY_MAIL);
    noDraft.args.splice(noDraft.args.indexOf('--draft'), 2);
    const [a, b, c] = await Promise.all([runCli(['policy-impact', ...missing.args], missing), runCli(['policy-impact', ...invalid.args], invalid), runCli(['policy-impact', ...noDraft.args], noDraft)]);
    for (const r of [a, b, c]) {
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /);
    }
    expect(failedSteps({ summary: a.summary! })[0]!.error).toMatch(/^(\w+Error: )?--draft \/nonexistent\/draft\.yaml: .*(does not exist|no such file)/i);
    expect(failedSteps({ summary: b.summary! })[0]!.error).toMatch(/^(\w+Error: )?--draft .*draft\.yaml: rules\[0\]\.decision: expected allow, deny, .* got "deni"$/);
    expect(failedSteps({ summary: c.summary! })[0]!.error).toMatch(/^(\w+Error: )?--draft <bundle\.yaml> is required/);
    for (const r of [a, b, c]) expect(failedSteps({ summary: r.summary! })[0]!.error!.split('\n')).toHaveLength(1);
  }, RUN_TIMEOUT_MS);
});
