// The Redis job store with Cordum's key layout (runtime.md §5.1) and transition table (§1.2).
// State changes run as one Lua script so the check and all of its side effects are atomic, as
// Cordum's WATCH/MULTI is. job:req holds protojson (camelCase, unpopulated fields emitted).
import type { Redis } from 'ioredis';
import type { JobRequest } from '../../helpers/cap/codec.js';
import { JOB_STATES, TERMINAL_STATES, type JobState, type JobStore, type SafetyDecisionRecord, type SandboxConfig } from '../types.js';

// ---------- time helpers shared by the stores and routes ----------

let lastMicros = 0;
/** Microseconds since the epoch (Cordum's updated_at / cursor unit); strictly increasing within this process. */
export function nowMicros(): number {
  lastMicros = Math.max(Date.now() * 1000, lastMicros + 1);
  return lastMicros;
}

/** Go's RFC3339Nano rendering of a UTC time (fraction trimmed of trailing zeros). */
export function rfc3339Nano(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : 'Z'));
}

/** RFC3339 at second precision (Go time.RFC3339 on a UTC time). */
export function rfc3339(d: Date = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

// ---------- transition table ----------

/** Allowed targets per current state ('' = no state yet). Same-state is always accepted. */
export const TRANSITIONS: Record<string, readonly JobState[]> = {
  '': ['PENDING', 'APPROVAL_REQUIRED', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'FAILED'],
  PENDING: ['APPROVAL_REQUIRED', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'DENIED', 'FAILED', 'TIMEOUT'],
  APPROVAL_REQUIRED: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'DENIED', 'FAILED', 'TIMEOUT'],
  SCHEDULED: ['DISPATCHED', 'RUNNING', 'DENIED', 'FAILED', 'TIMEOUT', 'SUCCEEDED', 'CANCELLED'],
  DISPATCHED: ['RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMEOUT'],
  RUNNING: ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMEOUT'],
};

export function isTerminal(state: string | null | undefined): boolean {
  return !!state && (TERMINAL_STATES as readonly string[]).includes(state);
}

export const keys = {
  meta: (id: string) => `job:meta:${id}`,
  state: (id: string) => `job:state:${id}`,
  req: (id: string) => `job:req:${id}`,
  resultPtr: (id: string) => `job:result_ptr:${id}`,
  events: (id: string) => `job:events:${id}`,
  decisions: (id: string) => `job:decisions:${id}`,
  index: (state: string) => `job:index:${state.toLowerCase()}`,
  recent: 'job:recent',
  deadline: 'job:deadline',
  tenantActive: (tenant: string) => `job:tenant:active:${tenant}`,
  idempotency: (tenant: string, key: string) => `job:idempotency:${tenant}:${key}`,
  trace: (traceId: string) => `trace:${traceId}`,
  ctx: (id: string) => `ctx:${id}`,
  res: (id: string) => `res:${id}`,
};

const RECENT_KEEP = 1000;

// KEYS: meta, state, recent, events, deadline, result_ptr
// ARGV: id, to, nowMicros, ttlSeconds, defaultTenant, mode ('set' | 'cancel'), transitionsJSON, statesJSON, terminalJSON
const SET_STATE_LUA = `
local meta, stateKey, recent, events, deadline, resPtr = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, to, now, ttl, defTenant, mode = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local transitions = cjson.decode(ARGV[7])
local states = cjson.decode(ARGV[8])
local terminal = {}
for _, s in ipairs(cjson.decode(ARGV[9])) do terminal[s] = true end
local from = redis.call('HGET', meta, 'state')
if mode == 'cancel' then
  if not from then from = redis.call('GET', stateKey) end
  if not from then return {'missing', ''} end
  if terminal[from] then return {'terminal', from} end
else
  if not from then from = '' end
  if from ~= to then
    local ok = false
    local allowed = transitions[from]
    if allowed then
      for _, s in ipairs(allowed) do if s == to then ok = true end end
    end
    if not ok then return redis.error_reply('invalid transition ' .. from .. ' -> ' .. to) end
  end
end
redis.call('HSET', meta, 'state', to, 'updated_at', now)
if to == 'SCHEDULED' and from ~= 'SCHEDULED' then redis.call('HINCRBY', meta, 'attempts', 1) end
if not redis.call('HGET', meta, 'attempts') then redis.call('HSET', meta, 'attempts', 0) end
redis.call('SET', stateKey, to, 'EX', ttl)
redis.call('EXPIRE', meta, ttl)
for _, s in ipairs(states) do
  if s ~= to then redis.call('ZREM', 'job:index:' .. string.lower(s), id) end
end
redis.call('ZADD', 'job:index:' .. string.lower(to), now, id)
redis.call('ZADD', recent, now, id)
redis.call('ZREMRANGEBYRANK', recent, 0, -(${RECENT_KEEP} + 1))
redis.call('RPUSH', events, now .. '|' .. to)
redis.call('EXPIRE', resPtr, ttl)
local tenant = redis.call('HGET', meta, 'tenant')
if (not tenant) or tenant == '' then tenant = defTenant end
local active = 'job:tenant:active:' .. tenant
if terminal[to] then
  redis.call('ZREM', deadline, id)
  -- CancelJob leaves the id in the tenant's active set (a Cordum quirk kept on purpose).
  if mode ~= 'cancel' then redis.call('SREM', active, id) end
elseif from ~= '' then
  -- Cordum writes the first state before the job's tenant is recorded, so a job enters the set
  -- only at its next state change: a job that stays PENDING is not in it (recorded).
  redis.call('SADD', active, id)
  redis.call('EXPIRE', active, ttl)
end
return {'ok', from}
`;

