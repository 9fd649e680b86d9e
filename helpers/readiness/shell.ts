// Reads what a container really runs: `command`/`args`, and `sh -c` / `bash -c` scripts with line
// continuations, several commands per line (`;`, `&&`, `||`, `|`), variables, command substitutions
// and loops. The result is the flat list of simple commands the script would execute, each with
// its words expanded as far as the script itself says (variables set earlier, container env, loop
// values) and the script line it starts on, so a finding can quote the line as evidence.
//
// Why not a shell-parser package: the JS ports of mvdan/sh are a deprecated GopherJS build or a
// WASM build whose JSON AST drops node types, and none evaluates words. The audit needs symbolic
// evaluation (an unknown value stays visible as `$VAR`), which is ours to write either way; the
// POSIX subset container scripts use is small.

/** A value the script cannot know statically, e.g. the output of `$(redis-cli … cluster nodes)`. */
export interface LoopBinding {
  variable: string;
  /** Literal values (`for S in CORDUM_SYS CORDUM_JOBS`), or null when they come from a command. */
  values: string[] | null;
  /** Commands whose output feeds the loop (`for M in $(…)`, `… | while read M`). */
  source: ShellCommand[];
  /** Source text of the producing expression (for evidence). */
  sourceText: string;
}

export interface ShellCommand {
  /** Words after expansion; unknown parts stay as written (`$M`, `$(…)`). */
  argv: string[];
  /** 1-based line (in the script) where the command starts. */
  line: number;
  /** The script line the command starts on, trimmed (evidence). */
  lineText: string;
  /** Enclosing loops, innermost last. */
  loops: LoopBinding[];
  /** Commands in the same pipeline, in order (this one included). */
  pipeline: ShellCommand[];
  /** Redirection targets (`> /backup/x`), expanded. */
  redirects: { op: string; target: string }[];
  /** True inside `$(…)` or backticks. */
  substituted: boolean;
}

export interface ParsedScript {
  text: string;
  commands: ShellCommand[];
}

// ---------------------------------------------------------------------------------------------
// Lexer: words (raw text kept, with quoting) and operators, with line numbers.

type WordTok = { t: 'word'; raw: string; line: number };
type Tok = WordTok | { t: 'op'; v: string; line: number };

const OPERATORS = ['&&', '||', ';;', '>>', '<<', '>&', '<&', '>|', '&>', ';', '|', '&', '(', ')', '<', '>', '\n'];

