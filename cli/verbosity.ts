// How much a run prints: --quiet (failed steps, the verdict, the report path), the default, or
// --verbose (also a failed step's last evidence and the runner's phases). The CLI sets it once in
// the environment, so the runner's log, the progress reporter and the workers read the same value.
export const VERBOSITY_ENV = 'RUNBOOK_VERBOSITY';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

export function verbosity(env: NodeJS.ProcessEnv = process.env): Verbosity {
  const v = env[VERBOSITY_ENV];
  return v === 'quiet' || v === 'verbose' ? v : 'normal';
}
