// The scenario DSL. A scenario file is one sequential describe; each runbook step is one Vitest
// test, run in order. A step needs every earlier step by default: after a failure it is skipped
// with a reason. A step that declares what it needs (`needs`, or `independent` for nothing) runs
// as long as those passed, so one finding does not hide the others. A final teardown step always
// runs and undoes what the steps registered. Workers get their context from
// the environment the runner sets (see helpers/report/run-contract.ts).
//
//   scenario('Retry a dead-lettered job', (s) => {
//     s.step('Submit a job that fails', async (ctx) => { ... }, { timeoutMs: 10_000 });
//   });
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as allure from 'allure-js-commons';
import { afterAll, beforeAll, describe, test, type TestContext } from 'vitest';
import { CheckFailedError, InterruptedError, PreconditionError, StepTimeoutError, errorMessage } from './errors.js';
import type { Exchange } from './evidence.js';
import type { TargetProfile } from './profile-types.js';
import {
  ENV,
  RUN_FILES,
  TEARDOWN_STEP,
  interruptChannelName,
  runPrefix,
  type ContractMessage,
  type InterruptMessage,
  type InterruptReason,
  type StepMeta,
} from './report/run-contract.js';
import type { FailureLink } from './report/runbook-links.js';
import { secretValues } from './profile-secrets.js';
import { TeardownRegistry, targetExecutor, type TeardownAction } from './teardown.js';
import { GatewayClient } from './gateway.js';
import { settleWithin, untilAborted } from './waits.js';
import type { Bus } from './bus.js';
import type { Redis } from 'ioredis';

export type { TeardownAction } from './teardown.js';
export { TEARDOWN_STEP } from './report/run-contract.js';

// A step's task meta (StepMeta, the run contract) is Vitest's TaskMeta as far as Vitest is concerned.
declare module 'vitest' {
  interface TaskMeta extends StepMeta {}
}

export interface Finding {
  id: string;
  severity: 'info' | 'warn' | 'fail';
  title: string;
  detail: string;
}

export interface StepOptions {
  /**
   * The step is aborted (ctx.signal) and failed after this long. Default 60 s. A function of the
   * target profile is resolved when the scenario file's run opens (before its first step), e.g.
   * `{ timeoutMs: (t) => 2 * t.policy.reload_interval_ms + 20_000 }`.
   */
  timeoutMs?: number | ((target: TargetProfile) => number);
  /**
   * The step needs no earlier step's result (an audit section, a round trip of its own): it runs
   * even when an earlier step failed. Same as `needs: []`. Default false: runbook steps build on
   * each other, and a step that declares neither needs every earlier step.
   */
  independent?: boolean;
  /**
   * The earlier steps (by name) whose results this step uses: it is skipped only when one of them
   * failed, or was itself skipped because something it needed failed. A step's own guards still
   * decide what to do when a needed step was skipped for another reason (a non-destructive target).
   */
  needs?: string[];
}

export interface RunContext {
  target: TargetProfile;
  /**
   * The runbook's declared options (front matter `options:`) as given on the command line, keyed by
   * the declared name: booleans are always present (false when not given), strings only when given.
   */
  options: Readonly<Record<string, string | boolean>>;
  runId: string;
  /** `rb-<short run id>`: put it in the name of every object the step creates. */
  prefix: string;
  /**
   * The target's gateway. Every request it makes is bound to the step running at the time: a step
   * timeout or Ctrl-C cancels it on the socket, and a request still running when its step ends is
   * cancelled then. The client may be kept across steps (it follows the running step).
   */
  gateway(): GatewayClient;
  bus(): Promise<Bus>;
  redis(): Promise<Redis>;
  teardown: {
    add(label: string, action: TeardownAction): void;
    forget(label: string): void;
  };
  evidence: {
    json(name: string, value: unknown): Promise<void>;
    text(name: string, text: string): Promise<void>;
    /** An SVG image (a chart), shown inline in the report. */
    svg(name: string, svg: string): Promise<void>;
  };
  /**
   * Redis keys the platform keeps forever for objects this run made (Cordum never expires
   * `job:events:<id>`, `job:result_ptr:<id>`, `trace:<trace_id>`). With Redis in the profile the
   * teardown deletes exactly these keys; without it the summary lists them as residue, with a count.
   */
  residue(what: string, keys: string[]): void;
  /** A sub-step shown in the report. */
  step<T>(name: string, fn: () => Promise<T> | T): Promise<T>;
  /** A documented platform behaviour worth reporting; severity 'fail' also fails the step. */
  finding(f: Finding): void;
  /**
   * Append a short Markdown section to summary.md, under the step table (sections keep the order
   * they were added in). Redacted like every report file; at most 16 KiB per section.
   */
  summary(markdown: string): void;
  /** Write a file into the report directory (it lands in the manifest); returns its path. */
  writeArtifact(name: string, content: string | Uint8Array): string;
  /** Shared by the steps of one scenario file; declare each value once with stateSlot(). */
  state: Map<string, unknown>;
  /** Aborted on Ctrl-C and on step timeout: pass it to anything that waits. */
  signal: AbortSignal;
  /** Mark this step skipped with the reason. */
  skip(reason: string): never;
}

