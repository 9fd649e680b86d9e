// Ctrl-C (SIGINT) and SIGTERM in every phase of a run: setup, preflight (waiting on the target), a
// step, teardown (the steps' and the runner's own replay) and the report.
// The first signal starts an orderly stop, the second a forced bounded one, and the process exits
// within the documented bound after it. Where the runner would otherwise race the test, a test-only
// pause point (RUNBOOK_TEST_PAUSE) holds it at the phase, so each test fails when its promise breaks.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectExitWithin, expectReport } from './support/checks.js';
import { CONNECT_TIMEOUT_MS, EXIT_GRACE_MS, FORCED_EXIT_MS, FORCED_TEARDOWN_MS, HANGUP_GRACE_MS, Workspace, causeLine, gatewayProfile, until, type CliOptions } from './support/harness.js';

let gw: FaultGateway;
let ws: Workspace;
let profile: string;

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  profile = ws.profile('fault', gatewayProfile());
});

afterEach(() => {
  gw.holdDeletes = false;
  gw.nextDeletes = [];
  gw.holdHealth = false;
  gw.answers.health = 'ok';
  gw.setFault('step', 'ok');
  gw.release();
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

/** A run of the `hold` fixture whose stderr the test can watch, and a way to signal it (noting when). */
function watched(args: string[], opts: CliOptions = {}) {
  let child: ChildProcess | undefined;
  let stderr = '';
  let stdout = '';
  let ended = false;
  const run = ws.cli(args, {
    ...opts,
    onStart: (c) => {
      child = c;
      c.stderr!.on('data', (d) => (stderr += d));
      c.stdout!.on('data', (d) => (stdout += d));
    },
  });
  void run.finally(() => (ended = true)).catch(() => {});
  return {
    run,
    stderr: () => stderr,
    /** Wait for `check`, failing at once (with the run's output) if the run ends first. */
    until(what: string, check: () => boolean): Promise<void> {
      return until(what, () => {
        if (check()) return true;
        if (ended) throw new Error(`the run ended before ${what}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
        return false;
      });
    },
    /** Send `sig` and return when it was sent. */
    signal(sig: NodeJS.Signals = 'SIGINT'): number {
      child!.kill(sig);
      return Date.now();
    },
  };
}

describe('signals in every phase', () => {
  it('Ctrl-C twice during setup work that cannot be cancelled: the second forces the exit (130) within the documented bound, no report', async () => {
    const before = runDirs().length;
    const created = gw.count('POST /api/v1/things');
    // The pause point stands for setup work that ignores the first signal (a sandbox starting).
    const w = watched(['hold', '--target', profile], { env: { RUNBOOK_TEST_PAUSE: 'setup' } });
    await w.until('the setup phase', () => /test pause: the setup phase waits for a forced stop/.test(w.stderr()));
    w.signal();
    await w.until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C \(SIGINT\): stopping before anything is created/.test(w.stderr()));
    const second = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, second, FORCED_EXIT_MS + HANGUP_GRACE_MS, 'the second Ctrl-C');
    expect(r.stderr).toMatch(/forcing: exit within 30 s/);
    expect(causeLine(r)).toMatch(/^runbook: interrupted by Ctrl-C \(SIGINT\) during setup; nothing was created on the target and no report was written$/);
    expect(gw.count('POST /api/v1/things')).toBe(created);
    expect(runDirs().length).toBe(before);
  }, 240_000);

  it('Ctrl-C during preflight (waiting on the target): exit 130, one line, nothing created, no report', async () => {
    gw.holdHealth = true;
    const before = runDirs().length;
    const created = gw.count('POST /api/v1/things');
    const healthBefore = gw.count('GET /health');
    const w = watched(['hold', '--target', profile]);
    await w.until('the preflight health check', () => gw.count('GET /health') > healthBefore);
    const sent = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, sent, EXIT_GRACE_MS, 'Ctrl-C');
    expect(causeLine(r)).toMatch(/^runbook: interrupted by Ctrl-C \(SIGINT\) during setup; nothing was created on the target and no report was written$/);
    expect(gw.count('POST /api/v1/things')).toBe(created);
    expect(runDirs().length).toBe(before);
  }, 240_000);

  it('Ctrl-C while the preflight reads a /health body that trickles: the request is cut, exit 130 at once', async () => {
    gw.answers.health = 'trickle';
    // A long health deadline (the connect timeout), so only Ctrl-C can end this preflight early.
    const patient = ws.profile('fault-patient-connect', gatewayProfile().replace(`connect_timeout_ms: ${CONNECT_TIMEOUT_MS}`, 'connect_timeout_ms: 120000'));
    const from = gw.served.length;
    const w = watched(['hold', '--target', patient]);
    await w.until('the trickling health answer to start', () => gw.served.slice(from).some((s) => s.line === 'GET /health' && s.bytes > 0));
    const sent = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, sent, EXIT_GRACE_MS, 'Ctrl-C');
    expect(causeLine(r)).toMatch(/^runbook: interrupted by Ctrl-C \(SIGINT\) during setup;/);
    const health = gw.served.slice(from).find((s) => s.line === 'GET /health')!;
    expect(health.closedAt, 'the trickling request was never hung up on').toBeDefined();
    expect(health.closedAt! - health.openedAt).toBeLessThan(120_000);
  }, 240_000);

  it('SIGTERM during a step: the step stops, teardown runs, exit 130, the report says interrupted', async () => {
    gw.setFault('step', 'hold');
    const probes = gw.count('GET /api/v1/probe/step');
    const w = watched(['hold', '--target', profile]);
    await w.until('the held step', () => gw.count('GET /api/v1/probe/step') > probes);
    const sent = w.signal('SIGTERM');
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, sent, EXIT_GRACE_MS, 'SIGTERM');
    const s = expectReport(r, 'interrupted');
    expect(s.interrupted_reason).toBe('interrupted by SIGTERM');
    expect(s.steps.map((st: any) => `${st.status} ${st.name}`)).toEqual([
      'passed Create a thing',
      "failed Probe 'step'",
      'skipped After the step',
      'passed Teardown: remove what this run created',
    ]);
    expect(s.steps[1]).toMatchObject({ exit_code: 130, error_code: 'RB_INTERRUPTED' });
    expect(r.stderr).toMatch(/interrupted by SIGTERM: stopping the current step and tearing down/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C during teardown: teardown is not cut short, it finishes, exit 130', async () => {
    gw.holdDeletes = true;
    const deletes = gw.count(/^DELETE /);
    const w = watched(['hold', '--target', profile]);
    await w.until('teardown to start', () => gw.count(/^DELETE /) > deletes);
    w.signal();
    await w.until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C/.test(w.stderr()));
    gw.holdDeletes = false;
    gw.release();
    const r = await w.run;
    expectCalm(ws, r, 130);
    const s = expectReport(r, 'interrupted');
    expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    expect(s.teardown.left_behind).toEqual([]);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C twice during a blocked teardown: bounded forced stop, the runner replays the journal, nothing left', async () => {
    gw.holdDeletes = true;
    const deletes = gw.count(/^DELETE /);
    const w = watched(['hold', '--target', profile]);
    await w.until('teardown to start', () => gw.count(/^DELETE /) > deletes);
    w.signal();
    await w.until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C/.test(w.stderr()));
    // The held DELETE stays held; the runner's own replay gets a prompt answer.
    gw.holdDeletes = false;
    const second = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, second, FORCED_EXIT_MS + HANGUP_GRACE_MS, 'the second Ctrl-C');
    expect(r.stderr).toMatch(/forcing: bounded teardown/);
    const s = expectReport(r, 'interrupted');
    expect(s.teardown.left_behind).toEqual([]);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it("Ctrl-C twice during the runner's own replay (teardown phase): the replay is cut after its bounded window, what is left is reported and journaled", async () => {
    // The steps' teardown fails (500), so the runner replays; that DELETE is held. A long request
    // timeout, so the held DELETE is still open when the signals come.
    gw.nextDeletes = ['500', 'hold'];
    const patient = ws.profile('fault-patient-requests', gatewayProfile().replace('request_timeout_ms: 1500', 'request_timeout_ms: 60000'));
    const deletes = gw.count(/^DELETE /);
    const from = gw.served.length;
    const w = watched(['hold', '--target', patient]);
    await w.until("the runner's replay to start", () => gw.count(/^DELETE /) >= deletes + 2);
    w.signal();
    await w.until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C \(SIGINT\): teardown goes on/.test(w.stderr()));
    const second = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 130);
    expectExitWithin(r, second, FORCED_EXIT_MS + HANGUP_GRACE_MS, 'the second Ctrl-C');
    expect(r.stderr).toMatch(/forcing: bounded teardown \(10 s\), then exit/);
    // The replay's held DELETE (request timeout 60 s) is hung up on by the forced bound: after the
    // second Ctrl-C, within the documented 10 s plus the hang-up grace.
    const held = gw.served.slice(from).filter((x) => x.line.startsWith('DELETE /api/v1/things/')).at(-1)!;
    expect(held.closedAt, 'the held DELETE was never hung up on').toBeDefined();
    const cut = gw.startedAt + held.closedAt! - second;
    expect(cut, `the held DELETE closed ${cut} ms after the second Ctrl-C`).toBeGreaterThanOrEqual(0);
    expect(cut, `the held DELETE closed ${cut} ms after the second Ctrl-C`).toBeLessThanOrEqual(FORCED_TEARDOWN_MS + HANGUP_GRACE_MS);
    const s = expectReport(r, 'interrupted');
    expect(s.teardown.left_behind).toHaveLength(1);
    expect(s.teardown.left_behind[0].label).toMatch(/^thing rb-\w+-thing \(DELETE \/api\/v1\/things\/t\d+\)$/);
    // Cut by the forced stop, not by the teardown action's own 15 s bound (helpers/teardown.ts).
    expect(s.teardown.left_behind[0].error).toMatch(/^DELETE \/api\/v1\/things\/t\d+: aborted \(forced stop: 10 s are up\)$/);
    expect(gw.objects.size, 'the object the forced stop left').toBe(1);
    // The journal kept it: the next run against the target removes it first.
    const again = await ws.cli(['hold', '--target', patient]);
    expectCalm(ws, again, 0);
    expect(again.stdout).toMatch(/Leftovers of earlier run .*-hold-.*: 1 removed, 0 still there/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 300_000);

  it('Ctrl-C while the report is written: the report is completed and verifies, exit code = verdict (0)', async () => {
    const w = watched(['hold', '--target', profile], { env: { RUNBOOK_TEST_PAUSE: 'report' } });
    await w.until('the report phase', () => /test pause: the report phase waits for a signal/.test(w.stderr()));
    const sent = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 0);
    expectExitWithin(r, sent, EXIT_GRACE_MS, 'Ctrl-C');
    const s = expectReport(r, 'passed');
    expect(s.interrupted_reason).toBeUndefined();
    expect(r.stderr).toMatch(/interrupted by Ctrl-C \(SIGINT\): steps and teardown are done; finishing the report, then exiting/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C twice while the report is written: still a complete report, exit code = verdict, within the forced bound', async () => {
    const w = watched(['hold', '--target', profile], { env: { RUNBOOK_TEST_PAUSE: 'report' } });
    await w.until('the report phase', () => /test pause: the report phase waits for a signal/.test(w.stderr()));
    w.signal();
    await w.until('the runner to acknowledge the signal', () => /finishing the report, then exiting/.test(w.stderr()));
    const second = w.signal();
    const r = await w.run;
    expectCalm(ws, r, 0);
    expectExitWithin(r, second, FORCED_EXIT_MS + HANGUP_GRACE_MS, 'the second Ctrl-C');
    expectReport(r, 'passed');
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);
});
