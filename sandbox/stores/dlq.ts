// The DLQ store (runtime.md §3.3): dlq:entry:<job_id> STRING JSON without TTL, dlq:index ZSET scored
// by creation time in unix SECONDS, trimmed to the newest 1000 members. Trimmed members' entry keys
// stay behind as orphans, exactly like Cordum.
import type { Redis } from 'ioredis';

export interface DlqEntry {
  job_id: string;
  topic?: string;
  status?: string;
  reason?: string;
  reason_code?: string;
  last_state?: string;
  attempts?: number;
  created_at: string; // RFC3339Nano
}

export const DLQ_INDEX = 'dlq:index';
export const DLQ_KEEP = 1000;
export const dlqEntryKey = (jobId: string) => `dlq:entry:${jobId}`;

export interface DlqStore {
  put(entry: DlqEntry): Promise<void>;
  get(jobId: string): Promise<DlqEntry | null>;
  /** Newest first. */
  list(limit: number): Promise<DlqEntry[]>;
  /** Newest first with created_at <= cursorUnixS. */
  page(cursorUnixS: number, limit: number): Promise<DlqEntry[]>;
  delete(jobId: string): Promise<void>;
}

export function createDlqStore(redis: Redis): DlqStore {
  const load = async (ids: string[]) => {
    if (!ids.length) return [];
    const raw = await redis.mget(ids.map(dlqEntryKey));
    const out: DlqEntry[] = [];
    for (const r of raw) {
      if (!r) continue; // ghost index member: invisible, as in Cordum
      try {
        out.push(JSON.parse(r));
      } catch {
        // skip corrupt entries
      }
    }
    return out;
  };
  return {
    async put(entry) {
      const score = Math.floor(Date.parse(entry.created_at) / 1000);
      await redis
        .multi()
        .set(dlqEntryKey(entry.job_id), JSON.stringify(entry))
        .zadd(DLQ_INDEX, score, entry.job_id)
        .zremrangebyrank(DLQ_INDEX, 0, -(DLQ_KEEP + 1))
        .exec();
    },
    async get(jobId) {
      const raw = await redis.get(dlqEntryKey(jobId));
      if (!raw) return null;
      try {
        return JSON.parse(raw) as DlqEntry;
      } catch {
        return null;
      }
    },
    async list(limit) {
      return load(await redis.zrevrange(DLQ_INDEX, 0, Math.max(1, limit) - 1));
    },
    async page(cursorUnixS, limit) {
      return load(await redis.zrevrangebyscore(DLQ_INDEX, cursorUnixS, '-inf', 'LIMIT', 0, Math.max(1, limit)));
    },
    async delete(jobId) {
      await redis.multi().del(dlqEntryKey(jobId)).zrem(DLQ_INDEX, jobId).exec();
    },
  };
}
