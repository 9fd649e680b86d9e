// summary.json (machine-readable: CI gates, --only-failed) and summary.md (a table to paste into a
// change ticket) for one run.
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, UsageError } from '../errors.js';
import { MiB, readUserFile } from '../files.js';

export type StepStatus = 'passed' | 'failed' | 'skipped';
export type RunStatus = 'passed' | 'failed' | 'interrupted' | 'teardown_failed' | 'unreachable' | 'config_error' | 'error';

export interface StepRecord {
  scenario: string;
  /** Scenario file, relative to the repo root. */
  file: string;
  name: string;
  status: StepStatus;
  duration_ms: number;
  /**
   * The exit code this step asks for: 0 when it passed or was skipped, else its error's own
   * `exitCode` (helpers/errors.ts), 1 for any other error. The run's verdict reads this.
   */
  exit_code: number;
  error?: string;
  error_type?: string;
  /** The error's machine code (RB_…), when it was a RunbookError. */
  error_code?: string;
  skip_reason?: string;
  /** For a failed step: its runbook page's "When it fails" text (page path and anchor). */
  when_it_fails?: string;
  /**
   * For a failed step: the last HTTP answer it saw, redacted and cut to a few KiB (junit.xml carries
   * it, so a CI test tab shows what the target said without opening the report).
   */
  evidence?: string;
}

export interface FindingRecord {
  id: string;
  severity: 'info' | 'warn' | 'fail';
  title: string;
  detail: string;
  step?: string;
  scenario?: string;
  at?: string;
}

/** One action the in-worker teardown ran (helpers/steps.ts writes them to RUN_FILES.teardown). */
export interface StepTeardownRecord {
  /** Scenario file that registered it. */
  scenario: string;
  label: string;
  /** What was done: `DELETE /api/v1/...`, a Redis command, or `local cleanup`. */
  action: string;
  ok: boolean;
  error?: string;
}

/** A Markdown section a scenario added with ctx.summary(); appended under the step table. */
export interface SummarySection {
  scenario: string;
  step: string;
  markdown: string;
}

/** What `--fail-on-new` decided (present only when the flag was given). */
export interface FailOnNew {
  /** run_id of the previous run of this runbook on this target; null when there was none. */
  baseline_run: string | null;
  /** "scenario › step" of steps failing now that passed in the baseline. */
  new_failures: string[];
  /** The exit code the run would have had without the flag. */
  exit_code_without_flag: number;
}

export interface RunSummary {
  run_id: string;
  runbook: string;
  title: string;
  /** Target profile name (what history and gates key on). */
  target: string;
  target_source: string;
  gateway: string;
  ticket: string | null;
  status: RunStatus;
  exit_code: number;
  /** Why the run stopped early (Ctrl-C, SIGTERM, time budget), if it did. */
  interrupted_reason?: string;
  start: string;
  end: string;
  duration_ms: number;
  counts: { total: number; passed: number; failed: number; skipped: number };
  steps: StepRecord[];
  findings: FindingRecord[];
  teardown: {
    /** What the teardown step of each scenario did inside the workers, in order. */
    removed_by_steps: StepTeardownRecord[];
    removed_by_runner: string[];
    left_behind: { label: string; error: string }[];
    earlier_runs: { journal: string; removed: string[]; left_behind: { label: string; error: string }[] }[];
  };
  errors: string[];
  environment: Record<string, string>;
  /** The runbook's declared options as given on the command line (ctx.options). */
  options: Record<string, string | boolean>;
  /** Markdown sections added by scenarios (ctx.summary), in the order they were added. */
  sections: SummarySection[];
  fail_on_new?: FailOnNew;
  only_failed_from?: string;
}

export function countSteps(steps: StepRecord[]): RunSummary['counts'] {
  return {
    total: steps.length,
    passed: steps.filter((s) => s.status === 'passed').length,
    failed: steps.filter((s) => s.status === 'failed').length,
    skipped: steps.filter((s) => s.status === 'skipped').length,
  };
}

/** The lines of a JSONL file in the run directory that parse (a torn last line is skipped). */
export function readJsonl<T>(runDir: string, file: string): T[] {
  const path = join(runDir, file);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as T];
      } catch {
        return [];
      }
    });
}

export function readFindings(runDir: string, file: string): FindingRecord[] {
  return readJsonl<FindingRecord>(runDir, file);
}

export async function writeSummaries(runDir: string, s: RunSummary): Promise<void> {
  await writeFile(join(runDir, 'summary.json'), JSON.stringify(s, null, 2) + '\n');
  await writeFile(join(runDir, 'summary.md'), renderMarkdown(s));
}

/** Environment entries the table already shows under their own row (Target, Ticket, the title). */
const SHOWN_ABOVE = new Set(['target', 'target_gateway', 'runbook', 'ticket']);
const ENVIRONMENT_LABEL: Record<string, string> = {
  platform_version: 'Cordum version',
  suite_git_sha: 'Runbooks version',
  operator: 'Operator',
};

const ICON: Record<StepStatus, string> = { passed: '✅ passed', failed: '❌ failed', skipped: '⏭️ skipped' };

/** Pipes and newlines would break the table a reviewer pastes into a ticket. */
function cell(s: string | undefined): string {
  return (s ?? '').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ').slice(0, 300);
}

