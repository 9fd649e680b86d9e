// The contract between the runner (cli/run.ts) and scenario workers (helpers/steps.ts): environment
// variable names, file names inside a run directory, the interrupt channel and run ids. Kept free of
// Vitest imports so both sides can load it.
import { randomBytes } from 'node:crypto';

export const ENV = {
  TARGET_FILE: 'RUNBOOK_TARGET_FILE', // path of the resolved profile as JSON
  RUN_ID: 'RUNBOOK_RUN_ID',
  RUN_DIR: 'RUNBOOK_RUN_DIR', // reports/<run-id>/
  JOURNAL: 'RUNBOOK_TEARDOWN_JOURNAL',
  NAME: 'RUNBOOK_NAME',
} as const;

export const RUN_FILES = {
  findings: 'findings.jsonl',
  artifacts: 'artifacts',
  allureResults: 'allure-results',
  target: 'target.json',
} as const;

export const TEARDOWN_STEP = 'Teardown: remove what this run created';

/**
 * Scenario workers are worker threads of the runner process, so a BroadcastChannel reaches them
 * without files or signals. Messages: {type:'interrupt', reason} stops the running step (teardown
 * still runs); {type:'force'} also cuts teardown short.
 */
export function interruptChannelName(runId: string): string {
  return `runbook-interrupt:${runId}`;
}
export type InterruptMessage = { type: 'interrupt'; reason: string } | { type: 'force'; reason: string };

/** `20261127-113000-smoke-ab12`: sortable, names the runbook, unique enough for one operator. */
export function newRunId(runbook: string, now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const date = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}`;
  const time = `${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `${date}-${time}-${runbook}-${randomBytes(2).toString('hex')}`;
}

/** `rb-113000ab12`: short, DNS-label safe, and unique per run, for naming objects on the target. */
export function runPrefix(runId: string): string {
  const m = /^\d{8}-(\d{6})-.*-([0-9a-f]{4})$/.exec(runId);
  return m ? `rb-${m[1]}${m[2]}` : `rb-${runId.replace(/[^a-z0-9]/gi, '').slice(-10).toLowerCase()}`;
}
