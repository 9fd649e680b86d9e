// The exclusive drill lock, so two drills never overlap on one target. It is an interface so the
// drill can be tested with a fake: a Kubernetes Lease when a cluster is targeted, Cordum's lock API
// (POST /api/v1/locks/acquire, mode exclusive) otherwise. The backends take structural subsets of
// helpers/kube.ts (Kube) and helpers/gateway.ts (GatewayClient), so fakes are one-liners.
import { PreconditionError } from '../errors.js';

export interface DrillLockHandle {
  /** Where the lock lives, for reports (e.g. "lease cordum/cordum-runbooks-restore-drill"). */
  description: string;
  release(): Promise<void>;
}

export interface DrillLock {
  /** Take the lock or throw a PreconditionError naming the current holder. */
  acquire(owner: string, ttlMs: number): Promise<DrillLockHandle>;
}

export const DRILL_LOCK_RESOURCE = 'cordum-runbooks:restore-drill';

/** In-process lock (tests, and single-user local runs). */
export function memoryLock(): DrillLock & { holder(): string | undefined } {
  let holder: string | undefined;
  return {
    holder: () => holder,
    async acquire(owner) {
      if (holder) throw new PreconditionError(`another restore drill holds the drill lock (owner ${holder})`);
      holder = owner;
      return {
        description: 'memory lock',
        release: async () => {
          if (holder === owner) holder = undefined;
        },
      };
    },
  };
}

/** The subset of helpers/gateway.ts the gateway lock needs. */
export interface GatewayLockClient {
  lockAcquire(body: { resource: string; owner: string; mode: 'exclusive' | 'shared'; ttl_ms: number }): Promise<unknown>;
  lockRelease(body: { resource: string; owner: string }): Promise<unknown>;
}

export function gatewayLock(client: GatewayLockClient, resource = DRILL_LOCK_RESOURCE): DrillLock {
  return {
    async acquire(owner, ttlMs) {
      try {
        await client.lockAcquire({ resource, owner, mode: 'exclusive', ttl_ms: ttlMs });
      } catch (err) {
        throw new PreconditionError(`restore drill lock ${resource} not acquired (another drill running?): ${(err as Error).message}`);
      }
      return { description: `gateway lock ${resource}`, release: async () => void (await client.lockRelease({ resource, owner })) };
    },
  };
}

/** The subset of helpers/kube.ts (Kube) the Lease lock needs. */
export interface LeaseClient {
  getOrCreateLease(name: string, holder: string, opts?: { namespace?: string; durationSeconds?: number }): Promise<{ acquired: boolean; holder: string; expiresAt?: string }>;
  releaseLease(name: string, holder: string, opts?: { namespace?: string }): Promise<boolean>;
}

export function leaseLock(kube: LeaseClient, namespace: string, name = 'cordum-runbooks-restore-drill'): DrillLock {
  return {
    async acquire(owner, ttlMs) {
      const res = await kube.getOrCreateLease(name, owner, { namespace, durationSeconds: Math.ceil(ttlMs / 1000) });
      if (!res.acquired) throw new PreconditionError(`Lease ${namespace}/${name} is held by ${res.holder || 'someone else'}${res.expiresAt ? ` until ${res.expiresAt}` : ''}: another restore drill is running`);
      return { description: `lease ${namespace}/${name}`, release: async () => void (await kube.releaseLease(name, owner, { namespace })) };
    },
  };
}
