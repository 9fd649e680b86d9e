// Runbook `audit-trail` (runbooks/audit-trail.md): who approved what, when, under which policy.
// One step per step of the page, deadlines from the page. The job-approval part needs a temporary
// policy rule, so it runs only where the profile allows destructive drills; the rollback to the
// pre-drill bundle snapshot is registered for teardown before the first write.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { DlqEntry, JobDetail, PublishResponse, RollbackResponse, SafetyDecisionRecord, TimelineEvent, WorkflowRun } from '../../helpers/gateway.js';
import * as policyBundles from '../../helpers/policy-bundles.js';
import { jobResidueKeys } from '../../helpers/residue.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { fail, scenario, stateSlot, type RunContext } from '../../helpers/steps.js';
import { undo } from '../../helpers/undo.js';
import { assertTimeline, lastStatus, type ExpectedEvent } from '../../helpers/timeline.js';
import { compactJson, retryOn409, waitFor, WaitTimeoutError } from '../../helpers/waits.js';

const SCHEMA_FILE = fileURLToPath(new URL('../../helpers/schemas/audit-evidence.schema.json', import.meta.url));

/** Kernel waits: 2 reload intervals + 5 s (see runbooks/audit-trail.md); step deadlines follow (resolved against the target when the run opens). */
const afterReload = (extraMs: number) => (t: TargetProfile) => policyBundles.kernelReloadWaitMs(t.policy.reload_interval_ms) + extraMs;
const DEADLINE = {
  workflow: 20_000,
  install: afterReload(20_000),
  jobState: 15_000,
  approveJob: 30_000,
  rejectJob: 30_000,
  remove: afterReload(20_000),
  audit: 15_000,
  evidence: 10_000,
};
const STEP_ID = 'approve';
/**
 * Workflow approvals and job approvals check different things: a failure in one does not skip the
 * other. Job approvals, the rollback and the policy audit need the rule; the evidence file is
 * written from whatever was verified.
 */
const INSTALL_RULE = 'Install a temporary rule that requires approval';
const REMOVE_RULE = 'Remove the temporary rule by rolling back';

function names(ctx: RunContext) {
  const p = ctx.prefix;
  return {
    workflowId: `${p}-audit-approval`,
    bundleId: `secops/${p}-approval`,
    ruleId: `${p}-require-approval`,
    topic: `job.${p}.approval`,
    author: `cordum-runbooks (${p})`,
    approver: { id: `${p}-approver`, role: ctx.target.gateway.principal?.role ?? 'operator' },
    teardownLabel: 'policy: roll back the bundle map to the pre-drill snapshot (remove the temporary approval rule)',
  };
}

// ---------------------------------------------------------------------------------------------
// Evidence collected by the steps (EVIDENCE), written by the last step.

interface WorkflowApprovalEvidence {
  workflow_id: string;
  run_id: string;
  step_id: string;
  outcome: 'approved' | 'rejected';
  decided_at: string;
  run_status: string;
  approver: string | null;
  timeline: { time: string; type: string; step_id?: string; status?: string; message?: string }[];
}

interface JobApprovalEvidence {
  job_id: string;
  topic: string;
  outcome: 'approved' | 'rejected';
  approver: string;
  role: string;
  decided_at: string;
  decided_at_us: number;
  reason: string;
  note?: string;
  policy_snapshot: string;
  job_hash: string;
  rule_id: string;
  decision: 'REQUIRE_APPROVAL';
  state_after: string;
  dlq: { reason_code: string; reason?: string; status?: string; created_at: string } | null;
}

interface PolicyChangeEvidence {
  audit_id: string;
  action: 'publish' | 'rollback';
  actor_id: string;
  role: string;
  bundle_ids: string[];
  snapshot_before: string;
  snapshot_after: string;
  created_at: string;
  kernel_snapshot?: string;
}

interface Evidence {
  workflow: WorkflowApprovalEvidence[];
  jobs: JobApprovalEvidence[];
  policy: PolicyChangeEvidence[];
  notCovered: { section: 'workflow_approvals' | 'job_approvals' | 'policy_changes'; reason: string }[];
}

const EVIDENCE = stateSlot<Evidence>('evidence');

function evidence(ctx: RunContext): Evidence {
  return EVIDENCE.getOrInit(ctx, () => ({ workflow: [], jobs: [], policy: [], notCovered: [] }));
}

