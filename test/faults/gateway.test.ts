// The runner against a misbehaving gateway: error statuses, a 429 storm, a response slower than
// the request timeout, a step whose deadline passes during a request, connection resets, and the
// gateway dying mid-run and coming back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { HANGUP_GRACE_MS, Workspace, gatewayProfile } from './support/harness.js';

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

/** What a reset step says: unreachable, with undici's socket error or the kernel's reset (one group, so `|` cannot escape it). */
const RESET = /^UnreachableError: gateway unreachable: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/probe\/preset: (?:UND_ERR_SOCKET|ECONNRESET)\b/;

describe('gateway faults', () => {
  it('500, 502, a 429 storm and a reset: each step fails with its cause, everything is torn down, exit 1', async () => {
    for (const f of ['500', '502', '429', 'reset'] as const) gw.setFault(`p${f}`, f);
    const r = await ws.cli(['gw-faults', '--target', profile]);
    expectCalm(ws, r, 1);
    const s = expectReport(r, 'failed');
    const steps = Object.fromEntries(s.steps.map((st: any) => [st.name, st]));
    const failed = Object.fromEntries(s.steps.filter((st: any) => st.status === 'failed').map((st: any) => [st.name, st.error]));
    // The 500 body echoes the API key: stdout and the report show it redacted.
    expect(failed["Probe 'p500'"]).toMatch(/→ 500 "internal error: redis: connection pool exhausted \(key \*\*\*\)"/);
    expect(r.stdout).toMatch(/→ 500 "internal error: redis: connection pool exhausted \(key \*\*\*\)"/);
    expect(failed["Probe 'p502'"]).toMatch(/→ 502 .*Bad Gateway/);
    expect(failed["Probe 'p429'"]).toMatch(/→ 429 .*still rate limited after 6 attempts/);
    // A reset is "unreachable" (its own exit code 3), never an HTTP status.
    expect(failed["Probe 'preset'"]).toMatch(RESET);
    expect(steps["Probe 'preset'"]).toMatchObject({ exit_code: 3 });
    for (const p of ['p500', 'p502', 'p429']) expect(steps[`Probe '${p}'`], p).toMatchObject({ exit_code: 1 });
    // Files run in the order the runbook lists them (502, 429, reset, 500: not sorted in any way),
    // so the verdict (the first failure, a 502: exit 1) is stable.
    expect(s.steps.filter((st: any) => st.name.startsWith('Probe')).map((st: any) => st.name)).toEqual(["Probe 'p502'", "Probe 'p429'", "Probe 'preset'", "Probe 'p500'"]);
    expect(s.steps.filter((st: any) => st.name.startsWith('Teardown')).map((st: any) => st.status)).toEqual(['passed', 'passed', 'passed', 'passed']);
    expect(r.stdout).toMatch(/^FAILED: 8 passed, 4 failed, 0 skipped$/m);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('a reset as the first failure: exit 3 (unreachable), though a 500 follows', async () => {
    for (const f of ['500', 'reset'] as const) gw.setFault(`p${f}`, f);
    const r = await ws.cli(['gw-reset-first', '--target', profile]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    const probes = s.steps.filter((st: any) => st.name.startsWith('Probe'));
    expect(probes.map((st: any) => [st.name, st.status, st.exit_code])).toEqual([
      ["Probe 'preset'", 'failed', 3],
      ["Probe 'p500'", 'failed', 1],
    ]);
    expect(probes[0].error).toMatch(RESET);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('a response slower than the request timeout fails the step as unreachable (exit 3) without waiting for it', async () => {
    gw.setFault('slow', 'slow');
    gw.slowMs = 20_000;
    const r = await ws.cli(['gw-slow', '--target', profile]);
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    expect(s.steps[1].error).toMatch(/no complete response within the request timeout of 1500 ms/);
    expect(r.stdout).toMatch(/no complete response within the request timeout of 1500 ms/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('a step timeout aborts its in-flight request: the server sees the connection close at the step deadline, not at the request timeout', async () => {
    gw.setFault('stuck', 'hold');
    const from = gw.served.length;
    const r = await ws.cli(['gw-step-timeout', '--target', profile]);
    expectCalm(ws, r, 1);
    const s = expectReport(r, 'failed');
    expect(s.steps[1]).toMatchObject({ name: "Probe 'stuck'", status: 'failed', exit_code: 1, error_code: 'RB_STEP_TIMEOUT' });
    expect(s.steps[1].error).toMatch(/step 'Probe 'stuck'' did not finish within 2000 ms \(its timeoutMs\); it was aborted/);
    const probe = gw.served.slice(from).find((a) => a.line === 'GET /api/v1/probe/stuck');
    expect(probe?.closedAt, 'the held request was never hung up on').toBeDefined();
    // The fixture's request timeout is 60 s: only the step's abort can close it this early.
    expect(probe!.closedAt! - probe!.openedAt).toBeLessThanOrEqual(2000 + HANGUP_GRACE_MS);
    expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('the gateway dies mid-run: exit 4 naming what was left; the next run removes it once the gateway is back', async () => {
    gw.setFault('die', 'die');
    const r = await ws.cli(['gw-dies', '--target', profile]);
    expectCalm(ws, r, 4);
    const s = expectReport(r, 'teardown_failed');
    expect(s.steps[1].error).toMatch(/gateway unreachable/);
    expect(s.teardown.left_behind).toHaveLength(1);
    expect(s.teardown.left_behind[0].label).toMatch(/^thing rb-\w+-thing \(DELETE \/api\/v1\/things\/t\d+\)$/);
    expect(s.teardown.left_behind[0].error).toMatch(/connection refused|ECONNREFUSED/);
    expect(r.stdout).toMatch(/^TEARDOWN_FAILED: /m);
    expect(gw.objects.size, 'the object the dead gateway kept').toBe(1);

    await gw.restart();
    gw.setFault('ro', 'ok');
    const again = await ws.cli(['readonly', '--target', profile]);
    expectCalm(ws, again, 0);
    const s2 = expectReport(again, 'passed');
    expect(again.stdout).toMatch(/Leftovers of earlier run .*gw-dies.*: 1 removed, 0 still there/);
    expect(s2.teardown.earlier_runs[0].removed).toHaveLength(1);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);
});
