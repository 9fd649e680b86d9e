// The ahead-of-time build (bin/build.mjs) and what the runner prints while it works, as an engineer
// meets them: `pnpm install` builds, `pnpm runbook` runs the build, an edited helper is never run
// stale, the first line comes before the sandbox is up, and every report file is complete at exit.
// Ordering and content only; how fast any of it is, is measured by `pnpm bench --only runner`.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDirFor, currentBuild, isComplete } from '../../bin/build.mjs';
import { BUNDLES, REPORT_ENGINE } from '../../bin/vendor.mjs';
import { verifyManifest } from '../../helpers/report/manifest.js';
import { findBinary } from '../../helpers/processes.js';
import { holdClosedPort } from '../support/closed-port.js';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'runner-build-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A checkout of its own (sources, launcher, runbook pages; node_modules linked), so its builds are its own. */
function checkout(): string {
  const dir = mkdtempSync(join(tmp, 'checkout-'));
  for (const p of ['bin', 'cli', 'helpers', 'sandbox', 'scenarios', 'runbooks', 'package.json']) cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

function launch(dir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [join(dir, 'bin/runbook.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, CI: 'true' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the build', () => {
  it('pnpm install builds it, and the package scripts start the launcher, not a TypeScript loader', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('node bin/build.mjs');
    expect(pkg.scripts.runbook).toBe('node bin/runbook.mjs');
    expect(pkg.scripts.sandbox).toBe('node bin/sandbox.mjs');
    expect(readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('dist/');
  });

  it('a clean checkout builds on its first run, then runs that build as it is', () => {
    const dir = checkout();
    const first = launch(dir, 'list');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/^runbook: the sources changed since the last build; building dist\/[0-9a-f]{16} first$/m);
    expect(first.stdout).toMatch(/^smoke {2,}/m);
    const build = buildDirFor(dir);
    expect(isComplete(build)).toBe(true);
    expect(spawnSync(process.execPath, [join(dir, 'bin/build.mjs'), '--check'], { cwd: dir }).status).toBe(0);

    // The compiled CLI is what runs: a line added to the build (not to the sources) shows up, and nothing is rebuilt.
    appendFileSync(join(build, 'cli/runbook.js'), `\nprocess.stdout.write('running the build\\n');\n`);
    const second = launch(dir, 'list');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/building/);
    expect(second.stdout).toMatch(/^running the build$/m);
  }, 240_000);

  it('an edited helper is never run stale: the next run rebuilds first and runs the edit', () => {
    const dir = checkout();
    expect(launch(dir, 'list').code).toBe(0);
    const before = buildDirFor(dir);
    appendFileSync(join(dir, 'helpers/catalog.ts'), `\nprocess.stdout.write('edited helper\\n');\n`);
    expect(spawnSync(process.execPath, [join(dir, 'bin/build.mjs'), '--check'], { cwd: dir }).status, 'the old build counts as stale').toBe(1);
    const r = launch(dir, 'list');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/building dist\/[0-9a-f]{16} first/);
    expect(r.stdout).toMatch(/^edited helper$/m);
    expect(buildDirFor(dir)).not.toBe(before);
    // The bundled dependencies did not change, so the rebuild reused them rather than bundling again.
    expect(readdirSync(join(dir, 'dist')).filter((n) => n.startsWith('vendor-'))).toHaveLength(1);
  }, 240_000);

  it('the packages every run loads come bundled, one file each, from the build’s vendor/', async () => {
    const { dir } = await currentBuild();
    const vendor = join(dir, 'vendor');
    expect(readdirSync(vendor).sort()).toEqual([REPORT_ENGINE, ...BUNDLES.map((b) => b.file)].sort());
    const packages = BUNDLES.flatMap((b) => b.packages);
    const bare = new RegExp(`(?:\\bfrom\\s*|\\bimport\\s*\\(\\s*)["'](?:${packages.join('|')})["']`);
    const compiled = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === 'vendor' ? [] : compiled(join(d, e.name))) : e.name.endsWith('.js') ? [join(d, e.name)] : []));
    const modules = compiled(dir);
    expect(modules.length).toBeGreaterThan(100);
    expect(modules.filter((f) => bare.test(readFileSync(f, 'utf8')))).toEqual([]);
    expect(readFileSync(join(dir, 'helpers/gateway.js'), 'utf8')).toMatch(/from "\.\.\/vendor\/undici\.js"/);
    // A bundle binds every name its packages export (a missing one would be undefined, not an error).
    for (const b of BUNDLES) {
      const bundled = await import(pathToFileURL(join(vendor, b.file)).href);
      for (const pkg of b.packages) {
        const names = Object.keys(await import(pkg)).filter((n) => n !== 'default' && !n.startsWith('__'));
        expect(names.filter((n) => bundled[n] === undefined), pkg).toEqual([]);
      }
    }
    // The report engine carries the project's patch of Allure's awesome plugin (patches/): without
    // it a run still reports, but makes the page's fixed parts after the verdict instead of before.
    const engine = await import(pathToFileURL(join(vendor, REPORT_ENGINE)).href);
    expect(typeof engine.prepareSingleFile).toBe('function');
  }, 120_000);

  it('--plan lists the steps from the compiled scenarios without starting anything', () => {
    const r = launch(ROOT, 'smoke', '--plan');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {4}1\. Liveness and readiness \(deadline [^)]+\)$/m);
    expect(r.stdout).toMatch(/\. Teardown: remove what this run created \(deadline [^)]+\)$/m);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('Nothing was run.');
  }, 120_000);
});

