// Runbook `dlq-retry` end to end: the CLI as a child process against its own sandbox. It must pass on a
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
    findings: { id: string; severity: string; detail: string }[];
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
  tmp = mkdtempSync(join(tmpdir(), 'runbook-dlq-retry-'));
});

afterAll(() => {
  // Runs cut short by a Vitest timeout must not outlive the test file.
  for (const c of children) c.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// Concurrent (two at a time): each run starts its own sandbox on free ports.
describe.concurrent('runbook dlq-retry', () => {
  it('passes on a healthy sandbox, reports the stranded retries and leaves nothing behind', async () => {
    const r = await runbook('dlq-retry', '');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.summary.status).toBe('passed');
    expect(r.summary.steps.map((s) => [s.name, s.status])).toEqual([
      ["Start the runbook's CAP worker", 'passed'],
      ['Inject: a job on an unmapped topic (no_pool_mapping)', 'passed'],
      ['Inject: the worker fails a job with error code runbook_injected', 'passed'],
      ['Inject: a forged failing JobResult for a running job', 'passed'],
      ['Retry each dead-lettered job and prove recovery', 'passed'],
      ['Workflow step retry with backoff', 'passed'],
      // The sandbox runs JetStream with Cordum's consumer names, so this is checked, not skipped.
      ['JetStream consumers show no redelivery loop', 'passed'],
      ['Remove every DLQ entry, job and workflow it created', 'passed'],
      ['Teardown: remove what this run created', 'passed'],
    ]);
    const stranded = r.summary.findings.filter((f) => f.id === 'DLQ-RETRY-STRANDED');
    expect(stranded).toHaveLength(2);
    expect(stranded.every((f) => f.severity === 'warn' && /retry.*dlq_entry.*retry_of_job/.test(f.detail))).toBe(true);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the first injection when the gateway DLQ writer drops packets (dlq-tap-down)', async () => {
    const r = await runbook('dlq-retry', 'dlq-tap-down');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Inject: a job on an unmapped topic (no_pool_mapping)');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/the sys\.job\.dlq packet for \S+ arrived .* but neither GET \/api\/v1\/dlq nor \/api\/v1\/dlq\/page lists it within \d+ ms/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the retry step when retry answers 200 but does nothing (dlq-retry-noop)', async () => {
    const r = await runbook('dlq-retry', 'dlq-retry-noop');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Retry each dead-lettered job and prove recovery');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/answered 200 with job_id \S+-retry-[0-9a-f]{8}, but the original entry is still listed/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('fails the workflow step retry when the retry policy is ignored (step-retry-ignored)', async () => {
    const r = await runbook('dlq-retry', 'step-retry-ignored');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const [first, ...rest] = failed(r);
    expect(first?.name).toBe('Workflow step retry with backoff');
    expect(rest).toEqual([]);
    expect(first?.error).toMatch(/the run ended 'failed' with step work 'failed' after 1 attempt\(s\).*retry policy was not applied/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);
});
