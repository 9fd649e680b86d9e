// --plan: what a run would do (steps, target, what it creates, whether it is destructive) without
// running anything. The steps are collected by importing the scenario files with the steps DSL in
// plan mode (helpers/steps.ts › planSteps), which needs no Vitest: the compiled scenarios of the
// build this CLI runs from (bin/build.mjs), or the sources when the CLI itself runs from source. A
// scenario file outside scenarios/ (a test fixture) is collected by Vitest instead.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import { EXIT, UsageError, errorMessage, type ExitCode } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import type { CollectedScenario } from './vitest-session.js';
import { out } from './log.js';

/** The root this module runs from: the checkout, or dist/<build> when compiled. */
const CODE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPILED = !import.meta.url.endsWith('.ts');

export interface PlanOptions {
  target?: string;
  ticket?: string;
  options?: Record<string, string | boolean>;
}

export async function printPlan(runbook: Runbook, files: string[], opts: PlanOptions): Promise<ExitCode> {
  let targetLine = 'sandbox (started for this run, stopped afterwards)';
  let destructiveAllowed = true;
  let profile: TargetProfile | undefined;
  if (opts.target) {
    const { loadProfile } = await import('../../helpers/target.js');
    const p = loadProfile(opts.target);
    targetLine = `${p.name} (${p.gateway.url}) from ${relative(process.cwd(), p.source) || p.source}`;
    destructiveAllowed = p.destructive.allowed;
    profile = p;
  }
  // Deadlines that depend on the target are resolved against it, as a run would.
  const scenarios = await scenarioSteps(files, profile);
  out(`Plan for runbook ${runbook.name}: ${runbook.title}`);
  out(`  ${runbook.summary}`);
  out(`Target: ${targetLine}`);
  out(`Destructive: ${runbook.destructive ? 'YES' + (destructiveAllowed ? '' : ' (the target does not allow it: the run would stop at preflight)') : 'no'}`);
  out(`Needs: ${runbook.needs.join(', ') || 'nothing'}; time budget ${Math.round(runbook.timeBudgetMs / 1000)} s${runbook.owner ? `; owner ${runbook.owner}` : ''}`);
  out(`Creates: ${runbook.creates.length ? '' : 'nothing'}`);
  for (const c of runbook.creates) out(`  - ${c}`);
  if (opts.ticket) out(`Ticket: ${opts.ticket}`);
  if (runbook.options.length) {
    out('Options:');
    for (const o of runbook.options) {
      const v = opts.options?.[o.name];
      const given = v === undefined ? 'not given' : v === true ? 'given' : v === false ? 'not given' : `= ${JSON.stringify(v)}`;
      out(`  --${o.name}${o.type === 'string' ? ' <value>' : ''}: ${o.description} (${given})`);
    }
  }
  out('Steps:');
  let n = 0;
  for (const sc of scenarios) {
    out(`  ${sc.title} (${relative(REPO_ROOT, sc.file)})`);
    for (const step of sc.steps) out(`    ${++n}. ${step.name} (${step.deadlineProblem ? `no usable deadline: ${step.deadlineProblem}` : `deadline ${formatDeadline(step.deadlineMs)}`})`);
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
