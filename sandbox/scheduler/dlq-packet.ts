// The DLQ packet Cordum publishes on sys.job.dlq (runtime.md §3.1): a JobResult with the original
// status and error code/message, trace_id = job id, empty worker_id/result_ptr. Durable publish
// with msg id `sys.job.dlq:<job_id>`.
import type { SandboxBus } from '../types.js';

export const DLQ_SUBJECT = 'sys.job.dlq';

export async function publishDlq(
  bus: SandboxBus,
  p: { jobId: string; status: number; code: string; message: string; sender: 'cordum-scheduler' | 'api-gateway' },
): Promise<void> {
  await bus.publishDurable(
    DLQ_SUBJECT,
    {
      trace_id: p.jobId,
      sender_id: p.sender,
      created_at: Date.now(),
      job_result: { job_id: p.jobId, status: p.status, error_code: p.code, error_message: p.message },
    },
    `${DLQ_SUBJECT}:${p.jobId}`,
  );
}
