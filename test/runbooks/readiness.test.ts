// Runbook `readiness` end to end: live on the sandbox (passes once a restore drill has been run and
// the functional runbooks have passed, with the sandbox's single-node waiver shown as waived; fails
// without a drill, and without the functional runs), each live fault fails exactly its check, and
// static mode on the project's compliant fixture namespace passes while a broken copy fails.
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const FUNCTIONAL = ['smoke', 'dlq-retry', 'policy', 'audit-trail'];

/** One passed run as a history line holds it (the fields the audit reads, and the runner's neighbours). */
function seedRun(runbook: string, target: string, at: string) {
  return { runbook, target, status: 'passed', exit_code: 0, start: at, end: at, duration_ms: 1000, steps: [] as unknown[] };
}

/**
 * Seed the `sandbox` run history of a reports dir with a passed run of each functional runbook from
 * yesterday. The runbooks themselves have their own end-to-end tests; running them here again would
 * only slow this file down, and the check is about the record they leave: the last test below shows
 * the audit fails without it. The lines are spelled out in the documented file and format
 * (README › Reports: `reports/.history/<target>.runs.jsonl`, one summary per line), not produced by
 * helpers/history.ts, whose reader the audit uses: a writer and reader drifting together would
 * otherwise go unseen. The first test checks this format against a line the runner really wrote.
 */
function seedFunctionalRuns(dir: string, target = 'sandbox'): void {
  const at = new Date(Date.now() - 86_400_000).toISOString();
  const lines = FUNCTIONAL.map((runbook) => JSON.stringify(seedRun(runbook, target, at)));
  mkdirSync(join(dir, '.history'), { recursive: true });
  appendFileSync(join(dir, '.history', `${target}.runs.jsonl`), `${lines.join('\n')}\n`);
}

/**
 * A reports dir whose drill history holds one passed restore drill of the `sandbox` target from
 * yesterday, so a fault run isolates the check its fault breaks (the drill check is covered by the
 * first two tests with a real drill and with none).
 */
async function reportsWithDrill(name: string, functional = true, target = 'sandbox'): Promise<string> {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  const at = new Date(Date.now() - 86_400_000).toISOString();
  writeFileSync(join(dir, '.drills.jsonl'), `${JSON.stringify({ kind: 'restore-drill', target, started_at: at, finished_at: at, status: 'passed' })}\n`);
  if (functional) seedFunctionalRuns(dir, target);
  return dir;
}

