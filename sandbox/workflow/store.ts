// Workflow definitions, runs and timelines in Redis, with Cordum's key layout (runtime.md §5.3).
// No TTLs anywhere, as in Cordum. ZSET scores are unix seconds.
import type { Redis } from 'ioredis';
import { RUN_STATUSES, isTerminalRun, type TimelineEvent, type Workflow, type WorkflowRun } from './models.js';
import { unixSecondsFromRfc3339 } from './time.js';

export const TIMELINE_CAP = 1000;

export const keys = {
  def: (id: string) => `wf:def:${id}`,
  orgIndex: (org: string) => `wf:index:org:${org}`,
  allIndex: 'wf:index:all',
  run: (id: string) => `wf:run:${id}`,
  runsOf: (wf: string) => `wf:runs:${wf}`,
  runsAll: 'wf:runs:all',
  runsStatus: (status: string) => `wf:runs:status:${status}`,
  active: (org: string) => `wf:runs:active:${org}`,
  timeline: (run: string) => `wf:run:timeline:${run}`,
  idempotency: (key: string) => `wf:run:idempotency:${key}`,
};

/** Redis miss on GET, worded like go-redis so engine errors read like Cordum's (`redis: nil`). */
export class RedisNil extends Error {
  constructor() {
    super('redis: nil');
  }
}

export class WorkflowStore {
  constructor(private readonly redis: Redis) {}

  async getWorkflow(id: string): Promise<Workflow | null> {
    const raw = await this.redis.get(keys.def(id));
    return raw ? (JSON.parse(raw) as Workflow) : null;
  }

  async saveWorkflow(wf: Workflow): Promise<void> {
    const score = unixSecondsFromRfc3339(wf.updated_at);
    await this.redis
      .multi()
      .set(keys.def(wf.id), JSON.stringify(wf))
      .zadd(keys.orgIndex(wf.org_id), score, wf.id)
      .zadd(keys.allIndex, score, wf.id)
      .exec();
  }

  async deleteWorkflow(wf: Workflow): Promise<void> {
    await this.redis.multi().del(keys.def(wf.id)).zrem(keys.orgIndex(wf.org_id), wf.id).zrem(keys.allIndex, wf.id).exec();
  }

  /** Newest first. */
  async listWorkflowIds(org: string | undefined, limit: number): Promise<string[]> {
    return this.redis.zrevrange(org ? keys.orgIndex(org) : keys.allIndex, 0, limit - 1);
  }

  /** Throws RedisNil when the run does not exist; a corrupt body throws a JSON error. */
  async getRun(id: string): Promise<WorkflowRun> {
    const raw = await this.redis.get(keys.run(id));
    if (raw === null) throw new RedisNil();
    return JSON.parse(raw) as WorkflowRun;
  }

  async findRun(id: string): Promise<WorkflowRun | null> {
    try {
      return await this.getRun(id);
    } catch {
      return null;
    }
  }

  /** Writes the run and moves it between the status/active indexes, all in one MULTI. */
  async saveRun(run: WorkflowRun): Promise<void> {
    const score = unixSecondsFromRfc3339(run.updated_at);
    const m = this.redis.multi().set(keys.run(run.id), JSON.stringify(run));
    m.zadd(keys.runsOf(run.workflow_id), score, run.id).zadd(keys.runsAll, score, run.id);
    for (const s of RUN_STATUSES) {
      if (s === run.status) m.zadd(keys.runsStatus(s), score, run.id);
      else m.zrem(keys.runsStatus(s), run.id);
    }
    if (isTerminalRun(run.status)) m.srem(keys.active(run.org_id), run.id);
    else m.sadd(keys.active(run.org_id), run.id);
    await m.exec();
  }

  async deleteRun(run: WorkflowRun): Promise<void> {
    const m = this.redis.multi().del(keys.run(run.id), keys.timeline(run.id));
    m.zrem(keys.runsOf(run.workflow_id), run.id).zrem(keys.runsAll, run.id).srem(keys.active(run.org_id), run.id);
    for (const s of RUN_STATUSES) m.zrem(keys.runsStatus(s), run.id);
    await m.exec();
  }

  async runIdsOfWorkflow(wf: string, limit: number): Promise<string[]> {
    return this.redis.zrevrange(keys.runsOf(wf), 0, limit - 1);
  }

  /** Newest first, scores <= cursor (unix seconds). */
  async runIdsPage(key: string, cursorS: number, limit: number): Promise<string[]> {
    return this.redis.zrevrangebyscore(key, cursorS, '-inf', 'LIMIT', 0, limit);
  }

  /** Oldest first; the reconciler's view of one status. */
  async runIdsInStatus(status: string, limit: number): Promise<string[]> {
    return this.redis.zrange(keys.runsStatus(status), 0, limit - 1);
  }

  async activeRunCount(org: string): Promise<number> {
    return this.redis.scard(keys.active(org));
  }

  async appendTimeline(runId: string, events: TimelineEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.redis
      .multi()
      .rpush(keys.timeline(runId), ...events.map((e) => JSON.stringify(e)))
      .ltrim(keys.timeline(runId), -TIMELINE_CAP, -1)
      .exec();
  }

  /** The first `limit` events, chronological. */
  async timeline(runId: string, limit: number): Promise<TimelineEvent[]> {
    const raw = await this.redis.lrange(keys.timeline(runId), 0, limit - 1);
    return raw.map((r) => JSON.parse(r) as TimelineEvent);
  }

  async getIdempotentRunId(key: string): Promise<string | null> {
    return this.redis.get(keys.idempotency(key));
  }

  /** SETNX; returns the run id that owns the key afterwards. */
  async reserveIdempotency(key: string, runId: string): Promise<string> {
    const ok = await this.redis.set(keys.idempotency(key), runId, 'NX');
    if (ok === 'OK') return runId;
    return (await this.redis.get(keys.idempotency(key))) ?? runId;
  }
}
