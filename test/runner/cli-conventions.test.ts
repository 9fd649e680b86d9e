// Command-line conventions, through the CLI as a child process: --version, `-o json` for `list` and
// `--plan`, --quiet and --verbose, shell completion, "did you mean" for a mistyped runbook, errors
// on stderr (verify-bundle), and the README's promise about the last line under pnpm.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupRuns, runCli, type RunResult } from '../support/run-runbook.js';
import { startFixtureServer, type FixtureServer } from './fixture-server.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PROFILE = 'test/fixtures/targets/local.yaml';
const SECRET = 'rb-test-SECRET-5c1e9a7d3b';

let server: FixtureServer;
let tmp: string;

const env = () => ({
  RUNBOOKS_DIR: join(ROOT, 'test/fixtures/runbooks'),
  RUNBOOK_REPORTS_DIR: join(tmp, 'reports'),
  RUNBOOK_STATE_DIR: join(tmp, 'state'),
  FIXTURE_GATEWAY_URL: server.url,
  FIXTURE_API_KEY: SECRET,
});
const cli = (args: string[], extra: Record<string, string> = {}): Promise<RunResult> => runCli(args, { env: { ...env(), ...extra } });

beforeAll(async () => {
  server = await startFixtureServer();
  tmp = mkdtempSync(join(tmpdir(), 'cli-conventions-'));
});
afterAll(async () => {
  cleanupRuns();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('runbook --version', () => {
  it('prints the package version and the commit, exit 0', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^cordum-runbooks \d+\.\d+\.\d+ \(([0-9a-f]{12}|unknown)\)\n$/);
    expect(r.stderr).toBe('');
  });
});

