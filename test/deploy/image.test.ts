// No Docker engine here: the Dockerfile is checked by reading it, and run-group.sh (the CronJobs'
// command) is run for real against a stand-in CLI.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCKERFILE, RUNTIME_STAGE, aptPackagesOf } from './dockerfile.js';
import { REPO } from './k8s-fixture.js';

const dockerfile = DOCKERFILE;
const runtime = RUNTIME_STAGE;

describe('deploy/Dockerfile', () => {
  it('builds on a pinned Node LTS slim image in every stage', () => {
    const froms = dockerfile.filter((i) => i.op === 'FROM').map((i) => i.args.split(/\s+/)[0]);
    expect(froms.length).toBeGreaterThan(0);
    for (const image of froms) {
      const m = /^node:(\d+)\.(\d+)\.(\d+)-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.exec(image);
      expect(m, image).not.toBeNull();
      expect(Number(m![1]) % 2, `${image}: even majors are the LTS lines`).toBe(0);
      expect(Number(m![1])).toBeGreaterThanOrEqual(20);
    }
  });

  it('runs as the non-root uid 10001 with the runbook CLI as entrypoint', () => {
    const users = runtime.filter((i) => i.op === 'USER');
    expect(users.at(-1)?.args).toMatch(/^10001(:10001)?$/);
    const entrypoint = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
    expect(entrypoint).toEqual(['node', 'bin/runbook.mjs']);
    const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toContain('RUNBOOK_REPORTS_DIR=/reports');
  });

  it('installs only runtime dependencies from the lockfile', () => {
    const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/pnpm install --frozen-lockfile --prod(\s|$)/);
    expect(runs).toMatch(/pnpm@\d+\.\d+\.\d+/);
    // The runtime stage takes node_modules from the deps stage; pnpm itself stays behind.
    expect(runtime.some((i) => i.op === 'COPY' && i.args.startsWith('--from=deps'))).toBe(true);
    expect(runtime.some((i) => i.op === 'RUN' && /pnpm/.test(i.args))).toBe(false);
  });

  it('carries redis-server and nats-server from Debian for the drill, without recommends or apt lists', () => {
    // The backup-restore drill starts both as scratch restore targets (drill-layout.test.ts runs it).
    expect(aptPackagesOf(runtime).sort()).toEqual(['nats-server', 'redis-server']);
    const apt = runtime.find((i) => i.op === 'RUN' && i.args.includes('apt-get install'))!.args;
    expect(apt).toContain('--no-install-recommends');
    expect(apt).toMatch(/rm -rf \/var\/lib\/apt\/lists/);
    // Debian 13 or later: its redis-server (8.0) and nats-server (2.10) are not older than Cordum's.
    const base = runtime[0]!.args.split(/\s+/)[0]!;
    expect(base).toMatch(/-(trixie|forky)-slim(@|$)/);
  });

  it('.dockerignore lets in the suite only: no tests, reports, git, node_modules or env files', () => {
    const lines = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(lines[0]).toBe('*');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    for (const needed of ['package.json', 'pnpm-lock.yaml', 'bin', 'cli', 'helpers', 'runbooks', 'scenarios', 'deploy/run-group.sh']) {
      expect(allowed).toContain(needed);
    }
    for (const never of ['test', 'reports', '.git', 'node_modules', 'deploy', '.github']) expect(allowed).not.toContain(never);
    expect(lines).toContain('**/node_modules');
  });
});

describe('deploy/run-group.sh', () => {
  /** A checkout whose bin/runbook.mjs is a stand-in that exits with the code named in its argument. */
  function fakeCheckout(): string {
    const dir = mkdtempSync(join(tmpdir(), 'run-group-'));
    mkdirSync(join(dir, 'bin'));
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(
      join(dir, 'bin/runbook.mjs'),
      `const [name, ...rest] = process.argv.slice(2);
console.log('ran', name, rest.join(' '));
if (name === 'hang') {
  process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(130); });
  console.log('waiting');
  setInterval(() => {}, 1000);
} else {
  process.exit(Number(name.split('-')[1] ?? 0));
}
`,
    );
    return dir;
  }

  function runGroup(cwd: string, args: string[]) {
    const child = spawn('sh', [join(REPO, 'deploy/run-group.sh'), ...args], { cwd, env: { ...process.env, RUNBOOK_REPORTS_DIR: join(cwd, 'reports') } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
    return { child, done, stdout: () => stdout };
  }

  it('runs every runbook even after one fails, passes the options on, and exits with the worst code', async () => {
    const cwd = fakeCheckout();
    const run = runGroup(cwd, ['ok-0', 'bad-3', 'meh-1', '--', '--target', 'in-cluster']);
    expect(await run.done).toBe(3);
    expect(run.stdout()).toContain('ran ok-0 --target in-cluster');
    expect(run.stdout()).toContain('ran meh-1 --target in-cluster');
    expect(run.stdout()).toContain('run-group: bad-3 exited 3');
  });

  it('refuses an empty group with a usage error', async () => {
    expect(await runGroup(fakeCheckout(), ['--', '--target', 'x']).done).toBe(2);
  });

  it('forwards SIGTERM (activeDeadlineSeconds) to the running CLI and exits 130', async () => {
    const run = runGroup(fakeCheckout(), ['hang', 'never-0']);
    await new Promise<void>((resolve) => {
      run.child.stdout.on('data', () => {
        if (run.stdout().includes('waiting')) resolve();
      });
    });
    run.child.kill('SIGTERM');
    expect(await run.done).toBe(130);
    expect(run.stdout()).toContain('got SIGTERM');
    expect(run.stdout()).not.toContain('ran never-0');
  });
});
