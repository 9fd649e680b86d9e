// A damaged backup archive given to the in-place restore (issue 19, row 12), through the CLI the
// way on-call types it. The archive check runs before anything else, the Kubernetes guard
// included, so a truncated and a corrupted archive are refused with exit 2 naming the damaged file
// on a profile that has no kube section at all (before, the guard answered first with exit 3 and
// the archive was never looked at).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RestoreDrill } from '../../helpers/backup/drill.js';
import { memoryLock } from '../../helpers/backup/lock.js';
import { startSource, type Source } from '../backup/fixtures.js';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { ROOT, Workspace, gatewayProfile } from './support/harness.js';

const CHECK_STEP = 'In-place: check the --archive before anything else';

let gw: FaultGateway;
let ws: Workspace;
let src: Source;
let archive: string;
let profile: string;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  src = await startSource();
  const drill = new RestoreDrill({ target: 'faults', redis: src.redis, nats: src.nc, lock: memoryLock(), workDir: join(ws.dir, 'archives'), keepArchive: true, historyFile: false });
  archive = await drill.archiveOnly();
  // Redis and NATS are configured (the runbook needs them) but no kube section: no cluster to guard.
  profile = ws.profile('no-kube', gatewayProfile(`redis:\n  url: redis://127.0.0.1:${src.redisServer.port}\nnats:\n  url: ${src.natsServer.url}`));
}, 120_000);

afterAll(async () => {
  await src?.stop();
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

/** The archive's files, largest first (archive-relative paths). */
function archiveFiles(): { path: string; bytes: number }[] {
  const manifest = JSON.parse(readFileSync(join(archive, 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number }> };
  return Object.entries(manifest.files)
    .map(([path, f]) => ({ path, bytes: f.bytes }))
    .sort((a, b) => b.bytes - a.bytes);
}

function damagedCopy(name: string, damage: (file: string, bytes: number) => void, which: { path: string; bytes: number }): string {
  const copy = join(ws.dir, name);
  cpSync(archive, copy, { recursive: true });
  damage(join(copy, which.path), which.bytes);
  return copy;
}

describe('in-place restore of a damaged archive', () => {
  it('row 12: a truncated and a corrupted archive are refused before the Kubernetes guard: exit 2, the damaged file named, nothing restored', async () => {
    const [largest, second] = archiveFiles();
    const truncated = damagedCopy('truncated', (f, n) => truncateSync(f, Math.floor(n / 2)), largest!);
    const corrupted = damagedCopy(
      'corrupted',
      (f) => {
        const bytes = readFileSync(f);
        bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
        writeFileSync(f, bytes);
      },
      second!,
    );
    const cases: [string, RegExp][] = [
      [truncated, new RegExp(`damaged backup archive, nothing was restored: archive file ${esc(largest!.path)} is ${Math.floor(largest!.bytes / 2)} bytes, manifest says ${largest!.bytes} \\(truncated or appended\\)`)],
      [corrupted, new RegExp(`damaged backup archive, nothing was restored: checksum mismatch for archive file ${esc(second!.path)}: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}`)],
    ];
    for (const [dir, cause] of cases) {
      const keysBefore = await src.redis.dbsize();
      const r = await ws.cli(['backup-restore', '--target', profile, '--in-place', '--archive', dir, '--confirm', 'cordum'], {
        env: { RUNBOOKS_DIR: join(ROOT, 'runbooks') },
        deadlineMs: 180_000,
      });
      expectCalm(ws, r, 2);
      const s = expectReport(r, 'config_error');
      const failed = s.steps.filter((st: any) => st.status === 'failed');
      expect(failed.map((st: any) => st.name), r.stdout).toEqual([CHECK_STEP]);
      expect(failed[0].error).toMatch(new RegExp(`--archive ${esc(dir)}: `));
      expect(failed[0].error).toMatch(cause);
      // The guard never ran: no "needs a kube section" (exit 3) in its place.
      expect(s.steps.find((st: any) => st.name.startsWith('In-place: guard'))?.status).toBe('skipped');
      expect(await src.redis.dbsize(), 'keys in the live Redis').toBe(keysBefore);
    }
  }, 420_000);
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
