// Setup: what to run (the runbook's scenario files, or only those that failed in a given report)
// and where (a target profile, or a sandbox started for this run). Nothing exists on the target
// yet, so a stop here has nothing to undo.
import { accessSync, constants as fsConstants, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import { PreconditionError, UsageError, errorMessage } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { reportsRoot, stateRoot } from '../../helpers/report/run-contract.js';
import { failedScenarioFiles } from '../../helpers/report/summary.js';
import { err, phase } from './log.js';

export interface Target {
  profile: TargetProfile;
  /** Present when the runner started a sandbox for this run; stopped when the run ends. */
  sandbox?: { stop(): Promise<void> };
}

/** The scenario files to run: all of the runbook's, or (--only-failed) those with failed steps in that report. */
export function selectFiles(runbook: Runbook, onlyFailed?: string): string[] {
  if (!onlyFailed) return runbook.scenarios;
  const prev = failedScenarioFiles(resolve(onlyFailed));
  if (prev.runbook !== runbook.name) {
    throw new UsageError(`--only-failed: ${onlyFailed} is a report of runbook '${prev.runbook}', not '${runbook.name}'`);
  }
  const wanted = new Set(prev.files.map((f) => resolve(REPO_ROOT, f)));
  const files = runbook.scenarios.filter((f) => wanted.has(f));
  if (files.length === 0) throw new UsageError(`--only-failed: no failed steps in ${onlyFailed}; nothing to rerun`);
  return files;
}

/**
 * The profile named by --target, or a sandbox started for this run. A run whose report cannot be
 * written is refused before anything is started.
 */
export async function resolveTarget(targetArg: string | undefined): Promise<Target> {
  // Vitest is already starting alongside (cli/run/vitest-session.ts › startSession).
  let profile: TargetProfile | undefined;
  if (targetArg) {
    const { loadProfile } = await import('../../helpers/target.js');
    profile = loadProfile(targetArg);
  }
  ensureWritableDir(reportsRoot(), 'report directory (RUNBOOK_REPORTS_DIR)');
  ensureWritableDir(stateRoot(), 'runner state directory (RUNBOOK_STATE_DIR)');
  if (profile) return { profile };
  const sandbox = await startRunnerSandbox();
  return { profile: sandbox.profile, sandbox };
}

/** Stop the sandbox this run started, if any; a failure is reported, never thrown. */
export async function releaseTarget(target: Target | undefined): Promise<void> {
  await target?.sandbox?.stop().catch((e: unknown) => err(`sandbox stop failed: ${errorMessage(e)}`));
}

/** Create dir if needed and check it can be written; anything else is a precondition failure (exit 3). */
function ensureWritableDir(dir: string, what: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, fsConstants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PreconditionError(`${what} ${dir} is not writable (${code ?? errorMessage(e)}); nothing was run`);
  }
}

async function startRunnerSandbox(): Promise<{ profile: TargetProfile; stop(): Promise<void> }> {
  const { startSandbox } = await import('../../sandbox/index.js');
  const { parseFaults } = await import('../../sandbox/faults.js');
  const { parseSandboxState } = await import('../../sandbox/lived-in.js');
  phase('sandbox loaded');
  const faults = process.env.SANDBOX_FAULTS ?? '';
  try {
    parseFaults(faults);
  } catch (e) {
    throw new UsageError(`SANDBOX_FAULTS: ${errorMessage(e)}`);
  }
  // SANDBOX_STATE=lived-in: the sandbox starts with history (sandbox/lived-in.ts); default fresh.
  let state;
  try {
    state = parseSandboxState(process.env.SANDBOX_STATE);
  } catch (e) {
    throw new UsageError(`SANDBOX_STATE: ${errorMessage(e)}`);
  }
  // A short reload interval keeps policy runbooks fast.
  // SANDBOX_TLS=1: the sandbox serves TLS on the gateway, NATS and Redis (profile `sandbox-tls`).
  return startSandbox({ policyReloadMs: 1000, faults, tls: process.env.SANDBOX_TLS === '1', state });
}
