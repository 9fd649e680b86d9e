// The config service (runtime.md §5.4): documents cfg:<scope>:<scope_id> as STRING JSON
// {scope, scope_id, data, revision, updated_at, meta}. Writes replace the whole document and
// always store revision 1; the effective config merges system <- org <- team <- workflow <- step
// shallowly by top-level key.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { rfc3339Nano } from './jobs.js';

export interface ConfigDoc {
  scope: string;
  scope_id: string;
  data: Record<string, unknown>;
  revision: number;
  updated_at: string;
  meta?: Record<string, unknown>;
}

export interface EffectiveConfig {
  version: string;
  hash: string;
  data: Record<string, unknown>;
}

export const configKey = (scope: string, id: string) => `cfg:${scope}:${id}`;

export interface ConfigStore {
  get(scope: string, id: string): Promise<ConfigDoc | null>;
  /** Replace the document; revision is reset to 1 and updated_at to now. Returns what was stored. */
  put(doc: { scope: string; scope_id: string; data?: Record<string, unknown> | null; meta?: Record<string, unknown> }): Promise<ConfigDoc>;
  effective(sel: { org?: string; team?: string; workflow?: string; step?: string }): Promise<EffectiveConfig>;
}

export function createConfigStore(redis: Redis): ConfigStore {
  const store: ConfigStore = {
    async get(scope, id) {
      const raw = await redis.get(configKey(scope, id));
      if (!raw) return null;
      try {
        const doc = JSON.parse(raw) as ConfigDoc;
        doc.data ??= {};
        return doc;
      } catch {
        return null;
      }
    },
    async put(input) {
      const doc: ConfigDoc = {
        scope: input.scope,
        scope_id: input.scope_id,
        data: input.data && typeof input.data === 'object' ? input.data : {},
        revision: 1,
        updated_at: rfc3339Nano(),
        ...(input.meta ? { meta: input.meta } : {}),
      };
      await redis.set(configKey(doc.scope, doc.scope_id), JSON.stringify(doc));
      return doc;
    },
    async effective(sel) {
      const chain: [string, string | undefined][] = [
        ['system', 'default'],
        ['org', sel.org],
        ['team', sel.team],
        ['workflow', sel.workflow],
        ['step', sel.step],
      ];
      const data: Record<string, unknown> = {};
      const version: string[] = [];
      for (const [scope, id] of chain) {
        if (!id) continue;
        const doc = await store.get(scope, id);
        if (!doc) continue;
        Object.assign(data, doc.data);
        version.push(`${scope}:${doc.revision}`);
      }
      const hash = createHash('sha256').update(JSON.stringify(data)).digest('hex');
      return { version: version.join('|'), hash, data };
    },
  };
  return store;
}
