// The runner end to end, as an on-call engineer uses it: the CLI as a child process against a
// loopback stand-in gateway, fixture runbooks (test/fixtures/runbooks) and a fixture profile.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles, verifyManifest } from '../../helpers/report/manifest.js';
import { cleanupRuns, runCli, type RunResult } from '../support/run-runbook.js';
import { startFixtureServer, type FixtureServer } from './fixture-server.js';
import { holdClosedPort } from '../support/closed-port.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PROFILE = 'test/fixtures/targets/local.yaml';
const SECRET = 'rb-test-SECRET-7f3a9c21e5';

let server: FixtureServer;
let tmp: string;

type CliResult = RunResult;

/** The CLI against the fixture runbooks and the loopback fixture gateway (shared runner: test/support). */
function cli(args: string[], opts: { env?: Record<string, string>; onStart?: (child: ChildProcess) => void } = {}): Promise<CliResult> {
  return runCli(args, {
    env: {
      RUNBOOKS_DIR: join(ROOT, 'test/fixtures/runbooks'),
      RUNBOOK_REPORTS_DIR: join(tmp, 'reports'),
      RUNBOOK_STATE_DIR: join(tmp, 'state'),
      FIXTURE_GATEWAY_URL: server.url,
      FIXTURE_API_KEY: SECRET,
      ...opts.env,
    },
    onStart: opts.onStart,
  });
}

/** The report directory is the last line printed. */
function reportDir(r: CliResult): string {
  const last = r.stdout.trim().split('\n').at(-1)!;
  return resolve(ROOT, last, '..');
}

function summaryOf(r: CliResult): Record<string, any> {
  return JSON.parse(readFileSync(join(reportDir(r), 'summary.json'), 'utf8'));
}

async function until(what: string, check: () => boolean, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  server = await startFixtureServer();
  tmp = mkdtempSync(join(tmpdir(), 'runner-test-'));
});

