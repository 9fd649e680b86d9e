// Runs `pnpm runbook <args>` as a child process the way a user would, for the runbook tests.
// Each run starts its own sandbox on free ports, so runs are queued two at a time per test file
// (two cores), bounded by a deadline, and read back through the report's summary.json (the last
// line the runner prints is the report path). A run past its deadline is stopped (SIGTERM, so the
// runner still tears down) and the test fails with "did not finish in time": never with the
// exit code 130 that SIGTERM produces, which would read as an interrupted run.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { RunSummary } from '../../helpers/report/summary.js';

export type { RunSummary } from '../../helpers/report/summary.js';

export const ROOT = resolve(import.meta.dirname, '../..');
/** A run still going after this is stopped (SIGTERM) and fails its test as too slow. */
export const CHILD_DEADLINE_MS = 90_000;
/** Vitest backstop for a test that queues behind others and then runs one deadline. */
export const RUN_TIMEOUT_MS = 240_000;
const MAX_PARALLEL = 2;

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
  /** Called once the child is running (e.g. to send it a signal later), with this run's own dirs. */
  onStart?: (child: ChildProcess, dirs: RunDirs) => void;
  deadlineMs?: number;
}

export interface RunDirs {
  /** RUNBOOK_STATE_DIR: journals of unfinished teardowns live below it. */
  stateDir: string;
  /** RUNBOOK_REPORTS_DIR */
  reportsDir: string;
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
  const dirs: RunDirs = { stateDir: join(dir, 'state'), reportsDir: join(dir, 'reports') };
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/runbook.ts', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        CI: 'true',
        SANDBOX_FAULTS: opts.faults ?? '',
        RUNBOOK_REPORTS_DIR: dirs.reportsDir,
        RUNBOOK_STATE_DIR: dirs.stateDir,
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    opts.onStart?.(child, dirs);
    const deadlineMs = opts.deadlineMs ?? CHILD_DEADLINE_MS;
    let timedOut = false;
    const killer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, deadlineMs);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(killer);
      children.delete(child);
      if (timedOut) {
        const what = `pnpm runbook ${args.join(' ')}`;
        fail(new Error(`${what} did not finish within the test's deadline of ${deadlineMs} ms; it was stopped with SIGTERM (so its exit ${code} says nothing about the run)\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
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

/** A file of the run's report, e.g. 'artifacts/audit-evidence.json' or 'teardown-journal.jsonl'. */
export function reportText(r: RunResult, file: string): string {
  return readFileSync(join(reportDirOf(r), file), 'utf8');
}

/** A test or step as allure-vitest writes it into allure-results (the parts the tests read). */
export interface AllureStep {
  name?: string;
  attachments?: { name: string; source: string }[];
  steps?: AllureStep[];
}
export interface AllureResult extends AllureStep {
  status: string;
  fullName?: string;
  links?: { url: string; name?: string; type?: string }[];
  statusDetails?: { message?: string };
}

/** Every test result (one per runbook step) in the run's allure-results. */
export function allureResults(r: RunResult): AllureResult[] {
  const dir = join(reportDirOf(r), 'allure-results');
  return readdirSync(dir)
    .filter((f) => f.endsWith('-result.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as AllureResult);
}

/** The attachments of a result and of all its nested steps. */
export function allAttachments(s: AllureStep): { name: string; source: string }[] {
  return [...(s.attachments ?? []), ...(s.steps ?? []).flatMap(allAttachments)];
}

/** An attachment's content, from the run's allure-results. */
export function attachmentText(r: RunResult, a: { source: string }): string {
  return readFileSync(join(reportDirOf(r), 'allure-results', a.source), 'utf8');
}

function reportDirOf(r: RunResult): string {
  if (!r.reportDir) throw new Error(`the run wrote no report (exit ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.reportDir;
}

/**
 * Write a target profile (YAML text) and files it refers to by relative path (e.g. case files)
 * into a fresh scratch directory, for runs with `--target <file>`; returns the profile's path.
 */
export function writeProfile(yaml: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(scratch(), 'profile-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const file = join(dir, 'target.yaml');
  writeFileSync(file, yaml);
  return file;
}

/** For afterAll: no child outlives its test file, and the scratch dir goes away. */
export function cleanupRuns(): void {
  for (const c of children) c.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
