// Attach a bundle to a Jira issue through the REST attachment endpoint
// (POST {JIRA_BASE_URL}/rest/api/2/issue/{key}/attachments, multipart field `file`).
// Connection settings come from the environment only (never flags, so they stay out of shell
// history and CI logs), every call has a deadline, and errors are one line with the token removed.

import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { request } from 'undici';
import { ConfigError, PreconditionError, UnreachableError, UsageError } from '../errors.js';
import { readUserFileBytesAsync } from '../files.js';
import { redact, registerSecret } from '../redact.js';
import { MAX_BUNDLE_BYTES } from './verify-bundle.js';

export interface JiraEnv {
  JIRA_BASE_URL?: string;
  /** Personal access token (Data Center) or API token (Cloud, together with JIRA_USER). */
  JIRA_TOKEN?: string;
  /** When set, Basic auth JIRA_USER:JIRA_TOKEN (Jira Cloud); otherwise Bearer JIRA_TOKEN. */
  JIRA_USER?: string;
}

export interface JiraUploadOptions {
  issueKey: string;
  archive: string;
  env?: JiraEnv | NodeJS.ProcessEnv;
  /** Whole-request deadline. Default 60 s: bundles are a few MB. */
  timeoutMs?: number;
}

export interface JiraAttachment {
  id: string;
  filename: string;
  size?: number;
}

const ISSUE_KEY = /^(?:[A-Za-z][A-Za-z0-9_]*-\d+|\d+)$/;
export const DEFAULT_JIRA_TIMEOUT_MS = 60_000;

/**
 * The token in every encoding (helpers/redact.ts: raw, JSON, percent, hex, base64 of any window such
 * as the Basic header's `user:token`), plus every secret registered in this process. Literal
 * fallback for tokens shorter than the shared minimum.
 */
function redactor(secrets: Array<string | undefined>): (text: string) => string {
  const values = secrets.filter((s): s is string => !!s && s.length >= 4);
  for (const v of values) registerSecret(v);
  return (text) => redact(values.reduce((acc, s) => acc.split(s).join('***'), text));
}

function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Build a multipart/form-data body by hand: one field, known bytes, no streaming surprises. */
export function multipartBody(field: string, filename: string, data: Buffer, contentType: string) {
  const boundary = `----cordum-runbooks-${randomBytes(12).toString('hex')}`;
  const safeName = filename.replace(/["\r\n\\]/g, '_');
  const head = Buffer.from(
    `--${boundary}\r\n` +
      `Content-Disposition: form-data; name="${field}"; filename="${safeName}"\r\n` +
      `Content-Type: ${contentType}\r\n\r\n`,
    'utf8',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  return { body: Buffer.concat([head, data, tail]), contentType: `multipart/form-data; boundary=${boundary}` };
}

function authHeader(env: JiraEnv): string {
  const token = env.JIRA_TOKEN!;
  if (env.JIRA_USER) return `Basic ${Buffer.from(`${env.JIRA_USER}:${token}`).toString('base64')}`;
  return `Bearer ${token}`;
}

function attachmentsUrl(base: string, issueKey: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ConfigError(`JIRA_BASE_URL is not a URL (expected e.g. https://jira.example.com)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(`JIRA_BASE_URL must be http(s), got ${url.protocol}`);
  }
  if (url.username || url.password) {
    throw new ConfigError('JIRA_BASE_URL must not carry credentials; use JIRA_USER / JIRA_TOKEN');
  }
  // Keep a context path (https://host/jira) and drop any trailing slash.
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/rest/api/2/issue/${encodeURIComponent(issueKey)}/attachments`;
  url.search = '';
  url.hash = '';
  return url;
}

/** Upload the archive as one attachment. Resolves with what Jira created; throws one-line RunbookErrors. */
export async function attachToJiraIssue(opts: JiraUploadOptions): Promise<JiraAttachment[]> {
  const env = (opts.env ?? process.env) as JiraEnv;
  if (!ISSUE_KEY.test(opts.issueKey)) throw new UsageError(`"${opts.issueKey}" is not a Jira issue key (e.g. OPS-123)`);
  if (!env.JIRA_BASE_URL) throw new ConfigError('JIRA_BASE_URL is not set');
  if (!env.JIRA_TOKEN) throw new ConfigError('JIRA_TOKEN is not set');
  const url = attachmentsUrl(env.JIRA_BASE_URL, opts.issueKey);
  const auth = authHeader(env);
  const redact = redactor([env.JIRA_TOKEN, auth.split(' ')[1]]);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_JIRA_TIMEOUT_MS;

  let data: Buffer;
  try {
    data = await readUserFileBytesAsync(opts.archive, { what: 'bundle', maxBytes: MAX_BUNDLE_BYTES });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { body, contentType } = multipartBody('file', basename(opts.archive), data, 'application/gzip');

  let status: number;
  let text: string;
  try {
    const res = await request(url, {
      method: 'POST',
      headers: {
        authorization: auth,
        'x-atlassian-token': 'no-check', // Jira's XSRF guard rejects multipart posts without it
        'content-type': contentType,
        accept: 'application/json',
      },
      body,
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string } };
    const reason =
      e.name === 'TimeoutError' || e.name === 'AbortError' || /timeout/i.test(e.code ?? '')
        ? `no answer within ${timeoutMs} ms`
        : (e.cause?.code ?? e.code ?? e.message);
    throw new UnreachableError(redact(oneLine(`Jira upload to ${url.origin} failed: ${reason}`)));
  }

  if (status < 200 || status >= 300) {
    const hint =
      status === 401 || status === 403
        ? ' (check JIRA_TOKEN / JIRA_USER and the attach permission)'
        : status === 404
          ? ' (issue not found, or attachments disabled)'
          : status === 413
            ? ' (bundle larger than the Jira attachment limit)'
            : '';
    throw new PreconditionError(
      redact(oneLine(`Jira rejected the attachment for ${opts.issueKey}: HTTP ${status}${hint}: ${text}`, 300)),
    );
  }
  try {
    const parsed = JSON.parse(text) as Array<{ id?: unknown; filename?: unknown; size?: unknown }>;
    return (Array.isArray(parsed) ? parsed : []).map((a) => ({
      id: String(a.id ?? ''),
      filename: String(a.filename ?? ''),
      size: typeof a.size === 'number' ? a.size : undefined,
    }));
  } catch {
    // Uploaded (2xx) but the reply was not the documented JSON list: still a success.
    return [];
  }
}
