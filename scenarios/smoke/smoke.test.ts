// Runbook `smoke` (runbooks/smoke.md): one step per step of the page, deadlines from the page.
// Everything it creates is named with ctx.prefix and registered for teardown before the next call.
import { GatewayClient, GatewayError, type JobDetail, type WorkflowRun } from '../../helpers/gateway.js';
import { startCapWorker, redisResultWriter, type CapWorker } from '../../helpers/cap-worker.js';
import { transcript } from '../../helpers/evidence.js';
import { findSamples, missingFamilies, parseMetrics, sumSamples, type MetricsPage } from '../../helpers/metrics.js';
import { jobResidueKeys } from '../../helpers/residue.js';
import { fail, scenario, stateSlot, type RunContext } from '../../helpers/steps.js';
import { undo } from '../../helpers/undo.js';
import { compactJson, retryOn409, waitFor, WaitTimeoutError } from '../../helpers/waits.js';

/** Deadlines, as documented in runbooks/smoke.md. */
const DEADLINE = {
  liveness: 10_000,
  auth: 5_000,
  workflow: 20_000,
  runSucceeded: 5_000,
  jobs: 10_000,
  handled: 3_000,
  worker: 20_000,
  jobSucceeded: 10_000,
  locks: 10_000,
  gone: 15_000,
};

const GATEWAY_FAMILIES = ['cordum_api_gateway_http_requests_total', 'cordum_api_gateway_http_request_duration_seconds'];
const SCHEDULER_FAMILIES = [
  'cordum_scheduler_jobs_received_total',
  'cordum_scheduler_jobs_dispatched_total',
  'cordum_scheduler_jobs_completed_total',
  'cordum_scheduler_safety_denied_total',
];
const STATUS_ROUTE = { method: 'GET', route: '/api/v1/status' };
const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'DENIED'];
/** Decisions under which the scheduler dispatches (job records drop the DECISION_TYPE_ prefix). */
const DISPATCHING_DECISIONS = ['ALLOW', 'ALLOW_WITH_CONSTRAINTS'];

/** What the steps hand to each other (ctx.state). */
interface Created {
  workflowId?: string;
  runId?: string;
  jobIds: string[];
  lock?: string;
  worker?: CapWorker;
  /** Ids of what a step removed or saw end (deleted run and workflow, released lock, terminal job). */
  removed: Set<string>;
}

const CREATED = stateSlot<Created>('created');
/** The scheduler's metrics page before the run's jobs. */
const SCHEDULER_BEFORE = stateSlot<MetricsPage>('schedulerBefore');

function created(ctx: RunContext): Created {
  return CREATED.getOrInit(ctx, () => ({ jobIds: [], removed: new Set() }));
}

/** Scrape a metrics URL and parse it; a non-200 or unreachable endpoint is a failed check. */
async function scrape(ctx: RunContext, what: string, url: string): Promise<MetricsPage> {
  try {
    return parseMetrics(await ctx.gateway().scrapeMetrics(url));
  } catch (err) {
    const got = err instanceof GatewayError ? `it answered ${err.status} ${JSON.stringify(err.body.trim().slice(0, 120))}` : (err as Error).message;
    fail(`expected ${what} metrics at ${url} to answer 200 with Prometheus text; ${got}`);
  }
}

/**
 * Submit a probe job, registered for cancel and for the keys Cordum keeps forever (its events,
 * result pointer and trace), before anything else can fail.
 */
async function submitProbeJob(ctx: RunContext, body: { prompt: string; topic: string; labels: Record<string, string> }): Promise<string> {
  const { job_id, trace_id } = await ctx.gateway().submitJob(body);
  // Teardown runs in reverse: the cancel (which appends an event) comes before the keys are deleted.
  ctx.residue(`job ${job_id}`, jobResidueKeys({ jobId: job_id, traceId: trace_id }));
  ctx.teardown.add(`job ${job_id}`, undo.job(job_id));
  created(ctx).jobIds.push(job_id);
  return job_id;
}

