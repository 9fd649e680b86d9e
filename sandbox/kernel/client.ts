// Client of the kernel's NATS request-reply service, used by the gateway and the scheduler.
// Every failure (no kernel listening, timeout, error reply) is a thrown Error whose message is
// what the gateway answers with 502, as Cordum does with the gRPC error text.
import type { NatsConnection } from '@nats-io/nats-core';
import { KERNEL_SUBJECTS, type KernelErrorReply, type ListSnapshotsResponse, type PolicyCheckRequest, type PolicyCheckResponse } from './wire.js';

export interface KernelClient {
  check(req: PolicyCheckRequest): Promise<PolicyCheckResponse>;
  evaluate(req: PolicyCheckRequest): Promise<PolicyCheckResponse>;
  simulate(req: PolicyCheckRequest): Promise<PolicyCheckResponse>;
  explain(req: PolicyCheckRequest): Promise<PolicyCheckResponse>;
  listSnapshots(): Promise<ListSnapshotsResponse>;
}

export class KernelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelError';
  }
}

export function createKernelClient(nc: NatsConnection, opts: { timeoutMs: number }): KernelClient {
  const call = async <T>(subject: string, body: unknown): Promise<T> => {
    let text: string;
    try {
      const m = await nc.request(subject, JSON.stringify(body ?? {}), { timeout: opts.timeoutMs });
      text = m.string();
    } catch (err) {
      const msg = (err as Error).message || String(err);
      // Shaped like a gRPC status so the 502 body reads like Cordum's.
      throw new KernelError(/no responders|503/i.test(msg) ? `rpc error: code = Unavailable desc = safety kernel unavailable (${msg})` : `rpc error: code = DeadlineExceeded desc = ${msg}`);
    }
    let parsed: T | KernelErrorReply;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new KernelError('rpc error: code = Internal desc = malformed kernel reply');
    }
    if (parsed && typeof parsed === 'object' && 'error' in parsed && typeof (parsed as KernelErrorReply).error === 'string') {
      throw new KernelError(`rpc error: code = Internal desc = ${(parsed as KernelErrorReply).error}`);
    }
    return parsed as T;
  };
  return {
    check: (req) => call(KERNEL_SUBJECTS.check, req),
    evaluate: (req) => call(KERNEL_SUBJECTS.evaluate, req),
    simulate: (req) => call(KERNEL_SUBJECTS.simulate, req),
    explain: (req) => call(KERNEL_SUBJECTS.explain, req),
    listSnapshots: () => call(KERNEL_SUBJECTS.listSnapshots, {}),
  };
}
