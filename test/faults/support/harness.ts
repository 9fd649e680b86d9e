// Drives the real CLI (`pnpm runbook`, as a child process) against fixture runbooks in
// test/fixtures/faults and checks the runner's promises under faults: exit code, a one-line
// cause, a report, a bounded run time and no secret anywhere it writes.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { listFiles } from '../../../helpers/report/manifest.js';
import { findSecret } from './secret-scan.js';
import { startServer, type TestServer } from '../../deploy/http-fixture.js';
import { startFaultGateway, type FaultGateway } from './fault-gateway.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const FIXTURES = join(ROOT, 'test/fixtures/faults');
/** A recognisable API key: it must never appear in any output or report file. */
export const SECRET = 'rb-fault-SECRET-c0ffee-91d4e7';

// The bounds a run is held to are the documented deadlines plus one stated grace, never a guess:
/** The time budget most fixture runbooks declare (test/fixtures/faults/runbooks/*.md, `time_budget: 60s`). */
export const RUN_BUDGET_MS = 60_000;
/** After a second Ctrl-C the runner exits within this, whatever still runs (cli/run/interrupts.ts FORCED_EXIT_MS). */
export const FORCED_EXIT_MS = 30_000;
/** After a second Ctrl-C, teardown (and the runner's replay) gets at most this (cli/run/interrupts.ts FORCE_TEARDOWN_MS). */
export const FORCED_TEARDOWN_MS = 10_000;
/**
 * The stated grace on top of a deadline: the runner's own start-up (Node, tsx, Vitest), its
 * teardown and its report writing, on a shared 2-core machine under heavy load (a run of four
 * fixture files was seen to take 86 s at a load average of 28). Generous on purpose: these bounds
 * catch hangs, they do not measure speed (pnpm bench does).
 */
export const GRACE_MS = 60_000;
/** From a signal that should end the run (once the steps are past) to the process exit: teardown, report, sandbox stop. */
export const EXIT_GRACE_MS = 30_000;
/** From a deadline (a step's, a request's) to the server seeing the connection close. */
export const HANGUP_GRACE_MS = 5_000;
/** A whole run: its time budget plus the grace. Past it, the run is killed and reported as hung. */
export const RUN_BOUND_MS = RUN_BUDGET_MS + GRACE_MS;

/** The bound of a run of fixture runbook `name`: the `time_budget` its page declares, plus the grace. */
export function runBound(name: string | undefined): number {
  const page = name && /^[a-z0-9-]+$/.test(name) ? join(FIXTURES, 'runbooks', `${name}.md`) : undefined;
  if (!page || !existsSync(page)) return RUN_BOUND_MS;
  const m = /^time_budget:\s*(\d+)(s|m)\s*$/m.exec(readFileSync(page, 'utf8'));
  return m ? Number(m[1]) * (m[2] === 'm' ? 60_000 : 1000) + GRACE_MS : RUN_BOUND_MS;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run hit the test's hard deadline and was killed: a hang. */
  hung: boolean;
  /** From spawn to exit. */
  ms: number;
  /** Date.now() when the process exited (to measure from an event, e.g. a signal). */
  exitedAt: number;
  /** The bound this run was held to (its runbook's time budget plus the grace, unless given). */
  boundMs: number;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  onStart?: (child: ChildProcess) => void;
  /** Hard deadline for the whole CLI run: killed and marked `hung` past it (default runBound of the runbook). */
  deadlineMs?: number;
  /** A command the CLI runs under (e.g. bubblewrap with a read-only bind, test/support/mounts.ts). */
  prefix?: string[];
}

