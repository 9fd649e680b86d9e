// Per-target run history: reports/.history/<target>.runs.jsonl, one run summary per line.
// It lets `--fail-on-new` gate on regressions only ("fail only on steps that passed last time"),
// and keeps a trend for a target that survives report clean-ups. It is the only history file of a
// target: each line also carries Allure's trend point for that run (`allure_history`), which the
// report generator feeds back to Allure (helpers/report/write.ts).

import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
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
    const run = parseRun(line);
    if (run) runs.push(run);
  }
  return runs;
}

/** One line of the history as a run, or undefined (blank, or torn by an interrupted write). */
function parseRun(line: string): Summary | undefined {
  if (!line.trim()) return undefined;
  try {
    const parsed = JSON.parse(line) as Summary;
    return parsed && typeof parsed.runbook === 'string' && Array.isArray(parsed.steps) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The recorded runs of a target, newest first, read from the end of the file in chunks. Every run
 * reads the history (Allure's trend points, --fail-on-new's baseline), and a nightly CI adds a line
 * per runbook per night: a whole-file read would grow with the target's age, while the newest runs
 * are all a report needs. Memory stays bounded by the longest line; time by how far back the
 * caller reads.
 */
async function* runsNewestFirst(reportsDir: string, target: string): AsyncGenerator<Summary> {
  let lines: AsyncGenerator<string>;
  try {
    lines = linesFromEnd(await open(historyFile(reportsDir, target), 'r'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for await (const line of lines) {
    const run = parseRun(line);
    if (run) yield run;
  }
}

const NEWLINE = 0x0a;

/** A run's line is ~11 KB; a line longer than this is not one (a file damaged or not ours) and is skipped. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * The lines of a file, last first, `chunkBytes` at a time (newlines are single bytes in UTF-8). Closes
 * the file. A line over `maxLineBytes` is skipped as it is read, so memory stays bounded by that.
 */
export async function* linesFromEnd(file: FileHandle, chunkBytes = 64 * 1024, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<string> {
  try {
    let pos = (await file.stat()).size;
    // The start of a line whose end is already read: prepended to the chunk before it.
    let partial = Buffer.alloc(0);
    // Within a line found too long: its bytes are dropped up to the newline before it.
    let skipping = false;
    while (pos > 0) {
      const size = Math.min(chunkBytes, pos);
      pos -= size;
      const chunk = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await file.read(chunk, got, size - got, pos + got);
        if (bytesRead === 0) throw new Error('the run history shrank while it was read');
        got += bytesRead;
      }
      const buf = partial.length ? Buffer.concat([chunk, partial]) : chunk;
      let end = buf.length;
      for (let i = buf.length - 1; i >= 0; i--) {
        if (buf[i] !== NEWLINE) continue;
        if (end > i + 1 && !skipping && end - i - 1 <= maxLineBytes) yield buf.toString('utf8', i + 1, end);
        skipping = false;
        end = i;
      }
      if (end > maxLineBytes) skipping = true;
      partial = skipping ? Buffer.alloc(0) : Buffer.from(buf.subarray(0, end));
    }
    if (partial.length) yield partial.toString('utf8');
  } finally {
    await file.close();
  }
}

/**
 * Allure's trend points of the last `limit` recorded runs on a target, oldest first. Reports written
 * before the run history carried them kept Allure's own file (`<target>.jsonl`); its points come
 * first, so trends survive the change. That file is only read, never written, so it no longer grows.
 */
export async function allureHistory(reportsDir: string, target: string, limit: number): Promise<unknown[]> {
  const recent: unknown[] = [];
  if (limit <= 0) return recent;
  for await (const run of runsNewestFirst(reportsDir, target)) {
    if (!run.allure_history) continue;
    recent.push(run.allure_history);
    if (recent.length >= limit) break;
  }
  recent.reverse();
  if (recent.length >= limit) return recent;
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
  return [...points.slice(Math.max(0, points.length - (limit - recent.length))), ...recent];
}

/**
 * The most recent recorded run of `runbook` on `target`. Call it before appending the current
 * run, otherwise the current run is its own baseline. Reads back from the end only as far as that run.
 */
export async function previousRun(reportsDir: string, target: string, runbook: string): Promise<Summary | undefined> {
  for await (const run of runsNewestFirst(reportsDir, target)) {
    if (run.runbook === runbook && run.target === target) return run;
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
