// Freezing Cordum's writers for an in-place restore: scale the gateway, scheduler, workflow engine
// and context engine Deployments to 0 (remembering their replicas), set their HPAs aside (an HPA's
// minReplicas, or a GitOps re-apply of it, would scale them back), suspend backup CronJobs, and undo
// all of it afterwards whatever happened. Also the guard that keeps in-place restores deliberate.
// Kubernetes access sits behind FreezeOps so the logic is testable without a cluster.
import { UsageError } from '../errors.js';
import { apiStatus, type Kube } from '../kube.js';

/** Deployment name suffixes of the components that write to Redis/JetStream (kustomize and Helm names). */
export const WRITER_COMPONENTS = ['api-gateway', 'gateway', 'scheduler', 'workflow-engine', 'context-engine'];

export interface HpaObject {
  metadata: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec?: { scaleTargetRef: { kind: string; name: string; apiVersion?: string }; minReplicas?: number; maxReplicas: number; [k: string]: unknown };
  [k: string]: unknown;
}

export interface FreezeOps {
  listDeployments(ns: string): Promise<Array<{ name: string; replicas: number }>>;
  scaleDeployment(ns: string, name: string, replicas: number): Promise<void>;
  listHpas(ns: string): Promise<HpaObject[]>;
  deleteHpa(ns: string, name: string): Promise<void>;
  createHpa(ns: string, hpa: HpaObject): Promise<void>;
  listCronJobs(ns: string): Promise<Array<{ name: string; suspended: boolean }>>;
  setCronJobSuspended(ns: string, name: string, suspend: boolean): Promise<void>;
}

export interface FreezeState {
  namespace: string;
  deployments: Array<{ name: string; replicas: number }>;
  /** HPAs removed, kept verbatim (minus server-set fields) to recreate them exactly. */
  hpas: HpaObject[];
  /** CronJobs this freeze suspended (ones already suspended stay as they were). */
  cronjobs: string[];
}

export interface FreezeOptions {
  components?: string[];
  /** Which CronJobs count as backups; default: name contains "backup". */
  isBackupCronJob?: (name: string) => boolean;
  log?: (msg: string) => void;
}

/** In-place restores need inPlace: true and the namespace typed back exactly. */
export function guardInPlace(opts: { inPlace?: boolean; confirmNamespace?: string; namespace: string }): void {
  if (opts.inPlace !== true) throw new UsageError('in-place restore refused: pass inPlace: true (the default restores into scratch servers only)');
  if (opts.confirmNamespace !== opts.namespace) {
    throw new UsageError(`in-place restore refused: confirmNamespace ${JSON.stringify(opts.confirmNamespace ?? '')} does not equal the target namespace ${JSON.stringify(opts.namespace)}`);
  }
}

function isWriter(name: string, components: string[]): boolean {
  return components.some((c) => name === c || name.endsWith(`-${c}`));
}

/** Strip what the API server owns so the object can be created again. */
function recreatable(hpa: HpaObject): HpaObject {
  const { name, labels, annotations } = hpa.metadata;
  return { apiVersion: hpa.apiVersion ?? 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name, labels, annotations }, spec: hpa.spec };
}

/**
 * Freeze writers. The state is filled in as each action succeeds, so unfreeze() after a partial
 * failure undoes exactly what was done.
 */
