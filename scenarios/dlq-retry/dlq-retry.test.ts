// Runbook `dlq-retry` (runbooks/dlq-retry.md): inject failures through Cordum's own interfaces,
// follow each one to the DLQ (NATS packet first, then the API), retry it, prove recovery. One step
// per step of the page; every wait uses the deadline written there.
import type { PacketSubscription, ReceivedPacket, ConsumerCounters } from '../../helpers/bus.js';
import { JobStatus } from '../../helpers/cap/codec.js';
import { redisResultWriter, startCapWorker, type CapWorker, type CapWorkerOptions, type JobRequest } from '../../helpers/cap-worker.js';
import { paths, type DlqEntry, type JobDetail, type TimelineEvent, type WorkflowRun } from '../../helpers/gateway.js';
import { jobResidueKeys } from '../../helpers/residue.js';
import { fail, scenario, stateSlot, type RunContext } from '../../helpers/steps.js';
import { undo } from '../../helpers/undo.js';
import { compactJson, waitFor, WaitTimeoutError } from '../../helpers/waits.js';

/** Step deadlines and the waits inside them, as documented in runbooks/dlq-retry.md. */
const DEADLINE = {
  worker: 10_000,
  inject: 16_000,
  retry: 25_000,
  workflow: 25_000,
  jetstream: 10_000,
  cleanup: 20_000,
};
const WAIT = {
  packet: 5_000, // a sys.job.dlq packet after the injection
  state: 5_000, // a job state change visible through the API
  entry: 5_000, // the DLQ entry listed by GET /api/v1/dlq and /dlq/page
  running: 5_000, // the silent worker's job reaches RUNNING
  retryDispatch: 8_000, // a retried job completes once a worker advertises its labels
  run: 15_000, // the workflow run with two failed attempts and 1 s + 2 s backoff succeeds
  settle: 5_000, // JetStream counters back at their baseline
};

const TERMINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'DENIED'];
const TERMINAL_RUN = ['succeeded', 'failed', 'cancelled', 'timed_out'];
const CONSUMERS = { stream: 'CORDUM_SYS', durables: ['dur_cordum-scheduler__sys_job_submit', 'dur_cordum-scheduler__sys_job_result'] };
const LIST_LIMIT = 500;
const STEP_ID = 'work';

type Kind = 'unmapped' | 'worker-failed' | 'forged';

interface Injected {
  kind: Kind;
  jobId: string;
  topic: string;
  reasonCode: string;
}

interface Shared {
  workerA: CapWorker;
  labels: Record<string, string>;
  workers: CapWorker[];
  injected: Injected[];
  jobIds: string[];
  dlqIds: string[];
  workflowId?: string;
  runId?: string;
  consumersBefore?: Record<string, ConsumerCounters>;
  consumersMissing?: string;
}

const SHARED = stateSlot<Shared>('shared');

