// The scenario worker thread, started before Vitest is loaded. Vitest starts its worker thread only
// once its own main side has loaded (~0.4 s) and begun the run; the thread then loads Vitest's
// runtime, the helpers and their libraries (~0.45 s) before the first step. On two cores both can
// happen at once: the runner starts the thread as Vitest would (same entry, environment and Node
// flags) at the start of the run, and Vitest gets it through a custom pool (Vitest's PoolWorker
// interface, the one its own "threads" pool implements). When Vitest asks for a thread with other
// settings than predicted (another Vitest version, a changed environment), the early thread is
// dropped and Vitest's thread is started as Vitest would start it: slower, never different.
import { dirname, join, resolve } from 'node:path';
import { isatty } from 'node:tty';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
// Types only: this module is loaded before Vitest, whose ThreadsPoolWorker the session passes in.
import type { PoolOptions, PoolRunnerInitializer, PoolWorker, ThreadsPoolWorker } from 'vitest/node';

export interface EarlyThread {
  /** Vitest's `pool` option, once vitest/node is loaded: Vitest's own threads for any thread but the early one. */
  pool(threads: typeof ThreadsPoolWorker): PoolRunnerInitializer;
  /** How Vitest's thread came to be: 'early' (this one), 'fresh (<why>)', or undefined before Vitest asked. */
  readonly outcome: string | undefined;
  /** Ends the early thread if Vitest never took it (the run ended before); safe to call twice. */
  dispose(): void;
}

/** The pool's name: not one of Vitest's own, which Vitest would start itself. */
export const POOL_NAME = 'runbook-threads';

const ENTRY = fileURLToPath(new URL('./scenario-thread-entry.js', import.meta.url));

/**
 * Start the scenario thread now. `configEnv` is the Vitest config's `env`; `scenarioFiles` are the
 * compiled scenario files whose modules the thread loads ahead (cli/run/scenario-thread-entry.ts).
 * Throws when the thread cannot be started (the caller then leaves it to Vitest).
 */
export function startEarlyThread(configEnv: Record<string, string>, scenarioFiles: string[]): EarlyThread {
  const vitestDist = dirname(fileURLToPath(import.meta.resolve('vitest')));
  // The setup file allure-vitest's reporter adds to every run: its modules are loaded ahead too.
  const allureSetup = fileURLToPath(import.meta.resolve('allure-vitest/setup'));
  const env = predictedEnv(configEnv);
  const execArgv = predictedExecArgv(vitestDist);
  const vitestEntry = join(vitestDist, 'workers/threads.js');
  let early: Worker | undefined = new Worker(ENTRY, {
    env,
    execArgv,
    stdout: true,
    stderr: true,
    workerData: { vitestEntry: pathToFileURL(vitestEntry).href, ahead: [vitestEntry, allureSetup, ...scenarioFiles] },
  });
  let failed: string | undefined;
  // Until Vitest takes it, the thread neither holds the process open nor throws its errors here.
  early.unref();
  early.on('error', (e) => (failed ??= `the early thread failed: ${String((e as Error)?.message ?? e).split('\n')[0]}`));
  early.on('exit', (code) => (failed ??= `the early thread exited with ${code}`));
  let outcome: string | undefined;

  /** The early thread if it is still there and started as Vitest asks now; else undefined, and why. */
  const take = (options: PoolOptions): Worker | undefined => {
    const thread = early;
    early = undefined;
    if (!thread) {
      outcome ??= 'fresh (the early thread was already used or gone)';
      return undefined;
    }
    const other =
      resolve(options.distPath, 'workers/threads.js') !== vitestEntry
        ? `Vitest's worker entry is in ${options.distPath}`
        : differences('execArgv', execArgv, options.execArgv) ?? differences('env', env, options.env);
    const why = failed ?? (other && `the early thread does not match: ${other}`);
    if (why) {
      outcome = `fresh (${why})`;
      void thread.terminate();
      return undefined;
    }
    outcome = 'early';
    thread.ref();
    thread.removeAllListeners('error').removeAllListeners('exit');
    return thread;
  };

  return {
    pool(threads) {
      // Vitest's own threads pool worker, under this pool's name (Vitest matches runners by it).
      const Fresh = class extends threads {
        override readonly name = POOL_NAME;
      };
      return {
        name: POOL_NAME,
        createPoolWorker: (options) => {
          const thread = take(options);
          return thread ? new AdoptedThread(options, thread) : new Fresh(options);
        },
      };
    },
    get outcome() {
      return outcome;
    },
    dispose() {
      const thread = early;
      early = undefined;
      void thread?.terminate();
    },
  };
}

