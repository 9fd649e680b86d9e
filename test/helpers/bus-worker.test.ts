import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, type Bus, type ReceivedPacket } from '../../helpers/bus.js';
import { JobStatus } from '../../helpers/cap/codec.js';
import { startCapWorker, validateWorkerId } from '../../helpers/cap-worker.js';
import { UnreachableError } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { waitFor, WaitTimeoutError } from '../../helpers/waits.js';
import { freePort, startNats, type ManagedServer } from '../../helpers/processes.js';

let nats: ManagedServer;
let bus: Bus;
let probe: Bus; // a second connection, playing the scheduler

function profile(url: string): TargetProfile {
  return {
    name: 'bus-test',
    source: 'bus-test.yaml',
    gateway: { url: 'http://127.0.0.1:1', connect_timeout_ms: 2000, request_timeout_ms: 2000 },
    nats: { url },
    routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
    policy: { reload_interval_ms: 30000, case_files: [] },
    destructive: { allowed: false },
  };
}

beforeAll(async () => {
  nats = await startNats();
  bus = await connectBus(profile(nats.url));
  probe = await connectBus(profile(nats.url), { name: 'probe' });
});

afterAll(async () => {
  await bus?.close();
  await probe?.close();
  await nats?.stop();
});

const isResultFor = (id: string) => (p: ReceivedPacket) => p.packet.job_result?.job_id === id;

describe('bus', () => {
  it('publishes binary CAP packets and next() hands out buffered and future packets once each', async () => {
    const sub = probe.subscribe('test.sub');
    await probe.nc.flush();
    await bus.publish('test.sub', { trace_id: 't1', sender_id: 's', job_cancel: { job_id: 'a', reason: 'r1' } });
    await bus.publish('test.sub', { trace_id: 't2', sender_id: 's', job_cancel: { job_id: 'a', reason: 'r2' } });
    const isA = (p: ReceivedPacket) => p.packet.job_cancel?.job_id === 'a';
    const first = await sub.next(isA, { timeoutMs: 2000, what: 'first cancel' });
    const second = await sub.next(isA, { timeoutMs: 2000, what: 'second cancel' });
    expect([first.packet.job_cancel?.reason, second.packet.job_cancel?.reason]).toEqual(['r1', 'r2']);
    expect(first.subject).toBe('test.sub');
    const future = sub.next((p) => p.packet.job_cancel?.job_id === 'b', { timeoutMs: 2000, what: 'cancel b' });
    await bus.publish('test.sub', { job_cancel: { job_id: 'b' } });
    expect((await future).packet.protocol_version).toBe(1);
    expect(sub.received()).toHaveLength(3);
    sub.stop();
  });

  it('times out naming what it waited for and what it saw', async () => {
    const sub = probe.subscribe('test.timeout');
    await probe.nc.flush();
    await bus.publish('test.timeout', { job_result: { job_id: 'other', status: JobStatus.FAILED } });
    probe.nc.publish('test.timeout', new TextEncoder().encode('{"json":"is not CAP"}'));
    await probe.nc.flush();
    const err = await sub.next(isResultFor('wanted'), { timeoutMs: 100, what: 'the result of job wanted' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(
      /^timed out after 100 ms waiting for the result of job wanted on test\.timeout; last saw: 1 packet\(s\), 1 undecodable, last: test\.timeout job_result \{"job_id":"other","status":6\}$/,
    );
    sub.stop();
  });

  it('reads JetStream stream and consumer state, undefined when missing', async () => {
    const jsm = await jetstreamManager(probe.nc);
    await jsm.streams.add({ name: 'RB_TEST', subjects: ['rbtest.>'] });
    await jsm.consumers.add('RB_TEST', { durable_name: 'dur_rb', ack_policy: 'explicit' as never });
    const si = await bus.streamInfo('RB_TEST');
    expect(si?.config.subjects).toEqual(['rbtest.>']);
    expect(si?.state.messages).toBe(0);
    const ci = await bus.consumerInfo('RB_TEST', 'dur_rb');
    expect(ci).toEqual({ num_redelivered: 0, num_ack_pending: 0, num_pending: 0, delivered: { consumer_seq: 0, stream_seq: 0 } });
    expect(await bus.consumerInfo('RB_TEST', 'nope')).toBeUndefined();
    expect(await bus.streamInfo('NOPE')).toBeUndefined();
  });

  it('reports an unreachable NATS as UnreachableError naming the URL', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const err = await connectBus(profile(url)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`^NATS unreachable at ${url}: .*\\(connect timeout 2000 ms\\)$`));
  });
});

