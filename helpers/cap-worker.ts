// A scriptable CAP worker that works against real Cordum and the sandbox alike. It does what
// Cordum's scheduler needs from a worker: heartbeats on sys.heartbeat with the pool NAME and
// placement labels, a core subscription on worker.<id>.jobs (the scheduler's dispatch target),
// results on sys.job.result, and cancels from sys.job.cancel. How it answers is set per job.
import type { Redis } from 'ioredis';
import type { Subscription } from '@nats-io/nats-core';
import type { Bus } from './bus.js';
import type { BusPacket, JobCancel, JobRequest, JobResult } from './cap/codec.js';
import { compactJson, WaitTimeoutError } from './waits.js';

/** The CAP codec (protobufjs) loads with the first worker, not with every scenario that could start one. */
type Codec = typeof import('./cap/codec.js');

export type { JobRequest } from './cap/codec.js';

export interface WorkerBehaviour {
  /** succeed → SUCCEEDED; fail → FAILED with code+message; timeout → TIMEOUT; silent → never answers. */
  mode: 'succeed' | 'fail' | 'timeout' | 'silent';
  errorCode?: string;
  errorMessage?: string;
  /** Passed to writeResult for a success. */
  result?: unknown;
  /** Work time before answering; a cancel during it suppresses the answer. */
  delayMs?: number;
}

export interface CapWorkerOptions {
  workerId: string;
  /** Pool NAME from the target's pools.yaml (not the topic). */
  pool: string;
  /** Placement labels: every non-excluded job label must be present here for the job to be placed. */
  labels?: Record<string, string>;
  /** Default 5000 ms, well under the scheduler's fixed 30 s registry TTL. */
  heartbeatMs?: number;
  /** Advertised max_parallel_jobs (default 4). */
  maxParallel?: number;
  /** A fixed behaviour, or one decided per job (possibly after a wait, e.g. for an id mapping). */
  behaviour?: WorkerBehaviour | ((job: JobRequest) => WorkerBehaviour | Promise<WorkerBehaviour>);
  /** Stores a success result and returns its pointer; without it, results carry no result_ptr. */
  writeResult?: (jobId: string, result: unknown) => Promise<string>;
  /** Also listen on these topic subjects (queue group = pool), for the scheduler's fallback path. */
  topics?: string[];
  capabilities?: string[];
  region?: string;
  type?: string;
}

export interface CapWorker {
  readonly id: string;
  setBehaviour(b: WorkerBehaviour | ((job: JobRequest) => WorkerBehaviour | Promise<WorkerBehaviour>)): void;
  /** JobRequests received so far, in arrival order. */
  jobs(): JobRequest[];
  /** JobResults this worker published. */
  results(): JobResult[];
  /** JobCancels received for jobs this worker had. */
  cancels(): JobCancel[];
  waitForJob(pred: (job: JobRequest) => boolean, opts: { timeoutMs: number }): Promise<JobRequest>;
  /** Override the advertised load (overload drills); applied from the next heartbeat, sent now. */
  setLoad(load: { activeJobs?: number; cpuLoad?: number; gpuUtilization?: number }): Promise<void>;
  /** Stop/resume heartbeats only (worker-loss drills); jobs are still received. */
  pauseHeartbeats(): void;
  resumeHeartbeats(): Promise<void>;
  /** Stop heartbeats and subscriptions. The bus stays open (the caller owns it). */
  stop(): Promise<void>;
}

const FORBIDDEN_ID = /[.*>\s]/;

export function validateWorkerId(id: string): void {
  if (!id || FORBIDDEN_ID.test(id)) {
    throw new Error(
      `invalid worker id ${JSON.stringify(id)}: must be non-empty without '.', '*', '>' or spaces (it becomes the subject worker.<id>.jobs)`,
    );
  }
}

export async function startCapWorker(bus: Bus, opts: CapWorkerOptions): Promise<CapWorker> {
  validateWorkerId(opts.workerId);
  const w = new CapWorkerImpl(bus, opts, await import('./cap/codec.js'));
  await w.start();
  return w;
}

/** writeResult that stores JSON at res:<job_id> (like Cordum workers) and returns redis://res:<job_id>. */
export function redisResultWriter(redis: Redis, ttlSeconds = 24 * 3600): (jobId: string, result: unknown) => Promise<string> {
  return async (jobId, result) => {
    await redis.set(`res:${jobId}`, JSON.stringify(result ?? null), 'EX', ttlSeconds);
    return `redis://res:${jobId}`;
  };
}

