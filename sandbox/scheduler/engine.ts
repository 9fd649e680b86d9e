// Job request / result / cancel handling as Cordum's scheduler engine does it (runtime.md §1.3,
// §2.1, §2.4, §3.1). Each handler returns the delivery outcome the durable consumer applies.
import type { BusPacket, JobRequest, JobResult } from '../../helpers/cap/codec.js';
import { JobStatus, jobStatusName } from '../../helpers/cap/codec.js';
import { TERMINAL_STATES, type DeliveryOutcome, type JobState, type JobStore, type SandboxDeps } from '../types.js';
import type { PolicyCheckRequest, PolicyCheckResponse } from '../kernel/wire.js';
import { camelNames, decisionRecord, nowMicros, safetyMetaFields } from './decisions.js';
import { skipsKernel } from '../faults.js';
import { publishDlq } from './dlq-packet.js';
import type { ConfigStore } from '../stores/config-docs.js';
import { jobHash } from './job-hash.js';
import { acquireLock, type HeldLock } from './locks.js';
import type { SchedulerMetrics } from './metrics.js';
import { RoutingError, route } from './routing.js';
import type { WorkerRegistry } from './workers.js';

const JOB_LOCK_TTL_MS = 30_000;
const JOB_LOCK_WAIT_MS = 2_000;
const SENDER = 'cordum-scheduler';

const NAK_STORE = { nakDelayMs: 1000 };
const NAK_LOCK = { nakDelayMs: 500 };
const NAK_DISPATCH = { nakDelayMs: 2000 };
const NAK_THROTTLE = { nakDelayMs: 5000 };

export interface EngineContext {
  deps: SandboxDeps;
  store: JobStore;
  configs: ConfigStore;
  metrics: SchedulerMetrics;
  workers: WorkerRegistry;
  checkSafety(req: PolicyCheckRequest): Promise<PolicyCheckResponse>;
}

/** JobResult status -> job state (unknown and transitional statuses become FAILED). */
export function resultState(status: number | undefined): JobState {
  switch (status ?? 0) {
    case JobStatus.SUCCEEDED:
      return 'SUCCEEDED';
    case JobStatus.TIMEOUT:
      return 'TIMEOUT';
    case JobStatus.DENIED:
      return 'DENIED';
    case JobStatus.CANCELLED:
      return 'CANCELLED';
    default:
      return 'FAILED';
  }
}

const isTerminal = (s: string | null) => s !== null && (TERMINAL_STATES as readonly string[]).includes(s);

