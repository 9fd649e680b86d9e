// DLQ routes (api.md §10.8, runtime.md §3.4). Retry builds a deliberately minimal JobRequest and only
// deletes the old entry after the publish succeeded. Fault `dlq-retry-noop` answers like a retry
// but does nothing at all.
import { randomUUID } from 'node:crypto';
import type { JobRequest } from '../../../helpers/cap/codec.js';
import { createDlqStore } from '../../stores/dlq.js';
import { createJobStore, keys } from '../../stores/jobs.js';
import { intQuery } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';
import { SENDER_ID } from './jobs.js';

/** `<orig>-retry-<first 8 hex chars of a fresh uuid>`. */
export function retryJobId(orig: string): string {
  return `${orig}-retry-${randomUUID().replace(/-/g, '').slice(0, 8)}`;
}

export const dlqRoutes: RouteModule = (routes, deps) => {
  const dlq = createDlqStore(deps.redis);
  const jobs = createJobStore(deps.redis, deps.config);

  routes.add('GET', '/api/v1/dlq', async (req, reply) => {
    reply.json(200, await dlq.list(intQuery(req.query, 'limit', 100)));
  });

  routes.add('GET', '/api/v1/dlq/page', async (req, reply) => {
    const limit = intQuery(req.query, 'limit', 100);
    const raw = (req.query.get('cursor') ?? '').trim();
    // Seconds, no unit normalisation (unlike the jobs list).
    const cursor = /^\d+$/.test(raw) && Number(raw) > 0 ? Number(raw) : Math.floor(Date.now() / 1000);
    const items = await dlq.page(cursor, limit);
    const last = items[items.length - 1];
    const next = items.length === limit && last ? Math.floor(Date.parse(last.created_at) / 1000) - 1 : null;
    reply.json(200, { items, next_cursor: next });
  });

  routes.add('DELETE', '/api/v1/dlq/{job_id}', async (req, reply) => {
    await dlq.delete(req.params.job_id);
    reply.empty(204);
  });

  routes.add('POST', '/api/v1/dlq/{job_id}/retry', async (req, reply) => {
    const orig = req.params.job_id;
    const entry = await dlq.get(orig);
    if (!entry) throw new HttpError(404, 'dlq entry not found');
    const meta = await jobs.getMeta(orig);
    const topic = entry.topic || meta.topic;
    if (!topic) throw new HttpError(400, 'missing topic for retry');
    const newId = retryJobId(orig);
    if (deps.faults.has('dlq-retry-noop')) return reply.json(200, { job_id: newId });

    const tenant = meta.tenant || deps.config.tenant;
    const traceId = `dlq-retry-${orig}`;
    let contextPtr: string | undefined;
    try {
      const ctx = await deps.redis.get(keys.ctx(orig));
      if (ctx !== null) {
        await deps.redis.set(keys.ctx(newId), ctx, 'EX', deps.config.dataTtlS);
        contextPtr = `redis://ctx:${newId}`;
      }
    } catch {
      throw new HttpError(503, 'failed to copy job context');
    }
    const env: Record<string, string> = { tenant_id: tenant, retry_of_job: orig };
    env.team_id = meta.team ?? '';
    const retry: JobRequest = {
      job_id: newId,
      topic,
      context_ptr: contextPtr,
      tenant_id: tenant,
      principal_id: meta.principal || undefined,
      env,
      labels: { retry: 'true', dlq_entry: orig, retry_of_job: orig },
    };
    try {
      await jobs.setJobMeta(retry, { traceId });
      await jobs.putRequest(retry);
      await jobs.addToTrace(traceId, newId);
      await jobs.setState(newId, 'PENDING');
    } catch {
      throw new HttpError(503, 'failed to persist retry job');
    }
    try {
      await deps.bus.publishDurable('sys.job.submit', { trace_id: traceId, sender_id: SENDER_ID, job_request: retry });
    } catch (err) {
      throw new HttpError(500, `publish failed: ${(err as Error).message}`);
    }
    await dlq.delete(orig);
    reply.json(200, { job_id: newId });
  });
};

