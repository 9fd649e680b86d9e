// Journaled cleanup. Scenario steps register every object they create; the registry undoes them in
// reverse order. HTTP and Redis actions are also appended to a journal file as they are registered,
// so the runner can replay whatever is still pending after a crash, a timeout or Ctrl-C, and the
// next run against the same target can report and remove leftovers from an earlier one.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { TargetProfile } from './profile-types.js';
import type { GatewayClient } from './gateway.js';
import { errorMessage } from './errors.js';
import { MANIFEST as MANIFEST_FILE } from './report/manifest.js';
import { untilAborted } from './waits.js';

export type HttpTeardown = {
  kind: 'http';
  method: 'DELETE' | 'POST';
  path: string;
  body?: unknown;
  /** Statuses that mean "removed" (default DEFAULT_OK). */
  okStatuses?: number[];
  /**
   * The object's GET path. When the action answers 404, this GET decides: 404 there too means it
   * was already gone; an answer with the object means the action's path is stale and the object
   * stays (a leftover). Set by the builders in helpers/undo.ts.
   */
  confirmGone?: string;
};
export type RedisTeardown = { kind: 'redis'; command: string[] };
export type LocalTeardown = { kind: 'local'; run: () => Promise<void> };
export type TeardownAction = HttpTeardown | RedisTeardown | LocalTeardown;
/** What is written to the journal: local actions cannot be replayed, only reported. */
export type JournaledAction = HttpTeardown | RedisTeardown | { kind: 'local' };

export interface JournalEntry {
  op: 'add' | 'done' | 'forget';
  /** Which scenario file registered it: labels only need to be unique within one file. */
  scope: string;
  label: string;
  action?: JournaledAction;
  at: string;
}

export interface PendingItem {
  scope: string;
  label: string;
  action: JournaledAction;
}

export interface TeardownOutcome {
  removed: string[];
  leftovers: { label: string; error: string }[];
  /** Every action tried, in order (TeardownRegistry.runAll only). */
  results?: { label: string; action: string; ok: boolean; error?: string }[];
}

