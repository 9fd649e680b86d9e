// --plan: what a run would do (steps, target, what it creates, whether it is destructive) without
// running anything. The steps are collected by importing the scenario files with the steps DSL in
// plan mode (helpers/steps.ts › planSteps), which needs no Vitest: the compiled scenarios of the
// build this CLI runs from (bin/build.mjs), or the sources when the CLI itself runs from source. A
// scenario file outside scenarios/ (a test fixture) is collected by Vitest instead.
// One plan object, printed as text for people or, with `-o json`, as JSON for scripts.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import { EXIT, UsageError, errorMessage, type ExitCode } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import type { CollectedScenario } from './vitest-session.js';
// The plan is the whole output: printed also with --quiet.
import { result as out } from './log.js';

/** The root this module runs from: the checkout, or dist/<build> when compiled. */
const CODE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPILED = !import.meta.url.endsWith('.ts');

export interface PlanOptions {
  target?: string;
  ticket?: string;
  options?: Record<string, string | boolean>;
  output?: 'text' | 'json';
}

/** What `--plan -o json` prints (snake_case, like summary.json). */
export interface Plan {
  runbook: string;
  title: string;
  summary: string;
  target: { sandbox: true } | { sandbox: false; name: string; gateway: string; source: string };
  destructive: boolean;
  /** Whether the target allows a destructive runbook (a sandbox always does). */
  destructive_allowed: boolean;
  needs: string[];
  time_budget_s: number;
  owner: string | null;
  creates: string[];
  ticket: string | null;
  options: { name: string; type: 'boolean' | 'string'; description: string; given: string | boolean | null }[];
  scenarios: { title: string; file: string; steps: PlanStep[] }[];
}

/** A step with its deadline, resolved for the target (null when it depends on a target not given). */
export interface PlanStep {
  name: string;
  deadline_ms: number | null;
  /** Why the step's deadline function gave no usable deadline for the target. */
  deadline_problem?: string;
}

export async function buildPlan(runbook: Runbook, files: string[], opts: PlanOptions): Promise<Plan> {
  let target: Plan['target'] = { sandbox: true };
  let destructiveAllowed = true;
  let profile: TargetProfile | undefined;
  if (opts.target) {
    const { loadProfile } = await import('../../helpers/target.js');
    const p = loadProfile(opts.target);
    target = { sandbox: false, name: p.name, gateway: p.gateway.url, source: relative(process.cwd(), p.source) || p.source };
    destructiveAllowed = p.destructive.allowed;
    profile = p;
  }
  // Deadlines that depend on the target are resolved against it, as a run would.
  const scenarios = await scenarioSteps(files, profile);
  return {
    runbook: runbook.name,
    title: runbook.title,
    summary: runbook.summary,
    target,
    destructive: runbook.destructive,
    destructive_allowed: destructiveAllowed,
    needs: runbook.needs,
    time_budget_s: Math.round(runbook.timeBudgetMs / 1000),
    owner: runbook.owner || null,
    creates: runbook.creates,
    ticket: opts.ticket ?? null,
    options: runbook.options.map((o) => ({ ...o, given: opts.options?.[o.name] ?? null })),
    scenarios: scenarios.map((sc) => ({
      title: sc.title,
      file: relative(REPO_ROOT, sc.file),
      steps: sc.steps.map((st) => ({
        name: st.name,
        deadline_ms: st.deadlineMs ?? null,
        ...(st.deadlineProblem ? { deadline_problem: st.deadlineProblem } : {}),
      })),
    })),
  };
}

export async function printPlan(runbook: Runbook, files: string[], opts: PlanOptions): Promise<ExitCode> {
  const plan = await buildPlan(runbook, files, opts);
  if (opts.output === 'json') {
    process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
    return EXIT.PASSED;
  }
  const t = plan.target;
  out(`Plan for runbook ${plan.runbook}: ${plan.title}`);
  out(`  ${plan.summary}`);
  out(`Target: ${t.sandbox ? 'sandbox (started for this run, stopped afterwards)' : `${t.name} (${t.gateway}) from ${t.source}`}`);
  out(`Destructive: ${plan.destructive ? 'YES' + (plan.destructive_allowed ? '' : ' (the target does not allow it: the run would stop at preflight)') : 'no'}`);
  out(`Needs: ${plan.needs.join(', ') || 'nothing'}; time budget ${plan.time_budget_s} s${plan.owner ? `; owner ${plan.owner}` : ''}`);
  out(`Creates: ${plan.creates.length ? '' : 'nothing'}`);
  for (const c of plan.creates) out(`  - ${c}`);
  if (plan.ticket) out(`Ticket: ${plan.ticket}`);
  if (plan.options.length) {
    out('Options:');
    for (const o of plan.options) {
      const v = o.given;
      const given = v === null ? 'not given' : v === true ? 'given' : v === false ? 'not given' : `= ${JSON.stringify(v)}`;
      out(`  --${o.name}${o.type === 'string' ? ' <value>' : ''}: ${o.description} (${given})`);
    }
  }
  out('Steps:');
  let n = 0;
  for (const sc of plan.scenarios) {
    out(`  ${sc.title} (${sc.file})`);
    for (const step of sc.steps) out(`    ${++n}. ${step.name} (${step.deadline_problem ? `no usable deadline: ${step.deadline_problem}` : `deadline ${formatDeadline(step.deadline_ms ?? undefined)}`})`);
  }
  out('Nothing was run.');
  return EXIT.PASSED;
}

async function scenarioSteps(files: string[], target: TargetProfile | undefined): Promise<CollectedScenario[]> {
  const modules = files.map((file) => {
    const rel = relative(REPO_ROOT, file);
    const own = join(CODE_ROOT, COMPILED ? rel.replace(/\.ts$/, '.js') : rel);
    return rel.startsWith('scenarios/') && existsSync(own) ? own : undefined;
  });
  if (modules.some((m) => !m)) {
    const { collectSteps } = await import('./vitest-session.js');
    if (!target) return collectSteps(files);
    // Vitest's workers read the target from a file (names and URLs only: no secret is written).
    const dir = mkdtempSync(join(tmpdir(), 'runbook-plan-'));
    try {
      const targetFile = join(dir, 'target.json');
      writeFileSync(targetFile, JSON.stringify(target));
      return await collectSteps(files, { targetFile });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const { planSteps } = await import('../../helpers/steps.js');
  const found: CollectedScenario[] = [];
  for (const [i, file] of files.entries()) {
    let declared;
    try {
      declared = await planSteps(() => import(pathToFileURL(modules[i]!).href), target);
    } catch (e) {
      throw new UsageError(`${relative(REPO_ROOT, file)}: ${errorMessage(e).split('\n')[0]}`);
    }
    const first = declared[0];
    found.push({ file, title: first?.title ?? '(no scenario declared)', steps: declared.flatMap((d) => d.steps) });
  }
  return found;
}

/** As runbook pages write deadlines: `10 s`, `1 min`, `5.5 min`. */
export function formatDeadline(ms: number | undefined): string {
  if (ms === undefined) return 'depends on the target';
  if (ms >= 60_000 && ms % 30_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
