// The JetStream part of the backup drill on a lived-in stream: deleted messages and gaps, consumers
// with acked history. Real NATS servers (the backup source and a scratch restore target), a real
// snapshot and restore. A filtered consumer past deleted messages at the tail comes back a few
// sequences earlier on restore (the failure seen on a lived-in sandbox: "restored at delivered 17 /
// ack floor 17, behind the backup's 18 / 18" with num_deleted 3): it resumes at the same message, so
// the drill passes and notes it. A restore that really loses a consumer position still fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackupManifest } from '../../helpers/backup/archive.js';
import { restoreStream } from '../../helpers/backup/jetstream-restore.js';
import { listConsumers, snapshotStream } from '../../helpers/backup/jetstream-snapshot.js';
import { verifyJetStream } from '../../helpers/backup/verify.js';
import { startNats, type ManagedServer } from '../../helpers/processes.js';

let source: ManagedServer;
let target: ManagedServer;
let src: NatsConnection;
let dst: NatsConnection;
let root: string;

beforeAll(async () => {
  [source, target] = await Promise.all([startNats(), startNats()]);
  [src, dst] = await Promise.all([connect({ servers: source.url }), connect({ servers: target.url })]);
  root = mkdtempSync(join(tmpdir(), 'js-verify-'));
}, 30_000);

afterEach(async () => {
  // Each test uses its own stream name on both servers.
  for (const nc of [src, dst]) {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) await jsm.streams.delete(s.config.name);
  }
});

afterAll(async () => {
  await Promise.allSettled([src?.close(), dst?.close()]);
  await Promise.allSettled([source?.stop(), target?.stop()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

/**
 * A lived-in stream: 18 messages over three subjects, durable consumers that acked everything they
 * deliver (one per subject and one unfiltered), then messages deleted, at the tail among them.
 */
async function livedInStream(name: string, deleted: number[]): Promise<void> {
  const jsm = await jetstreamManager(src);
  const js = jetstream(src);
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  for (let i = 1; i <= 18; i++) await js.publish(`${name}.s${i % 3}`, `m${i}`);
  const consumers = [{ durable_name: 'all' }, ...[0, 1, 2].map((n) => ({ durable_name: `s${n}`, filter_subject: `${name}.s${n}` }))];
  for (const c of consumers) {
    await jsm.consumers.add(name, { ...c, ack_policy: AckPolicy.Explicit });
    const messages = await (await js.consumers.get(name, c.durable_name)).fetch({ max_messages: 18, expires: 1_000 });
    for await (const m of messages) await m.ackAck();
  }
  for (const seq of deleted) await jsm.streams.deleteMessage(name, seq, false);
}

/** Snapshot on the source, restore on the target, and the manifest the drill would have written. */
async function backupAndRestore(name: string): Promise<BackupManifest> {
  const snap = await snapshotStream(src, name, { root });
  await restoreStream(dst, name, { dir: join(root, snap.section.dir) });
  return { jetstream: { streams: [snap.section] } } as unknown as BackupManifest;
}

describe('verifyJetStream on a lived-in stream', () => {
  it('passes a stream with deleted messages and gaps, noting a filtered consumer the server moved back over sequences it never delivers', async () => {
    await livedInStream('GAPPED', [5, 9, 16, 17, 18]);
    const manifest = await backupAndRestore('GAPPED');
    const section = manifest.jetstream!.streams[0]!;
    expect(section.state).toMatchObject({ messages: 13, first_seq: 1, last_seq: 18, num_deleted: 5 });
    expect(section.consumers.every((c) => c.delivered_stream_seq === 18 && c.ack_floor_stream_seq === 18)).toBe(true);

    const restored = await listConsumers(dst, 'GAPPED');
    // What the server does on restore (the trap): at least one filtered consumer comes back behind.
    expect(restored.some((c) => c.filter_subjects?.length && c.delivered_stream_seq < 18)).toBe(true);

    const { failures, streams } = await verifyJetStream(dst, manifest);
    expect(failures).toEqual([]);
    expect(streams[0]).toMatchObject({ name: 'GAPPED', backup: { num_deleted: 5 }, restored: { num_deleted: 5 } });
    expect(streams[0]!.notes.length).toBeGreaterThan(0);
    expect(streams[0]!.notes[0]).toMatch(/^consumer GAPPED\/s\d restored at delivered \d+ \/ ack floor \d+, behind the backup's 18 \/ 18, but no message it delivers lies in between .* it resumes at the same message$/);
  }, 30_000);

  it('fails a restore that really lost a consumer position, naming the message it would deliver again', async () => {
    await livedInStream('LOST', [16, 17, 18]);
    const manifest = await backupAndRestore('LOST');
    // The restore lost consumer s1's position: it is back at the start of its subject.
    const jsm = await jetstreamManager(dst);
    await jsm.consumers.delete('LOST', 's1');
    await jsm.consumers.add('LOST', { durable_name: 's1', filter_subject: 'LOST.s1', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 7 });

    const { failures } = await verifyJetStream(dst, manifest);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ code: 'consumer-mismatch' });
    expect(failures[0]!.message).toMatch(/^consumer LOST\/s1 restored at delivered 6 \/ ack floor 0, behind the backup's 18 \/ 18: message 7 \(LOST\.s1\) lies in between, so it would be delivered again$/);
  }, 30_000);

  it('still fails a consumer missing after the restore', async () => {
    await livedInStream('GONE', [2]);
    const manifest = await backupAndRestore('GONE');
    await (await jetstreamManager(dst)).consumers.delete('GONE', 'all');
    const { failures } = await verifyJetStream(dst, manifest);
    expect(failures).toEqual([{ code: 'consumer-missing', message: 'consumer all of stream GONE is missing on the restored target' }]);
  }, 30_000);
});
