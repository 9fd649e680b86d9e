// JetStream stream snapshot over the wire ($JS.API.STREAM.SNAPSHOT.<stream>). No NATS JS client
// library implements it, so this speaks the protocol on the core connection: subscribe to a deliver
// inbox first, request the snapshot, ack each chunk on its reply subject before writing it, and stop
// at the empty end message. Output is the NATS CLI layout: backup.json + stream.tar.s2.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInbox, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { HashingWriter, type ConsumerSummary, type FileEntry, type StreamSection } from './archive.js';

export const SNAPSHOT_DATA_FILE = 'stream.tar.s2';
export const SNAPSHOT_META_FILE = 'backup.json';

export class SnapshotError extends Error {
  constructor(
    readonly stream: string,
    message: string,
  ) {
    super(`snapshot of stream ${stream}: ${message}`);
    this.name = 'SnapshotError';
  }
}

export interface SnapshotOptions {
  /** Archive root; the stream goes to jetstream/<stream>/. */
  root: string;
  chunkSize?: number;
  /** Give up when no chunk arrived for this long (the server sends continuously once started). */
  idleTimeoutMs?: number;
  /** Overall deadline for one stream. */
  timeoutMs?: number;
  onProgress?: (p: { phase: 'jetstream-backup'; stream: string; chunks: number; bytes: number }) => void;
}

export interface SnapshotResult {
  section: StreamSection;
  files: Record<string, FileEntry>;
}

interface ApiError {
  code: number;
  err_code?: number;
  description: string;
}

/** Chunk reply subjects look like $JS.SNAPSHOT.ACK.<stream>.<nuid>.<bytes>.<index>. */
export function parseAckSubject(subject: string): { bytes: number; index: number } | undefined {
  const t = subject.split('.');
  if (t.length < 7 || t[1] !== 'SNAPSHOT' || t[2] !== 'ACK') return undefined;
  const bytes = Number(t[t.length - 2]);
  const index = Number(t[t.length - 1]);
  return Number.isFinite(bytes) && Number.isFinite(index) ? { bytes, index } : undefined;
}

