// Vitest, in-process (a child Vitest would add ~1 s and a second signal path): the configuration
// every run and --plan share, the declared-order sequencer, and one session that runs the scenario
// files and collects their step records. The runner owns the process: Vitest's own signal and
// unhandled-rejection handlers (which exit the process at once, with 1) are removed again.
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Vitest } from 'vitest/node';
import { REPO_ROOT } from '../../helpers/catalog.js';
import { EXIT, UsageError, errorMessage } from '../../helpers/errors.js';
import { ENV, type StepMeta } from '../../helpers/report/run-contract.js';
import type { StepRecord } from '../../helpers/report/summary.js';
import { settleWithin, untilAborted } from '../../helpers/waits.js';
import { ProgressReporter } from '../progress-reporter.js';
import { FORCE_TEARDOWN_MS, type Interrupts } from './interrupts.js';
import { debugging, phase, prefetch, waiting } from './log.js';

export interface SessionArgs {
  files: string[];
  resultsDir: string;
  /** Allure's environment block. */
  environment: Record<string, string>;
  interrupts: Interrupts;
  /** The run contract's environment for the workers (helpers/report/run-contract.ts ENV). */
  env: Record<string, string>;
}

export interface SessionResult {
  steps: StepRecord[];
  /** Problems outside any step: a file that failed to load, an unhandled error. */
  runErrors: string[];
}

/** Run the scenario files in the runbook's order; a forced stop does not wait for stuck steps. */
export async function runScenarios(s: SessionArgs): Promise<SessionResult> {
  // Until the first step starts: loading Vitest, its worker and the scenario file.
  const starting = waiting('Starting Vitest and loading the scenarios');
  const [{ createVitest }, { default: AllureReporter }, { StepCollector }, { CATEGORIES }] = await Promise.all([
    import('vitest/node'),
    import('allure-vitest/reporter'),
    import('../../helpers/report/collector.js'),
    import('../../helpers/report/allure.js'),
  ]);
  Object.assign(process.env, s.env); // worker threads inherit the runner's environment
  const collector = new StepCollector();
  // An unhandled rejection in the runner during the run is recorded, never a silent exit 1.
  const onUnhandled = (reason: unknown) => collector.runErrors.push(`runner: unhandled rejection: ${errorMessage(reason).split('\n')[0]}`);
  process.on('unhandledRejection', onUnhandled);
  try {
    phase('vitest loaded');
    const vitest = await withoutVitestProcessHandlers(() =>
      createVitest(
        'test',
        {
          ...baseVitestConfig(s.files),
          reporters: [
            {
              onTestCaseReady: () => {
                starting.done();
                s.interrupts.repost();
              },
            },
            new ProgressReporter(),
            collector,
            new AllureReporter({ resultsDir: s.resultsDir, environmentInfo: s.environment, categories: CATEGORIES }),
          ],
          // junit.xml is written by the runner from the step records (helpers/report/junit.ts), so it
          // exists for interrupted, forced and broken runs too.
          env: s.env,
        },
        viteConfig(),
        vitestStreams(),
      ),
    );
    phase('vitest created');
    const run = vitest.start().catch((err: unknown) => {
      collector.runErrors.push(`vitest: ${errorMessage(err)}`);
    });
    // A forced stop must not wait for a step that ignores its abort signal.
    const forced = new AbortController();
    s.interrupts.onForce(() => {
      void vitest.cancelCurrentRun('keyboard-input').catch(() => {});
      setTimeout(() => forced.abort(), FORCE_TEARDOWN_MS).unref();
    });
    // Steps mostly wait on the network: load the report generator meanwhile.
    prefetch(() => import('../../helpers/report/allure.js').then((m) => m.preloadAllure()));
    await untilAborted(run, forced.signal).catch(() => {});
    const reason = s.interrupts.reason;
    const cutShort = reason && reason.kind === 'signal' ? EXIT.INTERRUPTED : EXIT.CHECK_FAILED;
    collector.flushRunning(reason ? `interrupted: ${reason.text}` : 'did not finish', cutShort);
    // Closing waits for workers; a worker stuck in a step that ignored its signal must not hold the report.
    if (!s.interrupts.forced) await settleWithin(vitest.close(), 5_000);
    return { steps: collector.steps, runErrors: collector.runErrors };
  } finally {
    starting.done();
    process.off('unhandledRejection', onUnhandled);
  }
}

/** What every Vitest instance of the runner is given (runs and --plan). */
export function baseVitestConfig(files: string[]) {
  return {
    root: REPO_ROOT,
    config: false as const,
    watch: false,
    include: files.map((f) => relative(REPO_ROOT, f)),
    // Worker threads: one process, so Ctrl-C reaches the workers through a BroadcastChannel.
    pool: 'threads' as const,
    fileParallelism: false,
    maxWorkers: 1,
    // One worker for all of a runbook's files, in order: steps keep their state per file
    // (helpers/steps.ts › FileRun), so a fresh worker per file would only cost start-up.
    isolate: false,
    // Running compiled: the helpers are this build's JavaScript, loaded by Node itself (see viteConfig).
    server: { deps: { external: COMPILED ? [BUILT_HELPERS] : [] } },
    // The runbook's order, not Vitest's default (failed/slow files first): steps of later files may
    // depend on earlier ones, and the verdict names the first failure.
    sequence: { shuffle: false, sequencer: declaredOrder(files) },
    passWithNoTests: false,
    // Nothing is written under the repo: the image runs with a read-only root filesystem.
    cache: false as const,
    // Time to verdict: no dependency pre-bundling, typecheck or coverage; one worker, files in order.
    deps: { optimizer: { ssr: { enabled: false }, client: { enabled: false } } },
    typecheck: { enabled: false },
    coverage: { enabled: false },
    hookTimeout: 130_000,
    teardownTimeout: 10_000,
  };
}

