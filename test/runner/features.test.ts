// Runner integration points, end to end through the CLI: runbook options (front matter `options:`,
// ctx.options, --plan, summary.json), deadlines that depend on the target, ctx.summary sections,
// what the in-worker teardown removed, junit.xml, the run history with --fail-on-new, the webhook
// notification, and subcommand options that share a name with the runner's (bundle --ticket).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles, verifyManifest } from '../../helpers/report/manifest.js';
import { cleanupRuns, runCli, type RunResult } from '../support/run-runbook.js';
import { startFixtureServer, type FixtureServer } from './fixture-server.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PROFILE = 'test/fixtures/targets/local.yaml';
const SECRET = 'rb-test-SECRET-features-51c0de';

let server: FixtureServer;
let tmp: string;

type CliResult = RunResult;

/** The CLI against the fixture runbooks and the loopback fixture gateway (shared runner: test/support). */
function cli(args: string[], env: Record<string, string> = {}, reports = join(tmp, 'reports')): Promise<CliResult> {
  return runCli(args, {
    env: {
      RUNBOOKS_DIR: join(ROOT, 'test/fixtures/runbooks'),
      RUNBOOK_REPORTS_DIR: reports,
      RUNBOOK_STATE_DIR: join(tmp, 'state'),
      FIXTURE_GATEWAY_URL: server.url,
      FIXTURE_API_KEY: SECRET,
      RUNBOOK_WEBHOOK_URL: '',
      ...env,
    },
  });
}

const reportDir = (r: CliResult) => resolve(ROOT, r.stdout.trim().split('\n').at(-1)!, '..');
const summaryOf = (r: CliResult): Record<string, any> => JSON.parse(readFileSync(join(reportDir(r), 'summary.json'), 'utf8'));
const statuses = (s: Record<string, any>) => s.steps.map((st: { name: string; status: string }) => `${st.status} ${st.name}`);

beforeAll(async () => {
  server = await startFixtureServer();
  tmp = mkdtempSync(join(tmpdir(), 'runner-features-'));
});

