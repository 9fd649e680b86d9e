// The exit-code contract (README › Exit codes): errors carry a machine code and their exit code as
// own properties (helpers/errors.ts), each step records the exit code it asks for, and
// cli/run/verdict.ts turns a run into one exit code and status. Unit tests per exit code through
// verdict, then one real run through Vitest's worker threads, where errors lose their prototype.
import { describe, expect, it } from 'vitest';
import { verdict } from '../../cli/run/verdict.js';
import {
  ConfigError,
  EXIT,
  InterruptedError,
  MissingBinaryError,
  PreconditionError,
  StepTimeoutError,
  TargetTimeoutError,
  UnreachableError,
  UsageError,
  errorCodeOf,
  exitCodeOf,
} from '../../helpers/errors.js';
import { TEARDOWN_STEP, type InterruptReason } from '../../helpers/report/run-contract.js';
import type { StepRecord } from '../../helpers/report/summary.js';
import { expectCalm, expectReport } from '../faults/support/checks.js';
import { faultGatewayFixture, gatewayProfile } from '../faults/support/harness.js';

function step(name: string, status: StepRecord['status'], exit_code = status === 'failed' ? 1 : 0): StepRecord {
  return { scenario: 's', file: 'f.ts', name, status, duration_ms: 1, exit_code };
}

const passedRun = [step('one', 'passed'), step('two', 'passed'), step(TEARDOWN_STEP, 'passed')];
const sigint: InterruptReason = { kind: 'signal', signal: 'SIGINT', text: 'interrupted by Ctrl-C (SIGINT)' };
const budget: InterruptReason = { kind: 'budget', budgetMs: 60_000, text: 'time budget of 60 s exceeded' };

describe('verdict: one test per exit code', () => {
  it('0: every step passed', () => {
    expect(verdict({ steps: passedRun, runErrors: [], leftovers: 0 })).toEqual({ status: 'passed', exitCode: EXIT.PASSED });
  });

  it('1: a check failed (the first failure decides, later ones do not)', () => {
    const steps = [step('one', 'failed', 1), step('two', 'failed', 3), step(TEARDOWN_STEP, 'passed')];
    expect(verdict({ steps, runErrors: [], leftovers: 0 })).toEqual({ status: 'failed', exitCode: EXIT.CHECK_FAILED });
  });

  it('1: an error outside any step (a scenario file that did not load)', () => {
    expect(verdict({ steps: passedRun, runErrors: ['scenarios/x.test.ts: SyntaxError'], leftovers: 0 })).toEqual({ status: 'error', exitCode: EXIT.CHECK_FAILED });
  });

  it('1: the time budget stopped the run (a budget is not an interruption)', () => {
    const steps = [step('one', 'passed'), step('two', 'failed', 1), step(TEARDOWN_STEP, 'passed')];
    expect(verdict({ steps, runErrors: [], interrupt: budget, leftovers: 0 })).toEqual({ status: 'failed', exitCode: EXIT.CHECK_FAILED });
    expect(verdict({ steps: passedRun, runErrors: [], interrupt: budget, leftovers: 0 }).exitCode).toBe(EXIT.CHECK_FAILED);
  });

  it('1: no steps at all', () => {
    expect(verdict({ steps: [], runErrors: [], leftovers: 0 })).toEqual({ status: 'failed', exitCode: EXIT.CHECK_FAILED });
  });

  it('2: the first failure was bad operator input (a case or waiver file)', () => {
    const steps = [step('one', 'failed', 2), step(TEARDOWN_STEP, 'passed')];
    expect(verdict({ steps, runErrors: [], leftovers: 0 })).toEqual({ status: 'config_error', exitCode: EXIT.USAGE });
  });

  it('3: the first failure was the target unreachable or a precondition; a failing teardown step after it does not decide', () => {
    const steps = [step('one', 'failed', 3), step('two', 'skipped'), step(TEARDOWN_STEP, 'failed', 1)];
    expect(verdict({ steps, runErrors: [], leftovers: 0 })).toEqual({ status: 'unreachable', exitCode: EXIT.UNREACHABLE });
  });

  it('4: teardown left objects behind (whatever the steps did, unless interrupted)', () => {
    expect(verdict({ steps: passedRun, runErrors: [], leftovers: 2 })).toEqual({ status: 'teardown_failed', exitCode: EXIT.TEARDOWN_LEFTOVERS });
    const failing = [step('one', 'failed', 3), step(TEARDOWN_STEP, 'failed', 1)];
    expect(verdict({ steps: failing, runErrors: [], leftovers: 1 }).exitCode).toBe(EXIT.TEARDOWN_LEFTOVERS);
  });

  it('130: interrupted by a signal, even with leftovers and failures', () => {
    const steps = [step('one', 'failed', 130), step(TEARDOWN_STEP, 'passed')];
    expect(verdict({ steps, runErrors: [], interrupt: sigint, leftovers: 1 })).toEqual({ status: 'interrupted', exitCode: EXIT.INTERRUPTED });
    expect(verdict({ steps: passedRun, runErrors: [], interrupt: sigint, leftovers: 0 }).exitCode).toBe(EXIT.INTERRUPTED);
  });

  it('a step record with an exit code that is not ours counts as a failed check', () => {
    const steps = [step('one', 'failed', 127), step(TEARDOWN_STEP, 'passed')];
    expect(verdict({ steps, runErrors: [], leftovers: 0 })).toEqual({ status: 'failed', exitCode: EXIT.CHECK_FAILED });
    expect(verdict({ steps: [step('one', 'failed', 0)], runErrors: [], leftovers: 0 }).exitCode).toBe(EXIT.CHECK_FAILED);
  });
});