function shared(ctx: RunContext): Shared {
  return SHARED.require(ctx, "the runbook's worker was not started (step 'Start the runbook's CAP worker' did not run)");
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Register removal of a job (cancel if still running) and of its DLQ entry. */
function trackJob(ctx: RunContext, s: Shared, jobId: string, traceId?: string): void {
  s.jobIds.push(jobId);
  s.dlqIds.push(jobId);
  // Registered first so it runs last: the cancel below may still append to the job's events.
  ctx.residue(`job ${jobId}`, jobResidueKeys({ jobId, traceId }));
  ctx.teardown.add(`job ${jobId}`, undo.job(jobId));
  ctx.teardown.add(`dlq ${jobId}`, undo.dlqEntry(jobId));
  // The runbook's workers store successful results at res:<id>; jobs themselves cannot be deleted.
  if (ctx.target.redis) ctx.teardown.add(`result res:${jobId}`, { kind: 'redis', command: ['DEL', `res:${jobId}`] });
}

async function startWorker(ctx: RunContext, s: Pick<Shared, 'workers'>, opts: Omit<CapWorkerOptions, 'pool' | 'writeResult'>): Promise<CapWorker> {
  const bus = await ctx.bus();
  const redis = ctx.target.redis ? await ctx.redis() : undefined;
  const w = await startCapWorker(bus, { ...opts, pool: ctx.target.routing.pool, writeResult: redis ? redisResultWriter(redis) : undefined });
  ctx.teardown.add(`worker ${w.id}`, { kind: 'local', run: () => w.stop() });
  s.workers.push(w);
  return w;
}

async function packetEvidence(ctx: RunContext, rp: ReceivedPacket): Promise<void> {
  await ctx.evidence.json(`NATS ${rp.subject} packet for ${rp.packet.job_result?.job_id}`, {
    subject: rp.subject,
    received_at: new Date(rp.receivedAt).toISOString(),
    packet: rp.packet,
  });
}

/** The sys.job.dlq packet for jobId (the subscription was opened before the injection). */
async function dlqPacket(ctx: RunContext, sub: PacketSubscription, jobId: string, why: string): Promise<ReceivedPacket> {
  try {
    const rp = await sub.next((p) => p.packet.job_result?.job_id === jobId, { timeoutMs: WAIT.packet, what: `the DLQ packet for job ${jobId}` });
    await packetEvidence(ctx, rp);
    return rp;
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    fail(`expected a JobResult for ${jobId} on sys.job.dlq within ${WAIT.packet} ms (${why}); none came: ${err.message}`);
  }
}

async function jobState(ctx: RunContext, jobId: string, want: string[]): Promise<JobDetail> {
  try {
    return await waitFor(`job ${jobId} to be ${want.join(' or ')}`, () => ctx.gateway().getJob(jobId), (j) => want.includes(j.state), {
      timeoutMs: WAIT.state,
      signal: ctx.signal,
    });
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    const last = err.lastValue as JobDetail | undefined;
    fail(`expected job ${jobId} to be ${want.join(' or ')} within ${WAIT.state} ms; it is ${last?.state ?? `unreadable (${(err.lastError as Error)?.message})`}`);
  }
}

/** Wait until jobId is listed by both GET /api/v1/dlq and GET /api/v1/dlq/page; returns the entry. */
async function dlqEntry(ctx: RunContext, jobId: string, packetAt: number): Promise<DlqEntry> {
  const gw = ctx.gateway();
  try {
    const found = await waitFor(
      `DLQ entry ${jobId} in /api/v1/dlq and /api/v1/dlq/page`,
      async () => {
        const [list, page] = await Promise.all([gw.dlqList(LIST_LIMIT), gw.dlqPage({ limit: LIST_LIMIT })]);
        return { list: list.find((e) => e.job_id === jobId), page: (page.items ?? []).find((e) => e.job_id === jobId) };
      },
      (r) => !!r.list && !!r.page,
      { timeoutMs: WAIT.entry, signal: ctx.signal },
    );
    await ctx.evidence.json(`DLQ entry ${jobId}`, found.list);
    return found.list!;
  } catch (err) {
    if (!(err instanceof WaitTimeoutError)) throw err;
    const last = err.lastValue as { list?: DlqEntry; page?: DlqEntry } | undefined;
    const where = !last ? 'neither endpoint answered' : !last.list && !last.page ? 'neither GET /api/v1/dlq nor /api/v1/dlq/page lists it' : !last.list ? 'GET /api/v1/dlq does not list it' : 'GET /api/v1/dlq/page does not list it';
    fail(
      `the sys.job.dlq packet for ${jobId} arrived ${new Date(packetAt).toISOString()}, but ${where} within ${WAIT.entry} ms: ` +
        `the gateway's DLQ writer (durable consumer dur_sys_job_dlq) did not persist it`,
    );
  }
}

/** Go's omitempty: an absent field, null, 0 and "" are one "empty" value (a build may emit any of them). */
const isEmpty = (v: unknown) => v === undefined || v === null || v === 0 || v === '';

/** `undefined` in `want` means "empty" (omitted or zero), as recorded for attempts of a job never dispatched. */
function checkEntry(entry: DlqEntry, want: Partial<Record<keyof DlqEntry, unknown>>): void {
  const got = (k: string) => (entry as unknown as Record<string, unknown>)[k];
  const wrong = Object.entries(want).filter(([k, v]) => (v === undefined ? !isEmpty(got(k)) : got(k) !== v));
  if (wrong.length) {
    fail(`DLQ entry ${entry.job_id}: expected ${wrong.map(([k, v]) => `${k}=${v === undefined ? '(empty)' : JSON.stringify(v)}`).join(', ')}; it has ${wrong.map(([k]) => `${k}=${JSON.stringify((entry as unknown as Record<string, unknown>)[k])}`).join(', ')}`);
  }
}

/** Common tail of each injection: packet (event), job state, DLQ entry in both listings, fields. */
async function followToDlq(ctx: RunContext, sub: PacketSubscription, inj: Injected, why: string, want: Partial<Record<keyof DlqEntry, unknown>>): Promise<void> {
  const rp = await ctx.step('the sys.job.dlq packet arrives', () => dlqPacket(ctx, sub, inj.jobId, why));
  await ctx.step('the job is FAILED', async () => {
    const job = await jobState(ctx, inj.jobId, ['FAILED']);
    await ctx.evidence.json(`job ${inj.jobId}`, job);
  });
  await ctx.step('the DLQ entry is listed by /api/v1/dlq and /api/v1/dlq/page with the expected fields', async () => {
    const entry = await dlqEntry(ctx, inj.jobId, rp.receivedAt);
    checkEntry(entry, { job_id: inj.jobId, topic: inj.topic, status: 'JOB_STATUS_FAILED', reason_code: inj.reasonCode, last_state: 'FAILED', ...want });
  });
}

function attemptOf(job: JobRequest): number {
  const m = /@(\d+)$/.exec(job.job_id ?? '');
  return m ? Number(m[1]) : 0;
}

async function consumerCounters(ctx: RunContext): Promise<{ counters?: Record<string, ConsumerCounters>; missing?: string }> {
  const bus = await ctx.bus();
  const counters: Record<string, ConsumerCounters> = {};
  for (const d of CONSUMERS.durables) {
    const c = await bus.consumerInfo(CONSUMERS.stream, d);
    if (!c) return { missing: `consumer ${d} does not exist in stream ${CONSUMERS.stream}` };
    counters[d] = c;
  }
  return { counters };
}

scenario('DLQ drill: inject failures, follow them to the DLQ, retry, prove recovery', (s) => {
  s.step(
    "Start the runbook's CAP worker",
    async (ctx) => {
      const labels = { runbook_probe: `${ctx.prefix}-dlq` };
      const workers: CapWorker[] = [];
      const holder = { workers } as Pick<Shared, 'workers'>;
      const workerA = await ctx.step(`worker ${ctx.prefix}-dlq-a heartbeats on pool ${ctx.target.routing.pool} with labels ${compactJson(labels)}`, () =>
        startWorker(ctx, holder, { workerId: `${ctx.prefix}-dlq-a`, labels, behaviour: { mode: 'succeed' } }),
      );
      const sh: Shared = { workerA, labels, workers, injected: [], jobIds: [], dlqIds: [] };
      SHARED.set(ctx, sh);
      await ctx.step('JetStream baseline of the scheduler consumers', async () => {
        const { counters, missing } = await consumerCounters(ctx);
        sh.consumersBefore = counters;
        sh.consumersMissing = missing;
        await ctx.evidence.json('consumer counters before the drill', counters ?? { missing });
      });
    },
    { timeoutMs: DEADLINE.worker },
  );

  s.step(
    'Inject: a job on an unmapped topic (no_pool_mapping)',
    async (ctx) => {
      const sh = shared(ctx);
      const topic = ctx.target.routing.unmapped_topic;
      const sub = (await ctx.bus()).subscribe('sys.job.dlq');
      try {
        const jobId = await ctx.step(`submit a job on ${topic}`, async () => {
          const { job_id, trace_id } = await ctx.gateway().submitJob({ prompt: `runbook dlq-retry ${ctx.prefix}: unmapped`, topic });
          trackJob(ctx, sh, job_id, trace_id);
          return job_id;
        });
        const inj: Injected = { kind: 'unmapped', jobId, topic, reasonCode: 'no_pool_mapping' };
        sh.injected.push(inj);
        // Never scheduled, so the entry carries no attempts.
        await followToDlq(ctx, sub, inj, `${topic} has no pool mapping`, { attempts: undefined });
      } finally {
        sub.stop();
      }
    },
    { timeoutMs: DEADLINE.inject },
  );

  s.step(
    'Inject: the worker fails a job with error code runbook_injected',
    async (ctx) => {
      const sh = shared(ctx);
      const topic = ctx.target.routing.mapped_topic;
      const message = `failed on purpose by runbook dlq-retry (${ctx.prefix})`;
      sh.workerA.setBehaviour({ mode: 'fail', errorCode: 'runbook_injected', errorMessage: message });
      const sub = (await ctx.bus()).subscribe('sys.job.dlq');
      try {
        const jobId = await ctx.step(`submit a job on ${topic} only the runbook's worker can take`, async () => {
          const { job_id, trace_id } = await ctx.gateway().submitJob({ prompt: `runbook dlq-retry ${ctx.prefix}: worker fails`, topic, labels: sh.labels });
          trackJob(ctx, sh, job_id, trace_id);
          return job_id;
        });
        await ctx.step('the worker received it and answered FAILED', async () => {
          const job = await sh.workerA.waitForJob((j) => j.job_id === jobId, { timeoutMs: WAIT.state });
          await ctx.evidence.json(`job request ${jobId} as received by the worker`, job);
        });
        const inj: Injected = { kind: 'worker-failed', jobId, topic, reasonCode: 'runbook_injected' };
        sh.injected.push(inj);
        await followToDlq(ctx, sub, inj, 'the worker answered FAILED', { reason: message, attempts: 1 });
      } finally {
        sub.stop();
      }
    },
    { timeoutMs: DEADLINE.inject },
  );

  s.step(
    'Inject: a forged failing JobResult for a running job',
    async (ctx) => {
      const sh = shared(ctx);
      const topic = ctx.target.routing.mapped_topic;
      const bus = await ctx.bus();
      sh.workerA.setBehaviour({ mode: 'silent' });
      const sub = bus.subscribe('sys.job.dlq');
      try {
        const jobId = await ctx.step(`submit a job on ${topic}; the worker takes it and stays silent`, async () => {
          const { job_id, trace_id } = await ctx.gateway().submitJob({ prompt: `runbook dlq-retry ${ctx.prefix}: forged result`, topic, labels: sh.labels });
          trackJob(ctx, sh, job_id, trace_id);
          await sh.workerA.waitForJob((j) => j.job_id === job_id, { timeoutMs: WAIT.running });
          return job_id;
        });
        await ctx.step('the job is RUNNING', () => jobState(ctx, jobId, ['RUNNING']));
        const message = `forged failure published by runbook dlq-retry (${ctx.prefix})`;
        await ctx.step('publish a FAILED JobResult on sys.job.result (core NATS: no de-duplication id)', async () => {
          const packet = {
            trace_id: `${ctx.prefix}-forged`,
            sender_id: `${ctx.prefix}-forger`,
            created_at: Date.now(),
            protocol_version: 1,
            job_result: { job_id: jobId, status: JobStatus.FAILED, worker_id: `${ctx.prefix}-forger`, error_code: 'runbook_forged', error_message: message },
          };
          await bus.publish('sys.job.result', packet);
          await ctx.evidence.json(`NATS sys.job.result packet published for ${jobId}`, packet);
        });
        const inj: Injected = { kind: 'forged', jobId, topic, reasonCode: 'runbook_forged' };
        sh.injected.push(inj);
        await followToDlq(ctx, sub, inj, 'a FAILED JobResult was published for it', { reason: message, attempts: 1 });
      } finally {
        sub.stop();
      }
    },
    { timeoutMs: DEADLINE.inject },
  );

  s.step(
    'Retry each dead-lettered job and prove recovery',
    async (ctx) => {
      const sh = shared(ctx);
      const gw = ctx.gateway();
      sh.workerA.setBehaviour({ mode: 'succeed' });
      if (sh.injected.length !== 3) fail(`expected three injected failures to retry; the earlier steps produced ${sh.injected.length}`);
      const sub = (await ctx.bus()).subscribe('sys.job.dlq');
      try {
        const retried: (Injected & { newId: string })[] = [];
        for (const inj of sh.injected) {
          await ctx.step(`POST /api/v1/dlq/${inj.jobId}/retry (${inj.kind})`, async () => {
            const { job_id: newId } = await gw.dlqRetry(inj.jobId);
            if (typeof newId !== 'string' || !new RegExp(`^${escapeRe(inj.jobId)}-retry-[0-9a-f]{8}$`).test(newId)) {
              fail(`expected the retry of ${inj.jobId} to answer job_id '${inj.jobId}-retry-<8 hex>'; it answered ${JSON.stringify(newId)}`);
            }
            // A DLQ retry runs under trace dlq-retry-<original job id> (as recorded from a real Cordum).
            trackJob(ctx, sh, newId, `dlq-retry-${inj.jobId}`);
            retried.push({ ...inj, newId });
            const [list, page] = await Promise.all([gw.dlqList(LIST_LIMIT), gw.dlqPage({ limit: LIST_LIMIT })]);
            const still = [list.some((e) => e.job_id === inj.jobId) && 'GET /api/v1/dlq', (page.items ?? []).some((e) => e.job_id === inj.jobId) && 'GET /api/v1/dlq/page'].filter(Boolean);
            if (still.length) fail(`POST /api/v1/dlq/${inj.jobId}/retry answered 200 with job_id ${newId}, but the original entry is still listed by ${still.join(' and ')}: the retry was not carried out`);
          });
        }

        // An unmapped topic fails again at once: the retry lands in the DLQ under the new id.
        for (const r of retried.filter((x) => x.kind === 'unmapped')) {
          await ctx.step(`retry ${r.newId} of the unmapped job lands in the DLQ again`, async () => {
            const rp = await dlqPacket(ctx, sub, r.newId, `${r.topic} is still unmapped`);
            const job = await jobState(ctx, r.newId, ['FAILED']);
            await ctx.evidence.json(`retried job ${r.newId}`, job);
            const entry = await dlqEntry(ctx, r.newId, rp.receivedAt);
            checkEntry(entry, { job_id: r.newId, topic: r.topic, status: 'JOB_STATUS_FAILED', reason_code: 'no_pool_mapping', last_state: 'FAILED', attempts: undefined });
          });
        }

        // Mapped topics: the retried job carries retry/dlq_entry/retry_of_job labels, which are hard
        // placement constraints. Make it dispatchable honestly: a worker that advertises exactly them.
        const followers: { r: Injected & { newId: string }; labels: Record<string, string>; worker: CapWorker; since: number }[] = [];
        for (const r of retried.filter((x) => x.kind !== 'unmapped')) {
          await ctx.step(`retried job ${r.newId}: read its placement labels and attach a worker advertising them`, async () => {
            let job: JobDetail;
            try {
              job = await waitFor(`retried job ${r.newId} to exist`, () => gw.getJob(r.newId), () => true, { timeoutMs: WAIT.state, signal: ctx.signal });
            } catch (err) {
              fail(`expected the retried job ${r.newId} to exist after the retry answered 200; GET /api/v1/jobs/${r.newId} kept failing: ${(err as Error).message}`);
            }
            const labels = job.labels ?? {};
            await ctx.evidence.json(`retried job ${r.newId} before a worker advertises its labels`, job);
            ctx.finding({
              id: 'DLQ-RETRY-STRANDED',
              severity: 'warn',
              title: 'DLQ retries are stranded PENDING unless a worker advertises the retry labels',
              detail:
                `Retried job ${r.newId} carries labels ${compactJson(labels)} (state ${job.state}). Every job label is a hard placement ` +
                `constraint, so no ordinary worker takes it; the scheduler re-queues it every 2 s as no_workers. The runbook attached a worker ` +
                `advertising these labels to finish the drill; on a live incident, resubmit the job instead of using DLQ retry.`,
            });
            const worker = await startWorker(ctx, sh, { workerId: `${ctx.prefix}-dlq-r${followers.length + 1}`, labels, behaviour: { mode: 'succeed' } });
            followers.push({ r, labels, worker, since: Date.now() });
          });
        }
        for (const f of followers) {
          await ctx.step(`retried job ${f.r.newId} is dispatched and SUCCEEDED`, async () => {
            let job: JobDetail;
            try {
              job = await waitFor(`retried job ${f.r.newId} to finish`, () => gw.getJob(f.r.newId), (j) => TERMINAL.includes(j.state), {
                timeoutMs: WAIT.retryDispatch,
                signal: ctx.signal,
              });
            } catch (err) {
              if (!(err instanceof WaitTimeoutError)) throw err;
              const last = err.lastValue as JobDetail | undefined;
              fail(
                `retried job ${f.r.newId} is stuck in ${last?.state ?? 'an unknown state'} ${Math.round((Date.now() - f.since) / 1000)} s after worker ${f.worker.id} ` +
                  `started advertising its placement labels ${compactJson(f.labels)}; the worker received ${f.worker.jobs().length} job(s)`,
              );
            }
            await ctx.evidence.json(`retried job ${f.r.newId}`, job);
            if (job.state !== 'SUCCEEDED') fail(`expected retried job ${f.r.newId} to be SUCCEEDED (the worker now succeeds); it ended ${job.state} (${job.error_code ?? ''} ${job.error_message ?? ''})`);
            if (!f.worker.jobs().some((j) => j.job_id === f.r.newId)) fail(`retried job ${f.r.newId} is SUCCEEDED but worker ${f.worker.id} never received it`);
          });
        }
      } finally {
        sub.stop();
      }
    },
    { timeoutMs: DEADLINE.retry },
  );

  s.step(
    'Workflow step retry with backoff',
    async (ctx) => {
      const sh = shared(ctx);
      const gw = ctx.gateway();
      const wfId = `${ctx.prefix}-dlq-step-retry`;
      const code = 'runbook_step_injected';
      // Fail attempts 1 and 2, succeed from attempt 3 on (step job ids end in @<attempt>).
      sh.workerA.setBehaviour((job) =>
        attemptOf(job) < 3 ? { mode: 'fail', errorCode: code, errorMessage: `attempt ${attemptOf(job)} failed on purpose (${ctx.prefix})` } : { mode: 'succeed' },
      );
      await ctx.step(`create workflow ${wfId}: one worker step, retry max_retries 2, initial_backoff_sec 1`, async () => {
        ctx.teardown.add(`workflow ${wfId}`, undo.workflow(wfId));
        sh.workflowId = wfId;
        await gw.createWorkflow({
          id: wfId,
          name: wfId,
          description: 'runbook dlq-retry: a job step that fails twice, then succeeds',
          steps: {
            [STEP_ID]: {
              type: 'worker',
              name: 'Flaky work',
              topic: ctx.target.routing.mapped_topic,
              route_labels: sh.labels,
              retry: { max_retries: 2, initial_backoff_sec: 1 },
            },
          },
        });
      });
      const sub = (await ctx.bus()).subscribe('sys.job.dlq');
      try {
        const runId = await ctx.step('start a run', async () => {
          const { run_id } = await gw.startRun(wfId, {});
          ctx.teardown.add(`run ${run_id}`, undo.run(run_id));
          sh.runId = run_id;
          for (let n = 1; n <= 3; n++) trackJob(ctx, sh, `${run_id}:${STEP_ID}@${n}`);
          return run_id;
        });

        await ctx.step('the run succeeds after two failed attempts', async () => {
          let r: WorkflowRun;
          try {
            r = await waitFor(`run ${runId} to finish`, () => gw.getRun(runId), (x) => TERMINAL_RUN.includes(x.status), { timeoutMs: WAIT.run, signal: ctx.signal });
          } catch (err) {
            if (!(err instanceof WaitTimeoutError)) throw err;
            const last = err.lastValue as WorkflowRun | undefined;
            fail(`expected run ${runId} to succeed within ${WAIT.run} ms; it is still '${last?.status}' with step ${STEP_ID} '${last?.steps?.[STEP_ID]?.status}' attempts ${last?.steps?.[STEP_ID]?.attempts ?? 0}`);
          }
          await ctx.evidence.json(`run ${runId}`, r);
          const st = r.steps?.[STEP_ID];
          if (r.status !== 'succeeded') {
            fail(
              `expected run ${runId} to succeed after its step was retried (max_retries 2, initial_backoff_sec 1); the run ended '${r.status}' ` +
                `with step ${STEP_ID} '${st?.status}' after ${st?.attempts ?? 0} attempt(s) (${st?.error?.message ?? 'no error message'}): the step retry policy was not applied`,
            );
          }
          if (st?.attempts !== 3) fail(`expected step ${STEP_ID} to report attempts 3 (two failures, one success); it reports ${st?.attempts}`);
        });

        await ctx.step('backoff from the timeline: dispatch gaps >= 1 s, then >= 2 s', async () => {
          const events = await gw.timeline(runId);
          await ctx.evidence.json('timeline', events);
          const dispatched = events.filter((e: TimelineEvent) => e.type === 'step_dispatched' && e.step_id === STEP_ID).map((e) => ({ job_id: e.job_id, at: Date.parse(e.time) }));
          if (dispatched.length !== 3) fail(`expected 3 step_dispatched events for step ${STEP_ID}; the timeline has ${dispatched.length}: ${compactJson(dispatched)}`);
          const gaps = [dispatched[1]!.at - dispatched[0]!.at, dispatched[2]!.at - dispatched[1]!.at];
          await ctx.evidence.json('dispatch gaps (ms)', { gaps, dispatched });
          if (!(gaps[0]! >= 1000 && gaps[1]! >= 2000)) fail(`expected backoff gaps of at least 1000 ms then 2000 ms between dispatches; measured ${gaps[0]} ms then ${gaps[1]} ms`);
        });

        await ctx.step('one DLQ entry per failed attempt, none for the successful one', async () => {
          for (const n of [1, 2]) {
            const jobId = `${runId}:${STEP_ID}@${n}`;
            const rp = await dlqPacket(ctx, sub, jobId, `attempt ${n} failed`);
            const entry = await dlqEntry(ctx, jobId, rp.receivedAt);
            checkEntry(entry, { job_id: jobId, topic: ctx.target.routing.mapped_topic, status: 'JOB_STATUS_FAILED', reason_code: code, last_state: 'FAILED', attempts: 1 });
          }
          const third = `${runId}:${STEP_ID}@3`;
          const list = await gw.dlqList(LIST_LIMIT);
          if (list.some((e) => e.job_id === third)) fail(`expected no DLQ entry for the successful attempt ${third}; it is listed`);
        });
      } finally {
        sub.stop();
        sh.workerA.setBehaviour({ mode: 'succeed' });
      }
    },
    { timeoutMs: DEADLINE.workflow },
  );

  s.step(
    'JetStream consumers show no redelivery loop',
    async (ctx) => {
      const sh = shared(ctx);
      if (!sh.consumersBefore) ctx.skip(`cannot check JetStream redelivery: ${sh.consumersMissing ?? 'no baseline'} (NATS without JetStream, or other consumer names)`);
      const before = sh.consumersBefore!;
      try {
        const after = await waitFor(
          'scheduler consumers back at their redelivery/ack-pending baseline',
          async () => (await consumerCounters(ctx)).counters ?? {},
          (now) => CONSUMERS.durables.every((d) => now[d] && now[d].num_redelivered <= before[d]!.num_redelivered && now[d].num_ack_pending <= before[d]!.num_ack_pending),
          { timeoutMs: WAIT.settle, signal: ctx.signal },
        );
        await ctx.evidence.json('consumer counters before and after the drill', { before, after });
      } catch (err) {
        if (!(err instanceof WaitTimeoutError)) throw err;
        const now = (err.lastValue ?? {}) as Record<string, ConsumerCounters>;
        await ctx.evidence.json('consumer counters before and after the drill', { before, after: now });
        const grown = CONSUMERS.durables
          .map((d) => `${d}: num_redelivered ${before[d]!.num_redelivered} → ${now[d]?.num_redelivered ?? '?'}, num_ack_pending ${before[d]!.num_ack_pending} → ${now[d]?.num_ack_pending ?? '?'}`)
          .join('; ');
        fail(`expected the scheduler's durable consumers to return to their baseline within ${WAIT.settle} ms after the drill; they did not (a redelivery loop): ${grown}`);
      }
    },
    { timeoutMs: DEADLINE.jetstream },
  );

  s.step(
    'Remove every DLQ entry, job and workflow it created',
    async (ctx) => {
      const sh = shared(ctx);
      const gw = ctx.gateway();
      await ctx.step('stop the workers', async () => {
        for (const w of sh.workers) {
          await w.stop();
          ctx.teardown.forget(`worker ${w.id}`);
        }
      });
      await ctx.step('cancel jobs that are not terminal', async () => {
        for (const id of sh.jobIds) {
          const res = await gw.request<JobDetail>('GET', paths.job(id), { expect: [200, 404] });
          if (res.status === 200 && !TERMINAL.includes(res.json!.state)) await gw.cancelJob(id);
          ctx.teardown.forget(`job ${id}`);
        }
      });
      await ctx.step('delete the DLQ entries', async () => {
        for (const id of sh.dlqIds) {
          await gw.dlqDelete(id);
          ctx.teardown.forget(`dlq ${id}`);
        }
        const left = (await gw.dlqList(LIST_LIMIT)).filter((e) => sh.dlqIds.includes(e.job_id) || sh.jobIds.some((j) => e.job_id.startsWith(`${j}-retry-`)));
        if (left.length) fail(`expected no DLQ entry of this run after deleting them; still listed: ${left.map((e) => e.job_id).join(', ')}`);
      });
      if (sh.runId) {
        await ctx.step(`delete run ${sh.runId}`, async () => {
          await gw.deleteRun(sh.runId!);
          ctx.teardown.forget(`run ${sh.runId}`);
          const res = await gw.request('GET', paths.run(sh.runId!), { expect: [200, 404] });
          if (res.status !== 404) fail(`expected run ${sh.runId} to be 404 after DELETE; it answered ${res.status}`);
        });
      }
      if (sh.workflowId) {
        await ctx.step(`delete workflow ${sh.workflowId}`, async () => {
          await gw.deleteWorkflow(sh.workflowId!);
          ctx.teardown.forget(`workflow ${sh.workflowId}`);
          const res = await gw.request('GET', paths.workflow(sh.workflowId!), { expect: [200, 404] });
          if (res.status !== 404) fail(`expected workflow ${sh.workflowId} to be 404 after DELETE; it answered ${res.status}`);
        });
      }
    },
    { timeoutMs: DEADLINE.cleanup },
  );
});
