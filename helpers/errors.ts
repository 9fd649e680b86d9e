// Every error that decides the runner's exit code lives here, derived from RunbookError. Each has a
// readable class name and a fixed machine `code` (RB_…) plus its `exitCode`, both kept as own
// properties: step errors cross from Vitest's worker threads to the runner as plain objects (the
// prototype is lost on the way), and the verdict reads these two fields, never the class name or
// the wording. Anything else that escapes is a check failure (1) inside a step, or an internal
// error the CLI reports in one line.
import type { InterruptReason } from './report/run-contract.js';

export const EXIT = {
  PASSED: 0,
  CHECK_FAILED: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  TEARDOWN_LEFTOVERS: 4,
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Stable machine codes: callers, reports and tests branch on these, so wording can change safely. */
export const ERROR_CODE = {
  USAGE: 'RB_USAGE',
  CONFIG: 'RB_CONFIG',
  UNREACHABLE: 'RB_UNREACHABLE',
  TARGET_TIMEOUT: 'RB_TARGET_TIMEOUT',
  RESPONSE_TOO_LARGE: 'RB_RESPONSE_TOO_LARGE',
  PRECONDITION: 'RB_PRECONDITION',
  MISSING_BINARY: 'RB_MISSING_BINARY',
  TEARDOWN: 'RB_TEARDOWN',
  INTERRUPTED: 'RB_INTERRUPTED',
  TIME_BUDGET: 'RB_TIME_BUDGET',
  STEP_TIMEOUT: 'RB_STEP_TIMEOUT',
  BUNDLE_INTEGRITY: 'RB_BUNDLE_INTEGRITY',
  CHECK_FAILED: 'RB_CHECK_FAILED',
} as const;

export type ErrorCode = (typeof ERROR_CODE)[keyof typeof ERROR_CODE];

export class RunbookError extends Error {
  /** Own, enumerable: survives Vitest's error serialization between worker and runner. */
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad command line, unknown runbook: exit 2. */
export class UsageError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.USAGE, ERROR_CODE.USAGE);
  }
}

/** A configuration file is wrong (profile, case file, waiver file); the message names the file, the field and what was expected: exit 2. */
export class ConfigError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.USAGE, ERROR_CODE.CONFIG);
  }
}

/** The target cannot be reached (refused, reset, does not resolve): exit 3. */
export class UnreachableError extends RunbookError {
  constructor(message: string, code: ErrorCode = ERROR_CODE.UNREACHABLE, options?: { cause?: unknown }) {
    super(message, EXIT.UNREACHABLE, code, options);
  }
}

/** The target answered too slowly: no complete answer (headers and body) within the request deadline: exit 3. */
export class TargetTimeoutError extends UnreachableError {
  constructor(message: string) {
    super(message, ERROR_CODE.TARGET_TIMEOUT);
  }
}

/** The target sent more than the client reads for one answer (an endless or runaway body): exit 3. */
export class ResponseTooLargeError extends UnreachableError {
  constructor(message: string) {
    super(message, ERROR_CODE.RESPONSE_TOO_LARGE);
  }
}

/** A precondition (binary, permission, lock, a `needs` the profile lacks) is not met: exit 3. */
export class PreconditionError extends RunbookError {
  constructor(message: string, code: ErrorCode = ERROR_CODE.PRECONDITION) {
    super(message, EXIT.UNREACHABLE, code);
  }
}

/** redis-server or nats-server is not installed (or the override names a missing file): exit 3. */
export class MissingBinaryError extends PreconditionError {
  constructor(
    readonly binary: string,
    /** The Debian/Ubuntu package that provides it. */
    readonly aptPackage: string,
    /** The environment variable that overrides the search, e.g. REDIS_SERVER_BIN. */
    readonly overrideEnv: string,
    /** The override's value when it was set (and names a missing file). */
    overriddenWith?: string,
  ) {
    super(
      overriddenWith
        ? `${binary} not found: ${overrideEnv}=${overriddenWith} does not exist; point ${overrideEnv} at the ${binary} binary or unset it (install: apt-get install ${aptPackage})`
        : `${binary} not found on PATH or in /usr/sbin, /usr/local/sbin, /usr/local/bin, /usr/bin; install it (apt-get install ${aptPackage}) or set ${overrideEnv} to its path`,
      ERROR_CODE.MISSING_BINARY,
    );
  }
}

/** Teardown could not remove everything the run created: exit 4. */
export class TeardownError extends RunbookError {
  constructor(
    message: string,
    readonly leftovers: string[],
  ) {
    super(message, EXIT.TEARDOWN_LEFTOVERS, ERROR_CODE.TEARDOWN);
  }
}

/**
 * The run was stopped while this step ran. A signal (Ctrl-C, SIGTERM) is exit 130; the runbook's
 * time budget running out is a failed check (1): the run took longer than its page promises.
 */
export class InterruptedError extends RunbookError {
  readonly reason: InterruptReason;

  constructor(reason: InterruptReason) {
    const signal = reason.kind === 'signal';
    super(`interrupted: ${reason.text}`, signal ? EXIT.INTERRUPTED : EXIT.CHECK_FAILED, signal ? ERROR_CODE.INTERRUPTED : ERROR_CODE.TIME_BUDGET);
    this.reason = reason;
  }
}

/**
 * A check about the target failed: the platform did something other than what the runbook page
 * says (exit 1). Its `name` is 'AssertionError' on purpose: Allure, Vitest and CI test views tell an
 * assertion failure ("failed", category "Product defects") from code that threw ("broken") by that
 * name, and an unreachable target or unmet precondition must stay "broken".
 */
export class CheckFailedError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.CHECK_FAILED, ERROR_CODE.CHECK_FAILED);
    this.name = 'AssertionError';
  }
}

/** Fail the running check with what was expected and what the platform did. */
export function checkFailed(message: string): never {
  throw new CheckFailedError(message);
}

/** A step ran past its own deadline (its timeoutMs) and was aborted: a failed check (1). */
export class StepTimeoutError extends RunbookError {
  constructor(step: string, ms: number) {
    super(`step '${step}' did not finish within ${ms} ms (its timeoutMs); it was aborted`, EXIT.CHECK_FAILED, ERROR_CODE.STEP_TIMEOUT);
  }
}

/** The report on disk does not match its own manifest: packing or uploading it would launder the change (1). */
export class BundleIntegrityError extends RunbookError {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message, EXIT.CHECK_FAILED, ERROR_CODE.BUNDLE_INTEGRITY);
  }
}

const EXIT_CODES = new Set<number>(Object.values(EXIT));

/**
 * The exit code an error asks for, read from its own `code` and `exitCode` properties, so a
 * RunbookError that crossed the worker boundary as a plain object still counts. Anything else is a
 * failed check (1): an `exitCode` without an RB_ code is someone else's (a child process's, say).
 */
export function exitCodeOf(err: unknown): ExitCode {
  if (!errorCodeOf(err)) return EXIT.CHECK_FAILED;
  const code = (err as { exitCode?: unknown }).exitCode;
  return typeof code === 'number' && EXIT_CODES.has(code) ? (code as ExitCode) : EXIT.CHECK_FAILED;
}

/** The machine code (RB_…) of a RunbookError, serialized or not; undefined for anything else. */
export function errorCodeOf(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && (Object.values(ERROR_CODE) as string[]).includes(code) ? (code as ErrorCode) : undefined;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
