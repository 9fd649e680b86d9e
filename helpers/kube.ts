// Kubernetes access for the runbooks (@kubernetes/client-node 1.3): API clients built from the
// profile's kubeconfig/context (or KUBECONFIG), plus the few typed operations drills and the
// readiness audit share. Every failure becomes a one-line UnreachableError/PreconditionError.
import * as k8s from '@kubernetes/client-node';
import type { TargetProfile } from './profile-types.js';
import { PreconditionError, UnreachableError, errorMessage } from './errors.js';

export interface KubeOptions {
  /** Overrides the profile's kubeconfig path (tests point this at the fake API server). */
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

export interface Kube {
  kc: k8s.KubeConfig;
  namespace: string;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  batch: k8s.BatchV1Api;
  networking: k8s.NetworkingV1Api;
  policy: k8s.PolicyV1Api;
  coordination: k8s.CoordinationV1Api;
  autoscaling: k8s.AutoscalingV2Api;
  rbac: k8s.RbacAuthorizationV1Api;
  custom: k8s.CustomObjectsApi;
  /** Everything the readiness audit reads in a namespace; absent CRDs are skipped, not errors. */
  listAll(namespace?: string): Promise<ListAllResult>;
  getOrCreateLease(name: string, holder: string, opts?: { namespace?: string; durationSeconds?: number }): Promise<LeaseResult>;
  releaseLease(name: string, holder: string, opts?: { namespace?: string }): Promise<boolean>;
  scaleDeployment(namespace: string, name: string, replicas: number): Promise<number>;
  scaleStatefulSet(namespace: string, name: string, replicas: number): Promise<number>;
  patchCronJobSuspend(namespace: string, name: string, suspend: boolean): Promise<void>;
  getHpa(namespace: string, name: string): Promise<k8s.V2HorizontalPodAutoscaler | undefined>;
  patchHpa(namespace: string, name: string, patch: Record<string, unknown>): Promise<k8s.V2HorizontalPodAutoscaler>;
}

export interface ListAllResult {
  objects: Array<{ apiVersion: string; kind: string; metadata: any; [k: string]: any }>;
  /** Kinds that could not be listed (CRD absent, forbidden) with the reason. */
  skipped: { kind: string; reason: string }[];
}

export interface LeaseResult {
  acquired: boolean;
  holder: string;
  /** When the current holder's lease runs out (renewTime + duration). */
  expiresAt?: string;
}

const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** HTTP status of a client-node error, if it came from the API server. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** One line: "<what>: 404 NotFound: deployments.apps "x" not found". */
export function kubeError(what: string, err: unknown): Error {
  const code = apiStatus(err);
  if (code === undefined) return new UnreachableError(`${what}: Kubernetes API unreachable: ${errorMessage(err).split('\n')[0]}`);
  let msg = '';
  const body = (err as { body?: unknown }).body;
  try {
    const parsed = typeof body === 'string' ? JSON.parse(body) : body;
    msg = (parsed as { message?: string })?.message ?? '';
  } catch {
    msg = String(body ?? '').slice(0, 200);
  }
  return new PreconditionError(`${what}: ${code}${msg ? ` ${msg}` : ''}`.split('\n')[0]);
}

const LIST_KINDS: { kind: string; apiVersion: string; list: (k: Kube, ns: string) => Promise<{ items: any[] }> }[] = [
  { kind: 'Pod', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedPod({ namespace: ns }) },
  { kind: 'Service', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedService({ namespace: ns }) },
  { kind: 'ConfigMap', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedConfigMap({ namespace: ns }) },
  { kind: 'Secret', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedSecret({ namespace: ns }) },
  { kind: 'PersistentVolumeClaim', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedPersistentVolumeClaim({ namespace: ns }) },
  { kind: 'ServiceAccount', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedServiceAccount({ namespace: ns }) },
  { kind: 'LimitRange', apiVersion: 'v1', list: (k, ns) => k.core.listNamespacedLimitRange({ namespace: ns }) },
  { kind: 'Deployment', apiVersion: 'apps/v1', list: (k, ns) => k.apps.listNamespacedDeployment({ namespace: ns }) },
  { kind: 'StatefulSet', apiVersion: 'apps/v1', list: (k, ns) => k.apps.listNamespacedStatefulSet({ namespace: ns }) },
  { kind: 'DaemonSet', apiVersion: 'apps/v1', list: (k, ns) => k.apps.listNamespacedDaemonSet({ namespace: ns }) },
  { kind: 'Job', apiVersion: 'batch/v1', list: (k, ns) => k.batch.listNamespacedJob({ namespace: ns }) },
  { kind: 'CronJob', apiVersion: 'batch/v1', list: (k, ns) => k.batch.listNamespacedCronJob({ namespace: ns }) },
  { kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', list: (k, ns) => k.networking.listNamespacedNetworkPolicy({ namespace: ns }) },
  { kind: 'Ingress', apiVersion: 'networking.k8s.io/v1', list: (k, ns) => k.networking.listNamespacedIngress({ namespace: ns }) },
  { kind: 'PodDisruptionBudget', apiVersion: 'policy/v1', list: (k, ns) => k.policy.listNamespacedPodDisruptionBudget({ namespace: ns }) },
  { kind: 'HorizontalPodAutoscaler', apiVersion: 'autoscaling/v2', list: (k, ns) => k.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns }) },
];

