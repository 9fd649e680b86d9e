// Ctrl-C and SIGTERM, in every phase of a run. The first starts an orderly stop: what is waiting
// on the target is aborted, the running step stops, teardown still runs and the report is written.
// The second forces a bounded stop: teardown gets a short window, the runner replays what is left
// from the journal, and the process exits within FORCED_EXIT_MS whatever is still running. Scenario
// workers are worker threads of this process, reached through a BroadcastChannel.
import { EXIT, InterruptedError, errorMessage } from '../../helpers/errors.js';
import { redact } from '../../helpers/redact.js';
import { interruptChannelName, type InterruptMessage, type InterruptReason } from '../../helpers/report/run-contract.js';
import { err } from './log.js';

/**
 * setup: resolving the target, starting the sandbox; preflight: asking the target; nothing is
 * created in either. run: the steps (with their in-worker teardown); teardown: the runner's own
 * journal replay; report: the verdict is known and the report is being written.
 */
export type RunPhase = 'setup' | 'preflight' | 'run' | 'teardown' | 'report';

/** After the first Ctrl-C: how long teardown may take before a second Ctrl-C is needed. */
export const INTERRUPT_GRACE_MS = 120_000;
/** After the second Ctrl-C: the bounded window for the steps' teardown, and again for the runner's replay. */
export const FORCE_TEARDOWN_MS = 10_000;
/** After the second Ctrl-C the process exits within this, whatever is still running (exit 130). */
export const FORCED_EXIT_MS = 30_000;

const SIGNAL_NAMES = { SIGINT: 'Ctrl-C (SIGINT)', SIGTERM: 'SIGTERM' } as const;

const FIRST: Record<RunPhase, string> = {
  setup: 'stopping before anything is created on the target',
  preflight: 'stopping before anything is created on the target',
  run: 'stopping the current step and tearing down (press Ctrl-C again to force)',
  teardown: 'teardown goes on so nothing is left behind (press Ctrl-C again to force a bounded stop)',
  report: 'steps and teardown are done; finishing the report, then exiting',
};

const FORCED: Record<RunPhase, string> = {
  setup: `forcing: exit within ${FORCED_EXIT_MS / 1000} s`,
  preflight: `forcing: exit within ${FORCED_EXIT_MS / 1000} s`,
  run: `forcing: bounded teardown (${FORCE_TEARDOWN_MS / 1000} s), then exit`,
  teardown: `forcing: bounded teardown (${FORCE_TEARDOWN_MS / 1000} s), then exit`,
  report: `forcing: the report gets at most ${FORCED_EXIT_MS / 1000} s, then exit`,
};

export class Interrupts {
  /** Why the run is stopping; the first signal wins over a time budget that ran out before it. */
  reason?: InterruptReason;
  forced = false;
  phase: RunPhase = 'setup';
  private readonly stopping = new AbortController();
  private readonly forcing = new AbortController();
  private channel?: BroadcastChannel;
  private signals = 0;
  private hardExit?: NodeJS.Timeout;
  private readonly handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => this.onSignal('SIGINT')],
    ['SIGTERM', () => this.onSignal('SIGTERM')],
  ];

  /** Aborted at the first Ctrl-C/SIGTERM or when the time budget runs out: pass it to whatever waits. */
  get signal(): AbortSignal {
    return this.stopping.signal;
  }

  /**
   * The runner owns the process while a run lasts: signals, and unhandled rejections, which would
   * otherwise end it at once with exit 1 and a stack trace, skipping teardown and the report.
   */
  install(): void {
    for (const [sig, h] of this.handlers) process.on(sig, h);
    process.on('unhandledRejection', this.onUnhandled);
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    process.off('unhandledRejection', this.onUnhandled);
    clearTimeout(this.hardExit);
    this.channel?.close();
  }

  enter(phase: RunPhase): void {
    this.phase = phase;
  }

  /** Scenario workers of run `runId` hear interrupts from now on. */
  attach(runId: string): void {
    this.channel = new BroadcastChannel(interruptChannelName(runId));
    (this.channel as unknown as { unref?: () => void }).unref?.();
  }

  /** The time budget ran out (or the first signal came): stop in order. */
  interrupt(reason: InterruptReason): void {
    if (this.reason) return;
    this.reason = reason;
    err(`\n${reason.text}: ${FIRST[this.phase]}`);
    this.stopping.abort(new InterruptedError(reason));
    this.post('interrupt');
  }

  /** Stop the run in order once the runbook's time budget is spent; returns the cancel function. */
  budget(ms: number): () => void {
    const timer = setTimeout(() => this.interrupt({ kind: 'budget', budgetMs: ms, text: `time budget of ${Math.round(ms / 1000)} s exceeded` }), ms);
    timer.unref();
    return () => clearTimeout(timer);
  }

  /** A worker that opened its channel after the signal missed it: say it again when a step starts. */
  repost(): void {
    if (this.reason) this.post(this.forced ? 'force' : 'interrupt');
  }

  /** A function to run once the stop is forced (at once if it already is). */
  onForce(fn: () => void): void {
    if (this.forced) fn();
    else this.forcing.signal.addEventListener('abort', fn, { once: true });
  }

  /**
   * The signal for a cleanup that must end in time: `graceMs` normally, at most FORCE_TEARDOWN_MS
   * once the stop is forced (from now, if it already is; else from the second Ctrl-C).
   */
  cleanupSignal(graceMs: number): AbortSignal {
    if (this.forced) return AbortSignal.timeout(FORCE_TEARDOWN_MS);
    const forced = new AbortController();
    this.onForce(() => setTimeout(() => forced.abort(new Error(`forced stop: ${FORCE_TEARDOWN_MS / 1000} s are up`)), FORCE_TEARDOWN_MS).unref());
    return AbortSignal.any([AbortSignal.timeout(graceMs), forced.signal]);
  }

  private readonly onUnhandled = (reason: unknown): void => {
    err(`runbook: unhandled rejection (the run goes on): ${redact(errorMessage(reason).split('\n')[0] ?? '')}`);
  };

  private onSignal(sig: keyof typeof SIGNAL_NAMES): void {
    this.signals++;
    const reason: InterruptReason = { kind: 'signal', signal: sig, text: `interrupted by ${SIGNAL_NAMES[sig]}` };
    if (this.signals === 1) {
      // A time budget that ran out first already stopped the run: the operator's Ctrl-C still
      // makes it an interruption (exit 130), and counts as the first.
      if (this.reason?.kind === 'budget' && this.phase !== 'report') {
        this.reason = reason;
        err(`\n${reason.text}: ${FIRST[this.phase]}`);
        this.post('interrupt');
        return;
      }
      return this.interrupt(reason);
    }
    if (this.forced) return;
    this.forced = true;
    err(FORCED[this.phase]);
    this.post('force');
    // Nothing may keep a forced run alive: a stuck close, a step that ignores its signal, a read
    // that never ends. The timer is cleared when the run ends normally (uninstall).
    this.hardExit = setTimeout(() => {
      err(`runbook: still not finished ${FORCED_EXIT_MS / 1000} s after the second signal; exiting now`);
      process.exit(EXIT.INTERRUPTED);
    }, FORCED_EXIT_MS);
    this.forcing.abort(new InterruptedError(this.reason ?? reason));
  }

  private post(type: InterruptMessage['type']): void {
    if (this.reason) this.channel?.postMessage({ type, reason: this.reason } satisfies InterruptMessage);
  }
}
