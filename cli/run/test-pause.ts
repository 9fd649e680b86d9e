// Test-only pause points (ENV.TEST_PAUSE, helpers/report/run-contract.ts), so the fault suite can
// put a signal inside a phase without racing the runner. Unset in every real run: then a no-op.
//   setup:  hold at the start of setup like work that cannot be cancelled (a sandbox starting):
//           the first signal does not end the hold, only a forced stop does (or 120 s).
//   report: hold at the start of report writing until a signal arrives (or 60 s).
import { ENV } from '../../helpers/report/run-contract.js';
import { sleep } from '../../helpers/waits.js';
import type { Interrupts } from './interrupts.js';
import { err } from './log.js';

const HOLD_MS = { setup: 120_000, report: 60_000 } as const;

export async function testPause(at: keyof typeof HOLD_MS, interrupts: Interrupts): Promise<void> {
  if (process.env[ENV.TEST_PAUSE] !== at) return;
  err(`runbook: test pause: the ${at} phase waits for a ${at === 'setup' ? 'forced stop' : 'signal'} (${ENV.TEST_PAUSE}=${at})`);
  const release = new AbortController();
  if (at === 'setup') interrupts.onForce(() => release.abort());
  const until = at === 'setup' ? release.signal : interrupts.signal;
  // A ref'd timer keeps the process alive while held; sleep() ends early when `until` aborts.
  await sleep(HOLD_MS[at], until).catch(() => {});
}
