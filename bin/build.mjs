// The ahead-of-time build: cli/, helpers/ and sandbox/ compiled from TypeScript to JavaScript, so
// `pnpm runbook` and `pnpm sandbox` start on plain Node (no TypeScript transform at run time).
//
//   node bin/build.mjs          build unless the current build matches the sources (pnpm install runs this)
//   node bin/build.mjs --check  exit 0 if the build is current, 1 if it is missing or stale; builds nothing
//
// Plain JavaScript on purpose: it must run before anything is compiled.
//
// One file in, one file out (esbuild's transform, no bundling), so dist mirrors the source tree and
// every module exists once: helpers/teardown.ts becomes dist/<build>/helpers/teardown.js and nothing
// else holds its state. Files that are not code (runbook pages, JSON schemas, cap.proto, the
// sandbox's config) are not copied: modules find them from the project root (helpers/paths.ts).
// The third-party packages every run loads are bundled once per dependency set and linked into
// the build as <build>/vendor/ (bin/vendor.mjs); the compiled modules import them from there.
//
// A build is named by a fingerprint of its sources (path, size and mtime of every file in the
// compiled folders, of the build's own files in bin/ and of pnpm-lock.yaml), dist/<fingerprint>/. Staleness is one
// stat per source file (a few milliseconds): any edit, added or removed file gives another
// fingerprint, hence another directory, and the next run builds it first (~0.3 s). Two runs that
// build at once each write a private temp directory and rename it into place; the loser drops its
// copy. A run keeps using the build it started with, so builds are pruned only when unused for
// PRUNE_AFTER_MS.
import { createHash } from 'node:crypto';
import nodeModule from 'node:module';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { makeDirAtomically } from './atomic-dir.mjs';
import { rewriteImports, vendorInto } from './vendor.mjs';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * The folders compiled: everything the CLI and the sandbox load, and the scenarios, which --plan
 * imports to list their steps. Vitest still runs the scenarios from their TypeScript sources.
 */
export const SOURCE_DIRS = ['cli', 'helpers', 'sandbox', 'scenarios'];
/** A build not used (launched from) for this long is removed after the next build. */
const PRUNE_AFTER_MS = 6 * 60 * 60_000;
/** The file a complete build always contains (written last). */
const COMPLETE = 'BUILD';

export function distRoot(repo = REPO) {
  return process.env.RUNBOOK_DIST_DIR ? resolve(process.env.RUNBOOK_DIST_DIR) : join(repo, 'dist');
}

/** Every file under the compiled folders, relative to the repo, sorted. */
function sourceFiles(repo) {
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  for (const d of SOURCE_DIRS) if (existsSync(join(repo, d))) walk(join(repo, d));
  return files.sort();
}

