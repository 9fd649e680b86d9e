// Read-only view of Cordum's config service documents (runtime.md §5.4): cfg:<scope>:<id> holds
// {scope, scope_id, data, revision, ...}; the effective config is a shallow merge of `data`,
// system ← org ← team ← workflow ← step. The engine needs it for the concurrent-run cap and for
// the CORDUM_EFFECTIVE_CONFIG env of step jobs.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface EffectiveConfig {
  version: string;
  hash: string;
  data: Record<string, unknown>;
}

export async function loadEffectiveConfig(
  redis: Redis,
  ids: { org: string; team?: string; workflow?: string; step?: string },
): Promise<EffectiveConfig> {
  const layers: [string, string | undefined][] = [
    ['system', 'default'],
    ['org', ids.org],
    ['team', ids.team],
    ['workflow', ids.workflow],
    ['step', ids.step],
  ];
  const data: Record<string, unknown> = {};
  const version: string[] = [];
  for (const [scope, id] of layers) {
    if (!id) continue;
    const raw = await redis.get(`cfg:${scope}:${id}`);
    if (!raw) continue;
    try {
      const doc = JSON.parse(raw) as { data?: Record<string, unknown>; revision?: number };
      Object.assign(data, doc.data ?? {});
      version.push(`${scope}:${doc.revision ?? 0}`);
    } catch {
      // A corrupt document is skipped, like a missing one.
    }
  }
  const hash = createHash('sha256').update(JSON.stringify(data)).digest('hex');
  return { version: version.join('|'), hash, data };
}

/** limits.max_concurrent_runs, else rate_limits.concurrent_workflows; 0 = no cap. */
export function maxConcurrentRuns(cfg: EffectiveConfig): number {
  const pick = (obj: unknown, key: string): number => {
    const v = obj && typeof obj === 'object' ? (obj as Record<string, unknown>)[key] : undefined;
    return typeof v === 'number' && v > 0 ? Math.floor(v) : 0;
  };
  return pick(cfg.data.limits, 'max_concurrent_runs') || pick(cfg.data.rate_limits, 'concurrent_workflows');
}
