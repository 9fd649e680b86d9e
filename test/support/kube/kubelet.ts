// The node side of pod life, played by the test: the control plane here has no scheduler and no kubelet.
// Bound to a Node, a deleted pod is only marked (deletionTimestamp) and stays "Terminating" until its
// kubelet confirms it stopped; an unbound pod is deleted at once. So a test binds the pods it wants to
// see terminate gracefully, watches them hang in Terminating (the window in which a real writer is still
// running), and confirms their end when it chooses: what a slow grace period looks like, made
// deterministic.
import * as k8s from '@kubernetes/client-node';

export class KubeletStandIn {
  private readonly core: k8s.CoreV1Api;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  /**
   * While true, the background loop leaves Terminating pods alone (a long grace period, ended by
   * confirmTerminated()); while false, it confirms them at its next tick, like a kubelet whose
   * containers stop at once.
   */
  holdTerminating = false;

  constructor(
    kc: k8s.KubeConfig,
    readonly nodeName: string,
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** The Node object pods get bound to (no kubelet ever reports for it; node lifecycle is off). */
  async register(): Promise<void> {
    try {
      await this.core.createNode({ body: { apiVersion: 'v1', kind: 'Node', metadata: { name: this.nodeName, labels: { 'kubernetes.io/hostname': this.nodeName } } } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }

  /** Bind every unbound pod of the namespace to this node (what the scheduler does); returns their names. */
  async bindPending(namespace: string): Promise<string[]> {
    const pods = await this.core.listNamespacedPod({ namespace });
    const bound: string[] = [];
    for (const p of pods.items) {
      if (p.spec?.nodeName || p.metadata?.deletionTimestamp) continue;
      const name = p.metadata!.name!;
      try {
        await this.core.createNamespacedPodBinding({ name, namespace, body: { apiVersion: 'v1', kind: 'Binding', metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName } } });
        bound.push(name);
      } catch (err) {
        // Gone or bound meanwhile (a ReplicaSet scaling down): nothing to do.
        if (![404, 409].includes((err as { code?: number }).code ?? 0)) throw err;
      }
    }
    return bound;
  }

  /** Keep binding new pods of the namespace as they appear (and ending terminated ones unless held), until stop(). */
  bindContinuously(namespace: string, intervalMs = 200): void {
    const tick = () => {
      this.busy = this.bindPending(namespace)
        .then(() => (this.holdTerminating ? undefined : this.confirmTerminated(namespace)))
        .catch(() => undefined)
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    clearTimeout(t);
    await this.busy;
  }

  /** Pods of the namespace (optionally by label selector) that are marked for deletion but still there. */
  async terminating(namespace: string, labelSelector?: string): Promise<string[]> {
    const pods = await this.core.listNamespacedPod({ namespace, labelSelector });
    return pods.items.filter((p) => p.metadata?.deletionTimestamp).map((p) => p.metadata!.name!);
  }

  /** The kubelet's confirmation: the containers stopped, remove the Terminating pods now. */
  async confirmTerminated(namespace: string, labelSelector?: string): Promise<string[]> {
    const names = await this.terminating(namespace, labelSelector);
    for (const name of names) {
      try {
        await this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return names;
  }
}
