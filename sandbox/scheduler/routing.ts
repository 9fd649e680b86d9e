// Least-loaded placement as Cordum's scheduler does it (runtime.md §4.6): exact topic -> pools,
// preferred_pool, meta.requires, live heartbeats, every non-excluded job label as a hard
// constraint, overload rule, lowest score, preferred_worker_id.
import type { Heartbeat, JobRequest } from '../../helpers/cap/codec.js';
import type { SandboxConfig } from '../types.js';

export type RoutingCode = 'no_pool_mapping' | 'no_workers' | 'pool_overloaded' | 'tenant_limit' | 'dispatch_failed';

export class RoutingError extends Error {
  constructor(
    readonly code: RoutingCode,
    message: string,
  ) {
    super(message);
  }
  /** no_workers / pool_overloaded / tenant_limit are retried (NAK 2 s), never DLQ'd. */
  get retryable(): boolean {
    return this.code === 'no_workers' || this.code === 'pool_overloaded' || this.code === 'tenant_limit';
  }
}

/** Labels that never constrain placement. */
const EXCLUDED_LABELS = new Set([
  'preferred_worker_id',
  'preferred_pool',
  'approval_granted',
  'secrets_present',
  'workflow_id',
  'run_id',
  'step_id',
  'node_id',
  'worker_id',
]);

export function placementLabels(labels: Record<string, string> | undefined): [string, string][] {
  return Object.entries(labels ?? {}).filter(([k]) => !EXCLUDED_LABELS.has(k) && !k.startsWith('cordum.'));
}

export function isOverloaded(hb: Heartbeat): boolean {
  const max = hb.max_parallel_jobs ?? 0;
  if (max > 0 && (hb.active_jobs ?? 0) / max >= 0.9) return true;
  return (hb.cpu_load ?? 0) >= 90 || (hb.gpu_utilization ?? 0) >= 90;
}

const score = (hb: Heartbeat) => (hb.active_jobs ?? 0) + (hb.cpu_load ?? 0) / 100 + (hb.gpu_utilization ?? 0) / 100;

export interface Placement {
  subject: string;
  workerId: string;
  pool: string;
}

export function route(req: JobRequest, pools: SandboxConfig['pools'], workers: Heartbeat[]): Placement {
  const topic = req.topic ?? '';
  let eligible = pools.topics[topic] ?? [];
  if (!eligible.length) throw new RoutingError('no_pool_mapping', `no_pool_mapping: topic "${topic}"`);
  const labels = req.labels ?? {};
  const preferredPool = labels.preferred_pool;
  if (preferredPool) {
    if (!eligible.includes(preferredPool)) throw new RoutingError('no_pool_mapping', `no_pool_mapping: preferred_pool "${preferredPool}" not mapped for topic "${topic}"`);
    eligible = [preferredPool];
  }
  const requires = (req.meta?.requires ?? []).map((r) => r.toLowerCase());
  if (requires.length) {
    eligible = eligible.filter((p) => {
      const has = (pools.pools[p]?.requires ?? []).map((r) => r.toLowerCase());
      return requires.every((r) => has.includes(r));
    });
    if (!eligible.length) throw new RoutingError('no_pool_mapping', 'no_pool_mapping: no pool satisfies requires');
  }
  const constraints = placementLabels(labels);
  const candidates = workers.filter((hb) => eligible.includes(hb.pool ?? '') && constraints.every(([k, v]) => hb.labels?.[k] === v));
  if (!candidates.length) throw new RoutingError('no_workers', `no workers available for topic "${topic}" in pools ${eligible.join(',')}`);
  const usable = candidates.filter((hb) => !isOverloaded(hb));
  if (!usable.length) throw new RoutingError('pool_overloaded', `pool overloaded for topic "${topic}"`);
  const preferred = labels.preferred_worker_id ? usable.find((hb) => hb.worker_id === labels.preferred_worker_id) : undefined;
  const chosen = preferred ?? usable.reduce((best, hb) => (score(hb) < score(best) ? hb : best));
  const workerId = chosen.worker_id ?? '';
  return { subject: workerId ? `worker.${workerId}.jobs` : topic, workerId, pool: chosen.pool ?? '' };
}
