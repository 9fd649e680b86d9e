// The scheduler's side of the safety kernel (runtime.md §7.6): 2 s per call, any error becomes
// DENY "safety kernel error: ...", three consecutive failures open a 30 s circuit (DENY "safety
// kernel circuit open"), half-open lets probes through and two successes close it.
import type { KernelClient } from '../kernel/client.js';
import type { PolicyCheckRequest, PolicyCheckResponse } from '../kernel/wire.js';

const OPEN_MS = 30_000;

export function denyResponse(reason: string): PolicyCheckResponse {
  return {
    decision: 'DECISION_TYPE_DENY',
    reason,
    redactedContextPtr: '',
    policySnapshot: '',
    ruleId: '',
    constraints: null,
    approvalRequired: false,
    approvalRef: '',
    remediations: [],
  };
}

export function createSafetyChecker(client: KernelClient) {
  let failures = 0;
  let openUntil = 0;
  let halfOpenSuccesses = 0;
  return async (req: PolicyCheckRequest): Promise<PolicyCheckResponse> => {
    const now = Date.now();
    if (openUntil > now) return denyResponse('safety kernel circuit open');
    try {
      const res = await client.check(req);
      if (openUntil) {
        // Half-open: two successes close the circuit.
        if (++halfOpenSuccesses >= 2) {
          openUntil = 0;
          halfOpenSuccesses = 0;
        }
      }
      failures = 0;
      return res;
    } catch (err) {
      halfOpenSuccesses = 0;
      if (++failures >= 3) {
        openUntil = Date.now() + OPEN_MS;
        failures = 0;
      }
      return denyResponse(`safety kernel error: ${(err as Error).message}`);
    }
  };
}
