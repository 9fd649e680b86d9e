// --plan: what a run would do (steps, target, what it creates, whether it is destructive) without
// running anything. The steps are collected by importing the scenario files in Vitest's collect mode.
import { relative } from 'node:path';
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
  if (opts.target) {
    const { loadProfile } = await import('../../helpers/target.js');
    const p = loadProfile(opts.target);
    targetLine = `${p.name} (${p.gateway.url}) from ${relative(process.cwd(), p.source) || p.source}`;
    destructiveAllowed = p.destructive.allowed;
  }
  const scenarios = await collectSteps(files);
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
    for (const step of sc.steps) out(`    ${++n}. ${step}`);
  }
  out('Nothing was run.');
  return EXIT.PASSED;
}
