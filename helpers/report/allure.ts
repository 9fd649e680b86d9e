// Allure side of a run: environment info and categories (given to allure-vitest, which writes them
// into allure-results), and the single-file Allure Report 3 HTML, generated in-process (a child
// `allure generate` costs about a second of start-up) with the analytics tag removed.
import { isAscii } from 'node:buffer';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Status } from 'allure-js-commons';
import type { Category } from 'allure-js-commons/sdk';
import { sha256Of } from './manifest.js';
import { redact, secretsGeneration } from '../redact.js';

/**
 * The report's categories, first match wins. The runner writes them to allure-results/categories.json
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

/** How many earlier runs' trend points a report shows (Allure's historyLimit). */
export const TREND_POINTS = 50;

export interface GenerateOptions {
  resultsDir: string;
  /** The directory the single index.html goes into. */
  outputDir: string;
  /** Scratch directory for Allure's own output (its summary.json etc. must not land in the run dir). */
  stagingDir: string;
  reportName: string;
  /**
   * Applied to the page's text before it is written (the secret scrub, helpers/report/secrets.ts):
   * to its markup and to each data: URI on its own, so the 3.6 MB inlined app is never joined
   * with the rest into one string.
   */
  clean?: (text: string) => string;
  /**
   * Allure's trend data of earlier runs (its history data points, oldest first). They live in the
   * per-target run history (helpers/history.ts), one per run, so there is one history file per target.
   */
  history: unknown[];
  historyLimit?: number;
}

export interface GeneratedHtml {
  index: string;
  /** sha256 (hex) of what was written to `index` (so the caller need not read 4 MB back). */
  digest: string;
  /** Allure's history data point for this run, to be stored with the run in the run history. */
  historyPoint?: unknown;
}

/** What the runner uses of Allure's report engine: core, its CI detection and the awesome plugin. */
type ReportEngine = {
  AllureReport: new (config: unknown) => {
    start(): Promise<void>;
    readDirectory(dir: string): Promise<void>;
    done(): Promise<void>;
  };
  resolveConfig(config: Record<string, unknown>, override?: Record<string, unknown>): Promise<{ plugins: unknown[]; reportFiles: ReportFiles }>;
  ci: CiModule;
  AwesomePlugin: new (options: object) => object;
  /**
   * Makes the single-file page's fixed parts (the report app, base64-encoded, and the page template)
   * once per process, ahead of the report. Added by the project's patch of the awesome plugin
   * (patches/, pnpm-workspace.yaml): absent from an unpatched plugin, which then makes them per report.
   */
  prepareSingleFile?: () => Promise<FixedParts | void>;
};

/** The single-file page's fixed parts as the patched plugin makes them: its head tags and the app's script tag. */
interface FixedParts {
  headTags: string[];
  app: Buffer;
}

/** Where Allure's report engine puts what a plugin produces (@allurereport/plugin-api's ReportFiles). */
interface ReportFiles {
  addFile(path: string, data: Buffer): Promise<string>;
}

/** The part of @allurereport/ci that says which CI job a report comes from (read in AllureReport's constructor). */
type CiModule = {
  detect(): object;
  isLocalCiDescriptor(descriptor: object): boolean;
};

let enginePromise: Promise<ReportEngine> | undefined;

/**
 * The build bundles the engine into one file (bin/vendor.mjs): ~950 modules from node_modules cost
 * ~0.75 s of CPU to load, the bundle a third of that. Run from the sources (the tests), there is
 * no bundle and the engine loads from node_modules: core is a dependency of the `allure` CLI
 * package, not of ours, so it is resolved from there, and ci and the plugin from core (the very
 * module instances core uses).
 */
function loadEngine(): Promise<ReportEngine> {
  enginePromise ??= (async () => {
    const bundled = new URL('../../vendor/allure-report.js', import.meta.url);
    if (existsSync(bundled)) return (await import(bundled.href)) as ReportEngine;
    const allureEntry = fileURLToPath(import.meta.resolve('allure'));
    const fromCore = createRequire(createRequire(allureEntry).resolve('@allurereport/core'));
    const load = (id: string) => import(pathToFileURL(fromCore.resolve(id)).href);
    const [core, ci, awesome] = await Promise.all([load('@allurereport/core'), load('@allurereport/ci'), load('@allurereport/plugin-awesome')]);
    return {
      ...(core as Pick<ReportEngine, 'AllureReport' | 'resolveConfig'>),
      ci: ci as CiModule,
      AwesomePlugin: awesome.default,
      prepareSingleFile: awesome.prepareSingleFile,
    };
  })();
  return enginePromise;
}

