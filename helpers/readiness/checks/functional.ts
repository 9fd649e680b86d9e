// Checklist §10: the functional runbooks (smoke, dlq-retry, policy, audit-trail) exercise the live
// API; the audit does not re-run them, it reads the target's run history and asks that each one
// passed within a window (thresholds.functionalMaxAgeDays).
import { defineCheck, fail, notCheckable, pass, type Check } from '../model.js';

/** Checklist item → the runbook that covers it. */
export const FUNCTIONAL_RUNBOOKS: { item: string; runbook: string }[] = [
  { item: '10.1', runbook: 'smoke' },
  { item: '10.2', runbook: 'dlq-retry' },
  { item: '10.3', runbook: 'policy' },
  { item: '10.4', runbook: 'audit-trail' },
];

const DAY_MS = 86_400_000;

export const functionalChecks: Check[] = [
  defineCheck({
    id: 'functional.runbooks-passed',
    section: 'functional',
    item: '10.1–10.4',
    title: 'The functional runbooks (smoke, dlq-retry, policy, audit-trail) passed on this target recently',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Run the functional runbooks against this target: `pnpm runbook smoke --target <profile>`, `pnpm runbook dlq-retry --target <profile>`, `pnpm runbook policy --target <profile>`, `pnpm runbook audit-trail --target <profile>`.',
    run(ctx) {
      const runs = ctx.live?.runs;
      if (!runs) return notCheckable('no run history read (the target has no name to look it up by)');
      const maxDays = ctx.thresholds.functionalMaxAgeDays;
      const rows = FUNCTIONAL_RUNBOOKS.map(({ item, runbook }) => {
        const mine = runs.records.filter((r) => r.runbook === runbook && !Number.isNaN(Date.parse(r.end)));
        const passed = mine.filter((r) => r.status === 'passed').sort((a, b) => Date.parse(b.end) - Date.parse(a.end))[0];
        const last = mine.sort((a, b) => Date.parse(b.end) - Date.parse(a.end))[0];
        const ageDays = passed ? (ctx.now.getTime() - Date.parse(passed.end)) / DAY_MS : null;
        return { item, runbook, lastPassed: passed?.end ?? null, ageDays: ageDays === null ? null : Math.round(ageDays * 10) / 10, lastRun: last ? { end: last.end, status: last.status } : null, ok: ageDays !== null && ageDays <= maxDays };
      });
      const evidence = { historyFile: runs.file, target: runs.target, historyError: runs.error ?? null, maxAgeDays: maxDays, runbooks: rows };
      const target = ctx.live?.targetName ?? runs.target;
      const never = rows.filter((r) => r.lastPassed === null);
      const stale = rows.filter((r) => r.lastPassed !== null && !r.ok);
      if (never.length || stale.length) {
        const parts = [
          ...(never.length ? [`never passed on ${target}: ${never.map((r) => `${r.runbook} (${r.item}${r.lastRun ? `, last run ${r.lastRun.status}` : ''})`).join(', ')}`] : []),
          ...(stale.length ? [`stale (last pass older than ${maxDays} days): ${stale.map((r) => `${r.runbook} (${r.ageDays} days ago)`).join(', ')}`] : []),
        ];
        return { ...fail(parts.join('; '), evidence), remediation: [...never, ...stale].map((r) => `pnpm runbook ${r.runbook} --target ${target}`).join('; ') };
      }
      return pass(`all four passed on ${target} within ${maxDays} days (${rows.map((r) => `${r.runbook} ${r.ageDays}d`).join(', ')})`, evidence);
    },
  }),
];
