// Which modules a set of files can load, read from their import statements: esbuild's output
// (`import … from "./x.js";`, possibly over several lines, and `import("./x.js")`) and Vitest's
// (single quotes, no semicolon needed).
// The scenario thread loads them ahead (cli/run/scenario-thread-entry.ts); a module this misses is
// only loaded later, when it is first needed, so the parse may be simple.
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STATIC_IMPORT = /^(?:import|export)\s(?:[^;"'`]*?\sfrom\s*)?(["'])(\.{1,2}\/[^"']+)\1;?$/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*(["'])(\.{1,2}\/[^"']+)\1\s*\)/g;

/** Files larger than this (the bundles in a build's vendor/) are listed but not read: they import nothing relative. */
const MAX_READ_BYTES = 256 * 1024;

/**
 * The modules `files` can load, by relative path only (within a build: its own modules and its
 * vendor/ bundles; within a package: its chunks), followed from file to file: what they import
 * statically (what loading `files` loads anyway), then what any of those imports on demand
 * (`import("./x.js")` with a literal path, e.g. the bus and Redis clients) and what that imports.
 * `files` themselves are not included.
 */
export function moduleGraph(files: string[]): string[] {
  const seen = new Set<string>(files.map((f) => pathToFileURL(f).href));
  const loaded: string[] = [];
  const onDemand: string[] = [];
  const walk = (url: string) => {
    let text: string;
    try {
      const path = fileURLToPath(url);
      text = statSync(path).size > MAX_READ_BYTES ? '' : readFileSync(path, 'utf8');
    } catch {
      return;
    }
    for (const m of text.matchAll(STATIC_IMPORT)) {
      const next = new URL(m[2]!, url).href;
      if (seen.has(next) || !next.endsWith('.js')) continue;
      seen.add(next);
      loaded.push(next);
      walk(next);
    }
    for (const m of text.matchAll(DYNAMIC_IMPORT)) {
      const next = new URL(m[2]!, url).href;
      if (seen.has(next) || !next.endsWith('.js')) continue;
      seen.add(next);
      onDemand.push(next);
    }
  };
  for (const f of files) walk(pathToFileURL(f).href);
  // onDemand grows while it is walked: what an on-demand module loads on demand is found too.
  for (let i = 0; i < onDemand.length; i++) walk(onDemand[i]!);
  return [...loaded, ...onDemand];
}
