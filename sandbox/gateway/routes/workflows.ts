// Workflow and run routes (api.md §9 rows 14-26, §10.5-10.6) on the gateway's embedded engine.
// Status codes and error texts follow Cordum, quirks included: 201 only for create, 400 for an
// unknown run on approve/cancel, 200 `[]` for unknown timelines, seconds cursors for runs.
import { randomUUID } from 'node:crypto';
import { DecodeError, decodeWorkflowBody, mergeWorkflow, workflowView } from '../../workflow/definitions.js';
import { loadEffectiveConfig, maxConcurrentRuns } from '../../workflow/effective-config.js';
import { WorkflowEngine } from '../../workflow/engine.js';
import { EngineError } from '../../workflow/errors.js';
import { validateRunInput } from '../../workflow/input-schema.js';
import type { Workflow, WorkflowRun } from '../../workflow/models.js';
import { keys } from '../../workflow/store.js';
import { parseTimeParamSeconds, unixSecondsFromRfc3339 } from '../../workflow/time.js';
import { HttpError, type GatewayRequest, type RouteModule } from '../types.js';

const LIST_CAP = 100;
const TRUTHY = ['1', 'true', 'yes', 'y', 'on'];

/** Empty or whitespace body → undefined; malformed → HttpError(400, errorText). */
async function readJson(req: GatewayRequest, errorText: string): Promise<unknown> {
  const raw = (await req.rawBody()).toString('utf8');
  if (raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, errorText);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function engineCall<T>(p: Promise<T>): Promise<T> {
  return p.catch((err) => {
    if (err instanceof EngineError) throw new HttpError(err.status, err.message);
    throw err;
  });
}

function positiveInt(raw: string | null, dflt: number): number {
  const n = raw === null ? NaN : Number(raw);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

export const workflowRoutes: RouteModule = (routes, deps) => {
  const engine = new WorkflowEngine(deps);
  const store = engine.store;
  const tenant = deps.config.tenant;

  /** Any tenant-naming value must be empty or the server tenant (api.md §3.2). */
  const resolveTenant = (v: string | null | undefined): string => {
    const t = (v ?? '').trim();
    if (t && t !== tenant) throw new HttpError(403, 'tenant access denied');
    return tenant;
  };
  const ownWorkflow = async (id: string): Promise<Workflow> => {
    const wf = await store.getWorkflow(id);
    if (!wf) throw new HttpError(404, 'not found');
    if (wf.org_id !== tenant) throw new HttpError(403, 'tenant access denied');
    return wf;
  };
  const ownRun = async (id: string, notFound = 'not found'): Promise<WorkflowRun> => {
    const run = await store.findRun(id);
    if (!run) throw new HttpError(404, notFound);
    if (run.org_id !== tenant) throw new HttpError(403, 'tenant access denied');
    return run;
  };
  const checkConcurrency = async (run: { org: string; team?: string; workflow: string }) => {
    const max = maxConcurrentRuns(await loadEffectiveConfig(deps.redis, { org: run.org, team: run.team, workflow: run.workflow }));
    if (max > 0 && (await store.activeRunCount(run.org)) >= max) throw new HttpError(429, 'max concurrent runs reached');
  };
  const loadRuns = async (ids: string[]): Promise<WorkflowRun[]> => {
    const runs = await Promise.all(ids.map((id) => store.findRun(id)));
    return runs.filter((r): r is WorkflowRun => !!r && r.org_id === tenant);
  };

  // 14. list definitions, newest first, at most 100
  routes.add('GET', '/api/v1/workflows', async (req, reply) => {
    const org = resolveTenant(req.query.get('org_id'));
    const ids = await store.listWorkflowIds(org, LIST_CAP);
    const wfs = await Promise.all(ids.map((id) => store.getWorkflow(id)));
    reply.json(
      200,
      wfs.filter((w): w is Workflow => !!w && w.org_id === tenant).map(workflowView),
    );
  });

  // 15. create or upsert
  routes.add('POST', '/api/v1/workflows', async (req, reply) => {
    const body = await readJson(req, 'invalid json');
    if (body === undefined) throw new HttpError(400, 'invalid json');
    let decoded;
    try {
      decoded = decodeWorkflowBody(body);
    } catch (err) {
      if (err instanceof DecodeError) throw new HttpError(400, 'invalid json');
      throw err;
    }
    resolveTenant(decoded.fields.org_id);
    const existing = decoded.fields.id ? await store.getWorkflow(decoded.fields.id) : null;
    if (existing && existing.org_id !== tenant) throw new HttpError(403, 'tenant access denied');
    const wf = mergeWorkflow(decoded, existing, tenant);
    await store.saveWorkflow(wf);
    reply.json(201, { id: wf.id });
  });

  // 16. get one
  routes.add('GET', '/api/v1/workflows/{id}', async (req, reply) => {
    reply.json(200, workflowView(await ownWorkflow(req.params.id)));
  });

  // 17. delete (runs are left alone)
  routes.add('DELETE', '/api/v1/workflows/{id}', async (req, reply) => {
    await store.deleteWorkflow(await ownWorkflow(req.params.id));
    reply.empty(204);
  });

  // 18. start a run: the whole body is the input
  routes.add('POST', '/api/v1/workflows/{id}/runs', async (req, reply) => {
    const org = resolveTenant(req.query.get('org_id'));
    const wf = await store.getWorkflow(req.params.id);
    if (!wf) throw new HttpError(404, 'workflow not found');
    if (wf.org_id !== org) throw new HttpError(403, 'tenant access denied');
    const body = await readJson(req, 'invalid json');
    const input = body === undefined || body === null ? {} : body;
    if (!isObj(input)) throw new HttpError(400, 'invalid json');

    const idemKey = (
      req.headers['idempotency-key'] ??
      req.headers['x-idempotency-key'] ??
      req.query.get('idempotency_key') ??
      req.query.get('idempotency-key') ??
      ''
    )
      .toString()
      .trim();
    if (idemKey) {
      const existing = await store.getIdempotentRunId(idemKey);
      if (existing) {
        if (await store.findRun(existing)) return reply.json(200, { run_id: existing });
        throw new HttpError(409, 'idempotency key already used');
      }
    }
    if (wf.input_schema) {
      const problem = validateRunInput(wf.input_schema, input);
      if (problem) throw new HttpError(400, `input schema validation failed: ${problem}`);
    }
    const teamId = req.query.get('team_id') || wf.team_id || '';
    await checkConcurrency({ org, team: teamId, workflow: wf.id });

    let runId: string = randomUUID();
    if (idemKey) {
      const owner = await store.reserveIdempotency(idemKey, runId);
      if (owner !== runId) {
        // Lost a race with an identical request: answer with the winner's run.
        if (await store.findRun(owner)) return reply.json(200, { run_id: owner });
        throw new HttpError(409, 'idempotency key already used');
      }
    }
    runId = await engineCall(
      engine.startRun(wf, input, {
        runId,
        orgId: org,
        teamId,
        dryRun: TRUTHY.includes((req.query.get('dry_run') ?? '').toLowerCase()),
        idempotencyKey: idemKey || undefined,
        triggeredBy: req.principalId ?? '',
      }),
    );
    reply.json(200, { run_id: runId });
  });

  // 19. runs of one workflow, newest first, at most 100; unknown workflow → []
  routes.add('GET', '/api/v1/workflows/{id}/runs', async (req, reply) => {
    reply.json(200, await loadRuns(await store.runIdsOfWorkflow(req.params.id, LIST_CAP)));
  });

  // 20. all runs, seconds cursor; next_cursor comes from the unfiltered page
  routes.add('GET', '/api/v1/workflow-runs', async (req, reply) => {
    const q = req.query;
    resolveTenant(q.get('org_id'));
    const limit = positiveInt(q.get('limit'), 50);
    const rawCursor = q.get('cursor');
    const cursor = rawCursor && /^\d+$/.test(rawCursor.trim()) ? parseTimeParamSeconds(rawCursor) : '+inf';
    const page = await deps.redis.zrevrangebyscore(keys.runsAll, cursor, '-inf', 'WITHSCORES', 'LIMIT', 0, limit);
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i < page.length; i += 2) {
      ids.push(page[i]);
      scores.push(Number(page[i + 1]));
    }
    const after = q.get('updated_after') ? parseTimeParamSeconds(q.get('updated_after')!) : NaN;
    const before = q.get('updated_before') ? parseTimeParamSeconds(q.get('updated_before')!) : NaN;
    const items = (await loadRuns(ids)).filter((r) => {
      if (q.get('status') && r.status !== q.get('status')!.toLowerCase()) return false;
      if (q.get('workflow_id') && r.workflow_id !== q.get('workflow_id')) return false;
      if (q.get('team_id') && r.team_id !== q.get('team_id')) return false;
      const upd = unixSecondsFromRfc3339(r.updated_at);
      if (!Number.isNaN(after) && upd < after) return false;
      if (!Number.isNaN(before) && upd > before) return false;
      return true;
    });
    const nextCursor = ids.length === limit ? scores[scores.length - 1] - 1 : null;
    reply.json(200, { items, next_cursor: nextCursor });
  });

  // 21. one run
  routes.add('GET', '/api/v1/workflow-runs/{id}', async (req, reply) => {
    reply.json(200, await ownRun(req.params.id));
  });

  // 22. timeline: the first `limit` events, chronological; unknown run → []
  routes.add('GET', '/api/v1/workflow-runs/{id}/timeline', async (req, reply) => {
    reply.json(200, await store.timeline(req.params.id, positiveInt(req.query.get('limit'), 200)));
  });

  // 23. delete a run and its timeline (jobs keep running)
  routes.add('DELETE', '/api/v1/workflow-runs/{id}', async (req, reply) => {
    await store.deleteRun(await ownRun(req.params.id));
    reply.empty(204);
  });

  // 24. rerun, optionally from a step
  routes.add('POST', '/api/v1/workflow-runs/{id}/rerun', async (req, reply) => {
    const body = await readJson(req, 'invalid json');
    if (body !== undefined && body !== null && !isObj(body)) throw new HttpError(400, 'invalid json');
    const b = (body ?? {}) as Record<string, unknown>;
    if ((b.from_step != null && typeof b.from_step !== 'string') || (b.dry_run != null && typeof b.dry_run !== 'boolean')) {
      throw new HttpError(400, 'invalid json');
    }
    const old = await ownRun(req.params.id, 'run not found');
    await checkConcurrency({ org: old.org_id, team: old.team_id, workflow: old.workflow_id });
    const runId = await engineCall(
      engine.rerun(old.id, {
        fromStep: (b.from_step as string | undefined) || undefined,
        dryRun: b.dry_run as boolean | undefined,
        triggeredBy: req.principalId,
      }),
    );
    reply.json(200, { run_id: runId });
  });

  // 25. approve/reject an approval step; `{}` means approved=false. The {id} segment is not checked.
  routes.add('POST', '/api/v1/workflows/{id}/runs/{run_id}/steps/{step_id}/approve', async (req, reply) => {
    const body = await readJson(req, 'invalid body');
    if (body === undefined) throw new HttpError(400, 'invalid body');
    if (body !== null && !isObj(body)) throw new HttpError(400, 'invalid body');
    const approved = body === null ? undefined : body.approved;
    if (approved !== undefined && approved !== null && typeof approved !== 'boolean') throw new HttpError(400, 'invalid body');
    await engineCall(engine.approveStep(req.params.run_id, req.params.step_id, approved === true));
    reply.empty(204);
  });

  // 26. cancel a run; {id} is ignored
  routes.add('POST', '/api/v1/workflows/{id}/runs/{run_id}/cancel', async (req, reply) => {
    await engineCall(engine.cancelRun(req.params.run_id));
    reply.empty(204);
  });
};