/** The root this module runs from: the checkout, or dist/<build> when compiled (bin/build.mjs). */
const CODE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPILED = !import.meta.url.endsWith('.ts');
const BUILT_HELPERS = join(CODE_ROOT, 'helpers') + sep;
const SOURCE_HELPERS = join(REPO_ROOT, 'helpers') + sep;

/**
 * Vite's side. Running compiled, a scenario's import of a helper ('../../helpers/steps.js') is
 * resolved to this build's compiled helper, which `server.deps.external` hands to Node untransformed:
 * Vite transforms only the scenario file itself, and every helper module, with its state (the
 * teardown registry, the redaction set), exists once in the worker, whoever imports it. Running from
 * source (tsx, the project's tests), Vite resolves and transforms the TypeScript helpers as usual.
 */
function viteConfig() {
  if (!COMPILED) return {};
  return {
    plugins: [
      {
        name: 'runbook-compiled-helpers',
        enforce: 'pre' as const,
        resolveId(source: string, importer: string | undefined) {
          if (!importer || !source.startsWith('.')) return null;
          const abs = resolve(dirname(importer), source);
          if (!abs.startsWith(SOURCE_HELPERS)) return null;
          return BUILT_HELPERS + abs.slice(SOURCE_HELPERS.length).replace(/\.ts$/, '.js');
        },
      },
    ],
  };
}

/** A Vitest sequencer that runs scenario files in the order the runbook lists them. */
export function declaredOrder(files: string[]) {
  const rank = (f: string) => {
    const i = files.indexOf(resolve(f));
    return i < 0 ? files.length : i;
  };
  return class {
    shard<T>(specs: T[]): T[] {
      return specs;
    }
    sort<T extends { moduleId: string }>(specs: T[]): T[] {
      return [...specs].sort((a, b) => rank(a.moduleId) - rank(b.moduleId));
    }
  };
}

export interface CollectedStep {
  name: string;
  /** Resolved deadline (see StepMeta); undefined when it depends on a target that was not given. */
  deadlineMs?: number;
  /** Set when the step's deadline function gave no usable deadline for the target. */
  deadlineProblem?: string;
}

export interface CollectedScenario {
  file: string;
  title: string;
  steps: CollectedStep[];
}

/**
 * Collect mode: import each scenario file to register its steps; no hook or step runs. With a
 * target file (the resolved profile as JSON), deadlines that depend on the target are resolved.
 */
export async function collectSteps(files: string[], opts: { targetFile?: string } = {}): Promise<CollectedScenario[]> {
  const { createVitest } = await import('vitest/node');
  const env: Record<string, string> = opts.targetFile ? { [ENV.TARGET_FILE]: opts.targetFile } : {};
  const vitest = await withoutVitestProcessHandlers(() =>
    createVitest('test', { ...baseVitestConfig(files), reporters: [], env }, viteConfig(), vitestStreams()),
  );
  try {
    const { testModules } = await vitest.collect();
    const byFile = new Map(testModules.map((m) => [m.moduleId, m]));
    return files.map((file) => {
      const mod = byFile.get(file);
      if (!mod) return { file, title: '(not collected)', steps: [] };
      const errors = mod.errors();
      if (errors.length) throw new UsageError(`${relative(REPO_ROOT, file)}: ${errors[0]!.message.split('\n')[0]}`);
      const suites = [...mod.children.suites()];
      const tests = [...mod.children.allTests()];
      const steps = tests.map((t) => {
        const meta = t.meta() as StepMeta;
        return { name: t.name, deadlineMs: meta.deadlineMs, deadlineProblem: meta.deadlineProblem };
      });
      return { file, title: suites[0]?.name ?? relative(REPO_ROOT, file), steps };
    });
  } finally {
    await vitest.close();
  }
}

/** Vitest's own logger only prints what our reporters already say; keep it for DEBUG=runbooks. */
function vitestStreams(): { stdout: Writable; stderr: Writable } {
  if (debugging()) return { stdout: process.stderr, stderr: process.stderr };
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  return { stdout: sink(), stderr: sink() };
}

/** Process events Vitest's logger listens to in order to exit the process itself. */
const VITEST_PROCESS_EVENTS = ['SIGINT', 'SIGTERM', 'unhandledRejection'] as const;

/**
 * Vitest's logger installs SIGINT/SIGTERM handlers that exit a millisecond later, and an
 * unhandledRejection handler that sets exit code 1 and exits at once; they stay until
 * vitest.close() completes, which a stopped run does not wait for. The runner must keep control
 * (teardown runs, the exit code is the verdict), so handlers added during creation are removed.
 */
async function withoutVitestProcessHandlers(create: () => Promise<Vitest>): Promise<Vitest> {
  const before = new Map(VITEST_PROCESS_EVENTS.map((ev) => [ev, new Set(process.listeners(ev as NodeJS.Signals))]));
  const v = await create();
  for (const ev of VITEST_PROCESS_EVENTS) {
    for (const l of process.listeners(ev as NodeJS.Signals)) if (!before.get(ev)!.has(l)) process.off(ev, l);
  }
  return v;
}
