// The report phase: the verdict is known. summary.json/.md and junit.xml are written and the
// verdict line is printed at once; then the HTML report and the manifest (the slow part), the run is
// added to the target's history, the webhook is sent, and the report's path is the last line. A signal here changes nothing: the report
// is completed and the exit code stays the verdict, so report and exit code always agree.
import { relative } from 'node:path';
import type { Runbook } from '../../helpers/catalog.js';
import { EXIT, errorMessage, type ExitCode } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { reportsRoot, type InterruptReason } from '../../helpers/report/run-contract.js';
import type { RunSummary } from '../../helpers/report/summary.js';
import type { Interrupts } from './interrupts.js';
import { err, phase, result, waiting } from './log.js';
import { notify } from './notify.js';
import { testPause } from './test-pause.js';
import type { SessionResult } from './vitest-session.js';
import { leftBehind, type EarlierRun, type FinalTeardown } from './teardown.js';
import type { Verdict } from './verdict.js';

export interface RunRecord {
  runId: string;
  runDir: string;
  resultsDir: string;
  start: Date;
  journal: string;
}

export interface ReportArgs {
  runbook: Runbook;
  profile: TargetProfile;
  run: RunRecord;
  ticket?: string;
  onlyFailed?: string;
  failOnNew?: boolean;
  options?: Record<string, string | boolean>;
  environment: Record<string, string>;
  earlier: EarlierRun[];
  session: SessionResult;
  teardown: FinalTeardown;
  verdict: Verdict;
  /** Why the run stopped early, as it stood when the verdict was reached. */
  interrupt?: InterruptReason;
  interrupts: Interrupts;
}

/** Write the report and say the verdict; returns the exit code (the verdict, or --fail-on-new's). */
export async function reportRun(a: ReportArgs): Promise<ExitCode> {
  const end = new Date();
  const [report, history] = await Promise.all([import('../../helpers/report/write.js'), import('../../helpers/history.js')]);
  const { status } = a.verdict;
  let exitCode: ExitCode = a.verdict.exitCode;
  const summary: RunSummary = {
    run_id: a.run.runId,
    runbook: a.runbook.name,
    title: a.runbook.title,
    target: a.profile.name,
    target_source: a.profile.source,
    gateway: a.profile.gateway.url,
    ticket: a.ticket ?? null,
    status,
    exit_code: exitCode,
    ...(a.interrupt ? { interrupted_reason: a.interrupt.text } : {}),
    start: a.run.start.toISOString(),
    end: end.toISOString(),
    duration_ms: end.getTime() - a.run.start.getTime(),
    counts: { total: 0, passed: 0, failed: 0, skipped: 0 },
    steps: a.session.steps,
    findings: [],
    teardown: {
      removed_by_steps: [],
      removed_by_runner: a.teardown.replay.removed,
      left_behind: leftBehind(a.teardown),
      earlier_runs: a.earlier,
    },
    errors: a.session.runErrors,
    environment: a.environment,
    options: a.options ?? {},
    sections: [],
    ...(a.onlyFailed ? { only_failed_from: a.onlyFailed } : {}),
  };
  if (a.failOnNew) {
    // The baseline is read before this run is appended, so a run is never its own baseline.
    const previous = await history.previousRun(reportsRoot(), a.profile.name, a.runbook.name).catch(() => undefined);
    const fresh = history.newFailures(previous, summary);
    summary.fail_on_new = {
      baseline_run: (previous as { run_id?: string } | undefined)?.run_id ?? (previous ? previous.start : null),
      new_failures: fresh,
      exit_code_without_flag: exitCode,
    };
    // Only a failed check is relaxed; unreachable, teardown leftovers, config errors and interrupts keep their code.
    if (exitCode === EXIT.CHECK_FAILED && status === 'failed' && fresh.length === 0) exitCode = EXIT.PASSED;
    summary.exit_code = exitCode;
  }
  phase('teardown replay done');
  const files = { runDir: a.run.runDir, resultsDir: a.run.resultsDir, summary, reportsDir: reportsRoot(), journal: a.run.journal };
  await report.writeSummaryFiles(files);
  phase('summary written');
  // The verdict as soon as summary.json/.md say it; the HTML report follows, and the process exits
  // only once every report file (the manifest last) is complete.
  result(`${summary.status.toUpperCase()}: ${summary.counts.passed} passed, ${summary.counts.failed} failed, ${summary.counts.skipped} skipped`);
  if (summary.fail_on_new) {
    const { failOnNewText } = await import('../../helpers/report/summary.js');
    result(`--fail-on-new: ${failOnNewText(summary.fail_on_new)}`);
  }
  await testPause('report', a.interrupts);
  const html = waiting('Writing the HTML report');
  let written: Awaited<ReturnType<typeof report.finishReport>>;
  try {
    written = await report.finishReport(files);
  } finally {
    html.done();
  }
  phase('report written');
  await report.recordHistory(reportsRoot(), a.run.runDir, written.historyPoint).catch((e: unknown) => {
    err(`runbook: the run could not be added to the run history: ${errorMessage(e)}`);
  });
  if (process.env.RUNBOOK_WEBHOOK_URL) await notify(a.run.runDir, written.index);
  phase('done');
  // The last line is the report's path, so scripts can `tail -1`.
  const shown = relative(process.cwd(), written.index);
  result(shown && !shown.startsWith('..') ? shown : written.index);
  return exitCode;
}
