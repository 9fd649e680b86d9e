// Checklist §6: backup CronJobs that really cover every Redis master and both streams, land on
// durable storage and leave the cluster; live: they succeeded recently and a restore drill passed
// within the quarter.
import { defineCheck, fail, fromFindings, notCheckable, pass, type Check } from '../model.js';
import { backupJobs } from '../scripts.js';
import { backupWorkloads, isResult, needObjects, ref } from './util.js';
import { jetstreamFindings, offClusterFindings, redisBackupFindings, storageFindings } from '../backup-judge.js';

/** The drill record ConfigMap and annotation (written by the restore drill, read here). */
export const DRILL_CONFIGMAP = 'cordum-runbooks-drills';
export const DRILL_ANNOTATION = 'cordum-runbooks/last-restore-drill';

/** Rough period of a 5-field cron expression, in hours (enough to judge "late"). */
export function cronPeriodHours(schedule: string): number {
  const macros: Record<string, number> = { '@hourly': 1, '@daily': 24, '@midnight': 24, '@weekly': 168, '@monthly': 744, '@yearly': 8784, '@annually': 8784 };
  if (macros[schedule.trim()]) return macros[schedule.trim()];
  const [min, hour, dom, , dow] = schedule.trim().split(/\s+/);
  const step = (f: string | undefined) => (f?.startsWith('*/') ? Number(f.slice(2)) : undefined);
  if (min === '*' || step(min)) return (step(min) ?? 1) / 60;
  if (hour === '*' || step(hour)) return step(hour) ?? 1;
  if (hour?.includes(',')) return 24 / hour.split(',').length;
  if (dow && dow !== '*') return 168;
  if (dom && dom !== '*') return 744;
  return 24;
}

