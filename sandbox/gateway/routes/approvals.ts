// Job-level approvals (api.md §10.7, runtime.md §6.4): list APPROVAL_REQUIRED jobs, approve
// (every documented check, in order) and reject (DENIED + approval_rejected DLQ packet).
import { randomUUID } from 'node:crypto';
import { JobStatus, type JobRequest } from '../../../helpers/cap/codec.js';
import { createKernelClient, type KernelClient } from '../../kernel/client.js';
import { publishDlq } from '../../scheduler/dlq-packet.js';
import { jobHash } from '../../scheduler/job-hash.js';
import { createJobStore, keys, type RedisJobStore } from '../../stores/jobs.js';
import type { SandboxDeps } from '../../types.js';
import { intQuery } from '../http.js';
import { HttpError, type GatewayRequest, type RouteModule } from '../types.js';
import { jobRecord } from './jobs.js';

const SENDER_ID = 'api-gateway';
const KERNEL_TIMEOUT_MS = 5_000;

function parseJson(raw: string | undefined): unknown {
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

/** Optional `{reason, note}` body; an empty body is fine. */
async function reasonNote(req: GatewayRequest): Promise<{ reason: string; note: string }> {
  const body = await req.json<Record<string, unknown>>({ emptyOk: true });
  if (body === undefined || body === null) return { reason: '', note: '' };
  if (typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'invalid json');
  const s = (k: string) => {
    const v = body[k];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new HttpError(400, 'invalid json');
    return v;
  };
  return { reason: s('reason'), note: s('note') };
}

export const approvalRoutes: RouteModule = (routes, deps: SandboxDeps) => {
  const jobs: RedisJobStore = createJobStore(deps.redis, deps.config);
  const tenant = deps.config.tenant;
  let kernel: KernelClient | undefined;
  const kernelClient = () => (kernel ??= createKernelClient(deps.nc, { timeoutMs: KERNEL_TIMEOUT_MS }));

  /** State, awaiting-approval and tenant checks shared by approve and reject. */
  const loadAwaiting = async (jobId: string) => {
    const state = await jobs.getState(jobId);
    if (!state) throw new HttpError(404, 'job not found');
    if (state !== 'APPROVAL_REQUIRED') throw new HttpError(409, 'job not awaiting approval');
    const meta = await jobs.getMeta(jobId);
    if (meta.tenant && meta.tenant !== tenant) throw new HttpError(403, 'tenant access denied');
    return meta;
  };

  /** The approval record (runtime.md §6.4); the fault drops the approver identity. */
  const approvalRecord = (req: GatewayRequest, jobReq: JobRequest | null, meta: Record<string, string>, reason: string, note: string) => {
    const dropIdentity = deps.faults.has('approval-identity-dropped');
    return {
      approval_by: dropIdentity ? '' : req.principalId || jobReq?.principal_id || meta.principal || '',
      approval_role: dropIdentity ? '' : (req.principalRole ?? ''),
      approval_at: String(Date.now() * 1000),
      approval_reason: reason,
      approval_note: note,
      approval_policy_snapshot: meta.safety_snapshot ?? '',
      approval_job_hash: meta.safety_job_hash ?? '',
    };
  };

  routes.add('GET', '/api/v1/approvals', async (req, reply) => {
    const limit = intQuery(req.query, 'limit', 100);
    const cursorRaw = Number((req.query.get('cursor') ?? '').trim());
    const cursor = Number.isFinite(cursorRaw) && cursorRaw > 0 ? cursorRaw : Date.now() * 1000;
    // Oldest first up to the cursor (the quirk: next_cursor then never advances).
    const ids = await deps.redis.zrangebyscore(keys.index('APPROVAL_REQUIRED'), '-inf', cursor, 'LIMIT', 0, limit);
    const items: Record<string, unknown>[] = [];
    for (const id of ids) {
      const meta = await jobs.getMeta(id);
      if (meta.tenant && meta.tenant !== tenant) continue;
      const job = jobRecord(id, meta);
      delete job.trace_id;
      delete job.team;
      items.push({
        job,
        decision: meta.safety_decision ?? '',
        policy_snapshot: meta.safety_snapshot ?? '',
        policy_rule_id: meta.safety_rule_id ?? '',
        policy_reason: meta.safety_reason ?? '',
        constraints: parseJson(meta.safety_constraints),
        job_hash: meta.safety_job_hash ?? '',
        // Stored as "1" by go-redis, compared with "true": reads back false (api.md §13.15).
        approval_required: meta.safety_approval_required === 'true',
        approval_ref: meta.safety_approval_ref ?? '',
      });
    }
    const last = items[items.length - 1]?.job as { updated_at?: number } | undefined;
    reply.json(200, { items, next_cursor: items.length === limit && last ? Number(last.updated_at ?? 0) - 1 : null });
  });

  routes.add('POST', '/api/v1/approvals/{job_id}/approve', async (req, reply) => {
    const jobId = req.params.job_id!;
    const { reason, note } = await reasonNote(req);
    const meta = await loadAwaiting(jobId);
    const jobReq = await jobs.getRequest(jobId);
    if (!jobReq) throw new HttpError(404, 'job request not found');
    let decision: string | undefined;
    try {
      decision = (await jobs.listDecisions(jobId, 1))[0]?.decision ?? meta.safety_decision;
    } catch {
      decision = undefined;
    }
    if (!decision) throw new HttpError(503, 'safety decision unavailable');
    if (decision !== 'REQUIRE_APPROVAL') throw new HttpError(409, 'job does not require approval');
    const recordedHash = meta.safety_job_hash ?? '';
    if (!recordedHash) throw new HttpError(409, 'approval job hash unavailable');
    const recordedSnapshot = meta.safety_snapshot ?? '';
    if (!recordedSnapshot) throw new HttpError(409, 'approval policy snapshot unavailable');
    let current: string | undefined;
    try {
      current = (await kernelClient().listSnapshots()).snapshots?.[0];
    } catch (err) {
      throw new HttpError(502, (err as Error).message);
    }
    if (current !== recordedSnapshot) throw new HttpError(409, 'policy snapshot changed; re-evaluate before approving');
    if (jobHash(jobReq) !== recordedHash) throw new HttpError(409, 'job request changed; approval rejected');

    const labels: Record<string, string> = { ...(jobReq.labels ?? {}), approval_granted: 'true' };
    // Non-empty reason/note become labels, and therefore placement constraints (runtime.md §6.4).
    if (reason) labels.approval_reason = reason;
    if (note) labels.approval_note = note;
    labels['cordum.bus_msg_id'] = `approval:${randomUUID()}`;
    await jobs.setMetaFields(jobId, approvalRecord(req, jobReq, meta, reason, note));
    await jobs.setState(jobId, 'PENDING');
    const traceId = meta.trace_id || jobId;
    try {
      await deps.bus.publishDurable('sys.job.submit', { trace_id: traceId, sender_id: SENDER_ID, created_at: Date.now(), job_request: { ...jobReq, labels } });
    } catch (err) {
      throw new HttpError(502, `publish failed: ${(err as Error).message}`);
    }
    reply.json(200, { job_id: jobId, trace_id: traceId });
  });

  routes.add('POST', '/api/v1/approvals/{job_id}/reject', async (req, reply) => {
    const jobId = req.params.job_id!;
    const { reason, note } = await reasonNote(req);
    const meta = await loadAwaiting(jobId);
    const jobReq = await jobs.getRequest(jobId);
    await jobs.setMetaFields(jobId, approvalRecord(req, jobReq, meta, reason, note));
    await jobs.setState(jobId, 'DENIED');
    try {
      await publishDlq(deps.bus, { jobId, status: JobStatus.DENIED, code: 'approval_rejected', message: reason || 'approval rejected', sender: SENDER_ID });
    } catch (err) {
      deps.log('gateway', `job ${jobId}: reject dlq publish failed: ${(err as Error).message}`);
    }
    reply.json(200, { job_id: jobId });
  });
};