export async function freezeWriters(ops: FreezeOps, ns: string, state: FreezeState, opts: FreezeOptions = {}): Promise<FreezeState> {
  const components = opts.components ?? WRITER_COMPONENTS;
  const log = opts.log ?? (() => undefined);
  const writers = (await ops.listDeployments(ns)).filter((d) => isWriter(d.name, components));
  const writerNames = new Set(writers.map((d) => d.name));
  // HPAs first: otherwise one could scale a Deployment back up between our scale and its removal.
  for (const hpa of await ops.listHpas(ns)) {
    const ref = hpa.spec?.scaleTargetRef;
    if (!hpa.metadata.name || ref?.kind !== 'Deployment' || !writerNames.has(ref.name)) continue;
    const copy = recreatable(hpa);
    await ops.deleteHpa(ns, hpa.metadata.name);
    state.hpas.push(copy);
    log(`set HPA ${hpa.metadata.name} aside (min ${hpa.spec?.minReplicas ?? 1}, max ${hpa.spec?.maxReplicas})`);
  }
  for (const d of writers) {
    if (d.replicas === 0) continue;
    await ops.scaleDeployment(ns, d.name, 0);
    state.deployments.push(d);
    log(`scaled ${d.name} from ${d.replicas} to 0`);
  }
  const isBackup = opts.isBackupCronJob ?? ((n: string) => /backup/i.test(n));
  for (const cj of await ops.listCronJobs(ns)) {
    if (!isBackup(cj.name) || cj.suspended) continue;
    await ops.setCronJobSuspended(ns, cj.name, true);
    state.cronjobs.push(cj.name);
    log(`suspended CronJob ${cj.name}`);
  }
  return state;
}

/** Undo a freeze: every action is attempted; failures are collected and thrown together at the end. */
export async function unfreezeWriters(ops: FreezeOps, state: FreezeState, opts: FreezeOptions = {}): Promise<void> {
  const log = opts.log ?? (() => undefined);
  const ns = state.namespace;
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
      log(what);
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  for (const d of state.deployments) await attempt(`scaled ${d.name} back to ${d.replicas}`, () => ops.scaleDeployment(ns, d.name, d.replicas));
  // HPAs after the Deployments have replicas again, so they start from a live target.
  for (const h of state.hpas) await attempt(`recreated HPA ${h.metadata.name}`, () => ops.createHpa(ns, h));
  for (const c of state.cronjobs) await attempt(`resumed CronJob ${c}`, () => ops.setCronJobSuspended(ns, c, false));
  if (errors.length) throw new Error(`unfreeze of ${ns} incomplete; fix by hand:\n- ${errors.join('\n- ')}`);
}

/** Run fn with writers frozen; unfreeze always runs, and its failure never hides fn's. */
export async function withWritersFrozen<T>(ops: FreezeOps, ns: string, fn: (state: FreezeState) => Promise<T>, opts: FreezeOptions = {}): Promise<T> {
  const state: FreezeState = { namespace: ns, deployments: [], hpas: [], cronjobs: [] };
  let result: T;
  try {
    await freezeWriters(ops, ns, state, opts);
    result = await fn(state);
  } catch (err) {
    await unfreezeWriters(ops, state, opts).catch((unfreezeErr: Error) => {
      (err as Error).message += `\n(also: ${unfreezeErr.message})`;
    });
    throw err;
  }
  await unfreezeWriters(ops, state, opts);
  return result;
}

/** FreezeOps over helpers/kube.ts. */
export function kubeFreezeOps(kube: Kube): FreezeOps {
  return {
    async listDeployments(ns) {
      const list = await kube.apps.listNamespacedDeployment({ namespace: ns });
      return list.items.map((d) => ({ name: d.metadata?.name ?? '', replicas: d.spec?.replicas ?? 1 }));
    },
    async scaleDeployment(ns, name, replicas) {
      await kube.scaleDeployment(ns, name, replicas);
    },
    async listHpas(ns) {
      const list = await kube.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns });
      return list.items as unknown as HpaObject[];
    },
    async deleteHpa(ns, name) {
      await kube.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: ns });
    },
    async createHpa(ns, hpa) {
      try {
        await kube.autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: ns, body: hpa as never });
      } catch (err) {
        // Already there (an earlier unfreeze attempt, or a GitOps sync): unfreezing stays repeatable.
        if (apiStatus(err) !== 409) throw err;
      }
    },
    async listCronJobs(ns) {
      const list = await kube.batch.listNamespacedCronJob({ namespace: ns });
      return list.items.map((c) => ({ name: c.metadata?.name ?? '', suspended: c.spec?.suspend === true }));
    },
    async setCronJobSuspended(ns, name, suspend) {
      await kube.patchCronJobSuspend(ns, name, suspend);
    },
  };
}
