// The workflow engine proper, shared by the gateway-embedded instance (start, approve, cancel,
// rerun) and the workflow-engine service (results, reconciler, retry timers). Every mutation of
// a run happens inside the run lock cordum:wf:run:lock:<run_id>, follows the same shape
// (load → mutate → scheduling pass → roll-up → save + timeline) and is therefore safe to run
// from either process.
import { randomUUID } from 'node:crypto';
import type { JobResult } from '../../helpers/cap/codec.js';
import { jobStatusName } from '../../helpers/cap/codec.js';
import type { DeliveryOutcome, SandboxDeps } from '../types.js';
import { dispatchStepJob, publishJobCancel } from './dispatch.js';
import { EngineError, runBusy } from './errors.js';
import { evaluateCondition, renderTemplate, type Scope } from './expressions.js';
import { parseStepJobId, stepJobId } from './job-ids.js';
import { RUN_LOCK_TTL_MS, runLockKey, tryLock } from './locks.js';
import {
  IN_ENGINE_STEP_TYPES,
  isTerminalRun,
  isTerminalStep,
  type RunStatus,
  type Step,
  type StepRun,
  type StepStatus,
  type TimelineEvent,
  type Workflow,
  type WorkflowRun,
} from './models.js';
import { backoffMs, shouldRetry } from './retry.js';
import { WorkflowStore } from './store.js';
import { parseRfc3339Ms, rfc3339FromMs, rfc3339Now } from './time.js';

const COMPONENT = 'workflow-engine';
/** Results NAKed while the run lock is busy come back after this long (runtime.md §6.1). */
export const BUSY_NAK_MS = 500;
const MAX_PASSES = 100;

/** One locked mutation of a run: the run, its workflow, and the timeline events it produced. */
interface RunTx {
  run: WorkflowRun;
  wf: Workflow;
  events: TimelineEvent[];
  dirty: boolean;
}

export interface StartRunOptions {
  /** Pre-chosen id (the route reserves the idempotency key for it first). */
  runId?: string;
  orgId: string;
  teamId?: string;
  dryRun?: boolean;
  idempotencyKey?: string;
  triggeredBy?: string;
  rerunOf?: string;
  rerunStep?: string;
  /** Step runs copied from an earlier run (rerun from_step). */
  copiedSteps?: Record<string, StepRun>;
}

export class WorkflowEngine {
  readonly store: WorkflowStore;
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private stopped = false;

  constructor(private readonly deps: SandboxDeps) {
    this.store = new WorkflowStore(deps.redis);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
  }

  private log(msg: string): void {
    this.deps.log(COMPONENT, msg);
  }

  // ---------------------------------------------------------------- locking helpers

  /** Runs fn under the run lock; returns `busy` without calling fn when someone holds it. */
  private async withRunLock<T>(runId: string, fn: () => Promise<T>): Promise<{ busy: true } | { busy: false; value: T }> {
    const lock = await tryLock(this.deps.redis, runLockKey(runId), RUN_LOCK_TTL_MS);
    if (!lock) return { busy: true };
    try {
      return { busy: false, value: await fn() };
    } finally {
      await lock.release().catch(() => {});
    }
  }

  private async loadTx(runId: string): Promise<RunTx> {
    let run: WorkflowRun;
    try {
      run = await this.store.getRun(runId);
    } catch (err) {
      // Cordum wraps the store error twice; clients see e.g. `get run: get run <id>: redis: nil`.
      throw new EngineError(400, `get run: get run ${runId}: ${(err as Error).message}`);
    }
    const wf = await this.store.getWorkflow(run.workflow_id);
    if (!wf) throw new EngineError(400, `get workflow: workflow ${run.workflow_id} not found`);
    return { run, wf, events: [], dirty: false };
  }

  private event(tx: RunTx, type: string, fields: Omit<TimelineEvent, 'time' | 'type' | 'run_id' | 'workflow_id'>): void {
    tx.events.push({ time: rfc3339Now(), type, run_id: tx.run.id, workflow_id: tx.run.workflow_id, ...fields });
  }

  // ---------------------------------------------------------------- public operations

