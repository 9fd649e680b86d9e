// Runbook `readiness` (runbooks/readiness.md): audit Cordum's production checklist, statically on
// manifests (READINESS_MANIFESTS or the profile's readiness.manifests) or live on the target.
// One step per checklist section. Section steps are independent: a failing section does not skip
// the others, so every section is judged. Reports: readiness.{md,sarif,junit.xml,json}.
import { existsSync } from 'node:fs';
import { drillHistoryFile } from '../../helpers/backup/history.js';
import { scenario, stateSlot, type RunContext } from '../../helpers/steps.js';
import {
  ALL_CHECKS,
  SECTIONS,
  SECTION_TITLES,
  WAIVERS_FILE,
  loadManifests,
  loadWaivers,
  runAudit,
  toJUnit,
  toMarkdown,
  toSarif,
  type AuditReport,
  type Section,
} from '../../helpers/readiness/index.js';
import { CheckFailedError } from '../../helpers/errors.js';

/** Step deadlines, as documented in runbooks/readiness.md. */
const DEADLINE = {
  audit: 180_000,
  section: 5_000,
  reports: 5_000,
};

/** Where the manifests come from: env wins, then the profile's `readiness.manifests`. */
function manifestsPath(ctx: RunContext): string | undefined {
  const fromProfile = ctx.target.readiness?.manifests;
  return process.env.READINESS_MANIFESTS || fromProfile || undefined;
}

const REPORT = stateSlot<AuditReport>('report');

function reportOf(ctx: RunContext): AuditReport {
  return REPORT.require(ctx, 'the audit step did not produce a report');
}

scenario('Production readiness audit', (s) => {
  s.step(
    'Run the audit (static on manifests, or live on the target)',
    async (ctx) => {
      const waiversFile = process.env.READINESS_WAIVERS || ctx.target.readiness?.waivers || WAIVERS_FILE;
      const waivers = loadWaivers(waiversFile, new Set(ALL_CHECKS.map((c) => c.id)));
      const path = manifestsPath(ctx);
      const common = { waivers, now: new Date(), target: ctx.target.name, namespace: ctx.target.kube?.namespace };
      let report: AuditReport;
      if (path) {
        const m = await loadManifests(path, { namespace: ctx.target.kube?.namespace });
        await ctx.evidence.json('manifests', { source: m.source, objects: m.objects.length, errors: m.errors, notes: m.notes ?? [] });
        report = await runAudit({ ...common, mode: 'static', objects: m.objects, loadErrors: m.errors, loadNotes: m.notes, entry: m.entry });
      } else {
        report = await runAudit({ ...common, mode: 'live', live: { profile: ctx.target, kube: ctx.target.kube ? {} : false, historyFile: drillHistoryFile() } });
      }
      REPORT.set(ctx, report);
      await ctx.evidence.json('summary', { mode: report.mode, namespace: report.namespace, waivers: waivers.length, waiversFile: existsSync(waiversFile) ? waiversFile : null, sections: report.sections.map((x) => ({ section: x.section, score: x.score, counts: x.counts })) });
    },
    { timeoutMs: DEADLINE.audit },
  );

  for (const section of SECTIONS as readonly Section[]) {
    s.step(
      SECTION_TITLES[section],
      async (ctx) => {
        const summary = reportOf(ctx).sections.find((x) => x.section === section)!;
        await ctx.evidence.json(`section-${section}`, summary);
        for (const o of summary.results) {
          // A check that found several gaps reports each on its own, with the line that shows it.
          if (o.status === 'warn' || o.status === 'fail')
            for (const f of (o.findings ?? []).filter((x) => x.status === 'warn' || (o.status === 'warn' && x.status !== 'info'))) ctx.finding({ id: o.id, severity: 'warn', title: o.title, detail: `${f.message}${f.location?.uri ? ` (${f.location.uri}:${f.location.line})` : ''}` });
          if (o.status === 'warn' && !o.findings?.length) ctx.finding({ id: o.id, severity: 'warn', title: o.title, detail: `${o.message} Fix: ${o.remediation}` });
          if (o.status === 'waived') ctx.finding({ id: o.id, severity: 'info', title: `${o.title} (waived)`, detail: o.message });
        }
        if (summary.results.every((o) => o.status === 'not-checkable')) ctx.skip(`nothing in this section is checkable in ${reportOf(ctx).mode} mode`);
        const fails = summary.results.filter((o) => o.status === 'fail');
        if (fails.length) {
          await ctx.evidence.text(`section-${section}-fails`, fails.map((f) => [`${f.id}: ${f.message}`, ...(f.findings ?? []).map((x) => `  - ${x.status}: ${x.message}${x.location?.uri ? ` (${x.location.uri}:${x.location.line})` : ''}`), `  fix: ${f.remediation}`].join('\n')).join('\n'));
          throw new CheckFailedError(fails.map((f) => `${f.id} failed: ${f.message} Fix: ${f.remediation}`).join('\n'));
        }
      },
      { timeoutMs: DEADLINE.section, independent: true },
    );
  }

  s.step(
    'Write readiness.md, readiness.sarif, readiness.junit.xml',
    async (ctx) => {
      const r = reportOf(ctx);
      ctx.writeArtifact('readiness.md', toMarkdown(r));
      ctx.writeArtifact('readiness.sarif', JSON.stringify(toSarif(r), null, 2));
      ctx.writeArtifact('readiness.junit.xml', toJUnit(r));
      ctx.writeArtifact('readiness.json', JSON.stringify(r, null, 2));
    },
    { timeoutMs: DEADLINE.reports, independent: true },
  );

});
