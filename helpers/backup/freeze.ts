// Freezing Cordum's writers for an in-place restore: scale the gateway, scheduler, workflow engine
// and context engine Deployments to 0 (remembering their replicas), set their HPAs aside (an HPA's
// minReplicas, or a GitOps re-apply of it, would scale them back), suspend backup CronJobs, wait until
// the writers' pods are really gone, and undo all of it afterwards whatever happened. Also the guard
// that keeps in-place restores deliberate.
//
// Scaled to 0 is not stopped: a pod keeps running (and writing) through its termination grace period,
// so the restore must not start until the pods are gone. And the cluster is shared: someone else (a
// GitOps sync, an operator, a re-created HPA) may scale a writer back up during the freeze. Replicas
// are therefore changed compare-and-set (resourceVersion on the scale subresource), the freeze is
// checked before and after the restore, and unfreezing never overwrites someone else's change.
// Kubernetes access sits behind FreezeOps so the logic is testable without a cluster.
import { PreconditionError, UsageError } from '../errors.js';
import { apiStatus, kubeError, labelSelectorString, type Kube } from '../kube.js';
import { sleep } from '../waits.js';

/** Deployment name suffixes of the components that write to Redis/JetStream (kustomize and Helm names). */
export const WRITER_COMPONENTS = ['api-gateway', 'gateway', 'scheduler', 'workflow-engine', 'context-engine'];

/** How long frozen writers' pods may take to terminate (their grace periods) before a restore starts. */
export const PODS_GONE_TIMEOUT_MS = 2 * 60_000;

export interface HpaObject {
  metadata: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  spec?: { scaleTargetRef: { kind: string; name: string; apiVersion?: string }; minReplicas?: number; maxReplicas: number; [k: string]: unknown };
  [k: string]: unknown;
}

export interface FreezeOps {
  /** Writers and non-writers alike; `selector` is the Deployment's pod selector as a label-selector string. */
  listDeployments(ns: string): Promise<Array<{ name: string; replicas: number; selector?: string }>>;
  /**
   * Set a Deployment's replicas compare-and-set: read the scale subresource, write only if `onlyIf`
   * accepts the current value, with its resourceVersion (a concurrent change means read again).
   * Returns the replicas found before, and whether it wrote.
   */
  setReplicas(ns: string, name: string, replicas: number, onlyIf?: (current: number) => boolean): Promise<{ before: number; changed: boolean }>;
  /** Current spec.replicas, or undefined when the Deployment is gone. */
  getReplicas(ns: string, name: string): Promise<number | undefined>;
  /** Names of the pods matching a label selector, terminating ones included (they still run). */
  listPods(ns: string, selector: string): Promise<string[]>;
  listHpas(ns: string): Promise<HpaObject[]>;
  deleteHpa(ns: string, name: string): Promise<void>;
  /** 'exists' when an HPA of that name is already there (re-created by someone else). */
  createHpa(ns: string, hpa: HpaObject): Promise<'created' | 'exists'>;
  listCronJobs(ns: string): Promise<Array<{ name: string; suspended: boolean }>>;
  setCronJobSuspended(ns: string, name: string, suspend: boolean): Promise<void>;
}

