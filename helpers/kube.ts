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
  /** Deadline of every API call (default 30 s): a stalled API server becomes an UnreachableError, never a hang. */
  requestTimeoutMs?: number;
}

export const KUBE_REQUEST_TIMEOUT_MS = 30_000;

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
  /**
   * Compare-and-set on a Deployment's scale subresource: read it, write `replicas` only if `onlyIf`
   * accepts the current value (default: always), with the resourceVersion read, so a change made in
   * between is never overwritten (409: read again, up to 5 times). Returns the replicas before.
   */
  setDeploymentReplicas(namespace: string, name: string, replicas: number, onlyIf?: (current: number) => boolean): Promise<{ before: number; changed: boolean }>;
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

/**
 * A Lease's acquireTime/renewTime are MicroTime: the API server accepts exactly six fractional digits
 * ("2026-01-02T15:04:05.000000Z") and refuses a plain Date's three with a 400, so stamps are
 * client-node's V1MicroTime (a Date that serializes with six).
 */
export function microTime(d: Date): k8s.V1MicroTime {
  return new k8s.V1MicroTime(d.getTime());
}

/** HTTP status of a client-node error, if it came from the API server. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** One line: "<what>: 404 deployments.apps "x" not found". */
export function kubeError(what: string, err: unknown): Error {
  if (err instanceof KubeDeadlineError) return new UnreachableError(`${what}: ${err.message}`);
  if (err instanceof UnreachableError || err instanceof PreconditionError) return err;
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
  const missing = code === 403 ? missingPermission(msg) : undefined;
  return new PreconditionError(`${what}: ${code}${msg ? ` ${msg}` : ''}${missing ? ` (RBAC: the Role lacks ${missing})` : ''}`.split('\n')[0]);
}

/**
 * The verb and resource RBAC refused, from the API server's Forbidden message
 * ('User "u" cannot patch resource "deployments/scale" in API group "apps" in the namespace "ns"'),
 * as `verb "patch" on "deployments/scale" (apiGroup "apps")`.
 */
export function missingPermission(message: string): string | undefined {
  const m = /cannot (\S+) resource "([^"]+)" in API group "([^"]*)"/.exec(message);
  return m ? `verb "${m[1]}" on "${m[2]}" (apiGroup "${m[3]}")` : undefined;
}

/** A Deployment's spec.selector as a label-selector string ("app=x,tier in (a,b)"); undefined if it selects nothing. */
export function labelSelectorString(sel: k8s.V1LabelSelector | undefined): string | undefined {
  if (!sel) return undefined;
  const terms = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    const values = `(${(e.values ?? []).join(',')})`;
    if (e.operator === 'In') terms.push(`${e.key} in ${values}`);
    else if (e.operator === 'NotIn') terms.push(`${e.key} notin ${values}`);
    else if (e.operator === 'Exists') terms.push(e.key);
    else if (e.operator === 'DoesNotExist') terms.push(`!${e.key}`);
  }
  return terms.length ? terms.join(',') : undefined;
}

/** An API call that got no answer in time (UnreachableError, exit 3); kubeError() adds what was being done. */
export class KubeDeadlineError extends UnreachableError {
  constructor(message: string) {
    super(message);
    // Reported like any unreachable target (the runner maps error names to exit codes).
    this.name = 'UnreachableError';
  }
}

/**
 * Every method of an API client, with a deadline: client-node sets no timeout of its own, so a
 * stalled API server (accepting connections, never answering) would hang a runbook forever.
 */
function withDeadline<T extends object>(api: T, ms: number): T {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || typeof prop !== 'string' || prop === 'constructor') return v;
      return (...args: unknown[]) => {
        const p = (v as (...a: unknown[]) => unknown).apply(target, args);
        if (!(p instanceof Promise)) return p;
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new KubeDeadlineError(`Kubernetes API call ${prop} got no answer within ${Math.round(ms / 1000)} s`)), ms);
        });
        return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
      };
    },
  });
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
  const ms = opts.requestTimeoutMs ?? KUBE_REQUEST_TIMEOUT_MS;
  const client = <T extends k8s.ApiType>(api: k8s.ApiConstructor<T>): T => withDeadline(kc.makeApiClient(api), ms);
  const k: Kube = {
    kc,
    namespace,
    core: client(k8s.CoreV1Api),
    apps: client(k8s.AppsV1Api),
    batch: client(k8s.BatchV1Api),
    networking: client(k8s.NetworkingV1Api),
    policy: client(k8s.PolicyV1Api),
    coordination: client(k8s.CoordinationV1Api),
    autoscaling: client(k8s.AutoscalingV2Api),
    rbac: client(k8s.RbacAuthorizationV1Api),
    custom: client(k8s.CustomObjectsApi),

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
      const stamp = microTime(now);
      const body: k8s.V1Lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: ns }, spec: { holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: stamp, renewTime: stamp } };
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
        await k.coordination.replaceNamespacedLease({ name, namespace: ns, body: { ...current, spec: { ...current.spec, holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: stamp, renewTime: stamp } } });
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

    async setDeploymentReplicas(ns, name, replicas, onlyIf) {
      const what = `scale deployment ${ns}/${name} to ${replicas}`;
      for (let attempt = 1; ; attempt++) {
        let scale: k8s.V1Scale;
        try {
          scale = await k.apps.readNamespacedDeploymentScale({ name, namespace: ns });
        } catch (err) {
          throw kubeError(what, err);
        }
        const before = scale.spec?.replicas ?? 0;
        if (onlyIf && !onlyIf(before)) return { before, changed: false };
        if (before === replicas) return { before, changed: false };
        try {
          await k.apps.replaceNamespacedDeploymentScale({
            name,
            namespace: ns,
            body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: ns, resourceVersion: scale.metadata?.resourceVersion }, spec: { replicas } },
          });
          return { before, changed: true };
        } catch (err) {
          // Changed since we read it (a controller's status update, or someone's edit): decide again.
          if (apiStatus(err) === 409 && attempt < 5) continue;
          throw kubeError(what, err);
        }
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