describe('errors carry their code and exit code', () => {
  it('as own properties, so a plain copy (what crosses the worker boundary) keeps them', () => {
    class Custom extends UnreachableError {}
    const cases: [Error, string, number][] = [
      [new UsageError('u'), 'RB_USAGE', 2],
      [new ConfigError('c'), 'RB_CONFIG', 2],
      [new Custom('x'), 'RB_UNREACHABLE', 3],
      [new TargetTimeoutError('t'), 'RB_TARGET_TIMEOUT', 3],
      [new PreconditionError('p'), 'RB_PRECONDITION', 3],
      [new MissingBinaryError('redis-server', 'redis-server', 'REDIS_SERVER_BIN'), 'RB_MISSING_BINARY', 3],
      [new StepTimeoutError('s', 10), 'RB_STEP_TIMEOUT', 1],
      [new InterruptedError(sigint), 'RB_INTERRUPTED', 130],
      [new InterruptedError(budget), 'RB_TIME_BUDGET', 1],
    ];
    for (const [err, code, exit] of cases) {
      expect(Object.keys(err)).toEqual(expect.arrayContaining(['code', 'exitCode']));
      const copy = structuredClone({ ...err, name: err.name, message: err.message });
      expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
      expect([errorCodeOf(copy), exitCodeOf(copy)], err.name).toEqual([code, exit]);
    }
  });

  it('anything else is a failed check (1), including an exitCode that is not one of ours', () => {
    expect(exitCodeOf(new Error('x'))).toBe(1);
    expect(exitCodeOf({ exitCode: 3 })).toBe(1);
    expect(exitCodeOf(Object.assign(new Error('child failed'), { exitCode: 2 }))).toBe(1);
    expect(exitCodeOf(undefined)).toBe(1);
  });

  it('a missing binary names the binary, the apt package and the override', () => {
    expect(new MissingBinaryError('nats-server', 'nats-server', 'NATS_SERVER_BIN').message).toBe(
      'nats-server not found on PATH or in /usr/sbin, /usr/local/sbin, /usr/local/bin, /usr/bin; install it (apt-get install nats-server) or set NATS_SERVER_BIN to its path',
    );
    expect(new MissingBinaryError('redis-server', 'redis-server', 'REDIS_SERVER_BIN', '/opt/x').message).toMatch(
      /^redis-server not found: REDIS_SERVER_BIN=\/opt\/x does not exist; .*apt-get install redis-server/,
    );
  });
});

describe('through the runner (Vitest worker threads)', () => {
  const f = faultGatewayFixture();

  it('each step records the exit code its error carries, subclasses included; the first failure decides the run', async () => {
    const { ws } = f;
    const r = await ws.cli(['exit-codes', '--target', ws.profile('fault', gatewayProfile())]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    const byName = Object.fromEntries(s.steps.map((st: StepRecord) => [st.name, [st.exit_code, st.error_code]]));
    expect(byName).toEqual({
      'An unreachable target (a subclass)': [3, 'RB_UNREACHABLE'],
      'A malformed case file (a subclass)': [2, 'RB_CONFIG'],
      'A precondition': [3, 'RB_PRECONDITION'],
      'A missing binary': [3, 'RB_MISSING_BINARY'],
      'Teardown left objects': [4, 'RB_TEARDOWN'],
      'A failed check': [1, undefined],
      "A child process's exit code": [1, undefined],
      [TEARDOWN_STEP]: [0, undefined],
    });
    expect(s.steps[0].error_type).toBe('TargetDownError');
  }, 240_000);
});
