// Earlier runs that crashed (issue 19, rows 9 and 10). Row 9: an earlier run's owner file names a
// pid that is alive but belongs to another process now (pids are reused): the start time tells
// them apart, so the crashed run's leftovers are removed instead of being left to a stranger for
// as long as it lives; a live owner (same pid, same start) is still left alone. Row 10: a run
// killed with SIGKILL leaves its owner file and a partial report directory; the next run removes
// the owner file, marks the directory INCOMPLETE, says so, and removes what the killed run created.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { journalDir } from '../../helpers/teardown.js';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { SECRET, Workspace, gatewayProfile, until } from './support/harness.js';

let gw: FaultGateway;
let ws: Workspace;
let profile: string;
const strangers: ChildProcess[] = [];

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  profile = ws.profile('fault', gatewayProfile());
});

afterEach(() => {
  gw.setFault('step', 'ok');
  gw.release();
});

afterAll(async () => {
  for (const p of strangers) p.kill('SIGKILL');
  await gw?.close();
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

const journals = () => journalDir(ws.state, 'fault-target');

/** A long-lived process that is not a runner: its pid is what a crashed run's owner file names. */
function stranger(): ChildProcess {
  const p = spawn('sleep', ['300'], { stdio: 'ignore' });
  strangers.push(p);
  return p;
}

/** Its start time as /proc/<pid>/stat says (field 22), in the owner file's format. */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return `linux:${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
}

/** An earlier run's journal with one pending DELETE of a thing that exists on the gateway, and its owner file. */
async function crashedRun(runId: string, owner: { pid: number; started: string }): Promise<string> {
  const res = await fetch(`${gw.url}/api/v1/things`, { method: 'POST', headers: { 'x-api-key': SECRET, 'content-type': 'application/json' }, body: JSON.stringify({ name: `rb-${runId}` }) });
  const { id } = (await res.json()) as { id: string };
  mkdirSync(journals(), { recursive: true });
  const entry = { op: 'add', scope: 'hold.scenario.ts', label: `thing rb-${runId}`, action: { kind: 'http', method: 'DELETE', path: `/api/v1/things/${id}` }, at: new Date().toISOString() };
  writeFileSync(join(journals(), `${runId}.jsonl`), JSON.stringify(entry) + '\n');
  writeFileSync(join(journals(), `${runId}.owner`), JSON.stringify({ pid: owner.pid, host: hostname(), started: owner.started }) + '\n');
  return `thing/${id}`;
}

describe('earlier runs that crashed', () => {
  it('row 9: an owner file whose pid now belongs to another process (other start time) does not block the cleanup; a live owner still does', async () => {
    const other = stranger();
    await until('the stranger process', () => existsSync(`/proc/${other.pid}/stat`));
    const reused = await crashedRun('20260101-000000-hold-dead', { pid: other.pid!, started: 'linux:1' });
    const live = await crashedRun('20260101-000001-hold-live', { pid: other.pid!, started: startOf(other.pid!) });

    const r = await ws.cli(['readonly', '--target', profile]);
    expectCalm(ws, r, 0);
    expectReport(r, 'passed');
    expect(r.stdout).toMatch(new RegExp(`^Run 20260101-000000-hold-dead ended without finishing \\(its runner, pid ${other.pid}, is gone\\): its report was complete or never started; its owner file was removed$`, 'm'));
    expect(r.stdout).toMatch(/^Leftovers of earlier run .*20260101-000000-hold-dead\.jsonl: 1 removed, 0 still there$/m);
    expect(gw.objects.has(reused), 'the crashed run leftover').toBe(false);
    expect(existsSync(join(journals(), '20260101-000000-hold-dead.owner'))).toBe(false);
    // Same pid, same start time: that run is alive and keeps its objects.
    expect(r.stdout).toMatch(new RegExp(`^Run .*20260101-000001-hold-live\\.jsonl is still running \\(pid ${other.pid}\\); its objects are left to it$`, 'm'));
    expect(gw.objects.has(live)).toBe(true);

    other.kill('SIGKILL');
    await until('the stranger to exit', () => other.exitCode !== null || other.signalCode !== null);
    const again = await ws.cli(['readonly', '--target', profile]);
    expectCalm(ws, again, 0);
    expect(again.stdout).toMatch(/^Leftovers of earlier run .*20260101-000001-hold-live\.jsonl: 1 removed, 0 still there$/m);
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
  }, 240_000);

  it('row 10: a SIGKILLed run: the next run removes its owner file, marks its partial report INCOMPLETE, says so, and removes its leftovers', async () => {
    gw.setFault('step', 'hold');
    const probes = gw.count('GET /api/v1/probe/step');
    const reportsBefore = new Set(existsSync(ws.reports) ? readdirSync(ws.reports) : []);
    let child: ChildProcess | undefined;
    const killed = ws.cli(['hold', '--target', profile], { onStart: (c) => (child = c) });
    await until('the held step', () => gw.count('GET /api/v1/probe/step') > probes);
    child!.kill('SIGKILL');
    const k = await killed;
    expect(k.signal).toBe('SIGKILL');
    gw.setFault('step', 'ok');
    gw.release();

    const runId = readdirSync(ws.reports).find((d) => !reportsBefore.has(d) && !d.startsWith('.'))!;
    expect(runId, 'the killed run created its report directory').toBeDefined();
    const owner = join(journals(), `${runId}.owner`);
    expect(existsSync(owner), 'the killed run left its owner file').toBe(true);
    expect(gw.objects.size, 'the thing the killed run created').toBe(1);
    // Allure's results wait in a temp folder named after the runner's pid until the run ends.
    const staging = () => readdirSync(tmpdir()).filter((n) => n.startsWith(`runbook-results-${child!.pid}-`));
    expect(staging(), 'the killed run left its results staging folder').toHaveLength(1);

    const r = await ws.cli(['readonly', '--target', profile]);
    expectCalm(ws, r, 0);
    expectReport(r, 'passed');
    const dir = join(ws.reports, runId);
    expect(r.stdout).toContain(`Run ${runId} ended without finishing (its runner, pid ${child!.pid}, is gone): its report ${dir} is incomplete (marked with INCOMPLETE); its owner file was removed`);
    expect(readFileSync(join(dir, 'INCOMPLETE'), 'utf8')).toMatch(new RegExp(`^run ${runId} did not finish: its runner \\(pid ${child!.pid}\\) ended without writing the report; `));
    expect(existsSync(join(dir, 'manifest.sha256'))).toBe(false);
    expect(existsSync(owner)).toBe(false);
    expect(r.stdout).toMatch(new RegExp(`^Leftovers of earlier run .*${runId}\\.jsonl: 1 removed, 0 still there$`, 'm'));
    expect(gw.objects.size, 'leftovers on the target').toBe(0);
    expect(staging(), 'the killed run\'s staging folder, removed by the next run').toEqual([]);
  }, 240_000);
});