export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'runner-faults-'));
  readonly reports = join(this.dir, 'reports');
  readonly state = join(this.dir, 'state');

  /** `secret`: the API key runs get (FAULT_API_KEY), which the scan looks for in every encoding. */
  constructor(
    readonly gatewayUrl: () => string,
    readonly secret = SECRET,
  ) {}

  /** Write a profile file into the workspace and return its path. */
  profile(name: string, yaml: string): string {
    const p = join(this.dir, `${name}.yaml`);
    writeFileSync(p, yaml);
    return p;
  }

  cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
    const started = Date.now();
    const boundMs = opts.deadlineMs ?? runBound(args.find((a) => !a.startsWith('-')));
    return new Promise((done, fail) => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        CI: 'true',
        RUNBOOKS_DIR: join(FIXTURES, 'runbooks'),
        RUNBOOK_REPORTS_DIR: this.reports,
        RUNBOOK_STATE_DIR: this.state,
        FAULT_GATEWAY_URL: this.gatewayUrl(),
        FAULT_API_KEY: this.secret,
      };
      for (const [k, v] of Object.entries(opts.env ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
      const command = [...(opts.prefix ?? []), process.execPath, '--import', 'tsx', 'cli/runbook.ts', ...args];
      const child = spawn(command[0]!, command.slice(1), {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let hung = false;
      const timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, boundMs);
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('error', (e) => {
        clearTimeout(timer);
        fail(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, stdout, stderr, hung, ms: Date.now() - started, exitedAt: Date.now(), boundMs });
      });
      opts.onStart?.(child);
    });
  }

  /** Every file the runner wrote (reports and state), for the secret scan. */
  writtenFiles(): string[] {
    return [this.reports, this.state].filter((d) => existsSync(d)).flatMap((d) => listFiles(d));
  }

  /**
   * Where the secret shows up, in any encoding (support/secret-scan.ts): "stdout: <encoding>",
   * "stderr: …" or "<file>: …", also in `extra` named texts (webhook payloads). Must be empty.
   */
  secretHits(r: CliResult, extra: Record<string, string> = {}): string[] {
    const hits: string[] = [];
    const texts: [string, string][] = [['stdout', r.stdout], ['stderr', r.stderr], ...Object.entries(extra)];
    for (const f of this.writtenFiles()) texts.push([f, readFileSync(f).toString('utf8')]);
    for (const [where, text] of texts) {
      const found = findSecret(text, this.secret);
      if (found) hits.push(`${where}: ${found}`);
    }
    return hits;
  }
}

/** The report directory is the last line printed on stdout. */
export function reportDir(r: CliResult): string {
  const last = r.stdout.trim().split('\n').at(-1)!;
  return resolve(ROOT, last, '..');
}

export function summaryOf(r: CliResult): Record<string, any> {
  return JSON.parse(readFileSync(join(reportDir(r), 'summary.json'), 'utf8'));
}

/** The last non-empty stderr line: the one-line cause. */
export function causeLine(r: CliResult): string {
  return r.stderr.trim().split('\n').filter((l) => l.trim()).at(-1) ?? '';
}

/** Bounded poll for test coordination (never a bare sleep). */
export async function until(what: string, check: () => boolean, deadlineMs = RUN_BOUND_MS): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function ensureDir(p: string): string {
  mkdirSync(p, { recursive: true });
  return p;
}

/**
 * The fixture profile's connect timeout, which also sets the preflight's health deadline (+ 0.5 s).
 * 3 s, not 1 s: a /health answer from the test's own gateway was seen to miss 1.5 s at load 25 on
 * two cores, failing a case about something else as "answered its health check too slowly".
 */
export const CONNECT_TIMEOUT_MS = 3000;
/** The fixture profile's request timeout (the steps' tests name it). */
export const REQUEST_TIMEOUT_MS = 1500;

/** The fixture profile for the fault gateway, with optional extra YAML sections. */
export function gatewayProfile(extra = '', gateway = ''): string {
  return [
    'name: fault-target',
    'gateway:',
    '  url: ${FAULT_GATEWAY_URL}',
    '  api_key_env: FAULT_API_KEY',
    `  connect_timeout_ms: ${CONNECT_TIMEOUT_MS}`,
    `  request_timeout_ms: ${REQUEST_TIMEOUT_MS}`,
    gateway,
    'destructive:',
    '  allowed: true',
    extra,
  ]
    .filter((l) => l !== '')
    .join('\n') + '\n';
}

/** A Slack-compatible webhook receiver that accepts every message (test.requests holds them). */
export function startWebhookReceiver(): Promise<TestServer> {
  return startServer((_req, res) => {
    res.writeHead(200);
    res.end('ok');
  });
}

/** One fault gateway and one workspace for a test file: started before its tests, removed after. */
export function faultGatewayFixture(): { readonly gw: FaultGateway; readonly ws: Workspace } {
  const f = {} as { gw: FaultGateway; ws: Workspace };
  beforeAll(async () => {
    f.gw = await startFaultGateway();
    f.ws = new Workspace(() => f.gw.url);
  });
  afterAll(async () => {
    await f.gw?.close();
    if (f.ws) rmSync(f.ws.dir, { recursive: true, force: true });
  });
  return f;
}
