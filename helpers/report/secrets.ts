// Last line of defence before a report leaves the machine: every file in the run directory is
// scanned for registered secret values (in every encoding helpers/redact.ts knows) and redacted.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { redact } from '../redact.js';
import { listFiles } from './manifest.js';

/**
 * Files a scrub has seen clean, by path, with the size, mtime and inode they had then. A later scrub
 * given the same map skips a file that still has them (the run directory is scrubbed again after the
 * HTML is written; only the HTML is new by then).
 */
export type ScrubbedFiles = Map<string, string>;

function stamp(file: string): string {
  const s = statSync(file, { bigint: true });
  return `${s.size}:${s.mtimeNs}:${s.ino}`;
}

/**
 * Record a file its writer redacted itself before writing it (the HTML report: helpers/report/allure.ts
 * generateHtml `clean`), as scrubSecrets records what it saw clean, so a later scrub does not read it again.
 */
export function recordClean(file: string, seen: ScrubbedFiles): void {
  seen.set(file, stamp(file));
}

/** Redact in place; returns the files that had to be changed (relative paths). */
export function scrubSecrets(dir: string, seen?: ScrubbedFiles): string[] {
  const changed: string[] = [];
  for (const file of listFiles(dir)) {
    if (seen && seen.get(file) === stamp(file)) continue;
    if (redactBytes(file, readFileSync(file))) changed.push(relative(dir, file));
    seen?.set(file, stamp(file));
  }
  return changed;
}

/**
 * The file's content redacted and written back, when redaction changed it; undefined otherwise.
 * Binary files (images, archives) are left as they are: redacting bytes would corrupt them, and
 * evidence attachments are already redacted when they are recorded.
 */
function redactBytes(file: string, bytes: Buffer): Buffer | undefined {
  if (bytes.includes(0)) return undefined;
  const text = bytes.toString('utf8');
  const clean = redact(text);
  if (clean === text) return undefined;
  const out = Buffer.from(clean);
  writeFileSync(file, out);
  return out;
}
