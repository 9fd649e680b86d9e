import { connect } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, type BusPacket } from '../../helpers/cap/codec.js';
import { createBus, defaultMsgId, deliveryCountFromReply, durableName, ensureStreams, type Bus } from '../../sandbox/bus.js';
import { startNats, type ManagedServer } from '../../helpers/processes.js';
import { pollUntil as until } from './sandbox-client.js';

let srv: ManagedServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let bus: Bus;

beforeAll(async () => {
  srv = await startNats();
  nc = await connect({ servers: srv.url });
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { storage: 'file' });
  bus = createBus(nc);
});
afterAll(async () => {
  await bus?.close();
  await nc?.close();
  await srv?.stop();
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('streams', () => {
  it('creates CORDUM_SYS and CORDUM_JOBS with Cordum settings; ensure keeps existing config', async () => {
    const sys = await jsm.streams.info('CORDUM_SYS');
    expect(sys.config.subjects).toEqual(['sys.>']);
    expect(sys.config.storage).toBe('file');
    expect(sys.config.retention).toBe('limits');
    expect(sys.config.max_age).toBe(168 * 3600 * 1e9);
    expect(sys.config.duplicate_window).toBe(120 * 1e9);
    expect((await jsm.streams.info('CORDUM_JOBS')).config.subjects).toEqual(['job.>', 'worker.*.jobs']);
    await ensureStreams(jsm, { storage: 'memory', maxAgeHours: 1 });
    const again = await jsm.streams.info('CORDUM_SYS');
    expect(again.config.storage).toBe('file');
    expect(again.config.max_age).toBe(168 * 3600 * 1e9);
  });
});

describe('names and ids', () => {
  it('durable names follow runtime.md §4.3', () => {
    expect(durableName('sys.job.submit', 'cordum-scheduler')).toBe('dur_cordum-scheduler__sys_job_submit');
    expect(durableName('sys.job.result', 'cordum-workflow-engine')).toBe('dur_cordum-workflow-engine__sys_job_result');
    expect(durableName('sys.job.dlq')).toBe('dur_sys_job_dlq');
  });
  it('Nats-Msg-Id follows runtime.md §4.4', () => {
    expect(defaultMsgId('sys.job.submit', { job_request: { job_id: 'j' } })).toBe('jobreq:j');
    expect(defaultMsgId('worker.w.jobs', { job_request: { job_id: 'j', labels: { 'cordum.bus_msg_id': 'approval:1' } } })).toBe('jobreq:worker.w.jobs:approval:1');
    expect(defaultMsgId('sys.job.dlq', { job_result: { job_id: 'j' } })).toBe('sys.job.dlq:j');
    expect(defaultMsgId('sys.heartbeat', { heartbeat: { worker_id: 'w' } })).toBeUndefined();
    expect(deliveryCountFromReply('$JS.ACK.CORDUM_SYS.dur_x.3.10.4.1700000000000000000.0')).toBe(3);
    expect(deliveryCountFromReply('$JS.ACK.dom.hash.CORDUM_SYS.dur_x.2.10.4.1700000000000000000.0.tok')).toBe(2);
  });
});

describe('durable consumers', () => {
  it('creates the push consumer as Cordum does and redelivers after a NAK delay', async () => {
    const seen: { count: number; redelivered: boolean; at: number }[] = [];
    const done = deferred<void>();
    const c = await bus.consumeDurable({ subject: 'sys.job.submit', queue: 'cordum-scheduler', stream: 'CORDUM_SYS' }, async (p, meta) => {
      if (p.job_request?.job_id !== 'nak-1') return 'ack';
      seen.push({ count: meta.deliveryCount, redelivered: meta.redelivered, at: Date.now() });
      if (meta.deliveryCount < 2) return { nakDelayMs: 300 };
      done.resolve();
      return 'ack';
    });
    const info = await jsm.consumers.info('CORDUM_SYS', 'dur_cordum-scheduler__sys_job_submit');
    expect(info.config).toMatchObject({
      durable_name: 'dur_cordum-scheduler__sys_job_submit',
      deliver_group: 'cordum-scheduler',
      ack_policy: 'explicit',
      ack_wait: 600 * 1e9,
      max_ack_pending: 2048,
      filter_subject: 'sys.job.submit',
    });
    expect(info.config.deliver_subject).toBeTruthy();
    await bus.publishDurable('sys.job.submit', { job_request: { job_id: 'nak-1', topic: 'job.default' } });
    await done.promise;
    expect(seen.map((s) => [s.count, s.redelivered])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(seen[1].at - seen[0].at).toBeGreaterThanOrEqual(250); // the delay was honoured
    await c.stop();
  });

  it('de-duplicates durable publishes by msg id; core publishes are never de-duplicated', async () => {
    const ids: string[] = [];
    const c = await bus.consumeDurable({ subject: 'sys.job.dlq', stream: 'CORDUM_SYS' }, async (p) => {
      ids.push(p.job_result?.job_id ?? '?');
      return 'ack';
    });
    expect((await jsm.consumers.info('CORDUM_SYS', 'dur_sys_job_dlq')).config.deliver_group).toBeUndefined();
    const pkt: BusPacket = { job_result: { job_id: 'dup-1', status: 6 } };
    await bus.publishDurable('sys.job.dlq', pkt);
    await bus.publishDurable('sys.job.dlq', pkt); // same Nats-Msg-Id inside the 2 min window: dropped
    bus.publishCore('sys.job.dlq', pkt); // no header: stored again
    await bus.publishDurable('sys.job.dlq', { job_result: { job_id: 'marker' } });
    // The marker comes last: once it is in, every earlier message has been delivered.
    await until('the marker message', async () => ids.includes('marker'), (seen) => seen);
    expect(ids.filter((i) => i === 'dup-1')).toHaveLength(2);
    await c.stop();
  });

  it('ACKs undecodable messages and handler errors (no redelivery)', async () => {
    const calls: string[] = [];
    const logs: string[] = [];
    const b2 = createBus(nc, (m) => logs.push(m));
    const c = await b2.consumeDurable({ subject: 'sys.job.result', queue: 'cordum-test', stream: 'CORDUM_SYS' }, async (p) => {
      calls.push(p.job_result?.job_id ?? '');
      if (p.job_result?.job_id === 'boom') throw new Error('kaboom');
      return 'ack';
    });
    nc.publish('sys.job.result', new Uint8Array([0xff, 0xff, 0xff, 0x01]));
    await bus.publishDurable('sys.job.result', { job_result: { job_id: 'boom' } });
    await bus.publishDurable('sys.job.result', { job_result: { job_id: 'after' } });
    await until("the message after the bad ones", async () => calls.includes('after'), (seen) => seen);
    // Acks are async replies: wait (bounded, failing on timeout) until the server has seen them all.
    const info = await until('every ack to reach the server', () => jsm.consumers.info('CORDUM_SYS', 'dur_cordum-test__sys_job_result'), (i) => i.num_ack_pending === 0);
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(logs.some((l) => l.includes('undecodable'))).toBe(true);
    expect(logs.some((l) => l.includes('kaboom'))).toBe(true);
    await c.stop();
    await b2.close();
  });

  it('subscribe decodes CAP packets on core subjects', async () => {
    const got = deferred<BusPacket>();
    const sub = bus.subscribe('sys.heartbeat', (p) => got.resolve(p));
    await nc.flush();
    nc.publish('sys.heartbeat', encodePacket({ heartbeat: { worker_id: 'w1', pool: 'default' } }));
    expect((await got.promise).heartbeat).toEqual({ worker_id: 'w1', pool: 'default' });
    sub.unsubscribe();
    expect(decodePacket(encodePacket({ trace_id: 't' })).trace_id).toBe('t');
  });
});
