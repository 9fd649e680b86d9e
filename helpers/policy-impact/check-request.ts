// The policy check request the scheduler sends for a job (runtime.md §1.3, §7.6: topic, tenant,
// principal, labels, memory id, budget and the job's meta with its tenant filled in), rebuilt from
// what Cordum stored: the job request itself (`job:req:<id>`, protojson) when the profile gives
// Redis, otherwise the job's detail and list record from the API, which lack the budget and
// meta labels. Never copies the payload: the context and result stay on the target.
import type { JobDetail, JobRecord, PolicyCheckBody } from '../gateway-types.js';

/**
 * Labels the approval path adds when it re-submits an approved job (api.md §10.7). They were not on
 * the request the policy first decided, so they are left out of the replay.
 */
const APPROVAL_LABELS = ['approval_granted', 'approval_reason', 'approval_note', 'cordum.bus_msg_id'];

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strList = (v: unknown): string[] | undefined => (Array.isArray(v) && v.length ? v.filter((x): x is string => typeof x === 'string') : undefined);
const pick = (o: Obj, camel: string): unknown => o[camel] ?? o[camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];

function strMap(v: unknown): Record<string, string> | undefined {
  if (!isObj(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string' && !APPROVAL_LABELS.includes(k)) out[k] = x;
  return Object.keys(out).length ? out : undefined;
}

/** ACTOR_TYPE_HUMAN / 1 / "human" -> "human"; anything else is dropped (as Cordum drops it). */
function actorType(v: unknown): string | undefined {
  const s = String(v ?? '').toLowerCase();
  if (s === 'actor_type_human' || s === 'human' || s === '1') return 'human';
  if (s === 'actor_type_service' || s === 'service' || s === '2') return 'service';
  return undefined;
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function clean<T extends Obj>(o: T): T | undefined {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return Object.keys(o).length ? o : undefined;
}

/** A check request from a stored job request (protojson, camelCase or snake_case keys). */
export function checkFromStoredRequest(stored: unknown, tenant: string): PolicyCheckBody {
  if (!isObj(stored)) throw new Error('the stored job request is not a JSON object');
  const topic = str(pick(stored, 'topic'));
  if (!topic) throw new Error('the stored job request has no topic');
  const meta = isObj(pick(stored, 'meta')) ? (pick(stored, 'meta') as Obj) : {};
  const budget = isObj(pick(stored, 'budget')) ? (pick(stored, 'budget') as Obj) : {};
  const jobTenant = str(pick(stored, 'tenantId')) ?? str(pick(meta, 'tenantId')) ?? tenant;
  return clean({
    topic,
    tenant: jobTenant,
    principal_id: str(pick(stored, 'principalId')),
    memory_id: str(pick(stored, 'memoryId')),
    workflow_id: str(pick(stored, 'workflowId')),
    labels: strMap(pick(stored, 'labels')),
    budget: clean({
      max_input_tokens: num(pick(budget, 'maxInputTokens')),
      max_output_tokens: num(pick(budget, 'maxOutputTokens')),
      max_total_tokens: num(pick(budget, 'maxTotalTokens')),
      deadline_ms: num(pick(budget, 'deadlineMs')),
    }),
    meta: clean({
      tenant_id: str(pick(meta, 'tenantId')) ?? jobTenant,
      actor_id: str(pick(meta, 'actorId')),
      actor_type: actorType(pick(meta, 'actorType')),
      idempotency_key: str(pick(meta, 'idempotencyKey')),
      capability: str(pick(meta, 'capability')),
      risk_tags: strList(pick(meta, 'riskTags')),
      requires: strList(pick(meta, 'requires')),
      pack_id: str(pick(meta, 'packId')),
      labels: strMap(pick(meta, 'labels')),
    }),
  }) as PolicyCheckBody;
}

/** A check request from the API's view of a job: its detail (labels, meta fields) and list record (principal, team). */
export function checkFromJobDetail(detail: JobDetail, record: JobRecord | undefined, tenant: string): PolicyCheckBody {
  const d = detail as unknown as Obj;
  const topic = str(d.topic) ?? str(record?.topic);
  if (!topic) throw new Error('the job detail has no topic');
  const jobTenant = str(d.tenant) ?? tenant;
  return clean({
    topic,
    tenant: jobTenant,
    principal_id: str(record?.principal),
    team_id: str(record?.team),
    workflow_id: str(d.workflow_id),
    step_id: str(d.step_id),
    labels: strMap(d.labels),
    meta: clean({
      tenant_id: jobTenant,
      actor_id: str(d.actor_id),
      actor_type: actorType(d.actor_type),
      idempotency_key: str(d.idempotency_key),
      capability: str(d.capability),
      risk_tags: strList(d.risk_tags),
      requires: strList(d.requires),
      pack_id: str(d.pack_id),
    }),
  }) as PolicyCheckBody;
}

/**
 * Fields no policy rule can match (api.md §10.10: rules match tenants, topics, capabilities, risk
 * tags, requires, pack ids, actors, labels, secrets and MCP; effective config comes from the team,
 * workflow and step ids). Unique per job (memory_id defaults to mem:<job id>), so they stay out of
 * the key that lets the replay ask once for many identical jobs.
 */
const NOT_MATCHED: (keyof PolicyCheckBody)[] = ['job_id', 'memory_id', 'budget', 'estimated_cost', 'priority'];

/** Two jobs with the same key get the same decision from one evaluator: the replay asks once. */
export function checkKey(req: PolicyCheckBody): string {
  const matched: Obj = { ...req };
  for (const k of NOT_MATCHED) delete matched[k];
  if (isObj(matched.meta)) {
    const { idempotency_key: _ignored, ...meta } = matched.meta;
    matched.meta = meta;
  }
  const sort = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sort) : isObj(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])])) : v;
  return JSON.stringify(sort(matched));
}
