// Errors that carry the runner's exit code. Anything else that escapes is a check failure (1)
// when it happens inside a step, or an internal error the CLI reports in one line.

export const EXIT = {
  PASSED: 0,
  CHECK_FAILED: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  TEARDOWN_LEFTOVERS: 4,
  INTERRUPTED: 130,
} as const;

export class RunbookError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad command line, unknown runbook, malformed profile/case/waiver file: exit 2. */
export class UsageError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** A configuration file is wrong; the message names the file, the field and what was expected. */
export class ConfigError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
  }
}

/** The target cannot be reached, or a precondition (binary, permission, lock) is not met: exit 3. */
export class UnreachableError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.UNREACHABLE);
  }
}

export class PreconditionError extends RunbookError {
  constructor(message: string) {
    super(message, EXIT.UNREACHABLE);
  }
}

/** Teardown could not remove everything the run created: exit 4. */
export class TeardownError extends RunbookError {
  constructor(
    message: string,
    readonly leftovers: string[],
  ) {
    super(message, EXIT.TEARDOWN_LEFTOVERS);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
