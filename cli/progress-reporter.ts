// Progress for the person at the terminal: on a TTY one live line per running step (with elapsed
// time) that turns into a result line; in CI or when piped, plain lines only (no escape codes): one
// per finished step, and for a step still running after HEARTBEAT_MS a "  … <step> (N s)" line every
// HEARTBEAT_MS, so a log is never silent for long (a backup that takes a minute is not a hang).
import type { Reporter, TestCase, TestModule } from 'vitest/node';
import { redact } from '../helpers/redact.js';
import { HEARTBEAT_MS } from './run/log.js';
import { verbosity, type Verbosity } from './verbosity.js';

export interface ProgressOptions {
  out?: NodeJS.WriteStream;
  /** Force plain output (CI=true, or not a TTY). */
  plain?: boolean;
  /** --quiet: failed steps only; --verbose: also a failed step's last evidence. Default: from the environment. */
  verbosity?: Verbosity;
}

/** How much of a failed step's evidence --verbose prints (the report has all of it). */
const MAX_VERBOSE_EVIDENCE_LINES = 40;

const MARK = { passed: '✓', failed: '✗', skipped: '–', pending: '…' } as const;

export class ProgressReporter implements Reporter {
  private readonly out: NodeJS.WriteStream;
  private readonly live: boolean;
  private timer?: NodeJS.Timeout;
  /** Plain output: the running step's "still running" line (see stillRunning). */
  private heartbeat?: NodeJS.Timeout;
  private current?: { name: string; started: number };
  private lastScenario?: string;
  private readonly verbosity: Verbosity;

  constructor(opts: ProgressOptions = {}) {
    this.out = opts.out ?? process.stdout;
    this.verbosity = opts.verbosity ?? verbosity();
    const ci = process.env.CI === 'true' || process.env.CI === '1';
    this.live = this.verbosity !== 'quiet' && !(opts.plain ?? (ci || !this.out.isTTY));
  }

  onTestCaseReady(tc: TestCase): void {
    if (this.verbosity === 'quiet') return;
    this.header(tc);
    this.current = { name: tc.name, started: Date.now() };
    if (!this.live) {
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.stillRunning(), HEARTBEAT_MS);
      this.heartbeat.unref();
      return;
    }
    this.drawLive();
    this.timer ??= setInterval(() => this.drawLive(), 250);
    this.timer.unref();
  }

  onTestCaseResult(tc: TestCase): void {
    const r = tc.result();
    if (this.verbosity === 'quiet' && r.state !== 'failed') return;
    this.header(tc);
    this.stopLive();
    const ms = Math.round(tc.diagnostic()?.duration ?? 0);
    let line = `  ${MARK[r.state]} ${tc.name} (${formatMs(ms)})`;
    if (r.state === 'failed') {
      line += `\n      ${firstLine(r.errors[0]?.message ?? 'failed')}`;
      // The page section that says what to do next (helpers/steps.ts puts it on the error).
      const link = (r.errors[0] as { when_it_fails?: unknown } | undefined)?.when_it_fails;
      if (typeof link === 'string') line += `\n      when it fails: ${link}`;
      const evidence = (r.errors[0] as { evidence?: unknown } | undefined)?.evidence;
      if (this.verbosity === 'verbose' && typeof evidence === 'string') line += `\n${indentEvidence(evidence)}`;
    }
    if (r.state === 'skipped' && r.note) line += `: ${r.note}`;
    this.out.write(line + '\n');
  }

  onTestModuleEnd(mod: TestModule): void {
    this.stopLive();
    for (const e of mod.errors()) this.out.write(`  ✗ ${firstLine(e.message)}\n`);
  }

  onTestRunEnd(): void {
    this.stopLive();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Print something between steps without garbling the live line. */
  note(text: string): void {
    this.stopLive();
    this.out.write(text + '\n');
  }

  private header(tc: TestCase): void {
    const scenario = tc.parent.type === 'suite' ? tc.parent.name : tc.module.moduleId;
    if (scenario === this.lastScenario) return;
    this.lastScenario = scenario;
    this.stopLive();
    this.out.write(`${scenario}\n`);
  }

  /** Plain output: the step has been running for a while; say so on a line of its own. */
  private stillRunning(): void {
    if (!this.current) return;
    const secs = ((Date.now() - this.current.started) / 1000).toFixed(1);
    this.out.write(`  ${MARK.pending} ${this.current.name} (${secs} s)\n`);
  }

  private drawLive(): void {
    if (!this.current) return;
    const secs = ((Date.now() - this.current.started) / 1000).toFixed(1);
    const text = `  ${MARK.pending} ${this.current.name} (${secs} s)`;
    this.out.write(`\r\x1b[K${fitLine(text, this.out.columns)}`);
  }

  private stopLive(): void {
    if (this.live && this.current) this.out.write('\r\x1b[K');
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.current = undefined;
  }
}

/**
 * The live line cut to the terminal's width, one column short so the cursor never wraps. A terminal
 * that reports no usable width (0 columns: a serial console, some CI pseudo-terminals, an unknown
 * size) gets the whole line rather than a cut at a width that means nothing.
 */
export function fitLine(text: string, columns: number | undefined): string {
  if (!columns || !Number.isFinite(columns) || columns < 2) return text;
  const chars = [...text];
  return chars.length < columns ? text : chars.slice(0, columns - 1).join('');
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The step's last evidence (already redacted in the worker; redacted again here), indented and cut. */
function indentEvidence(text: string): string {
  const lines = redact(text).split('\n');
  const shown = lines.slice(0, MAX_VERBOSE_EVIDENCE_LINES).map((l) => `      | ${l}`);
  if (lines.length > shown.length) shown.push(`      | … ${lines.length - shown.length} more lines in the report`);
  return shown.join('\n');
}

/** Step errors can quote what the target sent back (an echoed key): redact before printing. */
function firstLine(s: string): string {
  return redact(s.split('\n')[0] ?? s);
}
