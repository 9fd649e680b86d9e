// The replay: each job's check request evaluated twice by the same evaluator, Cordum's bundle
// simulation (api.md §10.10), under the same bundle id, so the only difference between the two
// answers is the bundle content: the stored one (or an empty bundle when the id is new or
// disabled) for the baseline, the draft for the candidate. Jobs whose requests no rule could tell
// apart are asked once.
import type { GatewayClient } from '../gateway.js';
import type { PolicyCheckBody, PolicyDecision } from '../gateway-types.js';
import { checkKey } from './check-request.js';
import type { CollectedJob } from './collect.js';
import { canonicalConstraints, normalizeDecision, type Outcome, type ReplayedJob } from './flips.js';
import type { Pacer } from './pacer.js';

export interface ReplayOptions {
  gateway: GatewayClient;
  pacer: Pacer;
  bundleId: string;
  baselineContent: string;
  draftContent: string;
}

export interface ReplayStats {
  /** Distinct check requests (each asked twice). */
  distinct: number;
  simulations: number;
}

export function outcomeOf(d: PolicyDecision): Outcome {
  return { decision: normalizeDecision(d.decision), ruleId: d.ruleId ?? '', constraints: canonicalConstraints(d.constraints) };
}

export async function replayJobs(jobs: CollectedJob[], o: ReplayOptions): Promise<{ replayed: ReplayedJob[]; stats: ReplayStats }> {
  const distinct = new Map<string, PolicyCheckBody>();
  for (const j of jobs) {
    const key = checkKey(j.request);
    if (!distinct.has(key)) distinct.set(key, { ...j.request, job_id: j.id });
  }
  const keys = [...distinct.keys()];
  const answers = new Map<string, { baseline: Outcome; candidate: Outcome }>();
  const ask = (request: PolicyCheckBody, content: string) => o.pacer.run(() => o.gateway.simulateBundle(o.bundleId, { request, content }));
  await Promise.all(
    keys.map(async (key) => {
      const request = distinct.get(key)!;
      const [baseline, candidate] = await Promise.all([ask(request, o.baselineContent), ask(request, o.draftContent)]);
      answers.set(key, { baseline: outcomeOf(baseline), candidate: outcomeOf(candidate) });
    }),
  );
  const replayed = jobs.map((j) => {
    const a = answers.get(checkKey(j.request))!;
    return { id: j.id, topic: j.topic, recorded: j.recorded, baseline: a.baseline, candidate: a.candidate };
  });
  return { replayed, stats: { distinct: keys.length, simulations: keys.length * 2 } };
}
