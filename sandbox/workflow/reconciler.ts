// The workflow reconciler (runtime.md §6.1): every scan interval, under the lease lock
// cordum:workflow-engine:reconciler:default (TTL 2× interval), it re-kicks active runs so due
// retries/delays fire, and synthesises results for step jobs already terminal in the job store
// (how scheduler TIMEOUTs and DENIEDs reach a workflow when no result was published).
import type { SandboxDeps } from '../types.js';
import type { WorkflowEngine } from './engine.js';
import { LeaseLock, RECONCILER_LOCK_KEY } from './locks.js';
import { ACTIVE_RUN_STATUSES } from './models.js';

export const RUN_SCAN_LIMIT = 200;

export class Reconciler {
  private readonly lock: LeaseLock;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly deps: SandboxDeps,
    private readonly engine: WorkflowEngine,
    private readonly intervalMs: number,
  ) {
    this.lock = new LeaseLock(deps.redis, RECONCILER_LOCK_KEY);
  }

  start(): void {
    this.timer = setInterval(() => {
      // Never overlap two scans in one process.
      if (this.running || this.stopped) return;
      this.running = this.scanOnce()
        .then(() => undefined)
        .catch((err) => this.deps.log('workflow-engine', `reconcile: ${(err as Error).message}`))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One scan; returns the number of runs it re-kicked (0 when another holder has the lock). */
  async scanOnce(): Promise<number> {
    if (!(await this.lock.acquire(2 * this.intervalMs))) return 0;
    let kicked = 0;
    for (const status of ACTIVE_RUN_STATUSES) {
      for (const runId of await this.engine.store.runIdsInStatus(status, RUN_SCAN_LIMIT)) {
        if (this.stopped) return kicked;
        if (await this.engine.kick(runId, { synthesise: true })) kicked++;
      }
    }
    return kicked;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await this.lock.release().catch(() => {});
  }
}
