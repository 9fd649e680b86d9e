// Time to verdict: `pnpm runbook smoke --target <file>` against one already running sandbox, split
// into phases, next to bench/floor-smoke.ts (the same HTTP calls as a bare script).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadProfile } from '../helpers/target.js';
import type { Sandbox } from '../sandbox/index.js';
import { lastJson, runChild } from './env.js';
import { goalBelow, medianOf, type BenchResult, type Figure } from './stats.js';
import type { BenchContext } from './index.js';

const REPO = resolve(import.meta.dirname, '..');

/** The runner's DEBUG=runbooks phase names (cli/run.ts) this benchmark splits on. */
const PHASES = ['target resolved', 'preflight done', 'vitest created', 'steps handed over', 'first step started', 'scenarios done', 'teardown replay done', 'report written'] as const;

/** `[runbook +123 ms] vitest created` → the phase name. */
export function parsePhaseLine(line: string): string | undefined {
  return /^\[runbook \+\d+ ms\] (.+)$/.exec(line.trim())?.[1];
}

export function writeProfileYaml(sb: Sandbox, dir: string): string {
  const { source: _source, ...rest } = sb.profile;
  const file = join(dir, 'bench-sandbox.yaml');
  writeFileSync(file, stringify({ ...rest, name: 'bench-sandbox', description: 'sandbox started by pnpm bench' }));
  return file;
}

/**
 * The floor runs as plain JavaScript too (the runner does, since bin/build.mjs), so neither side pays
 * for a TypeScript transform: bench/floor-smoke.ts bundled with the helpers it uses, packages left to
 * Node, into dist/.bench/ (under the checkout, so Node finds node_modules).
 */