/**
 * A job the scheduler ran must carry the safety kernel's decision: the decision on the job record
 * (safety_decision, safety_snapshot, safety_rule_id) and the same decision in its decisions list.
 * A scheduler that dispatches without asking the kernel leaves them empty, and then no policy (deny,
 * approval, constraints) applies to the topic. The rule id is evidence, not a requirement: a request
 * that no rule matches is allowed with an empty rule id.
 */
async function checkKernelDecision(ctx: RunContext, job: JobDetail): Promise<void> {
  const decisions = await ctx.gateway().jobDecisions(job.id);
  const seen = { safety_decision: job.safety_decision ?? '', safety_rule_id: job.safety_rule_id ?? '', safety_snapshot: job.safety_snapshot ?? '', safety_reason: job.safety_reason ?? '', decisions };
  await ctx.evidence.json(`safety decision of job ${job.id}`, seen);
  const topic = String(job.topic ?? ctx.target.routing.mapped_topic);
  if (!seen.safety_decision && decisions.length === 0) {
    fail(`job ${job.id} on ${topic} ran (SUCCEEDED) but carries no safety decision: safety_decision, safety_rule_id and safety_snapshot are empty and GET /api/v1/jobs/<id>/decisions is []; the scheduler dispatched it without asking the safety kernel, so policy does not apply to ${topic}`);
  }
  if (!DISPATCHING_DECISIONS.includes(seen.safety_decision)) {
    fail(`job ${job.id} ran, but its safety_decision is ${JSON.stringify(seen.safety_decision)}; expected one the scheduler dispatches on (${DISPATCHING_DECISIONS.join(' or ')})`);
  }
  if (!seen.safety_snapshot) fail(`job ${job.id} carries safety_decision ${seen.safety_decision} but no safety_snapshot: the decision names no policy it was made under`);
  const latest = decisions[0];
  if (!latest) fail(`job ${job.id} carries safety_decision ${seen.safety_decision}, but GET /api/v1/jobs/<id>/decisions is []: the kernel's check was not recorded`);
  if (latest!.decision !== seen.safety_decision || (latest!.policy_snapshot ?? '') !== seen.safety_snapshot) {
    fail(`job ${job.id}: its latest recorded decision (${latest!.decision} under ${JSON.stringify(latest!.policy_snapshot ?? '')}) differs from the job record (${seen.safety_decision} under ${JSON.stringify(seen.safety_snapshot)})`);
  }
  ctx.finding({
    id: 'SMOKE-KERNEL-DECISION',
    severity: 'info',
    title: `The safety kernel allowed the smoke job (${seen.safety_decision})`,
    detail: `rule ${seen.safety_rule_id ? JSON.stringify(seen.safety_rule_id) : '(none: no rule matched, default allow)'} under policy snapshot ${seen.safety_snapshot}; ${decisions.length} recorded check(s)`,
  });
}

/** GET that must answer 404 (the object is gone); returns the body text. */
async function expect404(ctx: RunContext, path: string, what: string): Promise<void> {
  const res = await ctx.gateway().request('GET', path, { expect: [200, 404] });
  if (res.status !== 404) fail(`expected ${what} to be gone (GET ${path} → 404); it answered ${res.status}: ${res.text.slice(0, 200)}`);
}

