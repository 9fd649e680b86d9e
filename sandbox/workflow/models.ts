// The workflow engine's data model, shaped like Cordum's JSON (api.md §10.5-10.6): snake_case,
// lower-case statuses, RFC3339Nano timestamps. These objects are what Redis holds and what the
// gateway returns, so field order and presence matter more than TypeScript elegance.

export const RUN_STATUSES = ['pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'timed_out'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export type StepStatus = RunStatus;

export const TERMINAL_STEP_STATUSES: readonly StepStatus[] = ['succeeded', 'failed', 'cancelled', 'timed_out'];
export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled', 'timed_out'];
/** Statuses the reconciler scans (runtime.md §5.3). */
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ['pending', 'running', 'waiting'];

/** Step types handled inside the engine; every other type becomes a job (api.md §10.5). */
export const IN_ENGINE_STEP_TYPES = ['approval', 'condition', 'delay', 'notify'] as const;

export interface RetryPolicy {
  max_retries?: number;
  initial_backoff_sec?: number;
  max_backoff_sec?: number;
  multiplier?: number;
}

export interface StepMeta {
  actor_id?: string;
  actor_type?: string;
  idempotency_key?: string;
  pack_id?: string;
  capability?: string;
  risk_tags?: string[];
  requires?: string[];
  labels?: Record<string, string>;
}

export interface Step {
  id: string;
  name?: string;
  type?: string;
  topic?: string;
  worker_id?: string;
  depends_on?: string[];
  condition?: string;
  for_each?: string;
  max_parallel?: number;
  input?: Record<string, unknown>;
  input_schema?: Record<string, unknown>;
  input_schema_id?: string;
  output_path?: string;
  output_schema?: Record<string, unknown>;
  output_schema_id?: string;
  meta?: StepMeta;
  on_error?: string;
  retry?: RetryPolicy;
  timeout_sec?: number;
  delay_sec?: number;
  delay_until?: string;
  route_labels?: Record<string, string>;
}

export interface Workflow {
  id: string;
  org_id: string;
  team_id: string;
  name: string;
  description: string;
  version: string;
  timeout_sec: number;
  created_by: string;
  input_schema?: Record<string, unknown>;
  parameters?: Record<string, unknown>[];
  config?: Record<string, unknown>;
  steps: Record<string, Step>;
  created_at: string;
  updated_at: string;
}

export interface StepRun {
  step_id: string;
  status: StepStatus;
  started_at?: string;
  completed_at?: string;
  next_attempt_at?: string;
  attempts?: number;
  input?: unknown;
  output?: unknown;
  error?: { message: string };
  job_id?: string;
}

export interface WorkflowRun {
  id: string;
  workflow_id: string;
  org_id: string;
  team_id: string;
  input: Record<string, unknown>;
  context: Record<string, unknown> | null;
  status: RunStatus;
  started_at: string | null;
  completed_at: string | null;
  output: Record<string, unknown> | null;
  error: { message: string } | null;
  steps: Record<string, StepRun>;
  total_cost: number;
  triggered_by: string;
  created_at: string;
  updated_at: string;
  labels?: Record<string, string>;
  metadata?: Record<string, string>;
  idempotency_key?: string;
  rerun_of?: string;
  rerun_step?: string;
  dry_run?: boolean;
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

export function isTerminalStep(s: StepStatus | undefined): boolean {
  return s !== undefined && TERMINAL_STEP_STATUSES.includes(s);
}

export function isTerminalRun(s: RunStatus): boolean {
  return TERMINAL_RUN_STATUSES.includes(s);
}