// ---------- protojson for job:req ----------

const PRIORITY_NAMES = ['JOB_PRIORITY_UNSPECIFIED', 'JOB_PRIORITY_INTERACTIVE', 'JOB_PRIORITY_BATCH', 'JOB_PRIORITY_CRITICAL'];
const ACTOR_NAMES = ['ACTOR_TYPE_UNSPECIFIED', 'ACTOR_TYPE_HUMAN', 'ACTOR_TYPE_SERVICE'];

/** JobRequest -> protojson object (lowerCamelCase, enum names, int64 as strings, unpopulated fields emitted). */
export function jobRequestToProtoJson(r: JobRequest): Record<string, unknown> {
  const int64 = (n: number | undefined) => String(Math.trunc(n ?? 0));
  return {
    jobId: r.job_id ?? '',
    topic: r.topic ?? '',
    priority: PRIORITY_NAMES[r.priority ?? 0] ?? r.priority,
    contextPtr: r.context_ptr ?? '',
    adapterId: r.adapter_id ?? '',
    env: { ...(r.env ?? {}) },
    parentJobId: r.parent_job_id ?? '',
    workflowId: r.workflow_id ?? '',
    stepIndex: r.step_index ?? 0,
    memoryId: r.memory_id ?? '',
    contextHints: r.context_hints
      ? {
          maxInputTokens: r.context_hints.max_input_tokens ?? 0,
          allowSummarization: r.context_hints.allow_summarization ?? false,
          allowRetrieval: r.context_hints.allow_retrieval ?? false,
          tags: [...(r.context_hints.tags ?? [])],
        }
      : null,
    budget: r.budget
      ? {
          maxInputTokens: int64(r.budget.max_input_tokens),
          maxOutputTokens: int64(r.budget.max_output_tokens),
          maxTotalTokens: int64(r.budget.max_total_tokens),
          deadlineMs: int64(r.budget.deadline_ms),
        }
      : null,
    tenantId: r.tenant_id ?? '',
    principalId: r.principal_id ?? '',
    labels: { ...(r.labels ?? {}) },
    meta: r.meta
      ? {
          tenantId: r.meta.tenant_id ?? '',
          actorId: r.meta.actor_id ?? '',
          actorType: ACTOR_NAMES[r.meta.actor_type ?? 0] ?? r.meta.actor_type,
          idempotencyKey: r.meta.idempotency_key ?? '',
          capability: r.meta.capability ?? '',
          riskTags: [...(r.meta.risk_tags ?? [])],
          requires: [...(r.meta.requires ?? [])],
          packId: r.meta.pack_id ?? '',
          labels: { ...(r.meta.labels ?? {}) },
        }
      : null,
  };
}

