// Step retry policy (runtime.md §2.3): FAILED, DENIED and TIMEOUT results are retried while
// attempts <= max_retries; backoff = initial × multiplier^(attempt−1), capped, whole seconds.
import type { RetryPolicy } from './models.js';

/** JobStatus numbers that may be retried. */
export const RETRYABLE_STATUSES: readonly number[] = [6 /* FAILED */, 8 /* DENIED */, 9 /* TIMEOUT */];

export function shouldRetry(policy: RetryPolicy | undefined, status: number, attempts: number): boolean {
  const max = policy?.max_retries ?? 0;
  return max > 0 && RETRYABLE_STATUSES.includes(status) && attempts <= max;
}

/** Delay before the next attempt after `attempt` (1-based) failed, in ms. */
export function backoffMs(policy: RetryPolicy | undefined, attempt: number): number {
  const initial = policy?.initial_backoff_sec && policy.initial_backoff_sec > 0 ? policy.initial_backoff_sec : 1;
  // Cordum treats any multiplier <= 1 (including "unset") as 2.
  const mult = policy?.multiplier && policy.multiplier > 1 ? policy.multiplier : 2;
  let secs = initial * Math.pow(mult, Math.max(0, attempt - 1));
  if (policy?.max_backoff_sec && policy.max_backoff_sec > 0) secs = Math.min(secs, policy.max_backoff_sec);
  return Math.floor(secs) * 1000;
}
