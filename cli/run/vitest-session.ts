// Vitest, in-process (a child Vitest would add ~1 s and a second signal path): the configuration
// every run and --plan share, the declared-order sequencer, and one session that runs the scenario
// files and collects their step records. The session starts as the run does, before the target is
// known, so Vitest's own start-up is not on the way to the first step. The runner owns the process: Vitest's own signal and
// unhandled-rejection handlers (which exit the process at once, with 1) are removed again.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Writer } from 'allure-js-commons/sdk/reporter';
import type AllureVitestReporter from 'allure-vitest/reporter';
import type { TestModule, Vitest } from 'vitest/node';
import { REPO_ROOT } from '../../helpers/catalog.js';
import { EXIT, UsageError, errorMessage } from '../../helpers/errors.js';
import { ENV, type ContractMessage, type StepMeta } from '../../helpers/report/run-contract.js';
import type { StepRecord } from '../../helpers/report/summary.js';
import { processGone } from '../../helpers/teardown.js';
import { settleWithin, untilAborted } from '../../helpers/waits.js';
import { ProgressReporter } from '../progress-reporter.js';
import { FORCE_TEARDOWN_MS, type Interrupts } from './interrupts.js';
import { startEarlyThread, type EarlyThread } from './scenario-thread.js';
import { debugging, phase, prefetch, waiting, type Waiting } from './log.js';

export interface SessionArgs {
  files: string[];
  interrupts: Interrupts;
}

export interface RunArgs {
  /** The run's allure-results directory: the results are moved there when the files are done. */
  resultsDir: string;
  /** Allure's environment block. */
  environment: Record<string, string>;
  /** The run contract's environment for the scenario files (helpers/report/run-contract.ts ENV). */
  env: Record<string, string>;
}

export interface SessionResult {
  steps: StepRecord[];
  /** Problems outside any step: a file that failed to load, an unhandled error. */
  runErrors: string[];
}

/**
 * Vitest with the runbook's scenario files, started before the run exists: the worker thread, the
 * scenario files and the helpers load while the runner resolves and asks the target, and each file
 * waits (helpers/steps.ts › receiveRunEnvironment) until run() hands it the run, or abandon() says
 * there will be none.
 */
export interface ScenarioSession {
  /** Hand the run to the scenario files and wait until they are done; a forced stop does not wait for stuck steps. */
  run(r: RunArgs): Promise<SessionResult>;
  /**
   * No run will happen (setup failed or was interrupted): the files stop before any step, and nothing
   * is written. After run(), it only waits (bounded) for Vitest to finish closing.
   */
  abandon(reason: string): Promise<void>;
  /**
   * Settles once Vitest has begun its run (or failed to start: run() reports that): its thread is
   * on its way, or already there when the runner started it early (cli/run/scenario-thread.ts), and
   * sets up the run (Vitest's runner, the setup files, the scenario files, ~0.1 s) while the runner
   * asks the target. Work of the runner's own before this would hold the one thread Vitest needs
   * to get there, and leave that set-up for after the handover.
   */
  launched: Promise<void>;
}

interface Started {
  vitest: Vitest;
  collector: import('../../helpers/report/collector.js').StepCollector;
  done: Promise<void>;
}

