// The workflow-engine service: the durable result consumer
// dur_cordum-workflow-engine__sys_job_result (queue cordum-workflow-engine), the reconciler, and
// the /health listener. The engine itself (engine.ts) is shared with the gateway's routes.
import type { Component, SandboxDeps } from '../types.js';
import { WorkflowEngine } from './engine.js';
import { startHealthServer } from './health.js';
import { Reconciler } from './reconciler.js';

export { WorkflowEngine } from './engine.js';
export { EngineError } from './errors.js';
export { Reconciler } from './reconciler.js';

export const ENGINE_QUEUE = 'cordum-workflow-engine';

/** The workflow engine service: result consumer, reconciler, /health on its own port. */
export async function startWorkflowEngine(deps: SandboxDeps, opts: { healthPort: number }): Promise<Component & { healthUrl: string }> {
  const engine = new WorkflowEngine(deps);
  const consumer = await deps.bus.consumeDurable({ subject: 'sys.job.result', queue: ENGINE_QUEUE, stream: 'CORDUM_SYS' }, async (packet) => {
    if (!packet.job_result) return 'ack';
    return engine.applyResult(packet.job_result);
  });
  const reconciler = new Reconciler(deps, engine, deps.config.workflowScanIntervalMs);
  reconciler.start();
  const health = await startHealthServer(opts.healthPort);
  return {
    name: 'workflow-engine',
    healthUrl: health.url,
    stop: async () => {
      await consumer.stop();
      await reconciler.stop();
      engine.stop();
      await health.close();
    },
  };
}
