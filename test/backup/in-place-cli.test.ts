// The in-place recovery path of runbook backup-restore, driven through the CLI the way on-call runs
// it (`pnpm runbook backup-restore --target <profile> --in-place --archive <dir> --confirm <ns>`),
// against a sandbox started here (its Redis/NATS are "the live stores") and the fake Kubernetes API
// server holding Cordum-like Deployments, an HPA and CronJobs. Checks the guard (nothing changes on
// the cluster when the namespace is not confirmed), a full recovery (writers frozen and unfrozen,
// lost data back, smoke passes), and a restore that fails after the freeze (exit 1, writers unfrozen).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { RestoreDrill } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { TEARDOWN_STEP } from '../../helpers/report/run-contract.js';
import { startFakeKube, type FakeKube, type FakeObject, type FakeRequest } from '../support/fake-kube.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, reportText, runCli, writeProfile, type RunResult } from '../support/run-runbook.js';

const NS = 'cordum';
const LOST_KEY = 'rb-in-place-test:lost-after-backup';
const STEP = {
  guard: 'In-place: guard (--confirm <namespace>), connectivity, drill lock',
  restore: 'In-place: restore the streams and the Redis keys from the archive',
  verify: 'In-place: verify the restored data (keys written after the backup are allowed)',
  unfreeze: 'In-place: unfreeze the writers',
  smoke: 'In-place: smoke runbook against the same target',
};

const deploy = (name: string, replicas: number): FakeObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: NS, labels: { app: name } },
  spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } } } },
});
const cron = (name: string, suspend: boolean): FakeObject => ({ apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name, namespace: NS }, spec: { schedule: '0 * * * *', suspend, jobTemplate: {} } });
const HPA_SPEC = { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'cordum-api-gateway' }, minReplicas: 2, maxReplicas: 6 };

const ORIGINAL = {
  replicas: { 'cordum-api-gateway': 2, 'cordum-scheduler': 3, 'cordum-workflow-engine': 1, 'cordum-context-engine': 1, 'cordum-dashboard': 1 },
  suspended: { 'cordum-redis-backup': false, 'cordum-jetstream-backup': false, 'cordum-old-backup': true, 'cordum-report': false },
};

let sb: Sandbox;
let fk: FakeKube;
let redis: Redis;
let nc: NatsConnection;
let work: string;
let archive: string;
let profile: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cordum-rb-inplace-cli-'));
  sb = await startSandbox({ policyReloadMs: 1000 });
  fk = await startFakeKube(
    [
      ...Object.entries(ORIGINAL.replicas).map(([n, r]) => deploy(n, r)),
      { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'cordum-api-gateway', namespace: NS, labels: { app: 'cordum-api-gateway' } }, spec: HPA_SPEC },
      ...Object.entries(ORIGINAL.suspended).map(([n, s]) => cron(n, s)),
    ],
    { namespace: NS },
  );
  redis = new Redis(sb.redisUrl);
  nc = await connect({ servers: sb.natsUrl });

  // The backup to recover from, taken while LOST_KEY still existed.
  await redis.set(LOST_KEY, 'written before the backup');
  const drill = new RestoreDrill({ target: 'in-place-cli', redis, nats: nc, lock: memoryLock(), workDir: join(work, 'archives'), keepArchive: true, historyFile: false });
  try {
    await drill.preflight();
    await drill.backupRedis();
    await drill.backupJetStream();
    await drill.checkArchive();
  } finally {
    await drill.cleanup({ keepArchive: true });
  }
  archive = drill.root;
  // The "disaster": the key is lost after the backup.
  await redis.del(LOST_KEY);

  const p = sb.profile;
  profile = writeProfile(
    [
      'name: in-place-sandbox',
      'gateway:',
      `  url: ${p.gateway.url}`,
      `  api_key_env: ${SANDBOX_API_KEY_ENV}`,
      '  principal: { id: runbook-operator, role: admin }',
      'metrics:',
      `  gateway: ${p.metrics!.gateway}`,
      `  scheduler: ${p.metrics!.scheduler}`,
      'workflow_engine:',
      `  health_url: ${p.workflow_engine!.health_url}`,
      `nats: { url: "${sb.natsUrl}" }`,
      `redis: { url: "${sb.redisUrl}" }`,
      'kube:',
      `  kubeconfig: ${fk.kubeconfigPath}`,
      '  context: fake',
      `  namespace: ${NS}`,
      'backup:',
      `  dir: ${join(work, 'backups')}`,
      '',
    ].join('\n'),
  );
}, 90_000);

