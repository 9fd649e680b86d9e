// DLQ detection latency: inject a failure (a job on the unmapped topic), see the sys.job.dlq packet
// on a NATS subscription, then the entry through the API; next to the platform's own time to write
// it (the DLQ packet's created_at minus the submit time).
import { connectBus } from '../helpers/bus.js';
import { GatewayClient } from '../helpers/gateway.js';
import { goalBelow, medianOf, type BenchResult, type Figure } from './stats.js';
import type { BenchContext } from './index.js';

export async function benchDlq(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const sb = await ctx.sandbox();
  const gw = new GatewayClient(sb.profile);
  const bus = await connectBus(sb.profile, { name: 'cordum-bench' });
  const fig = (name: string, note?: string): Figure => ({ bench: 'dlq', name, unit: 'ms', values: [], ...(note ? { note } : {}) });
  const F = {
    platform: fig("platform's time: submit sent → DLQ packet created_at"),
    packet: fig('submit sent → sys.job.dlq packet received'),
    api: fig('submit sent → entry listed by GET /api/v1/dlq'),
    over: fig('detection over platform: created_at → entry seen via API'),
    overPacket: fig('detection over platform: created_at → packet received'),
  };
  const n = ctx.reps.fast;
  let polls = 0;
  try {
    // One warm-up injection (connections, JIT) that is not counted.
    for (let i = -1; i < n; i++) {
      const sub = bus.subscribe('sys.job.dlq');
      try {
        await bus.nc.flush(); // the subscription is known to the server before the injection
        const sent = Date.now();
        const { job_id } = await gw.submitJob({ prompt: `pnpm bench dlq ${i}`, topic: sb.profile.routing.unmapped_topic });
        const rp = await sub.next((p) => p.packet.job_result?.job_id === job_id, { timeoutMs: 10_000, what: `DLQ packet for ${job_id}` });
        // The packet is the event; the API is read right after it, then re-read until it lists the entry.
        let listed = false;
        const deadline = Date.now() + 10_000;
        while (!listed) {
          polls++;
          listed = (await gw.dlqList(500)).some((e) => e.job_id === job_id);
          if (!listed) {
            if (Date.now() > deadline) throw new Error(`DLQ entry ${job_id} not listed within 10 s of its packet`);
            await new Promise((r) => setTimeout(r, 5));
          }
        }
        const seen = Date.now();
        const created = Number(rp.packet.created_at);
        if (i >= 0) {
          F.platform.values.push(created - sent);
          F.packet.values.push(rp.receivedAt - sent);
          F.api.values.push(seen - sent);
          F.over.values.push(seen - created);
          F.overPacket.values.push(rp.receivedAt - created);
        }
        await gw.dlqDelete(job_id).catch(() => {});
      } finally {
        sub.stop();
      }
    }
  } finally {
    await bus.close();
    await gw.close();
  }
  const figures = Object.values(F);
  ctx.progress(`dlq: ${n} injections`);
  return {
    name: 'dlq',
    title: 'DLQ detection latency',
    method: [
      'Against a sandbox: a NATS subscription on sys.job.dlq is opened (and flushed), then a job is submitted through the API on routing.unmapped_topic, which the scheduler dead-letters with no_pool_mapping. ' +
        'Detection is event-driven: the DLQ packet is awaited on the subscription, then GET /api/v1/dlq is read until it lists the job (re-read every 5 ms if the gateway has not persisted it yet).',
      "The platform's own time is the DLQ packet's created_at (set by the scheduler when it writes the packet) minus the moment the submit was sent; both clocks are this machine's. created_at has millisecond resolution.",
      `One warm-up injection is not counted; ${n} are. Each entry is deleted afterwards.`,
    ],
    figures,
    goals: [goalBelow('event-driven detection under 100 ms over the platform\'s time', medianOf(figures, F.over.name), 100, 'ms')],
    notes: [`API reads needed in total: ${polls} for ${n + 1} injections (1 per injection means the entry was already listed when the packet arrived).`],
    durationMs: performance.now() - t0,
  };
}
