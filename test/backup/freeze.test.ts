// In-place restore safety on a real Kubernetes control plane (etcd + kube-apiserver +
// kube-controller-manager, test/support/kube/): the guard; freezing writers (Deployments to 0 through
// the scale subresource, HPAs set aside, backup CronJobs suspended) with the restore held back until
// the writers' pods are really gone; everything put back exactly; someone else's change during the
// freeze detected and never overwritten; the Lease drill lock with two drills racing; the ConfigMap
// drill record; and a real in-place restore with frozen writers. A test stand-in for the kubelet
// (KubeletStandIn) holds terminating pods, so "pods still running after scale to 0" is a state the
// test controls, not timing luck.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { startKubeCluster, type KubeCluster } from '../support/kube/cluster.js';
import { KubeletStandIn } from '../support/kube/kubelet.js';
import { createKube, microTime, type Kube } from '../../helpers/kube.js';
import { guardInPlace, kubeFreezeOps, withWritersFrozen, type FreezeState } from '../../helpers/backup/freeze.js';
import { restoreInPlace } from '../../helpers/backup/in-place.js';
import { runDrill } from '../../helpers/backup/drill.js';
import { leaseLock, memoryLock } from '../../helpers/backup/lock.js';
import { DRILL_CONFIGMAP, LAST_DRILL_ANNOTATION, kubeConfigMapClient } from '../../helpers/backup/history.js';
import { UsageError, PreconditionError } from '../../helpers/errors.js';
import { waitFor } from '../../helpers/waits.js';
import { startSource, type Source } from './fixtures.js';
import { cronJob, deployment, hpa, waitForSteadyPods, workloads } from './kube-workloads.js';

const REPLICAS = { 'cordum-api-gateway': 2, 'cordum-scheduler': 3, 'cordum-workflow-engine': 1, 'cordum-dashboard': 1 };
const WRITERS = ['cordum-api-gateway', 'cordum-scheduler', 'cordum-workflow-engine'];
const SUSPENDED = { 'cordum-redis-backup': false, 'cordum-jetstream-backup': false, 'cordum-old-backup': true, 'cordum-report': false };
const ADMIN = 'cordum-runbooks-test-admin';

let cluster: KubeCluster;
let kube: Kube;
let kubelet: KubeletStandIn;
let NS: string;