const scrubbed = new WeakSet<object>();

/**
 * Allure writes a description of the CI job into every report, from @allurereport/ci's detect(). Off
 * CI its "local" descriptor runs `git remote get-url origin` (and rev-parse) in whatever directory
 * the runner was started from and puts that remote's URL into the report as it is: with the token of
 * a remote cloned as https://user:token@host/... . On Jenkins (GIT_URL) and CodeBuild the job's
 * repository URL can carry credentials the same way. A runbook's report is about a target, not
 * about the checkout it ran from: the local descriptor reports no repository and runs no git (four
 * processes, ~80 ms of every report), and any descriptor's URLs lose their user-info. detect() gives
 * the same descriptor object core will get (it depends only on the environment, unchanged in between).
 */
function scrubCiDescriptor(ci: CiModule): void {
  const descriptor = ci.detect();
  if (scrubbed.has(descriptor)) return;
  if (ci.isLocalCiDescriptor(descriptor)) {
    const none = { get: () => undefined, configurable: true };
    const empty = { get: () => '', configurable: true };
    Object.defineProperties(descriptor, { repoName: empty, jobRunBranch: empty, provider: none, repository: none });
  }
  for (const [key, prop] of Object.entries(Object.getOwnPropertyDescriptors(descriptor))) {
    const read = prop.get;
    if (!read) continue;
    Object.defineProperty(descriptor, key, { get: () => withoutUserinfo(read.call(descriptor)), configurable: true });
  }
  scrubbed.add(descriptor);
}

/** URLs in a CI descriptor's value (a string, or one level of an object) without user:password@. */
export function withoutUserinfo(value: unknown): unknown {
  const strip = (v: unknown) => (typeof v === 'string' ? v.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/i, '$1') : v);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, strip(v)]));
  }
  return strip(value);
}

let warmed: Promise<unknown> | undefined;

/**
 * Start loading the report engine ahead of time (it is large); safe to call more than once. Resolving
 * a configuration once runs what generateHtml will run first, so it is compiled by then; and the
 * single-file page's fixed parts are made now (prepareSingleFile: reading and encoding the 2.7 MB
 * report app, compiling the page template), not after the verdict. A failure here is left for the
 * report itself to meet and report.
 */
export async function preloadAllure(): Promise<void> {
  const engine = await loadEngine();
  warmed ??= engine
    .resolveConfig({ name: 'warm-up' }, { plugins: {} })
    .then(() => engine.prepareSingleFile?.())
    .then((parts) => {
      if (parts) preScanned = scanFixedParts(parts);
    })
    .catch(() => undefined);
  await warmed;
}

/** The fixed parts' data: URIs (the 3.6 MB app among them) that redact() left unchanged, and under which secrets. */
let preScanned: { uris: Buffer[]; generation: number } | undefined;

/**
 * The secret scrub of the page's fixed parts, done ahead (while the steps run) rather than on the
 * page after the verdict (~20 ms for the app). These bytes are the same in every page of this
 * process; editedUri skips a URI byte for byte equal to one found clean here, while the registered
 * secrets are still the ones it was scanned for. Any other URI, or any change of secrets, is
 * scanned on the page as before.
 */
function scanFixedParts(parts: FixedParts): { uris: Buffer[]; generation: number } {
  const generation = secretsGeneration();
  const fixed = Buffer.concat([...parts.headTags.map((t) => Buffer.from(t)), parts.app]);
  const uris = quotedDataUris(fixed)
    .map(([from, to]) => fixed.subarray(from, to))
    .filter((uri) => {
      const text = uri.toString(isAscii(uri) ? 'latin1' : 'utf8');
      return redact(text) === text;
    });
  return { uris, generation };
}

/**
 * The report's one plugin: the single-file, offline HTML. Given as an instance, so Allure neither
 * looks plugins up in node_modules nor adds the ones it would by default (its "agent" plugin).
 */
