// Where a failed step's reader goes next: the "When it fails" text of the step on its runbook page.
// Pages put it under the step's own heading ("## 3. Workflow round trip (deadline 20 s)" followed by
// "When it fails: …") or in one section for all steps ("## When a step fails"). The anchor is the
// heading's GitHub slug, so the same link works on the repository's web view and, with a file URL,
// on the machine that ran the runbook. No Vitest or Allure import: the runner and the workers use it.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../paths.js';

export interface FailureLink {
  /** For the terminal and summary.md: the page relative to the working directory, plus `#anchor`. */
  display: string;
  /** For the report: RUNBOOK_DOCS_URL (e.g. your repository's web view of the branch) or a file URL. */
  url: string;
}

/** GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

interface Heading {
  text: string;
  anchor: string;
}

function headings(markdown: string): Heading[] {
  const seen = new Map<string, number>();
  const out: Heading[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]!.replace(/`/g, ''));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push({ text: m[1]!, anchor: n === 0 ? base : `${base}-${n}` });
  }
  return out;
}

/** A step or heading name reduced to its words: no "3." number, no trailing "(deadline …)". */
function words(s: string): string {
  return s
    .replace(/^\s*\d+\.\s*/, '')
    .replace(/\s*\([^)]*\)\s*$/, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/**
 * The anchor on a runbook page for a failed step: the step's own heading when the page has one
 * (its "When it fails" paragraph is in that section), else the page's "When … fails" section.
 */
export function whenItFailsAnchor(markdown: string, step: string): string | undefined {
  const all = headings(markdown);
  const want = words(step);
  if (want) {
    const exact = all.find((h) => words(h.text) === want);
    if (exact) return exact.anchor;
    const close = all.find((h) => {
      const w = words(h.text);
      return w.length >= 8 && (want.startsWith(w) || w.startsWith(want));
    });
    if (close) return close.anchor;
  }
  return all.find((h) => /\bwhen\b.*\bfails?\b/i.test(h.text))?.anchor;
}

/** The link for a failed step of the runbook whose page is `pageFile`; undefined if the page cannot be read. */
export function whenItFailsLink(pageFile: string, step: string, env: NodeJS.ProcessEnv = process.env): FailureLink | undefined {
  let markdown: string;
  try {
    markdown = readFileSync(pageFile, 'utf8');
  } catch {
    return undefined;
  }
  const anchor = whenItFailsAnchor(markdown, step);
  const hash = anchor ? `#${anchor}` : '';
  const fromRepo = relative(REPO_ROOT, pageFile);
  const inRepo = !fromRepo.startsWith('..');
  const base = env.RUNBOOK_DOCS_URL;
  const url = base && inRepo ? `${base.replace(/\/?$/, '/')}${fromRepo.split('\\').join('/')}${hash}` : `${pathToFileURL(pageFile).href}${hash}`;
  const shown = relative(process.cwd(), pageFile);
  return { display: `${shown && !shown.startsWith('..') ? shown : pageFile}${hash}`, url };
}