interface InFlight {
  abort: AbortController;
}

class CapWorkerImpl implements CapWorker {
  readonly id: string;
  private behaviour: WorkerBehaviour | ((job: JobRequest) => WorkerBehaviour | Promise<WorkerBehaviour>);
  private readonly received: JobRequest[] = [];
  private readonly published: JobResult[] = [];
  private readonly cancelled: JobCancel[] = [];
  private readonly inFlight = new Map<string, InFlight>();
  private readonly jobWaiters = new Set<{ pred: (j: JobRequest) => boolean; resolve: (j: JobRequest) => void }>();
  private readonly subs: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private load: { activeJobs?: number; cpuLoad?: number; gpuUtilization?: number } = {};
  private stopped = false;
  private heartbeating = true;

  constructor(
    private readonly bus: Bus,
    private readonly opts: CapWorkerOptions,
    private readonly codec: Codec,
  ) {
    this.id = opts.workerId;
    this.behaviour = opts.behaviour ?? { mode: 'succeed' };
  }

  async start(): Promise<void> {
    this.listen(`worker.${this.id}.jobs`);
    for (const t of this.opts.topics ?? []) this.listen(t, this.opts.pool);
    this.listenCancels();
    // Make sure our subscriptions are registered at the server before the scheduler can see us.
    await this.bus.nc.flush();
    await this.heartbeat();
    this.schedule();
  }

  setBehaviour(b: WorkerBehaviour | ((job: JobRequest) => WorkerBehaviour | Promise<WorkerBehaviour>)): void {
    this.behaviour = b;
  }

  jobs(): JobRequest[] {
    return [...this.received];
  }

  results(): JobResult[] {
    return [...this.published];
  }

  cancels(): JobCancel[] {
    return [...this.cancelled];
  }

