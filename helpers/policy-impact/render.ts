// What a policy-impact run shows: a Markdown table for summary.md (pasted into change tickets), a
// JSON artifact for tools, and an SVG bar chart for the Allure report. Job ids, topics and rule ids
// only: payloads never reach the replay, let alone the report.
import { FLIP_KINDS, FLIP_LABEL, pct, type ImpactSummary, type Violation } from './flips.js';

const MAX_TABLE_ROWS = 25;

export interface ImpactHeader {
  draft: string;
  bundleId: string;
  replaced: boolean;
  tenant: string;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');
const code = (s: string) => '`' + s.replace(/`/g, "'") + '`';
const ids = (examples: string[], count: number) => examples.map(code).join(', ') + (count > examples.length ? ` (+${count - examples.length})` : '');

export function impactMarkdown(h: ImpactHeader, s: ImpactSummary, v: Violation[]): string {
  const lines: string[] = [];
  lines.push(`### Policy impact of ${code(h.draft)} as ${code(h.bundleId)} (${h.replaced ? 'replacing the stored bundle' : 'added'})`);
  lines.push('');
  lines.push(`${s.jobs} decided job(s) of tenant ${code(h.tenant)} replayed; ${s.flipped} would be decided differently.`);
  lines.push('');
  if (s.flipped === 0) {
    lines.push('No decision flips.');
  } else {
    lines.push('| Flip | Jobs | Share | Example jobs |', '|---|---:|---:|---|');
    for (const kind of FLIP_KINDS) {
      const g = s.byKind[kind];
      if (g) lines.push(`| ${FLIP_LABEL[kind]} | ${g.count} | ${pct(g.count / Math.max(1, s.jobs))} | ${ids(g.examples, g.count)} |`);
    }
    lines.push('', '| Flip | Topic | Jobs | Example jobs |', '|---|---|---:|---|');
    for (const t of s.byTopic.slice(0, MAX_TABLE_ROWS)) lines.push(`| ${FLIP_LABEL[t.kind]} | ${cell(code(t.topic))} | ${t.count} | ${ids(t.examples, t.count)} |`);
    if (s.byTopic.length > MAX_TABLE_ROWS) lines.push(`| … | ${s.byTopic.length - MAX_TABLE_ROWS} more (see artifacts/policy-impact.json) | | |`);
    lines.push('', '| Flip | Rule | Jobs |', '|---|---|---:|');
    for (const r of s.byRule.slice(0, MAX_TABLE_ROWS)) lines.push(`| ${FLIP_LABEL[r.kind]} | ${cell(code(r.rule))} | ${r.count} |`);
  }
  if (s.ruleOnly.count) lines.push('', `${s.ruleOnly.count} job(s) keep their decision but would be decided by another rule.`);
  lines.push('');
  lines.push(v.length ? `**Forbidden:** ${v.map((x) => `${FLIP_LABEL[x.kind]} (${x.count})`).join(', ')}` : 'No flip the profile forbids.');
  return lines.join('\n');
}

/** The JSON artifact: the summary plus the verdict's reasons. */
export function impactJson(h: ImpactHeader, s: ImpactSummary, v: Violation[], extra: Record<string, unknown>): string {
  return JSON.stringify({ ...h, ...extra, summary: s, forbidden: v }, null, 2) + '\n';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Horizontal bars: flips by kind, then the topics with the most flips. */
export function impactChart(s: ImpactSummary): string {
  const rows: { label: string; count: number; color: string }[] = [];
  const colors: Record<string, string> = { allow_to_deny: '#c0392b', allow_to_require_human: '#e67e22', deny_to_allow: '#8e44ad', require_human_to_allow: '#8e44ad' };
  for (const kind of FLIP_KINDS) rows.push({ label: FLIP_LABEL[kind], count: s.byKind[kind]?.count ?? 0, color: colors[kind] ?? '#2c7fb8' });
  const topics = s.byTopic.slice(0, 10).map((t) => ({ label: `${t.topic} (${FLIP_LABEL[t.kind]})`, count: t.count, color: '#7f8c8d' }));
  const all = [...rows, ...topics];
  const max = Math.max(1, ...all.map((r) => r.count));
  const rowH = 22;
  const labelW = 330;
  const barW = 360;
  const top = 30;
  const gap = topics.length ? 30 : 0;
  const height = top + all.length * rowH + gap + 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + 60}" height="${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<text x="4" y="18" font-weight="bold">Decision flips: ${s.flipped} of ${s.jobs} replayed job(s)</text>`);
  all.forEach((r, i) => {
    const y = top + i * rowH + (i >= rows.length ? gap : 0);
    const w = Math.round((r.count / max) * barW);
    out.push(`<text x="4" y="${y + 14}">${esc(r.label.length > 52 ? r.label.slice(0, 51) + '…' : r.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y + 3}" width="${w}" height="${rowH - 6}" fill="${r.color}"/>`);
    out.push(`<text x="${labelW + w + 4}" y="${y + 14}">${r.count}</text>`);
  });
  if (topics.length) out.push(`<text x="4" y="${top + rows.length * rowH + 20}" font-weight="bold">Topics with the most flips</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
