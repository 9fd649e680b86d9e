// Orchestration of one runbook run: resolve the target (or start the sandbox), check it can be
// reached, replay leftovers of earlier runs, run the scenario files with Vitest in-process, tear
// down, write the report, and turn the outcome into the documented exit code.
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { Vitest } from 'vitest/node';
import { REPO_ROOT, findRunbook, type Runbook } from '../helpers/catalog.js';
import { EXIT, PreconditionError, UnreachableError, UsageError, errorMessage } from '../helpers/errors.js';
import type { TargetProfile } from '../helpers/profile-types.js';
import {
  ENV,
  RUN_FILES,
  TEARDOWN_STEP,
  interruptChannelName,
  newRunId,
  reportsRoot,
  stateRoot,
  type InterruptMessage,
} from '../helpers/report/run-contract.js';
import { failedScenarioFiles, type RunStatus, type RunSummary, type StepRecord } from '../helpers/report/summary.js';
import { ProgressReporter } from './progress-reporter.js';

export interface RunOptions {
  name: string;
  target?: string;
  plan?: boolean;
  ticket?: string;
  onlyFailed?: string;
  /** Exit 1 only for steps that passed in the previous run of this runbook on this target. */
  failOnNew?: boolean;
  /** The runbook's declared options as given (ctx.options in scenarios). */
  options?: Record<string, string | boolean>;
}

/** Where reports and runner state live; tests point these at temp dirs. */
export { reportsRoot, stateRoot };

/** The whole webhook notification, retries included, gets at most this long. */
const NOTIFY_DEADLINE_MS = 20_000;

/** How long the run may spend tearing down after Ctrl-C before a second Ctrl-C is needed. */
const INTERRUPT_GRACE_MS = 120_000;
/** After a second Ctrl-C: the bounded window for the runner's own journal replay. */
const FORCE_TEARDOWN_MS = 10_000;

/** DEBUG=runbooks: where the runner's own time goes, in ms since the process started (the budget is < 1.5 s plus the steps). */
export function phase(name: string): void {
  if (process.env.DEBUG?.includes('runbooks')) process.stderr.write(`[runbook +${Math.round(performance.now())} ms] ${name}\n`);
}

async function withDeadline(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** Start imports early; failures surface later at the real import. */
function prefetch(...loaders: (() => Promise<unknown>)[]): void {
  for (const load of loaders) load().catch(() => {});
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}

// ---------------------------------------------------------------------------------------------
// Entry point

export async function runRunbook(opts: RunOptions): Promise<number> {
  phase('start');
  const runbook = findRunbook(opts.name);
  const files = selectFiles(runbook, opts.onlyFailed);
  if (opts.plan) return printPlan(runbook, files, opts);

  // No top-level work before this point loads Vitest, Allure or the sandbox: `list`/`--plan` stay fast.
  // From here on they will be needed, so their (slow, CPU-bound) imports overlap with waiting on the
  // target: with the sandbox, once its servers are starting (its own modules load first, so
  // redis-server and nats-server are spawned as early as possible), otherwise right away.
  const prefetchRunner = () => prefetch(() => import('vitest/node'), () => import('allure-vitest/reporter'));
  if (opts.target) prefetchRunner();
  const interrupts = new InterruptState();
  interrupts.install();
  let sandbox: { profile: TargetProfile; stop(): Promise<void> } | undefined;
  try {
    let profile: TargetProfile | undefined;
    if (opts.target) {
      const { loadProfile } = await import('../helpers/target.js');
      profile = loadProfile(opts.target);
    }
    // Before anything is started or created: a run whose report cannot be written must not begin.
    ensureWritableDir(reportsRoot(), 'report directory (RUNBOOK_REPORTS_DIR)');
    ensureWritableDir(stateRoot(), 'runner state directory (RUNBOOK_STATE_DIR)');
    if (!opts.target) {
      sandbox = await startRunnerSandbox(prefetchRunner);
      profile = sandbox.profile;
    }
    if (interrupts.reason) return interruptedInSetup(interrupts);
    phase('target resolved');
    let platform: PlatformInfo;
    try {
      platform = await preflight(runbook, profile!);
    } catch (err) {
      // A signal while the preflight waited on the target: the interruption is the cause, not the target.
      if (interrupts.reason) return interruptedInSetup(interrupts);
      throw err;
    }
    if (interrupts.reason) return interruptedInSetup(interrupts);
    phase('preflight done');
    interrupts.phase = 'run';
    return await executeRun({ runbook, files, profile: profile!, opts, interrupts, platform, sandboxed: !!sandbox });
  } finally {
    interrupts.uninstall();
    if (sandbox) await sandbox.stop().catch((err) => process.stderr.write(`sandbox stop failed: ${errorMessage(err)}\n`));
  }
}

/** Create dir if needed and check it can be written; anything else is a precondition failure (exit 3). */
function ensureWritableDir(dir: string, what: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, fsConstants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PreconditionError(`${what} ${dir} is not writable (${code ?? errorMessage(err)}); nothing was run`);
  }
}

