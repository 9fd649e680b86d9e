// Turns a kernel response into the job:decisions record and the job:meta safety fields
// (runtime.md §5.1). Stored JSON uses proto field names (snake_case), as Cordum's store does.
import type { SafetyDecisionRecord } from '../types.js';
import { decisionRecordName, type PolicyCheckResponse } from '../kernel/wire.js';

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

/** camelCase protojson -> proto-name JSON (map keys such as add_labels entries are left alone). */
export function protoNames(v: unknown, mapKeys = false): unknown {
  if (Array.isArray(v)) return v.map((x) => protoNames(x));
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => {
        const key = mapKeys ? k : snake(k);
        return [key, protoNames(x, key === 'add_labels')];
      }),
    );
  }
  return v;
}

export function decisionRecord(res: PolicyCheckResponse, jobHash: string, nowUs: number): SafetyDecisionRecord {
  return {
    decision: decisionRecordName(res.decision),
    reason: res.reason || undefined,
    rule_id: res.ruleId || undefined,
    policy_snapshot: res.policySnapshot || undefined,
    constraints: res.constraints ? protoNames(res.constraints) : undefined,
    remediations: res.remediations?.length ? (protoNames(res.remediations) as unknown[]) : undefined,
    approval_required: res.approvalRequired || undefined,
    approval_ref: res.approvalRef || undefined,
    job_hash: jobHash || undefined,
    checked_at: nowUs,
  };
}

export function safetyMetaFields(rec: SafetyDecisionRecord): Record<string, string> {
  return {
    safety_decision: rec.decision,
    safety_reason: rec.reason ?? '',
    safety_rule_id: rec.rule_id ?? '',
    safety_snapshot: rec.policy_snapshot ?? '',
    safety_checked_at: String(rec.checked_at),
    safety_constraints: rec.constraints ? JSON.stringify(rec.constraints) : '',
    safety_remediations: rec.remediations ? JSON.stringify(rec.remediations) : '',
    // go-redis writes a Go bool as "1"/"0" (the reason approval_required reads back false).
    safety_approval_required: rec.approval_required ? '1' : '0',
    safety_approval_ref: rec.approval_ref ?? '',
    safety_job_hash: rec.job_hash ?? '',
  };
}

export const nowMicros = () => Date.now() * 1000;

/** Proto-name JSON back to protojson camelCase (used when an approval reuses stored constraints). */
export function camelNames(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camelNames);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), camelNames(x)]));
  }
  return v;
}
