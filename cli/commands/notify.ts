// `pnpm runbook notify <report dir>`: send the run's webhook message from its summary.json.
// The runner calls notifyRun itself after a run; this command is for CI steps and re-sends.
// It never fails the caller: a notification problem is printed and reported in the result.

import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { EXIT, UsageError } from '../../helpers/errors.js';
import { MiB, readUserFileAsync } from '../../helpers/files.js';
import type { Summary } from '../../helpers/history.js';
import { notifyRun, type NotifyResult } from '../../helpers/notify/webhook.js';

export interface NotifyCommandOptions {
  /** Webhook URL; default RUNBOOK_WEBHOOK_URL. Prefer the env var: URLs of Slack hooks are secrets. */
  url?: string;
  /** What to print as the report's location; default RUNBOOK_REPORT_URL, else the index.html path. */
  reportLocation?: string;
  timeoutMs?: number;
  retries?: number;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}

export async function notifyCommand(reportDir: string, opts: NotifyCommandOptions = {}): Promise<NotifyResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const env = opts.env ?? process.env;
  const dir = resolve(reportDir);
  let summary: Summary;
  try {
    summary = JSON.parse(await readUserFileAsync(join(dir, 'summary.json'), { what: 'run summary', maxBytes: 64 * MiB })) as Summary;
  } catch (err) {
    // The reader's message names the file; a JSON error does not.
    if (err instanceof SyntaxError) throw new UsageError(`${join(reportDir, 'summary.json')}: not valid JSON`);
    throw new UsageError((err as Error).message);
  }
  const result = await notifyRun(summary, {
    url: opts.url,
    env,
    reportLocation: opts.reportLocation ?? env.RUNBOOK_REPORT_URL ?? join(dir, 'index.html'),
    timeoutMs: opts.timeoutMs,
    retries: opts.retries,
  });
  if (result.skipped) log('notify: RUNBOOK_WEBHOOK_URL not set, nothing sent');
  else if (result.sent) log(`notify: sent (HTTP ${result.status}, ${result.attempts} attempt(s))`);
  else log(`notify: not sent: ${result.error}`);
  return result;
}

export function register(program: Command): void {
  program
    .command('notify')
    .description("send the run's Slack-compatible webhook message (RUNBOOK_WEBHOOK_URL); never fails the caller")
    .argument('<report dir>', 'a run folder, e.g. reports/<run-id>')
    .option('--report-url <url>', 'link to show for the report (default RUNBOOK_REPORT_URL, else the index.html path)')
    .action(async (reportDir: string, opts: { reportUrl?: string }) => {
      await notifyCommand(reportDir, { reportLocation: opts.reportUrl });
      // Best effort by design: a webhook outage must not turn a green pipeline red.
      process.exitCode = EXIT.PASSED;
    });
}
