// One webhook message per run, from summary.json as written (so already redacted). Bounded, and it
// never changes the exit code: a chat outage must not turn a run red.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../helpers/errors.js';
import { untilAborted } from '../../helpers/waits.js';
import { err } from './log.js';

/** The whole notification, retries included, gets at most this long. */
const NOTIFY_DEADLINE_MS = 20_000;

export async function notify(runDir: string, index: string): Promise<void> {
  try {
    const { notifyRun } = await import('../../helpers/notify/webhook.js');
    const summary = JSON.parse(await readFile(join(runDir, 'summary.json'), 'utf8'));
    const deadline = AbortSignal.timeout(NOTIFY_DEADLINE_MS);
    const result = await untilAborted(notifyRun(summary, { reportLocation: process.env.RUNBOOK_REPORT_URL ?? index }), deadline).catch((e: unknown) => {
      if (deadline.aborted) return { sent: false as const, skipped: false as const, error: `no answer within ${NOTIFY_DEADLINE_MS / 1000} s` };
      throw e;
    });
    if (result.sent) err(`notify: sent (HTTP ${result.status}, ${result.attempts} attempt(s))`);
    else if (!result.skipped) err(`notify: not sent: ${result.error}`);
  } catch (e) {
    err(`notify: not sent: ${errorMessage(e)}`);
  }
}
