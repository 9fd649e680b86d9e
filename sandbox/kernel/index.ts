// STUB: owned by the safety-kernel/scheduler engineer; replaced with the real implementation.
import type { Component, SandboxDeps } from '../types.js';

/** The safety kernel: serves Check/Evaluate/Simulate/Explain/ListSnapshots over NATS request-reply. */
export async function startSafetyKernel(_deps: SandboxDeps): Promise<Component> {
  return { name: 'safety-kernel', stop: async () => {} };
}