  /** Creates a run and performs its first scheduling pass synchronously. */
  async startRun(wf: Workflow, input: Record<string, unknown>, opts: StartRunOptions): Promise<string> {
    const now = rfc3339Now();
    const run: WorkflowRun = {
      id: opts.runId ?? randomUUID(),
      workflow_id: wf.id,
      org_id: opts.orgId,
      team_id: opts.teamId ?? '',
      input,
      context: null,
      status: 'pending',
      started_at: now,
      completed_at: null,
      output: null,
      error: null,
      steps: {},
      total_cost: 0,
      triggered_by: opts.triggeredBy ?? '',
      created_at: now,
      updated_at: now,
    };
    if (opts.idempotencyKey) run.idempotency_key = opts.idempotencyKey;
    if (opts.rerunOf) {
      run.rerun_of = opts.rerunOf;
      run.metadata = { rerun_of: opts.rerunOf };
      if (opts.rerunStep) {
        run.rerun_step = opts.rerunStep;
        run.metadata.rerun_step = opts.rerunStep;
      }
    }
    if (opts.dryRun) run.dry_run = true;
    for (const [id, sr] of Object.entries(opts.copiedSteps ?? {})) run.steps[id] = structuredClone(sr);
    for (const [id, sr] of Object.entries(run.steps)) this.recordOutput(run, wf.steps[id], sr.output);

    const res = await this.withRunLock(run.id, async () => {
      const tx: RunTx = { run, wf, events: [], dirty: true };
      await this.advance(tx);
      await this.commit(tx, 'pending');
    });
    if (res.busy) throw new EngineError(500, 'new run lock unexpectedly busy');
    return run.id;
  }

  /** approve/reject an approval step (api.md §10.6). */
  async approveStep(runId: string, stepId: string, approved: boolean): Promise<void> {
    const res = await this.withRunLock(runId, async () => {
      const tx = await this.loadTx(runId);
      const sr = tx.run.steps[stepId];
      if (!tx.wf.steps[stepId] || !sr) throw new EngineError(400, 'step not found');
      if (sr.status !== 'waiting') throw new EngineError(400, 'step not waiting');
      // Fault: the endpoint still answers 204, but the decision is dropped on the floor.
      if (this.deps.faults.has('approval-ignored')) return;
      const prev = tx.run.status;
      sr.status = approved ? 'succeeded' : 'failed';
      sr.completed_at = rfc3339Now();
      // A rejected approval step carries no error (recorded on a real Cordum): `failed` says it all.
      tx.dirty = true;
      if (!(approved && this.deps.faults.has('timeline-missing-approval'))) {
        this.event(tx, approved ? 'step_approved' : 'step_rejected', { step_id: stepId, status: sr.status });
      }
      await this.advance(tx);
      await this.commit(tx, prev);
    });
    if (res.busy) throw runBusy();
  }

  /** Cancels a run: non-terminal steps → cancelled, JobCancel for running step jobs. */
  async cancelRun(runId: string): Promise<void> {
    const res = await this.withRunLock(runId, async () => {
      const tx = await this.loadTx(runId);
      if (isTerminalRun(tx.run.status)) return; // nothing left to stop
      const now = rfc3339Now();
      for (const id of Object.keys(tx.wf.steps)) {
        const sr = (tx.run.steps[id] ??= { step_id: id, status: 'pending' });
        if (isTerminalStep(sr.status)) continue;
        if (sr.status === 'running' && sr.job_id && this.isJobStep(tx.wf.steps[id])) publishJobCancel(this.deps, sr.job_id);
        sr.status = 'cancelled';
        sr.completed_at = now;
        delete sr.next_attempt_at;
      }
      tx.run.status = 'cancelled';
      tx.run.completed_at = now;
      tx.dirty = true;
      this.event(tx, 'run_status', { status: 'cancelled', message: 'run cancelled' });
      await this.save(tx);
    });
    if (res.busy) throw runBusy();
  }

  /** Starts a new run from an old one, optionally re-using the dependencies of `fromStep`. */
  async rerun(runId: string, opts: { fromStep?: string; dryRun?: boolean; triggeredBy?: string }): Promise<string> {
    const old = await this.store.findRun(runId);
    if (!old) throw new EngineError(404, 'run not found');
    const wf = await this.store.getWorkflow(old.workflow_id);
    if (!wf) throw new EngineError(404, 'workflow not found');
    const copied: Record<string, StepRun> = {};
    if (opts.fromStep) {
      if (!wf.steps[opts.fromStep]) throw new EngineError(400, 'step not found');
      for (const dep of transitiveDependencies(wf, opts.fromStep)) {
        const sr = old.steps[dep];
        if (!sr || sr.status !== 'succeeded') throw new EngineError(400, `dependency ${dep} not succeeded`);
        copied[dep] = sr;
      }
    }
    return this.startRun(wf, structuredClone(old.input ?? {}), {
      orgId: old.org_id,
      teamId: old.team_id,
      dryRun: opts.dryRun ?? old.dry_run,
      triggeredBy: opts.triggeredBy ?? old.triggered_by,
      rerunOf: old.id,
      rerunStep: opts.fromStep,
      copiedSteps: copied,
    });
  }