function awesomePlugin(engine: ReportEngine, reportName: string) {
  const options = { singleFile: true, reportName, groupBy: ['parentSuite', 'suite'] };
  return [{ id: PLUGIN_ID, enabled: true, options, plugin: new engine.AwesomePlugin(options) }];
}

const PLUGIN_ID = 'awesome';
/** The page as the plugin hands it to Allure's report files (under its plugin id). */
const PAGE_FILE = `${PLUGIN_ID}/index.html`;

/** Generate `<outputDir>/index.html` (single file, offline) and return its path and Allure's history point. */
export async function generateHtml(opts: GenerateOptions): Promise<GeneratedHtml> {
  const engine = await loadEngine();
  mkdirSync(opts.outputDir, { recursive: true });
  const staging = opts.stagingDir;
  // Allure rewrites its history file on every report; it gets a scratch copy, and the new point is
  // read back from it, so Allure never owns (or truncates) the run history.
  const historyPath = join(staging, 'history', 'history.jsonl');
  mkdirSync(dirname(historyPath), { recursive: true });
  const limit = opts.historyLimit ?? TREND_POINTS;
  const earlier = opts.history.slice(-limit);
  await writeFile(historyPath, earlier.map((p) => JSON.stringify(p) + '\n').join(''));
  const config = await engine.resolveConfig(
    { name: opts.reportName, output: join(staging, 'out'), historyPath, historyLimit: limit, categories: CATEGORIES },
    { plugins: {} },
  );
  config.plugins = awesomePlugin(engine, opts.reportName);
  // The page is taken as the plugin hands it over, not written to the staging folder and read back
  // (4 MB each way). Should a later Allure name it otherwise, it is written and read as before.
  let page: Buffer | undefined;
  const files = config.reportFiles;
  config.reportFiles = {
    addFile: (path, data) => (path === PAGE_FILE ? ((page = data), Promise.resolve(join(staging, 'out', path))) : files.addFile(path, data)),
  };
  scrubCiDescriptor(engine.ci);
  const report = new engine.AllureReport(config);
  await report.start();
  await report.readDirectory(opts.resultsDir);
  await report.done();
  const produced = join(staging, 'out', 'index.html');
  if (!page && !existsSync(produced)) throw new Error(`allure did not produce ${produced}`);
  const pieces = pagePieces(page ?? (await readFile(produced)), opts.clean);
  const out = join(opts.outputDir, 'index.html');
  // Written piece by piece (writeFile takes an iterable): the 4 MB page is never joined first.
  await writeFile(out, pieces);
  let historyPoint: unknown;
  try {
    const last = (await readFile(historyPath, 'utf8')).trim().split('\n').at(-1);
    const point = last ? (JSON.parse(last) as { uuid?: unknown }) : undefined;
    const previous = earlier.at(-1) as { uuid?: unknown } | undefined;
    if (point && point.uuid !== previous?.uuid) historyPoint = point;
  } catch {
    // no trend point for this run; the report itself is fine
  }
  return { index: out, digest: sha256Of(...pieces), historyPoint };
}

/**
 * Allure 3's awesome template hard-codes a Google Analytics tag (allure3 #476). A report attached to
 * a change ticket must not phone home, so both the loader and the inline gtag script are removed,
 * and the result is checked so a template change cannot silently bring them back. Bytes in, bytes
 * out: the 4 MB page is never decoded as a whole (see editHtml).
 */
export function stripAnalytics(html: Uint8Array | string): Buffer {
  const bytes = typeof html === 'string' ? Buffer.from(html) : Buffer.from(html.buffer, html.byteOffset, html.byteLength);
  return Buffer.concat(editHtml(bytes, withoutAnalytics));
}

/**
 * The page as it is written, in pieces (see editHtml): analytics removed (stripAnalytics), then
 * `clean` applied to the markup and to each data: URI.
 */
export function pagePieces(html: Buffer, clean?: (text: string) => string): Buffer[] {
  return editHtml(html, clean ? (markup) => clean(withoutAnalytics(markup)) : withoutAnalytics, clean);
}