export type StepFn = (ctx: RunContext) => Promise<void> | void;

/**
 * Fail the running step with a message that says what was expected and what came back. A plain
 * Error on purpose: a failed check is exit 1 (helpers/errors.ts holds the errors that mean more).
 */
export function fail(message: string): never {
  // An assertion failure (Allure "failed", exit 1), not an error of the runbook itself ("broken").
  throw new CheckFailedError(message);
}

/**
 * One value the steps of a scenario file hand to each other through ctx.state, typed once where it
 * is declared instead of cast at every use:
 *
 *   const DRILL = stateSlot<DrillState>('drill');
 *   DRILL.set(ctx, { before });            // in one step
 *   const d = DRILL.get(ctx);              // in a later one: DrillState | undefined
 */
export interface StateSlot<T> {
  readonly key: string;
  get(ctx: Pick<RunContext, 'state'>): T | undefined;
  /** The value, or an Error with `missing` (say which step should have set it). */
  require(ctx: Pick<RunContext, 'state'>, missing: string): T;
  set(ctx: Pick<RunContext, 'state'>, value: T): T;
  /** The value, set to init() first when there is none yet. */
  getOrInit(ctx: Pick<RunContext, 'state'>, init: () => T): T;
}

export function stateSlot<T>(key: string): StateSlot<T> {
  const slot: StateSlot<T> = {
    key,
    get: (ctx) => ctx.state.get(key) as T | undefined,
    require(ctx, missing) {
      if (!ctx.state.has(key)) throw new Error(missing);
      return ctx.state.get(key) as T;
    },
    set(ctx, value) {
      ctx.state.set(key, value);
      return value;
    },
    getOrInit: (ctx, init) => (ctx.state.has(key) ? (ctx.state.get(key) as T) : slot.set(ctx, init())),
  };
  return slot;
}

export interface ScenarioBuilder {
  step(name: string, fn: StepFn, opts?: StepOptions): void;
}

const DEFAULT_STEP_TIMEOUT_MS = 60_000;
/** A section of summary.md is meant to be short: a table, a few lines. */
const MAX_SECTION_BYTES = 16 * 1024;
/**
 * Vitest needs a test timeout when the file is collected; a deadline that depends on the target is
 * only known when the run opens. Such steps get this backstop (our own timer, which aborts the step,
 * is what fires; the runbook's time budget bounds the run).
 */
const DYNAMIC_TIMEOUT_BACKSTOP_MS = 6 * 3_600_000;
const TEARDOWN_TIMEOUT_MS = 120_000;
/** Vitest's own timeout sits above ours so the step fails with our message, not Vitest's. */
const VITEST_GRACE_MS = 5_000;

interface StepDef {
  name: string;
  fn: StepFn;
  timeoutMs: number | ((target: TargetProfile) => number);
  /** Names of the earlier steps it needs; undefined = every earlier step. */
  needs?: string[];
}

