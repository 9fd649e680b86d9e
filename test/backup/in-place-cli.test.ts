// The in-place recovery path of runbook backup-restore, driven through the CLI the way on-call runs
// it (`pnpm runbook backup-restore --target <profile> --in-place --archive <dir> --confirm <ns>`),
// against a sandbox started here (its Redis/NATS are "the live stores") and a real Kubernetes control
// plane (test/support/kube/) holding Cordum-like Deployments with pods, an HPA and CronJobs. The runs
// authenticate as a human operator bound only to the Role shipped in
// deploy/tools/in-place-restore-operator.yaml, which proves that Role is enough; the API server's
// audit log shows which calls the run made and in which order. Checks the guard (nothing reaches the
// cluster when the namespace is not confirmed), a full recovery (writers frozen, their pods gone before
// the restore, unfrozen exactly as they were, lost data back, smoke passes), a restore that fails after
// the freeze (exit 1, writers unfrozen), and the scheduled drill's ServiceAccount refused (exit 3).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { RestoreDrill } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { createKube, type Kube } from '../../helpers/kube.js';
import { waitFor } from '../../helpers/waits.js';
import { TEARDOWN_STEP } from '../../helpers/report/run-contract.js';
import { startKubeCluster, type AuditEvent, type KubeCluster } from '../support/kube/cluster.js';
import { KubeletStandIn } from '../support/kube/kubelet.js';
import { DEPLOY_TOOLS, inNamespace, parseManifests, renderDeployK8s } from '../support/kube/manifests.js';
import { sandboxProfileYaml } from '../support/kube/profile.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, reportText, runCli, writeProfile, type RunResult } from '../support/run-runbook.js';
import { cronJob, deployment, hpa, waitForSteadyPods, workloads } from './kube-workloads.js';

const OPERATOR = 'oncall-operator';
const LOST_KEY = 'rb-in-place-test:lost-after-backup';
const STEP = {
  guard: 'In-place: guard (--confirm <namespace>), connectivity, drill lock',
  restore: 'In-place: restore the streams and the Redis keys from the archive',
  verify: 'In-place: verify the restored data (keys written after the backup are allowed)',
  freeze: 'In-place: freeze the writers (Deployments to 0, HPAs aside, backup CronJobs suspended)',
  unfreeze: 'In-place: unfreeze the writers',
  smoke: 'In-place: smoke runbook against the same target',
};

const REPLICAS = { 'cordum-api-gateway': 2, 'cordum-scheduler': 3, 'cordum-workflow-engine': 1, 'cordum-context-engine': 1, 'cordum-dashboard': 1 };
const WRITERS = ['cordum-api-gateway', 'cordum-scheduler', 'cordum-workflow-engine', 'cordum-context-engine'];
const SUSPENDED = { 'cordum-redis-backup': false, 'cordum-jetstream-backup': false, 'cordum-old-backup': true, 'cordum-report': false };

let sb: Sandbox;
let cluster: KubeCluster;
let kube: Kube;
let kubelet: KubeletStandIn;
let NS: string;
let ORIGINAL: Record<string, unknown>;
let redis: Redis;
let nc: NatsConnection;
let work: string;
let archive: string;
let profile: string;

function profileYaml(kubeconfig: string): string {
  return sandboxProfileYaml(sb, { kubeconfig, namespace: NS }, { name: 'in-place-sandbox', backupDir: join(work, 'backups') });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cordum-rb-inplace-cli-'));
  [sb, cluster] = await Promise.all([startSandbox({ policyReloadMs: 1000 }), startKubeCluster({ controllers: true, users: { [OPERATOR]: ['cordum-oncall'] } })]);
  NS = await cluster.createNamespace('cordum');
  await cluster.apply([
    ...Object.entries(REPLICAS).map(([n, r]) => deployment(NS, n, r)),
    hpa(NS, 'cordum-api-gateway', 2, 6),
    ...Object.entries(SUSPENDED).map(([n, s]) => cronJob(NS, n, s)),
    // The operator's Role and binding exactly as shipped, in this namespace; and deploy/k8s (the drill's ServiceAccount).
    ...inNamespace(parseManifests(readFileSync(join(DEPLOY_TOOLS, 'in-place-restore-operator.yaml'), 'utf8')), NS),
    ...inNamespace(await renderDeployK8s(cluster), NS),
  ]);
  kube = createKube(undefined, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
  kubelet = new KubeletStandIn(cluster.kc, `node-${NS}`);
  await kubelet.register();
  kubelet.bindContinuously(NS);
  await waitForSteadyPods(kube, NS, REPLICAS);
  ORIGINAL = await workloads(kube, NS);
  redis = new Redis(sb.redisUrl);
  nc = await connect({ servers: sb.natsUrl });

  // The backup to recover from, taken while LOST_KEY still existed.
  await redis.set(LOST_KEY, 'written before the backup');
  const drill = new RestoreDrill({ target: 'in-place-cli', redis, nats: nc, lock: memoryLock(), workDir: join(work, 'archives'), keepArchive: true, historyFile: false });
  archive = await drill.archiveOnly();
  // The "disaster": the key is lost after the backup.
  await redis.del(LOST_KEY);

  profile = writeProfile(profileYaml(cluster.kubeconfigForToken(cluster.userTokens[OPERATOR]!, NS)));
}, 240_000);

