// The dependency arrow of the layout (DEVELOPERS.md): scenarios → helpers, sandbox → helpers,
// cli → helpers, and never back. helpers/ is what a runbook runs against a real Cordum, so it must
// not pull in the sandbox (or the runner); the sandbox must not depend on the runbooks or the CLI;
// scenarios drive the platform through helpers only, so they run unchanged against a real target.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');

/** Top-level directory → top-level directories it must never import from. */
const FORBIDDEN: Record<string, string[]> = {
  helpers: ['sandbox', 'scenarios', 'cli'],
  sandbox: ['scenarios', 'cli'],
  scenarios: ['sandbox', 'cli'],
};

interface Source {
  /** Repo-relative path with '/' separators. */
  path: string;
  text: string;
}

function sourcesUnder(dir: string): Source[] {
  const out: Source[] = [];
  const walk = (abs: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = join(abs, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (/\.(ts|mts|cts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
        out.push({ path: relative(REPO, p).split(sep).join('/'), text: readFileSync(p, 'utf8') });
      }
    }
  };
  walk(join(REPO, dir));
  return out;
}

/**
 * Every forbidden import in `sources`: static imports, re-exports, side-effect imports and dynamic
 * import() calls (TypeScript's own pre-processor finds them, so comments and strings do not count).
 */
function violations(sources: Source[]): string[] {
  const found: string[] = [];
  for (const src of sources) {
    const top = src.path.split('/')[0]!;
    const banned = FORBIDDEN[top];
    if (!banned) continue;
    const { importedFiles } = ts.preProcessFile(src.text, true, true);
    for (const imp of importedFiles) {
      const spec = imp.fileName;
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = relative(REPO, resolve(REPO, dirname(src.path), spec)).split(sep).join('/');
      const targetTop = target.split('/')[0]!;
      if (banned.includes(targetTop)) found.push(`${src.path} imports ${spec} (${top}/ must not depend on ${targetTop}/)`);
    }
  }
  return found;
}

describe('dependency direction', () => {
  it('no module in helpers/, sandbox/ or scenarios/ imports from a layer it must not depend on', () => {
    const sources = Object.keys(FORBIDDEN).flatMap(sourcesUnder);
    expect(sources.filter((s) => s.path.startsWith('helpers/')).length, 'helpers/ was scanned').toBeGreaterThan(20);
    expect(sources.filter((s) => s.path.startsWith('sandbox/')).length, 'sandbox/ was scanned').toBeGreaterThan(5);
    expect(sources.filter((s) => s.path.startsWith('scenarios/')).length, 'scenarios/ was scanned').toBeGreaterThan(5);
    expect(violations(sources)).toEqual([]);
  });

  it('catches each kind of import that would break the arrow', () => {
    const bad = violations([
      { path: 'helpers/backup/x.ts', text: "import { startRedis } from '../../sandbox/processes.js';" },
      { path: 'helpers/y.ts', text: "export { a } from '../scenarios/smoke/a.js';\nconst m = await import('../cli/run.js');" },
      { path: 'helpers/z.ts', text: "import '../sandbox/index.js';" },
      { path: 'sandbox/gateway/g.ts', text: "import type { X } from '../../cli/run.js';\nimport { y } from '../../scenarios/dlq-retry/y.js';" },
      { path: 'scenarios/smoke/s.test.ts', text: "import { startSandbox } from '../../sandbox/index.js';" },
    ]);
    expect(bad).toEqual([
      'helpers/backup/x.ts imports ../../sandbox/processes.js (helpers/ must not depend on sandbox/)',
      'helpers/y.ts imports ../scenarios/smoke/a.js (helpers/ must not depend on scenarios/)',
      'helpers/y.ts imports ../cli/run.js (helpers/ must not depend on cli/)',
      'helpers/z.ts imports ../sandbox/index.js (helpers/ must not depend on sandbox/)',
      'sandbox/gateway/g.ts imports ../../cli/run.js (sandbox/ must not depend on cli/)',
      'sandbox/gateway/g.ts imports ../../scenarios/dlq-retry/y.js (sandbox/ must not depend on scenarios/)',
      'scenarios/smoke/s.test.ts imports ../../sandbox/index.js (scenarios/ must not depend on sandbox/)',
    ]);
    // Allowed directions and a mention in a comment are not flagged.
    expect(
      violations([
        { path: 'sandbox/index.ts', text: "import { startRedis } from '../helpers/processes.js';\n// see '../cli/run.js'" },
        { path: 'cli/run.ts', text: "import { startSandbox } from '../sandbox/index.js';" },
        { path: 'helpers/a.ts', text: "import { b } from './b.js';\nimport { Redis } from 'ioredis';" },
      ]),
    ).toEqual([]);
  });
});
