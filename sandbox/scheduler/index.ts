// STUB: owned by the safety-kernel/scheduler engineer; replaced with the real implementation.
import type { Component, SandboxDeps } from '../types.js';

/** The scheduler: consumes sys.job.submit / sys.job.result, routes, dispatches, DLQs; metrics on its own port. */
export async function startScheduler(_deps: SandboxDeps, _opts: { metricsPort: number }): Promise<Component & { metricsUrl: string }> {
  return { name: 'scheduler', metricsUrl: '', stop: async () => {} };
}