  waitForJob(pred: (job: JobRequest) => boolean, opts: { timeoutMs: number }): Promise<JobRequest> {
    const hit = this.received.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (j: JobRequest) => {
          clearTimeout(timer);
          resolve(j);
        },
      };
      const timer = setTimeout(() => {
        this.jobWaiters.delete(waiter);
        const seen = this.received.slice(-3).map((j) => compactJson({ job_id: j.job_id, topic: j.topic, labels: j.labels }));
        reject(
          new WaitTimeoutError(
            `a matching job at worker ${this.id}`,
            opts.timeoutMs,
            undefined,
            undefined,
            this.received.length,
            `${this.received.length} job(s)${seen.length ? `, last: ${seen.join(' | ')}` : ''}`,
          ),
        );
      }, opts.timeoutMs);
      this.jobWaiters.add(waiter);
    });
  }

  async setLoad(load: { activeJobs?: number; cpuLoad?: number; gpuUtilization?: number }): Promise<void> {
    this.load = { ...this.load, ...load };
    await this.heartbeat();
  }

  pauseHeartbeats(): void {
    this.heartbeating = false;
  }

  async resumeHeartbeats(): Promise<void> {
    this.heartbeating = true;
    await this.heartbeat();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    for (const f of this.inFlight.values()) f.abort.abort();
    for (const s of this.subs) s.unsubscribe();
    if (!this.bus.nc.isClosed()) await this.bus.nc.flush().catch(() => {});
  }

  // -------------------------------------------------------------------------------------------

  private schedule(): void {
    const every = this.opts.heartbeatMs ?? 5000;
    // setTimeout chain (not setInterval) so a slow publish never stacks heartbeats.
    this.timer = setTimeout(() => {
      void this.heartbeat()
        .catch(() => {})
        .finally(() => {
          if (!this.stopped) this.schedule();
        });
    }, every);
    this.timer.unref?.();
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped || !this.heartbeating || this.bus.nc.isClosed()) return;
    const packet: BusPacket = {
      trace_id: '',
      sender_id: this.id,
      heartbeat: {
        worker_id: this.id,
        pool: this.opts.pool,
        labels: this.opts.labels,
        active_jobs: this.load.activeJobs ?? this.inFlight.size,
        max_parallel_jobs: this.opts.maxParallel ?? 4,
        cpu_load: this.load.cpuLoad,
        gpu_utilization: this.load.gpuUtilization,
        capabilities: this.opts.capabilities,
        region: this.opts.region,
        type: this.opts.type ?? 'runbook-worker',
      },
    };
    await this.bus.publish('sys.heartbeat', packet);
  }

  /** Direct core subscriptions with callbacks: every packet is handled, none can be dropped by buffering. */
  private listen(subject: string, queue?: string): void {
    this.subs.push(
      this.bus.nc.subscribe(subject, {
        queue,
        callback: (err, msg) => {
          if (err || this.stopped) return;
          const packet = tryDecode(this.codec, msg.data);
          if (packet?.job_request) this.onJob(packet);
        },
      }),
    );
  }

  private listenCancels(): void {
    this.subs.push(
      this.bus.nc.subscribe('sys.job.cancel', {
        callback: (err, msg) => {
          if (err || this.stopped) return;
          const packet = tryDecode(this.codec, msg.data);
          if (packet?.job_cancel) this.onCancel(packet);
        },
      }),
    );
  }

  private onJob(packet: BusPacket): void {
    const job = packet.job_request!;
    const jobId = job.job_id ?? '';
    this.received.push(job);
    for (const w of this.jobWaiters) {
      if (safe(() => w.pred(job))) {
        this.jobWaiters.delete(w);
        w.resolve(job);
      }
    }
    const decided = typeof this.behaviour === 'function' ? this.behaviour(job) : this.behaviour;
    const flight: InFlight = { abort: new AbortController() };
    this.inFlight.set(jobId, flight);
    let mode: WorkerBehaviour['mode'] | undefined;
    void Promise.resolve(decided)
      .then((b) => {
        mode = b.mode;
        return this.answer(job, b, flight, packet.trace_id ?? '');
      })
      .finally(() => {
        // A silent worker keeps the job "active", as a hung worker would.
        if (mode !== 'silent' || flight.abort.signal.aborted) this.inFlight.delete(jobId);
      })
      .catch(() => {});
  }

  private async answer(job: JobRequest, b: WorkerBehaviour, flight: InFlight, traceId: string): Promise<void> {
    const started = Date.now();
    if (b.mode === 'silent') return;
    if (b.delayMs && b.delayMs > 0) {
      const completed = await abortableDelay(b.delayMs, flight.abort.signal);
      if (!completed) return; // cancelled or stopped: a cancelled job gets no result
    }
    if (flight.abort.signal.aborted || this.stopped) return;
    const jobId = job.job_id ?? '';
    const result: JobResult = { job_id: jobId, worker_id: this.id, execution_ms: Date.now() - started };
    try {
      if (b.mode === 'succeed') {
        result.status = this.codec.JobStatus.SUCCEEDED;
        if (this.opts.writeResult) result.result_ptr = await this.opts.writeResult(jobId, b.result ?? { ok: true, worker_id: this.id });
      } else if (b.mode === 'fail') {
        result.status = this.codec.JobStatus.FAILED;
        result.error_code = b.errorCode ?? 'runbook_worker_failed';
        result.error_message = b.errorMessage ?? 'failed on purpose by the runbook worker';
      } else {
        result.status = this.codec.JobStatus.TIMEOUT;
        result.error_code = b.errorCode ?? 'timeout';
        result.error_message = b.errorMessage ?? 'timed out on purpose by the runbook worker';
      }
    } catch (err) {
      // The result store failed: report it the way a real worker would.
      result.status = this.codec.JobStatus.FAILED;
      result.error_code = 'result_write_failed';
      result.error_message = (err as Error).message;
    }
    if (this.stopped || this.bus.nc.isClosed()) return;
    this.published.push(result);
    await this.bus.publish('sys.job.result', { trace_id: traceId, sender_id: this.id, job_result: result });
  }

  private onCancel(packet: BusPacket): void {
    const c = packet.job_cancel!;
    const flight = this.inFlight.get(c.job_id ?? '');
    if (!flight) return;
    this.cancelled.push(c);
    flight.abort.abort();
    this.inFlight.delete(c.job_id ?? '');
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function tryDecode(codec: Codec, data: Uint8Array): BusPacket | undefined {
  try {
    return codec.decodePacket(data);
  } catch {
    return undefined;
  }
}

function safe(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}