/** Everything one scenario file shares between its steps. */
interface FileRun {
  target: TargetProfile;
  options: Readonly<Record<string, string | boolean>>;
  /** Step deadlines, resolved against the target when the run opened. */
  deadlines: Map<string, number | Error>;
  runId: string;
  runDir: string;
  runbook: string;
  scope: string;
  teardown: TeardownRegistry;
  state: Map<string, unknown>;
  interrupted?: InterruptReason;
  forced: boolean;
  current?: AbortController;
  /** The running step's signal plus its end: what every request made through ctx.gateway() is bound to. */
  requestScope?: AbortSignal;
  teardownController: AbortController;
  channel?: BroadcastChannel;
  gateway?: GatewayClient;
  stepGateway?: GatewayClient;
  evidence?: typeof import('./evidence.js');
  bus?: Promise<Bus>;
  redis?: Promise<Redis>;
  pendingAttachments: Promise<unknown>[];
  /** The last HTTP exchange, held back while identical ones follow (a poll): attached once, with a count. */
  heldExchange?: HeldExchange;
  /** The running step's latest evidence (redacted): a failed step's junit.xml entry carries it. */
  lastEvidence?: { name: string; text: string };
  /** Keys the platform keeps forever that teardown cannot remove (the profile has no Redis). */
  residue: { what: string; keys: string[] }[];
}

/** How much of a failed step's last evidence travels with its error (junit.xml, summary.json). */
const MAX_FAILURE_EVIDENCE_CHARS = 4 * 1024;

interface HeldExchange {
  key: string;
  exchange: Exchange;
  count: number;
  first: Date;
  last: Date;
}

/** A scenario file's steps as --plan lists them, the teardown step last. */
export interface PlannedScenario {
  title: string;
  steps: PlannedStep[];
}

/** A step as --plan lists it; the deadline is resolved against the target when one is given. */
export interface PlannedStep extends StepMeta {
  name: string;
}

/** Set while planSteps() imports scenario files: scenario() then only reports its steps. */
let planning: { report: (s: PlannedScenario) => void; target?: TargetProfile } | undefined;

/**
 * --plan (cli/run/plan.ts): import scenario files without Vitest and return the steps each declares;
 * no hook or step runs. `load` imports one file, which must reach this very module (so the runner
 * imports the scenario next to its own copy of the helpers: compiled with compiled, source with source).
 */
export async function planSteps(load: () => Promise<unknown>, target?: TargetProfile): Promise<PlannedScenario[]> {
  const found: PlannedScenario[] = [];
  const previous = planning;
  planning = { report: (s) => found.push(s), target };
  try {
    await load();
  } finally {
    planning = previous;
  }
  return found;
}

export function scenario(title: string, build: (s: ScenarioBuilder) => void): void {
  const steps: StepDef[] = [];
  build({
    step(name, fn, opts) {
      if (name === TEARDOWN_STEP) throw new Error(`'${TEARDOWN_STEP}' is added by scenario(); do not declare it`);
      if (steps.some((s) => s.name === name)) throw new Error(`scenario '${title}': duplicate step name '${name}'`);
      const timeoutMs = opts?.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
      if (typeof timeoutMs !== 'function' && !validTimeout(timeoutMs)) {
        throw new Error(`scenario '${title}': step '${name}': timeoutMs must be a positive number of milliseconds or a function of the target`);
      }
      if (opts?.independent && opts.needs?.length) throw new Error(`scenario '${title}': step '${name}': 'independent' and 'needs' contradict each other`);
      const unknown = (opts?.needs ?? []).filter((n) => !steps.some((s) => s.name === n));
      if (unknown.length) throw new Error(`scenario '${title}': step '${name}' needs ${unknown.map((u) => `'${u}'`).join(', ')}, which is not an earlier step`);
      steps.push({ name, fn, timeoutMs, needs: opts?.independent ? [] : opts?.needs });
    },
  });

  if (planning) {
    const target = planning.target;
    const planned = steps.map((def): PlannedStep => ({ name: def.name, ...deadlineMeta(def, target) }));
    return planning.report({ title, steps: [...planned, { name: TEARDOWN_STEP, deadlineMs: TEARDOWN_TIMEOUT_MS }] });
  }

  let run: FileRun | undefined;
  /** Steps that did not deliver their result, each with the failed step at its root. */
  const blockedBy = new Map<string, string>();
  let teardownRan = false;

  describe.sequential(title, () => {
    // The runner may start the file before the run exists: the hook then waits for it (setup and
    // preflight), so its bound is the runner's, not Vitest's hook timeout.
    beforeAll(async () => {
      run = await openFileRun();
      for (const def of steps) run.deadlines.set(def.name, resolveTimeout(def, run.target));
    }, DYNAMIC_TIMEOUT_BACKSTOP_MS);

    const target = definitionTarget();
    for (const def of steps) {
      const meta = deadlineMeta(def, target);
      const timeout = (typeof def.timeoutMs === 'number' ? def.timeoutMs : DYNAMIC_TIMEOUT_BACKSTOP_MS) + VITEST_GRACE_MS;
      test(def.name, { timeout, meta }, async (tctx) => {
        const r = mustRun(run);
        if (r.interrupted) tctx.skip(`skipped because the run was interrupted (${r.interrupted.text})`);
        const blocker = firstBlocker(def, steps, blockedBy);
        if (blocker) {
          blockedBy.set(def.name, blocker);
          tctx.skip(`skipped because '${blocker}' failed`);
        }
        await labelTest(r);
        try {
          const deadline = r.deadlines.get(def.name);
          if (deadline instanceof Error) throw deadline;
          await runStep(r, def, deadline ?? DEFAULT_STEP_TIMEOUT_MS, tctx);
          warmClientModules(r);
        } catch (err) {
          if (!isSkip(err)) {
            blockedBy.set(def.name, def.name);
            await linkFailure(r, def.name, err);
          }
          throw err;
        }
      });
    }

    const teardownMeta: StepMeta = { deadlineMs: TEARDOWN_TIMEOUT_MS };
    test(TEARDOWN_STEP, { timeout: TEARDOWN_TIMEOUT_MS + VITEST_GRACE_MS, meta: teardownMeta }, async () => {
      teardownRan = true;
      const r = mustRun(run);
      await labelTest(r);
      await runTeardown(r, true);
    });

    afterAll(async () => {
      if (!run) return;
      // Fallback for a teardown step that never ran (cancelled run, broken beforeAll). Allure drops
      // evidence recorded in afterAll, so the journal is the record here.
      if (!teardownRan && run.teardown.size > 0) await runTeardown(run, false).catch(() => {});
      await closeFileRun(run);
    }, TEARDOWN_TIMEOUT_MS + VITEST_GRACE_MS);
  });
}