afterAll(async () => {
  cleanupRuns();
  redis?.disconnect();
  await nc?.close().catch(() => undefined);
  await kubelet?.stop();
  await cluster?.stop();
  await sb?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(args: string[], deadlineMs?: number, target = profile): Promise<RunResult> {
  return runCli(['backup-restore', '--target', target, ...args], { env: { [SANDBOX_API_KEY_ENV]: sb.apiKey }, deadlineMs });
}

/** What the operator's runs asked of the API server since `from` (audit log), as "verb resource/name[/sub]". */
function operatorCalls(from: number, opts: { writesOnly?: boolean } = {}): string[] {
  return cluster
    .auditEvents()
    .slice(from)
    .filter((e: AuditEvent) => e.user.username === OPERATOR && (!opts.writesOnly || !['get', 'list', 'watch'].includes(e.verb)))
    .map((e) => {
      const o = e.objectRef ?? {};
      const spec = e.requestObject?.spec ?? {};
      const detail = o.subresource === 'scale' && e.verb === 'update' ? ` → ${spec.replicas ?? 0}` : o.resource === 'cronjobs' && e.verb === 'patch' ? ` suspend=${spec.suspend}` : '';
      return `${e.verb} ${o.resource}${o.name && e.verb !== 'create' ? `/${o.name}` : ''}${o.subresource ? `/${o.subresource}` : ''}${detail}`;
    });
}

async function expectUnchangedCluster(): Promise<void> {
  expect(await workloads(kube, NS), 'every Deployment, HPA and CronJob exactly as it was').toEqual(ORIGINAL);
  const leases = await kube.coordination.listNamespacedLease({ namespace: NS });
  expect(leases.items.map((l) => l.metadata?.name), 'the drill Lease is released').toEqual([]);
  await waitForSteadyPods(kube, NS, REPLICAS);
}

describe('pnpm runbook backup-restore --in-place', () => {
  it('without --confirm: refused with exit 2 naming the namespace; nothing on the cluster is touched', async () => {
    const before = cluster.auditEvents().length;
    const r = await run(['--in-place', '--archive', archive]);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(2);
    expect(r.summary?.status).toBe('config_error');
    const failed = failedSteps(r as Required<RunResult>);
    expect(failed.map((s) => s.name)).toEqual([STEP.guard]);
    expect(failed[0]!.error).toMatch(new RegExp(`in-place restore refused: --confirm <namespace> is missing; type the target namespace "${NS}"`));
    expect(operatorCalls(before), 'no request at all reaches the cluster').toEqual([]);
    expect(await redis.exists(LOST_KEY)).toBe(0);
    // The drill stood aside: no markers planted, nothing backed up.
    const drill = r.summary!.steps.filter((s) => s.scenario === 'Backup and restore drill' && s.name !== TEARDOWN_STEP);
    expect(drill.length).toBeGreaterThan(0);
    expect(drill.filter((s) => s.status !== 'skipped')).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('with the wrong namespace: refused with exit 2; nothing is frozen', async () => {
    const before = cluster.auditEvents().length;
    const r = await run(['--in-place', '--archive', archive, '--confirm', NS.toUpperCase()]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(failedSteps(r as Required<RunResult>)[0]?.error).toMatch(new RegExp(`--confirm "${NS.toUpperCase()}" does not match the target namespace "${NS}"`));
    expect(operatorCalls(before)).toEqual([]);
    expect(await redis.exists(LOST_KEY)).toBe(0);
    await expectUnchangedCluster();
  }, RUN_TIMEOUT_MS);

  it('--archive/--confirm without --in-place: refused with exit 2 instead of running the drill', async () => {
    const before = cluster.auditEvents().length;
    const r = await run(['--archive', archive, '--confirm', NS]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(failedSteps(r as Required<RunResult>)[0]?.error).toMatch(/--archive and --confirm only apply with --in-place/);
    expect(r.summary!.steps.filter((s) => s.name.startsWith('In-place:')).every((s) => s.status === 'skipped')).toBe(true);
    expect(operatorCalls(before, { writesOnly: true })).toEqual([]);
  }, RUN_TIMEOUT_MS);

  // First of the confirmed runs, while the sandbox is at rest: a backup taken while its scheduler is
  // still settling jobs (as after a smoke run) can record consumer positions a moment apart from
  // the snapshot's, and verify would then report the consumer as behind.
  it('confirmed without --archive: takes a fresh backup first (kept under backup.dir) and restores it', async () => {
    const r = await run(['--in-place', '--confirm', NS], 200_000);
    const out = r.stdout + r.stderr + JSON.stringify(r.summary?.steps.filter((s) => s.status === 'failed'));
    expect(r.code, out).toBe(0);
    expect(r.summary!.steps.filter((s) => s.name.startsWith('In-place:') && s.status !== 'passed').map((s) => s.name), out).toEqual([]);
    expect(readdirSync(join(work, 'backups')).length, 'the fresh archive is kept').toBe(1);
    await expectUnchangedCluster();
  }, RUN_TIMEOUT_MS);

  it('confirmed, as the operator Role allows: freezes the writers, waits for their pods, restores the lost key, verifies, unfreezes, and the smoke runbook passes', async () => {
    const before = cluster.auditEvents().length;
    const r = await run(['--in-place', '--archive', archive, '--confirm', NS], 200_000);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(0);
    const steps = r.summary!.steps;
    expect(steps.filter((s) => s.name.startsWith('In-place:')).map((s) => [s.name, s.status]).filter(([, st]) => st !== 'passed'), out).toEqual([]);
    expect(steps.find((s) => s.name === STEP.smoke)?.status).toBe('passed');
    expect(steps.filter((s) => s.scenario === 'Backup and restore drill').map((s) => s.skip_reason)).toContain(
      'in-place recovery run (--in-place): the scratch drill stands aside; the in-place steps below do the work',
    );

    // Data: the key deleted after the backup is back.
    expect(await redis.get(LOST_KEY)).toBe('written before the backup');

    // Every call the operator's run made was allowed by the Role (no 403 anywhere).
    const events = cluster.auditEvents().slice(before).filter((e) => e.user.username === OPERATOR);
    expect(events.filter((e) => e.annotations?.['authorization.k8s.io/decision'] !== 'allow').map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);

    // Frozen, then unfrozen, in that order: HPA aside before the scale-down, back after the scale-up.
    const seq = operatorCalls(before, { writesOnly: true });
    const at = (s: string) => seq.indexOf(s);
    for (const name of WRITERS) {
      const replicas = REPLICAS[name as keyof typeof REPLICAS];
      expect(at(`update deployments/${name}/scale → 0`), seq.join('\n')).toBeGreaterThanOrEqual(0);
      expect(at(`update deployments/${name}/scale → ${replicas}`)).toBeGreaterThan(at(`update deployments/${name}/scale → 0`));
    }
    expect(seq.some((s) => s.includes('cordum-dashboard')), 'a non-writer is left alone').toBe(false);
    expect(at('delete horizontalpodautoscalers/cordum-api-gateway')).toBeLessThan(at('update deployments/cordum-api-gateway/scale → 0'));
    expect(at('create horizontalpodautoscalers')).toBeGreaterThan(at('update deployments/cordum-api-gateway/scale → 2'));
    for (const c of ['cordum-redis-backup', 'cordum-jetstream-backup']) {
      expect(at(`patch cronjobs/${c} suspend=false`)).toBeGreaterThan(at(`patch cronjobs/${c} suspend=true`));
    }
    expect(seq.some((s) => s.includes('cordum-old-backup')), 'an already suspended CronJob stays as it was').toBe(false);
    expect(at('create leases')).toBeLessThan(at('delete horizontalpodautoscalers/cordum-api-gateway'));
    await expectUnchangedCluster();

    // The report lists what was frozen and unfrozen.
    const freeze = JSON.parse(reportText(r, 'artifacts/in-place-freeze.json')) as { state: { deployments: { name: string }[]; cronjobs: string[] }; frozen: string[]; unfrozen: string[]; unfrozen_completely: boolean };
    expect(freeze.unfrozen_completely).toBe(true);
    expect(freeze.state.deployments.map((d) => d.name).sort()).toEqual([...WRITERS].sort());
    expect(freeze.frozen).toContain('scaled cordum-scheduler from 3 to 0');
    expect(freeze.unfrozen).toContain('recreated HPA cordum-api-gateway');
  }, RUN_TIMEOUT_MS);

  it('a restore that fails after the freeze (Redis refuses writes): exit 1, and the writers are unfrozen anyway', async () => {
    await redis.del(LOST_KEY);
    const before = cluster.auditEvents().length;
    // The writers' pods stay Terminating until this test lets them go: by then every writer is at 0,
    // and from then on Redis refuses every write (OOM). The restore can only start after that.
    kubelet.holdTerminating = true;
    let tripped = false;
    let r: RunResult;
    try {
      const running = run(['--in-place', '--archive', archive, '--confirm', NS]);
      const frozen = waitFor(
        'every writer at 0 replicas with its pods terminating',
        async () => {
          const deps = (await kube.apps.listNamespacedDeployment({ namespace: NS })).items.filter((d) => WRITERS.includes(d.metadata!.name!));
          const terminating = await kubelet.terminating(NS);
          return { zero: deps.every((d) => d.spec?.replicas === 0), terminating: terminating.length };
        },
        (s) => s.zero && s.terminating === 7,
        { timeoutMs: 120_000, intervalMs: 200 },
      );
      await Promise.race([frozen, running.then((x) => Promise.reject(new Error(`the run ended before the freeze: exit ${x.code}\n${x.stdout}${x.stderr}`)))]);
      expect(await redis.exists(LOST_KEY), 'nothing restored while writer pods are still terminating').toBe(0);
      await redis.config('SET', 'maxmemory', '1');
      tripped = true;
      kubelet.holdTerminating = false;
      r = await running;
    } finally {
      kubelet.holdTerminating = false;
      await redis.config('SET', 'maxmemory', '0');
    }
    const out = r.stdout + r.stderr;
    expect(tripped).toBe(true);
    expect(r.code, out).toBe(1);
    const failed = failedSteps(r as Required<RunResult>);
    expect(failed.map((s) => s.name), out).toEqual([STEP.restore]);
    expect(failed[0]!.error).toMatch(/OOM command not allowed when used memory > 'maxmemory'/);
    const status = (name: string) => r.summary!.steps.find((s) => s.name === name)?.status;
    expect([status(STEP.verify), status(STEP.unfreeze), status(STEP.smoke)]).toEqual(['skipped', 'skipped', 'skipped']);
    expect(r.summary!.teardown.left_behind).toEqual([]);

    // Frozen, and unfrozen by teardown.
    const seq = operatorCalls(before, { writesOnly: true });
    expect(seq).toContain('update deployments/cordum-scheduler/scale → 0');
    expect(seq).toContain('update deployments/cordum-scheduler/scale → 3');
    expect(seq).toContain('create horizontalpodautoscalers');
    await expectUnchangedCluster();
    const freeze = JSON.parse(reportText(r, 'artifacts/in-place-freeze.json')) as { unfrozen_completely: boolean; unfrozen: string[] };
    expect(freeze.unfrozen_completely).toBe(true);
    expect(freeze.unfrozen).toContain('scaled cordum-scheduler back to 3');
    expect(await redis.exists(LOST_KEY)).toBe(0);
  }, RUN_TIMEOUT_MS);

  it('the operator Role grants nothing beyond the in-place restore: reading Secrets is 403, named as the missing permission', async () => {
    const operator = createKube(undefined, { kubeconfig: cluster.kubeconfigForToken(cluster.userTokens[OPERATOR]!, NS), namespace: NS });
    const err = await operator.listAll().then((r) => r.skipped.find((s) => s.kind === 'Secret')?.reason);
    expect(err).toMatch(new RegExp(`list Secret: 403 .*User "${OPERATOR}" cannot list resource "secrets".*\\(RBAC: the Role lacks verb "list" on "secrets" \\(apiGroup ""\\)\\)`));
    await expect(operator.patchHpa(NS, 'cordum-api-gateway', { spec: { maxReplicas: 50 } })).rejects.toThrow(/403 .*the Role lacks verb "patch" on "horizontalpodautoscalers"/);
  });

  it('with the scheduled drill\'s ServiceAccount (deploy/k8s): refused by RBAC at the freeze, exit 3 naming the missing verb and resource; nothing changed', async () => {
    const token = await cluster.serviceAccountToken(NS, 'cordum-runbooks-backup-restore');
    const drillProfile = writeProfile(profileYaml(cluster.kubeconfigForToken(token, NS)));
    const before = cluster.auditEvents().length;
    const r = await run(['--in-place', '--archive', archive, '--confirm', NS], undefined, drillProfile);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(3);
    expect(r.summary?.status).toBe('unreachable');
    const failed = failedSteps(r as Required<RunResult>);
    expect(failed.map((s) => s.name), out).toEqual([STEP.freeze]);
    expect(failed[0]!.error).toMatch(/list deployments in .*: 403 .*cannot list resource "deployments" in API group "apps".*\(RBAC: the Role lacks verb "list" on "deployments" \(apiGroup "apps"\)\)/);
    // The Lease (its Role allows) was taken and released; the refusal came from the real authorizer.
    const sa = `system:serviceaccount:${NS}:cordum-runbooks-backup-restore`;
    const denied = cluster.auditEvents().slice(before).filter((e) => e.user.username === sa && e.annotations?.['authorization.k8s.io/decision'] === 'forbid');
    expect(denied.map((e) => `${e.verb} ${e.objectRef?.resource}`)).toEqual(['list deployments']);
    await expectUnchangedCluster();
  }, RUN_TIMEOUT_MS);
});