export function startSession(s: SessionArgs): ScenarioSession {
  const channelName = `runbook-contract:${randomBytes(8).toString('hex')}`;
  // Allure writes its results when the files are done; they wait here until the run directory exists.
  const staging = stagingDir();
  let answer: Exclude<ContractMessage, { type: 'hello' }> | undefined;
  const channel = new BroadcastChannel(channelName);
  channel.onmessage = (ev) => {
    if ((ev as MessageEvent<ContractMessage>).data?.type === 'hello' && answer) channel.postMessage(answer);
  };
  (channel as unknown as { unref?: () => void }).unref?.();
  const tell = (msg: Exclude<ContractMessage, { type: 'hello' }>) => {
    answer = msg;
    channel.postMessage(msg);
  };
  let starting: Waiting | undefined;
  let firstStep = false;
  let launch!: () => void;
  const launched = new Promise<void>((resolve) => (launch = resolve));
  const runErrors: string[] = [];
  // An unhandled rejection in the runner while the files run is recorded, never a silent exit 1.
  const onUnhandled = (reason: unknown) => runErrors.push(`runner: unhandled rejection: ${errorMessage(reason).split('\n')[0]}`);
  process.on('unhandledRejection', onUnhandled);
  const configEnv = { [ENV.CONTRACT_CHANNEL]: channelName };
  // As Vitest's own CLI does (else Vite would make it "development" while it loads): the scenario
  // thread, started before Vite loads, is given the same environment Vitest will ask for.
  process.env.NODE_ENV ??= 'test';
  const compiled = compiledScenarios(s.files);
  // The scenario thread starts now, while Vitest's main side loads (cli/run/scenario-thread.ts).
  const early = compiled && process.env.RUNBOOK_EARLY_THREAD !== '0' ? earlyThreadOrNone(configEnv, compiled) : undefined;
  const started: Promise<Started> = (async () => {
    const [{ createVitest, ThreadsPoolWorker }, { default: AllureReporter }, { StepCollector }, { StagingResultsWriter }] = await Promise.all([
      import('vitest/node'),
      import('allure-vitest/reporter'),
      import('../../helpers/report/collector.js'),
      import('../../helpers/report/results-writer.js'),
    ]);
    phase('vitest loaded');
    const collector = new StepCollector({ fileOf: sourceFile });
    const Allure = withStagingWriter(compiled ? sourceNamedAllure(AllureReporter) : AllureReporter, () => new StagingResultsWriter(staging));
    const vitest = await withoutVitestProcessHandlers(() =>
      createVitest(
        'test',
        {
          ...baseVitestConfig(s.files, compiled),
          ...(early ? { pool: early.pool(ThreadsPoolWorker) } : {}),
          reporters: [
            {
              onTestRunStart: () => launch(),
              onTestCaseReady: () => {
                if (!firstStep) {
                  phase('first step started');
                  if (early) phase(`scenario thread: ${early.outcome}`);
                  // Steps mostly wait on the network: load the report's writers meanwhile (not
                  // earlier: until now the CPU is Vitest's, on the way to the first step).
                  prefetch(
                    () => import('../../helpers/report/allure.js').then((m) => m.preloadAllure()),
                    () => import('../../helpers/report/write.js'),
                    () => import('../../helpers/history.js'),
                  );
                }
                firstStep = true;
                starting?.done();
                s.interrupts.repost();
              },
            },
            new ProgressReporter(),
            collector,
            // The environment block and the categories are written when the run is known (run(),
            // moveResults): given here, allure-vitest would write them as Vitest starts, with an
            // fsync, on the way to the first step.
            new Allure({ resultsDir: staging }),
          ],
          // junit.xml is written by the runner from the step records (helpers/report/junit.ts), so it
          // exists for interrupted, forced and broken runs too.
          env: configEnv,
        },
        viteConfig(),
        vitestStreams(),
      ),
    );
    phase('vitest created');
    const done = vitest.start().then(
      () => undefined,
      (err: unknown) => void collector.runErrors.push(`vitest: ${errorMessage(err)}`),
    );
    return { vitest, collector, done };
  })();
  // run() reports a Vitest that could not start; abandon() does not care. Launched at the latest
  // when Vitest's run ends or it fails to start.
  started.then(({ done }) => done.finally(launch), launch);
  // The staging folder goes also when the process exits without finishing the session (a forced stop).
  const removeStaging = () => rmSync(staging, { recursive: true, force: true });
  process.once('exit', removeStaging);
  let settled = false;
  /** Vitest closing after a run (see run()). */
  let closing: Promise<unknown> = Promise.resolve();
  const finish = () => {
    settled = true;
    early?.dispose();
    starting?.done();
    process.off('unhandledRejection', onUnhandled);
  };
  const release = () => {
    channel.close();
    removeStaging();
    process.off('exit', removeStaging);
  };

  return {
    launched,
    async run(r) {
      if (settled) throw new Error('scenario session already ended');
      // Until the first step starts: whatever of Vitest, its worker and the files is still loading.
      starting = waiting('Starting the scenarios');
      tell({ type: 'contract', env: { ...stringEnv(process.env), ...r.env } });
      phase('steps handed over');
      try {
        let st: Started;
        try {
          st = await started;
        } catch (err) {
          return { steps: [], runErrors: [...runErrors, `vitest: ${errorMessage(err)}`] };
        }
        const { vitest, collector } = st;
        // A forced stop must not wait for a step that ignores its abort signal.
        const forced = new AbortController();
        s.interrupts.onForce(() => {
          void vitest.cancelCurrentRun('keyboard-input').catch(() => {});
          setTimeout(() => forced.abort(), FORCE_TEARDOWN_MS).unref();
        });
        await untilAborted(st.done, forced.signal).catch(() => {});
        const reason = s.interrupts.reason;
        const cutShort = reason && reason.kind === 'signal' ? EXIT.INTERRUPTED : EXIT.CHECK_FAILED;
        collector.flushRunning(reason ? `interrupted: ${reason.text}` : 'did not finish', cutShort);
        // The steps are over and Allure's results written (its reporter runs on this thread). Vitest
        // closes (its worker thread ends) while the teardown and the report go on; abandon(), which
        // the runner awaits before it exits, waits for that. A worker stuck in a step that ignored
        // its signal must not hold the exit.
        closing = s.interrupts.forced ? Promise.resolve() : settleWithin(vitest.close(), 5_000);
        // A results folder that cannot be filled (full disk) costs the HTML its steps, never the
        // teardown replay and the summary that follow: it is a run error, not a throw.
        await moveResults(staging, r).catch((err: unknown) => runErrors.push(`report: Allure results could not be moved into the run directory: ${errorMessage(err)}`));
        return { steps: collector.steps, runErrors: [...runErrors, ...collector.runErrors] };
      } finally {
        finish();
        release();
      }
    },
    async abandon(reason) {
      if (settled) {
        await closing;
        return;
      }
      finish();
      tell({ type: 'abandon', reason });
      // The files stop at their first hook. Nobody waits for Vitest to wind down: the run is over and
      // the process about to end (a failed preflight answers at once); it closes in the background.
      void started
        .then(async ({ vitest }) => {
          await vitest.cancelCurrentRun('keyboard-input').catch(() => {});
          await settleWithin(vitest.close(), 5_000);
        })
        .catch(() => {})
        .finally(release);
    },
  };
}

