// --plan: what a run would do (steps, target, what it creates, whether it is destructive) without
// running anything. The steps are collected by importing the scenario files in Vitest's collect mode.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO_ROOT, type Runbook } from '../../helpers/catalog.js';
import { EXIT, type ExitCode } from '../../helpers/errors.js';
import { out } from './log.js';
import { collectSteps } from './vitest-session.js';

export interface PlanOptions {
  target?: string;
  ticket?: string;
  options?: Record<string, string | boolean>;
}

export async function printPlan(runbook: Runbook, files: string[], opts: PlanOptions): Promise<ExitCode> {
  let targetLine = 'sandbox (started for this run, stopped afterwards)';
  let destructiveAllowed = true;
  let scenarios: Awaited<ReturnType<typeof collectSteps>>;
  if (opts.target) {
    const { loadProfile } = await import('../../helpers/target.js');
    const p = loadProfile(opts.target);
    targetLine = `${p.name} (${p.gateway.url}) from ${relative(process.cwd(), p.source) || p.source}`;
    destructiveAllowed = p.destructive.allowed;
    // Deadlines that depend on the target are resolved against it, as a run would (names only: no secret in it).
    const dir = mkdtempSync(join(tmpdir(), 'runbook-plan-'));
    try {
      const targetFile = join(dir, 'target.json');
      writeFileSync(targetFile, JSON.stringify(p));
      scenarios = await collectSteps(files, { targetFile });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else {
    scenarios = await collectSteps(files);
  }
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

/** As runbook pages write deadlines: `10 s`, `1 min`, `5.5 min`. */
export function formatDeadline(ms: number | undefined): string {
  if (ms === undefined) return 'depends on the target';
  if (ms >= 60_000 && ms % 30_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
