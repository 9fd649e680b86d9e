// Reference material that lives beside the checkout, not in it: ../shared (or CORDUM_SHARED_DIR).
// CI has it; a user's clone of the repository alone does not. Tests that read it wrap themselves in
// describeWithReference: present, they run; absent, they are skipped and the reason (one line: what
// is missing, where it was looked for) is in the suite's name, which ci-summary-reporter.ts prints.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe } from 'vitest';
import { REPO_ROOT } from '../../helpers/catalog.js';

export const SHARED_DIR = resolve(process.env.CORDUM_SHARED_DIR ?? join(REPO_ROOT, '../shared'));

export interface SharedReference {
  /** Absolute path of the file or folder under SHARED_DIR. */
  path: string;
  present: boolean;
  /** Why tests that need it are skipped (only meaningful when absent). */
  reason: string;
}

/** A file or folder of the reference material, by its path relative to SHARED_DIR. */
export function sharedReference(relPath: string): SharedReference {
  const path = join(SHARED_DIR, relPath);
  return {
    path,
    present: existsSync(path),
    reason: `reference material ${relPath} is not at ${SHARED_DIR} (a clone of the repository alone has none; set CORDUM_SHARED_DIR to use a copy)`,
  };
}

/** `describe` that runs only when every given reference is present; otherwise skipped with the first missing one's reason in its name. */
export function describeWithReference(refs: SharedReference | SharedReference[], name: string, fn: () => void): void {
  const missing = [refs].flat().find((r) => !r.present);
  describe.skipIf(missing !== undefined)(missing ? `${name} (skipped: ${missing.reason})` : name, fn);
}
