// Redis backup and restore throughput and peak RSS for generated mixed-type keyspaces, next to
// `redis-cli --rdb` on the same data. Our backup runs in a child process (bench/child/redis-backup.ts)
// so its peak RSS is its own.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type ManagedServer } from '../helpers/processes.js';
import { lastJson, runChild, tsxArgs, HAVE_TIME_V } from './env.js';
import { writePerKeyFile, writeRespFile } from './resp.js';
import { fmtNum, goalFlatMemory, goalRatioAtLeast, medianOf, stat, type BenchResult, type Figure, type Goal } from './stats.js';
import type { BenchContext } from './index.js';

const REPO = resolve(import.meta.dirname, '..');
const MB = 1024 * 1024;

export function sizeLabel(n: number): string {
  return n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n);
}

/** CPU ms the server has used: its main thread, and its reaped children (the fork that streams an RDB). */
async function serverCpuMs(client: Redis): Promise<{ main: number; children: number }> {
  const info = await client.info('cpu');
  const g = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN) * 1000;
  return { main: g('used_cpu_user_main_thread') + g('used_cpu_sys_main_thread'), children: g('used_cpu_user_children') + g('used_cpu_sys_children') };
}

/** Wait until the server has reaped the fork of an RDB transfer, so its CPU is in used_cpu_*_children. */
async function forkReaped(client: Redis): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (/^rdb_bgsave_in_progress:1/m.test(await client.info('persistence'))) {
    if (Date.now() > deadline) throw new Error('the RDB fork of redis-cli --rdb was not reaped within 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function server(ctx: BenchContext): Promise<ManagedServer> {
  // No persistence (the benchmark is about reading/writing over the wire); no diskless delay, which
  // would add 5 s of waiting to every RDB transfer (redis-cli --rdb and ours alike).
  const s = await startRedis({ persistence: false, extraArgs: ['--repl-diskless-sync-delay', '0'] });
  ctx.onCleanup(() => s.stop());
  return s;
}

export async function benchRedis(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const sizes = ctx.quick ? [10_000, 100_000] : [100_000, 1_000_000];
  const [src, dst] = await Promise.all([server(ctx), server(ctx)]);
  const srcClient = new Redis(src.url);
  const dstClient = new Redis(dst.url);
  const dir = mkdtempSync(join(tmpdir(), 'cordum-bench-redis-'));
  ctx.onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const figures: Figure[] = [];
  const goals: Goal[] = [];
  const notes: string[] = [];
  const backupRss: { size: number; bytes: number }[] = [];
  const scanBackupRss: { size: number; bytes: number }[] = [];
  const restoreRss: { size: number; bytes: number }[] = [];
  const n = ctx.reps.slow;
  const cli = (args: string[], extra: Parameters<typeof runChild>[2] = {}) => runChild('redis-cli', ['-h', '127.0.0.1', ...args], { timeoutMs: 600_000, ...extra });
  try {
    for (const size of sizes) {
      const L = sizeLabel(size);
      const fig = (name: string, unit: Figure['unit'], note?: string): Figure => ({ bench: 'redis', name: `${name}, ${L} keys`, unit, values: [], rssBytes: [], ...(note ? { note } : {}) });
      await srcClient.flushall();
      // Seed: generated RESP through redis-cli --pipe.
      const respFile = join(dir, `seed-${size}.resp`);
      const gen = await writeRespFile(respFile, size);
      const load = await cli(['-p', String(src.port), '--pipe'], { stdinFile: respFile, measureRss: false });
      rmSync(respFile, { force: true });
      if (load.code !== 0 || !/errors: 0,/.test(load.stdout)) throw new Error(`redis-cli --pipe failed: ${load.stdout.slice(-300)} ${load.stderr.slice(-300)}`);
      const keys = await srcClient.dbsize();
      if (keys !== size) throw new Error(`seeded ${keys} keys, expected ${size}`);
      const usedMemory = Number(/used_memory:(\d+)/.exec(await srcClient.info('memory'))?.[1] ?? NaN);
      const loadFig = fig('seed with redis-cli --pipe', 'keys/s', `${(gen.bytes / MB).toFixed(0)} MB of RESP, ${gen.commands.toLocaleString('en-US')} commands`);
      loadFig.values.push(size / (load.wallMs / 1000));
      delete loadFig.rssBytes;

      const F = {
        cliRdb: fig('redis-cli --rdb', 'keys/s'),
        ours: fig('our logical backup as the runbook runs it (auto: SYNC → RDB parsed into records)', 'keys/s', 'operation only'),
        oursScan: fig('our logical backup, SCAN path forced (SCAN + PTTL + DUMP → records)', 'keys/s', 'operation only'),
        oursMBs: fig('our logical backup', 'MB/s', 'RDB-equivalent MB'),
        oursWall: fig('our logical backup, whole process', 'keys/s', 'incl. Node start-up'),
        cliMBs: fig('redis-cli --rdb', 'MB/s'),
        oursRdb: fig('our RDB fetch (fetchRdb, physical)', 'keys/s', 'operation only'),
        restore: fig('our logical restore (RESTORE … REPLACE)', 'keys/s', 'operation only'),
        restoreMBs: fig('our logical restore', 'MB/s', 'RDB-equivalent MB'),
        cliCpu: fig('server CPU per key, redis-cli --rdb', 'µs/key', 'fork child + main thread'),
        oursAutoCpu: fig('server CPU per key, our logical backup (auto)', 'µs/key', 'fork child + main thread'),
        oursCpu: fig('server CPU per key, our logical backup, SCAN path', 'µs/key', 'main thread: SCAN + PTTL + DUMP'),
        dumpCpu: fig('server CPU per key, DUMP alone', 'µs/key', 'one DUMP per key through redis-cli --pipe, no SCAN, no PTTL'),
        pttlCpu: fig('server CPU per key, PTTL alone', 'µs/key', 'one PTTL per key through redis-cli --pipe'),
        ceiling: fig('ceiling for a SCAN + PTTL + DUMP backup', 'x', 'server CPU per key: redis-cli --rdb ÷ ours'),
        dumpCeiling: fig('ceiling for any DUMP-based backup', 'x', 'server CPU per key: redis-cli --rdb ÷ DUMP alone'),
      };
      for (const f of [F.cliCpu, F.oursAutoCpu, F.oursCpu, F.dumpCpu, F.pttlCpu, F.ceiling, F.dumpCeiling]) delete f.rssBytes;
      const dumpFile = join(dir, `dump-${size}.resp`);
      const pttlFile = join(dir, `pttl-${size}.resp`);
      await writePerKeyFile(dumpFile, size, 'DUMP');
      await writePerKeyFile(pttlFile, size, 'PTTL');
      /** Server main-thread CPU per key of sending `file` through redis-cli --pipe. */
      const perKeyCpu = async (file: string, what: string) => {
        const before = (await serverCpuMs(srcClient)).main;
        const r = await cli(['-p', String(src.port), '--pipe'], { stdinFile: file, measureRss: false });
        if (r.code !== 0 || !/errors: 0,/.test(r.stdout)) throw new Error(`redis-cli --pipe of ${what} failed: ${r.stdout.slice(-300)} ${r.stderr.slice(-300)}`);
        return (((await serverCpuMs(srcClient)).main - before) * 1000) / size;
      };
      let rdbBytes = NaN;
      let archiveBytes = NaN;
      const autoPaths = new Set<string>();
      for (let i = 0; i < n; i++) {
        // redis-cli --rdb
        const rdbFile = join(dir, `cli-${size}.rdb`);
        const cpu0 = await serverCpuMs(srcClient);
        const c = await cli(['-p', String(src.port), '--rdb', rdbFile]);
        if (c.code !== 0) throw new Error(`redis-cli --rdb failed: ${c.stderr.slice(-300)}`);
        await forkReaped(srcClient);
        const cpu1 = await serverCpuMs(srcClient);
        const cliCpuPerKey = ((cpu1.main - cpu0.main + cpu1.children - cpu0.children) * 1000) / size;
        F.cliCpu.values.push(cliCpuPerKey);
        // DUMP alone and PTTL alone, as cheaply as a client can send them.
        const dumpCpuPerKey = await perKeyCpu(dumpFile, 'DUMPs');
        F.dumpCpu.values.push(dumpCpuPerKey);
        F.pttlCpu.values.push(await perKeyCpu(pttlFile, 'PTTLs'));
        F.dumpCeiling.values.push(cliCpuPerKey / dumpCpuPerKey);
        rdbBytes = statSync(rdbFile).size;
        rmSync(rdbFile, { force: true });
        F.cliRdb.values.push(size / (c.wallMs / 1000));
        F.cliMBs.values.push(rdbBytes / MB / (c.wallMs / 1000));
        if (c.maxRssBytes) F.cliRdb.rssBytes!.push(c.maxRssBytes);
        // Ours, logical, as the runbook runs it (auto: with repl-diskless-sync-delay 0 it takes SYNC)
        const out = join(dir, `archive-${size}`);
        rmSync(out, { recursive: true, force: true });
        const [node, args] = tsxArgs(join(REPO, 'bench/child/redis-backup.ts'), 'backup', src.url, out, 'auto');
        const cpu2 = await serverCpuMs(srcClient);
        const b = await runChild(node, args, { cwd: REPO, timeoutMs: 600_000 });
        if (b.code !== 0) throw new Error(`backup child failed: ${b.stderr.slice(-500)}`);
        await forkReaped(srcClient);
        const cpu3 = await serverCpuMs(srcClient);
        F.oursAutoCpu.values.push(((cpu3.main - cpu2.main + cpu3.children - cpu2.children) * 1000) / size);
        const br = lastJson<{ keys: number; bytes: number; ms: number; source?: string; reason?: string }>(b.stdout);
        if (br.keys !== size) throw new Error(`backup saw ${br.keys} keys, expected ${size}`);
        autoPaths.add(`${br.source}: ${br.reason}`);
        archiveBytes = br.bytes;
        F.ours.values.push(size / (br.ms / 1000));
        F.oursMBs.values.push(rdbBytes / MB / (br.ms / 1000));
        F.oursWall.values.push(size / (b.wallMs / 1000));
        if (b.maxRssBytes) F.ours.rssBytes!.push(b.maxRssBytes);
        // Ours, logical, SCAN path forced (what servers without SYNC get)
        const scanOut = join(dir, `archive-scan-${size}`);
        rmSync(scanOut, { recursive: true, force: true });
        const [sn0, sa0] = tsxArgs(join(REPO, 'bench/child/redis-backup.ts'), 'backup', src.url, scanOut, 'scan');
        const cpu4 = await serverCpuMs(srcClient);
        const bs = await runChild(sn0, sa0, { cwd: REPO, timeoutMs: 600_000 });
        if (bs.code !== 0) throw new Error(`SCAN backup child failed: ${bs.stderr.slice(-500)}`);
        const oursCpuPerKey = (((await serverCpuMs(srcClient)).main - cpu4.main) * 1000) / size;
        F.oursCpu.values.push(oursCpuPerKey);
        F.ceiling.values.push(cliCpuPerKey / oursCpuPerKey);
        const bsr = lastJson<{ keys: number; bytes: number; ms: number; source?: string }>(bs.stdout);
        if (bsr.keys !== size || bsr.source !== 'scan') throw new Error(`SCAN backup saw ${bsr.keys} keys (expected ${size}) through ${bsr.source}`);
        if (bsr.bytes !== br.bytes) throw new Error(`the SCAN path's archive is ${bsr.bytes} bytes, the auto path's ${br.bytes}: the same records should make the same size`);
        F.oursScan.values.push(size / (bsr.ms / 1000));
        if (bs.maxRssBytes) F.oursScan.rssBytes!.push(bs.maxRssBytes);
        rmSync(scanOut, { recursive: true, force: true });
        // Ours, physical RDB
        const [rn, ra] = tsxArgs(join(REPO, 'bench/child/redis-backup.ts'), 'rdb', src.url, join(dir, `ours-${size}.rdb`));
        const p = await runChild(rn, ra, { cwd: REPO, timeoutMs: 600_000 });
        rmSync(join(dir, `ours-${size}.rdb`), { force: true });
        if (p.code !== 0) throw new Error(`rdb child failed: ${p.stderr.slice(-500)}`);
        const pr = lastJson<{ ms: number }>(p.stdout);
        F.oursRdb.values.push(size / (pr.ms / 1000));
        if (p.maxRssBytes) F.oursRdb.rssBytes!.push(p.maxRssBytes);
        // Restore into the scratch server
        await dstClient.flushall();
        const [sn, sa] = tsxArgs(join(REPO, 'bench/child/redis-backup.ts'), 'restore', dst.url, out);
        const s = await runChild(sn, sa, { cwd: REPO, timeoutMs: 600_000 });
        if (s.code !== 0) throw new Error(`restore child failed: ${s.stderr.slice(-500)}`);
        const sr = lastJson<{ keys: number; ms: number }>(s.stdout);
        const restored = await dstClient.dbsize();
        if (restored !== size) throw new Error(`restore left ${restored} keys, expected ${size}`);
        F.restore.values.push(size / (sr.ms / 1000));
        F.restoreMBs.values.push(rdbBytes / MB / (sr.ms / 1000));
        if (s.maxRssBytes) F.restore.rssBytes!.push(s.maxRssBytes);
        rmSync(out, { recursive: true, force: true });
        ctx.progress(`redis ${L} run ${i + 1}/${n}: redis-cli --rdb ${Math.round(c.wallMs)} ms, ours (${br.source}) ${Math.round(br.ms)} ms, SCAN path ${Math.round(bsr.ms)} ms, restore ${Math.round(sr.ms)} ms`);
      }
      rmSync(dumpFile, { force: true });
      rmSync(pttlFile, { force: true });
      await dstClient.flushall();
      const figs = [loadFig, ...Object.values(F)];
      for (const f of figs) if (f.rssBytes && !f.rssBytes.length) delete f.rssBytes;
      figures.push(...figs);
      notes.push(
        `${L} keys: RDB ${(rdbBytes / MB).toFixed(1)} MB, our archive ${(archiveBytes / MB).toFixed(1)} MB (the same size from either path), server used_memory ${(usedMemory / MB).toFixed(0)} MB.`,
        `${L} keys: the auto path chose ${[...autoPaths].join(' | ')}.`,
      );
      const logical = goalRatioAtLeast(`logical backup ≥ 0.8x redis-cli --rdb (keys/s), ${L} keys`, medianOf(figs, F.ours.name), medianOf(figs, F.cliRdb.name), 0.8);
      const autoSources = new Set([...autoPaths].map((p) => p.split(':')[0]));
      logical.detail += autoSources.has('scan')
        ? ` (auto, which took the SCAN path here: ${[...autoPaths].join(' | ')}). The SCAN path, forced:`
        : ' (auto, which read the RDB over SYNC: Redis 7.0 with SYNC allowed and repl-diskless-sync-delay small against the keyspace). The SCAN path, forced:';
      logical.detail += ` ${fmtNum(medianOf(figs, F.oursScan.name) / medianOf(figs, F.cliRdb.name))}x; the server's own CPU per key caps it at ${fmtNum(medianOf(figs, F.ceiling.name))}x and any DUMP-based backup at ${fmtNum(medianOf(figs, F.dumpCeiling.name))}x`;
      goals.push(logical);
      goals.push(goalRatioAtLeast(`physical RDB fetch ≥ 0.8x redis-cli --rdb (keys/s), ${L} keys`, medianOf(figs, F.oursRdb.name), medianOf(figs, F.cliRdb.name), 0.8));
      backupRss.push({ size, bytes: stat(F.ours.rssBytes ?? []).max });
      scanBackupRss.push({ size, bytes: stat(F.oursScan.rssBytes ?? []).max });
      restoreRss.push({ size, bytes: stat(F.restore.rssBytes ?? []).max });
    }
  } finally {
    srcClient.disconnect();
    dstClient.disconnect();
  }
  goals.push(goalFlatMemory('backup memory flat as the dataset grows (peak RSS)', backupRss));
  goals.push(goalFlatMemory('backup memory flat as the dataset grows, SCAN path forced (peak RSS)', scanBackupRss));
  goals.push(goalFlatMemory('restore memory flat as the dataset grows (peak RSS)', restoreRss));
  notes.push(
    'Which servers get the SYNC path (auto, per node; helpers/backup/redis-logical.ts chooseBackupPath): Redis 7.0 only (RDB version 10, the only one whose layouts were verified byte for byte against DUMP; 7.2+ and 6.x take SCAN), SYNC and CONFIG GET allowed (managed services that block @admin take SCAN), repl-diskless-sync yes, and repl-diskless-sync-delay small against the keyspace: the server waits that long (default 5 s) before it forks, so with the default auto takes SYNC only from about 6 million keys; this benchmark\'s servers run with delay 0, as redis-cli --rdb\'s figure is measured.',
  );
  if (!HAVE_TIME_V) notes.push('/usr/bin/time is missing: peak RSS of our children is their own process.resourceUsage().maxRSS; redis-cli has none.');
  return {
    name: 'redis',
    title: 'Redis backup and restore',
    method: [
      `Two redis-server processes on loopback (no persistence, repl-diskless-sync-delay 0). The source is seeded with generated keys of five types in turn (string 120 B; hash of 4 fields; list, set and zset of 5 members; every 10th key with a 7-day TTL), as RESP through \`redis-cli --pipe\`, timed.`,
      `Per run, on the same data: \`redis-cli --rdb\` (wall time of the process); our logical backup as the runbook runs it (\`backupRedisLogical\`, path auto: with this server's repl-diskless-sync-delay 0 and Redis 7.0 it reads the RDB the server streams over SYNC and parses it into the same length-prefixed binary records, one DUMP payload per key); the same backup with the SCAN path forced (SCAN + PTTL/DUMP pipelines, what a server that refuses SYNC, runs another Redis version or has the default 5 s delay with a smaller keyspace gets); and our physical fetch (\`fetchRdb\`, diskless); each in a child process (\`node --import tsx bench/child/redis-backup.ts\`) under \`/usr/bin/time -v\` for its peak RSS; then our logical restore of the auto archive into the empty second server (\`restoreRedisLogical\`, RESTORE … REPLACE), also in a child. Both backup paths must write archives of the same size.`,
      `keys/s of our operations use the time of the operation inside the child (Node and tsx start-up excluded, and the child's Redis client connected before the clock starts, as the runbook's is after its preflight; the "whole process" line includes all of it). MB/s use the RDB size of the same data as the common measure of the dataset, for every tool. The backup goal compares keys/s at each size.`,
      "Server CPU per key comes from the source server's INFO cpu around each run: for `redis-cli --rdb` the fork that serialises the RDB (used_cpu_*_children, read once the fork is reaped) plus the main thread; for our logical backup (auto) the same (fork child + main thread); for the SCAN path the main thread, which executes every SCAN, PTTL and DUMP; and for DUMP alone and PTTL alone the main thread while `redis-cli --pipe` sends one such command per key (the cheapest client there is). Redis runs commands on that one thread, so a logical backup can go no faster than that CPU time, while redis-cli --rdb's wall time is about its fork's CPU time: the ceiling lines divide redis-cli --rdb's server CPU per key by the SCAN path's (and by DUMP alone's), per run. Unlike wall times, these ratios hold on a loaded machine. (Doing PTTL and DUMP in one Lua script per batch instead of pipelined commands was measured to cost the server more per key, not less: see helpers/backup/redis-logical.ts.)",
    ],
    figures,
    goals,
    notes,
    durationMs: performance.now() - t0,
  };
}
