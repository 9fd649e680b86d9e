// Messages of the kernel's NATS request-reply service (the sandbox's stand-in for Cordum's gRPC
// SafetyKernel). Requests use the proto field names (snake_case, which protojson also accepts);
// responses are protojson as Cordum's gateway emits them: lowerCamelCase, zero values present,
// enum names, int64 as strings. The gateway can therefore pass responses through untouched.

export const KERNEL_SUBJECTS = {
  check: 'sandbox.safety.v1.Check',
  evaluate: 'sandbox.safety.v1.Evaluate',
  simulate: 'sandbox.safety.v1.Simulate',
  explain: 'sandbox.safety.v1.Explain',
  listSnapshots: 'sandbox.safety.v1.ListSnapshots',
} as const;

export type DecisionType =
  | 'DECISION_TYPE_UNSPECIFIED'
  | 'DECISION_TYPE_ALLOW'
  | 'DECISION_TYPE_DENY'
  | 'DECISION_TYPE_REQUIRE_HUMAN'
  | 'DECISION_TYPE_THROTTLE'
  | 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS';

export interface PolicyCheckRequest {
  job_id?: string;
  topic?: string;
  tenant?: string;
  priority?: string | number;
  estimated_cost?: number;
  budget?: { max_input_tokens?: number; max_output_tokens?: number; max_total_tokens?: number; deadline_ms?: number };
  principal_id?: string;
  labels?: Record<string, string>;
  memory_id?: string;
  /** The effective config (Cordum marshals it to bytes; here it travels as JSON). */
  effective_config?: unknown;
  meta?: {
    tenant_id?: string;
    actor_id?: string;
    /** 'human' | 'service' or the enum number (1/2). */
    actor_type?: string | number;
    idempotency_key?: string;
    capability?: string;
    risk_tags?: string[];
    requires?: string[];
    pack_id?: string;
    labels?: Record<string, string>;
  };
}

export interface ConstraintsJson {
  budgets: { maxRuntimeMs: string; maxRetries: number; maxArtifactBytes: string; maxConcurrentJobs: number };
  sandbox: { isolated: boolean; networkAllowlist: string[]; fsReadOnly: string[]; fsReadWrite: string[] };
  toolchain: { allowedTools: string[]; allowedCommands: string[] };
  diff: { maxFiles: number; maxLines: number; denyPathGlobs: string[] };
  redactionLevel: string;
}

export interface RemediationJson {
  id: string;
  title: string;
  summary: string;
  replacementTopic: string;
  replacementCapability: string;
  addLabels: Record<string, string>;
  removeLabels: string[];
}

export interface PolicyCheckResponse {
  decision: DecisionType;
  reason: string;
  redactedContextPtr: string;
  policySnapshot: string;
  ruleId: string;
  constraints: ConstraintsJson | null;
  approvalRequired: boolean;
  approvalRef: string;
  remediations: RemediationJson[];
}

export interface ListSnapshotsResponse {
  snapshots: string[];
}

/** Error envelope on the reply subject; the client turns it into a thrown Error with this text. */
export interface KernelErrorReply {
  error: string;
}

/** The decision strings used on job records, approvals and job:decisions. */
export function decisionRecordName(d: DecisionType): string {
  switch (d) {
    case 'DECISION_TYPE_ALLOW':
      return 'ALLOW';
    case 'DECISION_TYPE_DENY':
      return 'DENY';
    case 'DECISION_TYPE_REQUIRE_HUMAN':
      return 'REQUIRE_APPROVAL';
    case 'DECISION_TYPE_THROTTLE':
      return 'THROTTLE';
    case 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS':
      return 'ALLOW_WITH_CONSTRAINTS';
    default:
      return 'DENY'; // the scheduler-side client maps UNSPECIFIED/unknown to DENY
  }
}
