// Policy-impact replay pace: requests per second the replay reaches against the sandbox, as a
// ratio of what the gateway's rate limit allows (its API_RATE_LIMIT_RPS, the ceiling a read-only
// replay may not pass). The replay is the runbook's own code (collect, then two bundle simulations
// per distinct job) on jobs seeded with distinct labels, so no two are asked once.
import { GatewayClient } from '../helpers/gateway.js';
import { connectRedis } from '../helpers/redis.js';
import { collectDecidedJobs } from '../helpers/policy-impact/collect.js';
import { Pacer } from '../helpers/policy-impact/pacer.js';
import { replayJobs } from '../helpers/policy-impact/replay.js';
import { impactSettings } from '../helpers/policy-impact/settings.js';
import { waitFor } from '../helpers/waits.js';
import { goalRatioAtLeast, medianOf, type BenchResult, type Figure } from './stats.js';
import type { BenchContext } from './index.js';

const DRAFT = 'rules:\n  - id: bench-deny-mail\n    decision: deny\n    match: { topics: ["job.bench.mail"] }\n';

export async function benchPolicyImpact(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const sb = await ctx.sandbox();
  const settings = impactSettings(sb.profile);
  const limit = sb.profile.gateway.rate_limit?.rps ?? settings.gatewayRps;
  const jobs = ctx.quick ? 40 : 150;
  const gw = new GatewayClient(sb.profile);
  const redis = await connectRedis(sb.profile);
  const F = {
    rps: { bench: 'policy-impact', name: 'replay requests per second', unit: 'req/s', values: [] } as Figure,
    ratio: { bench: 'policy-impact', name: "replay pace / gateway's rate limit", unit: 'x', values: [] } as Figure,
  };
  let retried = 0;
  try {
    const ids = new Set<string>();
    for (let i = 0; i < jobs; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, jobs - i) }, (_, k) => gw.submitJob({ prompt: 'pnpm bench policy-impact', topic: (i + k) % 5 ? 'job.bench.work' : 'job.bench.mail', labels: { n: String(i + k) } })),
      );
      for (const b of batch) ids.add(b.job_id);
    }
    await waitFor('seeded jobs decided', async () => ((await gw.listJobs({ limit: 1000 })).items ?? []).filter((r) => ids.has(r.id) && r.safety_decision).length, (n) => n === ids.size, { timeoutMs: 60_000, intervalMs: 500 });
    for (let rep = 0; rep < ctx.reps.slow; rep++) {
      // Let the shared bucket refill after seeding and the previous rep (burst / rps seconds), so a
      // 429 measures the pace and not what came before it.
      await new Promise((r) => setTimeout(r, Math.ceil((1000 * (sb.profile.gateway.rate_limit?.burst ?? 100)) / limit)));
      const client = new GatewayClient(sb.profile);
      const pacer = new Pacer({ rps: limit });
      const start = performance.now();
      const { jobs: collected } = await collectDecidedJobs({ gateway: client, pacer, tenant: settings.tenant, count: jobs, redis: async () => redis });
      await replayJobs(collected, { gateway: client, pacer, bundleId: 'secops/bench-impact', baselineContent: 'rules: []\n', draftContent: DRAFT });
      const seconds = (performance.now() - start) / 1000;
      const rps = client.stats.requests / seconds;
      retried += client.stats.retried429;
      F.rps.values.push(rps);
      F.ratio.values.push(rps / limit);
      await client.close();
    }
  } finally {
    await gw.close();
    await redis.quit().catch(() => redis.disconnect());
  }
  const figures = Object.values(F);
  ctx.progress(`policy-impact: ${ctx.reps.slow} replay(s) of ${jobs} jobs`);
  return {
    name: 'policy-impact',
    title: 'Policy-impact replay pace',
    method: [
      `Against the bench sandbox (rate limit ${limit} requests/s): ${jobs} jobs are submitted with distinct labels and decided; the runbook's collect (job list, stored requests from Redis) and replay (two bundle simulations per job) run paced at the full rate limit (policy_impact.rate_share 1).`,
      'Requests per second is what the gateway client sent divided by the wall time of collect plus replay; the ratio divides it by the rate limit, the ceiling a read-only replay must stay under.',
    ],
    figures,
    goals: [goalRatioAtLeast("replay pace at least 0.9x the gateway's rate limit", medianOf(figures, F.rps.name), limit, 0.9)],
    notes: [`429 answers retried during the measured replays: ${retried}.`],
    durationMs: performance.now() - t0,
  };
}