afterAll(async () => {
  cleanupRuns();
  redis?.disconnect();
  await nc?.close().catch(() => undefined);
  await fk?.stop();
  await sb?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(args: string[], deadlineMs?: number): Promise<RunResult> {
  return runCli(['backup-restore', '--target', profile, ...args], { env: { [SANDBOX_API_KEY_ENV]: sb.apiKey }, deadlineMs });
}

function clusterState() {
  const objs = fk.objects();
  return {
    replicas: Object.fromEntries(objs.filter((o) => o.kind === 'Deployment').map((o) => [o.metadata.name, o.spec.replicas])),
    suspended: Object.fromEntries(objs.filter((o) => o.kind === 'CronJob').map((o) => [o.metadata.name, o.spec.suspend])),
    hpa: objs.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === 'cordum-api-gateway'),
    leases: objs.filter((o) => o.kind === 'Lease').map((o) => o.metadata.name),
  };
}

const writes = (reqs: FakeRequest[]) => reqs.filter((r) => r.method !== 'GET');
const short = (r: FakeRequest) => `${r.method} ${r.path.replace(/^.*\/namespaces\/[^/]+\//, '')}`;

function expectUnchangedCluster(): void {
  const now = clusterState();
  expect(now.replicas).toEqual(ORIGINAL.replicas);
  expect(now.suspended).toEqual(ORIGINAL.suspended);
  expect(now.hpa?.spec).toEqual(HPA_SPEC);
  expect(now.hpa?.metadata.labels).toEqual({ app: 'cordum-api-gateway' });
  expect(now.leases, 'the drill Lease is released').toEqual([]);
}

describe('pnpm runbook backup-restore --in-place', () => {
  it('without --confirm: refused with exit 2 naming the namespace; nothing on the cluster is touched', async () => {
    const before = fk.requests().length;
    const r = await run(['--in-place', '--archive', archive]);
    const out = r.stdout + r.stderr;
    expect(r.code, out).toBe(2);
    expect(r.summary?.status).toBe('config_error');
    const failed = failedSteps(r as Required<RunResult>);
    expect(failed.map((s) => s.name)).toEqual([STEP.guard]);
    expect(failed[0]!.error).toMatch(/in-place restore refused: --confirm <namespace> is missing; type the target namespace "cordum"/);
    expect(fk.requests().slice(before), 'no request at all reaches the cluster').toEqual([]);
    expect(await redis.exists(LOST_KEY)).toBe(0);
    // The drill stood aside: no markers planted, nothing backed up.
    const drill = r.summary!.steps.filter((s) => s.scenario === 'Backup and restore drill' && s.name !== TEARDOWN_STEP);
    expect(drill.length).toBeGreaterThan(0);
    expect(drill.filter((s) => s.status !== 'skipped')).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('with the wrong namespace: refused with exit 2; nothing is frozen', async () => {
    const before = fk.requests().length;
    const r = await run(['--in-place', '--archive', archive, '--confirm', 'Cordum']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(failedSteps(r as Required<RunResult>)[0]?.error).toMatch(/--confirm "Cordum" does not match the target namespace "cordum"/);
    expect(writes(fk.requests().slice(before)).map(short)).toEqual([]);
    expect(await redis.exists(LOST_KEY)).toBe(0);
    expectUnchangedCluster();
  }, RUN_TIMEOUT_MS);

  it('--archive/--confirm without --in-place: refused with exit 2 instead of running the drill', async () => {
    const before = fk.requests().length;
    const r = await run(['--archive', archive, '--confirm', NS]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(failedSteps(r as Required<RunResult>)[0]?.error).toMatch(/--archive and --confirm only apply with --in-place/);
    expect(r.summary!.steps.filter((s) => s.name.startsWith('In-place:')).every((s) => s.status === 'skipped')).toBe(true);
    expect(writes(fk.requests().slice(before))).toEqual([]);
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
    expectUnchangedCluster();
  }, RUN_TIMEOUT_MS);

  it('confirmed: freezes the writers, restores the lost key, verifies, unfreezes, and the smoke runbook passes', async () => {
    const before = fk.requests().length;
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

    // Frozen, then unfrozen, in that order: HPA aside before the scale-down, back after the scale-up.
    const log = writes(fk.requests().slice(before));
    const seq = log.map((q) => `${short(q)}${q.path.endsWith('/scale') ? ` → ${(q.body as { spec: { replicas: number } }).spec.replicas}` : ''}${q.path.includes('cronjobs') ? ` suspend=${(q.body as { spec: { suspend: boolean } }).spec.suspend}` : ''}`);
    const at = (s: string) => seq.indexOf(s);
    for (const [name, replicas] of Object.entries(ORIGINAL.replicas)) {
      if (name === 'cordum-dashboard') continue;
      expect(at(`PATCH deployments/${name}/scale → 0`), seq.join('\n')).toBeGreaterThanOrEqual(0);
      expect(at(`PATCH deployments/${name}/scale → ${replicas}`)).toBeGreaterThan(at(`PATCH deployments/${name}/scale → 0`));
    }
    expect(seq.some((s) => s.includes('cordum-dashboard')), 'a non-writer is left alone').toBe(false);
    expect(at('DELETE horizontalpodautoscalers/cordum-api-gateway')).toBeLessThan(at('PATCH deployments/cordum-api-gateway/scale → 0'));
    expect(at('POST horizontalpodautoscalers')).toBeGreaterThan(at('PATCH deployments/cordum-api-gateway/scale → 2'));
    for (const c of ['cordum-redis-backup', 'cordum-jetstream-backup']) {
      expect(at(`PATCH cronjobs/${c} suspend=false`)).toBeGreaterThan(at(`PATCH cronjobs/${c} suspend=true`));
    }
    expect(seq.some((s) => s.includes('cordum-old-backup')), 'an already suspended CronJob stays as it was').toBe(false);
    expect(at('POST leases')).toBeLessThan(at('DELETE horizontalpodautoscalers/cordum-api-gateway'));
    expectUnchangedCluster();

    // The report lists what was frozen and unfrozen.
    const freeze = JSON.parse(reportText(r, 'artifacts/in-place-freeze.json')) as { state: { deployments: { name: string }[]; cronjobs: string[] }; frozen: string[]; unfrozen: string[]; unfrozen_completely: boolean };
    expect(freeze.unfrozen_completely).toBe(true);
    expect(freeze.state.deployments.map((d) => d.name).sort()).toEqual(['cordum-api-gateway', 'cordum-context-engine', 'cordum-scheduler', 'cordum-workflow-engine']);
    expect(freeze.frozen).toContain('scaled cordum-scheduler from 3 to 0');
    expect(freeze.unfrozen).toContain('recreated HPA cordum-api-gateway');
  }, RUN_TIMEOUT_MS);

  it('a restore that fails after the freeze (Redis refuses writes): exit 1, and the writers are unfrozen anyway', async () => {
    await redis.del(LOST_KEY);
    const before = fk.requests().length;
    // The freeze's first scale-down is the trigger: from then on Redis refuses every write (OOM).
    let tripped: Promise<unknown> | undefined;
    fk.setFault(({ method, path }) => {
      if (!tripped && method === 'PATCH' && path.endsWith('/scale')) tripped = redis.config('SET', 'maxmemory', '1');
      return undefined;
    });
    let r: RunResult;
    try {
      r = await run(['--in-place', '--archive', archive, '--confirm', NS]);
    } finally {
      fk.setFault(undefined);
      await tripped;
      await redis.config('SET', 'maxmemory', '0');
    }
    const out = r.stdout + r.stderr;
    expect(tripped, 'the freeze scaled something down').toBeDefined();
    expect(r.code, out).toBe(1);
    const failed = failedSteps(r as Required<RunResult>);
    expect(failed.map((s) => s.name), out).toEqual([STEP.restore]);
    expect(failed[0]!.error).toMatch(/OOM|maxmemory/);
    const status = (name: string) => r.summary!.steps.find((s) => s.name === name)?.status;
    expect([status(STEP.verify), status(STEP.unfreeze), status(STEP.smoke)]).toEqual(['skipped', 'skipped', 'skipped']);
    expect(r.summary!.teardown.left_behind).toEqual([]);

    // Frozen, and unfrozen by teardown.
    const seq = writes(fk.requests().slice(before)).map(short);
    expect(seq).toContain('PATCH deployments/cordum-scheduler/scale');
    expect(seq).toContain('POST horizontalpodautoscalers');
    expectUnchangedCluster();
    const freeze = JSON.parse(reportText(r, 'artifacts/in-place-freeze.json')) as { unfrozen_completely: boolean; unfrozen: string[] };
    expect(freeze.unfrozen_completely).toBe(true);
    expect(freeze.unfrozen).toContain('scaled cordum-scheduler back to 3');
    expect(await redis.exists(LOST_KEY)).toBe(0);
  }, RUN_TIMEOUT_MS);
});