/** A step's deadline as its task meta records it: resolved for the target, when there is one. */
function deadlineMeta(def: StepDef, target: TargetProfile | undefined): StepMeta {
  const resolved = typeof def.timeoutMs === 'number' || !target ? def.timeoutMs : resolveTimeout(def, target);
  return typeof resolved === 'number' ? { deadlineMs: resolved } : resolved instanceof Error ? { deadlineProblem: resolved.message } : {};
}

/**
 * The failed step that keeps `def` from running: the root of the first needed step that failed or
 * was skipped for a failure (steps run in order, so every needed step has already been decided).
 */
function firstBlocker(def: StepDef, steps: StepDef[], blockedBy: Map<string, string>): string | undefined {
  const earlier = steps.slice(0, steps.indexOf(def)).map((s) => s.name);
  const needed = def.needs ?? earlier;
  for (const name of earlier) {
    if (needed.includes(name) && blockedBy.has(name)) return blockedBy.get(name);
  }
  return undefined;
}

function validTimeout(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 && ms <= DYNAMIC_TIMEOUT_BACKSTOP_MS;
}

/** A step's deadline for this target; a broken deadline function fails that step (with this error). */
function resolveTimeout(def: StepDef, target: TargetProfile): number | Error {
  if (typeof def.timeoutMs === 'number') return def.timeoutMs;
  let ms: unknown;
  try {
    ms = def.timeoutMs(target);
  } catch (err) {
    return new Error(`step '${def.name}': its timeoutMs function threw for target '${target.name}': ${errorMessage(err)}`);
  }
  if (!validTimeout(ms)) {
    return new Error(`step '${def.name}': its timeoutMs function returned ${String(ms)} for target '${target.name}'; expected milliseconds between 1 and ${DYNAMIC_TIMEOUT_BACKSTOP_MS}`);
  }
  return ms;
}

/**
 * The profile ENV.TARGET_FILE names, when the file is being defined (collected): deadlines that
 * depend on the target are resolved against it for the step's task meta. undefined without one.
 */
function definitionTarget(): TargetProfile | undefined {
  const file = process.env[ENV.TARGET_FILE];
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TargetProfile;
  } catch {
    return undefined; // the run itself reads it again when it opens, and says what is wrong
  }
}

