// The profile's answers for a policy-impact run, with Cordum's defaults where the profile is silent:
// the tenant (TENANT_ID, "default"), the gateway's rate limit (50 rps, burst 100), the share of it
// the replay may use, and which flips fail the run.
import type { TargetProfile } from '../profile-types.js';
import { DEFAULT_FLIP_POLICY, FLIP_KINDS, type FlipKind, type FlipPolicy } from './flips.js';

export const CORDUM_DEFAULT_RPS = 50;
export const DEFAULT_RATE_SHARE = 0.5;

export interface ImpactSettings {
  tenant: string;
  /** What the gateway's limiter allows (API_RATE_LIMIT_RPS). */
  gatewayRps: number;
  /** The pace of the replay: gatewayRps × rate_share. */
  rps: number;
  rateShare: number;
  flips: FlipPolicy;
}

export function impactSettings(t: TargetProfile): ImpactSettings {
  const gatewayRps = t.gateway.rate_limit?.rps ?? CORDUM_DEFAULT_RPS;
  const rateShare = t.policy_impact?.rate_share ?? DEFAULT_RATE_SHARE;
  const forbid = (t.policy_impact?.forbid ?? DEFAULT_FLIP_POLICY.forbid).filter((k): k is FlipKind => (FLIP_KINDS as readonly string[]).includes(k));
  return {
    tenant: t.gateway.tenant ?? 'default',
    gatewayRps,
    rateShare,
    rps: Math.max(0.1, gatewayRps * rateShare),
    flips: { forbid, maxAllowToDenyShare: t.policy_impact?.max_allow_to_deny_share ?? DEFAULT_FLIP_POLICY.maxAllowToDenyShare },
  };
}

/**
 * Requests a replay of `jobs` jobs makes at most: list pages, one detail per job when Redis does
 * not give the request, two simulations per job, and the canary's three. Used for step deadlines.
 */
export function maxRequests(jobs: number): number {
  return 8 + jobs + 2 * jobs + 3;
}