async function compileFloor(): Promise<string> {
  const { build } = await import('esbuild');
  const out = join(REPO, 'dist/.bench/floor-smoke.mjs');
  await build({ entryPoints: [join(REPO, 'bench/floor-smoke.ts')], outfile: out, bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20.19', logLevel: 'silent' });
  return out;
}

/** The runner's build is made before timing, so no measured run pays for it (bin/build.mjs). */
export async function ensureBuild(ctx: BenchContext): Promise<void> {
  const { currentBuild } = await import('../bin/build.mjs');
  await currentBuild({ onBuild: (d) => ctx.progress(`building ${d} first (not timed)`) });
}

export async function benchSmoke(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  await ensureBuild(ctx);
  const sb = await ctx.sandbox();
  const dir = mkdtempSync(join(tmpdir(), 'cordum-bench-smoke-'));
  ctx.onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const profileFile = writeProfileYaml(sb, dir);
  loadProfile(profileFile); // fail here, not in the child, when the profile does not validate
  const floorScript = await compileFloor();
  const profileJson = join(dir, 'profile.json');
  writeFileSync(profileJson, JSON.stringify(sb.profile));
  const env = {
    ...process.env,
    DEBUG: 'runbooks',
    CI: 'true',
    RUNBOOK_REPORTS_DIR: join(dir, 'reports'),
    RUNBOOK_STATE_DIR: join(dir, 'state'),
  };
  const n = ctx.reps.slow;
  const fig = (name: string, note?: string): Figure => ({ bench: 'smoke', name, unit: 'ms', values: [], rssBytes: [], ...(note ? { note } : {}) });
  const F = {
    wall: fig('runner: process start → exit (time to verdict)'),
    firstLine: fig('first output line: process start → first line on stdout', 'what the runner is doing; goal < 300 ms'),
    verdictLine: fig('verdict line: process start → PASSED/FAILED line on stdout', 'before the HTML report is written'),
    start: fig('runner start: process start → run open, steps handed over', 'launcher, CLI, profile, preflight; Vitest starts alongside'),
    vitest: fig(
      'Vitest still starting: steps handed over → first step started',
      "worker thread, scenario file, helpers: what did not overlap with the runner start; as the runner's thread hears of it, and Vitest sends test updates at most every 100 ms, so up to 100 ms past the step's own start",
    ),
    scenario: fig('scenario phase: steps handed over → scenarios done'),
    steps: fig('sum of step durations (summary.json)'),
    replay: fig('teardown journal replay: scenarios done → report data ready'),
    report: fig('report generation: report data ready → report written'),
    exit: fig('exit: report written → process exit'),
    floorWall: fig('floor: process start → exit'),
    floorCalls: fig('floor: the HTTP calls alone (in-process)'),
    overhead: fig('runner over floor (process to process)'),
  };
  const notes: string[] = [];
  for (let i = 0; i < n; i++) {
    // Runner
    const at = new Map<string, number>();
    let firstLine: number | undefined;
    let verdictLine: number | undefined;
    // What `pnpm runbook` starts: the launcher, which finds the current build (built before the first run).
    const [node, args] = [process.execPath, [join(REPO, 'bin/runbook.mjs'), 'smoke', '--target', profileFile]];
    const r = await runChild(node, args, {
      cwd: REPO,
      env,
      timeoutMs: 180_000,
      onLine: (stream, line, ms) => {
        if (stream === 'stdout') {
          firstLine ??= ms;
          if (/^[A-Z_]+: \d+ passed/.test(line)) verdictLine ??= ms;
        }
        const p = stream === 'stderr' ? parsePhaseLine(line) : undefined;
        if (p && !at.has(p)) at.set(p, ms);
      },
    });
    if (r.code !== 0) throw new Error(`pnpm runbook smoke exited ${r.code}: ${(r.stdout + r.stderr).trim().split('\n').slice(-8).join(' | ')}`);
    const missing = PHASES.filter((p) => !at.has(p));
    if (missing.length) throw new Error(`runner did not print phase(s) ${missing.join(', ')} with DEBUG=runbooks`);
    const indexPath = r.stdout.trim().split('\n').pop()!;
    const summary = JSON.parse(readFileSync(join(resolve(REPO, indexPath), '..', 'summary.json'), 'utf8')) as { steps: { duration_ms: number }[]; status: string };
    F.wall.values.push(r.wallMs);
    if (firstLine !== undefined) F.firstLine.values.push(firstLine);
    if (verdictLine !== undefined) F.verdictLine.values.push(verdictLine);
    if (r.maxRssBytes) F.wall.rssBytes!.push(r.maxRssBytes);
    F.start.values.push(at.get('steps handed over')!);
    F.vitest.values.push(at.get('first step started')! - at.get('steps handed over')!);
    F.scenario.values.push(at.get('scenarios done')! - at.get('steps handed over')!);
    F.steps.values.push(summary.steps.reduce((s, x) => s + x.duration_ms, 0));
    F.replay.values.push(at.get('teardown replay done')! - at.get('scenarios done')!);
    F.report.values.push(at.get('report written')! - at.get('teardown replay done')!);
    F.exit.values.push(r.wallMs - at.get('report written')!);
    // Floor
    const [fnode, fargs] = [process.execPath, [floorScript, profileJson]];
    const f = await runChild(fnode, fargs, { cwd: REPO, timeoutMs: 60_000 });
    if (f.code !== 0) throw new Error(`floor-smoke exited ${f.code}: ${f.stderr.trim().split('\n').slice(-5).join(' | ')}`);
    const fr = lastJson<{ ms: number; calls: number }>(f.stdout);
    F.floorWall.values.push(f.wallMs);
    if (f.maxRssBytes) F.floorWall.rssBytes!.push(f.maxRssBytes);
    F.floorCalls.values.push(fr.ms);
    F.overhead.values.push(r.wallMs - f.wallMs);
    if (i === 0) notes.push(`The floor makes ${fr.calls} HTTP calls (plus the CAP worker on NATS that the second job needs).`);
    ctx.progress(`smoke run ${i + 1}/${n}: runner ${Math.round(r.wallMs)} ms, floor ${Math.round(f.wallMs)} ms`);
  }
  // The commands that run nothing, answered by the compiled CLI alone (no sandbox, no Vitest run).
  const C = {
    list: fig('`runbook list`: process start → exit'),
    plan: fig('`runbook smoke --plan`: process start → exit'),
    help: fig('`runbook --help`: process start → exit'),
  };
  const quiet = { ...env, DEBUG: '' };
  for (let i = 0; i < ctx.reps.fast; i++) {
    for (const [f, args] of [[C.list, ['list']], [C.plan, ['smoke', '--plan']], [C.help, ['--help']]] as const) {
      const r = await runChild(process.execPath, [join(REPO, 'bin/runbook.mjs'), ...args], { cwd: REPO, env: quiet, timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`runbook ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      f.values.push(r.wallMs);
      if (r.maxRssBytes) f.rssBytes!.push(r.maxRssBytes);
    }
  }
  ctx.progress(`list ${Math.round(C.list.values.at(-1)!)} ms, smoke --plan ${Math.round(C.plan.values.at(-1)!)} ms, --help ${Math.round(C.help.values.at(-1)!)} ms`);
  const figures = [...Object.values(F), ...Object.values(C)];
  for (const f of figures) if (!f.rssBytes?.length) delete f.rssBytes;
  const overhead = medianOf(figures, F.overhead.name);
  const report = medianOf(figures, F.report.name);
  notes.push(
    'Phase boundaries come from the runner itself: with DEBUG=runbooks, cli/run.ts prints `[runbook +N ms] <phase>` lines on stderr; ' +
      'the benchmark timestamps each line on arrival (relative to spawn), so "runner start" includes Node start-up and the launcher\'s build check, which the runner\'s own clock does not see. The first output line and the verdict line are timed the same way, on stdout.',
    'Vitest starts with the run, before the target is known (cli/run/vitest-session.ts): its worker thread imports the compiled scenario and the helpers while the runner loads the profile and asks the gateway, and the scenario file waits for the run. "Vitest still starting" is what of that start-up was left when the run was handed over; the scenario phase minus the sum of step durations is Vitest\'s whole cost on the way (that remainder plus its per-step bookkeeping).',
    'DEBUG=runbooks also sends Vitest\'s own log to stderr; otherwise the run is the ordinary `pnpm runbook smoke --target <file>` (`pnpm` itself, about 0.3-0.5 s of its own, is not in the timing: the CLI is started as `node bin/runbook.mjs`, what the package script runs, on a current build made before timing).',
    'The floor (`bench/floor-smoke.ts`) is bundled to plain JavaScript before timing, so neither side pays for a TypeScript transform. `list`, `smoke --plan` and `--help` run without DEBUG, CI=true, each as its own process.',
  );
  return {
    name: 'smoke',
    title: 'Time to verdict: `pnpm runbook smoke`',
    method: [
      'One sandbox is started in the benchmark process; its profile is written to a temporary YAML file and `cli/runbook.ts smoke --target <file>` is run as a child, with the sandbox API key in the environment (CORDUM_SANDBOX_API_KEY) and reports written to a temporary directory.',
      'Next to each runner run, `bench/floor-smoke.ts` (the floor) makes the same HTTP calls in the same order with undici, as a bare script in its own process. "Runner over floor" is the difference of the two process wall times, per pair.',
    ],
    figures,
    goals: [
      goalBelow('runner adds under 1.0 s over the floor', overhead / 1000, 1.0, 's'),
      goalBelow('first output line under 300 ms', medianOf(figures, F.firstLine.name), 300, 'ms'),
      goalBelow('`list` answers under 1 s', medianOf(figures, C.list.name) / 1000, 1, 's'),
      goalBelow('`--plan` answers under 1 s', medianOf(figures, C.plan.name) / 1000, 1, 's'),
      goalBelow('report generation under 2 s', report / 1000, 2, 's'),
    ],
    notes,
    durationMs: performance.now() - t0,
  };
}