/** protojson (camelCase or snake_case keys, enum names or numbers) -> JobRequest with empty values dropped. */
export function jobRequestFromProtoJson(o: unknown): JobRequest {
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error('job request is not an object');
  const src = o as Record<string, any>;
  const pick = (obj: Record<string, any>, camel: string) => {
    const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    return obj[camel] ?? obj[snake];
  };
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const num = (v: unknown) => {
    const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
    return Number.isFinite(n) && n !== 0 ? n : undefined;
  };
  const enumOf = (names: string[], v: unknown) => (typeof v === 'string' ? Math.max(0, names.indexOf(v)) || undefined : num(v));
  const strMap = (v: unknown) => (v && typeof v === 'object' && Object.keys(v).length ? { ...(v as Record<string, string>) } : undefined);
  const list = (v: unknown) => (Array.isArray(v) && v.length ? v.map(String) : undefined);
  const clean = <T extends Record<string, unknown>>(x: T): T | undefined => {
    for (const k of Object.keys(x)) if (x[k] === undefined) delete x[k];
    return Object.keys(x).length ? x : undefined;
  };
  const hints = pick(src, 'contextHints');
  const budget = pick(src, 'budget');
  const meta = pick(src, 'meta');
  const out: JobRequest = {
    job_id: str(pick(src, 'jobId')),
    topic: str(pick(src, 'topic')),
    priority: enumOf(PRIORITY_NAMES, pick(src, 'priority')),
    context_ptr: str(pick(src, 'contextPtr')),
    adapter_id: str(pick(src, 'adapterId')),
    env: strMap(pick(src, 'env')),
    parent_job_id: str(pick(src, 'parentJobId')),
    workflow_id: str(pick(src, 'workflowId')),
    step_index: num(pick(src, 'stepIndex')),
    memory_id: str(pick(src, 'memoryId')),
    context_hints:
      hints && typeof hints === 'object'
        ? clean({
            max_input_tokens: num(pick(hints, 'maxInputTokens')),
            allow_summarization: pick(hints, 'allowSummarization') === true ? true : undefined,
            allow_retrieval: pick(hints, 'allowRetrieval') === true ? true : undefined,
            tags: list(pick(hints, 'tags')),
          })
        : undefined,
    budget:
      budget && typeof budget === 'object'
        ? clean({
            max_input_tokens: num(pick(budget, 'maxInputTokens')),
            max_output_tokens: num(pick(budget, 'maxOutputTokens')),
            max_total_tokens: num(pick(budget, 'maxTotalTokens')),
            deadline_ms: num(pick(budget, 'deadlineMs')),
          })
        : undefined,
    tenant_id: str(pick(src, 'tenantId')),
    principal_id: str(pick(src, 'principalId')),
    labels: strMap(pick(src, 'labels')),
    meta:
      meta && typeof meta === 'object'
        ? clean({
            tenant_id: str(pick(meta, 'tenantId')),
            actor_id: str(pick(meta, 'actorId')),
            actor_type: enumOf(ACTOR_NAMES, pick(meta, 'actorType')),
            idempotency_key: str(pick(meta, 'idempotencyKey')),
            capability: str(pick(meta, 'capability')),
            risk_tags: list(pick(meta, 'riskTags')),
            requires: list(pick(meta, 'requires')),
            pack_id: str(pick(meta, 'packId')),
            labels: strMap(pick(meta, 'labels')),
          })
        : undefined,
  };
  return clean(out as Record<string, unknown>) as JobRequest;
}

export function actorTypeName(n: number | undefined): string {
  return n === 1 ? 'human' : n === 2 ? 'service' : '';
}

// ---------- the store ----------

/** The JobStore contract plus a few read helpers the gateway routes use. */
export interface RedisJobStore extends JobStore {
  readonly redis: Redis;
  /** Newest first from job:recent, scores <= maxMicros. */
  recent(maxMicros: number, limit: number): Promise<{ id: string; updatedAt: number }[]>;
  traceMembers(traceId: string): Promise<string[]>;
  /** SETNX job:idempotency:<tenant>:<key>; returns the id already stored, or null if reserved now. */
  reserveIdempotency(tenant: string, key: string, jobId: string): Promise<string | null>;
  /** Raw job:events list. */
  events(jobId: string): Promise<string[]>;
}

