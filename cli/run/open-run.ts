// Opening a run: its id and report directory, the profile the workers read, the interrupt channel,
// the secrets to redact, the teardown journal this process owns, and the executor the runner uses
// against the target for its own replays (one gateway client for all of them).
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runbook } from '../../helpers/catalog.js';
import { registerSecret } from '../../helpers/redact.js';
import { GatewayClient } from '../../helpers/gateway.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { RUN_FILES, newRunId, reportsRoot, stateRoot } from '../../helpers/report/run-contract.js';
import { secretValues } from '../../helpers/profile-secrets.js';
import { claimJournal, journalPath, releaseJournal, targetExecutor, type TeardownExecutor } from '../../helpers/teardown.js';
import type { Interrupts } from './interrupts.js';
import type { RunRecord } from './report.js';

export interface OpenRun extends RunRecord {
  /** target.json in the run directory: the resolved profile the workers read. */
  targetFile: string;
  exec: TeardownExecutor;
  /** Drop the runner's own gateway connections (its replays are done or abandoned). */
  closeGateway(): Promise<void>;
  /** The journal no longer belongs to a live run. */
  release(): void;
}

export async function openRun(runbook: Runbook, profile: TargetProfile, interrupts: Interrupts): Promise<OpenRun> {
  const start = new Date();
  const runId = newRunId(runbook.name, start);
  const runDir = join(reportsRoot(), runId);
  const resultsDir = join(runDir, RUN_FILES.allureResults);
  mkdirSync(resultsDir, { recursive: true });
  interrupts.attach(runId);
  for (const v of secretValues(profile)) registerSecret(v);
  let gw: GatewayClient | undefined;
  const exec = targetExecutor(profile, () => (gw ??= new GatewayClient(profile)));
  const targetFile = join(runDir, RUN_FILES.target);
  await writeFile(targetFile, JSON.stringify(profile, null, 2) + '\n');
  const journal = journalPath(stateRoot(), profile.name, runId);
  claimJournal(journal);
  return {
    runId,
    runDir,
    resultsDir,
    start,
    journal,
    targetFile,
    exec,
    closeGateway: async () => void (await gw?.destroy().catch(() => {})),
    release: () => releaseJournal(journal),
  };
}
