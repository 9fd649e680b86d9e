// Sandbox states. `fresh` is what a new Cordum install looks like (recorded from a real one): no
// policy bundles, no workers, an empty DLQ, nothing submitted; only the scheduler's seeded
// cfg:system:default. `lived-in` is an installation that has been used for a while: policy bundles
// (published and a disabled draft) with a snapshot, a few hundred earlier jobs across tenants and
// topics with every terminal state and decision (approved, rejected, denied), DLQ entries, streams
// with deleted messages (gaps, num_deleted > 0) and durable consumers with acked history.
//
// Runbooks must pass on both: a lived-in platform is where most false alarms come from (an assertion
// that assumed an empty list, a stream without gaps, the only bundle being the drill's own).
//
// Seeding costs seconds: the bulk of the job history is written through the job store's own code
// (the same Lua transitions and keys the scheduler uses), and a few dozen jobs go through the real
// gateway → scheduler → kernel path so that DLQ entries, approvals and consumer ack history are
// exactly what the platform itself produces.
import { randomUUID } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { JobRequest } from '../helpers/cap/codec.js';
import { GatewayClient } from '../helpers/gateway.js';
import type { TargetProfile } from '../helpers/profile-types.js';
import { waitFor } from '../helpers/waits.js';
import { createConfigStore } from './stores/config-docs.js';
import { createJobStore, rfc3339, rfc3339Nano } from './stores/jobs.js';
import type { JobState, SandboxDeps } from './types.js';