export interface FreezeState {
  namespace: string;
  deployments: Array<{ name: string; replicas: number; selector?: string }>;
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
  /** How long the writers' pods may take to go (default PODS_GONE_TIMEOUT_MS). */
  podsGoneTimeoutMs?: number;
  /** Pause between checks while waiting for pods (default 500 ms). */
  pollIntervalMs?: number;
  signal?: AbortSignal;
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

/** Strip what the API server owns (uid, resourceVersion, creationTimestamp, managedFields, status) so the object can be created again. */
function recreatable(hpa: HpaObject): HpaObject {
  const { name, labels, annotations, ownerReferences, finalizers } = hpa.metadata as HpaObject['metadata'] & { ownerReferences?: unknown; finalizers?: unknown };
  const metadata = Object.fromEntries(Object.entries({ name, labels, annotations, ownerReferences, finalizers }).filter(([, v]) => v !== undefined)) as HpaObject['metadata'];
  return { apiVersion: hpa.apiVersion ?? 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata, spec: hpa.spec };
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
    // The replicas remembered are the ones the scale subresource had when we set 0, not the list's.
    const { before } = await ops.setReplicas(ns, d.name, 0);
    if (before === 0) continue;
    state.deployments.push({ name: d.name, replicas: before, ...(d.selector ? { selector: d.selector } : {}) });
    log(`scaled ${d.name} from ${before} to 0`);
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

/**
 * Throws a PreconditionError when a frozen writer has replicas again: someone else undid the freeze
 * (a GitOps sync, an operator, a re-created HPA). `when` says what that means for the data.
 */
export async function assertStillFrozen(ops: FreezeOps, state: FreezeState, when: string): Promise<void> {
  const back: string[] = [];
  for (const d of state.deployments) {
    const replicas = await ops.getReplicas(state.namespace, d.name);
    if (replicas !== undefined && replicas !== 0) back.push(`${d.name} has ${replicas} replicas again`);
  }
  if (back.length) throw new PreconditionError(`the freeze was undone by someone else (a GitOps sync, an operator or an HPA?): ${back.join(', ')}; ${when}`);
}

/**
 * Wait until no pod of a frozen Deployment is left (Terminating pods still run and write), checking
 * all the while that nobody scaled a writer back up. Returns the Deployments without a pod selector,
 * whose pods could not be checked.
 */
export async function waitForWritersStopped(ops: FreezeOps, state: FreezeState, opts: FreezeOptions = {}): Promise<string[]> {
  const log = opts.log ?? (() => undefined);
  const timeoutMs = opts.podsGoneTimeoutMs ?? PODS_GONE_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const unchecked = state.deployments.filter((d) => !d.selector).map((d) => d.name);
  let reported = '';
  for (;;) {
    opts.signal?.throwIfAborted();
    await assertStillFrozen(ops, state, 'the restore did not start');
    const left: string[] = [];
    for (const d of state.deployments) {
      if (d.selector) for (const pod of await ops.listPods(state.namespace, d.selector)) left.push(`${d.name}: pod ${pod}`);
    }
    if (!left.length) {
      if (reported) log('the writers\' pods are gone');
      return unchecked;
    }
    const now = `waiting for ${left.length} writer pod(s) to terminate: ${left.join(', ')}`;
    if (now !== reported) log(now);
    reported = now;
    if (Date.now() >= deadline) {
      throw new PreconditionError(`the frozen writers' pods did not terminate within ${Math.round(timeoutMs / 1000)} s (still there: ${left.join(', ')}); the restore did not start`);
    }
    await sleep(Math.min(opts.pollIntervalMs ?? 500, Math.max(1, deadline - Date.now())), opts.signal, 'the writers\' pods to terminate');
  }
}

/**
 * Undo a freeze: every action is attempted; failures are collected and thrown together at the end.
 * Someone else's change made during the freeze wins: a writer they scaled, an HPA they re-created, an
 * object they deleted are left as they are, and said so in the log.
 */
export async function unfreezeWriters(ops: FreezeOps, state: FreezeState, opts: FreezeOptions = {}): Promise<void> {
  const log = opts.log ?? (() => undefined);
  const ns = state.namespace;
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<string | void>) => {
    try {
      log((await fn()) ?? what);
    } catch (err) {
      if (apiStatus(err) === 404 || /: 404\b/.test((err as Error).message)) log(`${what}: skipped, it was deleted during the freeze`);
      else errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  for (const d of state.deployments) {
    await attempt(`scaled ${d.name} back to ${d.replicas}`, async () => {
      const r = await ops.setReplicas(ns, d.name, d.replicas, (current) => current === 0);
      if (!r.changed) return `left ${d.name} at ${r.before} replicas: someone else scaled it during the freeze (it had ${d.replicas} before)`;
    });
  }
  // HPAs after the Deployments have replicas again, so they start from a live target.
  for (const h of state.hpas) {
    await attempt(`recreated HPA ${h.metadata.name}`, async () => {
      if ((await ops.createHpa(ns, h)) === 'exists') return `left HPA ${h.metadata.name} as it is: someone else re-created it during the freeze`;
    });
  }
  for (const c of state.cronjobs) await attempt(`resumed CronJob ${c}`, () => ops.setCronJobSuspended(ns, c, false));
  if (errors.length) throw new Error(`unfreeze of ${ns} incomplete; fix by hand:\n- ${errors.join('\n- ')}`);
}

/**
 * Run fn with writers frozen and their pods gone; the freeze is checked again after fn (a writer back
 * during the restore means the restored data cannot be trusted). Unfreeze always runs, and its
 * failure never hides fn's.
 */
export async function withWritersFrozen<T>(ops: FreezeOps, ns: string, fn: (state: FreezeState) => Promise<T>, opts: FreezeOptions = {}): Promise<T> {
  const state: FreezeState = { namespace: ns, deployments: [], hpas: [], cronjobs: [] };
  let result: T;
  try {
    await freezeWriters(ops, ns, state, opts);
    const unchecked = await waitForWritersStopped(ops, state, opts);
    if (unchecked.length) opts.log?.(`no pod selector on ${unchecked.join(', ')}: their pods were not waited for`);
    result = await fn(state);
    await assertStillFrozen(ops, state, 'the restored data may have been written to during the restore; check it before trusting it');
  } catch (err) {
    await unfreezeWriters(ops, state, opts).catch((unfreezeErr: Error) => {
      (err as Error).message += `\n(also: ${unfreezeErr.message})`;
    });
    throw err;
  }
  await unfreezeWriters(ops, state, opts);
  return result;
}

/** FreezeOps over helpers/kube.ts; API errors become one-line PreconditionError/UnreachableError (kubeError). */
export function kubeFreezeOps(kube: Kube): FreezeOps {
  const call = async <T>(what: string, fn: () => Promise<T>, handle?: (status: number | undefined) => T | typeof RETHROW): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const handled = handle?.(apiStatus(err)) ?? RETHROW;
      if (handled !== RETHROW) return handled as T;
      throw kubeError(what, err);
    }
  };
  return {
    listDeployments: (ns) =>
      call(`list deployments in ${ns}`, async () =>
        (await kube.apps.listNamespacedDeployment({ namespace: ns })).items.map((d) => {
          const selector = labelSelectorString(d.spec?.selector);
          return { name: d.metadata?.name ?? '', replicas: d.spec?.replicas ?? 1, ...(selector ? { selector } : {}) };
        }),
      ),
    setReplicas: (ns, name, replicas, onlyIf) => kube.setDeploymentReplicas(ns, name, replicas, onlyIf),
    getReplicas: (ns, name) =>
      call(`read deployment ${ns}/${name} scale`, async () => (await kube.apps.readNamespacedDeploymentScale({ name, namespace: ns })).spec?.replicas ?? 0, (status) => (status === 404 ? undefined : RETHROW)),
    listPods: (ns, selector) =>
      call(`list pods in ${ns} (${selector})`, async () =>
        (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: selector })).items.map((p) => `${p.metadata?.name}${p.metadata?.deletionTimestamp ? ' (terminating)' : ''}`),
      ),
    listHpas: (ns) => call(`list horizontalpodautoscalers in ${ns}`, async () => (await kube.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns })).items as unknown as HpaObject[]),
    deleteHpa: (ns, name) => call(`delete hpa ${ns}/${name}`, async () => void (await kube.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name, namespace: ns }))),
    // Already there (an earlier unfreeze attempt, or a GitOps sync): unfreezing stays repeatable.
    createHpa: (ns, hpa) =>
      call(
        `create hpa ${ns}/${hpa.metadata.name}`,
        async () => {
          await kube.autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: ns, body: hpa as never });
          return 'created' as const;
        },
        (status) => (status === 409 ? ('exists' as const) : RETHROW),
      ),
    listCronJobs: (ns) =>
      call(`list cronjobs in ${ns}`, async () => (await kube.batch.listNamespacedCronJob({ namespace: ns })).items.map((c) => ({ name: c.metadata?.name ?? '', suspended: c.spec?.suspend === true }))),
    setCronJobSuspended: (ns, name, suspend) => kube.patchCronJobSuspend(ns, name, suspend),
  };
}

const RETHROW = Symbol('rethrow');
