// A directory made whole or not at all, by any number of processes at once (the build and its
// bundles): each writes a private temp directory beside the destination and renames it into place;
// a process that finds the destination already complete drops its own copy.
// Plain JavaScript on purpose: it runs before anything is compiled.
import { mkdirSync, renameSync, rmSync } from 'node:fs';

/**
 * `make(tmp)` fills a fresh directory, which then becomes `dest`. When the rename fails because
 * another process made `dest` first (`isComplete()` says so), theirs is kept and this copy goes.
 * The temp directory never outlives the call.
 */
export async function makeDirAtomically(dest, isComplete, make) {
  const tmp = `${dest}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    mkdirSync(tmp, { recursive: true });
    await make(tmp);
    try {
      renameSync(tmp, dest);
    } catch (e) {
      if (!isComplete()) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