export function createEngine(ctx: EngineContext) {
  const { deps, store, metrics } = ctx;
  const { redis, bus, config } = deps;
  const log = (msg: string) => deps.log('scheduler', msg);

  const withJobLock = async (jobId: string, fn: () => Promise<DeliveryOutcome>): Promise<DeliveryOutcome> => {
    let lock: HeldLock | undefined;
    try {
      lock = await acquireLock(redis, `cordum:scheduler:job:${jobId}`, JOB_LOCK_TTL_MS, JOB_LOCK_WAIT_MS);
    } catch (err) {
      log(`job ${jobId}: lock error: ${(err as Error).message}`);
      return NAK_STORE;
    }
    if (!lock) return NAK_LOCK;
    try {
      return await fn();
    } finally {
      await lock.release().catch(() => {});
    }
  };

  /** Terminal state + DLQ packet + completed metric, for scheduler-made failures. */
  const failToDlq = async (jobId: string, topic: string, state: JobState, status: number, code: string, message: string): Promise<DeliveryOutcome> => {
    try {
      await store.setState(jobId, state);
    } catch (err) {
      log(`job ${jobId}: set ${state} failed: ${(err as Error).message}`);
      return NAK_STORE;
    }
    metrics.completed.inc({ topic: topic || 'unknown', status: jobStatusName(status) });
    try {
      await publishDlq(bus, { jobId, status, code, message, sender: SENDER });
    } catch (err) {
      log(`job ${jobId}: dlq publish failed: ${(err as Error).message}`);
      return NAK_DISPATCH;
    }
    return 'ack';
  };

  async function handleJobRequest(packet: BusPacket): Promise<DeliveryOutcome> {
    const req = packet.job_request ?? {};
    const jobId = req.job_id ?? '';
    const topic = req.topic ?? '';
    metrics.received.inc({ topic });
    if (!jobId) return 'ack'; // nothing to mark: metrics only
    if (!topic) {
      await store.setState(jobId, 'FAILED').catch(() => {});
      metrics.completed.inc({ topic: 'unknown', status: 'JOB_STATUS_FAILED' });
      return 'ack';
    }
    return withJobLock(jobId, () => processRequest(req, packet.trace_id ?? ''));
  }

  async function processRequest(req: JobRequest, traceId: string): Promise<DeliveryOutcome> {
    const jobId = req.job_id!;
    const topic = req.topic!;
    let prevMeta: Record<string, string>;
    let state: string | null;
    try {
      state = await store.getState(jobId);
      if (isTerminal(state) || state === 'DISPATCHED' || state === 'RUNNING') return 'ack';
      prevMeta = await store.getMeta(jobId);
      // Re-persist meta and request on every handling (this resets attempts to 0, as in Cordum).
      await store.setJobMeta(req, traceId ? { traceId } : undefined);
      await store.putRequest(req);
      if (traceId) await store.addToTrace(traceId, jobId);
      if (state === null) await store.setState(jobId, 'PENDING');
    } catch (err) {
      log(`job ${jobId}: store error: ${(err as Error).message}`);
      return NAK_STORE;
    }

    const labels = req.labels ?? {};
    const tenant = req.tenant_id || req.meta?.tenant_id || req.env?.tenant_id || config.tenant;
    const hash = jobHash(req);
    const effective = await ctx.configs.effective({
      org: tenant,
      team: req.env?.team_id,
      workflow: req.workflow_id || labels.workflow_id,
    }).catch(() => undefined);
    const env: Record<string, string> = { ...(req.env ?? {}) };
    if (effective) env.CORDUM_EFFECTIVE_CONFIG = JSON.stringify(effective);

    // approval_granted is honoured only for the exact request that was held for approval.
    const approved =
      labels.approval_granted === 'true' && prevMeta.safety_decision === 'REQUIRE_APPROVAL' && !!prevMeta.safety_job_hash && prevMeta.safety_job_hash === hash;
    // Fault scheduler-skips-kernel: these topics go straight to dispatch, with no decision recorded.
    const unchecked = !approved && skipsKernel(deps.faults, topic);
    let decision: PolicyCheckResponse;
    if (unchecked) {
      decision = { decision: 'DECISION_TYPE_ALLOW', reason: '', redactedContextPtr: '', policySnapshot: '', ruleId: '', constraints: null, approvalRequired: false, approvalRef: '', remediations: [] };
    } else if (approved) {
      decision = {
        decision: 'DECISION_TYPE_ALLOW',
        reason: 'approval granted',
        redactedContextPtr: '',
        policySnapshot: prevMeta.safety_snapshot ?? '',
        ruleId: prevMeta.safety_rule_id ?? '',
        constraints: prevMeta.safety_constraints ? (camelNames(safeJson(prevMeta.safety_constraints)) as PolicyCheckResponse['constraints']) : null,
        approvalRequired: false,
        approvalRef: '',
        remediations: [],
      };
    } else {
      decision = await ctx.checkSafety({
        job_id: jobId,
        topic,
        tenant,
        priority: req.priority ?? 0,
        budget: req.budget,
        principal_id: req.principal_id,
        labels,
        memory_id: req.memory_id,
        effective_config: effective,
        meta: req.meta ? { ...req.meta, tenant_id: req.meta.tenant_id || tenant } : { tenant_id: tenant },
      });
    }
    const record = decisionRecord(decision, hash, nowMicros());
    try {
      if (!unchecked) await store.addDecision(jobId, record);
      // Approval keeps the REQUIRE_APPROVAL record on the job; only real checks overwrite it.
      if (!approved && !unchecked) await store.setMetaFields(jobId, safetyMetaFields(record));
    } catch (err) {
      log(`job ${jobId}: store decision failed: ${(err as Error).message}`);
      return NAK_STORE;
    }

    switch (decision.decision) {
      case 'DECISION_TYPE_REQUIRE_HUMAN':
        try {
          await store.setState(jobId, 'APPROVAL_REQUIRED');
        } catch {
          return NAK_STORE;
        }
        return 'ack';
      case 'DECISION_TYPE_THROTTLE':
        return NAK_THROTTLE;
      case 'DECISION_TYPE_ALLOW':
      case 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS':
        break;
      default:
        metrics.safetyDenied.inc({ topic });
        return failToDlq(jobId, topic, 'DENIED', JobStatus.DENIED, 'safety_denied', decision.reason);
    }

    // Constraints: into env, budgets enforced (runtime.md §7.4).
    const dispatchReq: JobRequest = { ...req, env };
    const c = (decision.constraints ?? undefined) as
      | { budgets?: { maxRuntimeMs?: string | number; maxRetries?: number; maxArtifactBytes?: string | number; maxConcurrentJobs?: number }; redactionLevel?: string }
      | undefined;
    if (c) {
      env.CORDUM_POLICY_CONSTRAINTS = JSON.stringify(c);
      if (c.redactionLevel) env.CORDUM_REDACTION_LEVEL = c.redactionLevel;
      const b = c.budgets ?? {};
      if (Number(b.maxArtifactBytes ?? 0) > 0) env.CORDUM_MAX_ARTIFACT_BYTES = String(b.maxArtifactBytes);
      if (Number(b.maxConcurrentJobs ?? 0) > 0) env.CORDUM_MAX_CONCURRENT_JOBS = String(b.maxConcurrentJobs);
      const maxRetries = Number(b.maxRetries ?? 0);
      if (maxRetries > 0) {
        env.CORDUM_MAX_RETRIES = String(maxRetries);
        // Looks unreachable in Cordum too: setJobMeta above reset attempts to 0.
        const attempts = Number((await store.getMeta(jobId)).attempts ?? 0);
        if (attempts >= maxRetries + 1) {
          return failToDlq(jobId, topic, 'FAILED', JobStatus.FAILED, 'max_retries_exceeded', `max retries exceeded (attempts=${attempts}, max_retries=${maxRetries})`);
        }
      }
      const maxRuntime = Number(b.maxRuntimeMs ?? 0);
      if (maxRuntime > 0) {
        const cur = Number(dispatchReq.budget?.deadline_ms ?? 0);
        if (!cur || maxRuntime < cur) dispatchReq.budget = { ...(dispatchReq.budget ?? {}), deadline_ms: maxRuntime };
      }
      const maxJobs = Number(b.maxConcurrentJobs ?? 0);
      if (maxJobs > 0) {
        const key = `job:tenant:active:${tenant}`;
        const [count, self] = await Promise.all([redis.scard(key), redis.sismember(key, jobId)]);
        if (count - self >= maxJobs) return NAK_DISPATCH; // tenant_limit: stays PENDING
      }
    }
    // Deadline: stored once, relative to the first handling that got this far.
    const deadlineMs = Number(dispatchReq.budget?.deadline_ms ?? 0);
    if (deadlineMs > 0 && (await redis.zscore('job:deadline', jobId)) === null) {
      try {
        await store.setDeadline(jobId, Math.ceil((Date.now() + deadlineMs) / 1000));
      } catch {
        return NAK_STORE;
      }
    }

    let placement;
    try {
      placement = route(dispatchReq, config.pools, ctx.workers.live());
    } catch (err) {
      if (err instanceof RoutingError && err.retryable) return NAK_DISPATCH; // stays PENDING
      const code = err instanceof RoutingError ? err.code : 'dispatch_failed';
      return failToDlq(jobId, topic, 'FAILED', JobStatus.FAILED, code, (err as Error).message);
    }

    try {
      await store.setState(jobId, 'SCHEDULED'); // the store bumps attempts on entering SCHEDULED
    } catch (err) {
      log(`job ${jobId}: schedule failed: ${(err as Error).message}`);
      return NAK_STORE;
    }
    const busMsgId = labels['cordum.bus_msg_id'];
    const msgId = busMsgId ? `jobreq:${placement.subject}:${busMsgId}` : `jobreq:${jobId}`;
    try {
      await bus.publishDurable(placement.subject, { trace_id: traceId || jobId, sender_id: SENDER, created_at: Date.now(), job_request: dispatchReq }, msgId);
    } catch (err) {
      log(`job ${jobId}: dispatch publish failed: ${(err as Error).message}`);
      return NAK_DISPATCH;
    }
    try {
      await store.setState(jobId, 'DISPATCHED');
      await store.setState(jobId, 'RUNNING'); // workers never report "started"
    } catch (err) {
      log(`job ${jobId}: post-dispatch state failed: ${(err as Error).message}`);
      return NAK_STORE;
    }
    metrics.dispatched.inc({ topic });
    return 'ack';
  }

  async function handleJobResult(packet: BusPacket): Promise<DeliveryOutcome> {
    const res: JobResult = packet.job_result ?? {};
    const jobId = res.job_id ?? '';
    if (!jobId) return 'ack';
    return withJobLock(jobId, async () => {
      let meta: Record<string, string>;
      try {
        const state = await store.getState(jobId);
        if (isTerminal(state)) return 'ack'; // results for finished jobs are ignored
        meta = await store.getMeta(jobId);
        await store.setState(jobId, resultState(res.status));
        if (res.result_ptr) await store.setResultPtr(jobId, res.result_ptr);
      } catch (err) {
        // Includes `invalid transition X -> Y`: redelivered every second, forever.
        log(`job ${jobId}: result handling failed: ${(err as Error).message}`);
        return NAK_STORE;
      }
      const statusName = jobStatusName(res.status);
      metrics.completed.inc({ topic: meta.topic || 'unknown', status: statusName });
      if ((res.status ?? 0) === JobStatus.SUCCEEDED) return 'ack';
      try {
        await publishDlq(bus, { jobId, status: res.status ?? 0, code: (res.error_code ?? '').trim(), message: res.error_message ?? '', sender: SENDER });
      } catch (err) {
        log(`job ${jobId}: dlq publish failed: ${(err as Error).message}`);
        return NAK_DISPATCH;
      }
      return 'ack';
    });
  }

  async function handleCancel(packet: BusPacket): Promise<void> {
    const jobId = packet.job_cancel?.job_id;
    if (!jobId) return;
    try {
      await store.cancel(jobId);
    } catch (err) {
      log(`job ${jobId}: cancel failed: ${(err as Error).message}`);
    }
  }

  return { handleJobRequest, handleJobResult, handleCancel };
}

function safeJson(s: string): any {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

export type Engine = ReturnType<typeof createEngine>;
