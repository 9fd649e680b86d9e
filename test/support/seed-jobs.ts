// A sandbox with a few hundred varied, decided jobs, seeded through the API as a real team's
// traffic would arrive: a live bundle (an approval rule, a deny rule, a constrained rule, an allow
// rule), then jobs on several topics with capabilities, risk tags and labels, each with a payload
// that must never reach a report. Returns which job landed on which topic and what it was decided.
import { randomBytes } from 'node:crypto';
import { GatewayClient, type SubmitJobBody } from '../../helpers/gateway.js';
import { waitFor } from '../../helpers/waits.js';
import type { Sandbox } from '../../sandbox/index.js';

export const SEED_BUNDLE_ID = 'secops/seed-lived-in';

/** The live bundle the jobs are decided by (tests derive loosened variants from it). */
export function seedBundle(opts: { paymentsDecision?: string } = {}): string {
  return [
    'rules:',
    '  - id: seed-payments-approval',
    `    decision: ${opts.paymentsDecision ?? 'require_approval'}`,
    '    reason: refunds need a human',
    '    match: { topics: ["job.payments.*"] }',
    '  - id: seed-deny-blocked',
    '    decision: deny',
    '    reason: exports are blocked',
    '    match: { topics: ["job.blocked.*"] }',
    '  - id: seed-ml-constraints',
    '    decision: allow_with_constraints',
    '    match: { topics: ["job.ml.*"], capabilities: [ml.train] }',
    '    constraints: { budgets: { max_runtime_ms: 60000 } }',
    '  - id: seed-allow-reports',
    '    decision: allow',
    '    match: { topics: ["job.reports.*"] }',
    '',
  ].join('\n');
}

/** Topic mix: [topic, how many, extra submit fields]. 300 jobs; job.mail.send stays under 10% of those let through. */
const MIX: [string, number, Partial<SubmitJobBody>][] = [
  ['job.reports.daily', 70, {}],
  ['job.default', 50, { actor_type: 'service' }],
  ['job.ml.train', 40, { capability: 'ml.train' }],
  ['job.payments.refund', 40, { capability: 'refund', labels: { team: 'payments' } }],
  ['job.blocked.export', 30, {}],
  ['job.mail.send', 20, { labels: { team: 'growth' } }],
  ['job.search.index', 50, { risk_tags: ['pii'] }],
];

export interface SeededJobs {
  /** job id -> topic */
  topics: Map<string, string>;
  /** A string in every job's payload: no report may contain it. */
  payloadMarker: string;
  idsOf(topic: string): string[];
}

export async function seedLivedInJobs(sb: Sandbox): Promise<SeededJobs> {
  const gw = new GatewayClient(sb.profile, { apiKey: sb.apiKey });
  try {
    await gw.putBundle(SEED_BUNDLE_ID, { content: seedBundle(), enabled: true, author: 'seed-jobs' });
    await waitFor(
      'the kernel to load the seed bundle',
      () => gw.policyEvaluate({ topic: 'job.blocked.export' }),
      (d) => d.ruleId === 'seed-deny-blocked',
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const payloadMarker = `seed-payload-${randomBytes(8).toString('hex')}`;
    const topics = new Map<string, string>();
    const bodies: SubmitJobBody[] = MIX.flatMap(([topic, n, extra]) =>
      Array.from({ length: n }, (_, i) => ({ prompt: `${payloadMarker} ${topic} #${i}`, topic, context: { secret_note: payloadMarker }, ...extra })),
    );
    // Interleaved, as traffic arrives; a few at a time so the sandbox's limiter is not the test.
    bodies.sort((a, b) => hash(a.prompt) - hash(b.prompt));
    for (let i = 0; i < bodies.length; i += 20) {
      const got = await Promise.all(bodies.slice(i, i + 20).map((b) => gw.submitJob(b)));
      got.forEach((r, j) => topics.set(r.job_id, bodies[i + j]!.topic!));
    }
    await waitFor(
      `all ${topics.size} seeded jobs to be decided by the scheduler`,
      async () => ((await gw.listJobs({ limit: 1000 })).items ?? []).filter((r) => topics.has(r.id) && r.safety_decision).length,
      (n) => n === topics.size,
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    return { topics, payloadMarker, idsOf: (t) => [...topics].filter(([, topic]) => topic === t).map(([id]) => id).sort() };
  } finally {
    await gw.close();
  }
}

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}
