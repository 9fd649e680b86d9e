// backup-restore's --redis-read, as an engineer runs it on the sandbox (real redis-server 7.0): sync
// reads the keys from the RDB the server streams over SYNC and the drill passes on that copy; the
// default (auto) keeps the small sandbox keyspace on SCAN and says why; a bad value stops at once.
// The records themselves (RDB path = DUMP, byte for byte) are proven in test/backup/rdb-stream.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_TIMEOUT_MS, allAttachments, allureResults, attachmentText, cleanupRuns, failedSteps, runRunbook, type RunResult } from '../support/run-runbook.js';

afterAll(cleanupRuns);

interface RedisBackupEvidence {
  nodes: Array<{ node: string; source: 'rdb' | 'scan'; reason: string }>;
  dbs: Array<{ node: string; db: number; keys: number; source: 'rdb' | 'scan' }>;
}

/** The 'redis-backup' evidence of step 3, from the run's allure-results. */
function redisBackupEvidence(r: RunResult): RedisBackupEvidence {
  const step = allureResults(r).find((x) => x.name === 'Redis backup (logical, every master)');
  expect(step, 'step 3 in the Allure results').toBeDefined();
  const att = allAttachments(step!).find((a) => a.name.startsWith('redis-backup'));
  expect(att, 'the redis-backup evidence').toBeDefined();
  return JSON.parse(attachmentText(r, att!)) as RedisBackupEvidence;
}

describe('backup-restore --redis-read', () => {
  it('sync: the keys come from the RDB over SYNC, and the drill restores and verifies that copy', async () => {
    const r = await runRunbook('backup-restore', { args: ['--redis-read', 'sync'] });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(failedSteps(r)).toEqual([]);
    const ev = redisBackupEvidence(r);
    expect(ev.nodes.length).toBeGreaterThan(0);
    for (const n of ev.nodes) expect(n.source, n.reason).toBe('rdb');
    expect(ev.dbs.reduce((sum, d) => sum + d.keys, 0)).toBeGreaterThan(0);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);

  it('auto (the default) on the small sandbox keyspace: SCAN, with the reason in the evidence', async () => {
    const r = await runRunbook('backup-restore');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = redisBackupEvidence(r);
    for (const n of ev.nodes) {
      expect(n.source).toBe('scan');
      expect(n.reason.length).toBeGreaterThan(10);
    }
  }, RUN_TIMEOUT_MS);

  it('a value other than auto, scan or sync: exit 2 with one line naming them, before anything is touched', async () => {
    const r = await runRunbook('backup-restore', { args: ['--redis-read', 'fast'] });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/--redis-read must be auto, scan or sync, got "fast"/);
    expect(r.summary.teardown.left_behind).toEqual([]);
  }, RUN_TIMEOUT_MS);
});