export const SANDBOX_STATES = ['fresh', 'lived-in'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

/** `fresh` (default) or `lived-in`; anything else is an error naming the valid states. */
export function parseSandboxState(value: string | undefined): SandboxState {
  const v = (value ?? '').trim();
  if (!v) return 'fresh';
  if ((SANDBOX_STATES as readonly string[]).includes(v)) return v as SandboxState;
  throw new Error(`unknown sandbox state '${v}' (expected one of: ${SANDBOX_STATES.join(', ')})`);
}

/** Topic prefix of everything the lived-in history contains; runbooks never use it. */
export const LIVED_IN_PREFIX = 'job.livedin';

const BUNDLE_GUARDRAILS = `# Lived-in sandbox: guardrails an operator published long ago.
rules:
  - id: livedin-deny-exports
    decision: deny
    reason: exports are not allowed from this installation
    match:
      topics: ["${LIVED_IN_PREFIX}.denied"]
  - id: livedin-approve-payments
    decision: require_approval
    reason: payments need a second pair of eyes
    match:
      topics: ["${LIVED_IN_PREFIX}.approval"]
`;

const BUNDLE_DRAFT = `# Lived-in sandbox: a draft nobody enabled.
rules:
  - id: livedin-draft-throttle
    decision: deny
    reason: draft, never enabled
    match:
      topics: ["${LIVED_IN_PREFIX}.draft"]
`;

/**
 * Before the components start: the config-service documents a used installation has (policy
 * bundles and a snapshot of them), so the safety kernel loads them at start like after a restart.
 */
export async function seedLivedInConfig(deps: Pick<SandboxDeps, 'redis'>): Promise<void> {
  const configs = createConfigStore(deps.redis);
  const long = new Date(Date.now() - 30 * 24 * 3600_000);
  const bundles = {
    'secops/livedin-guardrails': { content: BUNDLE_GUARDRAILS, enabled: true, author: 'ops@example.com', message: 'guardrails', created_at: rfc3339Nano(long), updated_at: rfc3339Nano(long) },
    'secops/livedin-draft': { content: BUNDLE_DRAFT, enabled: false, author: 'ops@example.com', message: 'draft', created_at: rfc3339Nano(long), updated_at: rfc3339Nano(long) },
  };
  await configs.put({ scope: 'system', scope_id: 'policy', data: { bundles } });
  const snapshot = { id: `${rfc3339(long)}-1ived1n000`, created_at: rfc3339Nano(long), note: 'before guardrails', bundles: {} };
  await configs.put({ scope: 'system', scope_id: 'policy_snapshots', data: { snapshots: [snapshot] } });
}

export interface LivedInSummary {
  historicalJobs: number;
  platformJobs: number;
  deletedStreamMessages: Record<string, number>;
}

interface HistoryOptions {
  /** The sandbox's own profile (plain HTTP): seeding goes through the gateway as an operator would. */
  profile: TargetProfile;
  apiKey: string;
  /** Bounded wait for the platform to settle the jobs it was given. */
  timeoutMs?: number;
}

const TENANTS = ['default', 'acme', 'globex'];
const TOPICS = ['job.default', `${LIVED_IN_PREFIX}.reports`, `${LIVED_IN_PREFIX}.etl`, `${LIVED_IN_PREFIX}.summaries`];
/** Terminal paths through the transition table, with the decision that led there. */
const PATHS: { states: JobState[]; decision: string; rule: string }[] = [
  { states: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED'], decision: 'ALLOW', rule: 'legacy:default:allow:1' },
  { states: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED'], decision: 'ALLOW', rule: 'legacy:default:allow:1' },
  { states: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'FAILED'], decision: 'ALLOW', rule: 'legacy:default:allow:1' },
  { states: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'CANCELLED'], decision: 'ALLOW', rule: 'legacy:default:allow:1' },
  { states: ['PENDING', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'TIMEOUT'], decision: 'ALLOW', rule: 'legacy:default:allow:1' },
  { states: ['PENDING', 'DENIED'], decision: 'DENY', rule: 'livedin-deny-exports' },
  { states: ['PENDING', 'APPROVAL_REQUIRED', 'SCHEDULED', 'DISPATCHED', 'RUNNING', 'SUCCEEDED'], decision: 'REQUIRE_APPROVAL', rule: 'livedin-approve-payments' },
  { states: ['PENDING', 'APPROVAL_REQUIRED', 'DENIED'], decision: 'REQUIRE_APPROVAL', rule: 'livedin-approve-payments' },
];

/** Earlier jobs, written through the job store (states, decisions, traces, result pointers). */
async function seedHistoricalJobs(deps: SandboxDeps, count: number): Promise<void> {
  const store = createJobStore(deps.redis, deps.config);
  const one = async (i: number) => {
    const path = PATHS[i % PATHS.length];
    const jobId = randomUUID();
    const traceId = randomUUID();
    const req: JobRequest = {
      job_id: jobId,
      topic: TOPICS[i % TOPICS.length],
      tenant_id: TENANTS[i % TENANTS.length],
      principal_id: i % 5 === 0 ? 'svc-etl' : 'alice',
      labels: { team: ['data', 'payments', 'platform'][i % 3] },
      meta: { tenant_id: TENANTS[i % TENANTS.length], actor_id: i % 5 === 0 ? 'svc-etl' : 'alice', capability: 'summarize' },
    };
    await store.putRequest(req);
    await store.setJobMeta(req, { traceId });
    await store.addToTrace(traceId, jobId);
    for (const st of path.states) {
      if (st === 'APPROVAL_REQUIRED' || st === 'DENIED' || (st === 'SCHEDULED' && path.decision !== 'REQUIRE_APPROVAL')) {
        await store.addDecision(jobId, { decision: st === 'SCHEDULED' ? path.decision : st === 'DENIED' && path.decision === 'REQUIRE_APPROVAL' ? 'DENY' : path.decision, rule_id: path.rule, reason: st === 'DENIED' ? 'rejected' : '', checked_at: Date.now() * 1000 });
      }
      await store.setState(jobId, st);
    }
    if (path.states.at(-1) === 'SUCCEEDED') {
      await deps.redis.set(`res:${jobId}`, JSON.stringify({ ok: true, n: i }), 'EX', deps.config.dataTtlS);
      await store.setResultPtr(jobId, `redis://res:${jobId}`);
    }
  };
  const BATCH = 25;
  for (let i = 0; i < count; i += BATCH) await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => one(i + k)));
}

/** The project's gateway client on the plain-HTTP gateway, as the operator who built this history. */
function seedingClient(opts: HistoryOptions): GatewayClient {
  return new GatewayClient(opts.profile, { apiKey: opts.apiKey, principal: { id: 'ops-bot', role: 'admin' } });
}

/** Poll `check` until it holds, within the seeding's one deadline; a timeout says what was last seen. */
async function until<T>(what: string, deadline: number, probe: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  return waitFor(`lived-in seeding: ${what}`, probe, done, { timeoutMs: Math.max(1, deadline - Date.now()), intervalMs: 50 });
}

