// Runs `pnpm runbook <args>` as a child process the way a user would, for the runbook tests.
// Each run starts its own sandbox on free ports, so runs are queued two at a time per test file
// (two cores), bounded by a deadline (SIGTERM, then the runner tears down), and read back through
// the report's summary.json (the last line the runner prints is the report path).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
/** A run still going after this gets SIGTERM so it cannot outlive its test. */
export const CHILD_DEADLINE_MS = 90_000;
/** Vitest backstop for a test that queues behind others and then runs one deadline. */
export const RUN_TIMEOUT_MS = 240_000;
const MAX_PARALLEL = 2;

export interface RunSummary {
  status: string;
  exit_code: number;
  steps: { name: string; status: string; error?: string; duration_ms?: number }[];
  findings?: { id: string; severity: string; title: string; detail: string }[];
  teardown: { left_behind: unknown[] };
  [k: string]: unknown;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The report directory, when the runner printed one. */
  reportDir?: string;
  summary?: RunSummary;
}

export interface RunOptions {
  /** SANDBOX_FAULTS for the sandbox the runner starts. */
  faults?: string;
  env?: Record<string, string>;
  /** Called once the child is running (e.g. to send it a signal later). */
  onStart?: (child: ChildProcess) => void;
  deadlineMs?: number;
}

const children = new Set<ChildProcess>();
let active = 0;
const waiting: (() => void)[] = [];
let tmp: string | undefined;

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

function scratch(): string {
  tmp ??= mkdtempSync(join(tmpdir(), 'runbook-test-'));
  return tmp;
}

/** Run the CLI with these arguments (e.g. ['smoke'] or ['policy', '--target', file]). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return slot(() => spawnOnce(args, opts));
}

function spawnOnce(args: string[], opts: RunOptions): Promise<RunResult> {
  const dir = mkdtempSync(join(scratch(), 'run-'));
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/runbook.ts', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        CI: 'true',
        SANDBOX_FAULTS: opts.faults ?? '',
        RUNBOOK_REPORTS_DIR: join(dir, 'reports'),
        RUNBOOK_STATE_DIR: join(dir, 'state'),
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    opts.onStart?.(child);
    const killer = setTimeout(() => child.kill('SIGTERM'), opts.deadlineMs ?? CHILD_DEADLINE_MS);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(killer);
      children.delete(child);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      const reportDir = last.endsWith('index.html') ? dirname(resolve(ROOT, last)) : undefined;
      const summaryFile = reportDir && join(reportDir, 'summary.json');
      const summary = summaryFile && existsSync(summaryFile) ? (JSON.parse(readFileSync(summaryFile, 'utf8')) as RunSummary) : undefined;
      done({ code, stdout, stderr, reportDir, summary });
    });
  });
}

/** Run a runbook against its own sandbox; fails the test with the output when no report was written. */
export async function runRunbook(name: string, opts: RunOptions & { args?: string[] } = {}): Promise<RunResult & { summary: RunSummary }> {
  const r = await runCli([name, ...(opts.args ?? [])], opts);
  if (!r.summary) throw new Error(`runbook ${name} wrote no summary.json (exit ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r as RunResult & { summary: RunSummary };
}

export function failedSteps(r: { summary: RunSummary }) {
  return r.summary.steps.filter((s) => s.status === 'failed');
}

/** For afterAll: no child outlives its test file, and the scratch dir goes away. */
export function cleanupRuns(): void {
  for (const c of children) c.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
