// The backup drill (helpers/backup/drill.ts) under store faults, on real servers: a full disk for
// the archive directory, Redis restarting during the backup, and a scratch server whose port is
// taken. Each must fail within a bound, say why, and leave no lock and no scratch server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDrill, type DrillOptions } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { PreconditionError } from '../../helpers/errors.js';
import { startRedis } from '../../helpers/processes.js';
import { startSource, type Source } from '../backup/fixtures.js';
import { mountTmpfs, noMountReason } from '../support/mounts.js';

let src: Source;
let work: string;

beforeAll(async () => {
  src = await startSource();
  work = mkdtempSync(join(tmpdir(), 'runner-faults-drill-'));
}, 60_000);

afterAll(async () => {
  await src?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** redis-server / nats-server processes this test process started (the scratch-server leftover scan). */
function childServers(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
      if (m && Number(m[2]) === process.pid && /redis-server|nats-server/.test(m[1]!)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function options(lock = memoryLock(), extra: Partial<DrillOptions> = {}): DrillOptions {
  return { target: 'faults', redis: src.redis, nats: src.nc, lock, workDir: join(work, 'archives'), historyFile: false, ...extra };
}

/** Settles within the bound or fails the test: "no hang". */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('backup drill under faults', () => {
  it('a full disk for the backup directory: the preflight refuses with the free and needed bytes, nothing held', async (ctx) => {
    // Decided before any drill runs: without a real 1 MiB filesystem there is nothing to prove.
    const why = noMountReason(false);
    if (why) return ctx.skip(why);
    const dir = join(work, 'tiny');
    mkdirSync(dir, { recursive: true });
    const unmount = mountTmpfs(dir, 'size=1m');
    try {
      const lock = memoryLock();
      const servers = childServers().length;
      const phases: string[] = [];
      const out = await bounded(runDrill(options(lock, { workDir: dir, onProgress: (p) => void phases.push(p.phase) })), 30_000, 'the drill');
      expect(out.error).toBeInstanceOf(PreconditionError);
      expect((out.error as Error).message).toMatch(/^only \d+ bytes free under .*tiny.*; the drill needs about \d+$/);
      const [, free, needed] = /^only (\d+) bytes free .* needs about (\d+)$/.exec((out.error as Error).message)!;
      expect(Number(free)).toBeLessThanOrEqual(1024 * 1024);
      expect(Number(needed)).toBeGreaterThan(Number(free));
      // Refused at the preflight: no backup phase ever started.
      expect(phases.filter((p) => /backup|restore|scratch|verify|record/.test(p))).toEqual([]);
      expect(lock.holder()).toBeUndefined();
      expect(childServers().length).toBe(servers);
      expect(readdirSync(dir), 'nothing left in the backup directory').toEqual([]);
    } finally {
      unmount();
    }
  }, 40_000);

  it('Redis restarts during the backup: the drill fails within its bound naming Redis and the lost connection, releases the lock and stops its scratch servers', async () => {
    const lock = memoryLock();
    const servers = childServers().length;
    const port = src.redisServer.port;
    const phases: string[] = [];
    let killed = false;
    let restarted: Promise<void> | undefined;
    const out = await bounded(
      runDrill(
        options(lock, {
          onProgress: (p) => {
            phases.push(p.phase);
            // The first batch of the Redis backup is on disk; the source dies now, synchronously,
            // before the backup can ask for the next batch (SIGKILL: no goodbye on the socket).
            if (p.phase === 'redis-backup' && p.detail?.keys !== undefined && !killed) {
              killed = true;
              process.kill(src.redisServer.pid, 'SIGKILL');
              restarted = src.redisServer.stop().then(async () => {
                src.redisServer = await startRedis({ persistence: false, port });
              });
            }
          },
        }),
      ),
      60_000,
      'the drill',
    );
    await restarted;
    expect(killed, `the restart never happened: no redis-backup progress (phases: ${phases.join(', ')})`).toBe(true);
    // The source died between two batches, so this backup cannot be complete: the drill must say so,
    // naming the phase, the node and database, and the lost connection (never "passed").
    expect(out.value?.status, 'a drill whose source died mid-backup passed').toBeUndefined();
    const host = '127\\.0\\.0\\.1';
    expect((out.error as Error).message).toMatch(new RegExp(`^redis backup ${host}-${port} db0: redis connection to ${host}:${port}(?: closed|: read ECONNRESET)$`));
    expect(lock.holder()).toBeUndefined();
    expect(childServers().length, 'scratch servers left running').toBe(servers);
  }, 70_000);

  // The port alone proves nothing (a squatter answers there): start-up waits for the server's own
  // ready line and notices that ours exited with "Address already in use".
  it('a scratch redis-server whose port is taken fails to start with a message naming the port', async () => {
    const squatter = await startRedis({ persistence: false });
    try {
      const out = await bounded(startRedis({ persistence: false, port: squatter.port }), 10_000, 'startRedis');
      if (out.value) await out.value.stop();
      expect(out.error).toBeInstanceOf(Error);
      expect((out.error as Error).message).toMatch(/exited/);
      expect((out.error as Error).message).toContain('Address already in use');
      expect((out.error as Error).message).toContain(String(squatter.port));
    } finally {
      await squatter.stop();
    }
  }, 20_000);
});
