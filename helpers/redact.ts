// Redaction of registered secrets in every encoding a server or a library is likely to put them in.
// Cordum is written in Go and sits behind proxies, so an API key can come back from a target (or be
// written by us) raw, JSON-escaped (Go also escapes < > & as \u003c \u003e \u0026), percent-encoded in
// either case, as HTML/XML entities (junit.xml, the Allure HTML), as hex, or as base64/base64url of
// any larger value that contains it (a JSON blob, `user:key` Basic auth). No dependencies, so that
// any module (profile loading, the CLI's stdout and stderr) can use it without loading Allure.
//
// How: per secret, one regular expression in which every character may appear in any of its
// character-wise encodings (so mixed forms such as Go's `a\u0026b` or a partly percent-encoded URL
// match too) and one for its hex. For base64, the secret's "cores" are precomputed: whatever bytes
// surround a value, its base64 always contains one of three fixed substrings (one per alignment of
// the value in a 3-byte group), so base64 of ANY window containing the secret (or its JSON-escaped,
// Go-escaped, percent-encoded or HTML-escaped form, or its base64) contains one of them. A base64
// run holding a core is decoded, redacted recursively and re-encoded from the redacted text, so an
// embedded document (the Allure HTML embeds its data as base64) stays usable. Searching for cores
// instead of decoding every run keeps a 4 MB report at tens of milliseconds.

export const REDACTED = '***';

/**
 * Shorter values cannot be redacted safely: a key "abc" would blank ordinary text and its encodings
 * collide with random data. Profiles referencing a shorter secret are refused (helpers/target.ts).
 */
export const MIN_SECRET_LENGTH = 8;

/** base64 inside base64 (e.g. a Basic auth header inside a base64 JSON blob) is still found. */
const MAX_BASE64_DEPTH = 2;

interface CompiledSecret {
  value: string;
  /**
   * What every form of the secret but the raw one starts with. Text without it can hold the secret
   * only as it is, which a plain search finds: `chars` is large (some 5 KB of pattern per secret)
   * and V8 compiles it on first use in every thread, 20-50 ms each time, for texts that mostly
   * never need it.
   */
  escapes: RegExp;
  /** The value with every character in any of its character-wise encodings. */
  chars: RegExp;
  /** The UTF-8 bytes as hex, either case, optionally separated by ' ' or ':' (hexdump styles). */
  hex: RegExp;
  /** Substrings one of which every base64/base64url encoding of a window holding the secret contains. */
  cores: RegExp;
}

const secrets = new Map<string, CompiledSecret>();
let generation = 0;

/** Remember a secret value so redact() hides it everywhere. Empty or too short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.set(value, compile(value));
  generation++;
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  secrets.clear();
  generation++;
}

/**
 * Changes whenever the set of registered secrets does: a text redact() left unchanged stays so
 * while this is the same (redact depends on the text and that set only).
 */
export function secretsGeneration(): number {
  return generation;
}

/** True when at least one secret is registered (callers can skip work otherwise). */
export function hasSecrets(): boolean {
  return secrets.size > 0;
}

/** Replace every registered secret, in any encoding listed above, with ***. */
export function redact(text: string): string {
  if (secrets.size === 0 || !text) return text;
  return redactAt(text, 0);
}

function redactAt(text: string, depth: number): string {
  let out = text;
  for (const s of secrets.values()) {
    out = s.escapes.test(out) ? replaceKeepingEscapes(out, s.chars) : replaceKeepingEscapes(out, s.value);
    out = replaceKeepingEscapes(out, s.hex);
  }
  return depth < MAX_BASE64_DEPTH ? redactBase64Runs(out, depth) : out;
}

/**
 * Replace matches with ***. A match preceded by an odd number of backslashes would leave a dangling
 * escape (`\***` is invalid JSON), so that backslash goes too: redacted JSON files stay parseable.
 */
function replaceKeepingEscapes(text: string, re: RegExp | string): string {
  const next = typeof re === 'string' ? literalMatches(text, re) : regexMatches(text, re);
  let m: { index: number; length: number } | undefined;
  let out = '';
  let last = 0;
  while ((m = next())) {
    let start = m.index;
    let backslashes = 0;
    while (start - backslashes - 1 >= last && text[start - backslashes - 1] === '\\') backslashes++;
    if (backslashes % 2 === 1) start--;
    out += text.slice(last, start) + REDACTED;
    last = m.index + m.length;
  }
  return last === 0 ? text : out + text.slice(last);
}

function regexMatches(text: string, re: RegExp): () => { index: number; length: number } | undefined {
  re.lastIndex = 0;
  return () => {
    let m: RegExpExecArray | null;
    while ((m = re.exec(text))) {
      if (m[0].length > 0) return { index: m.index, length: m[0].length };
      re.lastIndex++;
    }
    return undefined;
  };
}

function literalMatches(text: string, value: string): () => { index: number; length: number } | undefined {
  let from = 0;
  return () => {
    const index = text.indexOf(value, from);
    if (index < 0) return undefined;
    from = index + value.length;
    return { index, length: value.length };
  };
}

