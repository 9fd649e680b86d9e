// Runbook backup-restore, in-place path: real recovery of the live stores from an archive. Runs
// only with --in-place and --confirm <namespace> typed exactly (otherwise every step skips, or the
// guard refuses before anything is touched). Freezes Cordum's writers, restores, verifies,
// unfreezes (a teardown action registered before the first change does it whatever happens), then
// runs the smoke runbook against the same profile as a child process and reports its verdict.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { scenario, stateSlot, type RunContext, type ScenarioBuilder, type StepOptions } from '../../helpers/steps.js';
import { createKube, type Kube } from '../../helpers/kube.js';
import { RestoreDrill } from '../../helpers/backup/drill.js';
import { leaseLock, memoryLock } from '../../helpers/backup/lock.js';
import { assertStillFrozen, freezeWriters, guardInPlace, kubeFreezeOps, unfreezeWriters, waitForWritersStopped, type FreezeOps, type FreezeState } from '../../helpers/backup/freeze.js';
import { checkInPlaceArchive, restoreLive, verifyLive } from '../../helpers/backup/in-place.js';
import type { BackupManifest } from '../../helpers/backup/archive.js';
import { REPO_ROOT } from '../../helpers/catalog.js';
import { ENV } from '../../helpers/report/run-contract.js';
import type { RunSummary } from '../../helpers/report/summary.js';
import { waitFor } from '../../helpers/waits.js';
import { CheckFailedError, PreconditionError, errorMessage } from '../../helpers/errors.js';
import { NOT_IN_PLACE, checkArchiveOption, guardCommandLine, inPlaceRequest, redisReadOption } from './in-place-options.js';

const MIN = 60_000;
/** The manifest of a --archive the first step checked (so it is not re-hashed). */
const CHECKED_ARCHIVE = stateSlot<BackupManifest | undefined>('in-place-checked-archive');
const UNFREEZE_LABEL = 'in-place: unfreeze the writers (scale back, recreate HPAs, resume CronJobs)';
const SMOKE_LABEL = 'in-place: the smoke child run finishes its own teardown';
/** Unfrozen writers need time to start and reconnect before the smoke runbook can pass. */
const READY_MS = 2 * MIN;
/** The smoke runbook's own time budget is 120 s; this leaves room for its start-up and teardown. */
const SMOKE_DEADLINE_MS = 3 * MIN;
/** Step deadlines, as documented in runbooks/backup-restore.md (in-place restore). */
const DEADLINE = {
  archiveCheck: 20 * MIN,
  guard: 1 * MIN,
  archive: 20 * MIN,
  freeze: 3 * MIN,
  restore: 15 * MIN,
  verify: 10 * MIN,
  unfreeze: 3 * MIN,
  smoke: READY_MS + SMOKE_DEADLINE_MS + 30_000,
};

/** What the in-place steps share. */
interface InPlaceRun {
  namespace: string;
  kube: Kube;
  archive?: string;
  manifest?: BackupManifest;
  freeze?: FreezeLog;
}

/** The freeze as the report shows it (artifact in-place-freeze.json, rewritten after every action). */
interface FreezeLog {
  namespace: string;
  /** What is frozen right now; unfreeze puts exactly this back. */
  state: FreezeState;
  frozen: string[];
  unfrozen: string[];
  unfrozen_completely: boolean;
  unfreeze_error?: string;
}

function say(msg: string): void {
  process.stderr.write(`[in-place] ${msg}\n`);
}

const IN_PLACE = stateSlot<InPlaceRun>('in-place');

function runOf(ctx: RunContext): InPlaceRun {
  return IN_PLACE.require(ctx, 'the guard step did not prepare the in-place run');
}

/** Every step skips unless --in-place was given. */
function inPlaceOnly(base: ScenarioBuilder) {
  return {
    step(name: string, fn: (ctx: RunContext) => Promise<void>, opts?: StepOptions) {
      base.step(
        name,
        async (ctx) => {
          if (!inPlaceRequest(ctx).inPlace) ctx.skip(NOT_IN_PLACE);
          await fn(ctx);
        },
        opts,
      );
    },
  };
}

async function unfreeze(ops: FreezeOps, log: FreezeLog, persist: () => void): Promise<void> {
  try {
    await unfreezeWriters(ops, log.state, {
      log: (m) => {
        log.unfrozen.push(m);
        say(m);
        persist();
      },
    });
    log.unfrozen_completely = true;
    delete log.unfreeze_error;
  } catch (err) {
    log.unfreeze_error = errorMessage(err);
    throw err;
  } finally {
    persist();
  }
}

interface SmokeOutcome {
  code: number | null;
  reportDir?: string;
  summary?: RunSummary;
  stderrTail: string;
}

