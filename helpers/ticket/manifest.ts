// manifest.sha256 in `sha256sum` format (`<hex>  <relative path>` per line), so auditors can
// check a report or an unpacked bundle with nothing but `sha256sum -c manifest.sha256`.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MiB, readUserFileBytesAsync } from '../files.js';

export const MANIFEST_NAME = 'manifest.sha256';

export interface ManifestEntry {
  sha256: string;
  path: string;
  /** The line exactly as written, so a bundle can carry the report's own lines unchanged. */
  line: string;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A relative path that stays inside the folder it is resolved against. */
export function isSafeRelativePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/**
 * Parse manifest text. Accepts sha256sum's text (`  `) and binary (` *`) separators. Malformed
 * lines are returned as problems rather than thrown, so a verifier can list everything wrong.
 */
export function parseManifest(text: string): { entries: ManifestEntry[]; problems: string[] } {
  const entries: ManifestEntry[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    const match = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line);
    if (!match) {
      problems.push(`${MANIFEST_NAME}: line ${index + 1} is not "<sha256>  <path>"`);
      return;
    }
    const path = match[2];
    if (!isSafeRelativePath(path)) {
      problems.push(`${MANIFEST_NAME}: line ${index + 1} names an unsafe path "${path}"`);
      return;
    }
    if (seen.has(path)) {
      problems.push(`${MANIFEST_NAME}: ${path} is listed twice`);
      return;
    }
    seen.add(path);
    entries.push({ sha256: match[1].toLowerCase(), path, line });
  });
  return { entries, problems };
}

export function formatManifest(entries: Array<Pick<ManifestEntry, 'sha256' | 'path'>>): string {
  return entries.map((e) => `${e.sha256}  ${e.path}\n`).join('');
}

/** The largest file of a report (index.html is a few MB). */
const MAX_REPORT_FILE_BYTES = 512 * MiB;

/** Check every manifest entry against the files under `dir`; one line per problem, naming the file. */
export async function checkEntries(dir: string, entries: ManifestEntry[]): Promise<string[]> {
  const problems: string[] = [];
  for (const entry of entries) {
    let data: Buffer;
    try {
      data = await readUserFileBytesAsync(join(dir, entry.path), { what: 'report file', maxBytes: MAX_REPORT_FILE_BYTES, display: entry.path });
    } catch (err) {
      const problem = (err as Error).message;
      problems.push(/: report file does not exist$/.test(problem) ? `${entry.path}: listed in ${MANIFEST_NAME} but missing` : problem);
      continue;
    }
    const actual = sha256(data);
    if (actual !== entry.sha256) {
      problems.push(
        `${entry.path}: content changed (sha256 ${actual.slice(0, 12)}…, manifest says ${entry.sha256.slice(0, 12)}…)`,
      );
    }
  }
  return problems;
}
