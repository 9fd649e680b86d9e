// Contracts shared by the sandbox components. Each component (gateway, scheduler, safety kernel,
// workflow engine) is a module of its own and talks to the others only through Redis and NATS,
// as Cordum's services do. These types are the seams between them.
import type { Redis } from 'ioredis';
import type { NatsConnection } from '@nats-io/nats-core';
import type { BusPacket } from '../helpers/cap/codec.js';

export const FAULTS = [
  'gateway-redis-down', // /api/v1/status reports redis.ok=false
  'approval-ignored', // step approve answers 204 but the run stays waiting
  'metrics-missing', // gateway /metrics answers 404
  'dlq-tap-down', // the gateway's sys.job.dlq tap writes nothing
  'dlq-retry-noop', // DLQ retry answers 200 with a job id but publishes nothing
  'step-retry-ignored', // workflow step retry policy ignored
  'policy-explain-wrong-rule', // explain names another rule than evaluate
  'policy-reload-stuck', // published bundles never reach the kernel
  'policy-simulate-ignores-draft', // bundle simulate answers from the stored bundles, ignoring the draft content
  'timeline-missing-approval', // no step_approved timeline event
  'approval-identity-dropped', // job approvals record no approver
  'rate-limit-off', // the gateway never answers 429
  'redis-no-persistence', // the sandbox redis runs with persistence off
  'jetstream-memory-storage', // streams use memory storage
  'default-api-key', // the gateway also accepts the documented default key super-secret-key
  'tls-cert-expiring', // TLS sandbox (SANDBOX_TLS=1): the server certificate expires in 5 days
  'scheduler-skips-kernel', // jobs on one topic prefix (SKIPS_KERNEL_TOPIC_PREFIX) are dispatched without a safety check
] as const;
export type FaultName = (typeof FAULTS)[number];

export interface Faults {
  has(name: FaultName): boolean;
  list(): FaultName[];
}

export interface SandboxConfig {
  tenant: string; // TENANT_ID, default "default"
  apiKeys: string[]; // empty = auth disabled
  rateLimit: { rps: number; burst: number }; // API_RATE_LIMIT_RPS / _BURST
  allowedOrigins: string[] | undefined; // undefined = localhost + same host rule
  policyReloadMs: number; // SAFETY_POLICY_RELOAD_INTERVAL
  /** Policy file (the stock config/safety.yaml equivalent) as YAML text. */
  policyFileYaml: string;
  /** pools.yaml equivalent: topic -> pool names, pool -> requires. */
  pools: { topics: Record<string, string[]>; pools: Record<string, { requires?: string[] }> };
  timeouts: { dispatchTimeoutS: number; runningTimeoutS: number; scanIntervalS: number };
  /** SCHEDULER_CONFIG_RELOAD_INTERVAL: how often the scheduler re-reads cfg:system:default (default 30 s). */
  schedulerConfigReloadMs: number;
  workflowScanIntervalMs: number; // WORKFLOW_ENGINE_SCAN_INTERVAL, default 5000
  jobMetaTtlS: number; // JOB_META_TTL, default 7 days
  dataTtlS: number; // REDIS_DATA_TTL, default 24 h
  artifactTtlS: { short: number; standard: number; audit: number };
  build: { version: string; commit: string; date: string };
  /** Marketplace catalog (CORDUM_PACK_CATALOG_URL / _ID / _TITLE / _DEFAULT_DISABLED); never fetched by the sandbox. */
  packCatalog: { id: string; title: string; url: string; enabled: boolean };
}

/** What every component gets when it starts. */
export interface SandboxDeps {
  redis: Redis;
  nc: NatsConnection;
  bus: SandboxBus;
  config: SandboxConfig;
  faults: Faults;
  log: (component: string, msg: string) => void;
}

/** Outcome of handling one durable message: ack it, or NAK it for redelivery after a delay. */
export type DeliveryOutcome = 'ack' | { nakDelayMs: number };