afterAll(async () => {
  cleanupRuns();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('pnpm runbook', () => {
  it('lists every runbook with summary, tags and destructive flag', async () => {
    const r = await cli(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^pass\s+Creates a thing, checks it, removes it \[fixture, smoke\]$/m);
    expect(r.stdout).toMatch(/^fail\s+/m);
    expect(r.stdout).toMatch(/^hang\s+/m);
  });

  it('exits 2 with one line naming the known runbooks for an unknown name', async () => {
    const r = await cli(['nope']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["runbook: unknown runbook 'nope'; known runbooks: fail, features, hang, pass, regress"]);
  });

  it('exits 2 naming the field for a malformed profile', async () => {
    const r = await cli(['pass', '--target', 'test/fixtures/targets/malformed.yaml']);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('connect_timeout_ms');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 naming the file and field for malformed runbook front matter', async () => {
    const r = await cli(['list'], { env: { RUNBOOKS_DIR: join(ROOT, 'test/fixtures/runbooks/invalid') } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^runbook: .*broken\.md: field 'destructive' must be true or false/);
  });

  it('exits 3 in one line when the gateway cannot be reached, before creating anything', async () => {
    // Refuses connections, and no other process can be given this port meanwhile.
    const closed = await holdClosedPort();
    // Its own reports dir: "no report written" must not depend on which tests ran before.
    const reports = join(tmp, 'reports-unreachable');
    const r = await cli(['pass', '--target', PROFILE], { env: { FIXTURE_GATEWAY_URL: closed.url, RUNBOOK_REPORTS_DIR: reports } }).finally(() => closed.release());
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`unreachable.*127\\.0\\.0\\.1:${closed.port}`));
    expect(existsSync(reports) ? readdirSync(reports).filter((d) => !d.startsWith('.')) : []).toEqual([]);
  });

  it('--plan prints steps, target, creates and destructive, and runs nothing', async () => {
    const before = server.log.length;
    const r = await cli(['pass', '--target', PROFILE, '--plan']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Target: runner-fixture (${server.url})`);
    expect(r.stdout).toContain('Destructive: no');
    expect(r.stdout).toContain('- a thing named <prefix>-thing');
    expect(r.stdout).toMatch(
      /1\. Gateway is healthy \(deadline 1 min\)\n\s+2\. Create a thing \(deadline 5 s\)\n\s+3\. The thing can be read back \(deadline 1 min\)\n\s+4\. Teardown: remove what this run created \(deadline 2 min\)/,
    );
    expect(server.log.length).toBe(before);
  });

  it('a passing run writes every report file, a valid manifest, no analytics and no secret', async () => {
    const r = await cli(['pass', '--target', PROFILE, '--ticket', 'CHG-42']);
    expect(r.code, r.stderr).toBe(0);
    const dir = reportDir(r);
    for (const f of ['index.html', 'summary.json', 'summary.md', 'junit.xml', 'manifest.sha256', 'allure-results']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(verifyManifest(dir)).toEqual([]);
    const s = summaryOf(r);
    expect(s).toMatchObject({ runbook: 'pass', target: 'runner-fixture', ticket: 'CHG-42', status: 'passed', exit_code: 0 });
    expect(s.counts).toEqual({ total: 4, passed: 4, failed: 0, skipped: 0 });
    expect(s.findings.map((f: { id: string }) => f.id)).toEqual(['FX-1']);
    expect(readFileSync(join(dir, 'summary.md'), 'utf8')).toContain('| FX-1 | info |');
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).not.toMatch(/googletagmanager|gtag\(/);
    expect(readFileSync(join(dir, 'allure-results', 'environment.properties'), 'utf8')).toMatch(/platform_version=fixture-1\.2\.3/);
    // One history file per target: the run summary with Allure's trend point.
    expect(readdirSync(join(dir, '..', '.history'))).toEqual(['runner-fixture.runs.jsonl']);
    const last = JSON.parse(readFileSync(join(dir, '..', '.history', 'runner-fixture.runs.jsonl'), 'utf8').trim().split('\n').at(-1)!);
    expect(last).toMatchObject({ run_id: s.run_id, runbook: 'pass', status: 'passed' });
    expect(last.allure_history).toMatchObject({ uuid: expect.any(String) });
    // The scenario attached the key as evidence and wrote it into an artifact: none may survive.
    expect(server.keys).toContain(SECRET);
    const hits = listFiles(dir).filter((f) => readFileSync(f).includes(SECRET));
    expect(hits).toEqual([]);
    expect(server.log).toContain('DELETE /api/v1/things/t1');
  }, 60_000);

  it('a failing step exits 1, skips the later steps and still tears down', async () => {
    const deletesBefore = server.log.filter((l) => l.startsWith('DELETE')).length;
    const r = await cli(['fail', '--target', PROFILE]);
    expect(r.code, r.stderr).toBe(1);
    const s = summaryOf(r);
    expect(s.status).toBe('failed');
    expect(s.steps.map((st: { name: string; status: string }) => `${st.status} ${st.name}`)).toEqual([
      'passed Create a thing',
      'failed The thing is blue',
      'skipped Never reached',
      'passed Needs only the thing',
      'skipped Needs the skipped step',
      'passed Independent',
      'passed Teardown: remove what this run created',
    ]);
    expect(s.steps[1].error).toMatch(/expected 'red' to be 'blue'/);
    expect(s.steps[2].skip_reason).toBe("skipped because 'The thing is blue' failed");
    // Skipped for the failure at its root, through the step it needs.
    expect(s.steps[4].skip_reason).toBe("skipped because 'The thing is blue' failed");
    expect(server.log.filter((l) => l.startsWith('DELETE')).length).toBe(deletesBefore + 1);

    // --only-failed reruns that report's failed scenario files.
    const again = await cli(['fail', '--target', PROFILE, '--only-failed', reportDir(r)]);
    expect(again.code).toBe(1);
    expect(summaryOf(again).only_failed_from).toBe(reportDir(r));
  }, 90_000);

  it('Ctrl-C during a step tears down, exits 130 and reports the run as interrupted', async () => {
    const deletesBefore = server.log.filter((l) => l.startsWith('DELETE')).length;
    const slowBefore = server.log.filter((l) => l === 'GET /api/v1/slow').length;
    let child: ChildProcess | undefined;
    const run = cli(['hang', '--target', PROFILE], { onStart: (c) => (child = c) });
    await until('the slow step to start', () => server.log.filter((l) => l === 'GET /api/v1/slow').length > slowBefore);
    child!.kill('SIGINT');
    const r = await run;
    expect(r.code, r.stderr).toBe(130);
    const s = summaryOf(r);
    expect(s.status).toBe('interrupted');
    expect(s.interrupted_reason).toMatch(/SIGINT/);
    const byName = Object.fromEntries(s.steps.map((st: { name: string; status: string }) => [st.name, st.status]));
    expect(byName).toMatchObject({
      'Create a thing': 'passed',
      'Wait for the slow endpoint': 'failed',
      'After the wait': 'skipped',
      'Teardown: remove what this run created': 'passed',
    });
    expect(server.log.filter((l) => l.startsWith('DELETE')).length).toBe(deletesBefore + 1);
    expect(verifyManifest(reportDir(r))).toEqual([]);
  }, 60_000);
});