// ---------------------------------------------------------------------------------------------
// base64 / base64url runs, also when percent-encoded (%2B %2F %3D) or JSON-escaped (\/)

const BASE64_RUN = /(?:[A-Za-z0-9+/_-]|%2[BbFf]|\\\/)+(?:=|%3[Dd]){0,2}/g;

function redactBase64Runs(text: string, depth: number): string {
  const holding = [...secrets.values()].filter((s) => s.cores.test(text));
  if (holding.length === 0) return text;
  return text.replace(BASE64_RUN, (run) => (holding.some((s) => s.cores.test(run)) ? redactRun(run, depth) : run));
}

function redactRun(run: string, depth: number): string {
  const norm = run.replace(/%2[Bb]/g, '+').replace(/%2[Ff]/g, '/').replace(/%3[Dd]/g, '=').replace(/\\\//g, '/');
  // The encoded value may start anywhere in the run (glued to other letters): try every alignment.
  for (let k = 0; k < 4 && k < norm.length; k++) {
    const body = norm.slice(k);
    const bytes = Buffer.from(body, 'base64'); // also accepts the URL-safe alphabet
    const decoded = bytes.toString('utf8');
    const clean = redactAt(decoded, depth + 1);
    if (clean === decoded) continue;
    // The encoding of the secret alone reads better as *** than as base64("***").
    if (clean.trim() === REDACTED) return norm.slice(0, k) + REDACTED;
    // Binary content cannot be re-encoded from its redacted text without corrupting it.
    if (!Buffer.from(decoded, 'utf8').equals(bytes)) return REDACTED;
    const urlSafe = /[-_]/.test(body) && !/[+/]/.test(body);
    let encoded = Buffer.from(clean, 'utf8').toString('base64');
    if (urlSafe) encoded = encoded.replace(/\+/g, '-').replace(/\//g, '_');
    if (!body.endsWith('=')) encoded = encoded.replace(/=+$/, '');
    return norm.slice(0, k) + encoded;
  }
  // A core matched but no alignment decodes to a secret (a coincidence, or an encoding nested
  // deeper than MAX_BASE64_DEPTH): the run is dropped rather than risked.
  return REDACTED;
}

// ---------------------------------------------------------------------------------------------
// Compiling one secret

function compile(value: string): CompiledSecret {
  const chars = [...value].map(charForms).join('');
  const hex = [...Buffer.from(value, 'utf8')].map((b) => b.toString(16).padStart(2, '0')).join('[ :]?');
  return { value, escapes: escapeStarts(value), chars: new RegExp(chars, 'g'), hex: new RegExp(hex, 'gi'), cores: coresRegex(value) };
}

/**
 * The starts of the forms charForms allows besides the raw character, for this secret's characters
 * only: \\u and \\x with the code of one of them (any backslash when the secret holds a character
 * with an escape of its own: quotes, slash, backslash, control characters), % with one of its
 * bytes, a character reference or named entity of one of them, and + for a space.
 */
function escapeStarts(value: string): RegExp {
  const chars = [...new Set(value)];
  const bytes = [...new Set(Buffer.from(value, 'utf8'))];
  const units = [...new Set(Array.from({ length: value.length }, (_, i) => value.charCodeAt(i)))];
  const anyOf = (alts: string[]) => `(?:${alts.join('|')})`;
  const starts = [
    /["'/\\\n\r\t\b\f]/.test(value) ? '\\\\' : `\\\\(?:u${anyOf(units.map((u) => hexDigits(u, 4)))}|x${anyOf(bytes.map((b) => hexDigits(b, 2)))})`,
    `%(?:25)*${anyOf(bytes.map((b) => hexDigits(b, 2)))}`,
    `&(?:amp;)*${anyOf([
      ...chars.map((c) => `#0*${c.codePointAt(0)!};`),
      ...chars.map((c) => `#[xX]0*${hexDigits(c.codePointAt(0)!, 1)};`),
      ...chars.flatMap((c) => (NAMED_ENTITIES[c] ? [`${NAMED_ENTITIES[c]};`] : [])),
    ])}`,
  ];
  if (value.includes(' ')) starts.push('\\+');
  return new RegExp(starts.join('|'));
}

/** The textual forms a secret takes inside a document that then gets base64-encoded. */
function textForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const goJson = json.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  const uri = encodeURIComponent(value);
  // Go's url.QueryEscape: everything but letters, digits and -_.~ is escaped; space is +.
  const query = [...Buffer.from(value, 'utf8')]
    .map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : b === 0x20 ? '+' : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  const html = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  const lowerHex = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  return [value, json, goJson, uri, lowerHex(uri), query, lowerHex(query), html];
}

/**
 * The characters of base64(prefix + value + suffix) that do not depend on prefix or suffix, for each
 * of the three positions the value can take in a 3-byte group.
 */
function base64Cores(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const cores: string[] = [];
  for (let align = 0; align < 3; align++) {
    const encoded = Buffer.concat([Buffer.alloc(align), bytes]).toString('base64');
    let core = '';
    for (let i = 0; i < encoded.length; i++) {
      const first = Math.floor((6 * i) / 8);
      const last = Math.floor((6 * i + 5) / 8);
      if (first >= align && last < align + bytes.length) core += encoded[i];
    }
    cores.push(core);
  }
  return cores;
}

function coresRegex(value: string): RegExp {
  const forms = new Set(textForms(value));
  // base64 inside base64: the outer encoding holds one of the inner encoding's cores.
  for (const inner of base64Cores(value)) forms.add(inner);
  const cores = new Set<string>();
  for (const f of forms) for (const c of base64Cores(f)) if (c.length >= MIN_SECRET_LENGTH) cores.add(c);
  // One pattern for both alphabets, also percent-encoded or with JSON-escaped slashes.
  const source = [...cores]
    .map((c) => c.replace(/\+/g, '(?:\\+|-|%2[Bb])').replace(/\//g, '(?:\\/|_|%2[Ff]|\\\\\\/)'))
    .join('|');
  return new RegExp(source);
}

const SHORT_ESCAPES: Record<string, string> = { '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f' };
const NAMED_ENTITIES: Record<string, string> = { '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": '(?:apos|#0*39)' };

/** A regex source matching one character (code point) in any of its character-wise encodings. */
function charForms(ch: string): string {
  const cp = ch.codePointAt(0)!;
  const bytes = [...Buffer.from(ch, 'utf8')];
  const units = Array.from({ length: ch.length }, (_, i) => ch.charCodeAt(i));
  const alts: string[] = [];
  // Raw. Quotes, slash and backslash may sit behind JSON escaping, nested up to four times (an
  // error message quoting a JSON body, inside summary.json, inside the history). Exact counts, not
  // "any number": a greedy run of backslashes would also eat the escape of the character after
  // the secret and leave the JSON around it broken.
  if (ch === '\\') alts.push(backslashes([16, 8, 4, 2, 1]));
  else if (ch === '"' || ch === "'" || ch === '/') alts.push(`${backslashes([15, 7, 3, 1])}?${literal(ch)}`);
  else alts.push(literal(ch));
  if (SHORT_ESCAPES[ch]) alts.push(`${backslashes(ESCAPE_DEPTHS)}${SHORT_ESCAPES[ch]}`);
  if (ch === ' ') alts.push('\\+'); // form encoding
  // \uXXXX (JSON, JavaScript, Go's HTML-safe escaping), per UTF-16 unit, any case, maybe re-escaped.
  alts.push(units.map((u) => `${backslashes(ESCAPE_DEPTHS)}u${hexDigits(u, 4)}`).join(''));
  // \xHH per UTF-8 byte (C, Python, shell).
  alts.push(bytes.map((b) => `${backslashes(ESCAPE_DEPTHS)}x${hexDigits(b, 2)}`).join(''));
  // Percent-encoding per UTF-8 byte, either case, maybe double-encoded (%252F).
  alts.push(bytes.map((b) => `%(?:25)*${hexDigits(b, 2)}`).join(''));
  // HTML/XML character references, maybe double-escaped (&amp;lt;).
  alts.push(`&(?:amp;)*#0*${cp};`, `&(?:amp;)*#[xX]0*${hexDigits(cp, 1)};`);
  if (NAMED_ENTITIES[ch]) alts.push(`&(?:amp;)*${NAMED_ENTITIES[ch]};`);
  return `(?:${alts.join('|')})`;
}

/** The backslashes of an escape sequence written once, twice, three or four times as a JSON string. */
const ESCAPE_DEPTHS = [8, 4, 2, 1];

/** A regex source matching exactly one of these numbers of backslashes (the largest that fits first). */
function backslashes(counts: number[]): string {
  return `(?:${counts.map((n) => `\\\\{${n}}`).join('|')})`;
}

/** A regex source for a character taken literally (everything but letters and digits as \uXXXX). */
function literal(ch: string): string {
  if (/^[A-Za-z0-9]$/.test(ch)) return ch;
  return Array.from({ length: ch.length }, (_, i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
}

/** Hex digits of n (at least `width`), each letter matching either case. */
function hexDigits(n: number, width: number): string {
  return n
    .toString(16)
    .padStart(width, '0')
    .replace(/[a-f]/g, (d) => `[${d}${d.toUpperCase()}]`);
}

// ---------------------------------------------------------------------------------------------
// Streams: the CLI's stdout and stderr

const guarded = new WeakSet<NodeJS.WritableStream>();

/**
 * Redact everything written to a stream (the CLI's stdout and stderr, where progress, errors and
 * worker output end up) once a secret is registered. Idempotent.
 */
export function redactStream(stream: NodeJS.WritableStream): void {
  if (guarded.has(stream)) return;
  guarded.add(stream);
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const encoding = typeof rest[0] === 'string' ? rest[0] : undefined;
    if (secrets.size > 0 && (encoding === undefined || /^utf-?8$/i.test(encoding))) {
      if (typeof chunk === 'string') chunk = redact(chunk);
      else if (chunk instanceof Uint8Array) {
        const text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
        const clean = redact(text);
        if (clean !== text) chunk = Buffer.from(clean, 'utf8');
      }
    }
    return write(chunk, ...rest);
  }) as NodeJS.WritableStream['write'];
}
