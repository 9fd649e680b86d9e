// Shapes of Cordum gateway requests and responses, as far as runbooks read them. Plain-JSON routes
// are snake_case; protojson routes (policy decisions) are lowerCamelCase. Fields Cordum omits when
// empty are optional; index signatures keep unknown fields reachable without casts.

export interface Page<T> {
  items: T[] | null;
  next_cursor: number | null;
}

export interface StatusResponse {
  time: string;
  uptime_seconds: number;
  build: { version: string; commit: string; date: string };
  nats: { connected: boolean; status: string; url: string };
  redis: { ok: boolean; error: string };
  workers: { count: number };
  [k: string]: unknown;
}

export interface WorkerHeartbeat {
  worker_id?: string;
  region?: string;
  type?: string;
  cpu_load?: number;
  gpu_utilization?: number;
  active_jobs?: number;
  capabilities?: string[];
  pool?: string;
  max_parallel_jobs?: number;
  labels?: Record<string, string>;
}

export interface SubmitJobBody {
  prompt: string;
  topic?: string;
  context?: unknown;
  adapter_id?: string;
  priority?: 'interactive' | 'batch' | 'critical';
  org_id?: string;
  tenant_id?: string;
  principal_id?: string;
  actor_id?: string;
  actor_type?: 'human' | 'service';
  idempotency_key?: string;
  pack_id?: string;
  capability?: string;
  risk_tags?: string[];
  requires?: string[];
  tags?: string[];
  labels?: Record<string, string>;
  team_id?: string;
  project_id?: string;
  memory_id?: string;
  context_mode?: string;
  max_input_tokens?: number;
  max_output_tokens?: number;
  max_total_tokens?: number;
  deadline_ms?: number;
  allow_summarization?: boolean;
  allow_retrieval?: boolean;
}

export interface SubmitJobResponse {
  job_id: string;
  trace_id: string;
}

export type JobState =
  | 'PENDING'
  | 'APPROVAL_REQUIRED'
  | 'SCHEDULED'
  | 'DISPATCHED'
  | 'RUNNING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'CANCELLED'
  | 'TIMEOUT'
  | 'DENIED';

export interface ListJobsQuery {
  limit?: number;
  /** Microseconds since epoch. */
  cursor?: number;
  state?: string;
  topic?: string;
  tenant?: string;
  team?: string;
  trace_id?: string;
  updated_after?: number;
  updated_before?: number;
}

export interface JobRecord {
  id: string;
  /** Microseconds since epoch. */
  updated_at: number;
  state: JobState | string;
  trace_id?: string;
  topic?: string;
  tenant?: string;
  principal?: string;
  attempts?: number;
  safety_decision?: string;
  safety_reason?: string;
  safety_rule_id?: string;
  safety_snapshot?: string;
  [k: string]: unknown;
}

export interface JobDetail {
  id: string;
  state: JobState | string;
  trace_id: string;
  topic: string;
  tenant: string;
  attempts: number;
  context_ptr: string;
  context: unknown;
  result_ptr: string;
  result: unknown;
  safety_decision: string;
  safety_reason: string;
  safety_rule_id: string;
  safety_snapshot: string;
  labels: Record<string, string>;
  error_message?: string;
  error_status?: string;
  error_code?: string;
  last_state?: string;
  approval_by?: string;
  approval_role?: string;
  /** Microseconds since epoch. */
  approval_at?: number;
  [k: string]: unknown;
}

export interface SafetyDecisionRecord {
  decision?: string;
  reason?: string;
  rule_id?: string;
  policy_snapshot?: string;
  constraints?: unknown;
  approval_required?: boolean;
  approval_ref?: string;
  job_hash?: string;
  remediations?: unknown[];
  /** Microseconds since epoch. */
  checked_at?: number;
}

export interface CancelJobResponse {
  id: string;
  state: string;
  reason?: string;
}

