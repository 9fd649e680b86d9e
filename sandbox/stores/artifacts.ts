// Artifacts (api.md §10.4, runtime.md §5.2): art:<uuid> holds the raw bytes, art:meta:<uuid> a JSON
// metadata record; both expire by retention class (short / standard / audit).
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SandboxConfig } from '../types.js';

export type Retention = 'short' | 'standard' | 'audit';

export interface ArtifactMeta {
  content_type?: string;
  size_bytes: number;
  retention: Retention;
  labels?: Record<string, string>;
}

export class InvalidPointerError extends Error {}

/** `redis://art:<uuid>` -> `<uuid>`; anything else is an InvalidPointerError. */
export function artifactIdFromPointer(ptr: string): string {
  const m = /^redis:\/\/art:(.+)$/.exec(ptr.trim());
  if (!m) throw new InvalidPointerError(`invalid pointer prefix: ${ptr}`);
  return m[1];
}

export interface ArtifactStore {
  put(content: Buffer, meta: { contentType?: string; retention?: string; labels?: Record<string, string> }): Promise<{ ptr: string; size: number }>;
  get(ptr: string): Promise<{ content: Buffer; meta: ArtifactMeta } | null>;
}

export function createArtifactStore(redis: Redis, config: Pick<SandboxConfig, 'artifactTtlS'>): ArtifactStore {
  return {
    async put(content, m) {
      const retention: Retention = m.retention === 'short' || m.retention === 'audit' ? m.retention : 'standard';
      const ttl = config.artifactTtlS[retention];
      const id = randomUUID();
      const meta: ArtifactMeta = {
        ...(m.contentType ? { content_type: m.contentType } : {}),
        size_bytes: content.length,
        retention,
        ...(m.labels && Object.keys(m.labels).length ? { labels: m.labels } : {}),
      };
      await redis.multi().set(`art:${id}`, content, 'EX', ttl).set(`art:meta:${id}`, JSON.stringify(meta), 'EX', ttl).exec();
      return { ptr: `redis://art:${id}`, size: content.length };
    },
    async get(ptr) {
      const id = artifactIdFromPointer(ptr);
      const [content, metaRaw] = await Promise.all([redis.getBuffer(`art:${id}`), redis.get(`art:meta:${id}`)]);
      if (!content) return null;
      let meta: ArtifactMeta = { size_bytes: content.length, retention: 'standard' };
      if (metaRaw) {
        try {
          meta = JSON.parse(metaRaw);
        } catch {
          // keep the fallback
        }
      }
      return { content, meta };
    },
  };
}