interface RuleState {
  before: policyBundles.BundleSnapshotState;
  kernelWithRule: string;
  publish: PublishResponse;
  rollback?: RollbackResponse;
  kernelAfterRollback?: string;
}

const RULE = stateSlot<RuleState>('rule');
/** Why the rule was not installed (the target allows no destructive drills). */
const RULE_SKIPPED = stateSlot<string>('ruleSkipped');
const WORKFLOW_CREATED = stateSlot<boolean>('workflow');

function requireRule(ctx: RunContext): RuleState {
  const r = RULE.get(ctx);
  if (!r) ctx.skip(RULE_SKIPPED.get(ctx) ?? 'the temporary approval rule was not installed');
  return r!;
}

// ---------------------------------------------------------------------------------------------
// Workflow approvals

async function ensureWorkflow(ctx: RunContext): Promise<string> {
  const n = names(ctx);
  if (WORKFLOW_CREATED.get(ctx)) return n.workflowId;
  const gw = ctx.gateway();
  ctx.teardown.add(`workflow ${n.workflowId}`, undo.workflow(n.workflowId));
  await ctx.step(`Create workflow ${n.workflowId} with one approval step`, () =>
    gw.createWorkflow({ id: n.workflowId, name: `${ctx.prefix} audit-trail approval`, steps: { [STEP_ID]: { type: 'approval', name: 'Approve' } } }),
  );
  WORKFLOW_CREATED.set(ctx, true);
  return n.workflowId;
}

