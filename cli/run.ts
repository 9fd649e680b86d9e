// One runbook run, phase by phase. Each phase lives in cli/run/: setup (what to run, against which
// target, the sandbox), preflight (can the target be reached), the run (earlier leftovers, the
// scenario files in Vitest, the time budget), teardown (the runner's journal replay), the verdict
// (a pure function of what happened) and the report. Interrupts (cli/run/interrupts.ts) follow the
// phases, so Ctrl-C means the right thing in each. This file keeps only their order.
import { findRunbook, type Runbook } from '../helpers/catalog.js';
import { EXIT } from '../helpers/errors.js';
import { suiteGitShaSoon } from '../helpers/suite-version.js';
import { anySignal, untilAborted } from '../helpers/waits.js';
import type { TargetProfile } from '../helpers/profile-types.js';
import { ENV, reportsRoot, stateRoot } from '../helpers/report/run-contract.js';
import { Interrupts } from './run/interrupts.js';
import { err, out, phase, waiting, type Waiting } from './run/log.js';
import { runEnvironment } from './run/environment.js';
import { printPlan } from './run/plan.js';
import { preflight, type PlatformInfo } from './run/preflight.js';
import { releaseTarget, resolveTarget, selectFiles, type Target } from './run/setup.js';
import { testPause } from './run/test-pause.js';
import type { ScenarioSession } from './run/vitest-session.js';
import { verdict } from './run/verdict.js';

export interface RunOptions {
  name: string;
  target?: string;
  plan?: boolean;
  /** --plan's format: text (default) or json. */
  output?: 'text' | 'json';
  ticket?: string;
  onlyFailed?: string;
  /** Exit 1 only for steps that passed in the previous run of this runbook on this target. */
  failOnNew?: boolean;
  /** The runbook's declared options as given (ctx.options in scenarios). */
  options?: Record<string, string | boolean>;
}

/** How long the preflight waits for Vitest to begin its run (normally a few hundred ms). */
const LAUNCH_WAIT_MS = 3_000;

/** Where reports and runner state live; tests point these at temp dirs. */
export { reportsRoot, stateRoot };

export async function runRunbook(opts: RunOptions): Promise<number> {
  phase('start');
  const runbook = findRunbook(opts.name);
  const files = selectFiles(runbook, opts.onlyFailed);
  if (opts.plan) return printPlan(runbook, files, opts);

  const interrupts = new Interrupts();
  interrupts.install();
  void suiteGitShaSoon(); // git answers while the rest starts; the report's environment awaits it
  let target: Target | undefined;
  // The first line at once, before anything slow: what the run is waiting on.
  let wait: Waiting = waiting(
    opts.target
      ? `Runbook ${runbook.name}: loading target ${opts.target}`
      : `Runbook ${runbook.name}: starting a sandbox Cordum (redis-server, nats-server)`,
  );
  // Vitest, its worker and the scenario files load while the target is resolved and asked; the
  // files wait for the run (cli/run/vitest-session.ts). Abandoned unless the run starts.
  const session = (await import('./run/vitest-session.js')).startSession({ files, interrupts });
  try {
    // Setup and preflight: nothing exists on the target yet, so a stop has nothing to undo.
    await testPause('setup', interrupts);
    target = await resolveTarget(opts.target);
    wait.done(target.sandbox ? `Sandbox up: gateway ${target.profile.gateway.url}` : undefined);
    if (interrupts.reason) return stoppedBeforeRun(interrupts);
    phase('target resolved');
    // Vitest's run first: once it has begun, its thread sets the run up (~0.1 s) while this thread
    // asks the target; asked first, the target's answer would wait for that set-up after all.
    // Bounded, and a Ctrl-C ends the wait.
    await untilAborted(session.launched, anySignal(AbortSignal.timeout(LAUNCH_WAIT_MS), interrupts.signal)!).catch(() => {});
    if (interrupts.reason) return stoppedBeforeRun(interrupts);
    phase('vitest running');
    interrupts.enter('preflight');
    wait = waiting(`Preflight: asking ${target.profile.gateway.url}/health`);
    let platform: PlatformInfo;
    try {
      platform = await preflight(runbook, target.profile, interrupts.signal);
    } catch (e) {
      // A signal while the preflight waited on the target: the interruption is the cause, not the target.
      if (interrupts.reason) return stoppedBeforeRun(interrupts);
      throw e;
    }
    wait.done(`Preflight: the gateway answered (Cordum ${platform.version})`);
    if (interrupts.reason) return stoppedBeforeRun(interrupts);
    phase('preflight done');
    interrupts.enter('run');
    return await execute({ runbook, session, profile: target.profile, platform, sandboxed: !!target.sandbox, opts, interrupts });
  } finally {
    wait.done();
    await session.abandon(interrupts.reason ? interrupts.reason.text : 'the runner stopped before the run');
    await releaseTarget(target);
    interrupts.uninstall();
  }
}

