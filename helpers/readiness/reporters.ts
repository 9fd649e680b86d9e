// Report formats: a Markdown checklist (for humans and tickets), SARIF 2.1.0 (code scanning) and
// JUnit XML (CI test views). All three come from the same AuditReport.
import { pathToFileURL } from 'node:url';
import type { Log, Result, ReportingDescriptor, Location as SarifLocation } from 'sarif';
import type { AuditReport, CheckOutcome, Finding, Status } from './model.js';
import type { Location } from './source.js';
import { ALL_CHECKS } from './checks/index.js';
import { renderJunitXml, type JunitOutcome, type JunitSuite } from '../report/junit.js';

/**
 * Rules' helpUri: Cordum's production-readiness checklist, whose items the rules implement (each
 * rule names its item). READINESS_HELP_URI points it elsewhere, e.g. at your copy of
 * runbooks/readiness.md, which documents every check id.
 */
export const HELP_URI = process.env.READINESS_HELP_URI || 'https://github.com/cordum-io/cordum/blob/main/docs/production.md';

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
  // The error itself is reported once, by kubernetes.renders; the banner says what was audited.
  if (r.loadErrors.length) lines.push(`> The manifests did not render or parse as documented (${r.loadErrors.length} problem(s), see \`kubernetes.renders\`); the audit continued on what could be read.`, ...(r.loadNotes ?? []).map((n) => `> - ${cell(n)}`), '');
  lines.push('| Section | Score | Pass | Fail | Warn | Waived | Not checkable |', '|---|---|---|---|---|---|---|');
  for (const s of r.sections) lines.push(`| ${s.title} | ${s.score === null ? '—' : `${s.score}%`} | ${s.counts.pass} | ${s.counts.fail} | ${s.counts.warn} | ${s.counts.waived} | ${s.counts['not-checkable']} |`);
  for (const s of r.sections) {
    if (!s.results.length) continue;
    lines.push('', `## ${s.title}${s.score === null ? '' : ` — ${s.score}%`}`, '', '| Status | Check | Item | Finding | Remediation |', '|---|---|---|---|---|');
    for (const o of s.results) lines.push(`| ${ICON[o.status]} | \`${o.id}\` ${cell(o.title)} | ${o.item} | ${cell(findingsText(o) ?? o.message)} | ${o.status === 'pass' || o.status === 'not-checkable' ? '' : cell(o.remediation)} |`);
  }
  return lines.join('\n') + '\n';
}

const where = (l: Location | undefined) => (l?.uri ? ` (${l.uri}:${l.line})` : l?.object ? ` (${l.object})` : '');

/** The findings of a failed/warned check, one per line-ish, with where each is. */
function findingsText(o: CheckOutcome): string | undefined {
  const shown = (o.findings ?? []).filter((f) => f.status !== 'info');
  if (!shown.length || o.status === 'pass') return undefined;
  return shown.map((f) => `${f.status}: ${f.message}${where(f.location)}`).join(' • ');
}

type Level = NonNullable<Result['level']>;
/** A check's level when it fails or warns (its severity). */
const severityLevel = (sev: CheckOutcome['severity']): Level => (sev === 'fail' ? 'error' : sev === 'warn' ? 'warning' : 'note');
const findingLevel = (f: Finding): Level => (f.status === 'fail' ? 'error' : f.status === 'warn' ? 'warning' : 'note');

/** Physical location of a result; SARIF region lines start at 1. */
function sarifLocation(l: Location): SarifLocation {
  const logical = l.object ? { logicalLocations: [{ fullyQualifiedName: l.object, kind: 'object' }] } : {};
  if (!l.uri) return { ...logical };
  return {
    physicalLocation: {
      artifactLocation: { uri: l.uri.split('/').map(encodeURIComponent).join('/'), ...(l.uri.startsWith('/') ? {} : { uriBaseId: '%SRCROOT%' }) },
      region: { startLine: Math.max(1, l.line ?? 1), ...(l.snippet ? { snippet: { text: l.snippet } } : {}) },
    },
    ...logical,
  };
}

/**
 * SARIF 2.1.0 for code scanning. Each check is a rule (fullDescription, help, helpUri). Each check
 * gives one result, or one per finding when it found several gaps, each at its file and line.
 * Kind and level follow §3.27.9–10: only failures have kind "fail" with a level; passes, not
 * checkable and info results have level "none" (warnings are failures of a warn-severity rule).
 * Waived results keep their level and carry an accepted external suppression.
 */