  /** Applies a JobResult for a step job. Busy run lock → NAK 500 ms; everything else is ACKed. */
  async applyResult(result: JobResult): Promise<DeliveryOutcome> {
    const ids = result.job_id ? parseStepJobId(result.job_id) : null;
    if (!ids) return 'ack';
    const res = await this.withRunLock(ids.runId, async () => {
      let tx: RunTx;
      try {
        tx = await this.loadTx(ids.runId);
      } catch (err) {
        this.log(`result ${result.job_id}: ${(err as Error).message}`);
        return;
      }
      if (tx.run.status === 'cancelled' || tx.run.status === 'timed_out') return;
      const prev = tx.run.status;
      if (!this.applyStepResult(tx, ids.stepId, result)) return;
      await this.advance(tx);
      await this.commit(tx, prev);
    });
    return res.busy ? { nakDelayMs: BUSY_NAK_MS } : 'ack';
  }

  /**
   * Re-kicks a run: due retries and delays fire, and (for the reconciler) step jobs that are
   * already terminal in the job store get a synthesised result. Returns false if the lock was busy.
   */
  async kick(runId: string, opts: { synthesise?: boolean } = {}): Promise<boolean> {
    const res = await this.withRunLock(runId, async () => {
      let tx: RunTx;
      try {
        tx = await this.loadTx(runId);
      } catch (err) {
        this.log(`kick ${runId}: ${(err as Error).message}`);
        return;
      }
      if (isTerminalRun(tx.run.status)) return;
      const prev = tx.run.status;
      if (opts.synthesise) {
        for (const [id, sr] of Object.entries(tx.run.steps)) {
          if (sr.status !== 'running' || !sr.job_id || !this.isJobStep(tx.wf.steps[id])) continue;
          const synthetic = await this.synthesiseResult(sr.job_id);
          if (synthetic) this.applyStepResult(tx, id, synthetic);
        }
      }
      await this.advance(tx);
      await this.commit(tx, prev);
    });
    return !res.busy;
  }

  // ---------------------------------------------------------------- result handling

  private isJobStep(step: Step | undefined): boolean {
    return !!step && !(IN_ENGINE_STEP_TYPES as readonly string[]).includes(step.type ?? '');
  }

  /** Reads the job store (runtime.md §5.1) and builds the JobResult a terminal job implies. */
  private async synthesiseResult(jobId: string): Promise<JobResult | null> {
    const r = this.deps.redis;
    const state = (await r.hget(`job:meta:${jobId}`, 'state')) ?? (await r.get(`job:state:${jobId}`));
    const status = { SUCCEEDED: 5, FAILED: 6, CANCELLED: 7, DENIED: 8, TIMEOUT: 9 }[state ?? ''];
    if (!status) return null;
    const resultPtr = (await r.hget(`job:meta:${jobId}`, 'result_ptr')) ?? (await r.get(`job:result_ptr:${jobId}`)) ?? undefined;
    let reason: string | undefined;
    const dlq = await r.get(`dlq:entry:${jobId}`);
    if (dlq) {
      try {
        reason = (JSON.parse(dlq) as { reason?: string }).reason;
      } catch {
        // unreadable DLQ entries just lose their reason
      }
    }
    return {
      job_id: jobId,
      status,
      result_ptr: resultPtr,
      error_message: status === 5 ? undefined : reason || `job ${state!.toLowerCase()}`,
    };
  }