interface ExecuteArgs {
  runbook: Runbook;
  session: ScenarioSession;
  profile: TargetProfile;
  platform: PlatformInfo;
  sandboxed: boolean;
  opts: RunOptions;
  interrupts: Interrupts;
}

async function execute(a: ExecuteArgs): Promise<number> {
  const { runbook, profile, interrupts, opts } = a;
  // Loaded only for a real run (the HTTP client, Vitest, the report writer), so --plan stays quick.
  const [{ openRun }, { replayEarlierRuns, finishTeardown }, { reportRun }] = await Promise.all([
    import('./run/open-run.js'),
    import('./run/teardown.js'),
    import('./run/report.js'),
  ]);
  const run = await openRun(runbook, profile, interrupts);
  try {
    // Runs that died without cleaning up (SIGKILL, power loss): their owner files go, their report folders are marked incomplete.
    const { sweepCrashedRuns, crashedRunLine } = await import('../helpers/teardown.js');
    const crashed = sweepCrashedRuns(stateRoot(), reportsRoot(), profile.name, run.runId);
    // A fresh sandbox has no history: only a real target can hold leftovers of earlier runs.
    const earlier = a.sandboxed ? [] : await replayEarlierRuns(profile, run.runId, run.exec, interrupts);
    const environment = await runEnvironment(runbook, profile, a.platform.version, opts.ticket);
    out(`Runbook ${runbook.name}: ${runbook.title}`);
    out(`Target ${profile.name} (${profile.gateway.url}), run ${run.runId}`);
    for (const gone of crashed) out(crashedRunLine(gone));
    for (const e of earlier) {
      out(`Leftovers of earlier run ${e.journal}: ${e.removed.length} removed, ${e.left_behind.length} still there`);
    }

    const cancelBudget = interrupts.budget(runbook.timeBudgetMs);
    phase('run prepared');
    // Interrupted while earlier leftovers were replayed: no step starts (workers would miss the signal).
    const session = interrupts.reason ? { steps: [], runErrors: [] } : await a.session.run({
      resultsDir: run.resultsDir,
      environment,
      env: {
        [ENV.TARGET_FILE]: run.targetFile,
        [ENV.RUN_ID]: run.runId,
        [ENV.RUN_DIR]: run.runDir,
        [ENV.JOURNAL]: run.journal,
        [ENV.NAME]: runbook.name,
        [ENV.OPTIONS]: JSON.stringify(opts.options ?? {}),
      },
    });
    cancelBudget();
    phase('scenarios done');

    interrupts.enter('teardown');
    const teardown = await finishTeardown(run.journal, run.exec, interrupts);
    await run.closeGateway();

    const interrupt = interrupts.reason;
    const outcome = verdict({ steps: session.steps, runErrors: session.runErrors, interrupt, leftovers: teardown.stillPending.length });
    // From here on a signal cannot change what happened on the target: the report is finished and
    // the exit code stays the verdict, so report and exit code always agree.
    interrupts.enter('report');
    return await reportRun({
      runbook,
      profile,
      run,
      ticket: opts.ticket,
      onlyFailed: opts.onlyFailed,
      failOnNew: opts.failOnNew,
      options: opts.options,
      environment,
      earlier,
      session,
      teardown,
      verdict: outcome,
      interrupt,
      interrupts,
    });
  } finally {
    run.release();
  }
}

/** Interrupted before any step ran: nothing was created on the target, so there is nothing to undo. */
function stoppedBeforeRun(interrupts: Interrupts): number {
  err(`runbook: ${interrupts.reason!.text} during setup; nothing was created on the target and no report was written`);
  return EXIT.INTERRUPTED;
}
