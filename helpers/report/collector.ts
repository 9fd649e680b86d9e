// A Vitest reporter that records each runbook step's outcome in run order, for summary.json and the
// exit code. A step's error arrives from the worker thread as a plain object, so its exit code and
// machine code are read from the error's own fields (helpers/errors.ts), never from its class name.
// It never prints: cli/progress-reporter.ts does the talking.
import { relative } from 'node:path';
import type { Reporter, SerializedError, TestCase, TestModule } from 'vitest/node';
import { REPO_ROOT } from '../catalog.js';
import { EXIT, errorCodeOf, exitCodeOf } from '../errors.js';
import type { StepRecord } from './summary.js';

export interface CollectorOptions {
  /** The file a report names for a scenario module (a compiled copy's source file); default: the module itself. */
  fileOf?: (moduleId: string) => string;
}

export class StepCollector implements Reporter {
  readonly steps: StepRecord[] = [];
  private readonly fileOf: (moduleId: string) => string;

  constructor(opts: CollectorOptions = {}) {
    this.fileOf = opts.fileOf ?? ((id) => id);
  }

  /** Problems outside any step: a scenario file that failed to load, an unhandled rejection. */
  readonly runErrors: string[] = [];
  /** Steps that started but never reported (cancelled mid-step). */
  private readonly running = new Map<string, TestCase>();

  onTestCaseReady(testCase: TestCase): void {
    this.running.set(testCase.id, testCase);
  }

  onTestCaseResult(testCase: TestCase): void {
    this.running.delete(testCase.id);
    this.steps.push(toRecord(testCase, this.fileOf));
  }

  onTestModuleEnd(testModule: TestModule): void {
    for (const err of testModule.errors()) {
      this.runErrors.push(`${relative(REPO_ROOT, this.fileOf(testModule.moduleId))}: ${firstLine(err.message)}`);
    }
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): void {
    for (const err of unhandled) this.runErrors.push(`unhandled error: ${firstLine(err.message ?? String(err))}`);
  }

  /** Steps still marked running when the run was cut short, recorded as failed with the cause's exit code. */
  flushRunning(reason: string, exitCode: number): void {
    for (const tc of this.running.values()) {
      this.steps.push({ ...toRecord(tc, this.fileOf), status: 'failed', error: reason, exit_code: exitCode });
    }
    this.running.clear();
  }
}

function toRecord(tc: TestCase, fileOf: (moduleId: string) => string): StepRecord {
  const result = tc.result();
  const diag = tc.diagnostic();
  const scenario = tc.parent.type === 'suite' ? tc.parent.name : '';
  const rec: StepRecord = {
    scenario,
    file: relative(REPO_ROOT, fileOf(tc.module.moduleId)),
    name: tc.name,
    status: result.state === 'passed' ? 'passed' : result.state === 'failed' ? 'failed' : 'skipped',
    duration_ms: Math.round(diag?.duration ?? 0),
    exit_code: EXIT.PASSED,
  };
  if (result.state === 'failed') {
    const e = result.errors[0];
    rec.error = e ? `${e.name && e.name !== 'Error' && e.name !== 'AssertionError' ? e.name + ': ' : ''}${e.message}` : 'failed';
    rec.error_type = e?.name;
    rec.exit_code = exitCodeOf(e);
    const code = errorCodeOf(e);
    if (code) rec.error_code = code;
    const link = (e as { when_it_fails?: unknown } | undefined)?.when_it_fails;
    if (typeof link === 'string') rec.when_it_fails = link;
    const evidence = (e as { evidence?: unknown } | undefined)?.evidence;
    if (typeof evidence === 'string') rec.evidence = evidence;
  }
  if (result.state === 'skipped' && result.note) rec.skip_reason = result.note;
  return rec;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