/** RUNBOOK_OPTIONS: the runbook's options as the runner parsed them (JSON object). */
function readOptions(): Readonly<Record<string, string | boolean>> {
  const raw = process.env[ENV.OPTIONS];
  if (!raw) return Object.freeze({});
  const parsed = JSON.parse(raw) as unknown;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${ENV.OPTIONS} is not a JSON object`);
  const out: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string' && typeof v !== 'boolean') throw new Error(`${ENV.OPTIONS}: option '${k}' is neither a string nor a boolean`);
    out[k] = v;
  }
  return Object.freeze(out);
}

function mustRun(run: FileRun | undefined): FileRun {
  if (!run) throw new Error('scenario context missing: run scenarios with `pnpm runbook <name>`, not directly with vitest');
  return run;
}

function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scenarios with \`pnpm runbook <name>\`, not directly with vitest`);
  return v;
}

/**
 * When the runner started this file before the run existed (ENV.CONTRACT_CHANNEL is set), wait for
 * the run's environment and take it over; a run that will not start fails the file before any step.
 */
async function receiveRunEnvironment(): Promise<void> {
  const name = process.env[ENV.CONTRACT_CHANNEL];
  if (!name) return;
  const channel = new BroadcastChannel(name);
  try {
    const answer = await new Promise<Exclude<ContractMessage, { type: 'hello' }>>((resolve) => {
      channel.onmessage = (ev) => {
        const msg = (ev as MessageEvent<ContractMessage>).data;
        if (msg.type !== 'hello') resolve(msg);
      };
      channel.postMessage({ type: 'hello' } satisfies ContractMessage);
    });
    if (answer.type === 'abandon') throw new Error(`the run did not start: ${answer.reason}`);
    Object.assign(process.env, answer.env);
  } finally {
    channel.close();
  }
}

async function openFileRun(): Promise<FileRun> {
  await receiveRunEnvironment();
  const target = JSON.parse(readFileSync(requireEnv(ENV.TARGET_FILE), 'utf8')) as TargetProfile;
  const runId = requireEnv(ENV.RUN_ID);
  // A compiled copy (dist/<build>/scenarios/x.test.js) is named as its source, as reports name it.
  const scope = basename(currentTestFile()).replace(/\.js$/, '.ts');
  const run: FileRun = {
    target,
    options: readOptions(),
    deadlines: new Map(),
    runId,
    runDir: requireEnv(ENV.RUN_DIR),
    runbook: process.env[ENV.NAME] ?? 'unknown',
    scope,
    teardown: new TeardownRegistry(scope, process.env[ENV.JOURNAL]),
    state: new Map(),
    forced: false,
    teardownController: new AbortController(),
    pendingAttachments: [],
    residue: [],
  };
  run.evidence = await import('./evidence.js');
  // Secrets are referenced by env var name in the profile; their values must never reach the report.
  for (const v of secretValues(target)) run.evidence.registerSecret(v);
  run.channel = new BroadcastChannel(interruptChannelName(runId));
  run.channel.onmessage = (ev) => {
    const msg = (ev as MessageEvent<InterruptMessage>).data;
    run.interrupted ??= msg.reason;
    run.current?.abort(new InterruptedError(msg.reason));
    if (msg.type === 'force') {
      run.forced = true;
      run.teardownController.abort(new InterruptedError(msg.reason));
    }
  };
  // Let the worker exit even if nobody closes the channel (a crashed afterAll).
  (run.channel as unknown as { unref?: () => void }).unref?.();
  return run;
}

/** Vitest exposes the running file on the worker state; used only to scope journal labels. */
function currentTestFile(): string {
  const state = (globalThis as { __vitest_worker__?: { filepath?: string } }).__vitest_worker__;
  return state?.filepath ?? 'scenario';
}

/** Graceful closes of the bus and Redis wait for in-flight work; an interrupted step may have left some. */
const CLOSE_GRACE_MS = 2_000;

async function closeFileRun(run: FileRun): Promise<void> {
  run.channel?.close();
  // Every request is bound to its step or its teardown action, so one still open has outlived them.
  const closing = Promise.allSettled([
    run.gateway?.destroy(),
    run.bus?.then((b) => b.close()),
    run.redis?.then((r) => r.quit()),
  ]);
  await settleWithin(closing, run.interrupted ? 200 : CLOSE_GRACE_MS);
}

async function labelTest(run: FileRun): Promise<void> {
  await allure.epic(run.runbook);
  await allure.parameter('target', run.target.name);
}

function isSkip(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'VITEST_PENDING';
}