function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  let line = 1;
  const heredocs: string[] = [];
  while (i < src.length) {
    const c = src[i];
    if (c === '\\' && src[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '\n') {
      toks.push({ t: 'op', v: '\n', line });
      i++;
      line++;
      // Here-document bodies start after the newline that ends their command: skip them.
      while (heredocs.length) {
        const delim = heredocs.shift()!;
        while (i < src.length) {
          const end = src.indexOf('\n', i);
          const l = src.slice(i, end < 0 ? src.length : end);
          i = end < 0 ? src.length : end + 1;
          line++;
          if (l.replace(/^\t+/, '') === delim) break;
        }
      }
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op) {
      toks.push({ t: 'op', v: op, line });
      i += op.length;
      if (op === '<<') {
        if (src[i] === '-') i++;
        while (src[i] === ' ' || src[i] === '\t') i++;
        const start = i;
        i = readWordEnd(src, i);
        const delim = src.slice(start, i);
        toks.push({ t: 'word', raw: delim, line });
        heredocs.push(delim.replace(/^['"]|['"]$/g, ''));
      }
      continue;
    }
    const start = i;
    const startLine = line;
    i = readWordEnd(src, i);
    const raw = src.slice(start, i);
    line += (raw.match(/\n/g) ?? []).length;
    toks.push({ t: 'word', raw, line: startLine });
  }
  return toks;
}

/** Index just past the word starting at `i` (quotes, `$(…)`, `${…}` and backticks kept whole). */
function readWordEnd(src: string, i: number): number {
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (' \t\r\n;&|()<>'.includes(c)) break;
    if (c === "'") i = skipSingle(src, i);
    else if (c === '"') i = skipDouble(src, i);
    else if (c === '`') i = skipBacktick(src, i);
    else if (c === '$' && src[i + 1] === '(') i = skipParen(src, i + 1);
    else if (c === '$' && src[i + 1] === '{') i = skipBrace(src, i + 1);
    else i++;
  }
  return i;
}

function skipSingle(s: string, i: number): number {
  const end = s.indexOf("'", i + 1);
  return end < 0 ? s.length : end + 1;
}

function skipDouble(s: string, i: number): number {
  i++;
  while (i < s.length && s[i] !== '"') {
    if (s[i] === '\\') i += 2;
    else if (s[i] === '$' && s[i + 1] === '(') i = skipParen(s, i + 1);
    else if (s[i] === '$' && s[i + 1] === '{') i = skipBrace(s, i + 1);
    else if (s[i] === '`') i = skipBacktick(s, i);
    else i++;
  }
  return i + 1;
}

function skipBacktick(s: string, i: number): number {
  i++;
  while (i < s.length && s[i] !== '`') i += s[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** `i` at an opening `(` or `{`; returns the index past its match (quotes respected). */
function skipMatching(s: string, i: number, open: string, close: string): number {
  let depth = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\') i += 2;
    else if (c === "'") i = skipSingle(s, i);
    else if (c === '"') i = skipDouble(s, i);
    else if (c === '`' && open === '(') i = skipBacktick(s, i);
    else {
      if (c === open) depth++;
      else if (c === close && --depth === 0) return i + 1;
      i++;
    }
  }
  return s.length;
}

const skipParen = (s: string, i: number) => skipMatching(s, i, '(', ')');
const skipBrace = (s: string, i: number) => skipMatching(s, i, '{', '}');

// ---------------------------------------------------------------------------------------------
// Parser: lists of pipelines of simple commands, plus for/while/until/if/case/{ }/( ) compounds.

type Node =
  | { k: 'simple'; words: WordTok[]; redirs: { op: string; word: string }[]; line: number }
  | { k: 'pipeline'; cmds: Node[] }
  | { k: 'list'; items: Node[] }
  | { k: 'for'; variable: string; words: string[] | null; body: Node; line: number }
  | { k: 'while'; cond: Node; body: Node; readVars: string[] }
  | { k: 'if'; parts: Node[] }
  | { k: 'func'; name: string; body: Node };

class Parser {
  private p = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok | undefined {
    return this.toks[this.p];
  }
  private isWord(v?: string): boolean {
    const t = this.peek();
    return !!t && t.t === 'word' && (v === undefined || t.raw === v);
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return !!t && t.t === 'op' && t.v === v;
  }
  private skipNewlines(): void {
    while (this.isOp('\n') || this.isOp(';')) this.p++;
  }

  /** A list up to one of the `stop` reserved words (not consumed) or end of input. */
  list(stop: string[] = []): Node {
    const items: Node[] = [];
    for (;;) {
      this.skipNewlines();
      const t = this.peek();
      if (!t) break;
      if (t.t === 'word' && stop.includes(t.raw)) break;
      if (t.t === 'op' && (t.v === ')' || t.v === ';;')) break;
      const before = this.p;
      items.push(this.andOr());
      if (this.isOp('&')) this.p++;
      if (this.p === before) this.p++; // never loop on an unexpected token
    }
    return { k: 'list', items };
  }

  private andOr(): Node {
    const items = [this.pipeline()];
    while (this.isOp('&&') || this.isOp('||')) {
      this.p++;
      while (this.isOp('\n')) this.p++;
      items.push(this.pipeline());
    }
    return items.length === 1 ? items[0] : { k: 'list', items };
  }

  private pipeline(): Node {
    if (this.isWord('!')) this.p++;
    const cmds = [this.command()];
    while (this.isOp('|')) {
      this.p++;
      while (this.isOp('\n')) this.p++;
      cmds.push(this.command());
    }
    return cmds.length === 1 ? cmds[0] : { k: 'pipeline', cmds };
  }

  private expectWord(v: string): void {
    this.skipNewlines();
    if (this.isWord(v)) this.p++;
  }

  private command(): Node {
    const t = this.peek();
    if (t?.t === 'word') {
      switch (t.raw) {
        case 'for': {
          this.p++;
          const variable = (this.peek() as { raw?: string })?.raw ?? '';
          this.p++;
          let words: string[] | null = null;
          while (this.isOp('\n')) this.p++;
          if (this.isWord('in')) {
            this.p++;
            words = [];
            while (this.peek()?.t === 'word') words.push((this.toks[this.p++] as { raw: string }).raw);
          }
          this.expectWord('do');
          const body = this.list(['done']);
          this.expectWord('done');
          return { k: 'for', variable, words: words ?? ['"$@"'], body, line: t.line };
        }
        case 'while':
        case 'until': {
          this.p++;
          const cond = this.list(['do']);
          this.expectWord('do');
          const body = this.list(['done']);
          this.expectWord('done');
          return { k: 'while', cond, body, readVars: [] };
        }
        case 'if': {
          this.p++;
          const parts: Node[] = [this.list(['then'])];
          this.expectWord('then');
          parts.push(this.list(['elif', 'else', 'fi']));
          while (this.isWord('elif')) {
            this.p++;
            parts.push(this.list(['then']));
            this.expectWord('then');
            parts.push(this.list(['elif', 'else', 'fi']));
          }
          if (this.isWord('else')) {
            this.p++;
            parts.push(this.list(['fi']));
          }
          this.expectWord('fi');
          return { k: 'if', parts };
        }
        case 'case': {
          // case WORD in pattern) list ;; … esac: every branch may run.
          this.p++;
          this.p++;
          this.expectWord('in');
          const parts: Node[] = [];
          for (;;) {
            this.skipNewlines();
            if (!this.peek() || this.isWord('esac')) break;
            while (this.peek() && !this.isOp(')')) this.p++;
            this.p++;
            parts.push(this.list(['esac']));
            if (this.isOp(';;')) this.p++;
          }
          this.expectWord('esac');
          return { k: 'if', parts };
        }
        case '{': {
          this.p++;
          const body = this.list(['}']);
          this.expectWord('}');
          return body;
        }
      }
      // name() { …; }: a function body; it runs where it is called (approximated: where defined).
      const next = this.toks[this.p + 1];
      const after = this.toks[this.p + 2];
      if (/^[A-Za-z_][\w-]*$/.test(t.raw) && next?.t === 'op' && next.v === '(' && after?.t === 'op' && after.v === ')') {
        this.p += 3;
        while (this.isOp('\n')) this.p++;
        return { k: 'func', name: t.raw, body: this.command() };
      }
    }
    if (this.isOp('(')) {
      this.p++;
      const body = this.list();
      if (this.isOp(')')) this.p++;
      return body;
    }
    const words: WordTok[] = [];
    const redirs: { op: string; word: string }[] = [];
    const line = t?.line ?? 1;
    for (;;) {
      const x = this.peek();
      if (!x) break;
      if (x.t === 'word') {
        // `2>&1`, `2>/dev/null`: a word of digits glued to a redirection is its fd, not an argument.
        const n = this.toks[this.p + 1];
        if (/^\d+$/.test(x.raw) && n?.t === 'op' && ['>', '>>', '<', '>&', '<&'].includes(n.v)) {
          this.p++;
          continue;
        }
        words.push(x);
        this.p++;
        continue;
      }
      if (['>', '>>', '<', '>&', '<&', '>|', '&>', '<<'].includes(x.v)) {
        this.p++;
        const target = this.peek();
        if (target?.t === 'word') {
          redirs.push({ op: x.v, word: target.raw });
          this.p++;
        }
        continue;
      }
      break;
    }
    return { k: 'simple', words, redirs, line };
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation: walk the tree in order with a variable environment, expanding words.

type Env = Map<string, string>;

/** What `$(…)` and backticks expand to: the command's output is not known statically. */
export const SUBSTITUTED = '$(…)';

interface Frame {
  env: Env;
  loops: LoopBinding[];
  substituted: boolean;
  /** Inside `$(…)`: every command reports the line of the word that holds the substitution. */
  fixedLine?: number;
}

function unquote(s: string): string {
  return s.replace(/^'(.*)'$/s, '$1').replace(/^"(.*)"$/s, '$1');
}

class Evaluator {
  readonly out: ShellCommand[] = [];
  /** Script line of the word being expanded: commands inside `$(…)` report it. */
  private atLine: number | undefined;
  constructor(private readonly lines: string[]) {}

  lineText(line: number): string {
    return (this.lines[line - 1] ?? '').trim();
  }

  /** Expand one raw word into fields (unquoted expansions split on whitespace). */
  expand(raw: string, f: Frame): string[] {
    const fields: string[] = [''];
    let quoted = false;
    const push = (s: string, split: boolean) => {
      if (!split) {
        fields[fields.length - 1] += s;
        return;
      }
      const parts = s.split(/[ \t\n]+/);
      parts.forEach((p, i) => {
        if (i > 0) fields.push('');
        fields[fields.length - 1] += p;
      });
    };
    let i = 0;
    let sawQuote = false;
    while (i < raw.length) {
      const c = raw[i];
      if (c === '\\' && !quoted) {
        push(raw[i + 1] ?? '', false);
        i += 2;
      } else if (c === '\\' && quoted) {
        push('$`"\\\n'.includes(raw[i + 1]) ? raw[i + 1] : c + (raw[i + 1] ?? ''), false);
        i += 2;
      } else if (c === "'" && !quoted) {
        const end = skipSingle(raw, i);
        push(raw.slice(i + 1, end - 1), false);
        sawQuote = true;
        i = end;
      } else if (c === '"') {
        quoted = !quoted;
        sawQuote = true;
        i++;
      } else if (c === '$' && raw[i + 1] === '(' && raw[i + 2] === '(') {
        const end = skipParen(raw, i + 1);
        push(raw.slice(i, end), false);
        i = end;
      } else if (c === '$' && raw[i + 1] === '(') {
        // The output of a command is unknown here: a placeholder without blanks keeps the
        // known parts of the word (`/backup/jetstream/$(…)`) together.
        const end = skipParen(raw, i + 1);
        this.substitution(raw.slice(i + 2, end - 1), f);
        push(SUBSTITUTED, false);
        i = end;
      } else if (c === '`') {
        const end = skipBacktick(raw, i);
        this.substitution(raw.slice(i + 1, end - 1), f);
        push(SUBSTITUTED, false);
        i = end;
      } else if (c === '$' && raw[i + 1] === '{') {
        const end = skipBrace(raw, i + 1);
        const inner = raw.slice(i + 2, end - 1);
        const m = /^([A-Za-z_]\w*)(?::?([-=+?])(.*))?$/s.exec(inner);
        let v: string | undefined;
        if (m) {
          const cur = f.env.get(m[1]);
          if (m[2] === '-' || m[2] === '=') v = cur !== undefined && cur !== '' ? cur : this.expand(m[3] ?? '', f).join(' ');
          else if (m[2] === '+') v = cur ? this.expand(m[3] ?? '', f).join(' ') : '';
          else v = cur;
        }
        push(v ?? raw.slice(i, end), !quoted && v !== undefined);
        i = end;
      } else if (c === '$' && /[A-Za-z_]/.test(raw[i + 1] ?? '')) {
        const m = /^[A-Za-z_]\w*/.exec(raw.slice(i + 1))!;
        const v = f.env.get(m[0]);
        push(v ?? `$${m[0]}`, !quoted && v !== undefined);
        i += 1 + m[0].length;
      } else {
        push(c, false);
        i++;
      }
    }
    const out = fields.filter((x, idx) => x !== '' || (sawQuote && idx === 0));
    return out;
  }

  private substitution(inner: string, f: Frame): ShellCommand[] {
    const before = this.out.length;
    this.run(parseList(inner), { ...f, env: new Map(f.env), substituted: true, fixedLine: this.atLine });
    return this.out.slice(before);
  }

  run(node: Node, f: Frame): void {
    switch (node.k) {
      case 'list':
        for (const n of node.items) this.run(n, f);
        return;
      case 'func':
        this.run(node.body, f);
        return;
      case 'if':
        for (const p of node.parts) this.run(p, f);
        return;
      case 'pipeline': {
        const members: ShellCommand[] = [];
        for (const c of node.cmds) {
          if (c.k === 'while') {
            // `… | while read M; do …; done`: M takes the values the earlier pipeline members print.
            const vars = readVariables(c.cond);
            const binding: LoopBinding[] = vars.map((v) => ({ variable: v, values: null, source: [...members], sourceText: members.map((m) => m.argv.join(' ')).join(' | ') }));
            const env = new Map(f.env);
            for (const v of vars) env.delete(v);
            this.run(c.body, { ...f, env, loops: [...f.loops, ...binding] });
            continue;
          }
          const start = this.out.length;
          this.run(c, f);
          const own = this.out.slice(start).find((x) => !x.substituted || f.substituted);
          if (own) members.push(own);
        }
        for (const m of members) m.pipeline = members;
        return;
      }
      case 'while': {
        this.run(node.cond, f);
        this.run(node.body, f);
        return;
      }
      case 'for': {
        this.atLine = f.fixedLine ?? node.line;
        const start = this.out.length;
        const words = (node.words ?? []).flatMap((w) => this.expand(w, f));
        const produced = this.out.slice(start);
        const literal = words.every((x) => !x.includes('$') && !x.includes('`'));
        const binding: LoopBinding = literal
          ? { variable: node.variable, values: words, source: [], sourceText: words.join(' ') }
          : { variable: node.variable, values: null, source: produced, sourceText: (node.words ?? []).join(' ') };
        if (binding.values && binding.values.length && binding.values.length <= 64) {
          // Unroll literal loops so each value shows up as its own command (hosts, streams).
          for (const v of binding.values) {
            const env = new Map(f.env);
            env.set(node.variable, v);
            this.run(node.body, { ...f, env, loops: [...f.loops, binding] });
          }
        } else {
          const env = new Map(f.env);
          env.delete(node.variable);
          this.run(node.body, { ...f, env, loops: [...f.loops, binding] });
        }
        return;
      }
      case 'simple': {
        const line = f.fixedLine ?? node.line;
        this.atLine = line;
        let words = node.words.map((w) => w.raw);
        // Leading NAME=value words are assignments: alone they set shell variables, before a
        // command they only set its environment (kept here too: the command reads them).
        const assigns: [string, string][] = [];
        while (words.length && /^[A-Za-z_]\w*=/.test(words[0])) {
          const [name, ...rest] = words[0].split('=');
          assigns.push([name, this.expand(rest.join('='), f).join(' ')]);
          words = words.slice(1);
        }
        if (!words.length) {
          for (const [k, v] of assigns) f.env.set(k, v);
          return;
        }
        if (words[0] === 'export' || words[0] === 'readonly' || words[0] === 'local') {
          for (const w of words.slice(1)) {
            const m = /^([A-Za-z_]\w*)=(.*)$/s.exec(w);
            if (m) f.env.set(m[1], this.expand(m[2], f).join(' '));
          }
          return;
        }
        const argv = words.flatMap((w) => this.expand(w, f));
        const env = assigns.length ? new Map([...f.env, ...assigns]) : f.env;
        const redirects = node.redirs.map((r) => ({ op: r.op, target: this.expand(r.word, { ...f, env }).join(' ') }));
        const cmd: ShellCommand = { argv, line, lineText: this.lineText(line), loops: f.loops, pipeline: [], redirects, substituted: f.substituted };
        cmd.pipeline = [cmd];
        this.out.push(cmd);
        // `read VAR` outside a while loop, `VAR=$(…)`-style captures are handled by assignments.
        return;
      }
    }
  }
}

function readVariables(cond: Node): string[] {
  const vars: string[] = [];
  const visit = (n: Node) => {
    if (n.k === 'simple' && n.words[0]?.raw === 'read') for (const w of n.words.slice(1)) if (/^[A-Za-z_]\w*$/.test(w.raw)) vars.push(w.raw);
    if (n.k === 'list') n.items.forEach(visit);
    if (n.k === 'pipeline') n.cmds.forEach(visit);
  };
  visit(cond);
  return vars;
}

function parseList(src: string): Node {
  return new Parser(lex(src)).list();
}

/** Parse and evaluate a script; `env` seeds known variables (the container's env values). */
export function parseScript(text: string, env: Record<string, string> = {}): ParsedScript {
  const ev = new Evaluator(text.split('\n'));
  ev.run(parseList(text), { env: new Map(Object.entries(env)), loops: [], substituted: false });
  return { text, commands: ev.out };
}

/** sh/bash/ash/dash/zsh (by base name). */
function isShell(bin: string | undefined): boolean {
  return !!bin && /^(ba|a|da|z|k)?sh$/.test(bin.split('/').pop() ?? '');
}

/**
 * The script a container runs: `sh -c <script>` (flags like `-ec`/`-euxc` too), or a plain exec of
 * `command` + `args` (one command). Returns null when nothing is declared (the image entrypoint runs).
 */
export function containerScript(command: string[] | undefined, args: string[] | undefined): { script: string; inline: boolean; quoted: string } | null {
  const argv = [...(command ?? []), ...(args ?? [])];
  if (!argv.length) return null;
  if (isShell(argv[0])) {
    for (let i = 1; i < argv.length; i++) {
      const a = argv[i];
      if (/^-[a-zA-Z]*c[a-zA-Z]*$/.test(a) || a === '-c') return { script: argv[i + 1] ?? '', inline: true, quoted: argv[i + 1] ?? '' };
      if (!a.startsWith('-')) return { script: argv.slice(i).map(shellQuote).join(' '), inline: false, quoted: argv.join(' ') }; // sh /path/script.sh
    }
  }
  return { script: argv.map(shellQuote).join(' '), inline: false, quoted: argv.join(' ') };
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Command-line flags of a tool, against the tool's own list.

export interface FlagSpec {
  /** Flags that take a value (`--cacert FILE` or `--cacert=FILE`). */
  withValue: string[];
  /** Boolean flags. */
  boolean: string[];
  /** Flag prefixes that accept `--no-<name>` (kingpin booleans). */
  negatable?: boolean;
  /** An unknown flag followed by a plain word takes it as its value (`--tls-ca FILE`). */
  unknownTakesValue?: boolean;
}

export interface ParsedFlags {
  flags: Map<string, string | true>;
  positionals: string[];
  unknown: string[];
}

/** Split argv (after the program name) into known flags, positionals and flags the tool lacks. */
export function parseFlags(args: string[], spec: FlagSpec, stopAtFirstPositional = false): ParsedFlags {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  const unknown: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a) || a.startsWith('$')) {
      positionals.push(a);
      if (stopAtFirstPositional) {
        positionals.push(...args.slice(i + 1));
        break;
      }
      continue;
    }
    const [name, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (spec.withValue.includes(name)) {
      flags.set(name, inline ?? args[++i] ?? '');
    } else if (spec.boolean.includes(name)) {
      flags.set(name, inline ?? true);
    } else if (spec.negatable && name.startsWith('--no-') && spec.boolean.includes(`--${name.slice(5)}`)) {
      flags.set(`--${name.slice(5)}`, 'false');
    } else {
      unknown.push(name);
      if (spec.unknownTakesValue && inline === undefined && args[i + 1] !== undefined && !args[i + 1].startsWith('-')) i++;
    }
  }
  return { flags, positionals, unknown };
}
