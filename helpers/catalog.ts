// The runbook catalog: runbooks/<name>.md files with YAML front matter. Loading is cheap (no
// scenario code is imported) so `pnpm runbook list` and `--plan` stay fast. Every validation
// error names the file and the field, because the person reading it is editing that file.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { MiB, readUserFile } from './files.js';
import { ConfigError, UsageError } from './errors.js';
import { REPO_ROOT } from './paths.js';

export { REPO_ROOT };

export const NEEDS = ['gateway', 'bus', 'redis', 'kube'] as const;
export type Need = (typeof NEEDS)[number];

/** A command-line option a runbook declares in its front matter (`options:`). */
export interface RunbookOption {
  /** `--<name>` on the command line and the key in ctx.options (e.g. 'in-place'). */
  name: string;
  type: 'boolean' | 'string';
  description: string;
}

/** Options of the runner itself (and commander's help): a runbook cannot declare these. */
export const RESERVED_OPTIONS = ['target', 'plan', 'ticket', 'only-failed', 'fail-on-new', 'output', 'quiet', 'verbose', 'help', 'version'] as const;

export interface Runbook {
  name: string;
  file: string; // absolute path of the .md page
  title: string;
  summary: string;
  /** Absolute scenario file paths, in the order they run. */
  scenarios: string[];
  tags: string[];
  destructive: boolean;
  needs: Need[];
  /** Whole-run budget; the runner interrupts (and tears down) a run that exceeds it. */
  timeBudgetMs: number;
  owner: string;
  /** Human descriptions of the objects this runbook creates on the target. */
  creates: string[];
  /** Options `pnpm runbook <name> --<option> [value]` accepts; scenarios read them as ctx.options. */
  options: RunbookOption[];
}

const DEFAULT_TIME_BUDGET_MS = 10 * 60_000;
const KNOWN_FIELDS = new Set(['title', 'summary', 'scenarios', 'tags', 'destructive', 'needs', 'time_budget', 'owner', 'creates', 'options']);

export function runbooksDir(): string {
  return resolve(process.env.RUNBOOKS_DIR ?? join(REPO_ROOT, 'runbooks'));
}

/** Every runbook in the catalog, sorted by name. Throws ConfigError on the first malformed page. */
export function loadCatalog(dir = runbooksDir()): Runbook[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md') && !f.startsWith('_') && f.toLowerCase() !== 'readme.md')
    .sort()
    .map((f) => parseRunbook(join(dir, f)));
}

/** One runbook by name; an unknown name is a usage error listing what exists. */
export function findRunbook(name: string, dir = runbooksDir()): Runbook {
  const file = join(dir, `${name}.md`);
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name) || !existsSync(file)) {
    const known = loadCatalog(dir).map((r) => r.name);
    const guess = closest(name, known);
    throw new UsageError(
      `unknown runbook '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; known runbooks: ${known.length ? known.join(', ') : '(none in ' + dir + ')'}`,
    );
  }
  return parseRunbook(file);
}

/**
 * The known name a mistyped one most likely meant: a unique name within a small edit distance
 * (a typo, a missing or swapped letter), or the only one it is a prefix of. Undefined when nothing is close.
 */
