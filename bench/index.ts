// `pnpm bench`: reproducible benchmarks on this machine, written to docs/benchmarks.md.
//   pnpm bench                 full run (default sizes, 3 runs per slow figure, 5 per fast one)
//   pnpm bench --quick         10x smaller sizes, 1 run; report to a temp file unless --write
//   pnpm bench --only <name>   one benchmark (smoke, dlq, redis, jetstream, readiness, policy-impact)
//   --write                    write docs/benchmarks.md even for --quick/--only (--only replaces just that
//                              benchmark's section and goal rows); --out <file> elsewhere
// Everything started here (sandbox, servers, children) is stopped at the end and on Ctrl-C.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import type { Sandbox } from '../sandbox/index.js';
import { cleanupAll, machineInfo, onCleanup } from './env.js';
import { isLoaded, mergeMarkdown, renderMarkdown } from './markdown.js';
import { figureLine, goalLine, parseArgs, type BenchResult } from './stats.js';

const REPO = resolve(import.meta.dirname, '..');
const DOC = join(REPO, 'docs/benchmarks.md');
const BUDGET_MS = 10 * 60_000;

export interface BenchContext {
  quick: boolean;
  reps: { slow: number; fast: number };
  /** One sandbox shared by the benchmarks that need one (started on first use). */
  sandbox(): Promise<Sandbox>;
  onCleanup(fn: () => Promise<unknown>): void;
  progress(line: string): void;
}

type BenchFn = (ctx: BenchContext) => Promise<BenchResult>;

const BENCHES: { name: string; title: string; needsSandbox: boolean; load: () => Promise<BenchFn> }[] = [
  { name: 'smoke', title: 'Time to verdict: `pnpm runbook smoke`', needsSandbox: true, load: async () => (await import('./smoke.js')).benchSmoke },
  { name: 'dlq', title: 'DLQ detection latency', needsSandbox: true, load: async () => (await import('./dlq.js')).benchDlq },
  { name: 'redis', title: 'Redis backup and restore', needsSandbox: false, load: async () => (await import('./redis.js')).benchRedis },
  { name: 'jetstream', title: 'JetStream snapshot and restore', needsSandbox: false, load: async () => (await import('./jetstream.js')).benchJetStream },
  { name: 'policy-impact', title: 'Policy-impact replay pace', needsSandbox: true, load: async () => (await import('./policy-impact.js')).benchPolicyImpact },
  { name: 'readiness', title: 'Readiness audit (static)', needsSandbox: false, load: async () => (await import('./readiness.js')).benchReadiness },
];

const USAGE = `usage: pnpm bench [--quick] [--only <${BENCHES.map((b) => b.name).join('|')}>] [--write] [--out <file>] [--reps <n>]`;

function log(line: string): void {
  process.stdout.write(line + '\n');
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    log(USAGE);
    return 0;
  }
  const selected = args.only ? BENCHES.filter((b) => b.name === args.only) : BENCHES;
  if (selected.length === 0) {
    process.stderr.write(`unknown benchmark ${args.only}\n${USAGE}\n`);
    return 2;
  }
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = machineInfo();
  const reps = args.reps ? { slow: args.reps, fast: args.reps } : args.quick ? { slow: 1, fast: 1 } : { slow: 3, fast: 5 };
  log(`pnpm bench${args.quick ? ' --quick' : ''}${args.only ? ` --only ${args.only}` : ''}: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, redis ${machine.redisServer.split(' ')[0]}, ${machine.natsServer}`);
  log(`load average at start ${machine.loadAvg.map((l) => l.toFixed(2)).join(' ')}${isLoaded(machine) ? ': figures taken on a loaded machine (> 1 per core)' : ''}`);

  let sandbox: Promise<Sandbox> | undefined;
  let stopSandbox: (() => void) | undefined;
  const ctx: BenchContext = {
    quick: args.quick,
    reps,
    sandbox: () =>
      (sandbox ??= import('../sandbox/index.js').then(async ({ startSandbox }) => {
        const sb = await startSandbox({ policyReloadMs: 1000 });
        stopSandbox = onCleanup(() => sb.stop());
        return sb;
      })),
    onCleanup: (fn) => void onCleanup(fn),
    progress: (line) => log(`  … ${line}`),
  };

  const results: BenchResult[] = [];
  let failed = 0;
  const needSandbox = selected.filter((b) => b.needsSandbox);
  for (const b of selected) {
    const bt = performance.now();
    log(`\n== ${b.name}`);
    let r: BenchResult;
    try {
      r = await (await b.load())(ctx);
    } catch (err) {
      failed++;
      const msg = (err as Error).message;
      process.stderr.write(`${b.name}: FAILED: ${(err as Error).stack ?? msg}\n`);
      r = { name: b.name, title: b.title, method: [], figures: [], goals: [], notes: [], error: msg, durationMs: performance.now() - bt };
    }
    results.push(r);
    for (const f of r.figures) log(figureLine(f));
    for (const g of r.goals) log(goalLine(r.name, g));
    // The sandbox is not needed past the last benchmark that uses it: stop it so it does not load the machine.
    if (b === needSandbox[needSandbox.length - 1] && sandbox) {
      const sb = await sandbox.catch(() => undefined);
      await sb?.stop();
      stopSandbox?.();
      sandbox = undefined;
    }
  }
  await cleanupAll();

  const durationMs = performance.now() - t0;
  const fullRun = !args.quick && !args.only && !args.reps;
  const out = args.out ? resolve(args.out) : fullRun || args.write ? DOC : join(mkdtempSync(join(tmpdir(), 'cordum-bench-')), 'benchmarks.md');
  const command = ['pnpm bench', args.quick ? '--quick' : '', args.only ? `--only ${args.only}` : '', args.reps ? `--reps ${args.reps}` : '', args.write ? '--write' : ''].filter(Boolean).join(' ');
  const runInfo = { quick: args.quick, startedAt: startedAt.toISOString(), durationMs, reps, only: args.only, command };
  // A partial run written to the report updates its own sections and goal rows only.
  const merge = args.only && out === DOC && existsSync(DOC);
  const md = merge ? mergeMarkdown(readFileSync(DOC, 'utf8'), machine, runInfo, results) : renderMarkdown(machine, runInfo, results);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  log(`\nwrote ${relative(process.cwd(), out).startsWith('..') ? out : relative(process.cwd(), out)} (${(durationMs / 1000).toFixed(0)} s${durationMs > BUDGET_MS ? `, OVER the ${BUDGET_MS / 60_000} min budget` : ''})`);
  return failed ? 1 : 0;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping everything the benchmark started\n`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (err) => {
    process.stderr.write(`pnpm bench: ${(err as Error).stack ?? err}\n`);
    await cleanupAll();
    process.exit(1);
  });
