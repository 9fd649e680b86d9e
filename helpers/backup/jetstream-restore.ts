// JetStream stream restore over the wire ($JS.API.STREAM.RESTORE.<stream>): send {config, state}
// from backup.json, upload stream.tar.s2 as acked requests to the deliver subject the server hands
// back, then an empty request that makes the server unpack it and answer with the stream info.
// The bytes are uploaded exactly as the snapshot delivered them; nothing here decodes S2.
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { SNAPSHOT_DATA_FILE, SNAPSHOT_META_FILE } from './jetstream-snapshot.js';

export class RestoreError extends Error {
  constructor(
    readonly stream: string,
    message: string,
  ) {
    super(`restore of stream ${stream}: ${message}`);
    this.name = 'RestoreError';
  }
}

const S2_MAGIC = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x53, 0x32, 0x73, 0x54, 0x77, 0x4f]); // ff 06 00 00 "S2sTwO"

/**
 * Walk the S2 framing of a snapshot file (type byte + 3-byte little-endian length per frame)
 * without decompressing. A file cut short ends inside a frame, which this names with the offset.
 * Returns the number of frames.
 */
export async function checkS2Framing(path: string, label: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(S2_MAGIC.length);
    await fh.read(head, 0, head.length, 0);
    if (size < S2_MAGIC.length || !head.equals(S2_MAGIC)) throw new Error(`${label} does not start with the S2 stream identifier (size ${size} bytes)`);
    let offset = S2_MAGIC.length;
    let frames = 1;
    const hdr = Buffer.alloc(4);
    while (offset < size) {
      if (offset + 4 > size) throw new Error(`${label} is truncated: frame header at offset ${offset} runs past the end (${size} bytes)`);
      await fh.read(hdr, 0, 4, offset);
      const type = hdr[0]!;
      const len = hdr.readUIntLE(1, 3);
      if ((type === 0x00 || type === 0x01) && len < 4) throw new Error(`${label} has a data frame of ${len} bytes at offset ${offset} (needs a 4-byte CRC)`);
      if (type >= 0x02 && type <= 0x7f) throw new Error(`${label} has an unknown unskippable frame type 0x${type.toString(16)} at offset ${offset}`);
      if (offset + 4 + len > size) throw new Error(`${label} is truncated: frame at offset ${offset} declares ${len} bytes but only ${size - offset - 4} remain`);
      offset += 4 + len;
      frames++;
    }
    return frames;
  } finally {
    await fh.close();
  }
}

export interface RestoreStreamOptions {
  /** Directory holding backup.json + stream.tar.s2. */
  dir: string;
  /** Override config fields, e.g. {num_replicas: 1} for a standalone scratch server. */
  configOverride?: Record<string, unknown>;
  chunkSize?: number;
  /** Deadline for the final reply, while the server unpacks and rebuilds the stream. */
  finalTimeoutMs?: number;
  onProgress?: (p: { phase: 'jetstream-restore'; stream: string; bytes: number; total: number }) => void;
}

export interface RestoreStreamResult {
  stream: string;
  bytes: number;
  chunks: number;
  state: Record<string, unknown>;
  duration_ms: number;
}

interface ApiErr {
  code: number;
  err_code?: number;
  description: string;
}

export async function restoreStream(nc: NatsConnection, stream: string, opts: RestoreStreamOptions): Promise<RestoreStreamResult> {
  const started = Date.now();
  const meta = JSON.parse(await readFile(join(opts.dir, SNAPSHOT_META_FILE), 'utf8')) as { config: Record<string, unknown>; state: Record<string, unknown> };
  const config = { ...meta.config, ...(opts.configOverride ?? {}) };
  // The server checks the name only after the whole upload on 2.9: check it first.
  if (config.name !== stream) throw new RestoreError(stream, `backup.json names stream ${String(config.name)}; restore cannot rename`);
  const jsm = await jetstreamManager(nc);
  const exists = await jsm.streams.info(stream).then(
    () => true,
    () => false,
  );
  if (exists) throw new RestoreError(stream, 'the stream already exists on the target; restore never overwrites (delete it or use a scratch server)');

  const first = await nc.request(`$JS.API.STREAM.RESTORE.${stream}`, JSON.stringify({ config, state: meta.state }), { timeout: 30_000 });
  const startRes = first.json<{ error?: ApiErr; deliver_subject?: string }>();
  if (startRes.error || !startRes.deliver_subject) {
    throw new RestoreError(stream, `server refused the restore: ${startRes.error?.code}/${startRes.error?.err_code ?? '-'} ${startRes.error?.description ?? 'no deliver subject'}`);
  }
  const deliver = startRes.deliver_subject;
  const dataPath = join(opts.dir, SNAPSHOT_DATA_FILE);
  const fh = await open(dataPath, 'r');
  const chunkSize = opts.chunkSize ?? 64 * 1024;
  let bytes = 0;
  let chunks = 0;
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(chunkSize);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, chunkSize, bytes);
      if (bytesRead === 0) break;
      // Each piece is a request: the server acks it with an empty reply, anything else is an error.
      const ack = await nc.request(deliver, buf.subarray(0, bytesRead), { timeout: 30_000 }).catch((err: Error) => {
        throw new RestoreError(stream, `upload of chunk ${chunks + 1} (offset ${bytes}) got no ack: ${err.message} (the server dropped the restore)`);
      });
      if (ack.data.length > 0) throw new RestoreError(stream, `server rejected chunk ${chunks + 1} (offset ${bytes}): ${describeReply(ack.string())}`);
      bytes += bytesRead;
      chunks++;
      opts.onProgress?.({ phase: 'jetstream-restore', stream, bytes, total: size });
    }
  } finally {
    await fh.close();
  }
  // Empty request = end of upload; the reply comes once the stream is rebuilt.
  const final = await nc.request(deliver, new Uint8Array(0), { timeout: opts.finalTimeoutMs ?? 10 * 60_000 }).catch((err: Error) => {
    throw new RestoreError(stream, `no final reply after uploading ${bytes} bytes: ${err.message}`);
  });
  const res = final.json<{ error?: ApiErr; state?: Record<string, unknown> }>();
  if (res.error) throw new RestoreError(stream, `server rejected the snapshot after upload: ${res.error.code}/${res.error.err_code ?? '-'} ${res.error.description}`);
  return { stream, bytes, chunks, state: res.state ?? {}, duration_ms: Date.now() - started };
}

function describeReply(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: ApiErr };
    if (j.error) return `${j.error.code}/${j.error.err_code ?? '-'} ${j.error.description}`;
  } catch {
    /* plain -ERR text */
  }
  return text.slice(0, 300);
}