/** `pnpm runbook smoke --target <same profile>`, as a child with its own report and teardown. */
function startSmoke(profilePath: string): { child: ChildProcess; done: Promise<SmokeOutcome> } {
  const env = { ...process.env };
  // This run's worker contract must not leak into the child's runner.
  for (const k of Object.values(ENV)) delete env[k];
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli/runbook.ts'), 'smoke', '--target', profilePath], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a terminal Ctrl-C reaches it once, through this step (SIGTERM), not twice.
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<SmokeOutcome>((resolveDone, rejectDone) => {
    child.on('error', rejectDone);
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').at(-1) ?? '';
      const reportDir = last.endsWith('index.html') ? dirname(resolve(REPO_ROOT, last)) : undefined;
      const file = reportDir && join(reportDir, 'summary.json');
      let summary: RunSummary | undefined;
      try {
        summary = file && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RunSummary) : undefined;
      } catch {
        summary = undefined;
      }
      resolveDone({ code, reportDir, summary, stderrTail: stderr.trim().split('\n').slice(-3).join(' | ') });
    });
  });
  done.catch(() => {});
  return { child, done };
}

scenario('In-place restore (real recovery, --in-place)', (base) => {
  const s = inPlaceOnly(base);

  s.step(
    'In-place: check the --archive before anything else',
    async (ctx) => {
      const req = inPlaceRequest(ctx);
      if (req.archive === undefined) {
        await ctx.evidence.json('archive', { given: false, note: 'no --archive: a fresh backup is taken and checked after the guard' });
        return;
      }
      // A truncated or corrupted archive is the operator's input: refused here (exit 2, naming the
      // damaged file) before the guard, so with or without a cluster, and before anything changes.
      CHECKED_ARCHIVE.set(ctx, await checkArchiveOption(req.archive));
      await ctx.evidence.json('archive', { given: true, path: req.archive, checked: 'every file re-hashed, every snapshot framing read' });
    },
    { timeoutMs: DEADLINE.archiveCheck },
  );

  s.step(
    'In-place: guard (--confirm <namespace>), connectivity, drill lock',
    async (ctx) => {
      const req = inPlaceRequest(ctx);
      // Nothing is read from or written to the cluster before the namespace is confirmed.
      const { namespace } = guardCommandLine(ctx, req);
      guardInPlace({ inPlace: true, confirmNamespace: req.confirm, namespace });
      const redis = await ctx.redis();
      try {
        await redis.ping();
      } catch (err) {
        throw new PreconditionError(`redis of target '${ctx.target.name}' does not answer PING: ${errorMessage(err)}`);
      }
      const bus = await ctx.bus();
      try {
        await bus.nc.flush();
      } catch (err) {
        throw new PreconditionError(`NATS of target '${ctx.target.name}' does not answer: ${errorMessage(err)}`);
      }
      const kube = createKube(ctx.target);
      // The drill lock: no drill backs up half-restored data, and no second recovery runs at once.
      const handle = await leaseLock(kube, namespace).acquire(`${ctx.prefix}-in-place-restore`, 60 * MIN);
      ctx.teardown.add('in-place: release the drill lock', { kind: 'local', run: () => handle.release() });
      const manifest = CHECKED_ARCHIVE.get(ctx);
      IN_PLACE.set(ctx, { namespace, kube, archive: req.archive, manifest });
      await ctx.evidence.json('in-place request', { namespace, archive: req.archive ?? '(fresh backup, taken by the next step)', lock: handle.description });
    },
    { timeoutMs: DEADLINE.guard },
  );

  s.step(
    'In-place: archive (check --archive, or take a fresh backup)',
    async (ctx) => {
      const run = runOf(ctx);
      if (!run.archive) {
        const drill = new RestoreDrill({
          target: ctx.target.name,
          redis: await ctx.redis(),
          nats: (await ctx.bus()).nc,
          // The Lease is already held by the guard step.
          lock: memoryLock(),
          workDir: ctx.target.backup?.dir,
          keepArchive: true,
          redisPath: redisReadOption(ctx),
          owner: `${ctx.prefix}-in-place-backup`,
          onProgress: (p) => {
            if (p.message.endsWith('started') || p.message.includes('finished')) say(p.message);
          },
        });
        run.archive = await drill.archiveOnly();
        say(`fresh backup in ${drill.root}`);
      }
      // A damaged archive stops here, before anything on the target changes (a given --archive was
      // already checked by the guard step).
      run.manifest ??= await checkInPlaceArchive(run.archive);
      ctx.writeArtifact('backup-manifest.json', JSON.stringify(run.manifest, null, 2));
      await ctx.evidence.json('archive', {
        path: run.archive,
        started_at: run.manifest.started_at,
        finished_at: run.manifest.finished_at,
        redis_dbs: run.manifest.redis?.dbs.map((d) => ({ db: d.db, keys: d.keys })),
        streams: run.manifest.jetstream?.streams.map((st) => ({ name: st.name, messages: st.state.messages })),
      });
    },
    { timeoutMs: DEADLINE.archive },
  );

  s.step(
    'In-place: freeze the writers (Deployments to 0, HPAs aside, backup CronJobs suspended)',
    async (ctx) => {
      const run = runOf(ctx);
      const ops = kubeFreezeOps(run.kube);
      const log: FreezeLog = { namespace: run.namespace, state: { namespace: run.namespace, deployments: [], hpas: [], cronjobs: [] }, frozen: [], unfrozen: [], unfrozen_completely: false };
      run.freeze = log;
      const persist = () => void ctx.writeArtifact('in-place-freeze.json', JSON.stringify(log, null, 2));
      // Registered before the first change: teardown undoes whatever part of the freeze happened,
      // on pass, failure, step timeout and Ctrl-C alike. Unfreezing is repeatable.
      ctx.teardown.add(UNFREEZE_LABEL, { kind: 'local', run: () => unfreeze(ops, log, persist) });
      persist();
      await freezeWriters(ops, run.namespace, log.state, {
        log: (m) => {
          log.frozen.push(m);
          say(m);
          persist();
        },
      });
      // Scaled to 0 is not stopped: the restore starts only once the writers' pods are gone.
      const unchecked = await waitForWritersStopped(ops, log.state, { signal: ctx.signal, log: say });
      if (unchecked.length) say(`no pod selector on ${unchecked.join(', ')}: their pods were not waited for`);
      await ctx.evidence.json('frozen', { ...log.state, actions: log.frozen, pods_not_checked: unchecked });
    },
    { timeoutMs: DEADLINE.freeze },
  );

  s.step(
    'In-place: restore the streams and the Redis keys from the archive',
    async (ctx) => {
      const run = runOf(ctx);
      const res = await restoreLive({
        archive: run.archive!,
        manifest: run.manifest!,
        redis: await ctx.redis(),
        nats: (await ctx.bus()).nc,
        log: say,
        signal: ctx.signal,
      });
      await ctx.evidence.json('restore', res);
    },
    { timeoutMs: DEADLINE.restore },
  );

  s.step(
    'In-place: verify the restored data (keys written after the backup are allowed)',
    async (ctx) => {
      const run = runOf(ctx);
      const res = await verifyLive(run.archive!, run.manifest!, await ctx.redis(), (await ctx.bus()).nc);
      await assertStillFrozen(kubeFreezeOps(run.kube), run.freeze!.state, 'the restored data may have been written to during the restore; check it before trusting it');
      await ctx.evidence.json('verify', res);
    },
    { timeoutMs: DEADLINE.verify },
  );

  s.step(
    'In-place: unfreeze the writers',
    async (ctx) => {
      const run = runOf(ctx);
      const log = run.freeze!;
      await unfreeze(kubeFreezeOps(run.kube), log, () => void ctx.writeArtifact('in-place-freeze.json', JSON.stringify(log, null, 2)));
      ctx.teardown.forget(UNFREEZE_LABEL);
      await ctx.evidence.json('unfrozen', { actions: log.unfrozen });
    },
    { timeoutMs: DEADLINE.unfreeze },
  );

  s.step(
    'In-place: smoke runbook against the same target',
    async (ctx) => {
      const gw = ctx.gateway();
      await waitFor('the gateway to report redis.ok and nats.connected', () => gw.status(), (st) => st.redis?.ok === true && st.nats?.connected === true, {
        timeoutMs: READY_MS,
        intervalMs: 1000,
        signal: ctx.signal,
      });
      const profilePath = resolve(process.cwd(), ctx.target.source);
      if (!existsSync(profilePath)) throw new PreconditionError(`cannot run the smoke runbook: target '${ctx.target.name}' came from ${ctx.target.source}, not a profile file`);
      say(`running: pnpm runbook smoke --target ${profilePath}`);
      const { child, done } = startSmoke(profilePath);
      ctx.teardown.add(SMOKE_LABEL, {
        kind: 'local',
        run: async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          let timer: NodeJS.Timeout | undefined;
          const left = await Promise.race([done.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 100_000)))]);
          clearTimeout(timer);
          if (left) throw new Error(`the smoke run (pid ${child.pid}) is still tearing down; its own report lists what it created`);
        },
      });
      const onAbort = () => child.kill('SIGTERM');
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const killer = setTimeout(() => child.kill('SIGTERM'), SMOKE_DEADLINE_MS);
      let out: SmokeOutcome;
      try {
        out = await done;
      } finally {
        clearTimeout(killer);
        ctx.signal.removeEventListener('abort', onAbort);
      }
      ctx.teardown.forget(SMOKE_LABEL);
      await ctx.evidence.json('smoke run', {
        exit_code: out.code,
        status: out.summary?.status,
        report: out.reportDir,
        steps: out.summary?.steps.map((st) => ({ name: st.name, status: st.status, error: st.error?.split('\n')[0] })),
      });
      if (out.code !== 0) {
        const first = out.summary?.steps.find((st) => st.status === 'failed');
        const why = first ? `first failed step '${first.name}': ${first.error?.split('\n')[0] ?? ''}` : out.stderrTail || 'no report';
        throw new CheckFailedError(`expected the smoke runbook to pass after the in-place restore; it exited ${out.code} (${out.summary?.status ?? 'no summary'}): ${why}${out.reportDir ? `; report ${out.reportDir}` : ''}`);
      }
    },
    { timeoutMs: DEADLINE.smoke },
  );
});