async function runStep(run: FileRun, def: StepDef, timeoutMs: number, tctx: TestContext): Promise<void> {
  const controller = new AbortController();
  const ended = new AbortController();
  run.current = controller;
  run.requestScope = AbortSignal.any([controller.signal, ended.signal]);
  run.lastEvidence = undefined;
  // An interrupt that arrived while this step was being set up found no step to abort: apply it now.
  if (run.interrupted) controller.abort(new InterruptedError(run.interrupted));
  const timer = setTimeout(() => controller.abort(new StepTimeoutError(def.name, timeoutMs)), timeoutMs);
  const failures: Finding[] = [];
  const ctx = makeContext(run, def.name, controller.signal, tctx, failures);
  try {
    // A step that ignores its signal must not keep Ctrl-C or a timeout from reaching teardown.
    await untilAborted(() => def.fn(ctx), controller.signal);
    await Promise.allSettled(run.pendingAttachments.splice(0));
    if (failures.length > 0) {
      throw new CheckFailedError(
        failures.map((f) => `finding ${f.id} (${f.severity}): ${f.title}: ${f.detail}`).join('\n'),
      );
    }
  } finally {
    flushExchange(run);
    clearTimeout(timer);
    // A request the step left running (a probe it stopped waiting for) must not outlive it.
    ended.abort(new Error(`step '${def.name}' ended`));
    run.current = undefined;
    run.requestScope = undefined;
    await Promise.allSettled(run.pendingAttachments.splice(0));
  }
}

function makeContext(run: FileRun, stepName: string, signal: AbortSignal, tctx: TestContext, failures: Finding[]): RunContext {
  const ev = run.evidence!;
  const track = (p: Promise<unknown>) => {
    run.pendingAttachments.push(p.catch(() => {}));
  };
  return {
    target: run.target,
    options: run.options,
    runId: run.runId,
    prefix: runPrefix(run.runId),
    gateway: () => stepGatewayFor(run),
    bus() {
      run.bus ??= import('./bus.js').then((m) => m.connectBus(run.target));
      return run.bus;
    },
    redis() {
      if (!run.target.redis) {
        return Promise.reject(new PreconditionError(`step '${stepName}' needs Redis, but target '${run.target.name}' has no redis section`));
      }
      run.redis ??= import('./redis.js').then((m) => m.connectRedis(run.target));
      return run.redis;
    },
    teardown: {
      add: (label, action) => run.teardown.add(label, action),
      forget: (label) => run.teardown.forget(label),
    },
    evidence: {
      json: (name, value) => {
        run.lastEvidence = { name, text: ev.jsonText(value) };
        return ev.attachJson(name, value);
      },
      text: (name, text) => {
        run.lastEvidence = { name, text: ev.redact(text) };
        return ev.attachText(name, text);
      },
      svg: (name, svg) => ev.attachSvg(name, svg),
    },
    step: async (name, fn) => {
      // Evidence held back from before the sub-step belongs to the step, not to the sub-step.
      flushExchange(run);
      return allure.step(name, async () => {
        try {
          return await fn();
        } finally {
          flushExchange(run);
        }
      });
    },
    residue(what, keys) {
      if (keys.length === 0) return;
      if (run.target.redis) run.teardown.add(`residue: ${what}`, { kind: 'redis', command: ['DEL', ...keys] });
      else run.residue.push({ what, keys: [...keys] });
    },
    finding(f) {
      const record = { ...f, step: stepName, scenario: run.scope, at: new Date().toISOString() };
      mkdirSync(run.runDir, { recursive: true });
      appendFileSync(join(run.runDir, RUN_FILES.findings), ev.redact(JSON.stringify(record)) + '\n');
      track(ev.attachJson(`finding ${f.id} (${f.severity})`, record));
      if (f.severity === 'fail') failures.push(f);
    },
    summary(markdown) {
      if (typeof markdown !== 'string') throw new TypeError('ctx.summary(markdown): markdown must be a string');
      let text = ev.redact(markdown).trimEnd();
      if (Buffer.byteLength(text) > MAX_SECTION_BYTES) {
        text = Buffer.from(text).subarray(0, MAX_SECTION_BYTES).toString('utf8').replace(/\uFFFD$/, '') + '\n\n_(section cut at 16 KiB)_';
      }
      if (!text) return;
      mkdirSync(run.runDir, { recursive: true });
      appendFileSync(join(run.runDir, RUN_FILES.sections), JSON.stringify({ scenario: run.scope, step: stepName, markdown: text }) + '\n');
    },
    writeArtifact(name, content) {
      const dir = join(run.runDir, RUN_FILES.artifacts);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, name.replace(/[^A-Za-z0-9._-]+/g, '_'));
      writeFileSync(file, typeof content === 'string' ? ev.redact(content) : content);
      return file;
    },
    state: run.state,
    signal,
    skip(reason) {
      tctx.skip(reason);
      throw new Error('unreachable: Vitest skip did not throw');
    },
  };
}

