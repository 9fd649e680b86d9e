// Ctrl-C (SIGINT) and SIGTERM in every phase of a run: setup, a step, teardown (once: teardown
// finishes; twice: bounded forced teardown and the runner's replay) and report generation.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { Workspace, causeLine, gatewayProfile, until } from './support/harness.js';

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
  gw.holdHealth = false;
  gw.setFault('step', 'ok');
  gw.release();
});

afterAll(async () => {
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const runDirs = () => (existsSync(ws.reports) ? readdirSync(ws.reports).filter((d) => !d.startsWith('.')) : []);

describe('signals in every phase', () => {
  it('Ctrl-C during setup (preflight waiting on the target): exit 130, one line, nothing created, no report', async () => {
    gw.holdHealth = true;
    const before = runDirs().length;
    const healthBefore = gw.count('GET /health');
    let child: ChildProcess | undefined;
    const run = ws.cli(['hold', '--target', profile], { onStart: (c) => (child = c) });
    await until('the preflight health check', () => gw.count('GET /health') > healthBefore);
    child!.kill('SIGINT');
    const r = await run;
    expectCalm(ws, r, 130);
    expect(causeLine(r)).toMatch(/^runbook: interrupted by Ctrl-C \(SIGINT\) during setup; nothing was created on the target and no report was written$/);
    expect(gw.count('POST /api/v1/things')).toBe(0);
    expect(runDirs().length).toBe(before);
  }, 240_000);

  it('SIGTERM during a step: the step stops, teardown runs, exit 130, the report says interrupted', async () => {
    gw.setFault('step', 'hold');
    const probes = gw.count('GET /api/v1/probe/step');
    let child: ChildProcess | undefined;
    const run = ws.cli(['hold', '--target', profile], { onStart: (c) => (child = c) });
    await until('the held step', () => gw.count('GET /api/v1/probe/step') > probes);
    child!.kill('SIGTERM');
    const r = await run;
    expectCalm(ws, r, 130);
    const s = expectReport(r, 'interrupted');
    expect(s.interrupted_reason).toBe('interrupted by SIGTERM');
    expect(s.steps.map((st: any) => `${st.status} ${st.name}`)).toEqual([
      'passed Create a thing',
      "failed Probe 'step'",
      'skipped After the step',
      'passed Teardown: remove what this run created',
    ]);
    expect(r.stderr).toMatch(/interrupted by SIGTERM: stopping the current step and tearing down/);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C during teardown: teardown is not cut short, it finishes, exit 130', async () => {
    gw.holdDeletes = true;
    const deletes = gw.count(/^DELETE /);
    let child: ChildProcess | undefined;
    let stderr = '';
    const run = ws.cli(['hold', '--target', profile], { onStart: (c) => ((child = c), c.stderr!.on('data', (d) => (stderr += d))) });
    await until('teardown to start', () => gw.count(/^DELETE /) > deletes);
    child!.kill('SIGINT');
    await until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C/.test(stderr));
    gw.holdDeletes = false;
    gw.release();
    const r = await run;
    expectCalm(ws, r, 130);
    const s = expectReport(r, 'interrupted');
    expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    expect(s.teardown.left_behind).toEqual([]);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C twice during a blocked teardown: bounded forced stop, the runner replays the journal, nothing left', async () => {
    gw.holdDeletes = true;
    const deletes = gw.count(/^DELETE /);
    let child: ChildProcess | undefined;
    let stderr = '';
    const run = ws.cli(['hold', '--target', profile], { onStart: (c) => ((child = c), c.stderr!.on('data', (d) => (stderr += d))) });
    await until('teardown to start', () => gw.count(/^DELETE /) > deletes);
    child!.kill('SIGINT');
    await until('the runner to acknowledge the signal', () => /interrupted by Ctrl-C/.test(stderr));
    // The held DELETE stays held; the runner's own replay gets a prompt answer.
    gw.holdDeletes = false;
    child!.kill('SIGINT');
    const r = await run;
    expectCalm(ws, r, 130);
    expect(r.stderr).toMatch(/forcing: bounded teardown/);
    const s = expectReport(r, 'interrupted');
    expect(s.teardown.left_behind).toEqual([]);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('Ctrl-C while the report is written: the report is completed and verified, exit code = verdict', async () => {
    let child: ChildProcess | undefined;
    let stderr = '';
    const run = ws.cli(['hold', '--target', profile], {
      env: { DEBUG: 'runbooks' },
      onStart: (c) => {
        child = c;
        c.stderr!.on('data', (d) => (stderr += d));
      },
    });
    await until('report generation', () => /\] teardown replay done/.test(stderr));
    child!.kill('SIGINT');
    const r = await run;
    // The signal may land during or just after report writing: either way a complete report.
    expect(r.hung).toBe(false);
    expect(ws.secretHits(r)).toEqual([]);
    if (r.code === 0) {
      expectReport(r, 'passed');
      if (/interrupted by/.test(r.stderr)) expect(r.stderr).toMatch(/steps and teardown are done; finishing the report/);
    } else {
      expect(r.code).toBe(130); // arrived after the runner let go of the signal: default handler
    }
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);
});
