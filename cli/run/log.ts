// What the runner itself prints. stdout carries the run's story for the operator (one line per
// event, the report path last, so scripts can `tail -1`); stderr carries causes and, with
// DEBUG=runbooks, where the runner's own time goes.

/** One line on stdout. */
export function out(line: string): void {
  process.stdout.write(line + '\n');
}

/** One line on stderr. */
export function err(line: string): void {
  process.stderr.write(line + '\n');
}

export function debugging(): boolean {
  return !!process.env.DEBUG?.includes('runbooks');
}

/**
 * DEBUG=runbooks: a phase boundary, in ms since the process started (`pnpm bench` splits the
 * runner's time on these names, so keep them stable).
 */
export function phase(name: string): void {
  if (debugging()) err(`[runbook +${Math.round(performance.now())} ms] ${name}`);
}

/** Start imports early; failures surface later at the real import. */
export function prefetch(...loaders: (() => Promise<unknown>)[]): void {
  for (const load of loaders) load().catch(() => {});
}