/** Runs one action against the target. Local actions run in-process and never reach an executor. */
export interface TeardownExecutor {
  http(action: HttpTeardown, signal: AbortSignal): Promise<void>;
  redis(action: RedisTeardown, signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

/**
 * HTTP statuses that mean "it is gone" for an action without its own okStatuses: 404 counts, since
 * a step may already have removed it, unless it is the router's 404 (no such route; see below).
 */
const DEFAULT_OK = [200, 201, 202, 204, 404];
/**
 * Go's router answers an unknown path with this body; a missing object gets the handler's own text
 * ("not found", "job not found"). A route that no longer exists never means "already removed".
 */
const NO_SUCH_ROUTE = '404 page not found';
const ACTION_TIMEOUT_MS = 15_000;

export function describeAction(a: JournaledAction): string {
  if (a.kind === 'http') return `${a.method} ${a.path}`;
  if (a.kind === 'redis') return a.command.join(' ');
  return 'local cleanup';
}

function journalAction(a: TeardownAction): JournaledAction {
  return a.kind === 'local' ? { kind: 'local' } : a;
}

export class TeardownRegistry {
  private readonly items = new Map<string, TeardownAction>();

  constructor(
    private readonly scope: string,
    private readonly journalPath?: string,
  ) {
    if (journalPath) mkdirSync(dirname(journalPath), { recursive: true });
  }

  /** Register an undo action. Re-registering a label replaces it (and moves it to the end). */
  add(label: string, action: TeardownAction): void {
    this.items.delete(label);
    this.items.set(label, action);
    this.write({ op: 'add', scope: this.scope, label, action: journalAction(action), at: new Date().toISOString() });
  }

  /** The step removed the object itself: nothing left to undo. */
  forget(label: string): void {
    if (!this.items.delete(label)) return;
    this.write({ op: 'forget', scope: this.scope, label, at: new Date().toISOString() });
  }

  get size(): number {
    return this.items.size;
  }

  labels(): string[] {
    return [...this.items.keys()];
  }

  /** Undo everything in reverse registration order; failures are collected, never thrown. */
  async runAll(exec: TeardownExecutor, signal?: AbortSignal): Promise<TeardownOutcome> {
    const outcome: TeardownOutcome = { removed: [], leftovers: [], results: [] };
    for (const [label, action] of [...this.items.entries()].reverse()) {
      const described = describeAction(journalAction(action));
      try {
        await runAction(action, exec, signal);
        this.items.delete(label);
        this.write({ op: 'done', scope: this.scope, label, at: new Date().toISOString() });
        outcome.removed.push(`${label} (${described})`);
        outcome.results!.push({ label, action: described, ok: true });
      } catch (err) {
        outcome.leftovers.push({ label, error: errorMessage(err) });
        outcome.results!.push({ label, action: described, ok: false, error: errorMessage(err) });
      }
    }
    return outcome;
  }

  private write(entry: JournalEntry): void {
    // Synchronous on purpose: the entry must be on disk before the step goes on, so that a crash
    // a moment later still leaves a trace the runner can replay.
    if (this.journalPath) appendFileSync(this.journalPath, JSON.stringify(entry) + '\n');
  }
}

async function runAction(action: TeardownAction, exec: TeardownExecutor, outer?: AbortSignal): Promise<void> {
  if (action.kind === 'local') return action.run();
  const own = new AbortController();
  const timer = setTimeout(() => own.abort(new Error(`no answer within ${ACTION_TIMEOUT_MS / 1000} s`)), ACTION_TIMEOUT_MS);
  const signal = outer ? AbortSignal.any([outer, own.signal]) : own.signal;
  try {
    if (action.kind === 'http') await exec.http(action, signal);
    else await exec.redis(action, signal);
  } catch (err) {
    throw signal.aborted ? new Error(`${describeAction(action)}: aborted (${errorMessage(signal.reason)})`) : err;
  } finally {
    clearTimeout(timer);
  }
}

// ---- journal files (runner side) ----

export function journalDir(stateDir: string, target: string): string {
  return join(stateDir, 'journals', target.replace(/[^A-Za-z0-9._-]/g, '_'));
}

export function journalPath(stateDir: string, target: string, runId: string): string {
  return join(journalDir(stateDir, target), `${runId}.jsonl`);
}

/** Entries registered but neither removed nor forgotten, in registration order. */
export function pendingFromJournal(text: string): PendingItem[] {
  const pending = new Map<string, PendingItem>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let e: JournalEntry;
    try {
      e = JSON.parse(line) as JournalEntry;
    } catch {
      continue; // a line torn by a crash mid-write: everything before it is still valid
    }
    const key = `${e.scope}\u0000${e.label}`;
    if (e.op === 'add' && e.action) {
      pending.delete(key);
      pending.set(key, { scope: e.scope, label: e.label, action: e.action });
    } else pending.delete(key);
  }
  return [...pending.values()];
}

export async function readPending(path: string): Promise<PendingItem[]> {
  if (!existsSync(path)) return [];
  return pendingFromJournal(await readFile(path, 'utf8'));
}

/**
 * Replay what a journal still lists, newest first. Local actions cannot be replayed from another
 * process, so they are reported as leftovers. Successful removals are appended to the journal.
 */
export async function replayJournal(path: string, exec: TeardownExecutor, signal?: AbortSignal): Promise<TeardownOutcome> {
  const outcome: TeardownOutcome = { removed: [], leftovers: [] };
  for (const item of (await readPending(path)).reverse()) {
    const name = `${item.label} (${describeAction(item.action)})`;
    try {
      if (item.action.kind === 'local') throw new Error('a local cleanup action cannot be replayed outside the scenario');
      await runAction(item.action, exec, signal);
      appendFileSync(path, JSON.stringify({ op: 'done', scope: item.scope, label: item.label, at: new Date().toISOString() }) + '\n');
      outcome.removed.push(name);
    } catch (err) {
      outcome.leftovers.push({ label: name, error: errorMessage(err) });
    }
  }
  return outcome;
}

/** Mark a journal as finished (nothing pending) so the next run's leftover check skips it. */
export function closeJournal(path: string): void {
  if (existsSync(path)) renameSync(path, path.replace(/\.jsonl$/, '.done.jsonl'));
}

// A run's journal is only a leftover once its run has ended: `<run>.owner` names the live runner
// process, so a second run against the same target never undoes (or unlocks) a run still going.
// A pid alone is not enough (pids are reused: a crashed run's pid may belong to some other process
// for days), so the owner file also records the process's start time and both must match.

function ownerPath(journal: string): string {
  return journal.replace(/\.jsonl$/, '.owner');
}

interface OwnerRecord {
  pid: number;
  host: string;
  /** When the process started (see processStartTime); absent in files of older runners. */
  started?: string;
}

/**
 * A stable identity of a process's start: on Linux the start time in clock ticks since boot from
 * /proc/<pid>/stat (field 22); elsewhere `ps -o lstart=`. undefined when the process does not exist
 * or its start cannot be read.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = fields[19]; // field 22 overall
    if (ticks && /^\d+$/.test(ticks)) return `linux:${ticks}`;
  } catch {
    if (existsSync('/proc/self/stat')) return undefined; // a Linux /proc without this pid: not running
  }
  try {
    const out = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 2000 }).toString().trim();
    return out ? `ps:${out}` : undefined;
  } catch {
    return undefined;
  }
}

/** Mark the journal as belonging to this (live) process. */
export function claimJournal(journal: string): void {
  mkdirSync(dirname(journal), { recursive: true });
  const record: OwnerRecord = { pid: process.pid, host: hostname(), started: processStartTime(process.pid) };
  writeFileSync(ownerPath(journal), JSON.stringify(record) + '\n');
}

export function releaseJournal(journal: string): void {
  rmSync(ownerPath(journal), { force: true });
}

/** The pid of the live run that owns this journal, if it is still running on this host. */
export function liveOwner(journal: string): number | undefined {
  let o: OwnerRecord;
  try {
    o = JSON.parse(readFileSync(ownerPath(journal), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
  return ownerState(o) === 'alive' ? o.pid : undefined;
}

/** True when no process with this pid runs on this machine (a runner that left something behind is gone). */
export function processGone(pid: number): boolean {
  return ownerState({ pid, host: hostname() }) === 'dead';
}

/** alive: this very process still runs; dead: it ended (or its pid now belongs to another process). */
function ownerState(o: OwnerRecord): 'alive' | 'dead' | 'elsewhere' {
  if (o.host !== hostname()) return 'elsewhere';
  if (!Number.isInteger(o.pid) || o.pid <= 0 || o.pid === process.pid) return 'dead';
  try {
    process.kill(o.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to someone else: still alive (if it is the same one).
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return 'dead';
  }
  if (o.started === undefined) return 'alive'; // an older runner's file: the pid is all there is
  const now = processStartTime(o.pid);
  // A start time that cannot be read is not proof of death: keep the run's objects alone.
  return now === undefined || now === o.started ? 'alive' : 'dead';
}

/** What the next run found of a run that ended without finishing (SIGKILL, OOM, power loss). */
export interface CrashedRun {
  runId: string;
  pid: number;
  /** reports/<run-id>/ when it exists and had no finished report: it now holds INCOMPLETE. */
  reportDir?: string;
}

/** The marker a crashed run's partial report directory gets. */
export const INCOMPLETE_MARKER = 'INCOMPLETE';

/**
 * Owner files of runs against this target whose process is gone: the file is removed (the run's
 * journal, if anything is still pending in it, is replayed by the caller as usual) and the run's
 * partial report directory, if it never got its manifest (written last), is marked INCOMPLETE.
 */
export function sweepCrashedRuns(stateDir: string, reportsDir: string, target: string, exceptRunId: string): CrashedRun[] {
  const dir = journalDir(stateDir, target);
  if (!existsSync(dir)) return [];
  const found: CrashedRun[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.owner')).sort()) {
    const runId = basename(f, '.owner');
    if (runId === exceptRunId) continue;
    const path = join(dir, f);
    let o: OwnerRecord;
    try {
      o = JSON.parse(readFileSync(path, 'utf8')) as OwnerRecord;
    } catch {
      o = { pid: 0, host: hostname() }; // torn by a crash while it was written: its run is gone
    }
    if (ownerState(o) !== 'dead') continue;
    rmSync(path, { force: true });
    found.push({ runId, pid: o.pid, reportDir: markIncomplete(reportsDir, runId, o.pid) });
  }
  return found;
}

/** The line the next run prints about a crashed one. */
export function crashedRunLine(c: CrashedRun): string {
  const report = c.reportDir ? `its report ${c.reportDir} is incomplete (marked with ${INCOMPLETE_MARKER})` : 'its report was complete or never started';
  return `Run ${c.runId} ended without finishing (its runner, pid ${c.pid}, is gone): ${report}; its owner file was removed`;
}

function markIncomplete(reportsDir: string, runId: string, pid: number): string | undefined {
  const runDir = join(reportsDir, runId);
  if (!existsSync(runDir) || existsSync(join(runDir, MANIFEST_FILE))) return undefined;
  const line = `run ${runId} did not finish: its runner (pid ${pid}) ended without writing the report; this directory holds what it wrote until then (found ${new Date().toISOString()})\n`;
  try {
    writeFileSync(join(runDir, INCOMPLETE_MARKER), line, { flag: 'wx' });
  } catch (err) {
    // Another run marked it at the same moment: fine. Anything else: say so, the sweep goes on.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
  }
  return runDir;
}

/** Journals of earlier runs against this target that were never closed. */
export function unfinishedJournals(stateDir: string, target: string, exceptRunId: string): string[] {
  const dir = journalDir(stateDir, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl') && !f.endsWith('.done.jsonl') && basename(f, '.jsonl') !== exceptRunId)
    .sort()
    .map((f) => join(dir, f));
}

// ---- executors ----

/**
 * Teardown against the target: HTTP through a GatewayClient (same auth/principal headers and
 * transcripts as the steps), Redis through helpers/redis.ts, connected only when a Redis action
 * actually runs. The runner and the in-worker teardown step both use this. Each action's signal
 * reaches the request itself, so an action that runs out of time is cancelled, not left running.
 */
export function targetExecutor(profile: TargetProfile, gateway: () => GatewayClient): TeardownExecutor {
  let client: Promise<{ call(cmd: string, ...args: string[]): Promise<unknown>; quit(): Promise<unknown> }> | undefined;
  return {
    async http(action, signal) {
      const gw = gateway();
      const ok = action.okStatuses ?? DEFAULT_OK;
      const expect = action.confirmGone && !ok.includes(404) ? [...ok, 404] : ok;
      const res = await gw.request(action.method, action.path, { body: action.body, expect, signal });
      if (res.status !== 404) return;
      const what = describeAction(action);
      if (res.text.trim() === NO_SUCH_ROUTE) {
        throw new Error(`${what} answered 404 '${NO_SUCH_ROUTE}': the gateway has no such route, so this undo path is stale and the object may still exist`);
      }
      if (!action.confirmGone) return;
      const probe = await gw.request('GET', action.confirmGone, { expect: [200, 404], signal });
      if (probe.status === 404 && probe.text.trim() !== NO_SUCH_ROUTE) return;
      throw new Error(
        probe.status === 200
          ? `${what} answered 404, but GET ${action.confirmGone} still finds the object: the undo path is stale; the object was not removed`
          : `${what} answered 404 and GET ${action.confirmGone} answered 404 '${NO_SUCH_ROUTE}': cannot tell whether the object is gone`,
      );
    },
    async redis(action, signal) {
      const what = `redis ${action.command.join(' ')}`;
      if (!profile.redis) throw new Error(`cannot run '${what}': target '${profile.name}' has no redis section`);
      client ??= import('./redis.js').then((m) => m.connectRedis(profile));
      // ioredis commands take no signal: stop waiting for them instead.
      const r = await untilAborted(client, signal);
      const [cmd, ...args] = action.command;
      await untilAborted(r.call(cmd!, ...args), signal);
    },
    async close() {
      if (client) await (await client.catch(() => undefined))?.quit().catch(() => {});
    },
  };
}
