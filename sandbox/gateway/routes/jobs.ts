// Job routes (api.md §10.2): submit, list, detail, decisions, cancel, remediate, traces.
import { randomUUID } from 'node:crypto';
import { JobStatus, type BusPacket, type JobRequest } from '../../../helpers/cap/codec.js';
import { createDlqStore } from '../../stores/dlq.js';
import { createJobStore, isTerminal, keys, rfc3339Nano, type RedisJobStore } from '../../stores/jobs.js';
import type { SandboxDeps } from '../../types.js';
import { expect, intQuery, resolveTenant, timeQueryMicros, toMicros } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';

export const SENDER_ID = 'api-gateway';
const MAX_PROMPT_BYTES = 100_000;
const MAX_BODY_BYTES = 2 * 1024 * 1024;
const PRIORITIES: Record<string, number> = { interactive: 1, batch: 2, critical: 3 };
// References the gateway treats as "this job touches secrets" (risk tag + label).
const SECRET_REF = /\$\{\{?\s*secrets?\.|secret:\/\/|vault:\/\//i;

function jsonList(raw: string | undefined): string[] | undefined {
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw);
    return Array.isArray(v) && v.length ? v.map(String) : undefined;
  } catch {
    return undefined;
  }
}

function jsonValue(raw: string | undefined | null): unknown {
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

/** JobRecord as list/trace endpoints write it (omitempty except id, updated_at, state). */
export function jobRecord(id: string, meta: Record<string, string>, updatedAt?: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id,
    updated_at: updatedAt ?? Number(meta.updated_at ?? 0),
    state: meta.state ?? '',
  };
  const strFields: [string, string][] = [
    ['trace_id', 'trace_id'],
    ['topic', 'topic'],
    ['tenant', 'tenant'],
    ['team', 'team'],
    ['principal', 'principal'],
    ['actor_id', 'actor_id'],
    ['actor_type', 'actor_type'],
    ['idempotency_key', 'idempotency_key'],
    ['capability', 'capability'],
  ];
  for (const [k, f] of strFields) if (meta[f]) out[k] = meta[f];
  const risk = jsonList(meta.risk_tags);
  if (risk) out.risk_tags = risk;
  const req = jsonList(meta.requires);
  if (req) out.requires = req;
  if (meta.pack_id) out.pack_id = meta.pack_id;
  const attempts = Number(meta.attempts ?? 0);
  if (attempts > 0) out.attempts = attempts;
  for (const f of ['safety_decision', 'safety_reason', 'safety_rule_id', 'safety_snapshot']) if (meta[f]) out[f] = meta[f];
  const deadline = Number(meta.deadline_unix ?? 0);
  if (deadline > 0) out.deadline_unix = deadline;
  return out;
}

/** protojson-ish camelCase keys -> snake_case, recursively (safety_constraints is shown snake_case). */
function snakeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeKeys(x)]));
  }
  return v;
}

async function publishSubmit(deps: SandboxDeps, req: JobRequest, traceId: string): Promise<void> {
  const packet: BusPacket = { trace_id: traceId, sender_id: SENDER_ID, job_request: req };
  await deps.bus.publishDurable('sys.job.submit', packet);
}

function checkTenant(deps: SandboxDeps, meta: Record<string, string>): void {
  if (meta.tenant && meta.tenant !== deps.config.tenant) throw new HttpError(403, 'tenant access denied');
}