export interface SandboxBus {
  /** JetStream publish with Cordum's Nats-Msg-Id de-duplication id (§4.4). */
  publishDurable(subject: string, packet: BusPacket, msgId?: string): Promise<void>;
  /** Core NATS publish (no de-duplication). */
  publishCore(subject: string, packet: BusPacket): void;
  /**
   * Durable push consumer as Cordum creates it: name `dur_<queue>__<subject>` (dots to underscores),
   * deliver group = queue, AckExplicit, MaxDeliver unlimited. Handler errors are logged and ACKed.
   */
  consumeDurable(
    opts: { subject: string; queue?: string; stream: 'CORDUM_SYS' | 'CORDUM_JOBS' },
    handler: (packet: BusPacket, meta: { redelivered: boolean; deliveryCount: number }) => Promise<DeliveryOutcome>,
  ): Promise<{ stop(): Promise<void> }>;
  /** Core subscription decoding CAP packets (undecodable bodies are logged and dropped). */
  subscribe(subject: string, handler: (packet: BusPacket, subject: string) => void, queue?: string): { unsubscribe(): void };
}

/** A component's lifecycle handle. */
export interface Component {
  name: string;
  stop(): Promise<void>;
}

export const JOB_STATES = [
  'PENDING',
  'APPROVAL_REQUIRED',
  'SCHEDULED',
  'DISPATCHED',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'DENIED',
] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'DENIED'];

/** One safety check as stored in job:decisions:<id> (runtime.md §5.1). */
export interface SafetyDecisionRecord {
  decision: 'ALLOW' | 'DENY' | 'REQUIRE_APPROVAL' | 'THROTTLE' | 'ALLOW_WITH_CONSTRAINTS' | string;
  reason?: string;
  rule_id?: string;
  policy_snapshot?: string;
  constraints?: unknown;
  remediations?: unknown[];
  approval_required?: boolean;
  approval_ref?: string;
  job_hash?: string;
  checked_at: number; // µs
}

/**
 * The Redis job store (runtime.md §1.2, §5.1): keys job:meta:<id> (HASH), job:state:<id>,
 * job:req:<id> (protojson, camelCase), job:events:<id>, job:decisions:<id>, job:index:<state>,
 * job:recent, job:deadline, job:tenant:active:<tenant>, job:idempotency:<tenant>:<key>, trace:<id>.
 * Implemented in sandbox/stores/jobs.ts by createJobStore(redis, config).
 */
export interface JobStore {
  /** Enforces the transition table; same-state is accepted; throws `invalid transition X -> Y`. */
  setState(jobId: string, state: JobState): Promise<void>;
  /** CancelJob: any non-terminal -> CANCELLED atomically; returns the state after the call. */
  cancel(jobId: string): Promise<{ state: string; alreadyTerminal: boolean } | null>;
  getState(jobId: string): Promise<string | null>;
  getMeta(jobId: string): Promise<Record<string, string>>;
  /** HSET fields on job:meta:<id> (values already strings) and refresh the TTL. */
  setMetaFields(jobId: string, fields: Record<string, string>): Promise<void>;
  /** Scheduler/gateway meta write from a JobRequest (resets attempts to 0, as Cordum does). */
  setJobMeta(req: import('../helpers/cap/codec.js').JobRequest, extra?: { traceId?: string }): Promise<void>;
  putRequest(req: import('../helpers/cap/codec.js').JobRequest): Promise<void>;
  getRequest(jobId: string): Promise<import('../helpers/cap/codec.js').JobRequest | null>;
  incrAttempts(jobId: string): Promise<number>;
  addDecision(jobId: string, d: SafetyDecisionRecord): Promise<void>;
  listDecisions(jobId: string, limit: number): Promise<SafetyDecisionRecord[]>;
  setResultPtr(jobId: string, ptr: string): Promise<void>;
  addToTrace(traceId: string, jobId: string): Promise<void>;
  setDeadline(jobId: string, unixSeconds: number): Promise<void>;
  /** Job ids whose deadline has passed. */
  dueDeadlines(nowUnixS: number): Promise<string[]>;
  /** Ids in job:index:<state>, oldest first. */
  idsInState(state: JobState, limit: number): Promise<string[]>;
}