/** The analytics tags removed from the page's markup, which is then checked for network references. */
function withoutAnalytics(markup: string): string {
  const out = markup
    .replace(/<script\b[^>]*\bsrc=["']https?:\/\/(?:www\.)?googletagmanager\.com[^"']*["'][^>]*>\s*<\/script>/gi, '')
    .replace(/<script\b[^>]*>(?:(?!<\/script>)[\s\S])*?\bgtag\s*\((?:(?!<\/script>)[\s\S])*?<\/script>/gi, '');
  // Checked on the same text (data: URIs still set aside): what a data: URI holds is not markup.
  const leftovers = networkReferences(out);
  if (leftovers.length > 0) throw new Error(`report HTML still references the network: ${leftovers.join(', ')}`);
  return out;
}

/** Script/style/image references that would need the network to open the report. */
function networkReferences(text: string): string[] {
  const problems: string[] = [];
  if (/googletagmanager|google-analytics|\bgtag\s*\(/i.test(text)) problems.push('analytics tag');
  const external = /<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?\/\/[^"']+["']/gi;
  for (const m of text.matchAll(external)) problems.push(m[0].slice(0, 120));
  return problems;
}

const DQ = 0x22;
const SQ = 0x27;
const DATA = Buffer.from('data:');

/**
 * Runs `edit` on the HTML's markup, decoded, with every quoted data: URI replaced by a short
 * placeholder, and returns the edited markup with the URIs put back, as the pieces of the page in
 * order. A quoted data: URI is what /(["'])data:[^"']*\1/ matches: a quote, `data:`, then up to the
 * next quote if it is the same kind. The single-file report inlines its app as one 3.6 MB base64
 * data: URI; the markup edits are about tags and network references, which a data: URI's payload
 * cannot hold as markup, and decoding, scanning and re-encoding the payload with the markup cost
 * ~60 ms per report. `editUri`, when given, edits each URI's text on its own (the secret scrub:
 * secrets in any encoding, base64 included, are found in a URI as well as in the markup); a page
 * holding a NUL gets `edit` on the whole text instead. Splitting happens at ASCII quotes, so no
 * UTF-8 sequence is cut.
 */
function editHtml(html: Buffer, edit: (text: string) => string, editUri?: (text: string) => string): Buffer[] {
  // Placeholders are NUL-delimited indexes; HTML that holds a NUL itself is edited whole (URIs and all).
  if (html.includes(0)) return [Buffer.from(edit(html.toString('utf8')))];
  const markup: string[] = [];
  const uris: Buffer[] = [];
  let from = 0;
  for (const [start, end] of quotedDataUris(html)) {
    markup.push(html.toString('utf8', from, start), `\u0000${uris.length}\u0000`);
    uris.push(html.subarray(start, end));
    from = end;
  }
  markup.push(html.toString('utf8', from));
  const pieces = edit(markup.join('')).split(/\u0000(\d+)\u0000/);
  return pieces.map((p, i) => (i % 2 === 1 ? editedUri(uris[Number(p)]!, editUri) : Buffer.from(p)));
}

/** Where each quoted data: URI is (see editHtml), quotes included: [start, end) byte offsets, in order. */
function quotedDataUris(html: Buffer): [number, number][] {
  const found: [number, number][] = [];
  let from = 0;
  for (let at = html.indexOf(DATA); at !== -1; at = html.indexOf(DATA, at + 1)) {
    const quote = html[at - 1];
    if (at - 1 < from || (quote !== DQ && quote !== SQ)) continue;
    const close = html.indexOf(quote, at + DATA.length);
    if (close === -1 || html.subarray(at + DATA.length, close).includes(quote === DQ ? SQ : DQ)) continue;
    found.push([at - 1, close + 1]);
    from = close + 1;
    at = close;
  }
  return found;
}

/** A data: URI's bytes after `editUri`, the very same bytes when it changed nothing. */
function editedUri(uri: Buffer, editUri?: (text: string) => string): Buffer {
  if (!editUri) return uri;
  // One of the page's fixed parts, found clean ahead under the same secrets (scanFixedParts).
  if (editUri === redact && preScanned?.generation === secretsGeneration() && preScanned.uris.some((u) => u.equals(uri))) return uri;
  // A base64 payload is ASCII: read as latin1, it is the same text without UTF-8 decoding.
  const text = isAscii(uri) ? uri.toString('latin1') : uri.toString('utf8');
  const edited = editUri(text);
  return edited === text ? uri : Buffer.from(edited);
}
