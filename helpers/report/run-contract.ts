// The contract between the runner (cli/run.ts, cli/run/) and scenario workers (helpers/steps.ts): environment
// variable names, file names inside a run directory, the interrupt channel and run ids. Kept free of
// Vitest imports so both sides can load it.
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../paths.js';



/** Where reports (and the per-target history, the drill record) live: RUNBOOK_REPORTS_DIR, else <repo>/reports. */
export function reportsRoot(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.RUNBOOK_REPORTS_DIR ?? join(REPO_ROOT, 'reports'));
}

/** Runner state (teardown journals): RUNBOOK_STATE_DIR, else <repo>/.runbook-state. */
export function stateRoot(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.RUNBOOK_STATE_DIR ?? join(REPO_ROOT, '.runbook-state'));
}

export const ENV = {
  TARGET_FILE: 'RUNBOOK_TARGET_FILE', // path of the resolved profile as JSON
  RUN_ID: 'RUNBOOK_RUN_ID',
  RUN_DIR: 'RUNBOOK_RUN_DIR', // reports/<run-id>/
  JOURNAL: 'RUNBOOK_TEARDOWN_JOURNAL',
  NAME: 'RUNBOOK_NAME',
  OPTIONS: 'RUNBOOK_OPTIONS', // the runbook's declared options as given on the command line, JSON
  /**
   * The runner starts Vitest before the run exists (while it resolves and asks the target), so the
   * values above are handed to each scenario file over this BroadcastChannel when the run opens
   * (cli/run/vitest-session.ts, helpers/steps.ts › receiveRunEnvironment). Unset: they are in the
   * environment already (collect mode).
   */
  CONTRACT_CHANNEL: 'RUNBOOK_CONTRACT_CHANNEL',
  /**
   * Tests only: `setup` or `report` holds the runner at that phase (cli/run/test-pause.ts) and says
   * so on stderr, so a test can signal it there without racing it. Unset in every real run.
   */
  TEST_PAUSE: 'RUNBOOK_TEST_PAUSE',
} as const;

export const RUN_FILES = {
  findings: 'findings.jsonl',
  artifacts: 'artifacts',
  allureResults: 'allure-results',
  target: 'target.json',
  /** What the in-worker teardown did, one JSON line per action (label, action, ok). */
  teardown: 'teardown-steps.jsonl',
  /** Markdown sections scenarios add to summary.md (ctx.summary), one JSON line each. */
  sections: 'summary-sections.jsonl',
} as const;

export const TEARDOWN_STEP = 'Teardown: remove what this run created';

/**
 * What helpers/steps.ts attaches to each step's Vitest task (task meta), so that collect mode
 * (--plan, the test that compares runbook pages with their scenarios) sees each step's deadline
 * without running it.
 */
export interface StepMeta {
  /**
   * The step's deadline in ms: the number it declares, or its function of the target resolved
   * against the profile ENV.TARGET_FILE names. Absent when it depends on a target that is not known.
   */
  deadlineMs?: number;
  /** Why a deadline function gave no usable deadline for that target (the step would fail with it). */
  deadlineProblem?: string;
}

/**
 * Why a run stops early: a signal (Ctrl-C, SIGTERM: exit 130) or the runbook's time budget (a failed
 * check). Typed, so nothing has to recover the kind from the wording; `text` is what people read.
 */
export type InterruptReason =
  | { kind: 'signal'; signal: 'SIGINT' | 'SIGTERM'; text: string }
  | { kind: 'budget'; budgetMs: number; text: string };

/**
 * Scenario workers are worker threads of the runner process, so a BroadcastChannel reaches them
 * without files or signals. Messages: {type:'interrupt', reason} stops the running step (teardown
 * still runs); {type:'force'} also cuts teardown short.
 */
export function interruptChannelName(runId: string): string {
  return `runbook-interrupt:${runId}`;
}
export type InterruptMessage = { type: 'interrupt' | 'force'; reason: InterruptReason };

/**
 * The run's environment for scenario files that started before it existed. A file asks with
 * {type:'hello'} (a message posted before it listened would be lost); the runner answers with the
 * environment (the run contract above, and the target's secrets by their env var names) or, when
 * the run never starts (setup failed, Ctrl-C during setup), with {type:'abandon'}. The answer is
 * also posted once, unasked, when it is known.
 */
export type ContractMessage = { type: 'hello' } | { type: 'contract'; env: Record<string, string> } | { type: 'abandon'; reason: string };

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