describe('what the runner prints while it works', () => {
  it('says what it is doing before the sandbox is up; the verdict comes before the HTML; every report file is complete at exit', async () => {
    // redis-server, held at a FIFO until the test lets it start: the sandbox cannot be up before that.
    const realRedis = findBinary('redis-server');
    expect(realRedis, 'redis-server on PATH').toBeTruthy();
    const gate = join(tmp, 'redis-gate');
    execFileSync('mkfifo', [gate]);
    const wrapper = join(tmp, 'redis-server-held');
    // Held once only: a start retried on another port (a port race) goes straight through.
    writeFileSync(wrapper, `#!/bin/sh\nif [ ! -e '${gate}.open' ]; then cat '${gate}' >/dev/null; : > '${gate}.open'; fi\nexec '${realRedis}' "$@"\n`, { mode: 0o755 });

    const reports = join(tmp, 'reports');
    const child = spawn(process.execPath, [join(ROOT, 'bin/runbook.mjs'), 'smoke'], {
      cwd: ROOT,
      env: { ...process.env, CI: 'true', DEBUG: 'runbooks', REDIS_SERVER_BIN: wrapper, RUNBOOK_REPORTS_DIR: reports, RUNBOOK_STATE_DIR: join(tmp, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let released = false;
    const firstLine = new Promise<string>((done) => {
      child.stdout!.on('data', (d) => {
        stdout += d;
        if (stdout.includes('\n')) done(stdout.split('\n')[0]!);
      });
    });
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('close', done));
    const killer = setTimeout(() => child.kill('SIGKILL'), 200_000);
    try {
      const line = await Promise.race([firstLine, exited.then(() => `(exited: ${stderr})`)]);
      // redis-server has not been allowed to start yet.
      expect(line).toBe('Runbook smoke: starting a sandbox Cordum (redis-server, nats-server)…');
      expect(stdout).not.toMatch(/Sandbox up/);
      const w = await open(gate, 'w');
      released = true;
      await w.close();
      const code = await exited;
      expect(code, `${stdout}\n${stderr}`).toBe(0);
    } finally {
      clearTimeout(killer);
      if (!released) await open(gate, 'w').then((w) => w.close()).catch(() => {});
    }

    // The scenario thread was started before Vitest loaded, and Vitest took it (cli/run/scenario-thread.ts):
    // Vitest asked for a thread with the environment, flags and entry the runner had predicted.
    expect(stderr).toMatch(/\] scenario thread: early$/m);

    const lines = stdout.trim().split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/^Sandbox up: gateway /)).toBeGreaterThan(0);
    expect(at(/^PASSED: /)).toBeGreaterThan(at(/^Sandbox up/));
    expect(at(/^Writing the HTML report…$/)).toBeGreaterThan(at(/^PASSED: /));
    const index = lines.at(-1)!;
    expect(index).toMatch(/index\.html$/);
    const runDir = dirname(resolve(ROOT, index));
    for (const f of ['index.html', 'summary.json', 'summary.md', 'junit.xml', 'manifest.sha256']) expect(existsSync(join(runDir, f)), f).toBe(true);
    expect(readFileSync(join(runDir, 'manifest.sha256'), 'utf8')).toMatch(/ {2}index\.html$/m);
    expect(verifyManifest(runDir)).toEqual([]);
    expect(readFileSync(join(runDir, 'index.html'), 'utf8')).toMatch(/<\/html>\s*$/i);

    // The compiled run imports the scenario's compiled copy; reports still name the source file, so
    // --only-failed and Allure's history (keyed by fullName) follow the same steps across builds.
    const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as { steps: { file: string }[] };
    expect(new Set(summary.steps.map((s) => s.file))).toEqual(new Set(['scenarios/smoke/smoke.test.ts']));
    const resultsDir = join(runDir, 'allure-results');
    const results = readdirSync(resultsDir)
      .filter((f) => f.endsWith('-result.json'))
      .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as { fullName: string });
    expect(results).toHaveLength(summary.steps.length);
    for (const r of results) expect(r.fullName).toMatch(/^cordum-runbooks:scenarios\/smoke\/smoke\.test\.ts#/);
    expect(readFileSync(join(resultsDir, 'environment.properties'), 'utf8')).toMatch(/^runbook=smoke$/m);
  }, 240_000);
});