/** The early scenario thread, or none when it cannot be started: Vitest then starts its own, as always. */
function earlyThreadOrNone(configEnv: Record<string, string>, compiled: string[]): EarlyThread | undefined {
  try {
    return startEarlyThread(configEnv, compiled);
  } catch {
    return undefined;
  }
}

const STAGING = /^runbook-results-(\d+)-/;

/**
 * A temp folder for Allure's results, named after this runner's pid. Folders a runner could not
 * remove (it was SIGKILLed) are removed here by the next one, once their pid is gone.
 */
function stagingDir(): string {
  try {
    for (const name of readdirSync(tmpdir())) {
      const pid = Number(STAGING.exec(name)?.[1]);
      if (pid && processGone(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  } catch {
    // an unreadable temp folder only means nothing is swept this time
  }
  return mkdtempSync(join(tmpdir(), `runbook-results-${process.pid}-`));
}

/** The results Allure wrote, moved into the run's directory, with the run's environment block. */
async function moveResults(staging: string, r: RunArgs): Promise<void> {
  mkdirSync(r.resultsDir, { recursive: true });
  try {
    // Renamed when the reports are on the temp folder's file system (no copy); copied otherwise.
    for (const name of readdirSync(staging)) renameSync(join(staging, name), join(r.resultsDir, name));
  } catch {
    cpSync(staging, r.resultsDir, { recursive: true });
  }
  const [{ StagingResultsWriter }, { CATEGORIES }] = await Promise.all([import('../../helpers/report/results-writer.js'), import('../../helpers/report/allure.js')]);
  const writer = new StagingResultsWriter(r.resultsDir);
  writer.writeEnvironmentInfo(r.environment);
  writer.writeCategoriesDefinitions(CATEGORIES);
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/**
 * What every Vitest instance of the runner is given (runs and --plan). With `compiled` (the
 * scenarios' compiled copies, see compiledScenarios) Node imports those itself: Vite transforms
 * nothing, and the worker never waits on the runner's thread (busy with the target) for a module.
 */
export function baseVitestConfig(files: string[], compiled?: string[]) {
  const run = compiled ?? files;
  return {
    root: REPO_ROOT,
    config: false as const,
    watch: false,
    include: run.map((f) => relative(REPO_ROOT, f)),
    ...(compiled ? { experimental: { viteModuleRunner: false, nodeLoader: false } } : {}),
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
    sequence: { shuffle: false, sequencer: declaredOrder(run) },
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
 * The compiled copies of the scenario files in this build (dist/<build>/scenarios/, bin/build.mjs),
 * when the runner itself runs compiled and every file has one; undefined otherwise (running from
 * source, or a file outside scenarios/ such as a test's fixture: Vite transforms those).
 */
export function compiledScenarios(files: string[]): string[] | undefined {
  if (!COMPILED) return undefined;
  const copies: string[] = [];
  for (const f of files) {
    const rel = relative(REPO_ROOT, f);
    const copy = join(CODE_ROOT, rel.replace(/\.ts$/, '.js'));
    if (!rel.startsWith(`scenarios${sep}`) || !existsSync(copy)) return undefined;
    copies.push(copy);
  }
  return copies;
}

/** The source file of a compiled scenario copy (what reports and reruns name); any other file as it is. */
export function sourceFile(file: string): string {
  if (!COMPILED || !file.startsWith(CODE_ROOT + sep)) return file;
  return join(REPO_ROOT, relative(CODE_ROOT, file)).replace(/\.js$/, '.ts');
}

/**
 * allure-vitest's reporter with the run's results written by StagingResultsWriter (no temp file,
 * fsync and rename per file: helpers/report/results-writer.ts), since it writes them all at the
 * run's end, on the way to the verdict. Its runtime is private to it: an allure-vitest that no longer
 * has one, or no writer on it, keeps writing with Allure's own writer.
 */
function withStagingWriter(Base: typeof AllureVitestReporter, writer: () => Writer): typeof AllureVitestReporter {
  return class extends Base {
    override onInit(vitest: Vitest): void {
      super.onInit(vitest);
      const runtime = (this as unknown as { allureReporterRuntime?: { writer?: Writer } }).allureReporterRuntime;
      if (runtime?.writer) runtime.writer = writer();
    }
  };
}

/**
 * Allure names a test after its file (fullName, titlePath, package, and from them the history id
 * that trends follow across runs): the source file, not this build's copy, whose folder changes
 * with every build. The files' paths are swapped only while Allure reads them.
 */
function sourceNamedAllure(Base: typeof AllureVitestReporter): typeof AllureVitestReporter {
  return class extends Base {
    override onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
      const swapped: [{ filepath: string }, string][] = [];
      for (const m of modules) {
        const file = (m as unknown as { task?: { filepath?: string } }).task;
        if (!file?.filepath) continue;
        const source = sourceFile(file.filepath);
        if (source === file.filepath) continue;
        swapped.push([file as { filepath: string }, file.filepath]);
        file.filepath = source;
      }
      try {
        super.onTestRunEnd(modules);
      } finally {
        for (const [file, path] of swapped) file.filepath = path;
      }
    }
  };
}

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
