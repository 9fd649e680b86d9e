// Evidence for the report: Allure attachments on the current step, with every known secret
// replaced by *** first. Secrets are registered once (from the profile's env vars, API keys the
// gateway client sends) and redacted in all the encodings they tend to show up in.
import { attachment } from 'allure-js-commons';

export interface Exchange {
  method: string;
  url: string;
  requestHeaders: Record<string, string>;
  requestBody?: string;
  status: number;
  responseHeaders: Record<string, string>;
  responseBody: string;
  durationMs: number;
}

export const REDACTED = '***';

/** Shorter values would redact ordinary text (a key "a" would blank every letter a). */
const MIN_SECRET_LENGTH = 4;

const secrets = new Set<string>();
let patterns: string[] = [];

/** Remember a secret value so redact() hides it everywhere. Empty/short values are ignored. */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  const forms = new Set<string>([value]);
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  forms.add(b64);
  forms.add(b64.replace(/=+$/, ''));
  forms.add(Buffer.from(value, 'utf8').toString('base64url'));
  forms.add(encodeURIComponent(value));
  forms.add(encodeURIComponent(value).replace(/%20/g, '+')); // form encoding
  forms.add(JSON.stringify(value).slice(1, -1)); // as it appears inside a JSON string
  for (const f of forms) if (f.length >= MIN_SECRET_LENGTH) patterns.push(f);
  // Longest first so a value never leaves a tail of its longer encoded form behind.
  patterns = [...new Set(patterns)].sort((a, b) => b.length - a.length);
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  secrets.clear();
  patterns = [];
}

/** Replace every registered secret (raw, base64, base64url, URL-encoded, JSON-escaped) with ***. */
export function redact(text: string): string {
  let out = text;
  for (const p of patterns) {
    if (out.includes(p)) out = out.split(p).join(REDACTED);
  }
  return out;
}

/** Attach a JSON value (pretty-printed, redacted) to the current Allure step. */
export async function attachJson(name: string, value: unknown): Promise<void> {
  await attachment(name, redact(safeStringify(value)), 'application/json');
}

/** Attach plain text (redacted) to the current Allure step. */
export async function attachText(name: string, text: string): Promise<void> {
  await attachment(name, redact(text), 'text/plain');
}

const MAX_BODY_CHARS = 64 * 1024;

/** A readable, redacted rendering of one HTTP exchange (what was sent, what came back). */
export function transcript(ex: Exchange): string {
  const lines: string[] = [];
  lines.push(`> ${ex.method} ${ex.url}`);
  for (const [k, v] of Object.entries(ex.requestHeaders)) lines.push(`> ${k}: ${v}`);
  if (ex.requestBody !== undefined && ex.requestBody !== '') {
    lines.push('>');
    lines.push(...indentBody(ex.requestBody, '> '));
  }
  lines.push('');
  lines.push(`< ${ex.status} (${Math.round(ex.durationMs)} ms)`);
  for (const [k, v] of Object.entries(ex.responseHeaders)) lines.push(`< ${k}: ${v}`);
  if (ex.responseBody !== '') {
    lines.push('<');
    lines.push(...indentBody(ex.responseBody, '< '));
  }
  return redact(lines.join('\n'));
}

function indentBody(body: string, prefix: string): string[] {
  let text = body;
  try {
    // Cordum serves JSON with text/plain on some routes, so sniff instead of trusting headers.
    const parsed = JSON.parse(body);
    if (parsed !== null && typeof parsed === 'object') text = JSON.stringify(parsed, null, 2);
  } catch {
    /* not JSON: keep as is */
  }
  if (text.length > MAX_BODY_CHARS) text = `${text.slice(0, MAX_BODY_CHARS)}\n… (${text.length - MAX_BODY_CHARS} more characters cut)`;
  return text.split('\n').map((l) => prefix + l);
}

function safeStringify(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Uint8Array) return { base64: Buffer.from(v).toString('base64') };
      if (v instanceof Error) return { name: v.name, message: v.message };
      if (v && typeof v === 'object') {
        if (seen.has(v)) return '[circular]';
        seen.add(v);
      }
      return v;
    },
    2,
  ) ?? 'null';
}
