// The runner's side of teardown. Before the steps: leftovers of earlier runs against the same
// target are replayed from their journals (unless their run is still alive). After the steps:
// whatever the workers could not undo (a crash, a forced stop, a cancelled run) is replayed from
// this run's journal, within the grace the interrupt state allows.
import { relative } from 'node:path';
import { REPO_ROOT } from '../../helpers/catalog.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { stateRoot } from '../../helpers/report/run-contract.js';
import * as journal from '../../helpers/teardown.js';
import type { PendingItem, TeardownExecutor, TeardownOutcome } from '../../helpers/teardown.js';
import { INTERRUPT_GRACE_MS, type Interrupts } from './interrupts.js';
import { out } from './log.js';

export interface EarlierRun {
  journal: string;
  removed: string[];
  left_behind: { label: string; error: string }[];
}

/** Remove what earlier, finished runs against this target left behind; say what was found. */
export async function replayEarlierRuns(profile: TargetProfile, runId: string, exec: TeardownExecutor, interrupts: Interrupts): Promise<EarlierRun[]> {
  const found: EarlierRun[] = [];
  for (const path of journal.unfinishedJournals(stateRoot(), profile.name, runId)) {
    const live = journal.liveOwner(path);
    if (live !== undefined) {
      out(`Run ${relative(REPO_ROOT, path)} is still running (pid ${live}); its objects are left to it`);
      continue;
    }
    const pending = await journal.readPending(path);
    if (pending.length === 0) {
      journal.closeJournal(path);
      continue;
    }
    const outcome = await journal.replayJournal(path, exec, interrupts.cleanupSignal(INTERRUPT_GRACE_MS));
    if ((await journal.readPending(path)).length === 0) journal.closeJournal(path);
    found.push({ journal: relative(REPO_ROOT, path), removed: outcome.removed, left_behind: outcome.leftovers });
  }
  return found;
}

export interface FinalTeardown {
  replay: TeardownOutcome;
  /** Still listed in the journal after the replay: left on the target. */
  stillPending: PendingItem[];
}

/** Replay what this run's journal still lists, then close the journal if nothing is left. */
export async function finishTeardown(path: string, exec: TeardownExecutor, interrupts: Interrupts): Promise<FinalTeardown> {
  const replay = await journal.replayJournal(path, exec, interrupts.cleanupSignal(INTERRUPT_GRACE_MS));
  await exec.close?.();
  const stillPending = await journal.readPending(path);
  if (stillPending.length === 0) journal.closeJournal(path);
  return { replay, stillPending };
}

/** summary.json's teardown.left_behind: each pending item with the error that kept it there. */
export function leftBehind(t: FinalTeardown): { label: string; error: string }[] {
  return t.stillPending.map((p) => ({
    label: `${p.label} (${journal.describeAction(p.action)})`,
    error: t.replay.leftovers.find((l) => l.label.startsWith(p.label))?.error ?? 'not removed',
  }));
}