  /** Applies one result to the step it belongs to; false when it is stale or a duplicate. */
  private applyStepResult(tx: RunTx, stepId: string, result: JobResult): boolean {
    const sr = tx.run.steps[stepId];
    const step = tx.wf.steps[stepId];
    if (!sr || !step || sr.status !== 'running' || sr.job_id !== result.job_id) return false;
    const status = result.status ?? 0;
    const now = Date.now();
    tx.dirty = true;
    const retryIgnored = this.deps.faults.has('step-retry-ignored');
    if (!retryIgnored && shouldRetry(step.retry, status, sr.attempts ?? 1)) {
      // Retried attempts get no step_completed event; the step waits as pending.
      const due = now + backoffMs(step.retry, sr.attempts ?? 1);
      sr.status = 'pending';
      sr.next_attempt_at = rfc3339FromMs(due);
      sr.error = { message: result.error_message || jobStatusName(status) };
      this.scheduleKick(tx.run.id, due);
      return true;
    }
    let next: StepStatus;
    let message: string | undefined;
    switch (status) {
      case 5:
        next = 'succeeded';
        break;
      case 6:
      case 8:
        next = 'failed';
        message = result.error_message || undefined;
        break;
      case 9:
        next = 'timed_out';
        message = result.error_message || undefined;
        break;
      case 7:
        next = 'cancelled';
        message = result.error_message || undefined;
        break;
      default:
        next = 'failed';
        message = `unexpected status: ${jobStatusName(status)}`;
    }
    sr.status = next;
    sr.completed_at = rfc3339Now();
    delete sr.next_attempt_at;
    if (next === 'succeeded') {
      delete sr.error;
      sr.output = result.result_ptr ?? '';
      this.recordOutput(tx.run, step, sr.output);
    } else {
      sr.error = { message: message ?? jobStatusName(status) };
    }
    this.event(tx, 'step_completed', {
      step_id: stepId,
      job_id: result.job_id,
      status: next,
      result_ptr: result.result_ptr || undefined,
      message,
    });
    return true;
  }

  private recordOutput(run: WorkflowRun, step: Step | undefined, output: unknown): void {
    if (!step?.output_path || output === undefined) return;
    run.context = { ...(run.context ?? {}), [step.output_path]: output };
  }

  // ---------------------------------------------------------------- scheduling pass

  private scope(run: WorkflowRun): Scope {
    const steps: Record<string, unknown> = {};
    for (const [id, sr] of Object.entries(run.steps)) steps[id] = { output: sr.output, status: sr.status };
    return { input: run.input, steps, ctx: run.context ?? {}, context: run.context ?? {} };
  }

