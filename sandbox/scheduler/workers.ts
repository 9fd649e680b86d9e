// Live worker view from sys.heartbeat (core subscription, no queue: every scheduler replica sees
// every heartbeat). Entries expire 30 s after their last heartbeat, Cordum's fixed registry TTL.
import type { Heartbeat } from '../../helpers/cap/codec.js';

export const WORKER_TTL_MS = 30_000;

export interface WorkerEntry {
  hb: Heartbeat;
  seenAt: number;
}

export class WorkerRegistry {
  private readonly entries = new Map<string, WorkerEntry>();

  observe(hb: Heartbeat, now = Date.now()): void {
    this.entries.set(hb.worker_id ?? `pool:${hb.pool ?? ''}`, { hb, seenAt: now });
  }

  /** Heartbeats seen in the last 30 s. */
  live(now = Date.now()): Heartbeat[] {
    const out: Heartbeat[] = [];
    for (const [id, e] of this.entries) {
      if (now - e.seenAt <= WORKER_TTL_MS) out.push(e.hb);
      else this.entries.delete(id);
    }
    return out;
  }
}
