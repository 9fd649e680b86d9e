// Where the project's files are. Code runs from its sources (helpers/…) or compiled ahead
// (dist/<build>/helpers/…, see bin/build.mjs); files that are not code (runbook pages, JSON schemas,
// cap.proto, the sandbox's config) exist only in the source tree. So they are found from the
// project root, never from a module's own location.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder above this module that holds package.json: the checkout (or /app in the image). */
function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A file of the source tree, by its path from the root (e.g. 'helpers/cap/cap.proto'). */
export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}