export const backupChecks: Check[] = [
  defineCheck({
    id: 'backups.redis-cronjob',
    section: 'backups',
    item: '6.1, 1.6',
    title: 'A Redis backup CronJob dumps every master it can reach, with valid redis-cli flags',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add a CronJob that discovers the masters at run time (`redis-cli … CLUSTER NODES | grep master`) and runs `redis-cli --tls --cacert … --cert … --key … -h <master> --rdb /backup/…` for each, with the client certificate mounted, pod labels the NetworkPolicies allow to Redis, and resources set.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupJobs(idx).filter((j) => j.redisDumps.length);
      if (!jobs.length) return fail('no CronJob or Job dumps Redis (`redis-cli --rdb` or BGSAVE)');
      const { findings, evidence } = redisBackupFindings(idx, jobs, ctx.namespace);
      return fromFindings(findings, `${jobs.length} Redis backup job(s) covering every master`, evidence);
    },
  }),
  defineCheck({
    id: 'backups.jetstream-cronjob',
    section: 'backups',
    item: '6.2',
    title: 'A JetStream backup CronJob covers CORDUM_SYS and CORDUM_JOBS with valid natscli flags',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add a CronJob (natsio/nats-box) running `nats --server tls://cordum-nats:4222 --tlsca … --tlscert … --tlskey … stream backup <S> /backup/<S>-<ts>` (alias `stream snapshot`) for CORDUM_SYS and CORDUM_JOBS, with the client certificate mounted and pod labels the NetworkPolicies allow to NATS.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupJobs(idx).filter((j) => j.natsBackups.length);
      if (!jobs.length) return fail('no CronJob or Job runs `nats stream backup` (or its alias `stream snapshot`, or `nats account backup`)');
      const { findings, evidence } = jetstreamFindings(idx, jobs, ctx.namespace);
      return fromFindings(findings, 'both streams backed up', evidence);
    },
  }),
  defineCheck({
    id: 'backups.storage',
    section: 'backups',
    item: '6.1, 6.2',
    title: 'Backups land on durable storage the jobs can all mount',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Write backups to a PersistentVolumeClaim (not emptyDir or the container filesystem). Jobs sharing a ReadWriteOnce claim must not run at the same time: stagger their schedules, give each its own claim, or use a ReadWriteMany class.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupJobs(idx);
      if (!jobs.length) return fail('no backup jobs found');
      const { findings, evidence } = storageFindings(idx, jobs);
      return fromFindings(findings, `${jobs.length} backup job(s) write to persistent volumes without colliding`, evidence);
    },
  }),
  defineCheck({
    id: 'backups.off-cluster',
    section: 'backups',
    item: '6.4',
    title: 'Backups are copied off-cluster and pruned',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Add a step that copies each backup to an object store (aws s3 cp, rclone, mc, gsutil, azcopy) and one that prunes old backups (find -mtime +N -delete, or bucket lifecycle rules: then waive the pruning finding with that reference).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupJobs(idx);
      if (!jobs.length) return fail('no backup jobs found: nothing is copied off the cluster');
      const { findings, evidence } = offClusterFindings(jobs);
      return fromFindings(findings, 'every backup is copied off-cluster and pruned', evidence);
    },
  }),
  defineCheck({
    id: 'backups.last-success',
    section: 'backups',
    item: '6.1, 6.2',
    title: 'Backup CronJobs succeeded within their schedule',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Look at the last backup Jobs (`kubectl get jobs`, pod logs); fix the failure and make sure the CronJob is not suspended.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const { redis, nats } = backupWorkloads(idx);
      const jobs = [...redis, ...nats];
      if (!jobs.length) return fail('no backup CronJobs found');
      const rows = jobs.map((w) => {
        const schedule = String(w.obj.spec?.schedule ?? '@daily');
        const maxAgeH = cronPeriodHours(schedule) + ctx.thresholds.backupGraceHours;
        const last = w.obj.status?.lastSuccessfulTime as string | undefined;
        const ageH = last ? (ctx.now.getTime() - Date.parse(last)) / 3_600_000 : null;
        return { cronJob: ref(w), schedule, suspended: !!w.obj.spec?.suspend, lastSuccessfulTime: last ?? null, ageHours: ageH === null ? null : Math.round(ageH * 10) / 10, maxAgeHours: maxAgeH };
      });
      const late = rows.filter((r) => r.ageHours === null || r.ageHours > r.maxAgeHours || r.suspended);
      if (late.length) return fail(`no recent success: ${late.map((l) => `${l.cronJob} (${l.lastSuccessfulTime ?? 'never'}${l.suspended ? ', suspended' : ''})`).join(', ')}`, rows);
      return pass(`${rows.length} backup CronJob(s) succeeded within schedule`, rows);
    },
  }),
  defineCheck({
    id: 'backups.restore-drill',
    section: 'backups',
    item: '6.3',
    title: 'A restore drill passed within the last quarter (92 days)',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Run the restore drill (`pnpm runbook backup-restore --target <profile>`); it records the result in ConfigMap cordum-runbooks-drills and reports/.drills.jsonl.',
    run(ctx) {
      const idx = ctx.objects;
      const annotated = idx?.get('ConfigMap', DRILL_CONFIGMAP)?.metadata.annotations?.[DRILL_ANNOTATION];
      const history = (ctx.live?.drills?.records ?? []).filter((r) => r.kind === 'restore-drill' && r.status === 'passed' && (!ctx.namespace || !r.target || r.target === ctx.namespace || r.target.endsWith(`/${ctx.namespace}`) || r.target === ctx.live?.targetName));
      const candidates = [...(annotated && !Number.isNaN(Date.parse(annotated)) ? [{ source: `ConfigMap ${DRILL_CONFIGMAP}`, at: annotated }] : []), ...history.map((h) => ({ source: ctx.live?.drills?.file ?? 'history', at: h.finished_at }))];
      const evidence: Record<string, unknown> = { annotation: annotated ?? null, historyFile: ctx.live?.drills?.file ?? null, historyError: ctx.live?.drills?.error ?? null, passedDrillsInHistory: history.length };
      if (!candidates.length) {
        if (!idx && !ctx.live?.drills) return notCheckable('neither the drill ConfigMap nor the drill history could be read', evidence);
        return fail('no passed restore drill recorded', evidence);
      }
      const latest = candidates.reduce((a, b) => (Date.parse(b.at) > Date.parse(a.at) ? b : a));
      const ageDays = Math.floor((ctx.now.getTime() - Date.parse(latest.at)) / 86_400_000);
      Object.assign(evidence, { latest, ageDays, maxAgeDays: ctx.thresholds.restoreDrillMaxAgeDays });
      if (ageDays > ctx.thresholds.restoreDrillMaxAgeDays) return fail(`last restore drill ${ageDays} days ago (${latest.at})`, evidence);
      return pass(`restore drill passed ${ageDays} day(s) ago (${latest.source})`, evidence);
    },
  }),
];
