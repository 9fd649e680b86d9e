// Two runbooks at once against the same target: a second destructive drill is refused by the
// drill lock (exit 3, naming the lock) while the first finishes cleanly; read-only runbooks overlap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { Workspace, gatewayProfile, until } from './support/harness.js';

let gw: FaultGateway;
let ws: Workspace;
let profile: string;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  profile = ws.profile('fault', gatewayProfile());
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

describe('two runs at once', () => {
  it('a second drill while one holds the drill lock: exit 3 naming the lock; the first passes; the lock is released', async () => {
    gw.setFault('drill', 'hold');
    const first = ws.cli(['lock', '--target', profile]);
    await until('the first drill to hold the lock', () => gw.count('GET /api/v1/probe/drill') === 1, 120_000);
    expect([...gw.objects.values()].map((o) => o.kind)).toEqual(['lock']);
    const second = await ws.cli(['lock', '--target', profile]);
    gw.release();
    const r1 = await first;
    expectCalm(ws, second, 3);
    const s2 = expectReport(second, 'unreachable');
    expect(s2.steps.map((st: any) => `${st.status} ${st.name}`)).toEqual([
      'failed Take the drill lock',
      "skipped Probe 'drill'",
      'passed Teardown: remove what this run created',
    ]);
    expect(s2.steps.find((st: any) => st.status === 'failed')?.error).toMatch(/restore drill lock cordum-runbooks:restore-drill not acquired \(another drill running\?\).*409 .*held by rb-\w+-drill/);
    expect(second.stdout).toMatch(/not acquired \(another drill running\?\)/);
    // The second run must not take the first (live) run's journal for leftovers and undo its lock.
    expect(second.stdout).toMatch(/^Run .*-lock-\w+\.jsonl is still running \(pid \d+\); its objects are left to it$/m);
    expectCalm(ws, r1, 0);
    expectReport(r1, 'passed');
    expect(gw.count('GET /api/v1/probe/drill'), 'the second drill never reached its drill step').toBe(1);
    expect(gw.objects.size, 'leftovers on the target (the lock)').toBe(0);
  }, 240_000);

  it('read-only runbooks may overlap: both run at the same time and pass', async () => {
    gw.setFault('ro', 'hold');
    const before = gw.count('GET /api/v1/probe/ro');
    const runs = [ws.cli(['readonly', '--target', profile]), ws.cli(['readonly', '--target', profile])];
    await until('both runs inside their read-only step at once', () => gw.count('GET /api/v1/probe/ro') === before + 2, 120_000);
    gw.release();
    for (const r of await Promise.all(runs)) {
      expectCalm(ws, r, 0);
      expectReport(r, 'passed');
    }
    expect(gw.objects.size).toBe(0);
  }, 240_000);
});
