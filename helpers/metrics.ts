// Prometheus text exposition and OpenMetrics parsing, enough for runbooks to ask "is this family
// exported?" and "did this counter move?". Fetching is done elsewhere (GatewayClient.scrapeMetrics);
// this module only reads the text, so it works for any endpoint (gateway, scheduler, a collector or
// proxy that answers in OpenMetrics, anything Prometheus-shaped).

export interface Exemplar {
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch (OpenMetrics writes seconds; converted). */
  timestampMs?: number;
}

export interface Sample {
  /** Full sample name, e.g. `foo_total`, `foo_bucket`, `foo_sum`. */
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carries a timestamp (OpenMetrics seconds converted). */
  timestampMs?: number;
  /** OpenMetrics exemplar (`… # {trace_id="…"} 1.0 [ts]`): a pointer to one observation, never a label. */
  exemplar?: Exemplar;
}

export interface MetricsPage {
  samples: Sample[];
  /** Family name -> TYPE from `# TYPE` lines (counter, gauge, histogram, summary, untyped, and OpenMetrics' others). */
  types: Map<string, string>;
  /** Family name -> HELP text, unescaped. */
  help: Map<string, string>;
  /** `openmetrics` when the page ends with `# EOF` (its timestamps are seconds), else `prometheus` (milliseconds). */
  format: 'prometheus' | 'openmetrics';
}

const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', '_info', '_gcount', '_gsum'];

/**
 * Parse a Prometheus (text 0.0.4) or OpenMetrics 1.0 page: label values and HELP with escapes,
 * quoted (UTF-8) metric and label names, optional timestamps, exemplars, NaN and ±Inf, `# EOF`.
 * A malformed line is ignored and counted in `skipped` (a runbook asks about families and counters;
 * one bad line must not hide the rest of the page), as is anything after `# EOF`.
 *
 * Hand-written rather than a dependency: npm has no maintained parser of this format that handles
 * exemplars (the field's reference parsers are Go's and Python's), and the grammar is small.
 */
export function parseMetrics(text: string): MetricsPage & { skipped: number } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  let skipped = 0;
  let eof = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    if (eof) {
      skipped++;
      continue;
    }
    if (line.trimStart().startsWith('#')) {
      const c = parseComment(line.trimStart());
      if (c === 'eof') eof = true;
      else if (c === 'malformed') skipped++;
      else if (c?.kind === 'TYPE') types.set(c.name, c.text);
      else if (c?.kind === 'HELP') help.set(c.name, c.text);
      continue;
    }
    const sample = parseSampleLine(line);
    if (sample) samples.push(sample);
    else skipped++;
  }
  const format = eof ? 'openmetrics' : 'prometheus';
  if (format === 'openmetrics') {
    for (const s of samples) if (s.timestampMs !== undefined) s.timestampMs *= 1000;
  }
  return { samples, types, help, format, skipped };
}

// ---------------------------------------------------------------------------------------------
// The grammar, on one line at a time.

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

class Malformed extends Error {}

/** A cursor over one line. Every read either advances or throws Malformed. */
class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  /** Skips spaces and tabs; returns how many. */
  blanks(): number {
    const from = this.pos;
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
    return this.pos - from;
  }
  expect(ch: string): void {
    if (this.peek() !== ch) throw new Malformed();
    this.pos++;
  }
  /** An unquoted name: first character from `start`, the rest from `rest`. */
  name(start: RegExp, rest: RegExp): string {
    const from = this.pos;
    if (!start.test(this.peek())) throw new Malformed();
    while (!this.done && rest.test(this.peek())) this.pos++;
    return this.s.slice(from, this.pos);
  }
  /** A double-quoted string with \\, \" and \n escapes (any other escape is malformed). */
  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      if (this.done) throw new Malformed();
      const ch = this.s[this.pos++]!;
      if (ch === '"') return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.s[this.pos++];
      if (esc === '\\' || esc === '"') out += esc;
      else if (esc === 'n') out += '\n';
      else throw new Malformed();
    }
  }
  /** Characters up to the next blank (or the end). */
  token(): string {
    const from = this.pos;
    while (!this.done && this.peek() !== ' ' && this.peek() !== '\t') this.pos++;
    return this.s.slice(from, this.pos);
  }
}

function parseFloatToken(t: string): number {
  if (FLOAT.test(t)) return Number(t);
  if (/^[+-]?inf(inity)?$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(t)) return NaN;
  throw new Malformed();
}

function parseTimestamp(t: string): number {
  // Prometheus text writes integer milliseconds, OpenMetrics (fractional) seconds; never NaN/Inf.
  if (!FLOAT.test(t)) throw new Malformed();
  return Number(t);
}

/**
 * `{a="x",b="y"}`, trailing comma allowed, blanks around tokens. Label names may be quoted
 * (`{"my.label"="x"}`); a quoted string standing alone is the metric name (`{"my.metric",a="x"}`),
 * allowed only where the caller has no name yet.
 */
