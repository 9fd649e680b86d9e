// Per-target run history: reports/.history/<target>.runs.jsonl, one run summary per line.
// It lets `--fail-on-new` gate on regressions only ("fail only on steps that passed last time"),
// and keeps a trend for a target that survives report clean-ups. It is the only history file of a
// target: each line also carries Allure's trend point for that run (`allure_history`), which the
// report generator feeds back to Allure (helpers/report/write.ts).

import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { redact } from './redact.js';

/**
 * The part of summary.json this module relies on. The runner's RunSummary
 * (helpers/report/summary.ts) is assignable to it; the full object is what gets stored.
 */
export interface StepSummary {
  /** Scenario title: step names only need to be unique within a scenario. */
  scenario?: string;
  name: string;
  status: string; // passed | failed | broken | skipped | ...
  duration_ms?: number;
  error?: string | null;
}

export interface Summary {
  runbook: string;
  target: string;
  ticket?: string | null;
  status: string;
  start: string;
  end: string;
  duration_ms: number;
  steps: StepSummary[];
  counts?: Record<string, number>;
  findings?: unknown;
  /** Allure's history data point of this run (trend charts in index.html). */
  allure_history?: unknown;
}

export const HISTORY_DIR = '.history';
const FAILING = new Set(['failed', 'broken']);

/** Target names become file names: keep them to a safe alphabet so a name cannot escape the folder. */
export function historyFile(reportsDir: string, target: string): string {
  const safe = target.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\.+/, '_') || '_';
  return join(reportsDir, HISTORY_DIR, `${safe}.runs.jsonl`);
}

/**
 * Append one summary as one line. The line is written with a single write() on a file opened
 * O_APPEND, so concurrent runs against the same target never interleave inside a line; the
 * reader skips a torn last line left by a crash mid-write.
 */
export async function appendRunHistory(reportsDir: string, summary: Summary): Promise<string> {
  const file = historyFile(reportsDir, summary.target);
  await mkdir(join(reportsDir, HISTORY_DIR), { recursive: true });
  // Redacted here too: the history outlives every report and is read by every later run.
  const line = Buffer.from(`${redact(JSON.stringify(summary))}\n`, 'utf8');
  const handle = await open(file, 'a', 0o644);
  try {
    const { bytesWritten } = await handle.write(line, 0, line.length);
    if (bytesWritten !== line.length) throw new Error(`short write to ${file}`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return file;
}

/** All recorded runs for a target, oldest first. Lines that do not parse are skipped. */
export async function readRunHistory(reportsDir: string, target: string): Promise<Summary[]> {
  let text: string;
  try {
    text = await readFile(historyFile(reportsDir, target), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const runs: Summary[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const parsed = JSON.parse(line) as Summary;
      if (parsed && typeof parsed.runbook === 'string' && Array.isArray(parsed.steps)) runs.push(parsed);
    } catch {
      // torn line from an interrupted write: not a run
    }
  }
  return runs;
}

/**
 * Allure's trend points of the recorded runs on a target, oldest first. Reports written before the
 * run history carried them kept Allure's own file (`<target>.jsonl`); its points come first, so
 * trends survive the change. That file is only read, never written.
 */
export async function allureHistory(reportsDir: string, target: string): Promise<unknown[]> {
  const legacy = historyFile(reportsDir, target).replace(/\.runs\.jsonl$/, '.jsonl');
  const points: unknown[] = [];
  try {
    for (const line of (await readFile(legacy, 'utf8')).split('\n')) {
      if (!line.trim()) continue;
      try {
        points.push(JSON.parse(line));
      } catch {
        // torn line
      }
    }
  } catch {
    // no legacy file
  }
  for (const run of await readRunHistory(reportsDir, target)) if (run.allure_history) points.push(run.allure_history);
  return points;
}

/**
 * The most recent recorded run of `runbook` on `target`. Call it before appending the current
 * run, otherwise the current run is its own baseline.
 */
export async function previousRun(reportsDir: string, target: string, runbook: string): Promise<Summary | undefined> {
  const runs = await readRunHistory(reportsDir, target);
  for (let i = runs.length - 1; i >= 0; i--) {
    if (runs[i].runbook === runbook && runs[i].target === target) return runs[i];
  }
  return undefined;
}

/**
 * Steps failing now that passed in the previous run of the same runbook and target, in the
 * current run's order. Steps that failed before, are new, or were skipped before are not "new
 * failures": with no previous run there is no baseline and nothing counts as new.
 */
export function newFailures(previous: Summary | undefined, current: Summary): string[] {
  if (!previous) return [];
  if (previous.runbook !== current.runbook || previous.target !== current.target) return [];
  const passedBefore = new Set(previous.steps.filter((s) => s.status === 'passed').map(stepKey));
  const result: string[] = [];
  for (const step of current.steps) {
    const key = stepKey(step);
    if (FAILING.has(step.status) && passedBefore.has(key) && !result.includes(key)) result.push(key);
  }
  return result;
}

/** "scenario › step" when the scenario is known, so equal step names in two scenarios stay apart. */
export function stepKey(step: StepSummary): string {
  return step.scenario ? `${step.scenario} › ${step.name}` : step.name;
}