afterAll(async () => {
  cleanupRuns();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('runbook options', () => {
  it('accepts exactly the declared options: unknown ones and missing values exit 2 in one line', async () => {
    const before = server.log.length;
    const unknown = await cli(['features', '--target', PROFILE, '--confirm', 'cordum']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual(["error: unknown option '--confirm'"]);
    // Another runbook does not accept features' options.
    const elsewhere = await cli(['pass', '--target', PROFILE, '--in-place']);
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr.trim()).toBe("error: unknown option '--in-place'");
    const noValue = await cli(['features', '--target', PROFILE, '--archive']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr.trim()).toBe("error: option '--archive <value>' argument missing");
    expect(server.log.length).toBe(before);
  }, 60_000);

  it('--plan lists the declared options with what was given', async () => {
    const r = await cli(['features', '--target', PROFILE, '--plan', '--archive', '/backups/x']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Options:\n  --in-place: restore into the live namespace instead of scratch servers (not given)\n  --archive <value>: the backup directory to restore from (= "/backups/x")');
    // Deadlines as the run would resolve them for this target (connect_timeout_ms 1000 + 234).
    expect(r.stdout).toContain("A deadline from the target (deadline 1.234 s)");
    expect(r.stdout).toMatch(/A deadline function that returns nonsense \(no usable deadline: step 'A deadline function that returns nonsense': its timeoutMs function returned -1/);
  }, 60_000);
});

describe('a run with options, target deadlines, sections and step teardown', () => {
  let r: CliResult;
  let s: Record<string, any>;
  beforeAll(async () => {
    r = await cli(['features', '--target', PROFILE, '--in-place', '--archive', '/backups/2026-11-27']);
    s = summaryOf(r);
  }, 90_000);

  it('scenarios read ctx.options and summary.json records them', () => {
    expect(r.code, r.stderr).toBe(1); // the deadline steps fail on purpose
    const opts = { 'in-place': true, archive: '/backups/2026-11-27' };
    expect(s.options).toEqual(opts);
    expect(JSON.parse(readFileSync(join(reportDir(r), 'artifacts', 'options.json'), 'utf8'))).toEqual(opts);
  });

  it('a timeoutMs function is resolved against the target; a nonsense value fails only its step', () => {
    expect(statuses(s)).toEqual([
      'passed Options reach the scenario',
      'passed Create a thing and a local marker',
      'passed Add an evidence table to the summary',
      'failed A deadline from the target',
      'failed A deadline function that returns nonsense',
      'passed Teardown: remove what this run created',
    ]);
    expect(s.steps[3].error).toMatch(/did not finish within 1234 ms/);
    expect(s.steps[4].error).toMatch(/timeoutMs function returned -1 for target 'runner-fixture'/);
  });

  it('ctx.summary sections land under the step table, in order, redacted', () => {
    expect(s.sections.map((x: { step: string }) => x.step)).toEqual(['Options reach the scenario', 'Add an evidence table to the summary']);
    const md = readFileSync(join(reportDir(r), 'summary.md'), 'utf8');
    const table = md.indexOf('| 6 | Teardown: remove what this run created |');
    const options = md.indexOf('**Options seen by the scenario:**');
    const evidence = md.indexOf('**Evidence**\n\n| What | Value |\n|---|---|\n| key | *** |\n| rows | 2 |');
    expect(table).toBeGreaterThan(0);
    expect(options).toBeGreaterThan(table);
    expect(evidence).toBeGreaterThan(options);
    expect(listFiles(reportDir(r)).filter((f) => readFileSync(f).includes(SECRET))).toEqual([]);
  });

  it('summary.json and summary.md list what the teardown step removed inside the workers', () => {
    expect(s.teardown.removed_by_steps).toEqual([
      { scenario: 'features.scenario.ts', label: 'fixture: roll back the drill', action: 'local cleanup', ok: true },
      { scenario: 'features.scenario.ts', label: expect.stringMatching(/^thing rb-\w+-thing$/), action: expect.stringMatching(/^DELETE \/api\/v1\/things\/t\d+$/), ok: true },
    ]);
    expect(s.teardown.removed_by_runner).toEqual([]);
    const md = readFileSync(join(reportDir(r), 'summary.md'), 'utf8');
    expect(md).toContain('- removed by the teardown step: fixture: roll back the drill (local cleanup)');
  });

  it('junit.xml has every step, with the failures', () => {
    const xml = readFileSync(join(reportDir(r), 'junit.xml'), 'utf8');
    expect(xml).toMatch(/<testsuites name="runbook features on runner-fixture" tests="6" failures="2" errors="0" skipped="0"/);
    expect(xml).toContain('name="A deadline from the target"');
    expect(xml.match(/<failure /g)).toHaveLength(2);
    expect(verifyManifest(reportDir(r))).toEqual([]);
  });
});

describe('run history, --fail-on-new and the webhook', () => {
  it('--fail-on-new exits 1 only for steps that passed in the previous run of the same runbook and target', async () => {
    const reports = join(tmp, 'history-reports');
    const run = (failing: string, flag = true) => cli(['regress', '--target', PROFILE, ...(flag ? ['--fail-on-new'] : [])], { FIXTURE_FAILING: failing }, reports);

    const first = await run('alpha'); // no baseline: reported, exit 0
    expect(first.code, first.stderr).toBe(0);
    expect(summaryOf(first)).toMatchObject({ status: 'failed', exit_code: 0, fail_on_new: { baseline_run: null, new_failures: [], exit_code_without_flag: 1 } });
    expect(first.stdout).toMatch(/--fail-on-new: no previous run of this runbook on this target/);
    expect(readFileSync(join(reportDir(first), 'summary.md'), 'utf8')).toMatch(/\| --fail-on-new \| no previous run/);

    const second = await run('alpha,beta'); // beta passed in the first run: new
    expect(second.code, second.stderr).toBe(1);
    expect(summaryOf(second)).toMatchObject({
      exit_code: 1,
      fail_on_new: { baseline_run: summaryOf(first).run_id, new_failures: ['Steps the test breaks on purpose › Step beta'] },
    });

    const third = await run('alpha,beta'); // both failed last time: nothing new
    expect(third.code, third.stderr).toBe(0);
    expect(summaryOf(third).fail_on_new).toMatchObject({ baseline_run: summaryOf(second).run_id, new_failures: [] });

    const plain = await run('alpha', false); // without the flag a failure is a failure
    expect(plain.code).toBe(1);
    expect(summaryOf(plain).fail_on_new).toBeUndefined();

    const lines = readFileSync(join(reports, '.history', 'runner-fixture.runs.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).run_id)).toEqual([first, second, third, plain].map((x) => summaryOf(x).run_id));
    expect(readdirSync(join(reports, '.history'))).toEqual(['runner-fixture.runs.jsonl']);
  }, 240_000);

  it('sends one webhook message after the report is written; a failing webhook never changes the exit code', async () => {
    const received: { path: string; body: string }[] = [];
    let answer = 200;
    const hook: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body });
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/services/T000/B000/${'x'.repeat(24)}`;
    try {
      const ok = await cli(['regress', '--target', PROFILE, '--ticket', 'CHG-7'], { FIXTURE_FAILING: 'beta', RUNBOOK_WEBHOOK_URL: url });
      expect(ok.code, ok.stderr).toBe(1);
      expect(received).toHaveLength(1);
      const text = JSON.parse(received[0]!.body).text as string;
      expect(text).toMatch(/^\[FAILED\] runbook regress on runner-fixture, ticket CHG-7/);
      expect(text).toContain('Step beta: step beta was told to fail');
      expect(text).toContain(`Report: ${join(reportDir(ok), 'index.html')}`);
      expect(text).not.toContain(SECRET);
      expect(ok.stderr).toMatch(/^notify: sent \(HTTP 200, 1 attempt\(s\)\)$/m);
      expect(ok.stdout.trim().split('\n').at(-1)).toMatch(/index\.html$/);

      answer = 404; // not retried; reported on stderr, exit code untouched
      const broken = await cli(['regress', '--target', PROFILE], { FIXTURE_FAILING: '', RUNBOOK_WEBHOOK_URL: url });
      expect(broken.code, broken.stderr).toBe(0);
      expect(received).toHaveLength(2);
      expect(broken.stderr).toMatch(/^notify: not sent: webhook at 127\.0\.0\.1:\d+ answered HTTP 404/m);
      expect(broken.stderr).not.toContain('/services/');
    } finally {
      await new Promise<void>((r) => hook.close(() => r()));
    }
  }, 120_000);
});

describe('subcommand options that the runner also has', () => {
  it('`bundle <dir> --ticket X` is the bundle command\'s --ticket', async () => {
    const r = await cli(['pass', '--target', PROFILE, '--ticket', 'CHG-1']);
    expect(r.code, r.stderr).toBe(0);
    const out = join(tmp, 'bundles');
    const b = await cli(['bundle', reportDir(r), '--ticket', 'CHG-99', '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(readdirSync(out)).toEqual([`CHG-99-${summaryOf(r).run_id}.tar.gz`]);
    expect(existsSync(join(out, `CHG-1-${summaryOf(r).run_id}.tar.gz`))).toBe(false);
  }, 90_000);
});