/** Jobs through the platform itself: DLQ entries, approvals granted and rejected, denials, cancels. */
async function seedPlatformJobs(deps: SandboxDeps, gw: GatewayClient, deadline: number): Promise<number> {
  const submit = async (topic: string, labels?: Record<string, string>) =>
    (await gw.submitJob({ prompt: `lived-in history on ${topic}`, topic, ...(labels ? { labels } : {}) })).job_id;
  const states = (ids: string[]) => Promise.all(ids.map((id) => deps.redis.get(`job:state:${id}`)));
  const unmapped = await Promise.all(Array.from({ length: 12 }, () => submit(`${LIVED_IN_PREFIX}.unmapped`)));
  const denied = await Promise.all(Array.from({ length: 4 }, () => submit(`${LIVED_IN_PREFIX}.denied`)));
  const approvals = await Promise.all(Array.from({ length: 6 }, () => submit(`${LIVED_IN_PREFIX}.approval`)));
  // Parked on the mapped topic with a label no worker carries, then cancelled, as an operator does.
  const parked = await Promise.all(Array.from({ length: 4 }, () => submit('job.default', { livedin_probe: 'parked' })));

  await until('the approval jobs waiting for approval', deadline, () => states(approvals), (st) => st.every((s) => s === 'APPROVAL_REQUIRED'));
  for (const [i, id] of approvals.entries()) {
    if (i < 2) await gw.approveJob(id, { reason: 'looks fine', note: 'lived-in' });
    else if (i < 4) await gw.rejectJob(id, { reason: 'not this time', note: 'lived-in' });
    // The last two stay waiting: a lived-in install has approvals nobody has looked at yet.
  }
  await until('the parked jobs to be pending', deadline, () => states(parked), (st) => st.every((s) => s === 'PENDING'));
  for (const id of parked) await gw.cancelJob(id);

  const settled = [...unmapped, ...denied, ...approvals.slice(0, 4), ...parked];
  await until('the platform to settle the lived-in jobs', deadline, () => states(settled), (st) => st.every((s) => s === 'FAILED' || s === 'DENIED' || s === 'CANCELLED'));
  return unmapped.length + denied.length + approvals.length + parked.length;
}

/** Wait until every durable consumer of the stream has acked all it was given. */
async function consumersCaughtUp(jsm: JetStreamManager, stream: string, deadline: number): Promise<void> {
  await until(
    `the ${stream} consumers to ack their history`,
    deadline,
    async () => {
      const behind: string[] = [];
      for await (const ci of jsm.consumers.list(stream)) if (ci.num_pending > 0 || ci.num_ack_pending > 0) behind.push(`${ci.name} (pending ${ci.num_pending}, unacked ${ci.num_ack_pending})`);
      return behind;
    },
    (behind) => behind.length === 0,
  );
}

/** Delete every `every`-th message among the acked ones: the gaps a stream has after purges and limits. */
async function punchGaps(jsm: JetStreamManager, stream: string, every: number): Promise<number> {
  const info = await jsm.streams.info(stream);
  let deleted = 0;
  // Keep the last message: a stream's tail is what consumers and backups compare positions against.
  for (let seq = info.state.first_seq + 1; seq < info.state.last_seq; seq += every) {
    if (await jsm.streams.deleteMessage(stream, seq, false).catch(() => false)) deleted++;
  }
  return deleted;
}

/**
 * After the components started: job history, DLQ entries, and JetStream history with gaps and
 * acked consumer positions.
 */
export async function seedLivedInHistory(deps: SandboxDeps, opts: HistoryOptions): Promise<LivedInSummary> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const historicalJobs = 240;
  const [, platformJobs] = await Promise.all([seedHistoricalJobs(deps, historicalJobs), seedPlatformJobs(deps, seedingClient(opts), deadline)]);

  // CORDUM_JOBS history: dispatches of long-finished jobs (packets nobody consumes any more).
  for (let i = 0; i < 24; i++) {
    await deps.bus.publishDurable(`${LIVED_IN_PREFIX}.history`, {
      trace_id: randomUUID(),
      sender_id: 'cordum-scheduler',
      job_request: { job_id: randomUUID(), topic: `${LIVED_IN_PREFIX}.history`, tenant_id: 'default' },
    });
  }
  const jsm = await jetstreamManager(deps.nc);
  await consumersCaughtUp(jsm, 'CORDUM_SYS', deadline);
  const deletedStreamMessages = { CORDUM_SYS: await punchGaps(jsm, 'CORDUM_SYS', 7), CORDUM_JOBS: await punchGaps(jsm, 'CORDUM_JOBS', 5) };
  return { historicalJobs, platformJobs, deletedStreamMessages };
}
