// Runbook `smoke` end to end: the CLI as a child process against its own sandbox. It must pass on a
// healthy sandbox, and each fault must make it exit 1 with the right step failing and a message
// that says what was expected and what the platform did.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
/** A run that is still going after this is stopped with SIGTERM (the runner then tears down). */
const CHILD_DEADLINE_MS = 60_000;
/** Two runs at a time: each starts its own redis-server + nats-server, and the machine has two cores. */
const MAX_PARALLEL = 2;
/** Vitest backstop: queueing behind the other runs plus one run's deadline and its teardown. */
const RUN_TIMEOUT_MS = 150_000;

const children = new Set<ChildProcess>();
let active = 0;
const waiting: (() => void)[] = [];

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  while (active >= MAX_PARALLEL) await new Promise<void>((r) => waiting.push(r));
  active++;
  try {
    return await fn();
  } finally {
    active--;
    waiting.shift()?.();
  }
}

let tmp: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  summary: {
    status: string;
    exit_code: number;
    steps: { name: string; status: string; error?: string }[];
    teardown: { left_behind: unknown[] };
  };
}

function runbook(name: string, faults: string): Promise<Run> {
  return slot(() => runOnce(name, faults));
}

function runOnce(name: string, faults: string): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/runbook.ts', name], {
      cwd: ROOT,
      env: {
        ...process.env,
        CI: 'true',
        SANDBOX_FAULTS: faults,
        RUNBOOK_REPORTS_DIR: join(tmp, `reports-${faults || 'healthy'}`),
        RUNBOOK_STATE_DIR: join(tmp, `state-${faults || 'healthy'}`),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const killer = setTimeout(() => child.kill('SIGTERM'), CHILD_DEADLINE_MS);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(killer);
      children.delete(child);
      try {
        // The last line printed is the report's index.html; summary.json sits next to it.
        const last = stdout.trim().split('\n').at(-1)!;
        const summary = JSON.parse(readFileSync(resolve(ROOT, last, '..', 'summary.json'), 'utf8'));
        done({ code, stdout, stderr, summary });
      } catch (err) {
        fail(new Error(`no summary.json (exit ${code}): ${(err as Error).message}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      }
    });
  });
}

function failed(r: Run) {
  return r.summary.steps.filter((s) => s.status === 'failed');
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'runbook-smoke-'));
});

afterAll(() => {
  // Runs cut short by a Vitest timeout must not outlive the test file.
  for (const c of children) c.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// Concurrent (two at a time): each run starts its own sandbox on free ports.
describe.concurrent('runbook smoke', () => {
  it('passes on a healthy sandbox and leaves nothing behind', async () => {
    const r = await runbook('smoke', '');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary.status).toBe('passed');
    expect(failed(r)).toEqual([]);
    expect(r.summary.steps.map((s) => s.name)).toEqual([
      'Liveness and readiness',
      'Auth is enforced',
      'Workflow round trip',
      'Jobs',
      'Locks and artifacts round trip',
      'Everything it created is gone',
      'Teardown: remove what this run created',
    ]);
    expect(r.summary.steps.every((s) => s.status === 'passed')).toBe(true);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails Liveness and readiness when the gateway cannot reach Redis (gateway-redis-down)', async () => {
    const r = await runbook('smoke', 'gateway-redis-down');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Liveness and readiness');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/expected \/api\/v1\/status redis\.ok=true; the gateway reports redis\.ok=false/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails Workflow round trip when approvals are accepted but ignored (approval-ignored)', async () => {
    const r = await runbook('smoke', 'approval-ignored');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Workflow round trip');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/run stayed 'waiting' after approve \(204\): expected 'succeeded'/);
    // The run and workflow it created are still removed by teardown.
    expect(r.summary.teardown.left_behind).toEqual([]);
    expect(r.summary.steps.find((s) => s.name.startsWith('Teardown'))?.status).toBe('passed');
  }, RUN_TIMEOUT_MS);

  it('fails Liveness and readiness when the gateway metrics endpoint is gone (metrics-missing)', async () => {
    const r = await runbook('smoke', 'metrics-missing');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Liveness and readiness');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/expected gateway metrics at \S+ to answer 200 with Prometheus text; it answered 404/);
  }, RUN_TIMEOUT_MS);
});
