// Drives the real CLI (`pnpm runbook`, as a child process) against fixture runbooks in
// test/fixtures/faults and checks the runner's promises under faults: exit code, a one-line
// cause, a report, a bounded run time and no secret anywhere it writes.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { listFiles } from '../../../helpers/report/manifest.js';
import { findSecret } from './secret-scan.js';
import { startServer, type TestServer } from '../../deploy/http-fixture.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const FIXTURES = join(ROOT, 'test/fixtures/faults');
/** A recognisable API key: it must never appear in any output or report file. */
export const SECRET = 'rb-fault-SECRET-c0ffee-91d4e7';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run hit the test's hard deadline and was killed: a hang. */
  hung: boolean;
  ms: number;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  onStart?: (child: ChildProcess) => void;
  /** Hard deadline for the whole CLI run (a generous bound, not a performance assertion). */
  deadlineMs?: number;
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
      const child = spawn(process.execPath, ['--import', 'tsx', 'cli/runbook.ts', ...args], {
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
      }, opts.deadlineMs ?? 150_000);
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('error', (e) => {
        clearTimeout(timer);
        fail(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal, stdout, stderr, hung, ms: Date.now() - started });
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
export async function until(what: string, check: () => boolean, deadlineMs = 90_000): Promise<void> {
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

/** The fixture profile for the fault gateway, with optional extra YAML sections. */
export function gatewayProfile(extra = '', gateway = ''): string {
  return [
    'name: fault-target',
    'gateway:',
    '  url: ${FAULT_GATEWAY_URL}',
    '  api_key_env: FAULT_API_KEY',
    '  connect_timeout_ms: 1000',
    '  request_timeout_ms: 1500',
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