async function decideRun(ctx: RunContext, approved: boolean): Promise<void> {
  const gw = ctx.gateway();
  const wfId = await ensureWorkflow(ctx);
  const { run_id: runId } = await ctx.step('Start a run', () => gw.startRun(wfId, { runbook: ctx.prefix }));
  ctx.teardown.add(`run ${runId}`, undo.run(runId));
  await ctx.step('The run waits for approval', () =>
    waitFor(`run ${runId} to be waiting on step ${STEP_ID}`, () => gw.getRun(runId), (r) => r.status === 'waiting' && r.steps?.[STEP_ID]?.status === 'waiting', {
      timeoutMs: 5_000,
      signal: ctx.signal,
    }),
  );
  await ctx.step(`${approved ? 'Approve' : 'Reject'} step ${STEP_ID}`, () =>
    retryOn409(() => gw.approveStep(wfId, runId, STEP_ID, approved), { signal: ctx.signal }),
  );
  const want = approved ? 'succeeded' : 'failed';
  let run: WorkflowRun;
  try {
    run = await ctx.step(`The run ends ${want}`, () =>
      waitFor(`run ${runId} to end ${want}`, () => gw.getRun(runId), (r) => ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(r.status), { timeoutMs: 10_000, signal: ctx.signal }),
    );
  } catch (err) {
    if (err instanceof WaitTimeoutError) fail(`the run did not finish after the step was ${approved ? 'approved' : 'rejected'} (answered 204): ${err.message}`);
    throw err;
  }
  if (run.status !== want) fail(`expected run ${runId} to end ${want} after ${approved ? 'approval' : 'rejection'}; it ended ${run.status} (error ${compactJson(run.error)})`);

  const events = await ctx.step('Read the run timeline', () => gw.timeline(runId, 200));
  await ctx.evidence.json(`timeline of run ${runId}`, events);
  const expected: ExpectedEvent[] = [
    { type: 'step_waiting', step_id: STEP_ID, status: 'waiting' },
    { type: 'run_status', status: 'waiting' },
    { type: approved ? 'step_approved' : 'step_rejected', step_id: STEP_ID, status: want },
    { type: 'run_status', status: want },
  ];
  const matches = await ctx.step('The timeline holds the documented events in order', () => {
    try {
      return assertTimeline(events as TimelineEvent[] as never, expected, { every: { run_id: (v) => v === undefined || v === '' || v === runId } });
    } catch (err) {
      return fail(`run ${runId} timeline: ${(err as Error).message}`);
    }
  });
  const final = lastStatus(events as never);
  if (final !== run.status) fail(`run ${runId} reports status ${run.status}, but its last run_status timeline event says ${JSON.stringify(final ?? null)}`);

  // Documented for real Cordum: workflow approval steps record no approver identity anywhere.
  // Only the approval step's record and its decision event count: the run's triggered_by names
  // who started the run, not who approved.
  const principal = ctx.target.gateway.principal?.id;
  const decided = matches[2]!.event;
  const recorded = principal ? JSON.stringify([run.steps?.[STEP_ID] ?? null, decided]).includes(principal) : false;
  evidence(ctx).workflow.push({
    workflow_id: wfId,
    run_id: runId,
    step_id: STEP_ID,
    outcome: approved ? 'approved' : 'rejected',
    decided_at: String(decided.time),
    run_status: run.status,
    approver: recorded ? principal! : null,
    timeline: (events as TimelineEvent[]).map((e) => ({
      time: e.time,
      type: e.type,
      ...(e.step_id ? { step_id: e.step_id } : {}),
      ...(e.status ? { status: e.status } : {}),
      ...(e.message ? { message: e.message } : {}),
    })),
  });
  if (approved) {
    ctx.finding(
      !principal
        ? { id: 'workflow-approval-identity-unchecked', severity: 'warn', title: 'Workflow approver identity not checked', detail: `target '${ctx.target.name}' sets no gateway.principal.id, so there was no identity to look for in run ${runId}` }
        : recorded
          ? { id: 'workflow-approval-identity-recorded', severity: 'info', title: 'Workflow approval records the approver', detail: `the principal ${principal} who approved step ${STEP_ID} appears on step ${STEP_ID} of run ${runId} or its ${decided.type} event (documented Cordum records none)` }
          : {
              id: 'workflow-approval-no-identity',
              severity: 'warn',
              title: 'Workflow approval steps record no approver identity',
              detail: `step ${STEP_ID} of run ${runId} was approved by ${principal} (X-Principal-Id), but neither the step record nor its ${decided.type} event says who approved (the run's triggered_by names who started it, not who approved); the only trace is the ${decided.type} event at ${decided.time}. Auditors cannot tell who approved workflow steps; keep that record outside Cordum (change ticket, chat approval)`,
            },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Policy rule (bundle) and job approvals

/** How this run changes policy: its deadlines, its author, its sub-steps in the report. */
function changeOptions(ctx: RunContext) {
  return { reloadIntervalMs: ctx.target.policy.reload_interval_ms, signal: ctx.signal, author: names(ctx).author, phase: ctx.step };
}

function ruleContent(ctx: RunContext): string {
  const n = names(ctx);
  return [
    `# Written by the cordum-runbooks audit-trail drill (${ctx.prefix}); removed by rolling back.`,
    'rules:',
    `  - id: ${n.ruleId}`,
    '    decision: require_approval',
    `    reason: audit-trail drill ${ctx.prefix}`,
    '    match:',
    `      topics: ["${n.topic}"]`,
    '',
  ].join('\n');
}

/** Submit a job on the approval topic, registered for cleanup, and wait until it needs approval. */
async function submitForApproval(ctx: RunContext, label: string): Promise<string> {
  const gw = ctx.gateway();
  const n = names(ctx);
  const { job_id: jobId, trace_id: traceId } = await ctx.step(`Submit a job on ${n.topic} (${label})`, () =>
    gw.submitJob({ prompt: `audit-trail drill ${ctx.prefix}: ${label}`, topic: n.topic }),
  );
  // Registered first so it runs last: the cancel and DLQ delete below may still touch the job.
  ctx.residue(`job ${jobId}`, jobResidueKeys({ jobId, traceId }));
  ctx.teardown.add(`DLQ entry of job ${jobId}`, undo.dlqEntry(jobId));
  ctx.teardown.add(`job ${jobId}`, undo.job(jobId));
  await ctx.step('The job waits for approval (APPROVAL_REQUIRED)', async () => {
    try {
      await waitFor(`job ${jobId} to reach APPROVAL_REQUIRED`, () => gw.getJob(jobId), (j) => j.state === 'APPROVAL_REQUIRED', { timeoutMs: DEADLINE.jobState, signal: ctx.signal });
    } catch (err) {
      if (err instanceof WaitTimeoutError) fail(`the rule ${n.ruleId} is live, yet job ${jobId} never needed approval: ${err.message}`);
      throw err;
    }
  });
  return jobId;
}

/** Check the approval record on a decided job; returns the evidence entry (without dlq/state). */
async function checkApprovalRecord(
  ctx: RunContext,
  jobId: string,
  outcome: 'approved' | 'rejected',
  sent: { reason: string; note: string; startedUs: number; endedUs: number },
): Promise<JobApprovalEvidence> {
  const gw = ctx.gateway();
  const n = names(ctx);
  const rule = requireRule(ctx);
  const job: JobDetail = await ctx.step(`Read job ${jobId}`, () => gw.getJob(jobId));
  const decisions: SafetyDecisionRecord[] = await ctx.step(`Read the decisions of job ${jobId}`, () => gw.jobDecisions(jobId));
  await ctx.evidence.json(`job ${jobId} after ${outcome === 'approved' ? 'approval' : 'rejection'}`, { job, decisions });
  const problems: string[] = [];
  const want = (field: string, got: unknown, expected: unknown, why: string) => {
    if (got !== expected) problems.push(`${field} is ${JSON.stringify(got ?? null)}, expected ${JSON.stringify(expected)} (${why})`);
  };
  want('approval_by', job.approval_by, n.approver.id, 'X-Principal-Id of the approve call');
  want('approval_role', job.approval_role, policyBundles.recordedRole(n.approver.role), 'X-Principal-Role as Cordum records it');
  want('approval_reason', job.approval_reason, sent.reason, 'the reason sent');
  want('approval_policy_snapshot', job.approval_policy_snapshot, rule.kernelWithRule, 'the kernel snapshot that holds the rule');
  const atUs = Number(job.approval_at);
  // The gateway's clock decides approval_at; allow 5 minutes of skew against this machine.
  const skewUs = 5 * 60 * 1_000_000;
  if (!Number.isFinite(atUs) || atUs <= 0) problems.push(`approval_at is ${JSON.stringify(job.approval_at ?? null)}, expected a time in microseconds`);
  else if (atUs < sent.startedUs - skewUs || atUs > sent.endedUs + skewUs) {
    problems.push(`approval_at ${new Date(atUs / 1000).toISOString()} is not within 5 minutes of the ${outcome === 'approved' ? 'approve' : 'reject'} call (${new Date(sent.startedUs / 1000).toISOString()})`);
  }
  const hash = String(job.approval_job_hash ?? '');
  if (!hash) problems.push('approval_job_hash is empty; expected the hash of the request that was approved');
  const d = decisions.find((x) => x.decision === 'REQUIRE_APPROVAL');
  if (!d) problems.push(`the decisions list holds no REQUIRE_APPROVAL decision (it holds ${compactJson(decisions.map((x) => x.decision))})`);
  else {
    if (d.rule_id !== n.ruleId) problems.push(`the REQUIRE_APPROVAL decision names rule ${JSON.stringify(d.rule_id ?? '')}, expected ${n.ruleId}`);
    if (d.policy_snapshot !== rule.kernelWithRule) problems.push(`the REQUIRE_APPROVAL decision has policy_snapshot ${JSON.stringify(d.policy_snapshot ?? '')}, expected ${rule.kernelWithRule}`);
    if (hash && d.job_hash !== hash) problems.push(`the REQUIRE_APPROVAL decision has job_hash ${JSON.stringify(d.job_hash ?? '')}, but the approval record has ${hash}`);
    if (Number.isFinite(atUs) && d.checked_at && atUs < d.checked_at) problems.push(`approval_at ${atUs} is before the decision's checked_at ${d.checked_at}`);
  }
  if (problems.length) fail(`job ${jobId} ${outcome}: the audit record is incomplete: ${problems.join('; ')}`);
  return {
    job_id: jobId,
    topic: n.topic,
    outcome,
    approver: String(job.approval_by),
    role: String(job.approval_role ?? ''),
    decided_at: new Date(Math.floor(atUs / 1000)).toISOString(),
    decided_at_us: atUs,
    reason: String(job.approval_reason ?? ''),
    note: sent.note,
    policy_snapshot: String(job.approval_policy_snapshot),
    job_hash: hash,
    rule_id: d!.rule_id!,
    decision: 'REQUIRE_APPROVAL',
    state_after: String(job.state),
    dlq: null,
  };
}

// ---------------------------------------------------------------------------------------------
// Evidence file

function buildEvidence(ctx: RunContext): Record<string, unknown> {
  const e = evidence(ctx);
  return {
    schema_version: 1,
    runbook: 'audit-trail',
    run_id: ctx.runId,
    target: ctx.target.name,
    gateway: ctx.target.gateway.url,
    generated_at: new Date().toISOString(),
    workflow_approvals: e.workflow,
    job_approvals: e.jobs,
    policy_changes: e.policy,
    not_covered: e.notCovered,
  };
}

function cell(v: unknown): string {
  return String(v ?? '').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function evidenceMarkdown(doc: Record<string, unknown>, e: Evidence): string {
  const lines = [`# Audit evidence: run ${cell(doc.run_id)} on ${cell(doc.target)}`, ''];
  lines.push('## Workflow approval steps', '', '| Workflow | Run | Step | Outcome | Decided at | Run status | Approver recorded |', '|---|---|---|---|---|---|---|');
  for (const w of e.workflow) lines.push(`| ${cell(w.workflow_id)} | ${cell(w.run_id)} | ${cell(w.step_id)} | ${w.outcome} | ${cell(w.decided_at)} | ${cell(w.run_status)} | ${w.approver === null ? '**none (Cordum records no approver)**' : cell(w.approver)} |`);
  lines.push('', '## Job approvals', '', '| Job | Outcome | Approver | Role | Decided at | Reason | Rule | Policy snapshot | Job hash | State after | DLQ |', '|---|---|---|---|---|---|---|---|---|---|---|');
  for (const j of e.jobs) {
    lines.push(`| ${cell(j.job_id)} | ${j.outcome} | ${cell(j.approver)} | ${cell(j.role)} | ${cell(j.decided_at)} | ${cell(j.reason)} | ${cell(j.rule_id)} | ${cell(j.policy_snapshot)} | ${cell(j.job_hash)} | ${cell(j.state_after)} | ${j.dlq ? cell(j.dlq.reason_code) : '-'} |`);
  }
  lines.push('', '## Policy changes', '', '| Action | Actor | Role | Bundles | Snapshot before | Snapshot after | At |', '|---|---|---|---|---|---|---|');
  for (const p of e.policy) lines.push(`| ${p.action} | ${cell(p.actor_id)} | ${cell(p.role)} | ${cell(p.bundle_ids.join(', '))} | ${cell(p.snapshot_before)} | ${cell(p.snapshot_after)} | ${cell(p.created_at)} |`);
  if (e.notCovered.length) {
    lines.push('', '## Not covered by this run', '');
    for (const n of e.notCovered) lines.push(`- ${n.section}: ${n.reason}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------

scenario('Audit trail: approvals and policy changes', (s) => {
  s.step('Approve a workflow approval step and check the run timeline', async (ctx) => {
    await decideRun(ctx, true);
  }, { timeoutMs: DEADLINE.workflow });

  s.step('Reject a workflow approval step and check the run fails', async (ctx) => {
    await decideRun(ctx, false);
  }, { timeoutMs: DEADLINE.workflow, independent: true });

  s.step(INSTALL_RULE, async (ctx) => {
    if (!ctx.target.destructive.allowed) {
      const reason = `job approvals need a temporary policy rule, and target '${ctx.target.name}' does not allow destructive drills (destructive.allowed: false); live policy was left alone`;
      RULE_SKIPPED.set(ctx, reason);
      evidence(ctx).notCovered.push({ section: 'job_approvals', reason }, { section: 'policy_changes', reason });
      ctx.skip(reason);
    }
    const n = names(ctx);
    const gw = ctx.gateway();
    const before = await policyBundles.snapshotBundles(gw, `${ctx.prefix} audit-trail: before`, { phase: ctx.step });
    ctx.teardown.add(n.teardownLabel, policyBundles.rollbackAction(before.snapshotId, { author: n.author, message: `${ctx.prefix}: teardown removed the audit-trail approval rule` }));
    await policyBundles.putDraft(gw, n.bundleId, ruleContent(ctx), false, { ...changeOptions(ctx), message: `${ctx.prefix} audit-trail approval rule` });
    const published = await policyBundles.publishAndWaitForKernel(gw, [n.bundleId], { ...changeOptions(ctx), kernelBefore: before.kernel, message: `${ctx.prefix} audit-trail: require approval on ${n.topic}` });
    const kernelWithRule = published.kernelAfter;
    RULE.set(ctx, { before, kernelWithRule, publish: published.response });
    const d = await ctx.step(`Evaluate ${n.topic}`, () => gw.policyEvaluate({ topic: n.topic }));
    if (d.decision !== 'DECISION_TYPE_REQUIRE_HUMAN' || d.ruleId !== n.ruleId) fail(`the kernel loaded snapshot ${kernelWithRule}, but evaluate for ${n.topic} answers ${d.decision} rule ${JSON.stringify(d.ruleId)}; expected DECISION_TYPE_REQUIRE_HUMAN by ${n.ruleId}`);
  }, { timeoutMs: DEADLINE.install, independent: true });

  s.step('Approve a job and check who, when, why and under which policy', async (ctx) => {
    const rule = requireRule(ctx);
    const gw = ctx.gateway();
    const n = names(ctx);
    const jobId = await submitForApproval(ctx, 'to approve');
    const pending = await ctx.step('The approval queue lists it with its decision', () =>
      waitFor(`job ${jobId} in GET /api/v1/approvals`, async () => ((await gw.approvals({ limit: 1000 })).items ?? []).find((i) => i.job?.id === jobId), (i) => i !== undefined, { timeoutMs: 5_000, signal: ctx.signal }),
    );
    await ctx.evidence.json('approval queue item', pending);
    if (pending!.decision !== 'REQUIRE_APPROVAL' || pending!.policy_rule_id !== n.ruleId || pending!.policy_snapshot !== rule.kernelWithRule) {
      fail(`the approval queue item for ${jobId} says decision ${pending!.decision}, rule ${JSON.stringify(pending!.policy_rule_id ?? '')}, snapshot ${JSON.stringify(pending!.policy_snapshot ?? '')}; expected REQUIRE_APPROVAL by ${n.ruleId} under ${rule.kernelWithRule}`);
    }
    const sent = { reason: `audit-trail drill ${ctx.prefix}: approved`, note: `run ${ctx.runId}`, startedUs: Date.now() * 1000, endedUs: 0 };
    await ctx.step(`Approve as ${n.approver.id} (${n.approver.role}) with a reason`, () => gw.approveJob(jobId, { reason: sent.reason, note: sent.note }, n.approver));
    sent.endedUs = Date.now() * 1000;
    const ev = await checkApprovalRecord(ctx, jobId, 'approved', sent);
    // Approval with a reason adds labels that act as placement constraints (the job may stay
    // PENDING): the audit record is what is asserted, not completion.
    if (ev.state_after === 'APPROVAL_REQUIRED') fail(`job ${jobId} still awaits approval after the approve call answered 200`);
    evidence(ctx).jobs.push(ev);
  }, { timeoutMs: DEADLINE.approveJob, needs: [INSTALL_RULE] });

  s.step('Reject a job and check the record and its dead-letter entry', async (ctx) => {
    requireRule(ctx);
    const gw = ctx.gateway();
    const n = names(ctx);
    const jobId = await submitForApproval(ctx, 'to reject');
    const sent = { reason: `audit-trail drill ${ctx.prefix}: rejected`, note: `run ${ctx.runId}`, startedUs: Date.now() * 1000, endedUs: 0 };
    await ctx.step(`Reject as ${n.approver.id} (${n.approver.role}) with a reason`, () => gw.rejectJob(jobId, { reason: sent.reason, note: sent.note }, n.approver));
    sent.endedUs = Date.now() * 1000;
    await ctx.step('The job is DENIED', () => waitFor(`job ${jobId} to be DENIED`, () => gw.getJob(jobId), (j) => j.state === 'DENIED', { timeoutMs: DEADLINE.jobState, signal: ctx.signal }));
    const ev = await checkApprovalRecord(ctx, jobId, 'rejected', sent);
    let entry: DlqEntry | undefined;
    try {
      entry = await ctx.step('The DLQ holds an approval_rejected entry', () =>
        waitFor(`a DLQ entry for ${jobId}`, async () => (await gw.dlqList(500)).find((e) => e.job_id === jobId), (e) => e !== undefined, { timeoutMs: DEADLINE.jobState, signal: ctx.signal }),
      );
    } catch (err) {
      if (err instanceof WaitTimeoutError) fail(`the rejected job ${jobId} never reached the DLQ: ${err.message}`);
      throw err;
    }
    await ctx.evidence.json('DLQ entry', entry);
    if (entry!.reason_code !== 'approval_rejected') fail(`the DLQ entry for ${jobId} has reason_code ${JSON.stringify(entry!.reason_code ?? '')}, expected approval_rejected`);
    if (entry!.reason !== undefined && !entry!.reason.includes(sent.reason)) fail(`the DLQ entry for ${jobId} gives reason ${JSON.stringify(entry!.reason)}, expected the rejection reason ${JSON.stringify(sent.reason)}`);
    ev.dlq = { reason_code: entry!.reason_code!, ...(entry!.reason ? { reason: entry!.reason } : {}), ...(entry!.status ? { status: entry!.status } : {}), created_at: entry!.created_at };
    evidence(ctx).jobs.push(ev);
  }, { timeoutMs: DEADLINE.rejectJob, needs: [INSTALL_RULE] });

  s.step(REMOVE_RULE, async (ctx) => {
    const rule = requireRule(ctx);
    const gw = ctx.gateway();
    const n = names(ctx);
    const rolledBack = await policyBundles.rollbackAndWait(gw, rule.before.snapshotId, { ...changeOptions(ctx), kernelBefore: rule.before.kernel, message: `${ctx.prefix} audit-trail: remove the approval rule` });
    rule.rollback = rolledBack.response;
    rule.kernelAfterRollback = rolledBack.kernelAfter;
    ctx.teardown.forget(n.teardownLabel);
    const after = await policyBundles.bundleMap(gw);
    const diff = policyBundles.diffBundleMaps(rule.before.bundles, after);
    if (diff) fail(`after the rollback the bundle map differs from the one before the drill: ${diff}`);
  }, { timeoutMs: DEADLINE.remove, needs: [INSTALL_RULE] });

  s.step('The policy audit lists the publish and the rollback', async (ctx) => {
    const rule = requireRule(ctx);
    const n = names(ctx);
    const items = (await ctx.step('Read the policy audit', () => ctx.gateway().policyAudit())).items ?? [];
    const principal = ctx.target.gateway.principal;
    const expect = policyBundles.auditActor(principal);
    const problems: string[] = [];
    const variants: Record<string, string | undefined> = {};
    const pick = (action: 'publish' | 'rollback', resp: { snapshot_before: string; snapshot_after: string }, kernel?: string): void => {
      const { entry: e, variant, problems: own } = policyBundles.checkAuditEntry(items, action, resp, action === 'publish' ? { ...expect, bundleIds: [n.bundleId] } : expect);
      problems.push(...own);
      if (!e) return;
      variants[action] = variant;
      evidence(ctx).policy.push({
        audit_id: e.id,
        action,
        actor_id: e.actor_id ?? '',
        role: e.role ?? '',
        bundle_ids: e.bundle_ids ?? [],
        snapshot_before: e.snapshot_before ?? '',
        snapshot_after: e.snapshot_after ?? '',
        created_at: e.created_at,
        ...(kernel ? { kernel_snapshot: kernel } : {}),
      });
    };
    pick('publish', rule.publish, rule.kernelWithRule);
    if (rule.rollback) pick('rollback', rule.rollback, rule.kernelAfterRollback);
    // How this Cordum spells an empty snapshot (a rollback to an empty map records none) is evidence.
    await ctx.evidence.json('policy audit entries of this run', { entries: evidence(ctx).policy, snapshot_after_variants: variants });
    if (problems.length) fail(problems.join('; '));
  }, { timeoutMs: DEADLINE.audit, needs: [INSTALL_RULE, REMOVE_RULE] });

  s.step('Write the audit evidence file', async (ctx) => {
    const doc = buildEvidence(ctx);
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    const json = JSON.stringify(doc, null, 2) + '\n';
    const path = ctx.writeArtifact('audit-evidence.json', json);
    const md = evidenceMarkdown(doc, evidence(ctx));
    ctx.writeArtifact('audit-evidence.md', md);
    // The same tables in summary.md, under the step table (headings demoted to fit under the run's).
    ctx.summary(md.replace(/^# .*\n/, '**Audit evidence** (`artifacts/audit-evidence.json`)\n').replace(/^## (.+)$/gm, '**$1**'));
    await ctx.evidence.text('audit evidence (table)', md);
    await ctx.evidence.json('audit evidence', doc);
    if (!validate(doc)) {
      fail(`${path} does not validate against helpers/schemas/audit-evidence.schema.json: ${(validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}`);
    }
  }, { timeoutMs: DEADLINE.evidence, independent: true });
});
