// Last line of defence before a report leaves the machine: every file in the run directory is
// scanned for registered secret values (in every encoding helpers/redact.ts knows) and redacted.
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { redact } from '../evidence.js';
import { listFiles } from './manifest.js';

/** Redact in place; returns the files that had to be changed (relative paths). */
export function scrubSecrets(dir: string): string[] {
  const changed: string[] = [];
  for (const file of listFiles(dir)) {
    const buf = readFileSync(file);
    // Binary files (images, archives) are not rewritten: redacting bytes would corrupt them, and
    // evidence attachments are already redacted when they are recorded.
    if (buf.includes(0)) continue;
    const text = buf.toString('utf8');
    const clean = redact(text);
    if (clean !== text) {
      writeFileSync(file, clean);
      changed.push(relative(dir, file));
    }
  }
  return changed;
}
