// Checklist §6: backup CronJobs that really cover every Redis master and both streams, land on
// durable storage and leave the cluster; live: they succeeded recently and a restore drill passed
// within the quarter.
import { defineCheck, fail, notCheckable, pass, warn, type Check } from '../model.js';
import { containersOf, type Workload } from '../objects.js';
import { backupCronJobs, isResult, needObjects, primary, ref, scriptOf, volumeForPath, volumeKind } from './util.js';

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

function durableTarget(w: Workload, pathHint: RegExp): { path?: string; volume?: string; kind: string } {
  const script = scriptOf(w);
  const m = pathHint.exec(script);
  const path = m?.[1] ?? containersOf(w.podSpec).flatMap((c) => c.volumeMounts ?? []).find((vm) => /backup/.test(vm.mountPath))?.mountPath;
  if (!path) return { kind: 'unknown' };
  const { volume } = volumeForPath(w, undefined, path.replace(/\$\{?\w+\}?.*$/, '').replace(/\/+$/, '') || path);
  return { path, volume, kind: volumeKind(w, volume) };
}

function hasResources(w: Workload): boolean {
  return containersOf(w.podSpec).every((c) => c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory);
}

export const backupChecks: Check[] = [
  defineCheck({
    id: 'backups.redis-cronjob',
    section: 'backups',
    item: '6.1, 1.6',
    title: 'A Redis backup CronJob dumps every master to durable storage',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add a CronJob that discovers masters at run time (`redis-cli … CLUSTER NODES`) and runs `redis-cli --tls … -h <master> --rdb /backup/…` for each, writing to a PVC, with resources set.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupCronJobs(idx).redis;
      if (!jobs.length) return fail('no CronJob runs `redis-cli --rdb`');
      const redis = primary(idx, 'redis');
      const masters = redis ? Math.max(1, Math.floor(redis.replicas / 2)) : 1;
      const rows = jobs.map((w) => {
        const script = scriptOf(w);
        const discovers = /cluster\s+nodes/i.test(script);
        const hosts = new Set([...script.matchAll(/-h\s+(\S+)/g)].map((m) => m[1])).size;
        const target = durableTarget(w, /--rdb\s+(\S+)/);
        return { cronJob: ref(w), discoversMasters: discovers, fixedHosts: hosts, target, resources: hasResources(w) };
      });
      const problems: string[] = [];
      for (const r of rows) {
        if (!r.discoversMasters && r.fixedHosts < masters) problems.push(`${r.cronJob} dumps ${r.fixedHosts} fixed host(s), ${masters} masters expected (discover them from CLUSTER NODES)`);
        if (r.target.kind !== 'pvc') problems.push(`${r.cronJob} writes to ${r.target.kind}`);
        if (!r.resources) problems.push(`${r.cronJob} has no resource requests/limits`);
      }
      if (problems.length) return fail(problems.join('; '), rows);
      return pass(`${rows.length} Redis backup CronJob(s) covering every master on a PVC`, rows);
    },
  }),
  defineCheck({
    id: 'backups.jetstream-cronjob',
    section: 'backups',
    item: '6.2',
    title: 'A JetStream backup CronJob covers CORDUM_SYS and CORDUM_JOBS on durable storage',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add a CronJob (natsio/nats-box) running `nats --server tls://cordum-nats:4222 --tlsca … stream backup <S> /backup/<S>-<ts>` for both streams, writing to a PVC.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const jobs = backupCronJobs(idx).nats;
      if (!jobs.length) return fail('no CronJob runs `nats stream backup`');
      const all = jobs.map(scriptOf).join('\n');
      const streams = ['CORDUM_SYS', 'CORDUM_JOBS'].filter((s) => all.includes(s));
      const rows = jobs.map((w) => ({ cronJob: ref(w), target: durableTarget(w, /stream\s+(?:backup|snapshot)\s+\S+\s+(\S+)/), resources: hasResources(w) }));
      const problems: string[] = [];
      if (streams.length < 2) problems.push(`streams covered: ${streams.join(', ') || 'none'}`);
      for (const r of rows) {
        if (r.target.kind !== 'pvc') problems.push(`${r.cronJob} writes to ${r.target.kind}`);
        if (!r.resources) problems.push(`${r.cronJob} has no resource requests/limits`);
      }
      const evidence = { streams, cronJobs: rows };
      if (problems.length) return fail(problems.join('; '), evidence);
      return pass('both streams backed up to a PVC', evidence);
    },
  }),
  defineCheck({
    id: 'backups.off-cluster',
    section: 'backups',
    item: '6.4',
    title: 'Backups are copied off-cluster and pruned',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Add a step that copies each backup to an object store (aws s3 cp, rclone, mc, gsutil, azcopy) and one that prunes old backups (find -mtime +N -delete, or bucket lifecycle rules).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const { redis, nats } = backupCronJobs(idx);
      const jobs = [...redis, ...nats];
      if (!jobs.length) return warn('no backup CronJobs found');
      const rows = jobs.map((w) => {
        const s = scriptOf(w);
        return { cronJob: ref(w), offCluster: /\b(aws\s+s3|rclone|mc\s+(cp|mirror)|gsutil|gcloud\s+storage|azcopy|restic|s5cmd)\b/.test(s), prunes: /-mtime\s+\+?\d+.*-delete|\bfind\b.*-delete|rclone\s+delete|--max-age|--keep-(daily|last)|\bprune\b/.test(s) };
      });
      const missing = rows.filter((r) => !r.offCluster || !r.prunes);
      if (missing.length) return warn(`in-cluster only or no pruning: ${missing.map((m) => m.cronJob).join(', ')}`, rows);
      return pass('every backup is copied off-cluster and pruned', rows);
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
      const { redis, nats } = backupCronJobs(idx);
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