export interface WorkflowStepDef {
  name?: string;
  type: string;
  topic?: string;
  worker_id?: string;
  depends_on?: string[];
  condition?: string;
  input?: Record<string, unknown>;
  retry?: { max_retries?: number; initial_backoff_sec?: number; max_backoff_sec?: number; multiplier?: number };
  timeout_sec?: number;
  delay_sec?: number;
  route_labels?: Record<string, string>;
  meta?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface WorkflowDefinition {
  id?: string;
  org_id?: string;
  name?: string;
  description?: string;
  version?: string;
  timeout_sec?: number;
  input_schema?: Record<string, unknown>;
  /** An object keyed by step id, NOT an array. */
  steps: Record<string, WorkflowStepDef>;
  [k: string]: unknown;
}

export interface Workflow extends WorkflowDefinition {
  id: string;
  created_at: string;
  updated_at: string;
}

export type RunStatus = 'pending' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled' | 'timed_out';

export interface StepRun {
  step_id: string;
  status: RunStatus | string;
  attempts?: number;
  job_id?: string;
  output?: unknown;
  error?: { message?: string } | null;
  [k: string]: unknown;
}

export interface WorkflowRun {
  id: string;
  workflow_id: string;
  org_id: string;
  status: RunStatus | string;
  input: Record<string, unknown>;
  steps: Record<string, StepRun>;
  started_at: string | null;
  completed_at: string | null;
  error: unknown;
  created_at: string;
  updated_at: string;
  [k: string]: unknown;
}

export interface ListRunsQuery {
  limit?: number;
  /** Unix SECONDS (unlike job cursors). */
  cursor?: number;
  status?: string;
  workflow_id?: string;
  org_id?: string;
  team_id?: string;
  updated_after?: number;
  updated_before?: number;
}

export interface TimelineEvent {
  time: string;
  type: string;
  run_id?: string;
  workflow_id?: string;
  step_id?: string;
  job_id?: string;
  status?: string;
  result_ptr?: string;
  message?: string;
  data?: Record<string, unknown>;
}

export interface ApprovalItem {
  job: JobRecord;
  decision: string;
  policy_snapshot?: string;
  policy_rule_id?: string;
  policy_reason?: string;
  constraints?: unknown;
  job_hash?: string;
  approval_required?: boolean;
  approval_ref?: string;
}

export interface DlqEntry {
  job_id: string;
  created_at: string;
  topic?: string;
  status?: string;
  reason?: string;
  reason_code?: string;
  last_state?: string;
  attempts?: number;
}

export interface PolicyCheckBody {
  topic: string;
  tenant?: string;
  job_id?: string;
  principal_id?: string;
  priority?: string;
  memory_id?: string;
  team_id?: string;
  workflow_id?: string;
  step_id?: string;
  estimated_cost?: number;
  budget?: { max_input_tokens?: number; max_output_tokens?: number; max_total_tokens?: number; deadline_ms?: number };
  labels?: Record<string, string>;
  meta?: {
    tenant_id?: string;
    actor_id?: string;
    actor_type?: string;
    idempotency_key?: string;
    capability?: string;
    risk_tags?: string[];
    requires?: string[];
    pack_id?: string;
    labels?: Record<string, string>;
  };
  effective_config?: unknown;
}

/** protojson: camelCase, enum names, int64 as strings. */
export interface PolicyDecision {
  decision: string;
  reason: string;
  policySnapshot: string;
  ruleId: string;
  constraints: Record<string, unknown> | null;
  approvalRequired: boolean;
  approvalRef: string;
  remediations?: Record<string, unknown>[];
  [k: string]: unknown;
}

export interface PolicyRulesResponse {
  items: Record<string, unknown>[] | null;
  errors?: { fragment_id: string; error: string }[];
}

export interface BundleSummary {
  id: string;
  enabled: boolean;
  source: string;
  author?: string;
  message?: string;
  created_at?: string;
  updated_at?: string;
  sha256?: string;
  [k: string]: unknown;
}

export interface BundlesResponse {
  bundles: Record<string, Record<string, unknown>> | null;
  items: BundleSummary[] | null;
  updated_at: string;
}

export interface Bundle {
  id: string;
  content: string;
  enabled: boolean;
  author?: string;
  message?: string;
  created_at?: string;
  updated_at?: string;
}

export interface BundleSnapshotSummary {
  id: string;
  created_at: string;
  note?: string;
}

export interface BundleSnapshot extends BundleSnapshotSummary {
  bundles: Record<string, Record<string, unknown>>;
}

export interface PublishResponse {
  snapshot_before: string;
  snapshot_after: string;
  published: string[];
}

export interface RollbackResponse {
  snapshot_before: string;
  snapshot_after: string;
  rollback_to: string;
}

export interface PolicyAuditEntry {
  id: string;
  action: 'publish' | 'rollback' | string;
  actor_id?: string;
  role?: string;
  bundle_ids?: string[];
  message?: string;
  snapshot_before?: string;
  snapshot_after?: string;
  created_at: string;
}

export interface ConfigDocument {
  scope: string;
  scope_id: string;
  data: Record<string, unknown>;
  revision: number;
  updated_at: string;
  meta?: Record<string, unknown>;
}

export interface EffectiveConfig {
  version: string;
  hash: string;
  data: Record<string, unknown>;
}

export interface Lock {
  resource: string;
  mode: 'exclusive' | 'shared';
  owners: Record<string, number>;
  updated_at: string;
  expires_at: string;
}

export interface PutArtifactBody {
  content?: string;
  content_base64?: string;
  content_type?: string;
  retention?: 'short' | 'standard' | 'audit';
  labels?: Record<string, string>;
}

export interface Artifact {
  artifact_ptr: string;
  content_base64: string;
  metadata: { content_type?: string; size_bytes: number; retention: string; labels?: Record<string, string> };
}

export interface MemoryResponse {
  pointer: string;
  key: string;
  kind: 'context' | 'result' | 'memory';
  size_bytes: number;
  base64: string;
  text?: string;
  json?: unknown;
}
