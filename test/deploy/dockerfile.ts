// deploy/Dockerfile and .dockerignore read as data, for the image tests (no Docker engine here).

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './k8s-fixture.js';

export interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // comment inside a continuation
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) continue;
    const [op, ...rest] = pending.split(/\s+/);
    out.push({ op: op!.toUpperCase(), args: rest.join(' ') });
    pending = '';
  }
  return out;
}

/** The instructions of each build stage, in order (a stage starts at FROM). */
export function stagesOf(instructions: Instruction[]): Instruction[][] {
  return instructions.reduce<Instruction[][]>((acc, i) => {
    if (i.op === 'FROM') acc.push([]);
    acc[acc.length - 1]?.push(i);
    return acc;
  }, []);
}

export const DOCKERFILE = parseDockerfile(readFileSync(join(REPO, 'deploy/Dockerfile'), 'utf8'));
export const STAGES = stagesOf(DOCKERFILE);
export const RUNTIME_STAGE = STAGES[STAGES.length - 1]!;

/** `ENV A=1 B=2` instructions of a stage, merged in order. */
export function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.filter((x) => x.op === 'ENV')) {
    for (const pair of i.args.split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    }
  }
  return env;
}

/** The shell commands of a stage's RUN instructions, split at `&&`. */
export function runCommandsOf(stage: Instruction[]): string[][] {
  return stage
    .filter((i) => i.op === 'RUN')
    .flatMap((i) => i.args.split('&&'))
    .map((c) => c.trim().split(/\s+/))
    .filter((argv) => argv.length > 0 && argv[0] !== '');
}

/** Debian packages `apt-get install` adds in a stage. */
export function aptPackagesOf(stage: Instruction[]): string[] {
  return runCommandsOf(stage)
    .map((argv) => argv.filter((a) => !/^[A-Z_]+=/.test(a)))
    .filter((argv) => argv[0] === 'apt-get' && argv.includes('install'))
    .flatMap((argv) => argv.slice(argv.indexOf('install') + 1).filter((a) => !a.startsWith('-')));
}

// ---------------------------------------------------------------------------------------------
// .dockerignore: what `COPY . .` takes from the build context

/** The .dockerignore rules in order; the last rule matching a path (or one of its parent folders) decides. */
export function dockerignoreRules(text = readFileSync(join(REPO, '.dockerignore'), 'utf8')): Array<{ exclude: boolean; pattern: string; re: RegExp }> {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const pattern = (exclude ? l : l.slice(1)).replace(/^\/+|\/+$/g, '');
      return { exclude, pattern, re: globToRegExp(pattern) };
    });
}

/** Docker's pattern syntax: `*` and `?` within one path segment, `**` across segments. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Is this context path (posix, relative) excluded from the build context? */
export function isIgnored(path: string, rules = dockerignoreRules()): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) excluded = rule.exclude;
  return excluded;
}

/** Every file `COPY . .` puts in the image, relative to the repository root. */
export function contextFiles(root = REPO, rules = dockerignoreRules()): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const ignored = isIgnored(p, rules);
      if (e.isDirectory()) {
        // An ignored folder is skipped unless an exception rule reaches inside it.
        if (!ignored || rules.some((r) => !r.exclude && r.pattern.startsWith(`${p}/`))) walk(p);
      } else if (!ignored) out.push(p);
    }
  };
  walk('');
  return out.sort();
}
