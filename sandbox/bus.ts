// The sandbox's NATS bus, shaped like Cordum's in JetStream mode: two "ensured" streams, durable
// push consumers with Cordum's names and settings, Nats-Msg-Id de-duplication ids, binary CAP
// packets everywhere. Push consumers are consumed with a plain core subscription on the
// consumer's deliver subject (queue = deliver group); acks are "+ACK" / "-NAK {delay}" replies,
// which is exactly what the Go client sends and works on nats-server 2.9.
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { decodePacket, encodePacket, type BusPacket } from '../helpers/cap/codec.js';
import type { DeliveryOutcome, SandboxBus } from './types.js';

const NS_PER_MS = 1_000_000;
const HOUR_NS = 3600 * 1000 * NS_PER_MS;

export const STREAM_SUBJECTS = {
  CORDUM_SYS: ['sys.>'],
  CORDUM_JOBS: ['job.>', 'worker.*.jobs'],
} as const;
export type StreamName = keyof typeof STREAM_SUBJECTS;

export const CONSUMER_DEFAULTS = {
  ackWaitMs: 10 * 60 * 1000,
  maxAckPending: 2048,
};

/**
 * Create CORDUM_SYS and CORDUM_JOBS if absent. Like Cordum's AddStream this is "ensure": an existing
 * stream keeps its config even when it differs (storage, max age ...).
 */
export async function ensureStreams(jsm: JetStreamManager, opts: { storage: 'file' | 'memory'; maxAgeHours?: number; replicas?: number }): Promise<void> {
  for (const [name, subjects] of Object.entries(STREAM_SUBJECTS)) {
    try {
      await jsm.streams.info(name);
      continue; // exists: keep whatever it has
    } catch (err) {
      if (!/not found/i.test(String((err as Error).message))) throw err;
    }
    try {
      await jsm.streams.add({
        name,
        subjects: [...subjects],
        storage: opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
        retention: RetentionPolicy.Limits,
        num_replicas: opts.replicas ?? 1,
        max_age: (opts.maxAgeHours ?? 168) * HOUR_NS,
        duplicate_window: 2 * 60 * 1000 * NS_PER_MS,
      });
    } catch (err) {
      // Lost a creation race with another component: fine as long as it exists now.
      await jsm.streams.info(name).catch(() => {
        throw err;
      });
    }
  }
}

/** Cordum's durable name: `dur_` + [queue with dots as underscores + `__`] + subject with dots as underscores. */
export function durableName(subject: string, queue?: string): string {
  const q = queue ? `${queue.replace(/\./g, '_')}__` : '';
  return `dur_${q}${subject.replace(/\./g, '_')}`;
}

/** The Nats-Msg-Id Cordum puts on its durable publishes (runtime.md §4.4); undefined = no header. */
export function defaultMsgId(subject: string, packet: BusPacket): string | undefined {
  const req = packet.job_request;
  if (req) {
    const custom = req.labels?.['cordum.bus_msg_id'];
    if (custom) return `jobreq:${subject}:${custom}`;
    return req.job_id ? `jobreq:${req.job_id}` : undefined;
  }
  const res = packet.job_result;
  if (res && (subject === 'sys.job.result' || subject === 'sys.job.dlq') && res.job_id) return `${subject}:${res.job_id}`;
  return undefined;
}

/** Delivery count from a JetStream ack subject ($JS.ACK.[domain.hash.]stream.consumer.delivered.sseq.cseq.ts.pending). */
export function deliveryCountFromReply(reply: string | undefined): number {
  if (!reply?.startsWith('$JS.ACK.')) return 1;
  const t = reply.split('.');
  // v1 form has 9 tokens; v2 puts domain + account hash in front of the stream (and may append a token).
  const idx = t.length === 9 ? 4 : 6;
  const n = Number(t[idx]);
  return Number.isFinite(n) && n > 0 ? n : 1;
}

export interface Bus extends SandboxBus {
  /** Unsubscribe every consumer/subscription this bus created (connection stays open). */
  close(): Promise<void>;
}

