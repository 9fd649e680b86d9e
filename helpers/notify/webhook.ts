// One Slack-compatible JSON message per run ({"text": ...}), sent after the run and its
// retries have settled so a flaky step does not page people once per attempt. Every attempt has
// a deadline and the number of attempts is bounded. Notifying is best effort: this module
// returns a result and never throws, so a dead webhook cannot change the run's exit code.

import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import type { Summary } from '../history.js';
import { redact } from '../redact.js';

export interface NotifyOptions {
  /** Default: RUNBOOK_WEBHOOK_URL from `env`. No URL = nothing to do. */
  url?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the report is: a path on the runner, a CI artifact link, a PVC path. */
  reportLocation: string;
  /** Per-attempt deadline. Default 5 s. */
  timeoutMs?: number;
  /** Extra attempts after the first, on network errors, timeouts, 429 and 5xx. Default 2. */
  retries?: number;
  /** Wait before retry n is backoffMs * 2^(n-1). Default 1 s. */
  backoffMs?: number;
}

export interface NotifyResult {
  sent: boolean;
  /** True when no webhook is configured. */
  skipped: boolean;
  attempts: number;
  status?: number;
  /** One line; never contains the webhook URL (its path is the secret). */
  error?: string;
}

const MAX_LISTED_STEPS = 10;

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function oneLine(text: string, max = 160): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/**
 * One value inside the message, as plain text: on one line, redacted, and escaped for Slack's
 * mrkdwn (`&`, `<`, `>`, which is what turns `<!channel>`, `<@U123>` or `<https://x|click>` into
 * pings and links). Receivers that ping on bare words (Mattermost, Rocket.Chat: @channel, @here,
 * @all, @everyone) get a zero-width space after the @, so the word shows but notifies nobody.
 */
export function mrkdwnText(value: string, max = 160): string {
  return oneLine(redact(value), max)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/@(?=(?:channel|here|all|everyone)\b)/gi, '@\u200b');
}

/** The message body. Plain `text` is what every Slack-compatible receiver understands. */
export function buildWebhookPayload(summary: Summary, reportLocation: string): { text: string } {
  const failing = summary.steps.filter((s) => s.status === 'failed' || s.status === 'broken');
  const t = (v: unknown, max?: number) => mrkdwnText(String(v ?? ''), max);
  const ticket = summary.ticket ? `, ticket ${t(summary.ticket)}` : '';
  const lines = [
    `[${t(summary.status.toUpperCase())}] runbook ${t(summary.runbook)} on ${t(summary.target)}${ticket} (${formatDuration(summary.duration_ms)})`,
  ];
  if (failing.length > 0) {
    lines.push('Failing steps:');
    for (const step of failing.slice(0, MAX_LISTED_STEPS)) {
      lines.push(`• ${t(step.name)}${step.error ? `: ${t(step.error)}` : ''}`);
    }
    if (failing.length > MAX_LISTED_STEPS) lines.push(`• …and ${failing.length - MAX_LISTED_STEPS} more`);
  }
  lines.push(`Report: ${t(reportLocation, 1024)}`);
  return { text: lines.join('\n') };
}

function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

export async function notifyRun(summary: Summary, opts: NotifyOptions): Promise<NotifyResult> {
  try {
    return await deliver(summary, opts);
  } catch (err) {
    // A malformed summary or an unexpected bug must not turn into a failed run.
    return { sent: false, skipped: false, attempts: 0, error: `notification not sent: ${oneLine((err as Error).message)}` };
  }
}

async function deliver(summary: Summary, opts: NotifyOptions): Promise<NotifyResult> {
  const url = opts.url ?? (opts.env ?? process.env).RUNBOOK_WEBHOOK_URL;
  if (!url) return { sent: false, skipped: true, attempts: 0 };

  let target: URL;
  try {
    target = new URL(url);
    if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new Error('not http(s)');
  } catch {
    return { sent: false, skipped: false, attempts: 0, error: 'RUNBOOK_WEBHOOK_URL is not an http(s) URL' };
  }
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const attemptsAllowed = 1 + Math.max(0, opts.retries ?? 2);
  const backoffMs = opts.backoffMs ?? 1_000;
  const body = JSON.stringify(buildWebhookPayload(summary, opts.reportLocation));

  let lastError = '';
  let lastStatus: number | undefined;
  for (let attempt = 1; attempt <= attemptsAllowed; attempt++) {
    if (attempt > 1 && backoffMs > 0) await delay(backoffMs * 2 ** (attempt - 2));
    try {
      const res = await request(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      lastStatus = res.statusCode;
      await res.body.dump(); // drain so the connection can be reused or closed
      if (res.statusCode >= 200 && res.statusCode < 300) {
        return { sent: true, skipped: false, attempts: attempt, status: res.statusCode };
      }
      lastError = `webhook at ${target.host} answered HTTP ${res.statusCode}`;
      if (!retryable(res.statusCode)) return { sent: false, skipped: false, attempts: attempt, status: lastStatus, error: lastError };
    } catch (err) {
      const e = err as Error & { code?: string };
      const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError' || /timeout/i.test(e.code ?? '');
      // Only the host: a Slack webhook URL's path is the credential.
      lastError = timedOut
        ? `webhook at ${target.host} did not answer within ${timeoutMs} ms`
        : `webhook at ${target.host} unreachable (${e.code ?? e.name})`;
      lastStatus = undefined;
    }
  }
  return { sent: false, skipped: false, attempts: attemptsAllowed, status: lastStatus, error: `${lastError} after ${attemptsAllowed} attempt(s)` };
}