/** summary.json lists what each scenario's teardown did (teardown.removed_by_steps). */
function recordTeardown(run: FileRun, results: NonNullable<import('./teardown.js').TeardownOutcome['results']>): void {
  if (results.length === 0) return;
  const ev = run.evidence!;
  const lines = results.map((r) => ev.redact(JSON.stringify({ scenario: run.scope, ...r })) + '\n').join('');
  try {
    mkdirSync(run.runDir, { recursive: true });
    appendFileSync(join(run.runDir, RUN_FILES.teardown), lines);
  } catch (err) {
    process.stderr.write(`could not record teardown results: ${errorMessage(err)}\n`);
  }
}

/**
 * Without Redis in the profile nothing can delete the keys the platform keeps forever: say so once
 * per scenario file, in summary.md (a section with the count and the keys) and as a finding.
 */
function recordResidue(run: FileRun): void {
  const items = run.residue.splice(0);
  const keys = items.flatMap((i) => i.keys);
  if (keys.length === 0) return;
  const ev = run.evidence!;
  const detail = `target '${run.target.name}' has no redis section, so teardown could not delete ${keys.length} Redis key(s) that Cordum never expires (job:events, job:result_ptr, trace); each run adds as many. Delete them with redis-cli DEL, or add redis to the profile so teardown does`;
  const record = { id: 'residue-no-ttl', severity: 'info', title: `${keys.length} Redis key(s) left for good (no TTL)`, detail, step: TEARDOWN_STEP, scenario: run.scope, at: new Date().toISOString(), keys };
  const lines = [`**Residue** (${run.scope}): ${keys.length} Redis key(s) with no TTL, not removed because the profile has no Redis`, '', '| Left by | Keys |', '|---|---|'];
  for (const i of items) lines.push(`| ${i.what.replace(/\|/g, '\\|')} | ${i.keys.map((k) => `\`${k}\``).join(' ')} |`);
  try {
    mkdirSync(run.runDir, { recursive: true });
    appendFileSync(join(run.runDir, RUN_FILES.findings), ev.redact(JSON.stringify(record)) + '\n');
    appendFileSync(join(run.runDir, RUN_FILES.sections), JSON.stringify({ scenario: run.scope, step: TEARDOWN_STEP, markdown: ev.redact(lines.join('\n')) }) + '\n');
  } catch (err) {
    process.stderr.write(`could not record residue: ${errorMessage(err)}\n`);
  }
}

/** One client per scenario file; its transcripts land on whichever step is running at the time. */
function gatewayFor(run: FileRun): GatewayClient {
  if (!run.gateway) {
    run.gateway = new GatewayClient(run.target, { onExchange: (ex) => holdExchange(run, ex) });
  }
  return run.gateway;
}

/** The same client bound to the running step (teardown executors pass their own action signals instead). */
function stepGatewayFor(run: FileRun): GatewayClient {
  run.stepGateway ??= gatewayFor(run).withSignal(() => run.requestScope);
  return run.stepGateway;
}

/**
 * A poll sends the same request and gets the same answer many times; the report shows it once, as
 * the last answer with how many identical ones came before it. The exchange is held until a
 * different one arrives or the (sub-)step ends, so it lands on the step that made it.
 */
function holdExchange(run: FileRun, ex: Exchange): void {
  const key = JSON.stringify([ex.method, ex.url, ex.requestBody ?? '', ex.status, ex.responseBody]);
  const now = new Date();
  const held = run.heldExchange;
  if (held?.key === key) {
    held.exchange = ex;
    held.count++;
    held.last = now;
    return;
  }
  flushExchange(run);
  run.heldExchange = { key, exchange: ex, count: 1, first: now, last: now };
}

function flushExchange(run: FileRun): void {
  const held = run.heldExchange;
  if (!held) return;
  run.heldExchange = undefined;
  const ev = run.evidence!;
  const ex = held.exchange;
  const repeated = held.count > 1;
  const name = `HTTP ${ex.method} ${pathOf(ex.url)} → ${ex.status}${repeated ? ` (×${held.count} identical, last shown)` : ''}`;
  const text = repeated
    ? `${held.count} identical answers from ${held.first.toISOString()} to ${held.last.toISOString()}; the last one:\n\n${ev.transcript(ex)}`
    : ev.transcript(ex);
  run.lastEvidence = { name, text: ev.redact(text) };
  run.pendingAttachments.push(ev.attachText(name, text).catch(() => {}));
}

let clientModulesWarmed = false;

/**
 * The bus and Redis helpers (nats.js, ioredis, the CAP codec: ~0.45 s of CPU to load) load when a
 * step first asks for a connection, inside that step. Once a step has passed they begin loading in
 * the background instead, while the following steps mostly wait on the network. Loading only: nothing
 * connects until a step asks (ctx.bus(), ctx.redis()).
 */
function warmClientModules(run: FileRun): void {
  if (clientModulesWarmed) return;
  clientModulesWarmed = true;
  if (run.target.nats) void import('./bus.js').catch(() => {});
  if (run.target.redis) void import('./redis.js').catch(() => {});
}

/**
 * A failed step links to the "When it fails" text of its runbook page: in the report (an Allure
 * link) and, through an own property of the error that survives the trip to the runner, in the
 * terminal, summary.md and junit.xml.
 */
async function linkFailure(run: FileRun, step: string, err: unknown): Promise<void> {
  const last = run.lastEvidence;
  if (last) setOwn(err, 'evidence', boundedEvidence(last));
  let link: FailureLink | undefined;
  try {
    // Only a failure needs the catalog (and its YAML parser): not loaded on the way to the first step.
    const [{ findRunbook }, { whenItFailsLink }] = await Promise.all([import('./catalog.js'), import('./report/runbook-links.js')]);
    link = whenItFailsLink(findRunbook(run.runbook).file, step);
  } catch {
    return; // a runbook the catalog cannot name has no page to link to
  }
  if (!link) return;
  setOwn(err, 'when_it_fails', link.display);
  await Promise.resolve(allure.link(link.url, `When it fails: ${link.display}`, 'runbook')).catch(() => {});
}

/** An own, enumerable property: it survives Vitest's serialization of the error to the runner. */
function setOwn(err: unknown, key: string, value: string): void {
  if (!err || typeof err !== 'object' || !Object.isExtensible(err)) return;
  try {
    Object.defineProperty(err, key, { value, enumerable: true, configurable: true, writable: true });
  } catch {
    // a frozen or exotic error keeps its shape; the report still has the evidence and the link
  }
}

function boundedEvidence(e: { name: string; text: string }): string {
  const text = e.text.length > MAX_FAILURE_EVIDENCE_CHARS ? `${e.text.slice(0, MAX_FAILURE_EVIDENCE_CHARS)}\n… (${e.text.length - MAX_FAILURE_EVIDENCE_CHARS} more characters in the report)` : e.text;
  return `${e.name}\n${text}`;
}

function pathOf(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

async function runTeardown(run: FileRun, asStep: boolean): Promise<void> {
  const exec = targetExecutor(run.target, () => gatewayFor(run));
  try {
    const signal = AbortSignal.any([run.teardownController.signal, AbortSignal.timeout(TEARDOWN_TIMEOUT_MS)]);
    const outcome = await run.teardown.runAll(exec, signal);
    flushExchange(run);
    recordTeardown(run, outcome.results ?? []);
    recordResidue(run);
    if (!asStep) return;
    await run.evidence!.attachJson('teardown: removed', outcome.removed);
    if (outcome.leftovers.length > 0) {
      await run.evidence!.attachJson('teardown: left behind', outcome.leftovers);
      throw new Error(
        `expected teardown to remove everything this run created; ${outcome.leftovers.length} object(s) left behind: ` +
          outcome.leftovers.map((l) => `${l.label}: ${l.error}`).join('; '),
      );
    }
  } catch (err) {
    if (asStep) throw err;
    process.stderr.write(`teardown fallback failed: ${errorMessage(err)}\n`);
  } finally {
    await exec.close?.();
  }
}