function parseLabelSet(c: Cursor, allowName: boolean): { labels: Record<string, string>; name?: string } {
  const labels: Record<string, string> = {};
  let name: string | undefined;
  c.expect('{');
  c.blanks();
  while (c.peek() !== '}') {
    const key = c.peek() === '"' ? c.quoted() : c.name(LABEL_START, LABEL_CHAR);
    c.blanks();
    if (c.peek() === '=') {
      c.pos++;
      c.blanks();
      if (Object.hasOwn(labels, key)) throw new Malformed();
      labels[key] = c.quoted();
    } else {
      if (!allowName || name !== undefined || Object.keys(labels).length) throw new Malformed();
      name = key;
    }
    c.blanks();
    if (c.peek() === ',') {
      c.pos++;
      c.blanks();
    } else if (c.peek() !== '}') throw new Malformed();
  }
  c.pos++;
  return { labels, name };
}

/** `name{labels} value [timestamp] [# {labels} value [timestamp]]`, or undefined when malformed. */
function parseSampleLine(line: string): Sample | undefined {
  const c = new Cursor(line);
  try {
    c.blanks();
    let name = c.peek() === '{' ? undefined : c.name(NAME_START, NAME_CHAR);
    let labels: Record<string, string> = {};
    c.blanks();
    if (c.peek() === '{') {
      const set = parseLabelSet(c, name === undefined);
      labels = set.labels;
      name ??= set.name;
    }
    if (name === undefined) throw new Malformed();
    c.blanks();
    const sample: Sample = { name, labels, value: parseFloatToken(c.token()) };
    if (c.blanks() && !c.done && c.peek() !== '#') sample.timestampMs = parseTimestamp(c.token());
    c.blanks();
    if (c.peek() === '#') {
      c.pos++;
      c.blanks();
      const ex = parseLabelSet(c, false);
      c.blanks();
      const exemplar: Exemplar = { labels: ex.labels, value: parseFloatToken(c.token()) };
      if (c.blanks() && !c.done) exemplar.timestampMs = parseTimestamp(c.token()) * 1000;
      sample.exemplar = exemplar;
    }
    c.blanks();
    if (!c.done) throw new Malformed();
    return sample;
  } catch (err) {
    if (err instanceof Malformed) return undefined;
    throw err;
  }
}

/** HELP and TYPE lines (name possibly quoted), `# EOF`; any other comment is nothing. */
function parseComment(line: string): { kind: 'HELP' | 'TYPE'; name: string; text: string } | 'eof' | 'malformed' | undefined {
  if (line.trimEnd() === '# EOF') return 'eof';
  const m = /^#[ \t]+(HELP|TYPE)[ \t]+/.exec(line);
  if (!m) return undefined;
  const kind = m[1] as 'HELP' | 'TYPE';
  const c = new Cursor(line);
  c.pos = m[0].length;
  try {
    const name = c.peek() === '"' ? c.quoted() : c.name(NAME_START, NAME_CHAR);
    if (!c.done && !c.blanks()) throw new Malformed();
    const rest = line.slice(c.pos);
    if (kind === 'TYPE') {
      const type = rest.trim();
      if (!/^[a-z]+$/.test(type)) throw new Malformed();
      return { kind, name, text: type };
    }
    return { kind, name, text: unescapeHelp(rest) };
  } catch (err) {
    if (err instanceof Malformed) return 'malformed';
    throw err;
  }
}

/** HELP text: \\ and \n in both formats, \" in OpenMetrics; any other backslash stays as written. */
function unescapeHelp(s: string): string {
  return s.replace(/\\([\\n"])/g, (_all, c: string) => (c === 'n' ? '\n' : c));
}

/** The family a sample belongs to: its name, or the name without a histogram/summary/counter suffix. */
function familiesOf(sampleName: string): string[] {
  const names = [sampleName];
  for (const s of SUFFIXES) if (sampleName.endsWith(s)) names.push(sampleName.slice(0, -s.length));
  return names;
}

/**
 * Is the family exported? True when a `# TYPE` line names it or any sample belongs to it.
 * Note: Go's client_golang drops labelled families that have no series yet, so a family can be
 * legitimately absent until the first event it counts.
 */
export function hasFamily(page: MetricsPage, family: string): boolean {
  if (page.types.has(family)) return true;
  const bare = familiesOf(family);
  return page.samples.some((s) => familiesOf(s.name).some((f) => bare.includes(f)));
}

/** Which of `families` the page does not export. */
export function missingFamilies(page: MetricsPage, families: string[]): string[] {
  return families.filter((f) => !hasFamily(page, f));
}

/** Samples with exactly this name whose labels include every given label. */
export function findSamples(page: MetricsPage, name: string, labels: Record<string, string> = {}): Sample[] {
  return page.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the matching samples (0 when there are none: a counter that has not been touched yet). */
export function sumSamples(page: MetricsPage, name: string, labels: Record<string, string> = {}): number {
  return findSamples(page, name, labels).reduce((a, s) => a + s.value, 0);
}
