// What the runner itself prints. stdout carries the run's story for the operator (one line per
// event, the report path last, so scripts can `tail -1`); stderr carries causes and, with
// DEBUG=runbooks or --verbose, where the runner's own time goes. --quiet keeps only `result` lines.
import { verbosity } from '../verbosity.js';

/** One line of the run's story on stdout (not with --quiet). */
export function out(line: string): void {
  if (verbosity() === 'quiet') return;
  process.stdout.write(line + '\n');
}

/** One line on stdout that every run prints, also with --quiet: the verdict and the report path. */
export function result(line: string): void {
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
  if (debugging() || verbosity() === 'verbose') err(`[runbook +${Math.round(performance.now())} ms] ${name}`);
}

/** Start imports early; failures surface later at the real import. */
export function prefetch(...loaders: (() => Promise<unknown>)[]): void {
  for (const load of loaders) load().catch(() => {});
}

/** A quiet stretch longer than this gets a line (or, on a terminal, a live elapsed time). */
export const HEARTBEAT_MS = 2_000;
const LIVE_REDRAW_MS = 250;

export interface Waiting {
  /** The wait is over: clear the live line; `line`, if given, is printed in its place. */
  done(line?: string): void;
}

/**
 * A phase of the runner's own that the operator waits on (starting the sandbox, asking the target,
 * starting Vitest, writing the HTML). Says so at once, then shows it is alive: on a terminal one
 * live line with the elapsed time; when piped or in CI a "  … <what> (N s)" line every HEARTBEAT_MS, so the
 * run is never silent for long (except with --quiet). `what` reads as "Starting a sandbox Cordum" ("…" is added).
 */
export function waiting(what: string, stream: NodeJS.WriteStream = process.stdout): Waiting {
  if (verbosity() === 'quiet') return { done() {} };
  const started = performance.now();
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  const live = !!stream.isTTY && !ci;
  const secs = () => ((performance.now() - started) / 1000).toFixed(1);
  let timer: NodeJS.Timeout;
  if (live) {
    const draw = () => stream.write(`\r\x1b[K${what}… (${secs()} s)`);
    draw();
    timer = setInterval(draw, LIVE_REDRAW_MS);
  } else {
    stream.write(`${what}…\n`);
    timer = setInterval(() => stream.write(`  … ${what} (${secs()} s)\n`), HEARTBEAT_MS);
  }
  timer.unref();
  let over = false;
  return {
    done(line) {
      if (over) return;
      over = true;
      clearInterval(timer);
      if (live) stream.write(line ? `\r\x1b[K${line}\n` : `\r\x1b[K${what}… done (${secs()} s)\n`);
      else if (line) stream.write(line + '\n');
    },
  };
}
