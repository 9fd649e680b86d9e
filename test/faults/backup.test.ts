// The backup drill (helpers/backup/drill.ts) under store faults, on real servers: a full disk for
// the archive directory, Redis restarting during the backup, and a scratch server whose port is
// taken. Each must fail (or pass) within a bound, say why, and leave no lock and no scratch server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDrill, type DrillOptions } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { PreconditionError } from '../../helpers/errors.js';
import { startRedis } from '../../helpers/processes.js';
import { startSource, type Source } from '../backup/fixtures.js';

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
  it('a full disk for the backup directory: the preflight refuses with the free and needed bytes, nothing held', async () => {
    const dir = join(work, 'tiny');
    mkdirSync(dir, { recursive: true });
    let mounted = false;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
      mounted = true;
    } catch {
      // Without mount rights a 1 MiB filesystem cannot be made; the check is then not exercised.
    }
    try {
      const lock = memoryLock();
      const servers = childServers().length;
      const out = await bounded(runDrill(options(lock, { workDir: dir })), 30_000, 'the drill');
      if (!mounted) return void expect.soft(mounted, 'tmpfs mount not permitted: full-disk case skipped').toBe(true);
      expect(out.error).toBeInstanceOf(PreconditionError);
      expect((out.error as Error).message).toMatch(/^only \d+ bytes free under .*tiny.*; the drill needs about \d+$/);
      expect(lock.holder()).toBeUndefined();
      expect(childServers().length).toBe(servers);
      expect(readdirSync(dir), 'nothing left in the backup directory').toEqual([]);
    } finally {
      if (mounted) execFileSync('umount', [dir], { stdio: 'ignore' });
    }
  }, 40_000);

  it('Redis restarts during the backup: the drill settles within its bound, says why if it fails, releases the lock and stops its scratch servers', async () => {
    const lock = memoryLock();
    const servers = childServers().length;
    let restarted: Promise<unknown> | undefined;
    const port = src.redisServer.port;
    const out = await bounded(
      runDrill(
        options(lock, {
          onProgress: (p) => {
            if (p.phase === 'redis-backup' && !restarted) {
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
    if (out.error) expect((out.error as Error).message).toMatch(/redis|connection|ECONNREFUSED|closed|verify|missing|key/i);
    else expect(out.value!.status).toBe('passed');
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
      expect((out.error as Error).message).toMatch(/Address already in use|exited/);
    } finally {
      await squatter.stop();
    }
  }, 20_000);
});
