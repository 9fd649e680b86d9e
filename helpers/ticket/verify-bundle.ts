// Check a ticket bundle: unpack it into a private temp folder, then compare the files with the
// bundle's manifest.sha256: every listed file present and unchanged, nothing unlisted added.
// Each problem is one line that names the file, so a reviewer sees at once what was touched.

import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ConfigError, UsageError } from '../errors.js';
import { MiB, readUserFileBytesAsync } from '../files.js';
import { MANIFEST_NAME, checkEntries, isSafeRelativePath, parseManifest } from './manifest.js';
import { unpackTarGz, type ReadEntry } from './tar.js';

export interface VerifyResult {
  ok: boolean;
  problems: string[];
  /** Files checked against the manifest (paths relative to the bundle's run folder). */
  files: string[];
}

async function listFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const dirent of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, dirent.name);
    if (dirent.isDirectory()) out.push(...(await listFiles(root, full)));
    else out.push(relative(root, full).split('\\').join('/'));
  }
  return out.sort();
}

/** The folder holding manifest.sha256: the archive root, or its single top-level folder. */
function bundleRoot(entries: ReadEntry[]): string | undefined {
  const manifests = entries
    .filter((e) => e.type === 'file' && (e.path === MANIFEST_NAME || e.path.endsWith(`/${MANIFEST_NAME}`)))
    .map((e) => e.path.slice(0, -MANIFEST_NAME.length));
  const shallowest = manifests.sort((a, b) => a.length - b.length)[0];
  return shallowest;
}

/** Bundles are a few MB; Jira's default attachment limit is 100 MB. */
export const MAX_BUNDLE_BYTES = 512 * MiB;

export async function verifyBundle(archive: string): Promise<VerifyResult> {
  let bytes: Buffer;
  try {
    bytes = await readUserFileBytesAsync(archive, { what: 'bundle', maxBytes: MAX_BUNDLE_BYTES });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }

  let entries: ReadEntry[];
  try {
    entries = unpackTarGz(bytes);
  } catch (err) {
    return { ok: false, problems: [`${archive}: ${(err as Error).message}`], files: [] };
  }

  const problems: string[] = [];
  const temp = await mkdtemp(join(tmpdir(), 'cordum-bundle-'));
  try {
    // Unpack only plain files and folders at safe paths; anything else is reported, never written.
    for (const entry of entries) {
      const path = entry.path.replace(/\/+$/, '');
      if (!isSafeRelativePath(path)) {
        problems.push(`${entry.path}: unsafe path in the archive (not unpacked)`);
        continue;
      }
      if (entry.type === 'directory') {
        await mkdir(join(temp, path), { recursive: true });
      } else if (entry.type === 'file') {
        await mkdir(dirname(join(temp, path)), { recursive: true });
        await writeFile(join(temp, path), entry.data, { flag: 'wx' }).catch(() => {
          problems.push(`${path}: appears more than once in the archive`);
        });
      } else {
        problems.push(`${path}: not a regular file (tar type '${entry.typeflag}'); bundles hold plain files only`);
      }
    }

    const rootPrefix = bundleRoot(entries);
    if (rootPrefix === undefined) {
      problems.push(`${MANIFEST_NAME}: missing from the bundle`);
      return { ok: false, problems, files: [] };
    }
    const root = join(temp, rootPrefix);
    const parsed = parseManifest(await readFile(join(root, MANIFEST_NAME), 'utf8'));
    problems.push(...parsed.problems.map((p) => `${rootPrefix}${p}`));
    problems.push(...(await checkEntries(root, parsed.entries)).map((p) => `${rootPrefix}${p}`));

    const listed = new Set(parsed.entries.map((e) => e.path));
    for (const file of await listFiles(temp)) {
      const inRoot = rootPrefix === '' || file.startsWith(rootPrefix) ? file.slice(rootPrefix.length) : undefined;
      if (inRoot === MANIFEST_NAME) continue;
      if (inRoot === undefined || !listed.has(inRoot)) {
        problems.push(`${file}: in the bundle but not listed in ${MANIFEST_NAME}`);
      }
    }
    return { ok: problems.length === 0, problems, files: [...listed] };
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
