// The promises every fault case checks: bounded, no secret anywhere, and (when a run started) a
// complete report whose status and exit code agree with what the CLI returned.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { verifyManifest } from '../../../helpers/report/manifest.js';
import { causeLine, reportDir, summaryOf, type CliResult, type Workspace } from './harness.js';

/**
 * Exit code as documented, within `withinMs` of its start (default: the runbook's time budget plus
 * the stated grace), no secret anywhere, no stack trace.
 */
export function expectCalm(ws: Workspace, r: CliResult, code: number, withinMs = r.boundMs): void {
  expect(r.hung, `the run hung past its deadline; stderr: ${r.stderr}`).toBe(false);
  expect(r.ms, `the run took ${r.ms} ms, past its bound of ${withinMs} ms; stderr: ${r.stderr}`).toBeLessThanOrEqual(withinMs);
  expect(r.code, `exit code; stderr: ${r.stderr}\nstdout: ${r.stdout}`).toBe(code);
  expect(ws.secretHits(r), 'places the API key leaked to').toEqual([]);
  expect(r.stderr, 'no stack traces').not.toMatch(/\n\s+at .+:\d+:\d+/);
}

/** A run that got as far as executing: a verified report that matches the exit code. */
export function expectReport(r: CliResult, status: string): Record<string, any> {
  const dir = reportDir(r);
  expect(existsSync(join(dir, 'summary.json')), `summary.json in ${dir}`).toBe(true);
  const s = summaryOf(r);
  expect(s.status).toBe(status);
  expect(s.exit_code).toBe(r.code);
  expect(verifyManifest(dir)).toEqual([]);
  return s;
}

/** The run exited within `ms` after `since` (a Date.now() taken when the test sent a signal, say). */
export function expectExitWithin(r: CliResult, since: number, ms: number, what: string): void {
  expect(r.exitedAt - since, `exit came ${r.exitedAt - since} ms after ${what}, past its bound of ${ms} ms; stderr: ${r.stderr}`).toBeLessThanOrEqual(ms);
}

/** A run refused before it started: exactly one line on stderr that names the cause. */
export function expectOneLine(r: CliResult, cause: RegExp): void {
  const lines = r.stderr.trim().split('\n').filter((l) => l.trim());
  expect(lines, r.stderr).toHaveLength(1);
  expect(causeLine(r)).toMatch(cause);
}