export const jobRoutes: RouteModule = (routes, deps) => {
  const jobs: RedisJobStore = createJobStore(deps.redis, deps.config);
  const dlq = createDlqStore(deps.redis);
  const tenant = deps.config.tenant;

  routes.add('POST', '/api/v1/jobs', async (req, reply) => {
    const body = expect.object(await req.json({ maxBytes: MAX_BODY_BYTES }));
    const prompt = expect.str(body, 'prompt');
    let topic = expect.str(body, 'topic').trim();
    const adapterId = expect.str(body, 'adapter_id');
    const priorityText = expect.str(body, 'priority');
    const orgId = expect.str(body, 'org_id');
    const tenantId = expect.str(body, 'tenant_id');
    let principalId = expect.str(body, 'principal_id').trim();
    let actorId = expect.str(body, 'actor_id').trim();
    const actorTypeText = expect.str(body, 'actor_type').trim().toLowerCase();
    const idempotencyKey = expect.str(body, 'idempotency_key').trim();
    const packId = expect.str(body, 'pack_id');
    const capability = expect.str(body, 'capability');
    const riskTags = expect.strList(body, 'risk_tags');
    const requires = expect.strList(body, 'requires');
    const tags = expect.strList(body, 'tags');
    const labels = expect.strMap(body, 'labels');
    const teamId = expect.str(body, 'team_id');
    const projectId = expect.str(body, 'project_id');
    let memoryId = expect.str(body, 'memory_id');
    const contextMode = expect.str(body, 'context_mode');
    const maxInput = expect.num(body, 'max_input_tokens');
    const maxOutput = expect.num(body, 'max_output_tokens');
    const maxTotal = expect.num(body, 'max_total_tokens');
    const deadlineMs = expect.num(body, 'deadline_ms');
    const allowSummarization = expect.bool(body, 'allow_summarization');
    const allowRetrieval = expect.bool(body, 'allow_retrieval');

    if (!prompt.trim()) throw new HttpError(400, 'prompt is required');
    if (Buffer.byteLength(prompt, 'utf8') > MAX_PROMPT_BYTES) throw new HttpError(400, 'prompt too long (>100000 chars)');
    if (!topic) topic = 'job.default';
    if (!topic.startsWith('job.')) throw new HttpError(400, 'topic must start with job.');
    resolveTenant(tenant, orgId);
    resolveTenant(tenant, tenantId);
    let actorType = 0;
    if (actorTypeText) {
      if (actorTypeText === 'human') actorType = 1;
      else if (actorTypeText === 'service') actorType = 2;
      else throw new HttpError(400, "actor_type must be 'human' or 'service'");
    }
    if (tags.length > 50) throw new HttpError(400, 'too many tags (max 50)');
    if (Object.keys(labels).length > 50) throw new HttpError(400, 'too many labels (max 50)');
    // One message for every budget field (recorded on a real Cordum).
    for (const v of [maxInput, maxOutput, maxTotal, deadlineMs]) {
      if (v !== undefined && v < 0) throw new HttpError(400, 'token limits must be non-negative');
    }
    principalId ||= req.principalId ?? '';
    actorId ||= principalId;

    const jobId = randomUUID();
    const traceId = randomUUID();

    if (idempotencyKey) {
      const existing = await jobs.reserveIdempotency(tenant, idempotencyKey, jobId).catch(() => {
        throw new HttpError(500, 'failed to reserve idempotency key');
      });
      if (existing !== null) {
        const meta = existing ? await jobs.getMeta(existing) : {};
        if (!existing || !meta.state) throw new HttpError(409, 'idempotency key already used');
        return reply.json(200, { job_id: existing, trace_id: meta.trace_id ?? '' });
      }
    }

    const riskTagSet = [...riskTags];
    const contextValue = body.context;
    if (SECRET_REF.test(prompt) || (contextValue !== undefined && SECRET_REF.test(JSON.stringify(contextValue)))) {
      if (!riskTagSet.includes('secrets')) riskTagSet.push('secrets');
      labels.secrets_present = 'true';
    }
    memoryId ||= `mem:${jobId}`;

    const ctxDoc: Record<string, unknown> = {
      prompt,
      adapter_id: adapterId,
      priority: priorityText || 'interactive',
      topic,
      created_at: rfc3339Nano(),
      tenant_id: tenant,
      ...(contextValue !== undefined && contextValue !== null ? { context: contextValue } : {}),
    };
    try {
      await deps.redis.set(keys.ctx(jobId), JSON.stringify(ctxDoc), 'EX', deps.config.dataTtlS);
    } catch {
      throw new HttpError(503, 'failed to persist job context');
    }
    try {
      await jobs.setState(jobId, 'PENDING');
    } catch {
      throw new HttpError(503, 'failed to initialize job state');
    }

    const env: Record<string, string> = { tenant_id: tenant };
    if (teamId) env.team_id = teamId;
    if (projectId) env.project_id = projectId;
    if (contextMode) env.context_mode = contextMode;
    const jobReq: JobRequest = {
      job_id: jobId,
      topic,
      priority: PRIORITIES[priorityText.toLowerCase()] ?? 1,
      context_ptr: `redis://ctx:${jobId}`,
      adapter_id: adapterId || undefined,
      env,
      memory_id: memoryId,
      context_hints: { max_input_tokens: maxInput ?? 8000, allow_summarization: allowSummarization, allow_retrieval: allowRetrieval, tags },
      budget: { max_input_tokens: maxInput ?? 8000, max_output_tokens: maxOutput ?? 1024, max_total_tokens: maxTotal ?? 0, deadline_ms: deadlineMs ?? 0 },
      tenant_id: tenant,
      principal_id: principalId || undefined,
      labels,
      meta: {
        tenant_id: tenant,
        actor_id: actorId || undefined,
        actor_type: actorType || undefined,
        idempotency_key: idempotencyKey || undefined,
        capability: capability || undefined,
        risk_tags: riskTagSet,
        requires,
        pack_id: packId || undefined,
      },
    };
    try {
      await jobs.setJobMeta(jobReq, { traceId });
      await jobs.putRequest(jobReq);
      await jobs.addToTrace(traceId, jobId);
    } catch {
      throw new HttpError(503, 'failed to persist job metadata');
    }
    try {
      await publishSubmit(deps, jobReq, traceId);
    } catch (err) {
      await jobs.setState(jobId, 'FAILED').catch(() => {});
      deps.log('gateway', `submit publish failed for ${jobId}: ${(err as Error).message}`);
      throw new HttpError(503, 'failed to enqueue job');
    }
    reply.json(200, { job_id: jobId, trace_id: traceId });
  });

  routes.add('GET', '/api/v1/jobs', async (req, reply) => {
    const q = req.query;
    const limit = intQuery(q, 'limit', 50);
    const stateFilter = (q.get('state') ?? '').trim().toUpperCase();
    const topicFilter = (q.get('topic') ?? '').trim();
    if (q.get('tenant')) resolveTenant(tenant, q.get('tenant'));
    const teamFilter = (q.get('team') ?? '').trim();
    const after = timeQueryMicros(q.get('updated_after'));
    const before = timeQueryMicros(q.get('updated_before'));
    const traceId = (q.get('trace_id') ?? '').trim();

    let rows: { id: string; updatedAt?: number }[];
    if (traceId) {
      rows = (await jobs.traceMembers(traceId)).map((id) => ({ id }));
    } else {
      const cursorRaw = q.get('cursor');
      const cursor = cursorRaw && /^\d+$/.test(cursorRaw.trim()) ? toMicros(Number(cursorRaw)) : Number.MAX_SAFE_INTEGER;
      rows = await jobs.recent(cursor, limit);
    }
    const items: Record<string, unknown>[] = [];
    for (const row of rows) {
      const meta = await jobs.getMeta(row.id);
      if (!meta.state) {
        const legacy = await deps.redis.get(keys.state(row.id));
        if (!legacy) continue;
        meta.state = legacy;
      }
      if (meta.tenant && meta.tenant !== tenant) continue;
      const rec = jobRecord(row.id, meta, row.updatedAt ?? (Number(meta.updated_at) || 0));
      if (stateFilter && String(rec.state).toUpperCase() !== stateFilter) continue;
      if (topicFilter && rec.topic !== topicFilter) continue;
      if (teamFilter && rec.team !== teamFilter) continue;
      const ts = Number(rec.updated_at);
      if (after !== undefined && ts < after) continue;
      if (before !== undefined && ts > before) continue;
      items.push(rec);
    }
    const nextCursor = !traceId && items.length === limit && items.length ? Number(items[items.length - 1].updated_at) - 1 : null;
    reply.json(200, { items, next_cursor: nextCursor });
  });

  routes.add('GET', '/api/v1/jobs/{id}', async (req, reply) => {
    const id = req.params.id;
    const state = await jobs.getState(id);
    if (!state) throw new HttpError(404, 'job not found');
    const meta = await jobs.getMeta(id);
    checkTenant(deps, meta);
    const labels = (jsonValue(meta.labels) as Record<string, string> | null) ?? {};
    const resultPtr = meta.result_ptr || (await deps.redis.get(keys.resultPtr(id))) || '';
    let result: unknown = null;
    const resKey = /^redis:\/\/(.+)$/.exec(resultPtr)?.[1];
    if (resKey) result = jsonValue(await deps.redis.get(resKey));
    const constraints = jsonValue(meta.safety_constraints);
    const remediations = jsonValue(meta.safety_remediations);
    const out: Record<string, unknown> = {
      id,
      state,
      trace_id: meta.trace_id ?? '',
      topic: meta.topic ?? '',
      tenant: meta.tenant ?? '',
      actor_id: meta.actor_id ?? '',
      actor_type: meta.actor_type ?? '',
      idempotency_key: meta.idempotency_key ?? '',
      capability: meta.capability ?? '',
      pack_id: meta.pack_id ?? '',
      risk_tags: jsonList(meta.risk_tags) ?? null,
      requires: jsonList(meta.requires) ?? null,
      attempts: Number(meta.attempts ?? 0),
      context_ptr: `redis://ctx:${id}`,
      context: jsonValue(await deps.redis.get(keys.ctx(id))),
      result_ptr: resultPtr,
      result,
      safety_decision: meta.safety_decision ?? '',
      safety_reason: meta.safety_reason ?? '',
      safety_rule_id: meta.safety_rule_id ?? '',
      safety_snapshot: meta.safety_snapshot ?? '',
      safety_constraints: constraints && typeof constraints === 'object' ? snakeKeys(constraints) : null,
      safety_remediations: Array.isArray(remediations) ? snakeKeys(remediations) : null,
      safety_job_hash: meta.safety_job_hash ?? '',
      // Cordum compares against "true" while the writer stores "1": usually reads false (api.md §10.2).
      approval_required: meta.safety_approval_required === 'true',
      approval_ref: meta.safety_approval_ref ?? '',
      labels,
      workflow_id: labels.workflow_id ?? '',
      run_id: labels.run_id ?? '',
      step_id: labels.step_id ?? '',
    };
    const entry = await dlq.get(id);
    if (entry) {
      out.error_message = entry.reason ?? '';
      out.error_status = entry.status ?? '';
      out.error_code = entry.reason_code ?? '';
      out.last_state = entry.last_state ?? '';
      if ((entry.attempts ?? 0) > 0) out.attempts = entry.attempts;
    }
    for (const f of ['approval_by', 'approval_role', 'approval_reason', 'approval_note', 'approval_policy_snapshot', 'approval_job_hash']) {
      if (meta[f] !== undefined) out[f] = meta[f];
    }
    if (meta.approval_at !== undefined) out.approval_at = Number(meta.approval_at) || 0;
    reply.json(200, out, { contentType: null });
  });

  routes.add('GET', '/api/v1/jobs/{id}/decisions', async (req, reply) => {
    const limit = intQuery(req.query, 'limit', 50);
    const list = await jobs.listDecisions(req.params.id, limit);
    const omitEmpty = (d: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(d).filter(([, v]) => !(v === undefined || v === null || v === '' || v === false || v === 0 || (Array.isArray(v) && !v.length))));
    reply.json(200, list.map((d) => omitEmpty(d as unknown as Record<string, unknown>)));
  });

  routes.add('POST', '/api/v1/jobs/{id}/cancel', async (req, reply) => {
    const id = req.params.id;
    const state = await jobs.getState(id);
    if (!state) throw new HttpError(404, 'job not found');
    checkTenant(deps, await jobs.getMeta(id));
    // A job that is already CANCELLED answers as a fresh cancel would, without `reason` (recorded on a
    // real Cordum); "job already terminal" is only said of jobs that ended another way.
    const terminalAnswer = (st: string) => (st === 'CANCELLED' ? { id, state: st } : { id, state: st, reason: 'job already terminal' });
    if (isTerminal(state)) return reply.json(200, terminalAnswer(state));
    const r = await jobs.cancel(id);
    if (!r) throw new HttpError(404, 'job not found');
    if (r.alreadyTerminal) return reply.json(200, terminalAnswer(r.state));
    // Best effort, after the state change: workers and the scheduler learn about it asynchronously.
    const traceId = (await jobs.getMeta(id)).trace_id ?? id;
    try {
      await deps.bus.publishDurable('sys.job.result', {
        trace_id: traceId,
        sender_id: SENDER_ID,
        job_result: { job_id: id, status: JobStatus.CANCELLED, error_message: 'job cancelled' },
      });
      deps.bus.publishCore('sys.job.cancel', {
        trace_id: traceId,
        sender_id: SENDER_ID,
        job_cancel: { job_id: id, reason: 'cancelled via api', requested_by: req.principalId ?? '' },
      });
    } catch (err) {
      deps.log('gateway', `cancel notifications for ${id} failed: ${(err as Error).message}`);
    }
    reply.json(200, { id, state: 'CANCELLED' });
  });

  routes.add('POST', '/api/v1/jobs/{id}/remediate', async (req, reply) => {
    const id = req.params.id;
    const body = expect.object(await req.json({ emptyOk: true }));
    const remediationId = expect.str(body, 'remediation_id').trim();
    const original = await jobs.getRequest(id);
    if (!original) throw new HttpError(404, 'job not found');
    const meta = await jobs.getMeta(id);
    checkTenant(deps, meta);
    const [latest] = await jobs.listDecisions(id, 1);
    const remediations = (latest?.remediations ?? []) as Record<string, any>[];
    if (!remediations.length) throw new HttpError(409, 'no remediations available');
    let chosen: Record<string, any> | undefined;
    if (remediationId) {
      chosen = remediations.find((r) => r.id === remediationId);
      if (!chosen) throw new HttpError(404, 'remediation not found');
    } else if (remediations.length === 1) chosen = remediations[0];
    else throw new HttpError(400, 'remediation_id required');

    const newId = randomUUID();
    const traceId = meta.trace_id || randomUUID();
    const labels = { ...(original.labels ?? {}) };
    for (const [k, v] of Object.entries((chosen.add_labels ?? chosen.addLabels ?? {}) as Record<string, string>)) labels[k] = v;
    for (const k of (chosen.remove_labels ?? chosen.removeLabels ?? []) as string[]) delete labels[k];
    labels.remediation_of = id;
    labels.remediation_id = String(chosen.id ?? '');
    const replacementTopic = chosen.replacement_topic ?? chosen.replacementTopic;
    const replacementCap = chosen.replacement_capability ?? chosen.replacementCapability;
    const ctx = await deps.redis.get(keys.ctx(id));
    if (ctx) await deps.redis.set(keys.ctx(newId), ctx, 'EX', deps.config.dataTtlS);
    const next: JobRequest = {
      ...original,
      job_id: newId,
      parent_job_id: id,
      topic: replacementTopic || original.topic,
      context_ptr: ctx ? `redis://ctx:${newId}` : undefined,
      labels,
      meta: { ...(original.meta ?? {}), ...(replacementCap ? { capability: replacementCap } : {}) },
    };
    await jobs.setJobMeta(next, { traceId });
    await jobs.putRequest(next);
    await jobs.addToTrace(traceId, newId);
    await jobs.setState(newId, 'PENDING');
    try {
      await publishSubmit(deps, next, traceId);
    } catch (err) {
      throw new HttpError(502, `publish failed: ${(err as Error).message}`);
    }
    reply.json(200, { job_id: newId, trace_id: traceId });
  });

  routes.add('GET', '/api/v1/traces/{id}', async (req, reply) => {
    const ids = await jobs.traceMembers(req.params.id);
    const items: Record<string, unknown>[] = [];
    const sortKey = new Map<Record<string, unknown>, number>();
    for (const id of ids) {
      const meta = await jobs.getMeta(id);
      if (!meta.state) continue;
      if (meta.tenant && meta.tenant !== tenant) continue;
      const rec = jobRecord(id, meta, 0); // this view reports updated_at 0
      sortKey.set(rec, Number(meta.updated_at ?? 0));
      items.push(rec);
    }
    items.sort((a, b) => (sortKey.get(a) ?? 0) - (sortKey.get(b) ?? 0));
    reply.json(200, items, { contentType: null });
  });
};
