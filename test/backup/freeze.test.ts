// In-place restore safety: the guard, freezing writers against the fake Kubernetes API server
// (Deployments to 0, HPAs set aside, backup CronJobs suspended, all undone even on failure), a real
// in-place restore with frozen writers, plus the Lease drill lock and the ConfigMap drill record.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { startFakeKube, type FakeKube, type FakeObject } from '../support/fake-kube.js';
import { createKube, type Kube } from '../../helpers/kube.js';
import { guardInPlace, kubeFreezeOps, withWritersFrozen } from '../../helpers/backup/freeze.js';
import { restoreInPlace } from '../../helpers/backup/in-place.js';
import { runDrill } from '../../helpers/backup/drill.js';
import { leaseLock, memoryLock } from '../../helpers/backup/lock.js';
import { DRILL_CONFIGMAP, LAST_DRILL_ANNOTATION, kubeConfigMapClient } from '../../helpers/backup/history.js';
import { UsageError, PreconditionError } from '../../helpers/errors.js';
import { startSource, type Source } from './fixtures.js';

const NS = 'cordum';
const deploy = (name: string, replicas: number): FakeObject => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NS }, spec: { replicas } });
const cron = (name: string, suspend: boolean): FakeObject => ({ apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name, namespace: NS }, spec: { schedule: '0 * * * *', suspend, jobTemplate: {} } });
const hpaSpec = { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'cordum-api-gateway' }, minReplicas: 2, maxReplicas: 5 };

let fk: FakeKube;
let kube: Kube;

beforeAll(async () => {
  fk = await startFakeKube(
    [
      deploy('cordum-api-gateway', 2),
      deploy('cordum-scheduler', 3),
      deploy('cordum-workflow-engine', 1),
      deploy('cordum-dashboard', 1),
      { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'cordum-api-gateway', namespace: NS, labels: { app: 'cordum-api-gateway' } }, spec: hpaSpec },
      cron('cordum-redis-backup', false),
      cron('cordum-jetstream-backup', false),
      cron('cordum-old-backup', true),
      cron('cordum-report', false),
    ],
    { namespace: NS },
  );
  kube = createKube(undefined, { kubeconfig: fk.kubeconfigPath, namespace: NS });
});

afterAll(async () => {
  await fk?.stop();
});

function snapshot() {
  const objs = fk.objects();
  const get = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
  return {
    replicas: Object.fromEntries(objs.filter((o) => o.kind === 'Deployment').map((o) => [o.metadata.name, o.spec.replicas])),
    hpa: get('HorizontalPodAutoscaler', 'cordum-api-gateway'),
    suspended: Object.fromEntries(objs.filter((o) => o.kind === 'CronJob').map((o) => [o.metadata.name, o.spec.suspend])),
  };
}

const ORIGINAL = {
  replicas: { 'cordum-api-gateway': 2, 'cordum-scheduler': 3, 'cordum-workflow-engine': 1, 'cordum-dashboard': 1 },
  suspended: { 'cordum-redis-backup': false, 'cordum-jetstream-backup': false, 'cordum-old-backup': true, 'cordum-report': false },
};

describe('in-place guard', () => {
  it('requires inPlace and the namespace typed back exactly', () => {
    expect(() => guardInPlace({ namespace: NS })).toThrow(UsageError);
    expect(() => guardInPlace({ namespace: NS, inPlace: true })).toThrow(/confirmNamespace "" does not equal the target namespace "cordum"/);
    expect(() => guardInPlace({ namespace: NS, inPlace: true, confirmNamespace: 'Cordum' })).toThrow(/does not equal/);
    expect(() => guardInPlace({ namespace: NS, inPlace: true, confirmNamespace: NS })).not.toThrow();
  });
});