export function renderMarkdown(s: RunSummary): string {
  const lines: string[] = [];
  lines.push(`### Runbook \`${s.runbook}\`: ${s.title}`);
  lines.push('');
  lines.push('| Field | Value |');
  lines.push('|---|---|');
  lines.push(`| Status | **${s.status.toUpperCase()}** (exit ${s.exit_code})${s.interrupted_reason ? `: ${cell(s.interrupted_reason)}` : ''} |`);
  lines.push(`| Target | ${cell(s.target)} (${cell(s.gateway)}) |`);
  if (s.ticket) lines.push(`| Ticket | ${cell(s.ticket)} |`);
  lines.push(`| Run | \`${s.run_id}\` |`);
  lines.push(`| Started / ended | ${s.start} / ${s.end} (${(s.duration_ms / 1000).toFixed(1)} s) |`);
  lines.push(`| Steps | ${s.counts.passed} passed, ${s.counts.failed} failed, ${s.counts.skipped} skipped |`);
  if (s.fail_on_new) lines.push(`| --fail-on-new | ${cell(failOnNewText(s.fail_on_new))} |`);
  const opts = Object.entries(s.options ?? {});
  if (opts.length) lines.push(`| Options | ${cell(opts.map(([k, v]) => (v === true ? `--${k}` : v === false ? `(no --${k})` : `--${k} ${v}`)).join(' '))} |`);
  for (const [k, v] of Object.entries(s.environment)) {
    if (SHOWN_ABOVE.has(k)) continue;
    lines.push(`| ${cell(ENVIRONMENT_LABEL[k] ?? k)} | ${cell(v)} |`);
  }
  lines.push('');
  lines.push('| # | Step | Result | Duration | Detail |');
  lines.push('|---|---|---|---|---|');
  s.steps.forEach((st, i) => {
    const detail = st.error ? `${st.error}${st.when_it_fails ? ` (see ${st.when_it_fails})` : ''}` : st.skip_reason ?? '';
    lines.push(`| ${i + 1} | ${cell(st.name)} | ${ICON[st.status]} | ${(st.duration_ms / 1000).toFixed(2)} s | ${cell(detail)} |`);
  });
  for (const sec of s.sections ?? []) {
    lines.push('');
    lines.push(sec.markdown.trimEnd());
  }
  if (s.findings.length > 0) {
    lines.push('');
    lines.push('**Findings**');
    lines.push('');
    lines.push('| Id | Severity | Title | Detail | Step |');
    lines.push('|---|---|---|---|---|');
    for (const f of s.findings) lines.push(`| ${cell(f.id)} | ${f.severity} | ${cell(f.title)} | ${cell(f.detail)} | ${cell(f.step)} |`);
  }
  const td = s.teardown;
  const bySteps = td.removed_by_steps ?? [];
  if (td.left_behind.length > 0 || td.removed_by_runner.length > 0 || td.earlier_runs.length > 0 || bySteps.length > 0) {
    lines.push('');
    lines.push('**Teardown**');
    lines.push('');
    for (const r of bySteps) {
      lines.push(r.ok ? `- removed by the teardown step: ${cell(r.label)} (${cell(r.action)})` : `- ⚠️ the teardown step could not remove ${cell(r.label)} (${cell(r.action)}): ${cell(r.error)}`);
    }
    for (const r of td.removed_by_runner) lines.push(`- removed by the runner: ${cell(r)}`);
    for (const l of td.left_behind) lines.push(`- ⚠️ left behind: ${cell(l.label)}: ${cell(l.error)}`);
    for (const e of td.earlier_runs) {
      lines.push(`- leftovers of an earlier run (${e.journal}): ${e.removed.length} removed, ${e.left_behind.length} still there`);
    }
  }
  if (s.errors.length > 0) {
    lines.push('');
    lines.push('**Errors outside steps**');
    lines.push('');
    for (const e of s.errors) lines.push(`- ${cell(e)}`);
  }
  lines.push('');
  return lines.join('\n');
}

export function failOnNewText(f: FailOnNew): string {
  if (f.exit_code_without_flag !== 1) return `not applied (the run's exit code is ${f.exit_code_without_flag}, not a failed check)`;
  if (!f.baseline_run) return 'no previous run of this runbook on this target: no baseline, so no failure is new; exit 0';
  if (f.new_failures.length === 0) return `no new failures against run ${f.baseline_run}: every failing step was not passing there; exit 0`;
  return `${f.new_failures.length} step(s) passed in run ${f.baseline_run} and fail now: ${f.new_failures.join('; ')}; exit 1`;
}

/** Scenario files that had a failed step in an earlier report (for --only-failed). */
export function failedScenarioFiles(reportDir: string): { files: string[]; runbook: string } {
  const path = join(reportDir, 'summary.json');
  if (!existsSync(path)) throw new UsageError(`--only-failed: ${path} does not exist (pass a reports/<run-id> directory)`);
  let text: string;
  try {
    text = readUserFile(path, { what: 'run summary', maxBytes: 64 * MiB });
  } catch (err) {
    throw err instanceof ConfigError ? new UsageError(`--only-failed: ${err.message}`) : err;
  }
  let s: RunSummary;
  try {
    s = JSON.parse(text) as RunSummary;
  } catch {
    throw new UsageError(`--only-failed: ${path} is not valid JSON`);
  }
  if (!Array.isArray(s.steps)) throw new UsageError(`--only-failed: ${path} has no 'steps' list`);
  const files = [...new Set(s.steps.filter((st) => st.status === 'failed').map((st) => st.file))];
  return { files, runbook: s.runbook };
}
