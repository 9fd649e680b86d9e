// Turns a job-type step into a CAP JobRequest the way Cordum's engine does (runtime.md §6.2):
// input stored under ctx:<job_id>, labels workflow_id/run_id/step_id (+route_labels, worker_id,
// dry_run), env with run identity and the effective config, priority BATCH by default,
// timeout_sec → budget.deadline_ms, step.meta → JobMetadata. Published durably on sys.job.submit
// with the de-duplication id `jobreq:<job_id>`.
import type { BusPacket, JobMeta, JobRequest } from '../../helpers/cap/codec.js';
import type { SandboxDeps } from '../types.js';
import { loadEffectiveConfig } from './effective-config.js';
import type { Step, Workflow, WorkflowRun } from './models.js';

export const ENGINE_SENDER = 'cordum-workflow-engine';
const PRIORITY: Record<string, number> = { interactive: 1, batch: 2, critical: 3 };

export function defaultTopic(workflowId: string): string {
  return `job.workflow.${workflowId}`;
}

function jobMeta(step: Step, tenant: string): JobMeta | undefined {
  const m = step.meta;
  if (!m) return undefined;
  const actor = m.actor_type?.toLowerCase();
  return {
    tenant_id: tenant,
    actor_id: m.actor_id,
    actor_type: actor === 'human' ? 1 : actor === 'service' ? 2 : undefined,
    idempotency_key: m.idempotency_key,
    capability: m.capability,
    risk_tags: m.risk_tags,
    requires: m.requires,
    pack_id: m.pack_id,
    labels: m.labels,
  };
}

export async function dispatchStepJob(
  deps: SandboxDeps,
  wf: Workflow,
  run: WorkflowRun,
  step: Step,
  jobId: string,
  input: unknown,
): Promise<{ contextPtr: string }> {
  const ctxKey = `ctx:${jobId}`;
  const contextPtr = `redis://${ctxKey}`;
  await deps.redis.set(ctxKey, JSON.stringify(input ?? {}), 'EX', deps.config.dataTtlS);

  const effective = await loadEffectiveConfig(deps.redis, { org: run.org_id, team: run.team_id, workflow: wf.id, step: step.id });
  const labels: Record<string, string> = { ...(step.route_labels ?? {}), workflow_id: wf.id, run_id: run.id, step_id: step.id };
  if (step.worker_id) labels.worker_id = step.worker_id;
  if (run.dry_run) labels.dry_run = 'true';
  const env: Record<string, string> = {
    workflow_id: wf.id,
    run_id: run.id,
    step_id: step.id,
    tenant_id: run.org_id,
    team_id: run.team_id,
    memory_id: `run:${run.id}`,
    context_mode: 'raw',
    CORDUM_EFFECTIVE_CONFIG: JSON.stringify(effective),
  };
  if (run.dry_run) env.dry_run = 'true';
  const inputPriority = input && typeof input === 'object' ? (input as Record<string, unknown>).priority : undefined;
  const req: JobRequest = {
    job_id: jobId,
    topic: step.topic || defaultTopic(wf.id),
    priority: (typeof inputPriority === 'string' && PRIORITY[inputPriority.toLowerCase()]) || PRIORITY.batch,
    context_ptr: contextPtr,
    adapter_id: step.worker_id,
    env,
    workflow_id: wf.id,
    memory_id: `run:${run.id}`,
    tenant_id: run.org_id,
    labels,
    meta: jobMeta(step, run.org_id),
  };
  if (step.timeout_sec && step.timeout_sec > 0) req.budget = { deadline_ms: step.timeout_sec * 1000 };
  const packet: BusPacket = { trace_id: run.id, sender_id: ENGINE_SENDER, job_request: req };
  await deps.bus.publishDurable('sys.job.submit', packet, `jobreq:${jobId}`);
  return { contextPtr };
}

export function publishJobCancel(deps: SandboxDeps, jobId: string): void {
  deps.bus.publishCore('sys.job.cancel', {
    trace_id: jobId,
    sender_id: ENGINE_SENDER,
    job_cancel: { job_id: jobId, reason: 'workflow run cancelled', requested_by: ENGINE_SENDER },
  });
}