/** Interrupted before any step ran: nothing was created on the target, so there is nothing to undo. */
function interruptedInSetup(interrupts: InterruptState): number {
  process.stderr.write(`runbook: ${interrupts.reason} during setup; nothing was created on the target and no report was written\n`);
  return EXIT.INTERRUPTED;
}

function selectFiles(runbook: Runbook, onlyFailed?: string): string[] {
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

async function startRunnerSandbox(whileStarting: () => void): Promise<{ profile: TargetProfile; stop(): Promise<void> }> {
  const { startSandbox } = await import('../sandbox/index.js');
  const { parseFaults } = await import('../sandbox/faults.js');
  phase('sandbox loaded');
  const faults = process.env.SANDBOX_FAULTS ?? '';
  try {
    parseFaults(faults);
  } catch (err) {
    throw new UsageError(`SANDBOX_FAULTS: ${errorMessage(err)}`);
  }
  // A short reload interval keeps policy runbooks fast.
  // SANDBOX_TLS=1: the sandbox serves TLS on the gateway, NATS and Redis (profile `sandbox-tls`).
  const started = startSandbox({ policyReloadMs: 1000, faults, tls: process.env.SANDBOX_TLS === '1' });
  whileStarting();
  return started;
}

// ---------------------------------------------------------------------------------------------
// Preflight: fail fast (exit 3) before creating anything, within the profile's connect timeout.

interface PlatformInfo {
  version: string;
}

async function preflight(runbook: Runbook, profile: TargetProfile): Promise<PlatformInfo> {
  const missing: string[] = [];
  if (runbook.needs.includes('redis') && !profile.redis) missing.push('redis');
  if (runbook.needs.includes('bus') && !profile.nats) missing.push('nats');
  if (runbook.needs.includes('kube') && !profile.kube) missing.push('kube');
  if (missing.length) {
    throw new PreconditionError(`runbook '${runbook.name}' needs ${missing.join(', ')}, which target '${profile.name}' does not configure`);
  }
  if (runbook.destructive && !profile.destructive.allowed) {
    throw new PreconditionError(
      `runbook '${runbook.name}' is destructive and target '${profile.name}' does not allow it (destructive.allowed: false)`,
    );
  }
  const { GatewayClient } = await import('../helpers/gateway.js');
  const gw = new GatewayClient(profile);
  const budget = profile.gateway.connect_timeout_ms + 500;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      gw.health(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${profile.gateway.connect_timeout_ms} ms`)), budget);
      }),
    ]);
    // Build info is nice to have for the report; a target without status access still runs.
    const status = await gw.status().catch(() => undefined);
    return { version: status?.build?.version ? `${status.build.version} (${status.build.commit ?? 'unknown'})` : 'unknown' };
  } catch (err) {
    if (err instanceof UnreachableError) throw err;
    throw new UnreachableError(`gateway of target '${profile.name}' at ${profile.gateway.url} is not reachable: ${errorMessage(err)}`);
  } finally {
    clearTimeout(timer);
    await gw.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Signals

/**
 * First Ctrl-C/SIGTERM: stop the running step and let teardown run. Second: cut teardown short,
 * replay the journal within a bounded time and exit. Scenario workers are worker threads of this
 * process, reached through a BroadcastChannel.
 */
class InterruptState {
  reason?: string;
  forced = false;
  /** What a signal interrupts: setup (nothing created yet), the steps and teardown, or report writing. */
  phase: 'setup' | 'run' | 'report' = 'setup';
  private channel?: BroadcastChannel;
  private listeners: (() => void)[] = [];
  private readonly handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => this.onSignal('Ctrl-C (SIGINT)')],
    ['SIGTERM', () => this.onSignal('SIGTERM')],
  ];

  install(): void {
    for (const [sig, h] of this.handlers) process.on(sig, h);
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.channel?.close();
  }

  attach(runId: string): void {
    this.channel = new BroadcastChannel(interruptChannelName(runId));
    (this.channel as unknown as { unref?: () => void }).unref?.();
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Also used for the time budget. */
  interrupt(reason: string): void {
    if (this.reason) return;
    this.reason = reason;
    const next = {
      setup: 'stopping before anything is created on the target',
      run: 'stopping the current step and tearing down (press Ctrl-C again to force)',
      report: 'steps and teardown are done; finishing the report, then exiting',
    }[this.phase];
    process.stderr.write(`\n${reason}: ${next}\n`);
    this.post({ type: 'interrupt', reason });
    for (const l of this.listeners) l();
  }

  private onSignal(what: string): void {
    if (!this.reason) return this.interrupt(`interrupted by ${what}`);
    if (this.forced || this.phase !== 'run') return;
    this.forced = true;
    process.stderr.write(`forcing: bounded teardown (${FORCE_TEARDOWN_MS / 1000} s), then exit\n`);
    this.post({ type: 'force', reason: this.reason });
    for (const l of this.listeners) l();
  }

  /** A worker that opened its channel after the signal missed it: say it again when a step starts. */
  repost(): void {
    if (this.reason) this.post({ type: this.forced ? 'force' : 'interrupt', reason: this.reason });
  }

  private post(msg: InterruptMessage): void {
    this.channel?.postMessage(msg);
  }
}

// ---------------------------------------------------------------------------------------------
// The run itself

interface ExecuteArgs {
  runbook: Runbook;
  files: string[];
  profile: TargetProfile;
  opts: RunOptions;
  interrupts: InterruptState;
  platform: PlatformInfo;
  sandboxed: boolean;
}

async function executeRun(a: ExecuteArgs): Promise<number> {
  const { runbook, profile, interrupts } = a;
  const start = new Date();
  const runId = newRunId(runbook.name, start);
  const runDir = join(reportsRoot(), runId);
  const resultsDir = join(runDir, RUN_FILES.allureResults);
  mkdirSync(resultsDir, { recursive: true });
  interrupts.attach(runId);

  const [{ registerSecret }, { secretValues }, teardown, { GatewayClient }] = await Promise.all([
    import('../helpers/evidence.js'),
    import('../helpers/target.js'),
    import('../helpers/teardown.js'),
    import('../helpers/gateway.js'),
  ]);
  for (const v of secretValues(profile)) registerSecret(v);

  // One client for everything the runner itself does against the target (leftover replay).
  let gw: InstanceType<typeof GatewayClient> | undefined;
  const exec = teardown.targetExecutor(profile, () => (gw ??= new GatewayClient(profile)));

  const journal = teardown.journalPath(stateRoot(), profile.name, runId);
  teardown.claimJournal(journal);
  try {
    return await executeClaimed(a, { runId, runDir, resultsDir, start, journal, exec, closeGateway: () => gw?.close() });
  } finally {
    teardown.releaseJournal(journal);
  }
}

interface Claimed {
  runId: string;
  runDir: string;
  resultsDir: string;
  start: Date;
  journal: string;
  exec: import('../helpers/teardown.js').TeardownExecutor;
  closeGateway: () => Promise<void> | undefined;
}

async function executeClaimed(a: ExecuteArgs, c: Claimed): Promise<number> {
  const { runbook, profile, interrupts } = a;
  const { runId, runDir, resultsDir, start, journal, exec } = c;
  const teardown = await import('../helpers/teardown.js');
  const crashed = teardown.sweepCrashedRuns(stateRoot(), reportsRoot(), profile.name, runId);
  const earlier = a.sandboxed ? [] : await replayEarlierRuns(profile, runId, exec);

  const targetFile = join(runDir, RUN_FILES.target);
  await writeFile(targetFile, JSON.stringify(profile, null, 2) + '\n');
  const environment: Record<string, string> = {
    target: profile.name,
    target_gateway: profile.gateway.url,
    platform_version: a.platform.version,
    suite_git_sha: gitSha(),
    operator: operator(),
    runbook: runbook.name,
    ...(a.opts.ticket ? { ticket: a.opts.ticket } : {}),
  };

  out(`Runbook ${runbook.name}: ${runbook.title}`);
  out(`Target ${profile.name} (${profile.gateway.url}), run ${runId}`);
  for (const gone of crashed) out(teardown.crashedRunLine(gone));
  for (const e of earlier) {
    out(`Leftovers of earlier run ${e.journal}: ${e.removed.length} removed, ${e.left_behind.length} still there`);
  }

  const budgetTimer = setTimeout(
    () => interrupts.interrupt(`time budget of ${Math.round(runbook.timeBudgetMs / 1000)} s exceeded`),
    runbook.timeBudgetMs,
  );
  budgetTimer.unref();

  phase('run prepared');
  // Interrupted while earlier leftovers were replayed: no step starts (workers would miss the signal).
  const session = interrupts.reason ? { steps: [], runErrors: [] } : await runScenarios({
    files: a.files,
    runDir,
    resultsDir,
    environment,
    interrupts,
    env: {
      [ENV.TARGET_FILE]: targetFile,
      [ENV.RUN_ID]: runId,
      [ENV.RUN_DIR]: runDir,
      [ENV.JOURNAL]: journal,
      [ENV.NAME]: runbook.name,
      [ENV.OPTIONS]: JSON.stringify(a.opts.options ?? {}),
    },
  });
  clearTimeout(budgetTimer);
  phase('scenarios done');

  // Whatever the workers could not undo (crash, force, cancelled run) is replayed from the journal.
  const replaySignal = AbortSignal.timeout(interrupts.forced ? FORCE_TEARDOWN_MS : INTERRUPT_GRACE_MS);
  const replay = await teardown.replayJournal(journal, exec, replaySignal);
  await exec.close?.();
  await c.closeGateway()?.catch(() => {});
  const stillPending = await teardown.readPending(journal);
  if (stillPending.length === 0) teardown.closeJournal(journal);

  const end = new Date();
  const verdictNow = verdict(session.steps, session.runErrors, interrupts, stillPending.length);
  const { status } = verdictNow;
  let exitCode: number = verdictNow.exitCode;
  // From here on a signal cannot change what happened on the target: the report is finished (it is
  // short and bounded) and the exit code stays the verdict, so report and exit code always agree.
  const interruptedReason = interrupts.reason;
  interrupts.phase = 'report';
  const [report, history] = await Promise.all([import('../helpers/report/write.js'), import('../helpers/history.js')]);
  const summary: RunSummary = {
    run_id: runId,
    runbook: runbook.name,
    title: runbook.title,
    target: profile.name,
    target_source: profile.source,
    gateway: profile.gateway.url,
    ticket: a.opts.ticket ?? null,
    status,
    exit_code: exitCode,
    ...(interruptedReason ? { interrupted_reason: interruptedReason } : {}),
    start: start.toISOString(),
    end: end.toISOString(),
    duration_ms: end.getTime() - start.getTime(),
    counts: { total: 0, passed: 0, failed: 0, skipped: 0 },
    steps: session.steps,
    findings: [],
    teardown: {
      removed_by_steps: [],
      removed_by_runner: replay.removed,
      left_behind: stillPending.map((p) => ({
        label: `${p.label} (${teardown.describeAction(p.action)})`,
        error: replay.leftovers.find((l) => l.label.startsWith(p.label))?.error ?? 'not removed',
      })),
      earlier_runs: earlier,
    },
    errors: session.runErrors,
    environment,
    options: a.opts.options ?? {},
    sections: [],
    ...(a.opts.onlyFailed ? { only_failed_from: a.opts.onlyFailed } : {}),
  };
  if (a.opts.failOnNew) {
    // The baseline is read before this run is appended, so a run is never its own baseline.
    const previous = await history.previousRun(reportsRoot(), profile.name, runbook.name).catch(() => undefined);
    const fresh = history.newFailures(previous, summary);
    summary.fail_on_new = {
      baseline_run: (previous as { run_id?: string } | undefined)?.run_id ?? (previous ? previous.start : null),
      new_failures: fresh,
      exit_code_without_flag: exitCode,
    };
    // Only a failed check is relaxed; unreachable, teardown leftovers, config errors and interrupts keep their code.
    if (exitCode === EXIT.CHECK_FAILED && status === 'failed' && fresh.length === 0) exitCode = EXIT.PASSED;
    summary.exit_code = exitCode;
  }
  phase('teardown replay done');
  const written = await report.writeReport({ runDir, resultsDir, summary, reportsDir: reportsRoot(), journal });
  phase('report written');
  await report.recordHistory(reportsRoot(), runDir, written.historyPoint).catch((err: unknown) => {
    process.stderr.write(`runbook: the run could not be added to the run history: ${errorMessage(err)}\n`);
  });
  out(`${summary.status.toUpperCase()}: ${summary.counts.passed} passed, ${summary.counts.failed} failed, ${summary.counts.skipped} skipped`);
  if (summary.fail_on_new) {
    const { failOnNewText } = await import('../helpers/report/summary.js');
    out(`--fail-on-new: ${failOnNewText(summary.fail_on_new)}`);
  }
  if (process.env.RUNBOOK_WEBHOOK_URL) await notify(runDir, written.index);
  phase('done');
  // The last line is the report's path, so scripts can `tail -1`.
  const shown = relative(process.cwd(), written.index);
  out(shown && !shown.startsWith('..') ? shown : written.index);
  return exitCode;
}

/** One webhook message per run, from summary.json as written (redacted); bounded, never changes the exit code. */
async function notify(runDir: string, index: string): Promise<void> {
  try {
    const [{ notifyRun }, { readFile }] = await Promise.all([import('../helpers/notify/webhook.js'), import('node:fs/promises')]);
    const summary = JSON.parse(await readFile(join(runDir, 'summary.json'), 'utf8'));
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      notifyRun(summary, { reportLocation: process.env.RUNBOOK_REPORT_URL ?? index }),
      new Promise<{ sent: false; skipped: false; attempts: number; error: string }>((r) => {
        timer = setTimeout(() => r({ sent: false, skipped: false, attempts: 0, error: `no answer within ${NOTIFY_DEADLINE_MS / 1000} s` }), NOTIFY_DEADLINE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (result.sent) process.stderr.write(`notify: sent (HTTP ${result.status}, ${result.attempts} attempt(s))\n`);
    else if (!result.skipped) process.stderr.write(`notify: not sent: ${result.error}\n`);
  } catch (err) {
    process.stderr.write(`notify: not sent: ${errorMessage(err)}\n`);
  }
}

interface EarlierRun {
  journal: string;
  removed: string[];
  left_behind: { label: string; error: string }[];
}

async function replayEarlierRuns(
  profile: TargetProfile,
  runId: string,
  exec: import('../helpers/teardown.js').TeardownExecutor,
): Promise<EarlierRun[]> {
  const t = await import('../helpers/teardown.js');
  const found: EarlierRun[] = [];
  for (const path of t.unfinishedJournals(stateRoot(), profile.name, runId)) {
    const live = t.liveOwner(path);
    if (live !== undefined) {
      out(`Run ${relative(REPO_ROOT, path)} is still running (pid ${live}); its objects are left to it`);
      continue;
    }
    const pending = await t.readPending(path);
    if (pending.length === 0) {
      t.closeJournal(path);
      continue;
    }
    const outcome = await t.replayJournal(path, exec, AbortSignal.timeout(INTERRUPT_GRACE_MS));
    if ((await t.readPending(path)).length === 0) t.closeJournal(path);
    found.push({ journal: relative(REPO_ROOT, path), removed: outcome.removed, left_behind: outcome.leftovers });
  }
  return found;
}

function verdict(
  steps: StepRecord[],
  runErrors: string[],
  interrupts: InterruptState,
  leftovers: number,
): { status: RunStatus; exitCode: number } {
  if (interrupts.reason && !/time budget/.test(interrupts.reason)) return { status: 'interrupted', exitCode: EXIT.INTERRUPTED };
  if (leftovers > 0) return { status: 'teardown_failed', exitCode: EXIT.TEARDOWN_LEFTOVERS };
  const failed = steps.filter((s) => s.status === 'failed');
  if (failed.length === 0 && runErrors.length === 0 && steps.length > 0 && !interrupts.reason) {
    return { status: 'passed', exitCode: EXIT.PASSED };
  }
  // A step that could not reach the target or found a precondition unmet is not a verdict on Cordum.
  const first = failed.find((s) => s.name !== TEARDOWN_STEP) ?? failed[0];
  if (first && /^(UnreachableError|PreconditionError)$/.test(first.error_type ?? '')) {
    return { status: 'unreachable', exitCode: EXIT.UNREACHABLE };
  }
  // A malformed case/waiver/config file a step loaded is the operator's input, not a verdict on Cordum.
  if (first && /^(ConfigError|UsageError)$/.test(first.error_type ?? '')) {
    return { status: 'config_error', exitCode: EXIT.USAGE };
  }
  if (failed.length === 0 && runErrors.length > 0) return { status: 'error', exitCode: EXIT.CHECK_FAILED };
  return { status: 'failed', exitCode: EXIT.CHECK_FAILED };
}

function gitSha(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'], timeout: 2000 })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

function operator(): string {
  const user = process.env.RUNBOOK_OPERATOR ?? process.env.USER ?? safeUser();
  return `${user}@${hostname()}`;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// Vitest, in-process (a child Vitest would add ~1 s and a second signal path)

interface SessionArgs {
  files: string[];
  runDir: string;
  resultsDir: string;
  environment: Record<string, string>;
  interrupts: InterruptState;
  env: Record<string, string>;
}

async function runScenarios(s: SessionArgs): Promise<{ steps: StepRecord[]; runErrors: string[] }> {
  const [{ createVitest }, { default: AllureReporter }, { StepCollector }, { CATEGORIES }] = await Promise.all([
    import('vitest/node'),
    import('allure-vitest/reporter'),
    import('../helpers/report/collector.js'),
    import('../helpers/report/allure.js'),
  ]);
  Object.assign(process.env, s.env); // worker threads inherit the runner's environment
  const collector = new StepCollector();
  const progress = new ProgressReporter();
  phase('vitest loaded');
  const vitest = await withoutVitestSignalHandlers(() =>
    createVitest(
      'test',
      {
        ...baseVitestConfig(s.files),
        reporters: [
          { onTestCaseReady: () => s.interrupts.repost() },
          progress,
          collector,
          new AllureReporter({ resultsDir: s.resultsDir, environmentInfo: s.environment, categories: CATEGORIES }),
        ],
        // junit.xml is written by the runner from the step records (helpers/report/junit.ts), so it
        // exists for interrupted, forced and broken runs too.
        env: s.env,
      },
      {},
      vitestStreams(),
    ),
  );

  phase('vitest created');
  const run = vitest.start().catch((err: unknown) => {
    collector.runErrors.push(`vitest: ${errorMessage(err)}`);
  });
  // A forced stop must not wait for a step that ignores its abort signal.
  const forced = new Promise<void>((resolveForced) => {
    s.interrupts.onChange(() => {
      if (!s.interrupts.forced) return;
      void vitest.cancelCurrentRun('keyboard-input').catch(() => {});
      setTimeout(resolveForced, FORCE_TEARDOWN_MS).unref();
    });
  });
  // Steps mostly wait on the network: load the report generator meanwhile.
  prefetch(() => import('../helpers/report/allure.js').then((m) => m.preloadAllure()));
  await Promise.race([run, forced]);
  collector.flushRunning(s.interrupts.reason ? `interrupted: ${s.interrupts.reason}` : 'did not finish');
  // Closing waits for workers; a worker stuck in a step that ignored its signal must not hold the report.
  if (!s.interrupts.forced) await withDeadline(vitest.close().catch(() => {}), 5_000);
  return { steps: collector.steps, runErrors: collector.runErrors };
}

function baseVitestConfig(files: string[]) {
  return {
    root: REPO_ROOT,
    config: false as const,
    watch: false,
    include: files.map((f) => relative(REPO_ROOT, f)),
    // Worker threads: one process, so Ctrl-C reaches the workers through a BroadcastChannel.
    pool: 'threads' as const,
    fileParallelism: false,
    maxWorkers: 1,
    // The runbook's order, not Vitest's default (failed/slow files first): steps of later files may
    // depend on earlier ones, and the verdict names the first failure.
    sequence: { shuffle: false, sequencer: declaredOrder(files) },
    passWithNoTests: false,
    // Nothing is written under the repo: the image runs with a read-only root filesystem.
    cache: false as const,
    // Time to verdict: no dependency pre-bundling, typecheck or coverage; one worker, files in order.
    deps: { optimizer: { ssr: { enabled: false }, client: { enabled: false } } },
    typecheck: { enabled: false },
    coverage: { enabled: false },
    hookTimeout: 130_000,
    teardownTimeout: 10_000,
  };
}

/** A Vitest sequencer that runs scenario files in the order the runbook lists them. */
function declaredOrder(files: string[]) {
  const rank = (f: string) => {
    const i = files.indexOf(resolve(f));
    return i < 0 ? files.length : i;
  };
  return class {
    shard<T>(specs: T[]): T[] {
      return specs;
    }
    sort<T extends { moduleId: string }>(specs: T[]): T[] {
      return [...specs].sort((a, b) => rank(a.moduleId) - rank(b.moduleId));
    }
  };
}

/** Vitest's own logger only prints what our reporters already say; keep it for DEBUG=runbooks. */
function vitestStreams(): { stdout: Writable; stderr: Writable } {
  if (process.env.DEBUG?.includes('runbooks')) return { stdout: process.stderr, stderr: process.stderr };
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  return { stdout: sink(), stderr: sink() };
}

/**
 * Vitest's logger installs SIGINT/SIGTERM handlers that exit the process a millisecond later; the
 * runner must keep control so teardown runs, so handlers added during creation are removed again.
 */
async function withoutVitestSignalHandlers(create: () => Promise<Vitest>): Promise<Vitest> {
  const before = {
    SIGINT: new Set(process.listeners('SIGINT')),
    SIGTERM: new Set(process.listeners('SIGTERM')),
  };
  const v = await create();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    for (const l of process.listeners(sig)) if (!before[sig].has(l)) process.off(sig, l);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// --plan: collect the steps without running anything

async function printPlan(runbook: Runbook, files: string[], opts: RunOptions): Promise<number> {
  let targetLine = 'sandbox (started for this run, stopped afterwards)';
  let destructiveAllowed = true;
  if (opts.target) {
    const { loadProfile } = await import('../helpers/target.js');
    const p = loadProfile(opts.target);
    targetLine = `${p.name} (${p.gateway.url}) from ${relative(process.cwd(), p.source) || p.source}`;
    destructiveAllowed = p.destructive.allowed;
  }
  const scenarios = await collectSteps(files);
  out(`Plan for runbook ${runbook.name}: ${runbook.title}`);
  out(`  ${runbook.summary}`);
  out(`Target: ${targetLine}`);
  out(`Destructive: ${runbook.destructive ? 'YES' + (destructiveAllowed ? '' : ' (the target does not allow it: the run would stop at preflight)') : 'no'}`);
  out(`Needs: ${runbook.needs.join(', ') || 'nothing'}; time budget ${Math.round(runbook.timeBudgetMs / 1000)} s${runbook.owner ? `; owner ${runbook.owner}` : ''}`);
  out(`Creates: ${runbook.creates.length ? '' : 'nothing'}`);
  for (const c of runbook.creates) out(`  - ${c}`);
  if (opts.ticket) out(`Ticket: ${opts.ticket}`);
  if (runbook.options.length) {
    out('Options:');
    for (const o of runbook.options) {
      const v = opts.options?.[o.name];
      const given = v === undefined ? 'not given' : v === true ? 'given' : v === false ? 'not given' : `= ${JSON.stringify(v)}`;
      out(`  --${o.name}${o.type === 'string' ? ' <value>' : ''}: ${o.description} (${given})`);
    }
  }
  out('Steps:');
  let n = 0;
  for (const sc of scenarios) {
    out(`  ${sc.title} (${relative(REPO_ROOT, sc.file)})`);
    for (const step of sc.steps) out(`    ${++n}. ${step}`);
  }
  out('Nothing was run.');
  return EXIT.PASSED;
}

async function collectSteps(files: string[]): Promise<{ file: string; title: string; steps: string[] }[]> {
  const { createVitest } = await import('vitest/node');
  const vitest = await withoutVitestSignalHandlers(() =>
    createVitest('test', { ...baseVitestConfig(files), reporters: [] }, {}, vitestStreams()),
  );
  try {
    // Collect mode imports each scenario file to register its tests; no hook or step runs.
    const { testModules } = await vitest.collect();
    const byFile = new Map(testModules.map((m) => [m.moduleId, m]));
    return files.map((file) => {
      const mod = byFile.get(file);
      if (!mod) return { file, title: '(not collected)', steps: [] };
      const errors = mod.errors();
      if (errors.length) throw new UsageError(`${relative(REPO_ROOT, file)}: ${errors[0]!.message.split('\n')[0]}`);
      const suites = [...mod.children.suites()];
      const tests = [...mod.children.allTests()];
      return { file, title: suites[0]?.name ?? relative(REPO_ROOT, file), steps: tests.map((t) => t.name) };
    });
  } finally {
    await vitest.close();
  }
}