export async function listConsumers(nc: NatsConnection, stream: string): Promise<ConsumerSummary[]> {
  const jsm = await jetstreamManager(nc);
  const out: ConsumerSummary[] = [];
  for await (const ci of jsm.consumers.list(stream)) {
    out.push({
      name: ci.name,
      durable: Boolean(ci.config.durable_name),
      delivered_stream_seq: ci.delivered.stream_seq,
      ack_floor_stream_seq: ci.ack_floor.stream_seq,
      num_ack_pending: ci.num_ack_pending,
      filter_subjects: ci.config.filter_subjects?.length ? [...ci.config.filter_subjects] : ci.config.filter_subject ? [ci.config.filter_subject] : [],
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function snapshotStream(nc: NatsConnection, stream: string, opts: SnapshotOptions): Promise<SnapshotResult> {
  const relDir = `jetstream/${stream}`;
  const dir = join(opts.root, relDir);
  const idleMs = opts.idleTimeoutMs ?? 10_000;
  const started_ms = Date.now();
  // Consumer positions are recorded before the snapshot, for the restore comparison.
  const consumers = await listConsumers(nc, stream).catch((err: Error) => {
    throw new SnapshotError(stream, `cannot list consumers: ${err.message}`);
  });
  const out = await HashingWriter.create(join(dir, SNAPSHOT_DATA_FILE));

  const deliver = createInbox();
  let chunks = 0;
  let expectedIndex = 1;
  let ackedBytes = 0;
  let writeChain: Promise<void> = Promise.resolve();
  let finish!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => (finish = (err) => (err ? reject(err) : resolve())));
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => finish(new SnapshotError(stream, `no data for ${idleMs} ms after ${chunks} chunks (${out.bytes} bytes): snapshot truncated`)), idleMs);
  };

  const sub = nc.subscribe(deliver, {
    callback: (err, msg: Msg) => {
      if (err) return finish(new SnapshotError(stream, `deliver subscription failed: ${err.message}`));
      armIdle();
      if (msg.data.length === 0) {
        // End marker. 2.10.12+ add a status header; anything but 204 is a failed snapshot.
        const code = msg.headers?.code ?? 0;
        if (msg.headers && code !== 0 && code !== 204) {
          return finish(new SnapshotError(stream, `server ended the snapshot with status ${code} ${msg.headers.description ?? ''}`.trim()));
        }
        return finish();
      }
      // Flow control: ack before writing, to the exact subject received.
      if (msg.reply) {
        msg.respond();
        const ack = parseAckSubject(msg.reply);
        if (ack) {
          if (ack.index !== expectedIndex) return finish(new SnapshotError(stream, `chunk ${ack.index} arrived when ${expectedIndex} was expected: a chunk was lost`));
          if (ack.bytes !== msg.data.length) return finish(new SnapshotError(stream, `chunk ${ack.index} carries ${msg.data.length} bytes, its ack subject says ${ack.bytes}`));
          expectedIndex++;
          ackedBytes += ack.bytes;
        }
      }
      chunks++;
      const data = msg.data;
      writeChain = writeChain.then(() => out.write(data));
      writeChain.catch((e: Error) => finish(new SnapshotError(stream, `writing ${SNAPSHOT_DATA_FILE} failed: ${e.message}`)));
      opts.onProgress?.({ phase: 'jetstream-backup', stream, chunks, bytes: out.bytes + data.length });
    },
  });
  let overall: NodeJS.Timeout | undefined;
  try {
    // The subscription must be known to the server before it starts streaming.
    await nc.flush();
    const reply = await nc.request(
      `$JS.API.STREAM.SNAPSHOT.${stream}`,
      JSON.stringify({ deliver_subject: deliver, no_consumers: false, chunk_size: opts.chunkSize ?? 128 * 1024 }),
      { timeout: 30_000 },
    );
    const res = reply.json<{ error?: ApiError; config?: Record<string, unknown>; state?: StreamSection['state'] }>();
    if (res.error) throw new SnapshotError(stream, `server refused: ${res.error.code}/${res.error.err_code ?? '-'} ${res.error.description}`);
    if (!res.config || !res.state) throw new SnapshotError(stream, 'snapshot response lacks config/state');
    armIdle();
    const total = opts.timeoutMs ?? 10 * 60_000;
    overall = setTimeout(() => finish(new SnapshotError(stream, `not finished within ${total} ms`)), total);
    await done;
    await writeChain;
    const entry = await out.close();
    if (ackedBytes > entry.bytes) throw new SnapshotError(stream, `acked ${ackedBytes} bytes but wrote ${entry.bytes}`);
    if (entry.bytes === 0) throw new SnapshotError(stream, 'server sent an empty snapshot');
    // backup.json only after the end marker and the data file are safely on disk (NATS CLI order).
    const meta = JSON.stringify({ config: res.config, state: res.state }, null, 2);
    await writeFile(join(dir, SNAPSHOT_META_FILE), meta, { mode: 0o600 });
    const metaEntry = { bytes: Buffer.byteLength(meta), sha256: createHash('sha256').update(meta).digest('hex') };
    return {
      section: { name: stream, dir: relDir, state: res.state, consumers, chunks, bytes: entry.bytes, started_ms, finished_ms: Date.now() },
      files: { [`${relDir}/${SNAPSHOT_DATA_FILE}`]: entry, [`${relDir}/${SNAPSHOT_META_FILE}`]: metaEntry },
    };
  } catch (err) {
    out.abort();
    throw err;
  } finally {
    clearTimeout(idle);
    clearTimeout(overall);
    sub.unsubscribe();
  }
}

/** nats-server version from the connection's INFO. */
export function natsServerVersion(nc: NatsConnection): string {
  return nc.info?.version ?? 'unknown';
}
