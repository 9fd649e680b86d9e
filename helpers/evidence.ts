// Evidence for the report: Allure attachments on the current step, with every known secret
// replaced by *** first. Secrets are registered once (from the profile's env vars, API keys the
// gateway client sends) and redacted in every encoding they tend to show up in (helpers/redact.ts).
import { attachment } from 'allure-js-commons';
import { redact } from './redact.js';

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

// The redaction itself lives in helpers/redact.ts (no Allure import, so the CLI can use it early).
export { REDACTED, MIN_SECRET_LENGTH, clearSecrets, redact, registerSecret } from './redact.js';

/** Attach a JSON value (pretty-printed, redacted) to the current Allure step. */
export async function attachJson(name: string, value: unknown): Promise<void> {
  await attachment(name, jsonText(value), 'application/json');
}

/** A JSON value as the report shows it: pretty-printed and redacted. */
export function jsonText(value: unknown): string {
  return redact(safeStringify(value));
}

/** Attach plain text (redacted) to the current Allure step. */
export async function attachText(name: string, text: string): Promise<void> {
  await attachment(name, redact(text), 'text/plain');
}

/** Attach an SVG image (a chart; redacted like text) to the current Allure step. */
export async function attachSvg(name: string, svg: string): Promise<void> {
  await attachment(name, redact(svg), 'image/svg+xml');
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