describe('freezing writers (fake Kubernetes API)', () => {
  it('scales writers to 0, sets HPAs aside, suspends backups, and restores all of it', async () => {
    const before = fk.requests().length;
    const inside = await withWritersFrozen(kubeFreezeOps(kube), NS, async (state) => {
      expect(state.deployments).toEqual([
        { name: 'cordum-api-gateway', replicas: 2 },
        { name: 'cordum-scheduler', replicas: 3 },
        { name: 'cordum-workflow-engine', replicas: 1 },
      ]);
      expect(state.cronjobs.sort()).toEqual(['cordum-jetstream-backup', 'cordum-redis-backup']);
      return snapshot();
    });
    expect(inside.replicas).toEqual({ 'cordum-api-gateway': 0, 'cordum-scheduler': 0, 'cordum-workflow-engine': 0, 'cordum-dashboard': 1 });
    expect(inside.hpa).toBeUndefined();
    expect(inside.suspended).toEqual({ 'cordum-redis-backup': true, 'cordum-jetstream-backup': true, 'cordum-old-backup': true, 'cordum-report': false });

    const after = snapshot();
    expect(after.replicas).toEqual(ORIGINAL.replicas);
    expect(after.suspended).toEqual(ORIGINAL.suspended);
    expect(after.hpa?.spec).toEqual(hpaSpec);
    expect(after.hpa?.metadata.labels).toEqual({ app: 'cordum-api-gateway' });

    // Order matters: HPA removed before the scale-down, recreated after the scale-up.
    const log = fk.requests().slice(before).filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path.replace(/^.*\/namespaces\/cordum\//, '')}`);
    const idx = (s: string) => log.findIndex((l) => l === s);
    expect(idx('DELETE horizontalpodautoscalers/cordum-api-gateway')).toBeLessThan(idx('PATCH deployments/cordum-api-gateway/scale'));
    expect(log.lastIndexOf('PATCH deployments/cordum-api-gateway/scale')).toBeLessThan(idx('POST horizontalpodautoscalers'));
  });

  it('unfreezes when the work inside fails, and the work error is what surfaces', async () => {
    await expect(
      withWritersFrozen(kubeFreezeOps(kube), NS, async () => {
        throw new Error('restore blew up');
      }),
    ).rejects.toThrow('restore blew up');
    const after = snapshot();
    expect(after.replicas).toEqual(ORIGINAL.replicas);
    expect(after.suspended).toEqual(ORIGINAL.suspended);
    expect(after.hpa?.spec).toEqual(hpaSpec);
  });
});

describe('drill lock and record on the cluster', () => {
  it('a Lease lets only one drill in at a time', async () => {
    const lock = leaseLock(kube, NS);
    const held = await lock.acquire('drill-a', 60_000);
    await expect(lock.acquire('drill-b', 60_000)).rejects.toThrow(PreconditionError);
    await expect(lock.acquire('drill-b', 60_000)).rejects.toThrow(/held by drill-a/);
    await held.release();
    const next = await lock.acquire('drill-b', 60_000);
    await next.release();
  });
});

describe('in-place restore with frozen writers (real Redis + NATS)', () => {
  let src: Source;
  let work: string;
  beforeAll(async () => {
    src = await startSource();
    work = mkdtempSync(join(tmpdir(), 'cordum-rb-inplace-'));
  }, 60_000);
  afterAll(async () => {
    await src?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('records a passing drill on the ConfigMap, then brings back lost data in place and unfreezes', async () => {
    const res = await runDrill({
      target: 'fake-cluster',
      redis: src.redis,
      nats: src.nc,
      lock: memoryLock(),
      workDir: work,
      keepArchive: true,
      historyFile: join(work, 'drills.jsonl'),
      cluster: { kube: kubeConfigMapClient(kube), namespace: NS },
    });
    const cm = fk.objects().find((o) => o.kind === 'ConfigMap' && o.metadata.name === DRILL_CONFIGMAP);
    expect(cm?.metadata.annotations?.[LAST_DRILL_ANNOTATION]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // Disaster: a key lost, a value changed, a whole stream gone.
    await src.redis.del('wf:def:marker');
    await src.redis.set('job:state:1', 'CORRUPTED');
    await (await jetstreamManager(src.nc)).streams.delete('CORDUM_JOBS');

    const guarded = { archive: res.archive, namespace: NS, redis: src.redis, nats: src.nc, freeze: kubeFreezeOps(kube) };
    await expect(restoreInPlace({ ...guarded, inPlace: true, confirmNamespace: 'default' })).rejects.toThrow(UsageError);
    expect(await src.redis.exists('wf:def:marker')).toBe(0);

    const out = await restoreInPlace({ ...guarded, inPlace: true, confirmNamespace: NS });
    expect(out.frozen.deployments.map((d) => d.name)).toContain('cordum-scheduler');
    expect(await src.redis.get('wf:def:marker')).toContain('restore-drill-marker');
    expect(await src.redis.get('job:state:1')).toBe('RUNNING-1');
    expect((await (await jetstreamManager(src.nc)).streams.info('CORDUM_JOBS')).state.messages).toBe(2000);
    expect(snapshot().replicas).toEqual(ORIGINAL.replicas);
    expect(snapshot().suspended).toEqual(ORIGINAL.suspended);
  });
});