/** Prometheus Operator objects: CRDs that may be absent (then 404, which is reported, not thrown). */
const CUSTOM_KINDS = [
  { kind: 'ServiceMonitor', group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors' },
  { kind: 'PodMonitor', group: 'monitoring.coreos.com', version: 'v1', plural: 'podmonitors' },
  { kind: 'Probe', group: 'monitoring.coreos.com', version: 'v1', plural: 'probes' },
  { kind: 'PrometheusRule', group: 'monitoring.coreos.com', version: 'v1', plural: 'prometheusrules' },
];

export function loadKubeConfig(profile: TargetProfile | undefined, opts: KubeOptions = {}): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const file = opts.kubeconfig ?? profile?.kube?.kubeconfig;
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new PreconditionError(`kubeconfig ${file ?? process.env.KUBECONFIG ?? '~/.kube/config'} unreadable: ${errorMessage(err).split('\n')[0]}`);
  }
  const ctx = opts.context ?? profile?.kube?.context;
  if (ctx) {
    if (!kc.getContexts().some((c) => c.name === ctx)) throw new PreconditionError(`kubeconfig has no context "${ctx}" (have: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    kc.setCurrentContext(ctx);
  }
  if (!kc.getCurrentCluster()) throw new PreconditionError('kubeconfig has no current cluster');
  return kc;
}

export function createKube(profile: TargetProfile | undefined, opts: KubeOptions = {}): Kube {
  const kc = loadKubeConfig(profile, opts);
  const namespace = opts.namespace ?? profile?.kube?.namespace ?? 'default';
  const k: Kube = {
    kc,
    namespace,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    batch: kc.makeApiClient(k8s.BatchV1Api),
    networking: kc.makeApiClient(k8s.NetworkingV1Api),
    policy: kc.makeApiClient(k8s.PolicyV1Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    autoscaling: kc.makeApiClient(k8s.AutoscalingV2Api),
    rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),

    async listAll(ns = namespace) {
      const objects: ListAllResult['objects'] = [];
      const skipped: ListAllResult['skipped'] = [];
      // Namespace labels (pod-security) are useful but need cluster-scope read: optional.
      const nsObj = await k.core.readNamespace({ name: ns }).catch(() => undefined);
      if (nsObj) objects.push({ ...nsObj, apiVersion: 'v1', kind: 'Namespace' } as any);
      const core = await Promise.all(
        LIST_KINDS.map(async (d) => {
          try {
            const list = await d.list(k, ns);
            return list.items.map((i) => ({ ...i, apiVersion: d.apiVersion, kind: d.kind }));
          } catch (err) {
            const code = apiStatus(err);
            if (code === undefined) throw kubeError(`list ${d.kind} in ${ns}`, err);
            skipped.push({ kind: d.kind, reason: kubeError(`list ${d.kind}`, err).message });
            return [];
          }
        }),
      );
      for (const l of core) objects.push(...l);
      for (const c of CUSTOM_KINDS) {
        try {
          const list = (await k.custom.listNamespacedCustomObject({ group: c.group, version: c.version, namespace: ns, plural: c.plural })) as { items?: any[] };
          for (const i of list.items ?? []) objects.push({ ...i, apiVersion: `${c.group}/${c.version}`, kind: c.kind });
        } catch (err) {
          if (apiStatus(err) === undefined) throw kubeError(`list ${c.kind} in ${ns}`, err);
          skipped.push({ kind: c.kind, reason: apiStatus(err) === 404 ? 'CRD not installed' : kubeError(`list ${c.kind}`, err).message });
        }
      }
      return { objects, skipped };
    },

    async getOrCreateLease(name, holder, o = {}) {
      const ns = o.namespace ?? namespace;
      const duration = o.durationSeconds ?? 900;
      const now = new Date();
      const body: k8s.V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: ns }, spec: { holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: now, renewTime: now } };
      try {
        await k.coordination.createNamespacedLease({ namespace: ns, body });
        return { acquired: true, holder, expiresAt: new Date(now.getTime() + duration * 1000).toISOString() };
      } catch (err) {
        if (apiStatus(err) !== 409) throw kubeError(`create Lease ${ns}/${name}`, err);
      }
      let current: k8s.V1Lease;
      try {
        current = await k.coordination.readNamespacedLease({ name, namespace: ns });
      } catch (err) {
        throw kubeError(`read Lease ${ns}/${name}`, err);
      }
      const h = current.spec?.holderIdentity ?? '';
      const renew = current.spec?.renewTime ? new Date(current.spec.renewTime as unknown as string).getTime() : 0;
      const expiresAt = renew + (current.spec?.leaseDurationSeconds ?? 0) * 1000;
      if (h && h !== holder && expiresAt > now.getTime()) return { acquired: false, holder: h, expiresAt: new Date(expiresAt).toISOString() };
      // Free, expired or already ours: take it over with optimistic concurrency (resourceVersion).
      try {
        await k.coordination.replaceNamespacedLease({ name, namespace: ns, body: { ...current, spec: { ...current.spec, holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: now, renewTime: now } } });
        return { acquired: true, holder, expiresAt: new Date(now.getTime() + duration * 1000).toISOString() };
      } catch (err) {
        if (apiStatus(err) === 409) return { acquired: false, holder: '(changed concurrently)' };
        throw kubeError(`take over Lease ${ns}/${name}`, err);
      }
    },

    async releaseLease(name, holder, o = {}) {
      const ns = o.namespace ?? namespace;
      try {
        const current = await k.coordination.readNamespacedLease({ name, namespace: ns });
        if (current.spec?.holderIdentity !== holder) return false;
        await k.coordination.deleteNamespacedLease({ name, namespace: ns });
        return true;
      } catch (err) {
        if (apiStatus(err) === 404) return false;
        throw kubeError(`release Lease ${ns}/${name}`, err);
      }
    },

    async scaleDeployment(ns, name, replicas) {
      try {
        const s = await k.apps.patchNamespacedDeploymentScale({ name, namespace: ns, body: { spec: { replicas } } }, MERGE);
        return s.spec?.replicas ?? replicas;
      } catch (err) {
        throw kubeError(`scale deployment ${ns}/${name} to ${replicas}`, err);
      }
    },

    async scaleStatefulSet(ns, name, replicas) {
      try {
        const s = await k.apps.patchNamespacedStatefulSetScale({ name, namespace: ns, body: { spec: { replicas } } }, MERGE);
        return s.spec?.replicas ?? replicas;
      } catch (err) {
        throw kubeError(`scale statefulset ${ns}/${name} to ${replicas}`, err);
      }
    },

    async patchCronJobSuspend(ns, name, suspend) {
      try {
        await k.batch.patchNamespacedCronJob({ name, namespace: ns, body: { spec: { suspend } } }, MERGE);
      } catch (err) {
        throw kubeError(`${suspend ? 'suspend' : 'resume'} cronjob ${ns}/${name}`, err);
      }
    },

    async getHpa(ns, name) {
      try {
        return await k.autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: ns });
      } catch (err) {
        if (apiStatus(err) === 404) return undefined;
        throw kubeError(`read hpa ${ns}/${name}`, err);
      }
    },

    async patchHpa(ns, name, patch) {
      try {
        return await k.autoscaling.patchNamespacedHorizontalPodAutoscaler({ name, namespace: ns, body: patch }, MERGE);
      } catch (err) {
        throw kubeError(`patch hpa ${ns}/${name}`, err);
      }
    },
  };
  return k;
}
