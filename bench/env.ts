// Machine facts for the report, child processes with peak RSS, and the cleanup registry that stops
// everything the benchmark started (servers, sandboxes, children) at the end and on Ctrl-C.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release, type } from 'node:os';
import type { MachineInfo } from './markdown.js';
import { parseTimeV } from './stats.js';

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).toString().trim().split('\n')[0]!;
  } catch {
    return 'not found';
  }
}

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) return `${m[1]} (${type()} ${release()})`;
  } catch {
    /* not Linux */
  }
  return `${type()} ${release()}`;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  const [l1, l5, l15] = loadavg();
  return {
    cpuModel: c[0]?.model?.trim() || 'unknown',
    cores: c.length,
    memoryBytes: totalmem(),
    node: process.version,
    redisServer: version('redis-server', ['--version']).replace(/^Redis server /, ''),
    natsServer: version('nats-server', ['--version']),
    os: osName(),
    loadAvg: [l1!, l5!, l15!],
  };
}

// ---------------------------------------------------------------------------------------------
// Cleanup

const cleanups = new Map<number, () => Promise<unknown>>();
let nextId = 0;

/** Register a stop function; returns the unregister function (call it after a normal stop). */
export function onCleanup(fn: () => Promise<unknown>): () => void {
  const id = nextId++;
  cleanups.set(id, fn);
  return () => cleanups.delete(id);
}

/** Run every registered stop, newest first, continuing past failures. */
export async function cleanupAll(): Promise<void> {
  const fns = [...cleanups.entries()].reverse();
  cleanups.clear();
  for (const [, fn] of fns) await fn().catch(() => {});
}

// ---------------------------------------------------------------------------------------------
// Children

const TIME_BIN = '/usr/bin/time';
export const HAVE_TIME_V = existsSync(TIME_BIN);

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Measured here: spawn → exit. */
  wallMs: number;
  /** From GNU time -v when available, else from the child's own report (if it printed one). */
  maxRssBytes?: number;
}

export interface ChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdin from this file. */
  stdinFile?: string;
  /** Wrap in /usr/bin/time -v to read the peak RSS (default true). */
  measureRss?: boolean;
  timeoutMs?: number;
  /** Called for each complete line of stdout/stderr, with ms since spawn. */
  onLine?: (stream: 'stdout' | 'stderr', line: string, atMs: number) => void;
}

/** Spawn a command, collect output, and its peak RSS; the child is killed on Ctrl-C or timeout. */
export async function runChild(cmd: string, args: string[], opts: ChildOptions = {}): Promise<ChildResult> {
  const wrap = (opts.measureRss ?? true) && HAVE_TIME_V;
  const [bin, argv] = wrap ? [TIME_BIN, ['-v', cmd, ...args]] : [cmd, args];
  const { openSync, closeSync } = await import('node:fs');
  const stdinFd = opts.stdinFile ? openSync(opts.stdinFile, 'r') : undefined;
  const t0 = performance.now();
  const child: ChildProcess = spawn(bin, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'],
    detached: true, // own process group: killed as a group, and Ctrl-C in the terminal reaches only us
  });
  if (stdinFd !== undefined) closeSync(stdinFd);
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  };
  const unregister = onCleanup(kill);
  let stdout = '';
  let stderr = '';
  const lineSplitter = (stream: 'stdout' | 'stderr') => {
    let partial = '';
    return (d: Buffer) => {
      const at = performance.now() - t0;
      const text = d.toString();
      if (stream === 'stdout') stdout += text;
      else stderr += text;
      if (!opts.onLine) return;
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) opts.onLine(stream, l, at);
    };
  };
  child.stdout!.on('data', lineSplitter('stdout'));
  child.stderr!.on('data', lineSplitter('stderr'));
  let timer: NodeJS.Timeout | undefined;
  if (opts.timeoutMs) timer = setTimeout(() => void kill(), opts.timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => {
    clearTimeout(timer);
    unregister();
  });
  const wallMs = performance.now() - t0;
  let maxRssBytes: number | undefined;
  if (wrap) maxRssBytes = parseTimeV(stderr).maxRssBytes;
  if (maxRssBytes === undefined) {
    const m = /"maxRssKb":\s*(\d+)/.exec(stdout);
    if (m) maxRssBytes = Number(m[1]) * 1024;
  }
  return { code, stdout, stderr, wallMs, maxRssBytes };
}

/** The last JSON object line a child printed. */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    if (l.startsWith('{')) return JSON.parse(l) as T;
  }
  throw new Error(`child printed no JSON result; output: ${stdout.slice(-500)}`);
}

export function tsxArgs(script: string, ...args: string[]): [string, string[]] {
  return [process.execPath, ['--import', 'tsx', script, ...args]];
}