scenario('Smoke: is this Cordum alive, secured and doing work?', (s) => {
  s.step(
    'Liveness and readiness',
    async (ctx) => {
      const gw = ctx.gateway();
      await ctx.step('gateway /health answers ok', async () => {
        const text = await gw.health();
        if (text !== 'ok') fail(`expected GET /health to answer 'ok'; it answered ${JSON.stringify(text)}`);
      });

      const gatewayMetricsUrl = ctx.target.metrics?.gateway;
      let before: MetricsPage | undefined;
      if (gatewayMetricsUrl) {
        before = await ctx.step('gateway metrics scrape (before the status call)', () => scrape(ctx, 'gateway', gatewayMetricsUrl));
      }

      const status = await ctx.step('/api/v1/status reports Redis and NATS healthy', async () => {
        const st = await gw.status();
        await ctx.evidence.json('platform status (build, redis, nats, workers)', st);
        if (st.redis?.ok !== true) {
          fail(`expected /api/v1/status redis.ok=true; the gateway reports redis.ok=${st.redis?.ok} (error: ${JSON.stringify(st.redis?.error ?? '')})`);
        }
        if (st.nats?.connected !== true) {
          fail(`expected /api/v1/status nats.connected=true; the gateway reports connected=${st.nats?.connected} (status ${JSON.stringify(st.nats?.status)}, url ${st.nats?.url})`);
        }
        if (!st.build?.version) fail(`expected /api/v1/status to report build.version; got build=${compactJson(st.build)}`);
        if (typeof st.workers?.count !== 'number') fail(`expected /api/v1/status to report workers.count as a number; got workers=${compactJson(st.workers)}`);
        return st;
      });
      ctx.finding({
        id: 'SMOKE-BUILD',
        severity: 'info',
        title: `Cordum build ${status.build.version} (${status.build.commit})`,
        detail: `${status.workers.count} worker(s) seen by the gateway; NATS ${status.nats.status} at ${status.nats.url}`,
      });

      const engineUrl = ctx.target.workflow_engine?.health_url;
      if (engineUrl) {
        await ctx.step(`workflow engine ${engineUrl} answers ok`, async () => {
          let text: string;
          try {
            // scrapeMetrics is the client's plain GET for non-API listeners (no key sent).
            text = (await gw.scrapeMetrics(engineUrl)).trim();
          } catch (err) {
            fail(`expected the workflow engine health at ${engineUrl} to answer 200 'ok'; ${(err as Error).message}`);
          }
          if (text !== 'ok') fail(`expected the workflow engine health at ${engineUrl} to answer 'ok'; it answered ${JSON.stringify(text.slice(0, 100))}`);
        });
      } else {
        await ctx.step('workflow engine /health: not checked (profile has no workflow_engine.health_url)', () => undefined);
      }

      if (gatewayMetricsUrl && before) {
        await ctx.step('gateway metrics export Cordum families and count the status call', async () => {
          const after = await scrape(ctx, 'gateway', gatewayMetricsUrl);
          const missing = missingFamilies(after, GATEWAY_FAMILIES);
          if (missing.length) fail(`expected gateway metrics at ${gatewayMetricsUrl} to export ${GATEWAY_FAMILIES.join(', ')}; missing: ${missing.join(', ')}`);
          const b = sumSamples(before, 'cordum_api_gateway_http_requests_total', STATUS_ROUTE);
          const a = sumSamples(after, 'cordum_api_gateway_http_requests_total', STATUS_ROUTE);
          await ctx.evidence.json('cordum_api_gateway_http_requests_total{route="/api/v1/status"}', {
            before: b,
            after: a,
            series: findSamples(after, 'cordum_api_gateway_http_requests_total', STATUS_ROUTE),
          });
          if (!(a > b)) fail(`expected cordum_api_gateway_http_requests_total{method="GET",route="/api/v1/status"} to grow after a status call; it went ${b} → ${a}`);
        });
      } else {
        await ctx.step('gateway metrics: not checked (profile has no metrics.gateway)', () => undefined);
      }

      const schedulerUrl = ctx.target.metrics?.scheduler;
      if (schedulerUrl) {
        await ctx.step('scheduler metrics scrape', async () => {
          const page = await scrape(ctx, 'scheduler', schedulerUrl);
          SCHEDULER_BEFORE.set(ctx, page);
          const missing = missingFamilies(page, SCHEDULER_FAMILIES);
          await ctx.evidence.json('scheduler families', { expected: SCHEDULER_FAMILIES, missing });
          // Go's Prometheus client drops labelled families with no series yet: a scheduler that has
          // handled no job exports none of them. The Jobs step proves the counter moves.
          if (missing.length === SCHEDULER_FAMILIES.length && page.samples.length === 0) {
            fail(`expected scheduler metrics at ${schedulerUrl} to contain samples; the page is empty`);
          }
        });
      } else {
        await ctx.step('scheduler metrics: not checked (profile has no metrics.scheduler)', () => undefined);
      }
    },
    { timeoutMs: DEADLINE.liveness },
  );

  s.step(
    'Auth is enforced',
    async (ctx) => {
      if (!ctx.target.gateway.api_key_env) {
        ctx.skip(`target '${ctx.target.name}' has no gateway.api_key_env: it runs without API keys, so there is no auth to enforce`);
      }
      const cases: { what: string; apiKey: string | null }[] = [
        { what: 'no API key', apiKey: null },
        { what: 'a wrong API key', apiKey: `${ctx.prefix}-not-a-key` },
      ];
      for (const c of cases) {
        await ctx.step(`${c.what} gets 401 unauthorized`, async () => {
          const exchanges: string[] = [];
          const client = new GatewayClient(ctx.target, { apiKey: c.apiKey, onExchange: (ex) => exchanges.push(transcript(ex)) });
          try {
            const res = await client.request('GET', '/api/v1/status', { expect: [200, 401, 403] });
            await ctx.evidence.text(`HTTP GET /api/v1/status with ${c.what} → ${res.status}`, exchanges.join('\n\n'));
            if (res.status !== 401 || res.text.trim() !== 'unauthorized') {
              fail(`expected GET /api/v1/status with ${c.what} to answer 401 'unauthorized'; it answered ${res.status} ${JSON.stringify(res.text.trim().slice(0, 120))}`);
            }
          } finally {
            await client.close();
          }
        });
      }
    },
    { timeoutMs: DEADLINE.auth, independent: true },
  );

  s.step(
    'Workflow round trip',
    async (ctx) => {
      const gw = ctx.gateway();
      const c = created(ctx);
      const wfId = `${ctx.prefix}-smoke-approval`;
      await ctx.step(`create approval workflow ${wfId}`, async () => {
        ctx.teardown.add(`workflow ${wfId}`, undo.workflow(wfId));
        const res = await gw.createWorkflow({ id: wfId, name: wfId, description: 'runbook smoke: one approval step', steps: { approve: { type: 'approval', name: 'Approve' } } });
        if (res.id !== wfId) fail(`expected POST /api/v1/workflows to keep id ${wfId}; it answered id ${res.id}`);
        c.workflowId = wfId;
      });

      const runId = await ctx.step('start a run', async () => {
        const { run_id } = await gw.startRun(wfId, { runbook: ctx.prefix });
        ctx.teardown.add(`run ${run_id}`, undo.run(run_id));
        c.runId = run_id;
        return run_id;
      });

      await ctx.step('the run is waiting on the approval step', async () => {
        const run = await gw.getRun(runId);
        if (run.status !== 'waiting' || run.steps?.approve?.status !== 'waiting') {
          fail(`expected run ${runId} to be 'waiting' with step approve 'waiting' right after start; it is '${run.status}' with approve '${run.steps?.approve?.status}'`);
        }
      });

      await ctx.step('approve with {"approved": true} (retrying 409 busy)', () =>
        retryOn409(() => gw.approveStep(wfId, runId, 'approve', true), { timeoutMs: 8_000, signal: ctx.signal }),
      );

      await ctx.step('the run succeeds', async () => {
        let run: WorkflowRun;
        try {
          run = await waitFor(`run ${runId} to finish`, () => gw.getRun(runId), (r) => r.status !== 'waiting' && r.status !== 'running' && r.status !== 'pending', {
            timeoutMs: DEADLINE.runSucceeded,
            signal: ctx.signal,
          });
        } catch (err) {
          if (!(err instanceof WaitTimeoutError)) throw err;
          const last = err.lastValue as WorkflowRun | undefined;
          fail(
            `run stayed '${last?.status ?? 'unknown'}' after approve (204): expected 'succeeded' within ${DEADLINE.runSucceeded} ms; step approve is '${last?.steps?.approve?.status ?? 'unknown'}'`,
          );
        }
        await ctx.evidence.json('run after approve', run);
        if (run.status !== 'succeeded') fail(`expected run ${runId} to be 'succeeded' after approve (204); it ended '${run.status}' (error: ${compactJson(run.error)})`);
      });

      await ctx.step('timeline has step_waiting, run_status waiting, step_approved, run_status succeeded in order', async () => {
        const events = await gw.timeline(runId);
        await ctx.evidence.json('timeline', events);
        const want = [
          { type: 'step_waiting', step_id: 'approve', status: 'waiting' },
          { type: 'run_status', status: 'waiting' },
          { type: 'step_approved', step_id: 'approve', status: 'succeeded' },
          { type: 'run_status', status: 'succeeded' },
        ];
        let i = 0;
        for (const e of events) {
          const w = want[i];
          if (w && e.type === w.type && e.status === w.status && (!w.step_id || e.step_id === w.step_id)) i++;
        }
        if (i < want.length) {
          const seen = events.map((e) => `${e.type}${e.status ? `(${e.status})` : ''}`).join(', ') || 'no events';
          fail(`expected the timeline to contain ${want.map((w) => `${w.type}(${w.status})`).join(', ')} in order; missing from '${want[i]!.type}(${want[i]!.status})' on; it has: ${seen}`);
        }
      });

      await ctx.step('delete the run and the workflow; both are 404 afterwards', async () => {
        await gw.deleteRun(runId);
        ctx.teardown.forget(`run ${runId}`);
        await gw.deleteWorkflow(wfId);
        ctx.teardown.forget(`workflow ${wfId}`);
        c.removed.add(runId).add(wfId);
        await expect404(ctx, `/api/v1/workflow-runs/${encodeURIComponent(runId)}`, `run ${runId}`);
        await expect404(ctx, `/api/v1/workflows/${encodeURIComponent(wfId)}`, `workflow ${wfId}`);
      });
    },
    { timeoutMs: DEADLINE.workflow, independent: true },
  );

  s.step(
    'Jobs',
    async (ctx) => {
      const gw = ctx.gateway();
      const c = created(ctx);
      const topic = ctx.target.routing.mapped_topic;

      // Every job label except a few system keys is a hard placement constraint, so a label no live
      // worker advertises keeps the job PENDING even when real workers serve this topic.
      const pendingLabels = { runbook_probe: `${ctx.prefix}-pending` };
      const pendingId = await ctx.step(`submit a job on ${topic} that no worker can take`, () => submitProbeJob(ctx, { prompt: `runbook smoke ${ctx.prefix}: placement probe`, topic, labels: pendingLabels }));

      await ctx.step('the scheduler handled it and it stays PENDING', async () => {
        // Right after submit every job reads PENDING: wait (briefly) until the scheduler has handled
        // it (its safety decision is recorded) or moved it on, so an unmapped or denied topic is seen.
        let job: JobDetail;
        try {
          job = await waitFor(`the scheduler to handle job ${pendingId}`, () => gw.getJob(pendingId), (j) => j.state !== 'PENDING' || !!j.safety_decision, {
            timeoutMs: DEADLINE.handled,
            signal: ctx.signal,
          });
        } catch (err) {
          if (!(err instanceof WaitTimeoutError)) throw err;
          job = err.lastValue as JobDetail;
        }
        if (job?.state !== 'PENDING') fail(`expected job ${pendingId} (labels ${compactJson(pendingLabels)}) to stay PENDING; it is ${job?.state}`);
      });

      await ctx.step('cancel → CANCELLED; cancel again → 200, still CANCELLED', async () => {
        const first = await gw.cancelJob(pendingId);
        // The scheduler routes a job right after it records the safety decision, so a job that fails
        // routing (no_pool_mapping) can read PENDING with its decision and be FAILED a moment later:
        // a cancel that finds it terminal means it did not stay PENDING, which is the finding.
        if (first.state !== 'CANCELLED' && first.state !== undefined && first.state !== 'PENDING') {
          fail(`expected job ${pendingId} (labels ${compactJson(pendingLabels)}) to stay PENDING; it is ${first.state} (the cancel answered ${compactJson(first)})`);
        }
        if (first.state !== 'CANCELLED') fail(`expected cancel of PENDING job ${pendingId} to answer state CANCELLED; it answered ${compactJson(first)}`);
        const job = await gw.getJob(pendingId);
        if (job.state !== 'CANCELLED') fail(`expected job ${pendingId} to read back CANCELLED after cancel; it is ${job.state}`);
        // What on-call relies on: a repeated cancel is harmless (200) and the job stays CANCELLED.
        // The reason is an incidental detail: real Cordum sends none for a job that is already
        // CANCELLED (older documents said "job already terminal"). Which one came back is evidence.
        const again = await gw.cancelJob(pendingId);
        const variant = again.reason === undefined || again.reason === '' ? 'no reason (as real Cordum answers for an already CANCELLED job)' : `reason ${JSON.stringify(again.reason)}`;
        await ctx.evidence.json('second cancel (variant seen)', { response: again, variant });
        if (again.state !== 'CANCELLED') fail(`expected a second cancel of CANCELLED job ${pendingId} to answer 200 with state CANCELLED; it answered ${compactJson(again)}`);
        const after = await gw.getJob(pendingId);
        if (after.state !== 'CANCELLED') fail(`expected job ${pendingId} to stay CANCELLED after a second cancel; it is ${after.state}`);
        ctx.teardown.forget(`job ${pendingId}`);
        c.removed.add(pendingId);
      });
    },
    { timeoutMs: DEADLINE.jobs, independent: true },
  );

  s.step(
    'A CAP worker completes a job the safety kernel allowed',
    async (ctx) => {
      const gw = ctx.gateway();
      const c = created(ctx);
      const { mapped_topic: topic, pool } = ctx.target.routing;
      const schedulerUrl = ctx.target.metrics?.scheduler;
      const receivedBefore = schedulerUrl ? sumSamples(await scrape(ctx, 'scheduler', schedulerUrl), 'cordum_scheduler_jobs_received_total', { topic }) : 0;

      const workLabels = { runbook_probe: `${ctx.prefix}-work` };
      const result = { runbook: 'smoke', prefix: ctx.prefix, answer: 42 };
      const worker = await ctx.step(`attach the runbook's CAP worker to pool ${pool}`, async () => {
        const bus = await ctx.bus();
        const redis = ctx.target.redis ? await ctx.redis() : undefined;
        const w = await startCapWorker(bus, {
          workerId: `${ctx.prefix}-smoke-worker`,
          pool,
          labels: workLabels,
          behaviour: { mode: 'succeed', result },
          writeResult: redis ? redisResultWriter(redis) : undefined,
        });
        ctx.teardown.add(`worker ${w.id}`, { kind: 'local', run: () => w.stop() });
        c.worker = w;
        return w;
      });

      const workId = await ctx.step('submit a job only this worker can take', () => submitProbeJob(ctx, { prompt: `runbook smoke ${ctx.prefix}: work`, topic, labels: workLabels }));

      const done = await ctx.step('it completes SUCCEEDED', async () => {
        let job: JobDetail;
        try {
          job = await waitFor(`job ${workId} to finish`, () => gw.getJob(workId), (j) => TERMINAL.includes(j.state), {
            timeoutMs: DEADLINE.jobSucceeded,
            signal: ctx.signal,
          });
        } catch (err) {
          if (!(err instanceof WaitTimeoutError)) throw err;
          const last = err.lastValue as JobDetail | undefined;
          const got = worker.jobs().some((j) => j.job_id === workId) ? 'the worker received it' : 'the worker never received it';
          fail(`expected job ${workId} to be SUCCEEDED within ${DEADLINE.jobSucceeded} ms; it is still ${last?.state ?? 'unknown'} and ${got}`);
        }
        await ctx.evidence.json(`job ${workId}`, job);
        c.removed.add(workId);
        if (job.state !== 'SUCCEEDED') fail(`expected job ${workId} to be SUCCEEDED; it ended ${job.state} (${job.error_code ?? ''} ${job.error_message ?? ''})`);
        return job;
      });

      await ctx.step('the scheduler asked the safety kernel before dispatching it', () => checkKernelDecision(ctx, done));

      if (ctx.target.redis) {
        ctx.teardown.add(`result res:${workId}`, { kind: 'redis', command: ['DEL', `res:${workId}`] });
        await ctx.step('its result is readable through GET /api/v1/memory?ptr=redis://res:<id>', async () => {
          const ptr = `redis://res:${workId}`;
          if (done.result_ptr !== ptr) fail(`expected job ${workId} result_ptr ${ptr}; it is ${JSON.stringify(done.result_ptr)}`);
          const mem = await gw.memory(ptr);
          await ctx.evidence.json('memory response', mem);
          if (mem.kind !== 'result' || compactJson(mem.json) !== compactJson(result)) {
            fail(`expected GET /api/v1/memory?ptr=${ptr} to return kind 'result' with ${compactJson(result)}; it returned kind '${mem.kind}' with ${compactJson(mem.json ?? mem.text)}`);
          }
        });
      } else {
        await ctx.step('result pointer: not checked (profile has no redis section, the worker cannot store a result)', () => undefined);
      }

      if (schedulerUrl) {
        await ctx.step(`scheduler counted the job in cordum_scheduler_jobs_received_total{topic="${topic}"}`, async () => {
          const after = await scrape(ctx, 'scheduler', schedulerUrl);
          const n = sumSamples(after, 'cordum_scheduler_jobs_received_total', { topic });
          const missing = missingFamilies(after, ['cordum_scheduler_jobs_received_total', 'cordum_scheduler_jobs_dispatched_total', 'cordum_scheduler_jobs_completed_total']);
          await ctx.evidence.json('scheduler counters', { received_before: receivedBefore, received_after: n, missing_families: missing });
          if (missing.length) fail(`expected scheduler metrics at ${schedulerUrl} to export ${missing.join(', ')} after handling jobs; they are missing`);
          if (!(n >= receivedBefore + 1)) fail(`expected cordum_scheduler_jobs_received_total{topic="${topic}"} to grow by at least 1 (one job run); it went ${receivedBefore} → ${n}`);
        });
      }

      await ctx.step('stop the worker', async () => {
        await worker.stop();
        ctx.teardown.forget(`worker ${worker.id}`);
      });
    },
    { timeoutMs: DEADLINE.worker, independent: true },
  );

  s.step(
    'Locks and artifacts round trip',
    async (ctx) => {
      const gw = ctx.gateway();
      const resource = `${ctx.prefix}-smoke-lock`;
      const owner = `${ctx.prefix}-owner-a`;
      const other = `${ctx.prefix}-owner-b`;
      created(ctx).lock = resource;
      await ctx.step('acquire', async () => {
        ctx.teardown.add(`lock ${resource}`, undo.lock(resource, owner));
        const lock = await gw.lockAcquire({ resource, owner, ttl_ms: 30_000 });
        if (!lock.owners?.[owner]) fail(`expected the acquired lock to list owner ${owner}; it lists ${compactJson(lock.owners)}`);
      });
      await ctx.step('acquire as another owner → 409', async () => {
        const res = await gw.request('POST', '/api/v1/locks/acquire', { body: { resource, owner: other, ttl_ms: 30_000 }, expect: [200, 409] });
        if (res.status !== 409) {
          ctx.teardown.add(`lock ${resource} (${other})`, undo.lock(resource, other));
          fail(`expected acquiring ${resource} as ${other} while ${owner} holds it to answer 409 'lock unavailable'; it answered ${res.status} ${res.text.slice(0, 200)}`);
        }
      });
      await ctx.step('renew', async () => {
        await gw.lockRenew({ resource, owner, ttl_ms: 30_000 });
      });
      await ctx.step('release → released: true; GET → 404', async () => {
        const rel = await gw.lockRelease({ resource, owner });
        if (rel.released !== true || rel.lock !== null) fail(`expected release by the sole owner to answer released:true and lock:null; it answered ${compactJson(rel)}`);
        ctx.teardown.forget(`lock ${resource}`);
        created(ctx).removed.add(resource);
        const res = await gw.request('GET', '/api/v1/locks', { query: { resource }, expect: [200, 404] });
        if (res.status !== 404) fail(`expected GET /api/v1/locks?resource=${resource} to answer 404 after release; it answered ${res.status} ${res.text.slice(0, 200)}`);
      });

      const content = `runbook smoke ${ctx.prefix}: artifact round trip ✓ ${new Date().toISOString()}`;
      await ctx.step('put an artifact and read it back by its encoded pointer; bytes equal', async () => {
        const put = await gw.putArtifact({ content, content_type: 'text/plain', retention: 'short', labels: { runbook: 'smoke', prefix: ctx.prefix } });
        const m = /^redis:\/\/(art:.+)$/.exec(put.artifact_ptr);
        if (ctx.target.redis && m) ctx.teardown.add(`artifact ${put.artifact_ptr}`, { kind: 'redis', command: ['DEL', m[1]!, m[1]!.replace(/^art:/, 'art:meta:')] });
        if (!m) fail(`expected POST /api/v1/artifacts to return a redis://art:<uuid> pointer; it returned ${JSON.stringify(put.artifact_ptr)}`);
        const got = await gw.getArtifact(put.artifact_ptr);
        const bytes = Buffer.from(got.content_base64 ?? '', 'base64');
        if (!bytes.equals(Buffer.from(content, 'utf8'))) {
          fail(`expected the artifact read back from ${put.artifact_ptr} to equal the ${Buffer.byteLength(content)} bytes written; got ${bytes.length} bytes: ${JSON.stringify(bytes.toString('utf8').slice(0, 100))}`);
        }
      });
    },
    { timeoutMs: DEADLINE.locks, independent: true },
  );

  s.step(
    'Everything it created is gone',
    async (ctx) => {
      const gw = ctx.gateway();
      const c = created(ctx);
      if (c.worker) {
        await ctx.step('the worker is stopped', async () => {
          await c.worker!.stop();
          ctx.teardown.forget(`worker ${c.worker!.id}`);
        });
      }
      // Only what a step removed (or finished with) is checked here; what a failed step left is
      // teardown's to remove, and its failure is already that step's finding.
      const removed = c.removed;
      const leftToTeardown = [
        ...(c.runId && !removed.has(c.runId) ? [`run ${c.runId}`] : []),
        ...(c.workflowId && !removed.has(c.workflowId) ? [`workflow ${c.workflowId}`] : []),
        ...(c.lock && !removed.has(c.lock) ? [`lock ${c.lock}`] : []),
        ...c.jobIds.filter((id) => !removed.has(id)).map((id) => `job ${id}`),
      ];
      if (leftToTeardown.length) await ctx.evidence.json('left to teardown by a failed step (not checked here)', leftToTeardown);
      if (c.runId && removed.has(c.runId)) await ctx.step(`run ${c.runId} is 404`, () => expect404(ctx, `/api/v1/workflow-runs/${encodeURIComponent(c.runId!)}`, `run ${c.runId}`));
      if (c.workflowId && removed.has(c.workflowId)) await ctx.step(`workflow ${c.workflowId} is 404`, () => expect404(ctx, `/api/v1/workflows/${encodeURIComponent(c.workflowId!)}`, `workflow ${c.workflowId}`));
      await ctx.step('no workflow named with the prefix is listed', async () => {
        const res = await gw.request<{ id: string; name?: string }[] | null>('GET', '/api/v1/workflows', { expect: 200 });
        const pending = c.workflowId && !removed.has(c.workflowId) ? c.workflowId : undefined;
        const left = (res.json ?? []).filter((w) => w.id !== pending && (w.id.startsWith(ctx.prefix) || (w.name ?? '').startsWith(ctx.prefix)));
        if (left.length) fail(`expected no workflow named ${ctx.prefix}*; still listed: ${left.map((w) => w.id).join(', ')}`);
      });
      if (c.lock && removed.has(c.lock)) await ctx.step(`lock ${c.lock} is 404`, () => expect404(ctx, `/api/v1/locks?resource=${encodeURIComponent(c.lock!)}`, `lock ${c.lock}`));
      await ctx.step('every job a step finished with is terminal (jobs cannot be deleted; their records expire with JOB_META_TTL)', async () => {
        for (const id of c.jobIds.filter((j) => removed.has(j))) {
          const job = await gw.getJob(id);
          if (!TERMINAL.includes(job.state)) fail(`expected job ${id} to be terminal; it is ${job.state}`);
          ctx.teardown.forget(`job ${id}`);
        }
      });
    },
    { timeoutMs: DEADLINE.gone, independent: true },
  );
});