beforeAll(async () => {
  cluster = await startKubeCluster({ controllers: true });
  NS = await cluster.createNamespace('freeze');
  await cluster.apply([
    ...Object.entries(REPLICAS).map(([n, r]) => deployment(NS, n, r)),
    hpa(NS, 'cordum-api-gateway', 2, 5),
    ...Object.entries(SUSPENDED).map(([n, s]) => cronJob(NS, n, s)),
  ]);
  kube = createKube(undefined, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
  kubelet = new KubeletStandIn(cluster.kc, `node-${NS}`);
  await kubelet.register();
  kubelet.bindContinuously(NS);
  await waitForSteadyPods(kube, NS, REPLICAS);
}, 180_000);

afterAll(async () => {
  await kubelet?.stop();
  await cluster?.stop();
});

/** Collects the freeze's log lines and resolves waiters when one matches. */
function logRecorder() {
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  return {
    lines,
    log: (l: string) => {
      lines.push(l);
      for (const w of waiters.splice(0)) if (w.re.test(l)) w.resolve(l);
      else waiters.push(w);
    },
    next: (re: RegExp) => new Promise<string>((resolve) => {
      const seen = lines.find((l) => re.test(l));
      if (seen) resolve(seen);
      else waiters.push({ re, resolve });
    }),
  };
}

/** Writes the admin (the freeze, in these tests) made in NS since `from`, as "verb resource/name[/sub]" (the audit log omits replicas: 0). */
function adminWrites(from: number): string[] {
  return cluster
    .auditEvents()
    .slice(from)
    .filter((e) => e.user.username === ADMIN && e.objectRef?.namespace === NS && !['get', 'list', 'watch'].includes(e.verb))
    .map((e) => `${e.verb} ${e.objectRef!.resource}${e.objectRef!.name && e.verb !== 'create' ? `/${e.objectRef!.name}` : ''}${e.objectRef!.subresource ? `/${e.objectRef!.subresource}` : ''}${e.objectRef!.subresource === 'scale' ? ` → ${e.requestObject?.spec?.replicas ?? 0}` : ''}`);
}

describe('in-place guard', () => {
  it('requires inPlace and the namespace typed back exactly', () => {
    expect(() => guardInPlace({ namespace: 'cordum' })).toThrow(UsageError);
    expect(() => guardInPlace({ namespace: 'cordum', inPlace: true })).toThrow(/confirmNamespace "" does not equal the target namespace "cordum"/);
    expect(() => guardInPlace({ namespace: 'cordum', inPlace: true, confirmNamespace: 'Cordum' })).toThrow(/does not equal/);
    expect(() => guardInPlace({ namespace: 'cordum', inPlace: true, confirmNamespace: 'cordum' })).not.toThrow();
  });
});

describe('freezing writers (real API server and controllers)', () => {
  it('holds the work back until the writers\' pods are gone, and leaves every Deployment, HPA and CronJob exactly as it was', async () => {
    const before = await workloads(kube, NS);
    const audit0 = cluster.auditEvents().length;
    const rec = logRecorder();
    kubelet.holdTerminating = true;
    let inside: { state: FreezeState; pods: string[]; replicaSets: Record<string, number>; workloads: Record<string, any> } | undefined;
    const frozen = withWritersFrozen(
      kubeFreezeOps(kube),
      NS,
      async (state) => {
        const pods = (await kube.core.listNamespacedPod({ namespace: NS })).items.map((p) => p.metadata!.labels!.app!);
        const rs = (await kube.apps.listNamespacedReplicaSet({ namespace: NS })).items;
        inside = { state: structuredClone(state), pods, replicaSets: Object.fromEntries(rs.map((r) => [r.metadata!.labels!.app!, r.spec!.replicas!])), workloads: await workloads(kube, NS) };
      },
      { log: rec.log, pollIntervalMs: 200 },
    );
    try {
      // The writers' pods are Terminating (still running, in a real cluster) and the work has not started.
      await rec.next(/^waiting for 6 writer pod\(s\) to terminate/);
      await waitFor('6 terminating writer pods', () => kubelet.terminating(NS), (t) => t.length === 6, { timeoutMs: 30_000, intervalMs: 200 });
      expect(inside, 'the work ran while writer pods were still terminating').toBeUndefined();
    } finally {
      kubelet.holdTerminating = false;
    }
    await frozen;

    expect(inside!.state.deployments).toEqual([
      { name: 'cordum-api-gateway', replicas: 2, selector: 'app=cordum-api-gateway' },
      { name: 'cordum-scheduler', replicas: 3, selector: 'app=cordum-scheduler' },
      { name: 'cordum-workflow-engine', replicas: 1, selector: 'app=cordum-workflow-engine' },
    ]);
    expect(inside!.state.cronjobs.sort()).toEqual(['cordum-jetstream-backup', 'cordum-redis-backup']);
    // Inside: no writer pod left, their ReplicaSets at 0 (the controllers acted), non-writers untouched.
    expect(inside!.pods).toEqual(['cordum-dashboard']);
    expect(inside!.replicaSets).toEqual({ 'cordum-api-gateway': 0, 'cordum-scheduler': 0, 'cordum-workflow-engine': 0, 'cordum-dashboard': 1 });
    expect(inside!.workloads['HorizontalPodAutoscaler/cordum-api-gateway']).toBeUndefined();
    expect(Object.fromEntries(Object.keys(SUSPENDED).map((c) => [c, inside!.workloads[`CronJob/${c}`].spec.suspend]))).toEqual({
      'cordum-redis-backup': true,
      'cordum-jetstream-backup': true,
      'cordum-old-backup': true,
      'cordum-report': false,
    });

    // After: every field of every Deployment, HPA and CronJob as before (server-owned ones aside).
    expect(await workloads(kube, NS)).toEqual(before);
    await waitForSteadyPods(kube, NS, REPLICAS);

    // Order, from the API server's audit log: HPA aside before any scale-down, back after the scale-up.
    const w = adminWrites(audit0);
    const at = (s: string) => w.indexOf(s);
    expect(at('delete horizontalpodautoscalers/cordum-api-gateway'), w.join('\n')).toBeGreaterThanOrEqual(0);
    for (const d of WRITERS) {
      expect(at(`update deployments/${d}/scale → 0`), w.join('\n')).toBeGreaterThan(at('delete horizontalpodautoscalers/cordum-api-gateway'));
      expect(at(`update deployments/${d}/scale → ${REPLICAS[d as keyof typeof REPLICAS]}`)).toBeGreaterThan(at(`update deployments/${d}/scale → 0`));
      expect(at('create horizontalpodautoscalers')).toBeGreaterThan(at(`update deployments/${d}/scale → ${REPLICAS[d as keyof typeof REPLICAS]}`));
    }
    expect(w.some((s) => s.includes('cordum-dashboard')), 'a non-writer is left alone').toBe(false);
    expect(w.some((s) => s.includes('cordum-old-backup')), 'an already suspended CronJob stays as it was').toBe(false);
  }, 120_000);

  it('unfreezes when the work inside fails, and the work error is what surfaces', async () => {
    const before = await workloads(kube, NS);
    await expect(
      withWritersFrozen(kubeFreezeOps(kube), NS, async () => {
        throw new Error('restore blew up');
      }),
    ).rejects.toThrow('restore blew up');
    expect(await workloads(kube, NS)).toEqual(before);
    await waitForSteadyPods(kube, NS, REPLICAS);
  }, 120_000);

  it('someone else scales a writer back up and re-applies the HPA during the freeze: the work never starts, and their changes are kept', async () => {
    const before = await workloads(kube, NS);
    const rec = logRecorder();
    kubelet.holdTerminating = true;
    let ran = false;
    const frozen = withWritersFrozen(
      kubeFreezeOps(kube),
      NS,
      async () => {
        ran = true;
      },
      { log: rec.log, pollIntervalMs: 200 },
    );
    const outcome = frozen.then(
      () => undefined,
      (err: Error) => err,
    );
    let err: Error | undefined;
    try {
      await rec.next(/^waiting for \d+ writer pod\(s\) to terminate/);
      // A GitOps sync: the gateway's HPA re-applied with a new max, the scheduler back to 5 replicas.
      await cluster.apply([hpa(NS, 'cordum-api-gateway', 2, 9)]);
      const r = await cluster.kubectl(['-n', NS, 'scale', 'deployment/cordum-scheduler', '--replicas=5']);
      expect(r.code, r.stderr).toBe(0);
      // Pods held terminating: the freeze can only end by noticing the scale.
      err = await outcome;
    } finally {
      kubelet.holdTerminating = false;
    }
    expect(ran, 'the work must not start once the freeze is broken').toBe(false);
    expect(err).toBeInstanceOf(PreconditionError);
    expect(err!.message).toMatch(/the freeze was undone by someone else .*cordum-scheduler has 5 replicas again; the restore did not start/);

    const after = await workloads(kube, NS);
    expect((after['Deployment/cordum-scheduler'] as any).spec.replicas, 'their scale is not overwritten').toBe(5);
    expect((after['HorizontalPodAutoscaler/cordum-api-gateway'] as any).spec.maxReplicas, 'their HPA is kept').toBe(9);
    expect(rec.lines).toContain('left cordum-scheduler at 5 replicas: someone else scaled it during the freeze (it had 3 before)');
    expect(rec.lines).toContain('left HPA cordum-api-gateway as it is: someone else re-created it during the freeze');
    // Everything else exactly as before.
    const strip = (w: Record<string, unknown>) => Object.fromEntries(Object.entries(w).filter(([k]) => !['Deployment/cordum-scheduler', 'HorizontalPodAutoscaler/cordum-api-gateway'].includes(k)));
    expect(strip(after)).toEqual(strip(before));

    // Put the cluster back for the next tests.
    await cluster.kubectl(['-n', NS, 'scale', 'deployment/cordum-scheduler', '--replicas=3']);
    await cluster.apply([hpa(NS, 'cordum-api-gateway', 2, 5)]);
    await waitForSteadyPods(kube, NS, REPLICAS);
  }, 120_000);

  it('compare-and-set on the scale subresource: a change between read and write is a 409, and is then respected', async () => {
    const stale = await kube.apps.readNamespacedDeploymentScale({ name: 'cordum-workflow-engine', namespace: NS });
    await cluster.kubectl(['-n', NS, 'annotate', 'deployment/cordum-workflow-engine', 'touched=1']);
    // The real server refuses a write based on the old resourceVersion.
    await expect(
      kube.apps.replaceNamespacedDeploymentScale({ name: 'cordum-workflow-engine', namespace: NS, body: { ...stale, spec: { replicas: 0 } } }),
    ).rejects.toMatchObject({ code: 409 });

    // setDeploymentReplicas reads again after a 409: someone scales it between our read and our write.
    let reads = 0;
    const racing = createKube(undefined, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
    const apps = racing.apps;
    racing.apps = new Proxy(apps, {
      get(t, p, r) {
        if (p !== 'readNamespacedDeploymentScale') return Reflect.get(t, p, r);
        return async (args: { name: string; namespace: string }) => {
          const s = await apps.readNamespacedDeploymentScale(args);
          if (++reads === 1) await cluster.kubectl(['-n', NS, 'scale', 'deployment/cordum-workflow-engine', '--replicas=4']);
          return s;
        };
      },
    });
    // Unfreeze semantics: scale back to 1 only while it is still at 1 (as read) → after the 409 it is 4.
    const res = await kubeFreezeOps(racing).setReplicas(NS, 'cordum-workflow-engine', 7, (current) => current === 1);
    expect(reads).toBe(2);
    expect(res).toEqual({ before: 4, changed: false });
    expect((await kube.apps.readNamespacedDeployment({ name: 'cordum-workflow-engine', namespace: NS })).spec?.replicas).toBe(4);
    await cluster.kubectl(['-n', NS, 'scale', 'deployment/cordum-workflow-engine', '--replicas=1']);
    await cluster.kubectl(['-n', NS, 'annotate', 'deployment/cordum-workflow-engine', 'touched-']);
    await waitForSteadyPods(kube, NS, REPLICAS);
  }, 60_000);
});

describe('drill lock and record on the cluster', () => {
  it('two drills racing for the Lease: exactly one gets it, the other is told who holds it', async () => {
    // Two clients, as two drill processes would have.
    const kubeB = createKube(undefined, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled([leaseLock(kube, NS).acquire(`drill-a-${round}`, 60_000), leaseLock(kubeB, NS).acquire(`drill-b-${round}`, 60_000)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won, `round ${round}`).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(PreconditionError);
      const lease = await kube.coordination.readNamespacedLease({ name: 'cordum-runbooks-restore-drill', namespace: NS });
      expect(lost[0]!.reason.message).toContain(`held by ${lease.spec!.holderIdentity}`);
      await (won[0] as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
      await expect(kube.coordination.readNamespacedLease({ name: 'cordum-runbooks-restore-drill', namespace: NS })).rejects.toMatchObject({ code: 404 });
    }
  });

  it('an expired Lease is taken over by exactly one of two racing drills (resourceVersion decides)', async () => {
    const kubeB = createKube(undefined, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
    const past = microTime(new Date(Date.now() - 3_600_000));
    await kube.coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'cordum-runbooks-restore-drill' }, spec: { holderIdentity: 'crashed-drill', leaseDurationSeconds: 60, acquireTime: past, renewTime: past } },
    });
    const results = await Promise.all([kube.getOrCreateLease('cordum-runbooks-restore-drill', 'drill-a', { namespace: NS }), kubeB.getOrCreateLease('cordum-runbooks-restore-drill', 'drill-b', { namespace: NS })]);
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
    const winner = results.find((r) => r.acquired)!.holder;
    const lease = await kube.coordination.readNamespacedLease({ name: 'cordum-runbooks-restore-drill', namespace: NS });
    expect(lease.spec?.holderIdentity).toBe(winner);
    expect(await kube.releaseLease('cordum-runbooks-restore-drill', winner, { namespace: NS })).toBe(true);
  });
});

describe('in-place restore with frozen writers (real Redis + NATS + API server)', () => {
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

  it('records drills on the ConfigMap (created, then patched), then brings back lost data in place, only once the writers are gone', async () => {
    const drill = (n: number) =>
      runDrill({
        target: 'real-cluster',
        redis: src.redis,
        nats: src.nc,
        lock: memoryLock(),
        workDir: join(work, String(n)),
        keepArchive: true,
        historyFile: join(work, 'drills.jsonl'),
        cluster: { kube: kubeConfigMapClient(kube), namespace: NS },
      });
    const res = await drill(1);
    const cm1 = await kube.core.readNamespacedConfigMap({ name: DRILL_CONFIGMAP, namespace: NS });
    expect(cm1.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('cordum-runbooks');
    expect(cm1.metadata?.annotations?.[LAST_DRILL_ANNOTATION]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(cm1.metadata?.annotations?.['cordum-runbooks/last-restore-drill-status']).toBe('passed');
    // A second drill merge-patches the same ConfigMap (the first created it), keeping its other annotations.
    await kube.core.patchNamespacedConfigMap({ name: DRILL_CONFIGMAP, namespace: NS, body: [{ op: 'add', path: '/metadata/annotations/team', value: 'sre' }] });
    await waitFor('a new second on the clock', async () => new Date().toISOString().slice(0, 19), (s) => s > cm1.metadata!.annotations![LAST_DRILL_ANNOTATION]!.slice(0, 19), { timeoutMs: 3000, intervalMs: 100 });
    await drill(2);
    const cm2 = await kube.core.readNamespacedConfigMap({ name: DRILL_CONFIGMAP, namespace: NS });
    expect(cm2.metadata?.uid).toBe(cm1.metadata?.uid);
    expect(cm2.metadata?.annotations?.team).toBe('sre');
    expect(cm2.metadata!.annotations![LAST_DRILL_ANNOTATION]! > cm1.metadata!.annotations![LAST_DRILL_ANNOTATION]!).toBe(true);

    // Disaster: a key lost, a value changed, a whole stream gone.
    await src.redis.del('wf:def:marker');
    await src.redis.set('job:state:1', 'CORRUPTED');
    await (await jetstreamManager(src.nc)).streams.delete('CORDUM_JOBS');

    const before = await workloads(kube, NS);
    const guarded = { archive: res.archive, namespace: NS, redis: src.redis, nats: src.nc, freeze: kubeFreezeOps(kube) };
    await expect(restoreInPlace({ ...guarded, inPlace: true, confirmNamespace: 'default' })).rejects.toThrow(UsageError);
    expect(await src.redis.exists('wf:def:marker')).toBe(0);

    const rec = logRecorder();
    kubelet.holdTerminating = true;
    const restoring = restoreInPlace({ ...guarded, inPlace: true, confirmNamespace: NS, log: rec.log });
    try {
      await rec.next(/^waiting for \d+ writer pod\(s\) to terminate/);
      // Writers still terminating: not one key written yet.
      expect(await src.redis.exists('wf:def:marker')).toBe(0);
      expect(await src.redis.get('job:state:1')).toBe('CORRUPTED');
    } finally {
      kubelet.holdTerminating = false;
    }
    const out = await restoring;
    expect(out.frozen.deployments.map((d) => d.name)).toContain('cordum-scheduler');
    expect(await src.redis.get('wf:def:marker')).toContain('restore-drill-marker');
    expect(await src.redis.get('job:state:1')).toBe('RUNNING-1');
    expect((await (await jetstreamManager(src.nc)).streams.info('CORDUM_JOBS')).state.messages).toBe(2000);
    expect(await workloads(kube, NS)).toEqual(before);
  }, 180_000);
});