export function toSarif(r: AuditReport): Log {
  const rules: ReportingDescriptor[] = ALL_CHECKS.map((c) => ({
    id: c.id,
    name: c.id.replace(/[^a-zA-Z0-9]+(.)/g, (_m, ch: string) => ch.toUpperCase()),
    shortDescription: { text: c.title },
    fullDescription: { text: `${c.title}. Checklist item ${c.item} (${c.modes.join(' and ')} mode${c.modes.length > 1 ? 's' : ''}).` },
    help: { text: c.remediation, markdown: `**Fix:** ${c.remediation}` },
    helpUri: HELP_URI,
    defaultConfiguration: { level: severityLevel(c.severity) },
    properties: { section: c.section, checklistItem: c.item, modes: c.modes, tags: ['readiness', c.section] },
  }));
  const ruleIndex = new Map(rules.map((x, i) => [x.id, i]));
  const locationsOf = (ls: Location[] | undefined): SarifLocation[] => {
    const out = (ls ?? []).map(sarifLocation).filter((l) => l.physicalLocation || l.logicalLocations);
    if (out.length) return out;
    // Live results are about the target, not a file.
    return [{ logicalLocations: [{ fullyQualifiedName: r.namespace ?? r.mode, kind: 'namespace' }] }];
  };
  const results: Result[] = r.results.flatMap((o: CheckOutcome): Result[] => {
    const base = {
      ruleId: o.id,
      ...(ruleIndex.has(o.id) ? { ruleIndex: ruleIndex.get(o.id) } : {}),
      ...(o.status === 'waived' && o.waiver ? { suppressions: [{ kind: 'external' as const, status: 'accepted' as const, justification: `${o.waiver.reason} (owner ${o.waiver.owner}, ${o.waiver.ticket}, until ${o.waiver.expires})` }] } : {}),
    };
    const failing = o.status === 'fail' || o.status === 'warn' || o.status === 'waived';
    const shown = (o.findings ?? []).filter((f) => f.status !== 'info');
    if (failing && shown.length) {
      return shown.map((f) => ({
        ...base,
        kind: 'fail',
        level: findingLevel(f),
        message: { text: `${f.message} Fix: ${o.remediation}` },
        locations: locationsOf(f.location ? [f.location] : o.locations),
        properties: { status: o.status, section: o.section },
      }));
    }
    const kind: Result['kind'] = failing ? 'fail' : o.status === 'pass' ? 'pass' : o.status === 'not-checkable' ? 'notApplicable' : 'informational';
    const level: Level = o.status === 'fail' ? 'error' : o.status === 'warn' ? 'warning' : o.status === 'waived' ? severityLevel(o.severity) : 'none';
    return [
      {
        ...base,
        kind,
        level,
        message: { text: `${o.message}${failing ? ` Fix: ${o.remediation}` : ''}` },
        locations: locationsOf(o.locations),
        properties: { status: o.status, section: o.section, evidence: o.evidence },
      },
    ];
  });
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'cordum-readiness', informationUri: HELP_URI, version: '0.1.0', rules } },
        ...(r.mode === 'static' ? { originalUriBaseIds: { '%SRCROOT%': { uri: `${pathToFileURL(process.cwd()).href}/` } } } : {}),
        invocations: [{ executionSuccessful: true, endTimeUtc: r.generatedAt, properties: { mode: r.mode, namespace: r.namespace ?? null, loadErrors: r.loadErrors, loadNotes: r.loadNotes ?? [] } }],
        results,
      },
    ],
  };
}

/** readiness.junit.xml through the project's one JUnit writer: a suite per section, a case per check. */
export function toJUnit(r: AuditReport): string {
  const outcome = (o: CheckOutcome): JunitOutcome => {
    if (o.status === 'fail') {
      const body = `${findingsText(o)?.split(' • ').join('\n') ?? o.message}\nRemediation: ${o.remediation}\nEvidence: ${JSON.stringify(o.evidence)}`;
      return { kind: 'failure', message: o.message, type: o.severity, body };
    }
    if (o.status === 'waived' || o.status === 'not-checkable') return { kind: 'skipped', message: o.message };
    if (o.status === 'warn' || o.status === 'info') {
      return { kind: 'passed', systemOut: `${o.status.toUpperCase()}: ${o.message}${o.status === 'warn' ? `\nRemediation: ${o.remediation}` : ''}` };
    }
    return { kind: 'passed' };
  };
  const suites: JunitSuite[] = r.sections
    .filter((s) => s.results.length > 0)
    .map((s) => ({
      name: `readiness.${s.section}`,
      cases: s.results.map((o) => ({ classname: `readiness.${s.section}`, name: `${o.id}: ${o.title}`, timeMs: 0, outcome: outcome(o) })),
    }));
  return renderJunitXml({ name: 'cordum-readiness', timestamp: r.generatedAt, suites });
}