export function closest(typed: string, known: string[]): string | undefined {
  const t = typed.toLowerCase();
  if (!t) return undefined;
  const prefixed = known.filter((k) => k.toLowerCase().startsWith(t));
  if (prefixed.length === 1) return prefixed[0];
  const limit = t.length <= 4 ? 1 : 2;
  const scored = known.map((k) => ({ k, d: editDistance(t, k.toLowerCase()) })).filter((x) => x.d <= limit);
  scored.sort((a, b) => a.d - b.d);
  if (scored.length === 0 || (scored.length > 1 && scored[1]!.d === scored[0]!.d)) return undefined;
  return scored[0]!.k;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

export function parseRunbook(file: string): Runbook {
  const name = basename(file, '.md');
  const where = relative(process.cwd(), file) || file;
  const text = readUserFile(file, { what: 'runbook page', maxBytes: MiB, display: where });
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(text);
  if (!m) throw new ConfigError(`${where}: missing YAML front matter (a '---' block at the top)`);
  let fm: unknown;
  try {
    fm = parseYaml(m[1]);
  } catch (err) {
    throw new ConfigError(`${where}: front matter is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!fm || typeof fm !== 'object' || Array.isArray(fm)) throw new ConfigError(`${where}: front matter must be a mapping`);
  const o = fm as Record<string, unknown>;
  const bad = (field: string, expected: string): never => {
    throw new ConfigError(`${where}: field '${field}' ${expected} (got ${JSON.stringify(o[field])})`);
  };
  for (const key of Object.keys(o)) {
    if (!KNOWN_FIELDS.has(key)) throw new ConfigError(`${where}: unknown field '${key}' (known: ${[...KNOWN_FIELDS].join(', ')})`);
  }
  const str = (field: string, required: boolean): string => {
    const v = o[field];
    if (v === undefined && !required) return '';
    if (typeof v !== 'string' || !v.trim()) return bad(field, 'must be a non-empty string');
    return v.trim();
  };
  const strList = (field: string): string[] => {
    const v = o[field] ?? [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !x.trim())) return bad(field, 'must be a list of strings');
    return (v as string[]).map((x) => x.trim());
  };

  const destructive = o.destructive ?? false;
  if (typeof destructive !== 'boolean') bad('destructive', 'must be true or false');
  const needs = strList('needs');
  for (const n of needs) if (!(NEEDS as readonly string[]).includes(n)) bad('needs', `must only contain ${NEEDS.join(', ')}`);

  return {
    name,
    file,
    title: str('title', true),
    summary: str('summary', true),
    scenarios: resolveScenarios(where, o.scenarios === undefined ? [`scenarios/${name}`] : strList('scenarios'), bad),
    tags: strList('tags'),
    destructive: destructive as boolean,
    needs: needs as Need[],
    timeBudgetMs: o.time_budget === undefined ? DEFAULT_TIME_BUDGET_MS : parseDuration(o.time_budget, () => bad('time_budget', "must be a duration like '90s', '5m' or a number of seconds")),
    owner: str('owner', false),
    creates: strList('creates'),
    options: parseOptions(o.options, bad),
  };
}

const OPTION_FIELDS = ['name', 'type', 'description'];

function parseOptions(v: unknown, bad: (f: string, e: string) => never): RunbookOption[] {
  if (v === undefined) return [];
  const expected = 'must be a list of {name, type: boolean|string, description}';
  if (!Array.isArray(v)) return bad('options', expected);
  const seen = new Set<string>();
  return v.map((item: unknown, i) => {
    const at = `options[${i}]`;
    if (!item || typeof item !== 'object' || Array.isArray(item)) return bad('options', `${expected}; ${at} is not a mapping`);
    const o = item as Record<string, unknown>;
    const extra = Object.keys(o).find((k) => !OPTION_FIELDS.includes(k));
    if (extra) return bad('options', `${expected}; ${at} has unknown field '${extra}'`);
    const name = o.name;
    if (typeof name !== 'string' || !/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) {
      return bad('options', `${expected}; ${at}.name must be lower-case kebab-case like 'in-place'`);
    }
    if ((RESERVED_OPTIONS as readonly string[]).includes(name)) return bad('options', `${expected}; ${at}.name '${name}' is one of the runner's own options`);
    if (seen.has(name)) return bad('options', `${expected}; ${at}.name '${name}' is declared twice`);
    seen.add(name);
    if (o.type !== 'boolean' && o.type !== 'string') return bad('options', `${expected}; ${at}.type must be boolean or string`);
    if (typeof o.description !== 'string' || !o.description.trim()) return bad('options', `${expected}; ${at}.description must be a non-empty string`);
    return { name, type: o.type, description: o.description.trim() };
  });
}

/** Entries are repo-relative files or directories (every *.test.ts / *.scenario.ts inside, sorted). */
function resolveScenarios(where: string, entries: string[], bad: (f: string, e: string) => never): string[] {
  if (entries.length === 0) bad('scenarios', 'must list at least one scenario file or directory');
  const files: string[] = [];
  for (const entry of entries) {
    const abs = resolve(REPO_ROOT, entry);
    if (!existsSync(abs)) throw new ConfigError(`${where}: field 'scenarios' names '${entry}', which does not exist`);
    if (statSync(abs).isDirectory()) {
      const inside = readdirSync(abs)
        .filter((f) => /\.(test|scenario)\.ts$/.test(f))
        .sort()
        .map((f) => join(abs, f));
      if (inside.length === 0) throw new ConfigError(`${where}: field 'scenarios' names directory '${entry}' with no *.test.ts files`);
      files.push(...inside);
    } else files.push(abs);
  }
  return [...new Set(files)];
}

export function parseDuration(v: unknown, onBad: () => never): number {
  if (typeof v === 'number' && v > 0) return v * 1000;
  if (typeof v !== 'string') return onBad();
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim());
  if (!m) return onBad();
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}
