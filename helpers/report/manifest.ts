// manifest.sha256: one `<sha256>  <relative path>` line per file in the run directory, in the format
// `sha256sum -c` understands, so a reviewer can check that a report attached to a ticket is intact.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

export const MANIFEST = 'manifest.sha256';

export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

function sha256(file: string): string {
  return sha256Of(readFileSync(file));
}

/** sha256 (hex) of the bytes given, in order: a file's content, or a file written in pieces. */
export function sha256Of(...pieces: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const p of pieces) hash.update(p);
  return hash.digest('hex');
}

function rel(dir: string, file: string): string {
  return relative(dir, file).split(sep).join('/');
}

/** `known`: digests of files whose content the caller holds (just written), by absolute path. */
export async function writeManifest(dir: string, known?: ReadonlyMap<string, string>): Promise<string> {
  const lines = listFiles(dir)
    .filter((f) => rel(dir, f) !== MANIFEST)
    .map((f) => `${known?.get(f) ?? sha256(f)}  ${rel(dir, f)}`);
  const path = join(dir, MANIFEST);
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

/** Problems found: missing, changed or unlisted files. Empty means the report is intact. */
export function verifyManifest(dir: string): string[] {
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) return [`${MANIFEST} is missing`];
  const listed = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) listed.set(m[2]!, m[1]!);
  }
  const problems: string[] = [];
  for (const [file, sum] of listed) {
    const abs = join(dir, file);
    if (!existsSync(abs)) problems.push(`missing: ${file}`);
    else if (sha256(abs) !== sum) problems.push(`changed: ${file}`);
  }
  for (const f of listFiles(dir)) {
    const r = rel(dir, f);
    if (r !== MANIFEST && !listed.has(r)) problems.push(`not in manifest: ${r}`);
  }
  return problems;
}