describe.concurrent('runbook readiness', () => {
  it('passes live on a healthy sandbox after a restore drill, reporting the single-node waiver as waived', async () => {
    // The honest order: run the drill first (it records itself in the reports dir), then audit.
    const reports = join(scratch, 'drilled');
    mkdirSync(reports, { recursive: true });
    const drill = await runRunbook('backup-restore', { env: { RUNBOOK_REPORTS_DIR: reports } });
    expect(drill.code, drill.stdout + drill.stderr).toBe(0);
    // The functional runs are the line the runner itself just wrote for the drill, once per
    // functional runbook: the audit reads the runner's real format. The hand-written seed of the
    // other tests carries the same fields, so it cannot drift from it unnoticed.
    const history = join(reports, '.history', 'sandbox.runs.jsonl');
    const written = JSON.parse(readFileSync(history, 'utf8').trim().split('\n').at(-1)!);
    expect(written).toMatchObject({ runbook: 'backup-restore', target: 'sandbox', status: 'passed', end: expect.any(String) });
    for (const [field, value] of Object.entries(seedRun('x', 'sandbox', written.end))) expect(typeof written[field], `history field ${field}`).toBe(typeof value);
    appendFileSync(history, FUNCTIONAL.map((runbook) => `${JSON.stringify({ ...written, runbook })}\n`).join(''));
    const r = await runRunbook('readiness', { env: { RUNBOOK_REPORTS_DIR: reports } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(statusOf(r.reportDir!, 'backups.restore-drill')).toBe('pass');
    expect(failedSteps(r)).toEqual([]);
    expect(statusOf(r.reportDir!, 'persistence.streams-replicated')).toBe('waived');
    expect(statusOf(r.reportDir!, 'persistence.redis-live')).toBe('pass');
    expect(statusOf(r.reportDir!, 'persistence.streams-file-backed')).toBe('pass');
    expect(statusOf(r.reportDir!, 'functional.runbooks-passed')).toBe('pass');
  }, RUN_TIMEOUT_MS);

  it('fails backups.restore-drill when no restore drill was ever recorded', async () => {
    const dir = join(scratch, 'never-drilled');
    mkdirSync(dir, { recursive: true });
    seedFunctionalRuns(dir);
    const r = await runRunbook('readiness', { env: { RUNBOOK_REPORTS_DIR: dir } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(failedSteps(r).map((s) => s.name)).toEqual(['Backups and recovery']);
    expect(audit(r.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['backups.restore-drill']);
  }, RUN_TIMEOUT_MS);

  for (const [fault, checks, sections] of [
    ['redis-no-persistence', ['persistence.redis-live'], ['Persistence and state']],
    ['jetstream-memory-storage', ['persistence.streams-file-backed'], ['Persistence and state']],
    ['rate-limit-off', ['limits.rate-limit-live'], ['Limits and policy']],
    ['metrics-missing', ['observability.gateway-scrape'], ['Observability']],
    // 3.6 and 8.3 both demand the default key be refused; the gateway's answer proves both.
    ['default-api-key', ['secrets.managed', 'enterprise.default-key-rejected'], ['Secrets', 'Enterprise gating']],
  ] as const) {
    it(`fails ${checks.join(' and ')} when the sandbox runs with ${fault}`, async () => {
      const r = await runRunbook('readiness', { faults: fault, env: { RUNBOOK_REPORTS_DIR: await reportsWithDrill(fault) } });
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const failed = failedSteps(r);
      expect(failed.map((s) => s.name)).toEqual([...sections]);
      failed.forEach((f, i) => expect(f.error).toContain(checks[i]));
      const fails = audit(r.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id);
      expect(fails).toEqual([...checks]);
    }, RUN_TIMEOUT_MS);
  }

  it('on the TLS sandbox (SANDBOX_TLS=1) Observability, TLS and Secrets pass live; an expiring server certificate fails tls.endpoints', async () => {
    const good = await runRunbook('readiness', { env: { SANDBOX_TLS: '1', RUNBOOK_REPORTS_DIR: await reportsWithDrill('tls-healthy', true, 'sandbox-tls') } });
    expect(good.code, good.stdout + good.stderr).toBe(0);
    expect(failedSteps(good)).toEqual([]);
    for (const id of ['tls.endpoints', 'secrets.managed', 'observability.gateway-scrape', 'observability.scheduler-scrape', 'observability.workflow-health']) expect(statusOf(good.reportDir!, id), id).toBe('pass');

    const bad = await runRunbook('readiness', { faults: 'tls-cert-expiring', env: { SANDBOX_TLS: '1', RUNBOOK_REPORTS_DIR: await reportsWithDrill('tls-expiring', true, 'sandbox-tls') } });
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(failedSteps(bad).map((s) => s.name)).toEqual(['TLS']);
    expect(failedSteps(bad)[0].error).toMatch(/tls\.endpoints failed: .*certificate expires in [45] day/);
    expect(audit(bad.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['tls.endpoints']);
  }, RUN_TIMEOUT_MS * 2);

  it('READINESS_MANIFESTS=<overlay with a file outside its root>: the render error once, the relaxed render audited', async () => {
    const r = await runRunbook('readiness', { env: { READINESS_MANIFESTS: join(ROOT, 'test/fixtures/readiness/overlay-outside-root') } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(failedSteps(r).map((s) => s.name)).toEqual(['Kubernetes hardening']);
    expect(audit(r.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['kubernetes.renders']);
    const md = readFileSync(join(r.reportDir!, 'artifacts', 'readiness.md'), 'utf8');
    expect(md.match(/is not in or below/g)).toHaveLength(1);
    expect(md).toMatch(/judged the render of `kubectl kustomize .*--load-restrictor=LoadRestrictionsNone` instead/);
  }, RUN_TIMEOUT_MS);

  it('fails functional.runbooks-passed when the run history lacks the functional runbooks', async () => {
    const r = await runRunbook('readiness', { env: { RUNBOOK_REPORTS_DIR: await reportsWithDrill('no-functional-runs', false) } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const failed = failedSteps(r);
    expect(failed.map((s) => s.name)).toEqual(['Functional tests']);
    expect(failed[0].error).toContain('pnpm runbook smoke --target sandbox');
    const o = audit(r.reportDir!).results.find((x) => x.id === 'functional.runbooks-passed') as { status: string; message: string } | undefined;
    expect(o?.message).toMatch(/never passed on sandbox: smoke .*dlq-retry .*policy .*audit-trail/);
    expect(audit(r.reportDir!).results.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['functional.runbooks-passed']);
  }, RUN_TIMEOUT_MS);

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
