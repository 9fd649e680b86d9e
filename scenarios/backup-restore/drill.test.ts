// Runbook backup-restore: take a fresh backup of Redis and both JetStream streams, restore it into
// scratch servers started for the run, prove it complete and usable (including a marker workflow
// and a marker bus message planted first), and record RPO/RTO for the readiness audit.
// Nothing is restored into the target itself: on an in-place run (--in-place) these steps stand
// aside and in-place.test.ts does the recovery (see runbooks/backup-restore.md).
import { expect } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { scenario, stateSlot, type RunContext, type ScenarioBuilder } from '../../helpers/steps.js';
import { undo } from '../../helpers/undo.js';
import { createKube } from '../../helpers/kube.js';
import { RestoreDrill, type ScratchTarget } from '../../helpers/backup/drill.js';
import { gatewayLock, leaseLock, type DrillLock } from '../../helpers/backup/lock.js';
import { kubeConfigMapClient } from '../../helpers/backup/history.js';
import { streamHasSubject } from '../../helpers/backup/verify.js';
import type { BackupManifest } from '../../helpers/backup/archive.js';
import { IN_PLACE_RUN, inPlaceRequest, redisReadOption, refuseStrayInPlaceOptions } from './in-place-options.js';
import { CheckFailedError } from '../../helpers/errors.js';

const MIN = 60_000;
/** Step deadlines, as documented in runbooks/backup-restore.md. */
const DEADLINE = {
  preflight: 1 * MIN,
  markers: 30_000,
  redisBackup: 10 * MIN,
  jetstreamBackup: 10 * MIN,
  scratchRestore: 15 * MIN,
  verify: 10 * MIN,
  record: 1 * MIN,
};

const DRILL = stateSlot<RestoreDrill>('drill');
const MARKER = stateSlot<{ workflowId: string; subject: string }>('marker');
const MANIFEST = stateSlot<BackupManifest>('manifest');

function drillOf(ctx: RunContext): RestoreDrill {
  return DRILL.require(ctx, 'the preflight step did not create the drill');
}

/** Every drill step skips on an in-place run, and refuses --archive/--confirm given without --in-place. */
function drillOnly(base: ScenarioBuilder): ScenarioBuilder {
  return {
    step: (name, fn, opts) =>
      base.step(
        name,
        async (ctx) => {
          const req = inPlaceRequest(ctx);
          if (req.inPlace) ctx.skip(IN_PLACE_RUN);
          refuseStrayInPlaceOptions(req);
          await fn(ctx);
        },
        opts,
      ),
  };
}

