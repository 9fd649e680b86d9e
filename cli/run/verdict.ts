// The exit-code contract of a run, as one pure function. It reads what happened (step records with
// their own exit codes, errors outside steps, a typed interrupt reason, what teardown left behind)
// and never an error's class name or wording. README › Exit codes documents the result.
import { EXIT, type ExitCode } from '../../helpers/errors.js';
import { TEARDOWN_STEP, type InterruptReason } from '../../helpers/report/run-contract.js';
import type { RunStatus, StepRecord } from '../../helpers/report/summary.js';

export interface VerdictInput {
  steps: StepRecord[];
  /** Problems outside any step (a scenario file that did not load, an unhandled error). */
  runErrors: string[];
  /** Why the run stopped early, if it did. */
  interrupt?: InterruptReason;
  /** Objects still on the target after teardown and the runner's replay. */
  leftovers: number;
}

export interface Verdict {
  status: RunStatus;
  exitCode: ExitCode;
}

/** The status summary.json shows for a failed step's exit code. */
const STATUS_OF: Record<ExitCode, RunStatus> = {
  [EXIT.PASSED]: 'passed',
  [EXIT.CHECK_FAILED]: 'failed',
  [EXIT.USAGE]: 'config_error',
  [EXIT.UNREACHABLE]: 'unreachable',
  [EXIT.TEARDOWN_LEFTOVERS]: 'teardown_failed',
  [EXIT.INTERRUPTED]: 'interrupted',
};

export function verdict({ steps, runErrors, interrupt, leftovers }: VerdictInput): Verdict {
  // The operator stopped it: whatever the steps did, teardown ran and the report says so.
  if (interrupt?.kind === 'signal') return { status: 'interrupted', exitCode: EXIT.INTERRUPTED };
  if (leftovers > 0) return { status: 'teardown_failed', exitCode: EXIT.TEARDOWN_LEFTOVERS };
  const failed = steps.filter((s) => s.status === 'failed');
  if (failed.length === 0 && runErrors.length === 0 && steps.length > 0 && !interrupt) {
    return { status: 'passed', exitCode: EXIT.PASSED };
  }
  // The first failure decides: unreachable or a precondition (3) and bad operator input (2) are not
  // a verdict on Cordum; everything else is a failed check (1).
  const first = failed.find((s) => s.name !== TEARDOWN_STEP) ?? failed[0];
  if (first) {
    const exitCode = knownExitCode(first.exit_code);
    if (exitCode !== EXIT.PASSED) return { status: STATUS_OF[exitCode], exitCode };
    return { status: 'failed', exitCode: EXIT.CHECK_FAILED };
  }
  if (runErrors.length > 0) return { status: 'error', exitCode: EXIT.CHECK_FAILED };
  // Nothing failed, yet the run did not pass: no steps at all, or the time budget stopped it.
  return { status: 'failed', exitCode: EXIT.CHECK_FAILED };
}

function knownExitCode(code: unknown): ExitCode {
  return typeof code === 'number' && code in STATUS_OF ? (code as ExitCode) : EXIT.CHECK_FAILED;
}