describe('CAP worker', () => {
  it('rejects worker ids that break subjects', () => {
    for (const bad of ['a.b', 'a*', 'a>', '', 'a b']) expect(() => validateWorkerId(bad)).toThrow(/invalid worker id/);
    expect(() => validateWorkerId('rb-worker_1')).not.toThrow();
  });

  it('heartbeats with pool name, placement labels and load', async () => {
    const hb = probe.subscribe('sys.heartbeat');
    await probe.nc.flush();
    const w = await startCapWorker(bus, { workerId: 'rb-hb', pool: 'default', labels: { zone: 'a' }, heartbeatMs: 50, maxParallel: 3 });
    const isMine = (p: ReceivedPacket) => p.packet.heartbeat?.worker_id === 'rb-hb';
    const first = await hb.next(isMine, { timeoutMs: 2000, what: 'first heartbeat' });
    expect(first.packet.heartbeat).toMatchObject({ worker_id: 'rb-hb', pool: 'default', labels: { zone: 'a' }, max_parallel_jobs: 3 });
    expect(first.packet.sender_id).toBe('rb-hb');
    await hb.next(isMine, { timeoutMs: 2000, what: 'a periodic heartbeat' });
    await w.setLoad({ activeJobs: 3, cpuLoad: 95 });
    const loaded = await hb.next((p) => isMine(p) && p.packet.heartbeat?.active_jobs === 3, { timeoutMs: 2000, what: 'overloaded heartbeat' });
    expect(loaded.packet.heartbeat?.cpu_load).toBe(95);
    await w.stop();
    hb.stop();
  });

  it('receives JobRequests on worker.<id>.jobs and answers as told for each mode', async () => {
    const results = probe.subscribe('sys.job.result');
    await probe.nc.flush();
    const written: string[] = [];
    const w = await startCapWorker(bus, {
      workerId: 'rb-modes',
      pool: 'default',
      heartbeatMs: 60_000,
      behaviour: { mode: 'succeed', result: { answer: 42 } },
      writeResult: async (jobId, result) => {
        written.push(`${jobId}=${JSON.stringify(result)}`);
        return `redis://res:${jobId}`;
      },
    });
    const submit = (jobId: string, labels?: Record<string, string>) =>
      probe.publish('worker.rb-modes.jobs', { trace_id: `tr-${jobId}`, sender_id: 'scheduler', job_request: { job_id: jobId, topic: 'job.default', labels } });

    await submit('j-ok');
    const ok = await results.next(isResultFor('j-ok'), { timeoutMs: 2000, what: 'success result' });
    expect(ok.packet.job_result).toMatchObject({ job_id: 'j-ok', status: JobStatus.SUCCEEDED, result_ptr: 'redis://res:j-ok', worker_id: 'rb-modes' });
    expect(ok.packet.trace_id).toBe('tr-j-ok');
    expect(written).toEqual(['j-ok={"answer":42}']);

    w.setBehaviour({ mode: 'fail', errorCode: 'chaos', errorMessage: 'boom' });
    await submit('j-fail');
    const failed = await results.next(isResultFor('j-fail'), { timeoutMs: 2000, what: 'failure result' });
    expect(failed.packet.job_result).toMatchObject({ status: JobStatus.FAILED, error_code: 'chaos', error_message: 'boom' });

    w.setBehaviour({ mode: 'timeout' });
    await submit('j-timeout');
    const timedOut = await results.next(isResultFor('j-timeout'), { timeoutMs: 2000, what: 'timeout result' });
    expect(timedOut.packet.job_result?.status).toBe(JobStatus.TIMEOUT);

    // Per-job behaviour: silent for one label, and nothing is published for it.
    w.setBehaviour((job) => (job.labels?.hang ? { mode: 'silent' } : { mode: 'succeed' }));
    await submit('j-silent', { hang: '1' });
    await submit('j-after');
    await results.next(isResultFor('j-after'), { timeoutMs: 2000, what: 'result after the silent job' });
    expect(results.received().some((p) => p.packet.job_result?.job_id === 'j-silent')).toBe(false);

    expect(w.jobs().map((j) => j.job_id)).toEqual(['j-ok', 'j-fail', 'j-timeout', 'j-silent', 'j-after']);
    expect(await w.waitForJob((j) => j.job_id === 'j-silent', { timeoutMs: 100 })).toMatchObject({ labels: { hang: '1' } });
    await expect(w.waitForJob((j) => j.job_id === 'never', { timeoutMs: 50 })).rejects.toThrow(/waiting for a matching job at worker rb-modes; last saw: 5 job\(s\)/);
    await w.stop();
    results.stop();
  });

  it('a JobCancel during the work time suppresses the result; stop() ends subscriptions', async () => {
    const results = probe.subscribe('sys.job.result');
    await probe.nc.flush();
    const w = await startCapWorker(bus, { workerId: 'rb-cancel', pool: 'default', heartbeatMs: 60_000, behaviour: { mode: 'succeed', delayMs: 60_000 } });
    await probe.publish('worker.rb-cancel.jobs', { job_request: { job_id: 'j-c', topic: 'job.default' } });
    await w.waitForJob((j) => j.job_id === 'j-c', { timeoutMs: 2000 });
    await probe.publish('sys.job.cancel', { job_cancel: { job_id: 'j-c', reason: 'runbook', requested_by: 'test' } });
    await waitFor('the worker to see the cancel', async () => w.cancels().length, (n) => n > 0, { timeoutMs: 2000, intervalMs: 5 });
    expect(w.cancels()).toEqual([{ job_id: 'j-c', reason: 'runbook', requested_by: 'test' }]);
    expect(w.results()).toEqual([]);

    await w.stop();
    await probe.publish('worker.rb-cancel.jobs', { job_request: { job_id: 'j-late', topic: 'job.default' } });
    await probe.nc.flush();
    await bus.nc.flush(); // a round trip on the worker's connection: anything routed to it has arrived
    expect(w.jobs().map((j) => j.job_id)).toEqual(['j-c']);
    expect(results.received()).toEqual([]);
    results.stop();
  });
});
