// Files the user names that are not files (issue 19, rows 6 and 11): a FIFO or /dev/zero as the
// readiness waiver file or manifests path, a pseudo-file (/proc/self/environ) or a device as the
// target profile. Each is refused within the deadline with exit 2 and one line naming the file and
// what it is, never its content (the environment holds secrets).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectOneLine, expectReport } from './support/checks.js';
import { ROOT, Workspace, gatewayProfile } from './support/harness.js';

/** The real readiness runbook, not a fixture: its audit step is what used to block on the FIFO. */
const REAL_RUNBOOKS = join(ROOT, 'runbooks');
/** A value only the child's environment holds: it must not appear in any output. */
const ENV_MARKER = 'rb-environ-marker-6d1e0b9a';

let gw: FaultGateway;
let ws: Workspace;
let fifo: string;
let manifests: string;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  fifo = join(ws.dir, 'waivers.fifo');
  execFileSync('mkfifo', [fifo]);
  manifests = join(ROOT, 'deploy/k8s');
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

describe('files that are not files', () => {
  it('row 6: a FIFO as readiness.waivers in the profile is refused at load: exit 2, one line, nothing contacted', async () => {
    const profile = ws.profile('fifo-waivers', gatewayProfile(`readiness:\n  waivers: ${fifo}`));
    const before = gw.log.length;
    const r = await ws.cli(['readiness', '--target', profile], { env: { RUNBOOKS_DIR: REAL_RUNBOOKS, READINESS_MANIFESTS: manifests }, deadlineMs: 60_000 });
    expectCalm(ws, r, 2);
    expectOneLine(r, new RegExp(`^runbook: .*fifo-waivers\\.yaml: readiness\\.waivers: ${fifo.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is a named pipe \\(FIFO\\), expected a regular file$`));
    expect(gw.log.length, 'requests to the target').toBe(before);
  }, 90_000);

  it('row 6: READINESS_MANIFESTS=/dev/zero, a FIFO as READINESS_MANIFESTS or READINESS_WAIVERS: the audit step fails naming the file, exit 2, a report', async () => {
    const profile = ws.profile('plain', gatewayProfile());
    const cases: [Record<string, string>, RegExp][] = [
      [{ READINESS_MANIFESTS: '/dev/zero' }, /\/dev\/zero: manifests path is a character device \(like \/dev\/zero\), expected a regular file or a directory/],
      [{ READINESS_MANIFESTS: fifo }, /waivers\.fifo: manifests path is a named pipe \(FIFO\), expected a regular file or a directory/],
      [{ READINESS_MANIFESTS: manifests, READINESS_WAIVERS: fifo }, /waivers\.fifo: waiver file is a named pipe \(FIFO\), expected a regular file/],
      [{ READINESS_MANIFESTS: manifests, READINESS_WAIVERS: '/dev/zero' }, /\/dev\/zero: waiver file is a character device/],
    ];
    for (const [env, cause] of cases) {
      const r = await ws.cli(['readiness', '--target', profile], { env: { RUNBOOKS_DIR: REAL_RUNBOOKS, ...env }, deadlineMs: 120_000 });
      expectCalm(ws, r, 2);
      const s = expectReport(r, 'config_error');
      const failed = s.steps.find((st: any) => st.status === 'failed');
      expect(failed?.name, JSON.stringify(env)).toBe('Run the audit (static on manifests, or live on the target)');
      expect(failed.error, JSON.stringify(env)).toMatch(cause);
    }
  }, 480_000);

  it('row 11: --target /proc/self/environ, /dev/zero or a FIFO: exit 2, one line naming the file and what it is, no content echoed', async () => {
    const before = runDirs().length;
    const cases: [string, RegExp][] = [
      ['/proc/self/environ', /^runbook: \/proc\/self\/environ: target profile is a pseudo-file \(it reports 0 bytes but has content, like the files under \/proc\), expected a regular file$/],
      ['/dev/zero', /^runbook: \/dev\/zero: target profile is a character device \(like \/dev\/zero\), expected a regular file$/],
      [fifo, /waivers\.fifo: target profile is a named pipe \(FIFO\), expected a regular file$/],
    ];
    for (const [target, cause] of cases) {
      const r = await ws.cli(['hold', '--target', target], { env: { RB_ENV_MARKER: ENV_MARKER }, deadlineMs: 60_000 });
      expectCalm(ws, r, 2);
      expectOneLine(r, cause);
      expect(r.stderr + r.stdout, 'the environment echoed').not.toContain(ENV_MARKER);
      expect(r.stderr).not.toMatch(/PATH=|HOME=/);
    }
    expect(runDirs().length).toBe(before);
  }, 180_000);
});
