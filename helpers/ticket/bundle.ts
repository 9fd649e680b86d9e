// Pack one run's report into a single .tar.gz that can be attached to a change ticket:
// the single-file report, the summaries, JUnit, SARIF where present, and a manifest.sha256
// listing exactly the packed files. The report's own manifest is verified first, and the bundle
// manifest reuses its lines verbatim, so every hash in the bundle is the one the run recorded.

import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BundleIntegrityError, ConfigError, EXIT, RunbookError, UsageError } from '../errors.js';
import { MiB, readUserFileAsync } from '../files.js';
import { checkTicket } from '../input.js';
import { MANIFEST_NAME, checkEntries, parseManifest, type ManifestEntry } from './manifest.js';
import { packTarGz, type TarEntry } from './tar.js';

/** Files a bundle cannot do without: the verdict, machine- and human-readable. */
export const REQUIRED_FILES = ['summary.json', 'summary.md'] as const;
/** Packed when the run produced them: the HTML report (absent if rendering failed) and JUnit. */
export const EXPECTED_FILES = ['index.html', 'junit.xml'] as const;
/** SARIF is written only by runbooks with findings (readiness). */
const SARIF_PATTERN = /\.sarif$/;

/** The report on disk does not match its own manifest (declared with the other exit-code errors). */
export { BundleIntegrityError };

export interface BundleOptions {
  /** Output folder, or a full path ending in .tar.gz. Default: the folder holding the report. */
  out?: string;
  /** Change ticket id; default: the `ticket` recorded in summary.json. */
  ticket?: string;
}

export interface BundleResult {
  archive: string;
  runId: string;
  ticket?: string;
  /** Paths inside the archive, manifest last. */
  files: string[];
  /** Expected files the run did not produce (e.g. index.html when the HTML report failed). */
  absent: string[];
}

/** Ticket ids end up in a file name and in a Jira call: helpers/input.ts has the rule. */
export function validateTicket(ticket: string, where = '--ticket'): string {
  return checkTicket(ticket, where);
}

export function archiveName(runId: string, ticket?: string): string {
  return ticket ? `${ticket}-${runId}.tar.gz` : `${runId}.tar.gz`;
}

async function readSummary(reportDir: string): Promise<{ ticket?: string; end?: string }> {
  const path = join(reportDir, 'summary.json');
  try {
    const parsed = JSON.parse(await readUserFileAsync(path, { what: 'run summary', maxBytes: 64 * MiB })) as { ticket?: unknown; end?: unknown };
    return {
      ticket: typeof parsed.ticket === 'string' && parsed.ticket ? parsed.ticket : undefined,
      end: typeof parsed.end === 'string' ? parsed.end : undefined,
    };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${path}: not readable JSON (${(err as Error).message})`);
  }
}

function resolveArchivePath(reportDir: string, name: string, out?: string): string {
  if (!out) return join(dirname(reportDir), name);
  if (/\.(tar\.gz|tgz)$/.test(out)) return resolve(out);
  return join(resolve(out), name);
}

export async function createBundle(reportDir: string, opts: BundleOptions = {}): Promise<BundleResult> {
  const dir = resolve(reportDir);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new UsageError(`report folder not found: ${reportDir}`);
  const runId = basename(dir);

  const manifestPath = join(dir, MANIFEST_NAME);
  const manifestText = await readFile(manifestPath, 'utf8').catch(() => {
    throw new BundleIntegrityError(`${MANIFEST_NAME}: missing from ${reportDir}; refusing to bundle an unverifiable report`, [
      `${MANIFEST_NAME}: missing`,
    ]);
  });
  const parsed = parseManifest(manifestText);
  const problems = [...parsed.problems, ...(await checkEntries(dir, parsed.entries))];

  // Choose the files to pack; each must be covered by the run's manifest.
  const topLevel = await readdir(dir);
  const byPath = new Map(parsed.entries.map((e) => [e.path, e] as const));
  const absent = EXPECTED_FILES.filter((f) => !topLevel.includes(f) && !byPath.has(f));
  const wanted: string[] = [
    'index.html',
    ...REQUIRED_FILES,
    'junit.xml',
    ...topLevel.filter((f) => SARIF_PATTERN.test(f)).sort(),
  ].filter((f) => !absent.includes(f as (typeof EXPECTED_FILES)[number]));
  const packed: ManifestEntry[] = [];
  for (const file of wanted) {
    const entry = byPath.get(file);
    if (entry) packed.push(entry);
    else if (topLevel.includes(file)) problems.push(`${file}: present but not listed in ${MANIFEST_NAME}`);
    else problems.push(`${file}: missing from the report`);
  }
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
    throw new BundleIntegrityError(`report failed verification: ${problems[0]}${more}`, problems);
  }

  const summary = await readSummary(dir);
  const ticket = opts.ticket !== undefined ? validateTicket(opts.ticket) : summary.ticket ? validateTicket(summary.ticket, `the ticket recorded in ${reportDir}/summary.json`) : undefined;

  // The run's end time as every entry's mtime: bundling the same report twice gives the same bytes.
  const endMs = summary.end ? Date.parse(summary.end) : NaN;
  const mtime = new Date(Number.isFinite(endMs) ? endMs : 0);
  const entries: TarEntry[] = [{ path: `${runId}/`, mtime }];
  for (const entry of packed) {
    entries.push({ path: `${runId}/${entry.path}`, data: await readFile(join(dir, entry.path)), mtime });
  }
  const bundleManifest = packed.map((e) => `${e.line}\n`).join('');
  entries.push({ path: `${runId}/${MANIFEST_NAME}`, data: Buffer.from(bundleManifest, 'utf8'), mtime });

  const archive = resolveArchivePath(dir, archiveName(runId, ticket), opts.out);
  await mkdir(dirname(archive), { recursive: true });
  // Write then rename, so a half-written archive never carries the final name.
  const tmp = `${archive}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, packTarGz(entries));
    await rename(tmp, archive);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return { archive, runId, ticket, files: entries.filter((e) => e.data).map((e) => e.path), absent };
}
