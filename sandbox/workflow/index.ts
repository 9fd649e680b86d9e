// STUB: owned by the workflow-engine engineer; replaced with the real implementation.
import type { Component, SandboxDeps } from '../types.js';

/** The workflow engine service: result consumer, reconciler, /health on its own port. */
export async function startWorkflowEngine(_deps: SandboxDeps, _opts: { healthPort: number }): Promise<Component & { healthUrl: string }> {
  return { name: 'workflow-engine', healthUrl: '', stop: async () => {} };
}
