// Report formats: a Markdown checklist (for humans and tickets), SARIF 2.1.0 (code scanning) and
// JUnit XML (CI test views). All three come from the same AuditReport.
import type { AuditReport, CheckOutcome, Status } from './model.js';
import { ALL_CHECKS } from './checks/index.js';

const ICON: Record<Status, string> = { pass: '✅ pass', fail: '❌ fail', warn: '⚠️ warn', info: 'ℹ️ info', waived: '🟦 waived', 'not-checkable': '➖ not checkable' };

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function toMarkdown(r: AuditReport): string {
  const total = r.results.length;
  const count = (s: Status) => r.results.filter((x) => x.status === s).length;
  const lines = [
    `# Cordum production readiness (${r.mode}${r.namespace ? `, namespace ${r.namespace}` : ''})`,
    '',
    `Generated ${r.generatedAt}. ${total} checks: ${count('pass')} pass, ${count('fail')} fail, ${count('warn')} warn, ${count('waived')} waived, ${count('info')} info, ${count('not-checkable')} not checkable. Result: **${r.failed ? 'FAIL' : 'PASS'}**.`,
    '',
  ];
  if (r.loadErrors.length) lines.push('> Manifest problems (the audit continued on what parsed):', ...r.loadErrors.map((e) => `> - ${cell(e)}`), '');
  lines.push('| Section | Score | Pass | Fail | Warn | Waived | Not checkable |', '|---|---|---|---|---|---|---|');
  for (const s of r.sections) lines.push(`| ${s.title} | ${s.score === null ? '—' : `${s.score}%`} | ${s.counts.pass} | ${s.counts.fail} | ${s.counts.warn} | ${s.counts.waived} | ${s.counts['not-checkable']} |`);
  for (const s of r.sections) {
    if (!s.results.length) continue;
    lines.push('', `## ${s.title}${s.score === null ? '' : ` — ${s.score}%`}`, '', '| Status | Check | Item | Finding | Remediation |', '|---|---|---|---|---|');
    for (const o of s.results) lines.push(`| ${ICON[o.status]} | \`${o.id}\` ${cell(o.title)} | ${o.item} | ${cell(o.message)} | ${o.status === 'pass' || o.status === 'not-checkable' ? '' : cell(o.remediation)} |`);
  }
  return lines.join('\n') + '\n';
}

const LEVEL: Record<Status, 'error' | 'warning' | 'note' | 'none'> = { fail: 'error', warn: 'warning', info: 'note', waived: 'warning', pass: 'none', 'not-checkable': 'none' };
const KIND: Record<Status, string> = { fail: 'fail', warn: 'fail', info: 'informational', waived: 'fail', pass: 'pass', 'not-checkable': 'notApplicable' };

export function toSarif(r: AuditReport): object {
  const rules = ALL_CHECKS.map((c) => ({
    id: c.id,
    name: c.id.replace(/[^a-zA-Z0-9]+(.)/g, (_m, ch: string) => ch.toUpperCase()),
    shortDescription: { text: c.title },
    help: { text: c.remediation },
    defaultConfiguration: { level: c.severity === 'fail' ? 'error' : c.severity === 'warn' ? 'warning' : 'note' },
    properties: { section: c.section, checklistItem: c.item, modes: c.modes },
  }));
  const ruleIndex = new Map(rules.map((x, i) => [x.id, i]));
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'cordum-readiness', version: '0.1.0', rules } },
        invocations: [{ executionSuccessful: true, endTimeUtc: r.generatedAt, properties: { mode: r.mode, namespace: r.namespace ?? null } }],
        results: r.results.map((o: CheckOutcome) => ({
          ruleId: o.id,
          ...(ruleIndex.has(o.id) ? { ruleIndex: ruleIndex.get(o.id) } : {}),
          kind: KIND[o.status],
          level: LEVEL[o.status],
          message: { text: `${o.message}${o.status === 'fail' || o.status === 'warn' ? ` Fix: ${o.remediation}` : ''}` },
          locations: [{ logicalLocations: [{ name: r.namespace ?? 'manifests', kind: 'namespace' }] }],
          ...(o.status === 'waived' && o.waiver ? { suppressions: [{ kind: 'external', status: 'accepted', justification: `${o.waiver.reason} (owner ${o.waiver.owner}, ${o.waiver.ticket}, until ${o.waiver.expires})` }] } : {}),
          properties: { status: o.status, section: o.section, evidence: o.evidence },
        })),
      },
    ],
  };
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export function toJUnit(r: AuditReport): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const tot = (s: Status) => r.results.filter((x) => x.status === s).length;
  out.push(`<testsuites name="cordum-readiness" tests="${r.results.length}" failures="${tot('fail')}" errors="0" skipped="${tot('waived') + tot('not-checkable')}" timestamp="${r.generatedAt}">`);
  for (const s of r.sections) {
    if (!s.results.length) continue;
    out.push(`  <testsuite name="readiness.${s.section}" tests="${s.results.length}" failures="${s.counts.fail}" errors="0" skipped="${s.counts.waived + s.counts['not-checkable']}">`);
    for (const o of s.results) {
      out.push(`    <testcase classname="readiness.${s.section}" name="${xml(`${o.id}: ${o.title}`)}" time="0">`);
      if (o.status === 'fail') out.push(`      <failure message="${xml(o.message)}" type="${o.severity}">${xml(`${o.message}\nRemediation: ${o.remediation}\nEvidence: ${JSON.stringify(o.evidence)}`)}</failure>`);
      else if (o.status === 'waived' || o.status === 'not-checkable') out.push(`      <skipped message="${xml(o.message)}"/>`);
      else if (o.status === 'warn' || o.status === 'info') out.push(`      <system-out>${xml(`${o.status.toUpperCase()}: ${o.message}${o.status === 'warn' ? `\nRemediation: ${o.remediation}` : ''}`)}</system-out>`);
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n') + '\n';
}