scenario('Backup and restore drill', (base) => {
  const s = drillOnly(base);
  s.step(
    'Preflight: connectivity, versions, sizes, disk, drill lock',
    async (ctx) => {
      redisReadOption(ctx); // a bad --redis-read stops the run here, before anything is touched
      const redis = await ctx.redis();
      const bus = await ctx.bus();
      const kube = ctx.target.kube ? createKube(ctx.target) : undefined;
      const lock: DrillLock = kube ? leaseLock(kube, kube.namespace) : gatewayLock(ctx.gateway());
      const drill = new RestoreDrill({
        target: ctx.target.name,
        redis,
        nats: bus.nc,
        lock,
        redisPath: redisReadOption(ctx),
        workDir: ctx.target.backup?.dir,
        keepArchive: ctx.target.backup?.keep,
        owner: `${ctx.prefix}-restore-drill`,
        cluster: kube ? { kube: kubeConfigMapClient(kube), namespace: kube.namespace } : undefined,
        onProgress: (p) => {
          if (p.message.endsWith('started') || p.message.includes('finished')) process.stderr.write(`[restore-drill] ${p.message}\n`);
        },
      });
      DRILL.set(ctx, drill);
      // Scratch servers, lock and archive go away however the run ends; a failed run is recorded.
      ctx.teardown.add('restore drill: record if unfinished, stop scratch servers, release lock', {
        kind: 'local',
        run: async () => {
          if (!drill.result.record && drill.result.preflight) await drill.record('failed', drill.result.error ?? 'run ended before the drill finished');
          const problems = await drill.cleanup();
          if (problems.length) throw new CheckFailedError(problems.join('; '));
        },
      });
      const report = await drill.preflight();
      await ctx.evidence.json('preflight', report);
    },
    { timeoutMs: DEADLINE.preflight },
  );

  s.step(
    'Plant a marker workflow and a bus marker',
    async (ctx) => {
      const name = `${ctx.prefix}-restore-drill-marker`;
      const { id } = await ctx.gateway().createWorkflow({ name, description: 'restore drill marker', steps: { wait: { type: 'delay', delay_sec: 1 } } });
      ctx.teardown.add(`marker workflow ${id}`, undo.workflow(id));
      const nc = (await ctx.bus()).nc;
      const subject = `sys.${ctx.prefix}.restore-drill.marker`;
      const ack = await jetstream(nc).publish(subject, JSON.stringify({ marker: name, at: new Date().toISOString() }));
      ctx.teardown.add(`bus marker ${ack.stream}#${ack.seq}`, {
        kind: 'local',
        run: async () => void (await (await jetstreamManager(nc)).streams.deleteMessage(ack.stream, ack.seq).catch(() => false)),
      });
      expect(ack.stream).toBe('CORDUM_SYS');
      MARKER.set(ctx, { workflowId: id, subject });
      await ctx.evidence.json('markers', { workflow_id: id, subject, stream: ack.stream, seq: ack.seq });
    },
    { timeoutMs: DEADLINE.markers },
  );

  s.step('Redis backup (logical, every master)', async (ctx) => {
    const drill = drillOf(ctx);
    await drill.backupRedis();
    // How each master was read (the RDB over SYNC, or SCAN) and why, with the keys per db.
    await ctx.evidence.json('redis-backup', drill.result.redisBackup ?? {});
  }, { timeoutMs: DEADLINE.redisBackup });

  s.step('JetStream backup (CORDUM_SYS, CORDUM_JOBS snapshots)', async (ctx) => {
    const drill = drillOf(ctx);
    await drill.backupJetStream();
  }, { timeoutMs: DEADLINE.jetstreamBackup });

  s.step(
    'Scratch restore (archive check, fresh redis-server + nats-server)',
    async (ctx) => {
      const drill = drillOf(ctx);
      const manifest = await drill.checkArchive();
      MANIFEST.set(ctx, manifest);
      ctx.writeArtifact('backup-manifest.json', JSON.stringify(manifest, null, 2));
      await drill.restoreToScratch(manifest);
      await ctx.evidence.json('restore', { redis: drill.result.redisRestore, streams: drill.result.streamRestores });
    },
    { timeoutMs: DEADLINE.scratchRestore },
  );

  s.step(
    'Verify the restored data, including the markers',
    async (ctx) => {
      const drill = drillOf(ctx);
      const manifest = MANIFEST.require(ctx, 'the scratch restore step did not check the archive');
      try {
        await drill.verify(manifest);
      } finally {
        await ctx.evidence.json('verify', { redis: drill.result.redisVerify, streams: drill.result.streamVerify, failures: drill.result.failures });
      }
      // A lived-in stream restores with positions that differ without loss: reported, not failed.
      for (const note of (drill.result.streamVerify ?? []).flatMap((s) => s.notes ?? [])) {
        ctx.finding({ id: 'backup-consumer-position-rewound', severity: 'info', title: 'Consumer position restored a few sequences back, with nothing lost', detail: note });
      }
      const marker = MARKER.require(ctx, 'the marker step did not plant the markers');
      const scratch = drill.scratchTarget as ScratchTarget;
      const def = await scratch.redis.get(`wf:def:${marker.workflowId}`);
      expect(def, `marker workflow wf:def:${marker.workflowId} missing from the restored Redis`).toBeTruthy();
      expect(await streamHasSubject(scratch.nats, 'CORDUM_SYS', marker.subject), `marker message on ${marker.subject} missing from the restored CORDUM_SYS`).toBe(true);
    },
    { timeoutMs: DEADLINE.verify },
  );

  s.step(
    'Measure RPO/RTO and record the drill',
    async (ctx) => {
      const drill = drillOf(ctx);
      const m = drill.measure();
      const record = await drill.record('passed');
      await ctx.evidence.json('measurements', m);
      await ctx.evidence.json('drill-record', record);
    },
    { timeoutMs: DEADLINE.record },
  );
});
