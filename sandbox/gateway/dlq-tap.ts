// The gateway's DLQ writer (runtime.md §3.2): durable consumer dur_sys_job_dlq on sys.job.dlq (no
// queue). Each JobResult becomes dlq:entry:<id>; the tap also overwrites res:<id> with a synthetic
// error body and points result_ptr at it when the job has none. Redis failures are logged and the
// packet is ACKed anyway (the entry is lost), as in Cordum. Fault `dlq-tap-down` consumes and drops.
import { jobStatusName } from '../../helpers/cap/codec.js';
import { createDlqStore, type DlqEntry } from '../stores/dlq.js';
import { createJobStore, keys, rfc3339Nano } from '../stores/jobs.js';
import type { Component, SandboxDeps } from '../types.js';

export async function startDlqTap(deps: SandboxDeps): Promise<Component> {
  const jobs = createJobStore(deps.redis, deps.config);
  const dlq = createDlqStore(deps.redis);
  const consumer = await deps.bus.consumeDurable({ subject: 'sys.job.dlq', stream: 'CORDUM_SYS' }, async (packet) => {
    const result = packet.job_result;
    if (!result?.job_id) return 'ack';
    if (deps.faults.has('dlq-tap-down')) return 'ack';
    const id = result.job_id;
    try {
      const meta = await jobs.getMeta(id);
      const state = await jobs.getState(id);
      const attempts = Number(meta.attempts ?? 0);
      const now = new Date();
      const status = jobStatusName(result.status);
      const entry: DlqEntry = {
        job_id: id,
        ...(meta.topic ? { topic: meta.topic } : {}),
        status,
        ...(result.error_message ? { reason: result.error_message } : {}),
        ...(result.error_code?.trim() ? { reason_code: result.error_code.trim() } : {}),
        ...(state ? { last_state: state } : {}),
        ...(attempts > 0 ? { attempts } : {}),
        created_at: rfc3339Nano(now),
      };
      await dlq.put(entry);
      const body = {
        job_id: id,
        status,
        error: { message: result.error_message ?? '' },
        processed_by: 'cordum-scheduler',
        completed_at: rfc3339Nano(now),
      };
      await deps.redis.set(keys.res(id), JSON.stringify(body), 'EX', deps.config.dataTtlS);
      const ptr = meta.result_ptr || (await deps.redis.get(keys.resultPtr(id)));
      if (!ptr) await jobs.setResultPtr(id, `redis://res:${id}`);
    } catch (err) {
      deps.log('gateway', `dlq tap: write for ${id} failed (packet acked, entry lost): ${(err as Error).message}`);
    }
    return 'ack';
  });
  return { name: 'dlq-tap', stop: () => consumer.stop() };
}
