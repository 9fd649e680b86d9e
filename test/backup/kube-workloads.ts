// Cordum-like workloads on the tests' real API server (test/support/kube/): writer and non-writer
// Deployments with real pod templates, an HPA on the gateway, backup and other CronJobs, plus the
// before/after comparison the freeze tests rely on.
import type { Kube } from '../../helpers/kube.js';
import { waitFor } from '../../helpers/waits.js';

export const deployment = (namespace: string, name: string, replicas: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace, labels: { app: name, 'app.kubernetes.io/part-of': 'cordum' }, annotations: { 'cordum.io/owner': 'platform' } },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { terminationGracePeriodSeconds: 30, containers: [{ name: 'main', image: `registry.example.com/cordum/${name}:1.0.0`, ports: [{ containerPort: 8080 }] }] },
    },
  },
});

export const cronJob = (namespace: string, name: string, suspend: boolean) => ({
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: { name, namespace, labels: { app: name } },
  spec: {
    schedule: '0 3 * * *',
    suspend,
    jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'job', image: 'registry.example.com/cordum/backup:1.0.0' }] } } } },
  },
});

export const hpa = (namespace: string, target: string, min: number, max: number) => ({
  apiVersion: 'autoscaling/v2',
  kind: 'HorizontalPodAutoscaler',
  metadata: { name: target, namespace, labels: { app: target }, annotations: { 'cordum.io/owner': 'platform' } },
  spec: {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target },
    minReplicas: min,
    maxReplicas: max,
    metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
  },
});

/**
 * Fields the API server owns and changes on any write, so they cannot match before and after:
 * resourceVersion, generation (bumped by the scale and the suspend patch), managedFields, status
 * (controllers). A set-aside HPA is re-created, so its uid and creationTimestamp are new as well;
 * everything else (spec, labels, annotations, owner references) must be exactly as it was.
 */
function comparable(obj: any, recreated: boolean): any {
  const { resourceVersion: _rv, generation: _g, managedFields: _mf, ...metadata } = obj.metadata ?? {};
  if (recreated) {
    delete metadata.uid;
    delete metadata.creationTimestamp;
  }
  return { metadata, spec: obj.spec };
}

/** Every Deployment, HPA and CronJob of the namespace, by kind/name, in comparable form. */
export async function workloads(kube: Kube, namespace: string): Promise<Record<string, unknown>> {
  const [deps, hpas, crons] = await Promise.all([
    kube.apps.listNamespacedDeployment({ namespace }),
    kube.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace }),
    kube.batch.listNamespacedCronJob({ namespace }),
  ]);
  return Object.fromEntries([
    ...deps.items.map((d) => [`Deployment/${d.metadata!.name}`, comparable(d, false)]),
    ...hpas.items.map((h) => [`HorizontalPodAutoscaler/${h.metadata!.name}`, comparable(h, true)]),
    ...crons.items.map((c) => [`CronJob/${c.metadata!.name}`, comparable(c, false)]),
  ]);
}

/** Wait until each Deployment has exactly its replicas as bound, non-terminating pods (steady state). */
export async function waitForSteadyPods(kube: Kube, namespace: string, replicas: Record<string, number>, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `the pods of ${Object.keys(replicas).join(', ')} to match their replicas`,
    async () => {
      const pods = (await kube.core.listNamespacedPod({ namespace })).items;
      return Object.entries(replicas)
        .map(([name, want]) => {
          const mine = pods.filter((p) => p.metadata?.labels?.app === name);
          const ok = mine.filter((p) => p.spec?.nodeName && !p.metadata?.deletionTimestamp).length;
          return ok === want && mine.length === want ? '' : `${name}: ${ok}/${want} bound (${mine.length} pods)`;
        })
        .filter(Boolean);
    },
    (off) => off.length === 0,
    { timeoutMs, intervalMs: 200 },
  );
}