export function createBus(nc: NatsConnection, log: (msg: string) => void = () => {}): Bus {
  const js = jetstream(nc);
  let jsmPromise: Promise<JetStreamManager> | undefined;
  const jsm = () => (jsmPromise ??= js.jetstreamManager());
  const stoppers = new Set<() => Promise<void>>();

  const bus: Bus = {
    async publishDurable(subject, packet, msgId) {
      const id = msgId ?? defaultMsgId(subject, packet);
      await js.publish(subject, encodePacket(packet), id ? { msgID: id } : undefined);
    },

    publishCore(subject, packet) {
      nc.publish(subject, encodePacket(packet));
    },

    async consumeDurable(opts, handler) {
      const name = durableName(opts.subject, opts.queue);
      const manager = await jsm();
      let deliverSubject: string | undefined;
      try {
        const info = await manager.consumers.info(opts.stream, name);
        deliverSubject = info.config.deliver_subject;
      } catch (err) {
        if (!/not found/i.test(String((err as Error).message))) throw err;
      }
      if (!deliverSubject) {
        deliverSubject = `_CORDUM.deliver.${name}`;
        await manager.consumers.add(opts.stream, {
          durable_name: name,
          deliver_subject: deliverSubject,
          ...(opts.queue ? { deliver_group: opts.queue } : {}),
          filter_subject: opts.subject,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: CONSUMER_DEFAULTS.ackWaitMs * NS_PER_MS,
          max_ack_pending: CONSUMER_DEFAULTS.maxAckPending,
        });
      }

      const inflight = new Set<Promise<void>>();
      const handle = async (msg: Msg) => {
        const reply = (body: string) => {
          if (msg.reply) msg.respond(body);
        };
        let packet: BusPacket;
        try {
          packet = decodePacket(msg.data);
        } catch (err) {
          // Cordum ACKs and drops bodies that are not CAP packets.
          log(`${name}: dropping undecodable message on ${msg.subject}: ${(err as Error).message}`);
          reply('+ACK');
          return;
        }
        const deliveryCount = deliveryCountFromReply(msg.reply);
        let outcome: DeliveryOutcome = 'ack';
        try {
          outcome = await handler(packet, { redelivered: deliveryCount > 1, deliveryCount });
        } catch (err) {
          // Non-retryable handler error: logged and ACKed (the message is gone), as in Cordum.
          log(`${name}: handler error (acked): ${(err as Error).message}`);
          outcome = 'ack';
        }
        if (outcome === 'ack') reply('+ACK');
        else reply(`-NAK ${JSON.stringify({ delay: Math.max(0, Math.round(outcome.nakDelayMs)) * NS_PER_MS })}`);
      };

      const sub: Subscription = nc.subscribe(deliverSubject, {
        ...(opts.queue ? { queue: opts.queue } : {}),
        callback: (err, msg) => {
          if (err) return log(`${name}: subscription error: ${err.message}`);
          const p = handle(msg).finally(() => inflight.delete(p));
          inflight.add(p);
        },
      });
      await nc.flush();

      let stopped: Promise<void> | undefined;
      const stop = () =>
        (stopped ??= (async () => {
          stoppers.delete(stop);
          if (!sub.isClosed()) sub.unsubscribe();
          await Promise.allSettled([...inflight]);
        })());
      stoppers.add(stop);
      return { stop };
    },

    subscribe(subject, handler, queue) {
      const sub = nc.subscribe(subject, {
        ...(queue ? { queue } : {}),
        callback: (err, msg) => {
          if (err) return log(`subscribe ${subject}: ${err.message}`);
          let packet: BusPacket;
          try {
            packet = decodePacket(msg.data);
          } catch (e) {
            log(`subscribe ${subject}: dropping undecodable message: ${(e as Error).message}`);
            return;
          }
          try {
            handler(packet, msg.subject);
          } catch (e) {
            log(`subscribe ${subject}: handler error: ${(e as Error).message}`);
          }
        },
      });
      const unsubscribe = () => {
        stoppers.delete(stopSub);
        if (!sub.isClosed()) sub.unsubscribe();
      };
      const stopSub = async () => unsubscribe();
      stoppers.add(stopSub);
      return { unsubscribe };
    },

    async close() {
      await Promise.allSettled([...stoppers].map((s) => s()));
    },
  };
  return bus;
}
