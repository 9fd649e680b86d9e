// The schema registry (runtime.md §5.5): schema:<id> holds the registered JSON Schema as a STRING
// (the raw JSON value, `null` when none was sent), schema:index is a ZSET of ids scored by
// registration time and capped at the newest 500. No TTLs. Trimming the index leaves the older
// schema:<id> strings in place (they stay readable by id but drop out of the list).
import type { Redis } from 'ioredis';

export const SCHEMA_INDEX_KEY = 'schema:index';
export const SCHEMA_INDEX_CAP = 500;
export const schemaKey = (id: string) => `schema:${id}`;

export interface SchemaStore {
  /** Register (or replace) a schema; `schemaJson` is the JSON text stored as-is. */
  put(id: string, schemaJson: string): Promise<void>;
  /** The stored JSON text, or null when unknown. */
  get(id: string): Promise<string | null>;
  /** Newest first. */
  list(limit: number): Promise<string[]>;
  /** Idempotent. */
  delete(id: string): Promise<void>;
}

export function createSchemaStore(redis: Redis): SchemaStore {
  return {
    async put(id, schemaJson) {
      await redis
        .multi()
        .set(schemaKey(id), schemaJson)
        .zadd(SCHEMA_INDEX_KEY, Date.now(), id)
        // Keep the newest SCHEMA_INDEX_CAP members: drop ranks 0 .. -(cap+1).
        .zremrangebyrank(SCHEMA_INDEX_KEY, 0, -(SCHEMA_INDEX_CAP + 1))
        .exec();
    },
    get: (id) => redis.get(schemaKey(id)),
    list: (limit) => redis.zrevrange(SCHEMA_INDEX_KEY, 0, Math.max(1, limit) - 1),
    async delete(id) {
      await redis.multi().del(schemaKey(id)).zrem(SCHEMA_INDEX_KEY, id).exec();
    },
  };
}