/** The sources' fingerprint: one stat per file, no reads. */
export function fingerprint(repo = REPO) {
  const h = createHash('sha256');
  // The build's own files too: a change of its options makes every earlier build stale; and the
  // lockfile, whose change means other dependencies for the bundles (bin/vendor.mjs).
  for (const f of [...['build.mjs', 'vendor.mjs', 'atomic-dir.mjs'].map((b) => join(repo, 'bin', b)), join(repo, 'pnpm-lock.yaml'), ...sourceFiles(repo)]) {
    if (!existsSync(f)) continue;
    const s = statSync(f);
    h.update(`${relative(repo, f)}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * Node >= 22.1 keeps V8's compiled code of every module on disk (module.enableCompileCache), so a
 * start compiles the CLI, Vitest, Allure and the helpers once rather than every time; the scenario
 * worker thread and child processes get the same cache through NODE_COMPILE_CACHE. On older Node
 * nothing happens. A cache that cannot be written (read-only file system) means no cache, never an
 * error; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
export function enableCompileCache() {
  try {
    const r = nodeModule.enableCompileCache?.();
    if (r?.directory) process.env.NODE_COMPILE_CACHE ??= r.directory;
  } catch {
    // an optimisation only
  }
}

/** The directory of the build matching the sources now, whether or not it exists yet. */
export function buildDirFor(repo = REPO) {
  return join(distRoot(repo), fingerprint(repo));
}

export function isComplete(dir) {
  return existsSync(join(dir, COMPLETE));
}

/**
 * The current build, built first if the sources changed since (or there is none). `onBuild` is
 * called before building, so the caller can say why the run pauses.
 */
export async function currentBuild({ repo = REPO, onBuild } = {}) {
  const dir = buildDirFor(repo);
  if (isComplete(dir)) {
    // Marks the build as in use, for pruning; a read-only checkout (the container image) just skips it.
    try {
      const now = new Date();
      utimesSync(dir, now, now);
    } catch {
      // not writable
    }
    return { dir, built: false };
  }
  onBuild?.(relative(process.cwd(), dir) || dir);
  const t0 = performance.now();
  await build(repo, dir);
  return { dir, built: true, ms: performance.now() - t0 };
}

async function build(repo, dir) {
  const { build: esbuild } = await import('esbuild');
  const root = distRoot(repo);
  mkdirSync(root, { recursive: true });
  // Two runs that build at once each write their own temp directory; the first complete one stays.
  await makeDirAtomically(dir, () => isComplete(dir), async (tmp) => {
    const entryPoints = sourceFiles(repo).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    const { outputFiles } = await esbuild({
      entryPoints,
      outdir: tmp,
      outbase: repo,
      bundle: false,
      platform: 'node',
      format: 'esm',
      target: 'node20.19',
      sourcemap: 'linked',
      logLevel: 'silent',
      write: false,
    });
    const vendor = await vendorInto(repo, root, tmp);
    for (const f of outputFiles) {
      mkdirSync(dirname(f.path), { recursive: true });
      if (!f.path.endsWith('.js')) {
        writeFileSync(f.path, f.contents);
        continue;
      }
      // Bundled packages come from the build's vendor/ (same line count, so the source maps hold).
      const rel = relative(dirname(f.path), vendor).split(sep).join('/');
      writeFileSync(f.path, rewriteImports(f.text, rel.startsWith('.') ? rel : `./${rel}`));
    }
    // The profile schema's validator, compiled once here instead of on every run (helpers/target.ts).
    const target = await import(pathToFileURL(join(tmp, 'helpers/target.js')).href);
    writeFileSync(join(tmp, 'helpers', target.PRECOMPILED_VALIDATOR), target.profileValidatorSource());
    writeFileSync(join(tmp, COMPLETE), `${new Date().toISOString()}\n${entryPoints.length} modules from ${SOURCE_DIRS.join(', ')}\n`);
  });
  prune(root, dir);
}

/** Remove builds (and abandoned temp directories) unused for PRUNE_AFTER_MS; never the current one. */
function prune(root, keep) {
  for (const name of readdirSync(root)) {
    const p = join(root, name);
    if (p === keep) continue;
    try {
      if (Date.now() - statSync(p).mtimeMs > PRUNE_AFTER_MS) rmSync(p, { recursive: true, force: true });
    } catch {
      // gone already, or not ours to remove
    }
  }
}

const invokedDirectly = process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  const check = process.argv.includes('--check');
  const dir = buildDirFor();
  const shown = relative(process.cwd(), dir) || dir;
  if (check) {
    const ok = isComplete(dir);
    process.stdout.write(ok ? `build ${shown} is current\n` : `no current build (${shown} is missing): run node bin/build.mjs\n`);
    process.exit(ok ? 0 : 1);
  }
  currentBuild().then(
    (b) => process.stdout.write(b.built ? `built ${shown} in ${Math.round(b.ms)} ms\n` : `build ${shown} is current\n`),
    (e) => {
      process.stderr.write(`build failed: ${e?.message ?? e}\n`);
      process.exit(1);
    },
  );
}
