// Allure side of a run: environment info and categories (given to allure-vitest, which writes them
// into allure-results), and the single-file Allure Report 3 HTML, generated in-process (a child
// `allure generate` costs about a second of start-up) with the analytics tag removed.
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Status } from 'allure-js-commons';
import type { Category } from 'allure-js-commons/sdk';

/**
 * The report's categories, first match wins. allure-vitest writes them to allure-results/categories.json
 * (Allure 2 reads that file, with Java regexes matched against the whole message); Allure 3 ignores
 * the file and takes them from its config (generateHtml passes them), with JavaScript regexes. The
 * patterns are written to mean the same in both: `[\s\S]*` rather than Java's `(?s).*`.
 * A failed check (helpers/errors.ts CheckFailedError) is "failed"; anything else a step throws is "broken".
 */
export const CATEGORIES: Category[] = [
  {
    name: 'Interrupted runs',
    description: 'The run was stopped (Ctrl-C, SIGTERM or the runbook time budget) while this step ran.',
    matchedStatuses: [Status.FAILED, Status.BROKEN, Status.SKIPPED],
    messageRegex: '[\\s\\S]*\\binterrupted\\b[\\s\\S]*',
  },
  {
    name: 'Environment problems',
    description: 'The target or a dependency could not be reached, or a precondition was not met. Not a verdict on Cordum.',
    matchedStatuses: [Status.FAILED, Status.BROKEN],
    messageRegex:
      '[\\s\\S]*([Uu]nreachable|[Pp]recondition|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|UND_ERR_CONNECT|socket hang up|fetch failed|cannot be reached|not reachable|no redis section|did not finish within)[\\s\\S]*',
  },
  {
    name: 'Teardown left objects behind',
    matchedStatuses: [Status.FAILED, Status.BROKEN],
    messageRegex: '[\\s\\S]*left behind[\\s\\S]*',
  },
  {
    name: 'Product defects',
    description: 'A check against documented Cordum behaviour failed.',
    matchedStatuses: [Status.FAILED],
  },
  {
    name: 'Broken tests',
    description: 'The scenario code itself threw (not an assertion about Cordum): fix the runbook.',
    matchedStatuses: [Status.BROKEN],
  },
];

export interface GenerateOptions {
  resultsDir: string;
  /** The directory the single index.html goes into. */
  outputDir: string;
  /** Scratch directory for Allure's own output (its summary.json etc. must not land in the run dir). */
  stagingDir: string;
  reportName: string;
  /**
   * Allure's trend data of earlier runs (its history data points, oldest first). They live in the
   * per-target run history (helpers/history.ts), one per run, so there is one history file per target.
   */
  history: unknown[];
  historyLimit?: number;
}

export interface GeneratedHtml {
  index: string;
  /** Allure's history data point for this run, to be stored with the run in the run history. */
  historyPoint?: unknown;
}

type CoreModule = {
  AllureReport: new (config: unknown) => {
    start(): Promise<void>;
    readDirectory(dir: string): Promise<void>;
    done(): Promise<void>;
  };
  resolveConfig(config: Record<string, unknown>, override?: Record<string, unknown>): Promise<unknown>;
};

let corePromise: Promise<CoreModule> | undefined;

/** @allurereport/core is a dependency of the `allure` CLI package, not of ours: resolve it from there. */
function loadCore(): Promise<CoreModule> {
  corePromise ??= (async () => {
    const allureEntry = fileURLToPath(import.meta.resolve('allure'));
    const req = createRequire(allureEntry);
    return (await import(pathToFileURL(req.resolve('@allurereport/core')).href)) as CoreModule;
  })();
  return corePromise;
}

let warmed: Promise<unknown> | undefined;

/**
 * Start loading the generator ahead of time (it is large); safe to call more than once. Resolving a
 * configuration once also imports the report plugins, which Allure loads only then.
 */
export async function preloadAllure(): Promise<void> {
  const core = await loadCore();
  warmed ??= core.resolveConfig({ name: 'warm-up', plugins: awesomePlugin('warm-up') }, {}).catch(() => undefined);
  await warmed;
}

/** The single-file, offline HTML report. */
function awesomePlugin(reportName: string) {
  return { awesome: { options: { singleFile: true, reportName, groupBy: ['parentSuite', 'suite'] } } };
}

/** Generate `<outputDir>/index.html` (single file, offline) and return its path and Allure's history point. */
export async function generateHtml(opts: GenerateOptions): Promise<GeneratedHtml> {
  const core = await loadCore();
  mkdirSync(opts.outputDir, { recursive: true });
  const staging = opts.stagingDir;
  // Allure rewrites its history file on every report; it gets a scratch copy, and the new point is
  // read back from it, so Allure never owns (or truncates) the run history.
  const historyPath = join(staging, 'history', 'history.jsonl');
  mkdirSync(dirname(historyPath), { recursive: true });
  const limit = opts.historyLimit ?? 50;
  const earlier = opts.history.slice(-limit);
  await writeFile(historyPath, earlier.map((p) => JSON.stringify(p) + '\n').join(''));
  const config = await core.resolveConfig(
    {
      name: opts.reportName,
      output: join(staging, 'out'),
      historyPath,
      historyLimit: limit,
      categories: CATEGORIES,
      plugins: awesomePlugin(opts.reportName),
    },
    {},
  );
  const report = new core.AllureReport(config);
  await report.start();
  await report.readDirectory(opts.resultsDir);
  await report.done();
  const produced = join(staging, 'out', 'index.html');
  if (!existsSync(produced)) throw new Error(`allure did not produce ${produced}`);
  const html = stripAnalytics(await readFile(produced, 'utf8'));
  const out = join(opts.outputDir, 'index.html');
  await writeFile(out, html);
  let historyPoint: unknown;
  try {
    const last = (await readFile(historyPath, 'utf8')).trim().split('\n').at(-1);
    const point = last ? (JSON.parse(last) as { uuid?: unknown }) : undefined;
    const previous = earlier.at(-1) as { uuid?: unknown } | undefined;
    if (point && point.uuid !== previous?.uuid) historyPoint = point;
  } catch {
    // no trend point for this run; the report itself is fine
  }
  return { index: out, historyPoint };
}

/**
 * Allure 3's awesome template hard-codes a Google Analytics tag (allure3 #476). A report attached to
 * a change ticket must not phone home, so both the loader and the inline gtag script are removed,
 * and the result is checked so a template change cannot silently bring them back.
 */
export function stripAnalytics(html: string): string {
  const out = html
    .replace(/<script\b[^>]*\bsrc=["']https?:\/\/(?:www\.)?googletagmanager\.com[^"']*["'][^>]*>\s*<\/script>/gi, '')
    .replace(/<script\b[^>]*>(?:(?!<\/script>)[\s\S])*?\bgtag\s*\((?:(?!<\/script>)[\s\S])*?<\/script>/gi, '');
  const leftovers = offlineProblems(out);
  if (leftovers.length > 0) throw new Error(`report HTML still references the network: ${leftovers.join(', ')}`);
  return out;
}

/** Script/style/image references that would need the network to open the report. */
export function offlineProblems(html: string): string[] {
  const problems: string[] = [];
  if (/googletagmanager|google-analytics|\bgtag\s*\(/i.test(html)) problems.push('analytics tag');
  const external = /<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?\/\/[^"']+["']/gi;
  for (const m of html.matchAll(external)) problems.push(m[0].slice(0, 120));
  return problems;
}
