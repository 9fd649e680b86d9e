// The workers of the recording, played back. The runbooks' CAP workers (and the dlq-retry runbook's
// forged results) acted on the bus, which the gateway transcript does not hold; only their effect
// does: the job details the gateway answered afterwards. So the replay starts workers of its own
// that do to each job what the recording shows was done to it: a job the recording shows SUCCEEDED
// after a dispatch is completed with a result, one it shows FAILED after a dispatch is failed with
// the recorded error code and message, anything else is left alone (silent).
//
// Placement labels are constraints, so a worker is started per label set the recorded jobs carried,
// as soon as every id inside those labels (a DLQ retry names the job it retries) is known in the
// sandbox's terms.
import type { Redis } from 'ioredis';
import type { Bus } from '../../helpers/bus.js';
import { redisResultWriter, startCapWorker, type CapWorker, type WorkerBehaviour } from '../../helpers/cap-worker.js';
import { placementLabels } from '../../sandbox/scheduler/routing.js';
import type { IdMap, RecordedExchange } from './replay.js';

interface RecordedOutcome {
  /** The first exchange whose answer shows a worker had the job: the worker answers just before it. */
  firstSeenSeq: number;
  state: string;
  errorCode?: string;
  errorMessage?: string;
  labels: Record<string, string>;
}

const WORKER_STATES = new Set(['SUCCEEDED', 'FAILED', 'TIMEOUT']);

/**
 * Per recorded job id: how it ended after a worker had it (from the job details the gateway
 * answered), and the first exchange that shows a worker had answered it: a job detail with
 * attempts, a DLQ entry, or a workflow run whose step moved on from that job.
 */
export function recordedOutcomes(exchanges: RecordedExchange[]): Map<string, RecordedOutcome> {
  const out = new Map<string, RecordedOutcome>();
  const answeredAt = new Map<string, number>();
  const seen = (id: string, seq: number) => {
    if (!answeredAt.has(id)) answeredAt.set(id, seq);
  };
  for (const x of exchanges) {
    if (x.method !== 'GET' || x.status !== 200) continue;
    let body: unknown;
    try {
      body = JSON.parse(x.res_body ?? '');
    } catch {
      continue;
    }
    if (/^\/api\/v1\/dlq(\/page)?\?/.test(x.url)) {
      const items = (Array.isArray(body) ? body : ((body as { items?: unknown[] })?.items ?? [])) as { job_id?: string }[];
      for (const e of items) if (e?.job_id) seen(e.job_id, x.seq);
      continue;
    }
    if (/^\/api\/v1\/workflow-runs\/[^/?]+$/.test(x.url)) {
      const steps = ((body as { steps?: Record<string, { job_id?: string; status?: string; error?: unknown }> })?.steps ?? {}) as Record<string, { job_id?: string; status?: string; error?: unknown }>;
      for (const st of Object.values(steps)) if (st.job_id && (st.status !== 'running' || st.error)) seen(st.job_id, x.seq);
      continue;
    }
    if (!/^\/api\/v1\/jobs\/[^/?]+$/.test(x.url)) continue;
    const d = body as Record<string, unknown>;
    const id = d?.id as string;
    if (!id || typeof d.attempts !== 'number' || d.attempts < 1) continue;
    seen(id, x.seq);
    const prev = out.get(id);
    out.set(id, {
      firstSeenSeq: 0,
      state: String(d.state),
      errorCode: (d.error_code as string | undefined) ?? prev?.errorCode,
      errorMessage: (d.error_message as string | undefined) ?? prev?.errorMessage,
      labels: (d.labels as Record<string, string> | undefined) ?? {},
    });
  }
  for (const [id, o] of out) {
    if (!WORKER_STATES.has(o.state)) out.delete(id);
    else o.firstSeenSeq = answeredAt.get(id) ?? 0;
  }
  return out;
}

const UUID_G = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

export interface ReplayWorkers {
  /** Start the workers whose label sets can now be written in the sandbox's ids; call before each exchange. */
  ensure(): Promise<void>;
  stop(): Promise<void>;
}

/** Where the replay is: the seq of the exchange it is about to send. */
export interface ReplayProgress {
  next: number;
}

export function replayWorkers(deps: { bus: Bus; redis: Redis; ids: IdMap; outcomes: Map<string, RecordedOutcome>; pool: string; progress: ReplayProgress }): ReplayWorkers {
  const started = new Map<string, CapWorker>();
  const waiting = new Set<string>();
  for (const o of deps.outcomes.values()) waiting.add(JSON.stringify(Object.fromEntries(placementLabels(o.labels).sort())));
  const writeResult = redisResultWriter(deps.redis);
  // A job can reach the worker before the replay has read the gateway's answer naming its id, so
  // the decision waits (bounded) until the id maps to a recorded one.
  const behaviour = async (job: { job_id?: string }): Promise<WorkerBehaviour> => {
    const sandboxId = job.job_id ?? '';
    const until = Date.now() + 3000;
    let recordedId = deps.ids.recordedFor(sandboxId);
    while (!deps.outcomes.has(recordedId) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
      recordedId = deps.ids.recordedFor(sandboxId);
    }
    const o = deps.outcomes.get(recordedId);
    // Answer when the recording shows the job answered (a runbook often started its worker later
    // than the job), not earlier: the exchanges in between saw the job still waiting.
    while (o && deps.progress.next < o.firstSeenSeq) await new Promise((r) => setTimeout(r, 10));
    if (process.env.REPLAY_DEBUG) console.error(`replay worker: ${sandboxId} -> ${recordedId}: ${o?.state ?? 'unknown'}`);
    if (!o) return { mode: 'silent' };
    // The runbook workers' result: { ok: true, worker_id } (CapWorker's default).
    if (o.state === 'SUCCEEDED') return { mode: 'succeed' };
    if (o.state === 'TIMEOUT') return { mode: 'timeout' };
    return { mode: 'fail', errorCode: o.errorCode ?? 'replayed_failure', errorMessage: o.errorMessage ?? 'failed as recorded' };
  };
  return {
    async ensure() {
      for (const key of [...waiting]) {
        const ids = key.match(UUID_G) ?? [];
        if (!ids.every((id) => deps.ids.has(id))) continue;
        waiting.delete(key);
        const labels = JSON.parse(deps.ids.apply(key)) as Record<string, string>;
        const worker = await startCapWorker(deps.bus, { workerId: `replay-w${started.size + 1}`, pool: deps.pool, labels, behaviour, writeResult, type: 'replay-worker' });
        started.set(key, worker);
        if (process.env.REPLAY_DEBUG) console.error(`replay worker ${worker.id} started with ${JSON.stringify(labels)}`);
      }
    },
    async stop() {
      await Promise.all([...started.values()].map((w) => w.stop()));
    },
  };
}
