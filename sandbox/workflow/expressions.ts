// A small expression language for step `condition`s and `${...}` input templates.
// Scope: `input.*` (run input), `steps.<id>.output|status`, `ctx.*` (run context).
// Grammar: || && ! == != < <= > >= ( ), paths a.b[0].c, numbers, 'strings', "strings",
// true/false/null. Anything else is an error, which the engine turns into a failed step.

export type Scope = Record<string, unknown>;

type Tok = { k: 'num' | 'str' | 'id' | 'op'; v: string };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['==', '!=', '<=', '>=', '&&', '||'].includes(two)) {
      out.push({ k: 'op', v: two });
      i += 2;
      continue;
    }
    if ('<>!()[].'.includes(c)) {
      out.push({ k: 'op', v: c });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unterminated string in ${JSON.stringify(src)}`);
      out.push({ k: 'str', v: src.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(src.slice(i));
    if (num) {
      out.push({ k: 'num', v: num[0] });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (id) {
      out.push({ k: 'id', v: id[0] });
      i += id[0].length;
      continue;
    }
    throw new Error(`unexpected character ${JSON.stringify(c)} in ${JSON.stringify(src)}`);
  }
  return out;
}

class Parser {
  private pos = 0;
  constructor(
    private readonly toks: Tok[],
    private readonly scope: Scope,
  ) {}

  parse(): unknown {
    const v = this.or();
    if (this.pos < this.toks.length) throw new Error(`unexpected token ${JSON.stringify(this.toks[this.pos].v)}`);
    return v;
  }

  private peek(v: string): boolean {
    const t = this.toks[this.pos];
    return t !== undefined && t.k === 'op' && t.v === v;
  }

  private eat(v: string): void {
    if (!this.peek(v)) throw new Error(`expected ${JSON.stringify(v)}`);
    this.pos++;
  }

  private or(): unknown {
    let l = this.and();
    while (this.peek('||')) {
      this.pos++;
      const r = this.and();
      l = truthy(l) || truthy(r);
    }
    return l;
  }

  private and(): unknown {
    let l = this.cmp();
    while (this.peek('&&')) {
      this.pos++;
      const r = this.cmp();
      l = truthy(l) && truthy(r);
    }
    return l;
  }

  private cmp(): unknown {
    const l = this.unary();
    for (const op of ['==', '!=', '<=', '>=', '<', '>']) {
      if (this.peek(op)) {
        this.pos++;
        const r = this.unary();
        return compare(op, l, r);
      }
    }
    return l;
  }

  private unary(): unknown {
    if (this.peek('!')) {
      this.pos++;
      return !truthy(this.unary());
    }
    return this.primary();
  }

  private primary(): unknown {
    const t = this.toks[this.pos++];
    if (!t) throw new Error('unexpected end of expression');
    if (t.k === 'num') return Number(t.v);
    if (t.k === 'str') return t.v;
    if (t.k === 'op' && t.v === '(') {
      const v = this.or();
      this.eat(')');
      return v;
    }
    if (t.k === 'id') {
      if (t.v === 'true') return true;
      if (t.v === 'false') return false;
      if (t.v === 'null' || t.v === 'nil') return null;
      let v: unknown = this.scope[t.v];
      for (;;) {
        if (this.peek('.')) {
          this.pos++;
          const name = this.toks[this.pos++];
          if (!name || (name.k !== 'id' && name.k !== 'num')) throw new Error('expected a field name after "."');
          v = field(v, name.v);
        } else if (this.peek('[')) {
          this.pos++;
          const idx = this.or();
          this.eat(']');
          v = field(v, String(idx));
        } else return v;
      }
    }
    throw new Error(`unexpected token ${JSON.stringify(t.v)}`);
  }
}

function field(v: unknown, name: string): unknown {
  if (v === null || typeof v !== 'object') return undefined;
  return (v as Record<string, unknown>)[name];
}

function compare(op: string, l: unknown, r: unknown): boolean {
  const norm = (x: unknown) => (x === undefined ? null : x);
  const a = norm(l);
  const b = norm(r);
  switch (op) {
    case '==':
      return looseEqual(a, b);
    case '!=':
      return !looseEqual(a, b);
  }
  const x = typeof a === 'string' && typeof b === 'string' ? a : Number(a);
  const y = typeof a === 'string' && typeof b === 'string' ? b : Number(b);
  if (op === '<') return x < y;
  if (op === '<=') return x <= y;
  if (op === '>') return x > y;
  return x >= y;
}

function looseEqual(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'string') return String(a) === b;
  if (typeof a === 'string' && typeof b === 'number') return a === String(b);
  if (typeof a === 'object' || typeof b === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return a === b;
}

export function truthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (typeof v === 'string' && v.toLowerCase() === 'false') return false;
  return true;
}

/** Evaluates an expression; an optional `${...}` wrapper is accepted. */
export function evaluate(expr: string, scope: Scope): unknown {
  const inner = /^\s*\$\{([\s\S]*)\}\s*$/.exec(expr)?.[1] ?? expr;
  return new Parser(tokenize(inner), scope).parse();
}

export function evaluateCondition(expr: string, scope: Scope): boolean {
  return truthy(evaluate(expr, scope));
}

/**
 * Renders `${...}` templates inside a JSON value. A string that is exactly one template keeps the
 * value's type; templates inside longer strings are stringified.
 */
export function renderTemplate(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{([^}]*)\}$/.exec(value);
    if (whole) return evaluate(whole[1], scope) ?? null;
    return value.replace(/\$\{([^}]*)\}/g, (_m, e: string) => {
      const v = evaluate(e, scope);
      if (v === undefined || v === null) return '';
      return typeof v === 'object' ? JSON.stringify(v) : String(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => renderTemplate(v, scope));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderTemplate(v, scope)]));
  }
  return value;
}
