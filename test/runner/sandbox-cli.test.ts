// `pnpm sandbox` prints its profile so that it can be saved and used as a target: the printed
// profile, saved as it is, must load and carry a runbook to its verdict.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, describe, expect, test } from 'vitest';
import { ROOT, RUN_TIMEOUT_MS, cleanupRuns, runCli, writeProfile } from '../support/run-runbook.js';

const START_DEADLINE_MS = 60_000;

describe('pnpm sandbox', () => {
  afterAll(() => cleanupRuns());

  test(
    'the profile it prints, saved to a file, is a target smoke passes against; Ctrl-C stops it with 0',
    async () => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'cli/sandbox.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`sandbox printed no profile within ${START_DEADLINE_MS} ms; stderr: ${stderr}`)), START_DEADLINE_MS);
          const check = () => {
            if (stdout.includes('# Ctrl-C stops the sandbox.')) {
              clearTimeout(timer);
              resolve();
            }
          };
          child.stdout.on('data', check);
          child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`sandbox exited with ${code} before printing its profile; stderr: ${stderr}`));
          });
        });
        // The YAML block: from the heading to the first blank line, as a user would copy it.
        const yaml = stdout.slice(stdout.indexOf('# Cordum sandbox profile')).split('\n\n')[0]!;
        const key = /^export CORDUM_SANDBOX_API_KEY='([^']+)'$/m.exec(stdout)?.[1];
        expect(key, 'the key export line').toBeTruthy();
        const profile = writeProfile(yaml);
        const run = await runCli(['smoke', '--target', profile], { env: { CORDUM_SANDBOX_API_KEY: key! } });
        expect(run.stderr).not.toMatch(/unknown field/);
        expect(run.code, run.stderr).toBe(0);
        expect(run.summary?.status).toBe('passed');
      } finally {
        if (child.exitCode === null) {
          child.kill('SIGINT');
          const [code] = (await once(child, 'exit')) as [number | null];
          expect(code, stderr).toBe(0);
        }
      }
    },
    RUN_TIMEOUT_MS,
  );
});