describe('-o json', () => {
  it('list -o json: every runbook with the fields a script needs', async () => {
    const r = await cli(['list', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; destructive: boolean; needs: string[]; time_budget_s: number; page: string }[];
    expect(rows.map((x) => x.name)).toEqual(['fail', 'features', 'hang', 'pass', 'regress']);
    expect(rows[0]).toMatchObject({ name: 'fail', destructive: false, needs: ['gateway'], title: 'Fixture with a failing step' });
    expect(rows[0]!.page).toMatch(/test\/fixtures\/runbooks\/fail\.md$/);
  });

  it('--plan -o json: the target, what it creates and every step, nothing run', async () => {
    const before = server.log.length;
    const r = await cli(['fail', '--plan', '-o', 'json', '--target', PROFILE]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan).toMatchObject({
      runbook: 'fail',
      target: { sandbox: false, name: 'runner-fixture', gateway: server.url },
      destructive: false,
      creates: ['a thing'],
      scenarios: [{ title: 'A failing check', file: 'test/fixtures/scenarios/fail/thing.scenario.ts', steps: ['Create a thing', 'The thing is blue', 'Never reached', 'Needs only the thing', 'Needs the skipped step', 'Independent', 'Teardown: remove what this run created'].map((name) => ({ name, deadline_ms: expect.any(Number) })) }],
    });
    expect(server.log.length).toBe(before);
  });

  it('-o json on a run (not --plan) and an unknown format: exit 2, one line', async () => {
    const run = await cli(['fail', '-o', 'json', '--target', PROFILE]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/-o json applies to `list` and `--plan`/)]);
    const bad = await cli(['list', '-o', 'yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/yaml/);
  });
});

describe('did you mean', () => {
  it('a mistyped runbook gets the closest name in the one-line error, exit 2', async () => {
    const r = await cli(['fial']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["runbook: unknown runbook 'fial' (did you mean 'fail'?); known runbooks: fail, features, hang, pass, regress"]);
    const far = await cli(['nope']);
    expect(far.stderr).not.toMatch(/did you mean/);
  });
});

describe('--quiet and --verbose', () => {
  it('--quiet: only the failed step, the verdict and the report path', async () => {
    const r = await cli(['fail', '--target', PROFILE, '--quiet']);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(/index\.html$/);
    expect(lines.at(-2)).toMatch(/^FAILED: 4 passed, 1 failed, 2 skipped$/);
    expect(r.stdout).toMatch(/✗ The thing is blue/);
    expect(r.stdout).toMatch(/when it fails: test\/fixtures\/runbooks\/fail\.md/);
    expect(r.stdout).not.toMatch(/✓|Create a thing|Never reached|^Runbook fail|^Target /m);
  }, 90_000);

  it("--verbose: the failed step's last evidence (what the target answered), redacted", async () => {
    const r = await cli(['fail', '--target', PROFILE, '--verbose']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/✓ Create a thing/);
    const failed = r.stdout.slice(r.stdout.indexOf('✗ The thing is blue'));
    expect(failed).toMatch(/\n\s+\| HTTP GET \/api\/v1\/things\/\S+ → 200\n/);
    expect(failed).toMatch(/\| < 200/);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    // The runner's phases go to stderr.
    expect(r.stderr).toMatch(/\[runbook \+\d+ ms\] preflight done/);
  }, 90_000);

  it('--quiet and --verbose together: exit 2', async () => {
    const r = await cli(['fail', '--target', PROFILE, '--quiet', '--verbose']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('shell completion', () => {
  const complete = (script: string, line: string[]) =>
    execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${line.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${line.length - 1}; _runbook_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      encoding: 'utf8',
      cwd: tmp,
    })
      .trim()
      .split('\n');

  it('bash: subcommands and runbooks, flags, a runbook\'s own options, formats and shells', async () => {
    const r = await cli(['completion', 'bash'], { RUNBOOKS_DIR: join(ROOT, 'runbooks') });
    expect(r.code, r.stderr).toBe(0);
    const script = r.stdout;
    expect(complete(script, ['runbook', 'sm'])).toEqual(['smoke']);
    expect(complete(script, ['runbook', 'b']).sort()).toEqual(['backup-restore', 'bundle']);
    expect(complete(script, ['runbook', 'backup-restore', '--in'])).toEqual(['--in-place']);
    expect(complete(script, ['runbook', 'smoke', '--in'])).toEqual(['']);
    expect(complete(script, ['runbook', 'smoke', '--ta'])).toEqual(['--target']);
    expect(complete(script, ['runbook', 'smoke', '--target', 'com'])).toEqual(['compose']);
    expect(complete(script, ['runbook', 'list', '-o', 'j'])).toEqual(['json']);
    expect(complete(script, ['runbook', 'completion', 'z'])).toEqual(['zsh']);
  });

  it('zsh: the same completion through bashcompinit; an unknown shell is exit 2', async () => {
    const r = await cli(['completion', 'zsh']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('#compdef runbook');
    expect(r.stdout).toMatch(/bashcompinit/);
    expect(r.stdout).toMatch(/complete -F _runbook_complete runbook/);
    const fish = await cli(['completion', 'fish']);
    expect(fish.code).toBe(2);
    expect(fish.stderr.trim()).toBe("runbook: completion: unknown shell 'fish'; supported: bash, zsh");
  });
});

describe('verify-bundle', () => {
  it('writes its problems to stderr (stdout stays empty), exit 1', async () => {
    const dir = join(tmp, 'bundle-src');
    mkdirSync(join(dir, 'run-1'), { recursive: true });
    writeFileSync(join(dir, 'run-1', 'summary.json'), '{"status":"passed"}\n');
    writeFileSync(join(dir, 'run-1', 'manifest.sha256'), `${'0'.repeat(64)}  summary.json\n`);
    const archive = join(tmp, 'tampered.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', dir, 'run-1']);
    const r = await cli(['verify-bundle', archive]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^verify-bundle: run-1\/summary\.json: content changed/m);
  });
});

describe('the last line under pnpm (README: "the last line on stdout is the report")', () => {
  it("holds for a failed run; pnpm's own ELIFECYCLE line goes to stderr", async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
      const child = spawn('pnpm', ['runbook', 'fail', '--target', PROFILE], { cwd: ROOT, env: { ...process.env, CI: 'true', ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', fail);
      child.on('close', (code) => done({ code, stdout, stderr }));
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^\S*index\.html$/);
    expect(r.stdout).not.toMatch(/ELIFECYCLE/);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toMatch(/The last line `pnpm runbook` prints on stdout is the report/);
    if (/ELIFECYCLE/.test(r.stderr)) expect(readme).toMatch(/\[ELIFECYCLE\] Command failed with exit code N\.` on stderr/);
  }, 90_000);
});