  /**
   * Starts every ready step; repeats while in-engine steps (condition, notify, skipped, delay
   * completion) finish synchronously and unblock others.
   */
  private async advance(tx: RunTx): Promise<void> {
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      // Once a step failed or timed out the run is over: nothing new is started.
      const rolled = this.rollUp(tx);
      if (rolled === 'failed' || rolled === 'timed_out' || isTerminalRun(tx.run.status)) return;
      let progressed = false;
      for (const [id, step] of Object.entries(tx.wf.steps)) {
        const sr = (tx.run.steps[id] ??= { step_id: id, status: 'pending' });
        if (sr.status === 'pending') progressed = (await this.startPending(tx, { ...step, id }, sr)) || progressed;
        else if (sr.status === 'running' && step.type === 'delay') progressed = this.finishDelayIfDue(tx, id, sr) || progressed;
      }
      if (!progressed) return;
    }
  }

  /** Returns true when the step changed state. */
  private async startPending(tx: RunTx, step: Step, sr: StepRun): Promise<boolean> {
    const now = Date.now();
    if (sr.next_attempt_at) {
      // A retry is waiting for its backoff to pass.
      const due = parseRfc3339Ms(sr.next_attempt_at);
      if (due > now) {
        this.scheduleKick(tx.run.id, due);
        return false;
      }
      delete sr.next_attempt_at;
      await this.dispatchJob(tx, step, sr, (sr.attempts ?? 0) + 1);
      return true;
    }
    const deps = step.depends_on ?? [];
    if (!deps.every((d) => tx.run.steps[d]?.status === 'succeeded')) return false;
    tx.dirty = true;
    const type = step.type ?? '';
    if (step.condition && type !== 'condition') {
      let pass: boolean;
      try {
        pass = evaluateCondition(step.condition, this.scope(tx.run));
      } catch (err) {
        this.failStep(sr, `condition: ${(err as Error).message}`);
        return true;
      }
      if (!pass) {
        // A false gate skips the step, which counts as succeeded (no continue-on-error needed).
        sr.status = 'succeeded';
        sr.started_at = sr.completed_at = rfc3339Now();
        return true;
      }
    }
    switch (type) {
      case 'approval':
        sr.status = 'waiting';
        sr.started_at = rfc3339Now();
        this.event(tx, 'step_waiting', { step_id: step.id, status: 'waiting', message: 'approval requested' });
        return true;
      case 'condition':
        this.runCondition(tx, step, sr);
        return true;
      case 'notify':
        this.runNotify(tx, step, sr);
        return true;
      case 'delay':
        this.startDelay(tx, step, sr);
        return true;
      default:
        await this.dispatchJob(tx, step, sr, (sr.attempts ?? 0) + 1);
        return true;
    }
  }

  private failStep(sr: StepRun, message: string): void {
    sr.status = 'failed';
    sr.started_at ??= rfc3339Now();
    sr.completed_at = rfc3339Now();
    sr.error = { message };
  }

  private runCondition(tx: RunTx, step: Step, sr: StepRun): void {
    sr.started_at = rfc3339Now();
    try {
      if (!step.condition) throw new Error('condition is empty');
      const value = evaluateCondition(step.condition, this.scope(tx.run));
      sr.status = 'succeeded';
      sr.output = value;
      sr.completed_at = rfc3339Now();
      this.recordOutput(tx.run, step, value);
      this.event(tx, 'step_condition_evaluated', { step_id: step.id, status: 'succeeded', data: { value } });
    } catch (err) {
      this.failStep(sr, (err as Error).message);
      this.event(tx, 'step_condition_failed', { step_id: step.id, status: 'failed', message: (err as Error).message });
    }
  }

  private runNotify(tx: RunTx, step: Step, sr: StepRun): void {
    sr.started_at = rfc3339Now();
    try {
      const payload = (renderTemplate(step.input ?? {}, this.scope(tx.run)) ?? {}) as Record<string, unknown>;
      const str = (k: string) => (typeof payload[k] === 'string' ? (payload[k] as string) : undefined);
      this.deps.bus.publishCore('sys.workflow.event', {
        trace_id: tx.run.id,
        sender_id: 'cordum-workflow-engine',
        alert: {
          level: str('level') ?? 'INFO',
          message: str('message') ?? step.name ?? step.id,
          component: 'workflow-engine',
          code: str('code') ?? `workflow.${tx.wf.id}.${step.id}`,
        },
      });
      sr.status = 'succeeded';
      sr.completed_at = rfc3339Now();
      this.event(tx, 'step_event_emitted', { step_id: step.id, status: 'succeeded', data: { payload } });
    } catch (err) {
      this.failStep(sr, (err as Error).message);
      this.event(tx, 'step_event_failed', { step_id: step.id, status: 'failed', message: (err as Error).message });
    }
  }

  /** delay_sec, else delay_until (RFC3339), else timeout_sec. The due time lives in next_attempt_at. */
  private startDelay(tx: RunTx, step: Step, sr: StepRun): void {
    const now = Date.now();
    sr.started_at = rfc3339Now();
    let delayMs: number;
    if (step.delay_sec && step.delay_sec > 0) delayMs = step.delay_sec * 1000;
    else if (step.delay_until) {
      const until = parseRfc3339Ms(step.delay_until);
      if (Number.isNaN(until)) {
        const message = `invalid delay_until: ${step.delay_until}`;
        this.failStep(sr, message);
        this.event(tx, 'step_delay_failed', { step_id: step.id, status: 'failed', message });
        return;
      }
      delayMs = Math.max(0, until - now);
    } else delayMs = step.timeout_sec && step.timeout_sec > 0 ? step.timeout_sec * 1000 : 0;
    sr.status = 'running';
    sr.next_attempt_at = rfc3339FromMs(now + delayMs);
    this.event(tx, 'step_delay_started', { step_id: step.id, status: 'running', data: { delay_ms: delayMs } });
    if (!this.finishDelayIfDue(tx, step.id, sr)) this.scheduleKick(tx.run.id, now + delayMs);
  }

  private finishDelayIfDue(tx: RunTx, stepId: string, sr: StepRun): boolean {
    const due = parseRfc3339Ms(sr.next_attempt_at);
    if (!(due <= Date.now())) {
      if (!Number.isNaN(due)) this.scheduleKick(tx.run.id, due);
      return false;
    }
    sr.status = 'succeeded';
    sr.completed_at = rfc3339Now();
    delete sr.next_attempt_at;
    tx.dirty = true;
    this.event(tx, 'step_delay_completed', { step_id: stepId, status: 'succeeded' });
    return true;
  }

  private async dispatchJob(tx: RunTx, step: Step, sr: StepRun, attempt: number): Promise<void> {
    tx.dirty = true;
    let input: unknown;
    try {
      input = renderTemplate(step.input ?? {}, this.scope(tx.run));
    } catch (err) {
      this.failStep(sr, `input: ${(err as Error).message}`);
      this.event(tx, 'step_completed', { step_id: step.id, status: 'failed', message: sr.error!.message });
      return;
    }
    const jobId = stepJobId(tx.run.id, step.id, attempt);
    let contextPtr: string;
    try {
      ({ contextPtr } = await dispatchStepJob(this.deps, tx.wf, tx.run, step, jobId, input));
    } catch (err) {
      // Leave the step pending; the reconciler tries again on its next scan.
      this.log(`dispatch ${jobId} failed: ${(err as Error).message}`);
      return;
    }
    sr.status = 'running';
    sr.attempts = attempt;
    sr.job_id = jobId;
    // The rendered input goes to the job's context (ctx:<job id>), not into the step record: a real
    // Cordum's run never shows steps.<id>.input (recorded).
    sr.started_at = rfc3339Now();
    delete sr.completed_at;
    this.event(tx, 'step_dispatched', { step_id: step.id, job_id: jobId, status: 'running', data: { context_ptr: contextPtr } });
  }

  // ---------------------------------------------------------------- roll-up and persistence

  /** Roll-up rules of runtime.md §6.3. */
  private rollUp(tx: RunTx): RunStatus {
    const statuses = Object.keys(tx.wf.steps).map((id) => tx.run.steps[id]?.status ?? 'pending');
    if (statuses.some((s) => s === 'failed' || s === 'cancelled')) return 'failed';
    if (statuses.includes('timed_out')) return 'timed_out';
    if (statuses.includes('waiting')) return 'waiting';
    if (statuses.every((s) => s === 'succeeded')) return 'succeeded';
    return 'running';
  }

  /** Recomputes the run status (run_status event on change) and saves. */
  private async commit(tx: RunTx, prev: RunStatus): Promise<void> {
    const run = tx.run;
    if (run.status !== 'cancelled' && run.status !== 'timed_out') {
      const next = this.rollUp(tx);
      if (next !== run.status) {
        run.status = next;
        tx.dirty = true;
      }
    }
    if (run.status !== prev) {
      this.event(tx, 'run_status', { status: run.status });
      if (isTerminalRun(run.status)) {
        run.completed_at = rfc3339Now();
        // A failed or cancelled run keeps `error: null` (recorded on a real Cordum for failed job
        // steps, rejected approvals and cancels); the failing step's own `error` says why.
        if (run.status === 'succeeded') run.output = this.collectOutputs(tx);
      }
    }
    if (tx.dirty || tx.events.length) await this.save(tx);
  }

  private collectOutputs(tx: RunTx): Record<string, unknown> | null {
    const out: Record<string, unknown> = {};
    for (const [id, sr] of Object.entries(tx.run.steps)) if (sr.output !== undefined) out[id] = sr.output;
    return Object.keys(out).length ? out : null;
  }


  private async save(tx: RunTx): Promise<void> {
    tx.run.updated_at = rfc3339Now();
    // Timeline first: a reader that sees the new run status also sees the events that led to it.
    await this.store.appendTimeline(tx.run.id, tx.events);
    await this.store.saveRun(tx.run);
  }

  // ---------------------------------------------------------------- timers

  /** In-process re-kick for retries and delays; the reconciler is the safety net. */
  private scheduleKick(runId: string, atMs: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(runId);
    if (existing && existing.at <= atMs) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(runId);
      if (this.stopped) return;
      this.kick(runId)
        .then((done) => {
          if (!done) this.scheduleKick(runId, Date.now() + BUSY_NAK_MS);
        })
        .catch((err) => this.log(`timer kick ${runId}: ${(err as Error).message}`));
    }, Math.max(0, atMs - Date.now()));
    timer.unref();
    this.timers.set(runId, { at: atMs, timer });
  }
}

/** All steps `stepId` depends on, directly or indirectly (cycles tolerated). */
export function transitiveDependencies(wf: Workflow, stepId: string): string[] {
  const seen = new Set<string>();
  const visit = (id: string) => {
    for (const d of wf.steps[id]?.depends_on ?? []) {
      if (seen.has(d) || d === stepId) continue;
      seen.add(d);
      visit(d);
    }
  };
  visit(stepId);
  return [...seen];
}
