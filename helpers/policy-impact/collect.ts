// Collects the most recent jobs a target decided, within the profile's tenant, each with the
// policy check request the scheduler sent for it. The job list comes from the API (newest first,
// Cordum's recent-jobs index); the request from `job:req:<id>` when Redis is given (full fidelity:
// budget, principal, meta labels), otherwise from the job's detail. Every request is paced and the
// number of pages is bounded, so a replay never empties the gateway's shared rate limit.
import type { Redis } from 'ioredis';
import type { GatewayClient } from '../gateway.js';
import type { JobRecord, PolicyCheckBody } from '../gateway-types.js';
import { checkFromJobDetail, checkFromStoredRequest } from './check-request.js';
import { normalizeDecision, type Outcome } from './flips.js';
import type { Pacer } from './pacer.js';

/** Jobs per list page; with Cordum's index of ~1000 recent jobs a few pages reach its end. */
const PAGE = 250;
const MAX_PAGES = 8;
/** Redis reads in flight at once (plain GETs, so a Redis Cluster works too). */
const REDIS_BATCH = 100;

export interface CollectedJob {
  id: string;
  topic: string;
  recorded: Outcome;
  request: PolicyCheckBody;
  source: 'redis' | 'api';
}

export interface CollectStats {
  listed: number;
  pages: number;
  undecided: number;
  otherTenant: number;
  fromRedis: number;
  fromApi: number;
  /** Jobs listed but not replayable (expired between list and read, unreadable request), with why. */
  unreadable: { id: string; why: string }[];
  /** Why Redis was not used, when the profile has it but it failed. */
  redisProblem?: string;
}

export interface CollectOptions {
  gateway: GatewayClient;
  pacer: Pacer;
  tenant: string;
  count: number;
  /** Redis of the target, when the profile gives it. */
  redis?: () => Promise<Redis>;
  signal?: AbortSignal;
}

export async function collectDecidedJobs(o: CollectOptions): Promise<{ jobs: CollectedJob[]; stats: CollectStats }> {
  const stats: CollectStats = { listed: 0, pages: 0, undecided: 0, otherTenant: 0, fromRedis: 0, fromApi: 0, unreadable: [] };
  const records = await listDecided(o, stats);
  const requests = new Map<string, { request: PolicyCheckBody; source: 'redis' | 'api' }>();

  if (o.redis) {
    try {
      const redis = await o.redis();
      await readStoredRequests(redis, records, o.tenant, requests, o.signal);
    } catch (err) {
      o.signal?.throwIfAborted();
      stats.redisProblem = (err as Error).message;
    }
  }
  const rest = records.filter((r) => !requests.has(r.id));
  await o.pacer.map(rest, async (r) => {
    try {
      const detail = await o.gateway.getJob(r.id);
      requests.set(r.id, { request: checkFromJobDetail(detail, r, o.tenant), source: 'api' });
    } catch (err) {
      o.signal?.throwIfAborted();
      // A job that expired or was removed since the list was read is not a finding about the draft.
      const status = (err as { status?: number }).status;
      if (status === 404 || status === 403) stats.unreadable.push({ id: r.id, why: `GET /api/v1/jobs/{id} answered ${status}` });
      else throw err;
    }
  });

  const jobs: CollectedJob[] = [];
  for (const r of records) {
    const got = requests.get(r.id);
    if (!got) continue;
    if (got.source === 'redis') stats.fromRedis++;
    else stats.fromApi++;
    jobs.push({
      id: r.id,
      topic: got.request.topic,
      recorded: { decision: normalizeDecision(r.safety_decision), ruleId: r.safety_rule_id ?? '', constraints: '' },
      request: got.request,
      source: got.source,
    });
  }
  return { jobs, stats };
}

/** Newest first, decided (a safety decision on the record) and in the tenant, until `count` or the index ends. */
async function listDecided(o: CollectOptions, stats: CollectStats): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  const seen = new Set<string>();
  let cursor: number | undefined;
  while (out.length < o.count && stats.pages < MAX_PAGES) {
    const page = await o.pacer.run(() => o.gateway.listJobs({ limit: PAGE, cursor }));
    stats.pages++;
    const items = page.items ?? [];
    for (const r of items) {
      if (!r || typeof r.id !== 'string' || seen.has(r.id)) continue;
      seen.add(r.id);
      stats.listed++;
      if (r.tenant && r.tenant !== o.tenant) {
        stats.otherTenant++;
        continue;
      }
      if (!r.safety_decision) {
        stats.undecided++;
        continue;
      }
      if (out.length < o.count) out.push(r);
    }
    // Cordum gives a cursor only for a full page; the cursor is in microseconds.
    if (page.next_cursor === null || page.next_cursor === undefined || items.length < PAGE) break;
    cursor = page.next_cursor;
  }
  return out;
}

async function readStoredRequests(
  redis: Redis,
  records: JobRecord[],
  tenant: string,
  into: Map<string, { request: PolicyCheckBody; source: 'redis' | 'api' }>,
  signal?: AbortSignal,
): Promise<void> {
  for (let i = 0; i < records.length; i += REDIS_BATCH) {
    signal?.throwIfAborted();
    const batch = records.slice(i, i + REDIS_BATCH);
    const values = await Promise.all(batch.map((r) => redis.get(`job:req:${r.id}`)));
    batch.forEach((r, j) => {
      const raw = values[j];
      if (raw === null || raw === undefined) return; // expired: the API's view is read instead
      try {
        into.set(r.id, { request: checkFromStoredRequest(JSON.parse(raw), tenant), source: 'redis' });
      } catch {
        // Unreadable stored request (runtime.md §C4): the API's view is read instead.
      }
    });
  }
}