describe('the scenario thread started early', () => {
  it('never holds the exit of a run that ends before any step: an unreachable target answers at once with 3', async () => {
    const closed = await holdClosedPort();
    try {
      // A thread that held the process open would end in the spawn timeout (status null), not in 3.
      // Everything smoke needs, all behind the one refusing port.
      const profile = join(tmp, 'unreachable.yaml');
      const at = `127.0.0.1:${closed.port}`;
      writeFileSync(
        profile,
        `name: unreachable\ngateway:\n  url: http://${at}\n  api_key_env: FIXTURE_API_KEY\n  connect_timeout_ms: 1000\nnats:\n  url: nats://${at}\nredis:\n  url: redis://${at}\n`,
      );
      const r = spawnSync(process.execPath, [join(ROOT, 'bin/runbook.mjs'), 'smoke', '--target', profile], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, CI: 'true', FIXTURE_API_KEY: 'x'.repeat(24), RUNBOOK_REPORTS_DIR: join(tmp, 'reports-unreachable') },
      });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(new RegExp(`unreachable.*127\\.0\\.0\\.1:${closed.port}`));
    } finally {
      closed.release();
    }
  }, 90_000);

  it('is dropped for a thread as Vitest would start it when Vitest asks for another environment, and the run is the same', () => {
    // A .env file with a VITE_ variable: Vite puts it into every thread's environment, which the
    // runner did not predict. The early thread must not be used, and the run must not notice.
    const dir = checkout();
    writeFileSync(join(dir, '.env'), 'VITE_RUNBOOK_PROBE=from-dotenv\n');
    const reports = join(tmp, 'reports-dotenv');
    const r = spawnSync(process.execPath, [join(dir, 'bin/runbook.mjs'), 'smoke'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 200_000,
      env: { ...process.env, CI: 'true', DEBUG: 'runbooks', RUNBOOK_REPORTS_DIR: reports, RUNBOOK_STATE_DIR: join(tmp, 'state-dotenv') },
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toMatch(/\] scenario thread: fresh \(the early thread does not match: env: VITE_RUNBOOK_PROBE\)$/m);
    expect(r.stdout).toMatch(/^PASSED: \d+ passed, 0 failed, 0 skipped$/m);
  }, 240_000);
});
