// End-to-end drill against real servers: a seeded source, scratch servers the drill starts itself,
// and the three distinct verify failures (corrupted archive, truncated snapshot, missing key).
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDrill, type DrillOptions, type DrillProgress } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { VerifyError } from '../../helpers/backup/verify.js';
import { sha256File, writeManifest } from '../../helpers/backup/archive.js';
import { readDrillHistory } from '../../helpers/backup/history.js';
import { PreconditionError } from '../../helpers/errors.js';
import { JOBS_MESSAGES, SYS_MESSAGES, startSource, type Source } from './fixtures.js';

let src: Source;
let work: string;

beforeAll(async () => {
  src = await startSource();
  work = mkdtempSync(join(tmpdir(), 'cordum-rb-drill-'));
}, 60_000);

afterAll(async () => {
  await src?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function options(extra: Partial<DrillOptions> = {}): DrillOptions {
  return {
    target: 'test-source',
    redis: src.redis,
    nats: src.nc,
    lock: memoryLock(),
    workDir: join(work, 'archives'),
    historyFile: join(work, 'drills.jsonl'),
    ...extra,
  };
}

async function failureOf(opts: DrillOptions): Promise<VerifyError> {
  const err = await runDrill(opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VerifyError);
  return err as VerifyError;
}

describe('restore drill', () => {
  it('backs up, restores into scratch servers, verifies, measures and records', async () => {
    const progress: DrillProgress[] = [];
    const res = await runDrill(options({ rdb: true, onProgress: (p) => progress.push(p) }));
    expect(res.status).toBe('passed');
    expect(res.failures).toEqual([]);

    const totalKeys = Object.values(src.seeded).reduce((a, b) => a + b, 0);
    const m = res.manifest!;
    expect(m.redis!.dbs.map((d) => d.db)).toEqual([0, 1]);
    expect(m.redis!.dbs.reduce((n, d) => n + d.keys, 0)).toBe(totalKeys);
    const byType: Record<string, number> = {};
    for (const d of m.redis!.dbs) for (const [t, n] of Object.entries(d.by_type)) byType[t] = (byType[t] ?? 0) + n;
    expect(byType).toEqual(src.seeded);
    expect(m.redis!.dbs[0]!.by_prefix).toMatchObject({ job: 800 + 400 + 300, wf: 301, ctx: 300, trace: 300, mem: 60, '(none)': 1 });
    expect(m.redis!.rdb[0]).toMatchObject({ rdb_version: 10, mode: 'diskless' });

    const sys = m.jetstream!.streams.find((s) => s.name === 'CORDUM_SYS')!;
    expect(sys.state).toMatchObject({ messages: SYS_MESSAGES, first_seq: 1, last_seq: SYS_MESSAGES });
    expect(sys.consumers.map((c) => [c.name, c.ack_floor_stream_seq > 0, c.num_ack_pending])).toEqual([
      ['dur_cordum-scheduler__sys_job_submit', true, 5],
      ['dur_cordum-workflow-engine__sys_job_result', true, 5],
    ]);
    expect(m.jetstream!.streams.find((s) => s.name === 'CORDUM_JOBS')!.state.messages).toBe(JOBS_MESSAGES);

    expect(res.redisRestore).toMatchObject({ restored: totalKeys, expired_skipped: 0, replaced: 0 });
    expect(res.redisVerify!.checked).toBe(totalKeys);
    expect(res.redisVerify!.sampled).toBeGreaterThan(100);
    expect(res.streamVerify.map((s) => [s.name, s.restored.messages, s.restored.consumers.length])).toEqual([
      ['CORDUM_SYS', SYS_MESSAGES, 2],
      ['CORDUM_JOBS', JOBS_MESSAGES, 0],
    ]);

    const meas = res.measurements!;
    expect(meas.rpo_ms).toBeGreaterThanOrEqual(0);
    expect(meas.rto_ms).toBeGreaterThan(0);
    expect(meas.newest_message_at).toMatch(/^\d{4}-/);
    expect(meas.sizes).toMatchObject({ redis_keys: totalKeys, jetstream_messages: SYS_MESSAGES + JOBS_MESSAGES });
    expect(meas.throughput.restore_keys_per_s).toBeGreaterThan(0);
    for (const phase of ['preflight', 'redis-backup', 'rdb-backup', 'jetstream-backup', 'archive-check', 'scratch-start', 'redis-restore', 'jetstream-restore', 'verify'] as const) {
      expect(meas.phases[phase], phase).toBeDefined();
    }
    expect(progress.some((p) => p.phase === 'redis-backup' && p.detail?.keys)).toBe(true);
    expect(progress.at(-1)!.phase).toBe('cleanup');

    const history = await readDrillHistory(join(work, 'drills.jsonl'));
    const last = history.at(-1)!;
    expect(last).toMatchObject({ kind: 'restore-drill', target: 'test-source', status: 'passed' });
    expect(last.rpo_ms).toBe(meas.rpo_ms);
    expect(last.rto_ms).toBe(meas.rto_ms);
    expect(Date.parse(last.finished_at)).toBeGreaterThanOrEqual(Date.parse(last.started_at));
  });

  it('fails verify on a corrupted archive, naming the file and both hashes', async () => {
    let file = '';
    let before = '';
    let after = '';
    const err = await failureOf(
      options({
        hooks: {
          afterBackup: async (root, manifest) => {
            file = manifest.redis!.dbs[0]!.file;
            before = manifest.files[file]!.sha256;
            const path = join(root, file);
            const buf = readFileSync(path);
            buf[100] = buf[100] === 0x41 ? 0x42 : 0x41; // same size, different content
            writeFileSync(path, buf);
            after = createHash('sha256').update(buf).digest('hex');
          },
        },
      }),
    );
    expect(err.failures.map((f) => f.code)).toEqual(['checksum-mismatch']);
    // Both hashes: the one the manifest recorded and the one of the bytes now on disk.
    expect(after).not.toBe(before);
    expect(err.message).toContain(`checksum mismatch for archive file ${file}: expected sha256 ${before}, got ${after}`);
    expect(readLast().status).toBe('failed');
  });

  it('fails verify on a truncated snapshot, naming the stream and the offset', async () => {
    const err = await failureOf(
      options({
        hooks: {
          afterBackup: async (root, manifest) => {
            // A snapshot cut short in transit and recorded as if complete: the checksums agree
            // with the file, so only the snapshot framing check can catch it.
            const rel = `${manifest.jetstream!.streams[0]!.dir}/stream.tar.s2`;
            const path = join(root, rel);
            const full = readFileSync(path).length;
            truncateSync(path, Math.floor(full / 2));
            manifest.files[rel] = await sha256File(path);
            await writeManifest(root, manifest);
          },
        },
      }),
    );
    expect(err.failures.map((f) => f.code)).toEqual(['truncated-snapshot']);
    expect(err.message).toMatch(/snapshot of stream CORDUM_SYS: jetstream\/CORDUM_SYS\/stream\.tar\.s2 is truncated: frame (header )?at offset \d+/);
  });

  it('fails verify on a file shorter than the manifest says', async () => {
    const err = await failureOf(
      options({
        hooks: {
          afterBackup: async (root, manifest) => {
            const rel = `${manifest.jetstream!.streams[1]!.dir}/stream.tar.s2`;
            truncateSync(join(root, rel), 1000);
          },
        },
      }),
    );
    expect(err.failures[0]!.code).toBe('size-mismatch');
    expect(err.failures[0]!.message).toMatch(/archive file jetstream\/CORDUM_JOBS\/stream\.tar\.s2 is 1000 bytes, manifest says \d+/);
  });

  it('fails verify when a restored key is missing, naming the key and its type', async () => {
    const err = await failureOf(
      options({
        hooks: {
          afterRestore: async (scratch) => {
            await scratch.redis.del('wf:def:marker', 'job:meta:7');
          },
        },
      }),
    );
    const codes = new Set(err.failures.map((f) => f.code));
    expect(codes.has('missing-key')).toBe(true);
    expect(err.message).toContain('key wf:def:marker (string) from redis/127.0.0.1-');
    expect(err.message).toContain('key job:meta:7 (hash)');
    // The counts disagree too, per type and per prefix.
    expect(err.message).toMatch(/target holds \d+ hash keys; the backup says/);
  });

  it('refuses to start while another drill holds the lock', async () => {
    const lock = memoryLock();
    const held = await lock.acquire('other-drill', 60_000);
    await expect(runDrill(options({ lock }))).rejects.toThrow(PreconditionError);
    await expect(runDrill(options({ lock }))).rejects.toThrow(/owner other-drill/);
    await held.release();
  });

  it('refuses a stream that does not exist, before writing anything', async () => {
    await expect(runDrill(options({ streams: ['CORDUM_SYS', 'NOPE'] }))).rejects.toThrow(/stream NOPE is not available on the source/);
  });
});

/** The newest history line, plus the archive directory name it implies. */
function readLast(): { status: string; archiveDir: string } {
  const lines = readFileSync(join(work, 'drills.jsonl'), 'utf8').trim().split('\n');
  const rec = JSON.parse(lines.at(-1)!) as { status: string; started_at: string };
  return { status: rec.status, archiveDir: `test-source-${rec.started_at.replace(/[:.]/g, '-')}` };
}
