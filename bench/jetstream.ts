// JetStream snapshot and restore throughput (helpers/backup/jetstream-snapshot.ts and
// jetstream-restore.ts) for a stream of N messages, published with async JetStream publishes in batches.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { restoreStream } from '../helpers/backup/jetstream-restore.js';
import { snapshotStream } from '../helpers/backup/jetstream-snapshot.js';
import { startNats } from '../helpers/processes.js';
import { sizeLabel } from './redis.js';
import type { BenchResult, Figure } from './stats.js';
import type { BenchContext } from './index.js';

const STREAM = 'BENCH_SNAP';
const MB = 1024 * 1024;
const BATCH = 1000;

export async function benchJetStream(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const sizes = ctx.quick ? [10_000, 100_000] : [100_000, 1_000_000];
  const [srcSrv, dstSrv] = await Promise.all([startNats(), startNats()]);
  ctx.onCleanup(() => srcSrv.stop());
  ctx.onCleanup(() => dstSrv.stop());
  const src = await connect({ servers: srcSrv.url, name: 'cordum-bench' });
  const dst = await connect({ servers: dstSrv.url, name: 'cordum-bench-restore' });
  ctx.onCleanup(() => src.close());
  ctx.onCleanup(() => dst.close());
  const dir = mkdtempSync(join(tmpdir(), 'cordum-bench-js-'));
  ctx.onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const figures: Figure[] = [];
  const notes: string[] = [];
  const n = ctx.reps.slow;
  try {
    const jsm = await jetstreamManager(src);
    const dstJsm = await jetstreamManager(dst);
    const js = jetstream(src);
    for (const size of sizes) {
      const L = sizeLabel(size);
      const fig = (name: string, unit: Figure['unit'], note?: string): Figure => ({ bench: 'jetstream', name: `${name}, ${L} messages`, unit, values: [], ...(note ? { note } : {}) });
      await jsm.streams.delete(STREAM).catch(() => false);
      await jsm.streams.add({ name: STREAM, subjects: ['bench.snap.>'], storage: 'file' as never, num_replicas: 1 });
      // Publish: async JetStream publishes, BATCH in flight, each batch awaited.
      const id = randomBytes(8).toString('hex');
      const pubStart = performance.now();
      let inflight: Promise<unknown>[] = [];
      for (let i = 0; i < size; i++) {
        const body = JSON.stringify({ job_id: `${id}-${i}`, topic: 'job.default', state: 'SUCCEEDED', attempt: i % 3, note: randomBytes(24).toString('base64') });
        inflight.push(js.publish(`bench.snap.${i % 16}`, body));
        if (inflight.length >= BATCH) {
          await Promise.all(inflight);
          inflight = [];
        }
      }
      await Promise.all(inflight);
      const pubMs = performance.now() - pubStart;
      const info = await jsm.streams.info(STREAM);
      if (info.state.messages !== size) throw new Error(`stream holds ${info.state.messages} messages, expected ${size}`);
      const streamBytes = info.state.bytes;
      const F = {
        publish: fig('publish (JetStream async, batches of 1000)', 'msg/s'),
        snap: fig('snapshot', 'msg/s'),
        snapMBs: fig('snapshot', 'MB/s', 'stream bytes'),
        restore: fig('restore', 'msg/s'),
        restoreMBs: fig('restore', 'MB/s', 'stream bytes'),
      };
      F.publish.values.push(size / (pubMs / 1000));
      let snapBytes = NaN;
      for (let i = 0; i < n; i++) {
        const root = join(dir, `snap-${size}`);
        rmSync(root, { recursive: true, force: true });
        const s0 = performance.now();
        const snap = await snapshotStream(src, STREAM, { root });
        const sMs = performance.now() - s0;
        snapBytes = snap.section.bytes;
        F.snap.values.push(size / (sMs / 1000));
        F.snapMBs.values.push(streamBytes / MB / (sMs / 1000));
        await dstJsm.streams.delete(STREAM).catch(() => false);
        const r0 = performance.now();
        const res = await restoreStream(dst, STREAM, { dir: join(root, snap.section.dir) });
        const rMs = performance.now() - r0;
        const restored = Number((res.state as { messages?: number }).messages ?? NaN);
        if (restored !== size) throw new Error(`restored stream holds ${restored} messages, expected ${size}`);
        F.restore.values.push(size / (rMs / 1000));
        F.restoreMBs.values.push(streamBytes / MB / (rMs / 1000));
        await dstJsm.streams.delete(STREAM).catch(() => false);
        rmSync(root, { recursive: true, force: true });
        ctx.progress(`jetstream ${L} run ${i + 1}/${n}: snapshot ${Math.round(sMs)} ms, restore ${Math.round(rMs)} ms`);
      }
      await jsm.streams.delete(STREAM).catch(() => false);
      figures.push(...Object.values(F));
      notes.push(`${L} messages: stream ${(streamBytes / MB).toFixed(1)} MB on disk, snapshot (S2-compressed tar) ${(snapBytes / MB).toFixed(1)} MB; publish took ${(pubMs / 1000).toFixed(1)} s.`);
    }
  } finally {
    await src.close().catch(() => {});
    await dst.close().catch(() => {});
  }
  return {
    name: 'jetstream',
    title: 'JetStream snapshot and restore',
    method: [
      'Two nats-server processes on loopback with JetStream (file storage, temp dirs). A stream of N messages (~130 B JSON bodies, 16 subjects) is published with async JetStream publishes, 1000 in flight per batch.',
      'Per run: `snapshotStream` (the $JS.API.STREAM.SNAPSHOT protocol, chunks acked and written to disk) from the source, then `restoreStream` (chunked upload with acks) of that snapshot into the second server, where the stream is deleted again afterwards. Both run in the benchmark process; times are of the operation only. MB/s use the stream\'s stored bytes.',
    ],
    figures,
    goals: [],
    notes,
    durationMs: performance.now() - t0,
  };
}