export function createJobStore(redis: Redis, config: Pick<SandboxConfig, 'tenant' | 'jobMetaTtlS'>): RedisJobStore {
  const ttl = config.jobMetaTtlS;
  const transitionsJson = JSON.stringify(TRANSITIONS);
  const statesJson = JSON.stringify(JOB_STATES);
  const terminalJson = JSON.stringify(TERMINAL_STATES);

  const runScript = (jobId: string, to: string, mode: 'set' | 'cancel') =>
    redis.eval(
      SET_STATE_LUA,
      6,
      keys.meta(jobId),
      keys.state(jobId),
      keys.recent,
      keys.events(jobId),
      keys.deadline,
      keys.resultPtr(jobId),
      jobId,
      to,
      String(nowMicros()),
      String(ttl),
      config.tenant,
      mode,
      transitionsJson,
      statesJson,
      terminalJson,
    ) as Promise<[string, string]>;

  const store: RedisJobStore = {
    redis,

    async setState(jobId, state) {
      try {
        await runScript(jobId, state, 'set');
      } catch (err) {
        // Surface the script's error text unchanged ("invalid transition X -> Y").
        const msg = (err as Error).message.replace(/^ERR\s+/, '').replace(/\s*script:.*$/s, '');
        throw new Error(msg.startsWith('invalid transition') ? msg : (err as Error).message);
      }
    },

    async cancel(jobId) {
      const [outcome, prev] = await runScript(jobId, 'CANCELLED', 'cancel');
      if (outcome === 'missing') return null;
      if (outcome === 'terminal') return { state: prev, alreadyTerminal: true };
      return { state: 'CANCELLED', alreadyTerminal: false };
    },

    async getState(jobId) {
      const s = await redis.hget(keys.meta(jobId), 'state');
      if (s) return s;
      return (await redis.get(keys.state(jobId))) || null;
    },

    async getMeta(jobId) {
      return redis.hgetall(keys.meta(jobId));
    },

    async setMetaFields(jobId, fields) {
      if (!Object.keys(fields).length) return;
      await redis.multi().hset(keys.meta(jobId), fields).expire(keys.meta(jobId), ttl).exec();
    },

    async setJobMeta(req, extra) {
      const id = req.job_id;
      if (!id) throw new Error('job_id required');
      const m = req.meta ?? {};
      const fields: Record<string, string> = {
        attempts: '0', // Cordum re-persists meta on every submit, which resets the attempt count
        topic: req.topic ?? '',
        tenant: req.tenant_id || m.tenant_id || req.env?.tenant_id || config.tenant,
        team: req.env?.team_id ?? '',
        principal: req.principal_id ?? '',
        memory_id: req.memory_id ?? '',
        trace_id: extra?.traceId ?? '',
        labels: JSON.stringify(req.labels ?? {}),
        actor_id: m.actor_id ?? '',
        actor_type: actorTypeName(m.actor_type),
        idempotency_key: m.idempotency_key ?? '',
        capability: m.capability ?? '',
        risk_tags: JSON.stringify(m.risk_tags ?? []),
        requires: JSON.stringify(m.requires ?? []),
        pack_id: m.pack_id ?? '',
      };
      // Do not clobber a trace id recorded earlier when the caller does not know it.
      if (!fields.trace_id) delete fields.trace_id;
      await store.setMetaFields(id, fields);
    },

    async putRequest(req) {
      if (!req.job_id) throw new Error('job_id required');
      await redis.set(keys.req(req.job_id), JSON.stringify(jobRequestToProtoJson(req)), 'EX', ttl);
    },

    async getRequest(jobId) {
      const raw = await redis.get(keys.req(jobId));
      if (!raw) return null;
      try {
        return jobRequestFromProtoJson(JSON.parse(raw));
      } catch {
        return null; // corrupt request reads as "not found", as in Cordum
      }
    },

    async incrAttempts(jobId) {
      const [[, n]] = (await redis.multi().hincrby(keys.meta(jobId), 'attempts', 1).expire(keys.meta(jobId), ttl).exec()) as [[null, number]];
      return Number(n);
    },

    async addDecision(jobId, d) {
      await redis.multi().rpush(keys.decisions(jobId), JSON.stringify(d)).expire(keys.decisions(jobId), ttl).exec();
    },

    async listDecisions(jobId, limit) {
      const n = Math.max(1, limit);
      const raw = await redis.lrange(keys.decisions(jobId), -n, -1);
      const out: SafetyDecisionRecord[] = [];
      for (const r of raw.reverse()) {
        try {
          out.push(JSON.parse(r));
        } catch {
          // skip malformed entries
        }
      }
      return out;
    },

    async setResultPtr(jobId, ptr) {
      // job:result_ptr gets no TTL here: only SetState refreshes it (runtime.md §5.1).
      await redis.multi().set(keys.resultPtr(jobId), ptr).hset(keys.meta(jobId), 'result_ptr', ptr).exec();
    },

    async addToTrace(traceId, jobId) {
      await redis.sadd(keys.trace(traceId), jobId);
    },

    async setDeadline(jobId, unixSeconds) {
      await redis.multi().zadd(keys.deadline, unixSeconds, jobId).hset(keys.meta(jobId), 'deadline_unix', String(unixSeconds)).exec();
    },

    async dueDeadlines(nowUnixS) {
      return redis.zrangebyscore(keys.deadline, '-inf', nowUnixS);
    },

    async idsInState(state, limit) {
      return redis.zrange(keys.index(state), 0, Math.max(1, limit) - 1);
    },

    async recent(maxMicros, limit) {
      const raw = await redis.zrevrangebyscore(keys.recent, maxMicros, '-inf', 'WITHSCORES', 'LIMIT', 0, Math.max(1, limit));
      const out: { id: string; updatedAt: number }[] = [];
      for (let i = 0; i < raw.length; i += 2) out.push({ id: raw[i], updatedAt: Number(raw[i + 1]) });
      return out;
    },

    async traceMembers(traceId) {
      return redis.smembers(keys.trace(traceId));
    },

    async reserveIdempotency(tenant, key, jobId) {
      const k = keys.idempotency(tenant, key);
      const ok = await redis.set(k, jobId, 'EX', ttl, 'NX');
      if (ok) return null;
      return (await redis.get(k)) ?? '';
    },

    async events(jobId) {
      return redis.lrange(keys.events(jobId), 0, -1);
    },
  };
  return store;
}