/**
 * The early thread as Vitest's pool runner drives it: what vitest/node's ThreadsPoolWorker does with
 * the thread it starts itself (its thread is private, so it cannot be given one).
 */
class AdoptedThread implements PoolWorker {
  readonly name = POOL_NAME;
  private thread: Worker | undefined;
  constructor(
    private readonly options: PoolOptions,
    private adopted: Worker | undefined,
  ) {}

  on(event: string, callback: (arg: any) => void): void {
    this.current.on(event, callback);
  }
  off(event: string, callback: (arg: any) => void): void {
    this.current.off(event, callback);
  }
  send(message: Parameters<PoolWorker['send']>[0]): void {
    this.current.postMessage(message);
  }
  deserialize(data: unknown): unknown {
    return data;
  }
  async start(): Promise<void> {
    // Vitest may call this more than once for a shared runner; after stop() there is no thread to adopt.
    if (this.thread) return;
    if (!this.adopted) throw new Error('the early scenario thread was stopped; it cannot start again');
    const thread = this.adopted;
    this.adopted = undefined;
    this.thread = thread;
    const { outputStream, errorStream } = this.options.project.vitest.logger;
    outputStream.setMaxListeners(1 + outputStream.getMaxListeners());
    thread.stdout.pipe(outputStream);
    errorStream.setMaxListeners(1 + errorStream.getMaxListeners());
    thread.stderr.pipe(errorStream);
  }
  async stop(): Promise<void> {
    const thread = this.thread;
    if (!thread) return;
    await thread.terminate();
    const { outputStream, errorStream } = this.options.project.vitest.logger;
    thread.stdout.unpipe(outputStream);
    outputStream.setMaxListeners(outputStream.getMaxListeners() - 1);
    thread.stderr.unpipe(errorStream);
    errorStream.setMaxListeners(errorStream.getMaxListeners() - 1);
    this.thread = undefined;
  }
  private get current(): Worker {
    if (!this.thread) throw new Error('the scenario thread was stopped or never started');
    return this.thread;
  }
}

/**
 * Vite's import.meta.env of a `vitest run` without a config file, which Vitest copies into
 * process.env where unset (and so into every thread's environment). A .env file with VITE_
 * variables in the project root adds more: the early thread is then not used.
 */
const VITE_ENV = { BASE_URL: '/', MODE: 'test', DEV: '1', PROD: '' };

/**
 * The environment Vitest gives its threads (vitest/node resolveOptions and the pool's task env):
 * the process's (with Vite's), Vitest's own markers, then the config's `env`.
 */
function predictedEnv(configEnv: Record<string, string>): Record<string, string | undefined> {
  return {
    ...VITE_ENV,
    ...process.env,
    TEST: 'true',
    VITEST: 'true',
    NODE_ENV: process.env.NODE_ENV || 'test',
    VITEST_MODE: 'RUN',
    FORCE_TTY: isatty(1) ? 'true' : '',
    ...configEnv,
  };
}

/** The Node flags Vitest gives its threads: profiling flags of this process, then Vitest's own. */
function predictedExecArgv(vitestDist: string): string[] {
  return [
    ...process.execArgv.filter((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof') || a.startsWith('--diagnostic-dir')),
    '--experimental-import-meta-resolve',
    '--require',
    resolve(vitestDist, '..', 'suppress-warnings.cjs'),
    ...RESOLVE_CONDITIONS.flatMap((c) => ['--conditions', c]),
  ];
}

/** Vite's default SSR resolve conditions for a run that is not a production build, as Vitest passes them. */
const RESOLVE_CONDITIONS = ['node', 'development'];

/** undefined when equal, else what differs: the flags Vitest asked for, or the env keys (names only: values may be secrets). */
function differences(what: string, expected: object, actual: object): string | undefined {
  if (Array.isArray(expected)) {
    return JSON.stringify(expected) === JSON.stringify(actual) ? undefined : `${what}: ${JSON.stringify(actual)}`;
  }
  const e = expected as Record<string, unknown>;
  const a = actual as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(e), ...Object.keys(a)])].filter((k) => e[k] !== a[k]);
  return keys.length ? `${what}: ${keys.join(', ')}` : undefined;
}
