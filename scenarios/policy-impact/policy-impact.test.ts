// Runbook `policy-impact` (runbooks/policy-impact.md): which of the jobs this target really decided
// would a draft policy bundle decide differently? One step per step of the page. Read-only: it asks
// the gateway's bundle simulation, paced under the profile's rate limit, and writes nothing.
import { ConfigError } from '../../helpers/errors.js';
import { GatewayError, GatewayClient, type PolicyCheckBody, type PolicyDecision } from '../../helpers/gateway.js';
import { collectDecidedJobs, type CollectedJob, type CollectStats } from '../../helpers/policy-impact/collect.js';
import { MAX_JOBS, NEUTRAL_BUNDLE, readImpactOptions, withLeadingRule, type ImpactOptions } from '../../helpers/policy-impact/draft.js';
import { FLIP_KINDS, FLIP_LABEL, flipKind, pct, summarize, violations, type ImpactSummary, type ReplayedJob, type Violation } from '../../helpers/policy-impact/flips.js';
import { Pacer } from '../../helpers/policy-impact/pacer.js';
import { impactChart, impactJson, impactMarkdown, type ImpactHeader } from '../../helpers/policy-impact/render.js';
import { replayJobs, type ReplayStats } from '../../helpers/policy-impact/replay.js';
import { impactSettings, type ImpactSettings } from '../../helpers/policy-impact/settings.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { fail, scenario, stateSlot, type RunContext } from '../../helpers/steps.js';

/**
 * Collecting and replaying are paced at the profile's share of the gateway's rate limit, so their
 * deadlines follow from it: the most requests a step can make at that pace, half again for
 * latency and 429 backoff, plus 20 s.
 */
const paced = (requestsPerJob: number) => (t: TargetProfile) => 20_000 + Math.ceil(((8 + requestsPerJob * MAX_JOBS) / impactSettings(t).rps) * 1500);
const DEADLINE = {
  draft: 10_000,
  canary: 20_000,
  collect: paced(1),
  replay: paced(2),
  report: 20_000,
  verdict: 10_000,
};

interface Run {
  opts: ImpactOptions;
  settings: ImpactSettings;
  /** What the baseline simulates under the bundle id: the stored content, or an empty bundle. */
  baselineContent: string;
  replaced: boolean;
  jobs?: CollectedJob[];
  collect?: CollectStats;
  replayed?: ReplayedJob[];
  replay?: ReplayStats;
  summary?: ImpactSummary;
  violations?: Violation[];
  requests: number;
  pacedMs: number;
  retried429: number;
}

const RUN = stateSlot<Run>('run');
/** The run's state; a step after a failed 'Read the draft bundle' gets a clear error, not a TypeError. */
const run = (ctx: RunContext): Run => RUN.require(ctx, 'the draft bundle was not read');

/**
 * A client for the replay that records no transcripts: a replay makes up to 3000 requests, and a
 * job detail carries the job's payload, which must not reach the report. Bound to the step.
 */
async function withReplayClient<T>(ctx: RunContext, fn: (gw: GatewayClient, pacer: Pacer) => Promise<T>): Promise<T> {
  const r = run(ctx);
  const gw = new GatewayClient(ctx.target).withSignal(ctx.signal);
  const pacer = new Pacer({ rps: r.settings.rps, signal: ctx.signal });
  const t0 = performance.now();
  try {
    return await fn(gw, pacer);
  } finally {
    r.requests += gw.stats.requests;
    r.retried429 += gw.stats.retried429;
    r.pacedMs += performance.now() - t0;
    await gw.destroy();
  }
}

function short(d: PolicyDecision): string {
  return `${d.decision} rule ${JSON.stringify(d.ruleId ?? '')}`;
}

/** Cordum refusing the draft (400 from bundle simulate) is bad input, like a malformed file. */
function draftRefused(err: unknown, r: Run): never {
  if (err instanceof GatewayError && err.status === 400) {
    throw new ConfigError(`--draft ${r.opts.draft.display}: the gateway refused the draft bundle: ${err.body.trim().slice(0, 300)}`);
  }
  throw err;
}

scenario('Policy impact: the target\'s recent jobs replayed against a draft bundle', (s) => {
  s.step('Read the draft bundle', async (ctx) => {
    const opts = await ctx.step('Check --draft, --bundle-id and --jobs and read the draft', () => readImpactOptions(ctx.options, ctx.prefix));
    const settings = impactSettings(ctx.target);
    RUN.set(ctx, { opts, settings, baselineContent: NEUTRAL_BUNDLE, replaced: false, requests: 0, pacedMs: 0, retried429: 0 });
    await ctx.evidence.text(`draft ${opts.draft.display}`, opts.draft.content);
    await ctx.evidence.json('run settings', {
      draft: opts.draft.display,
      rules: opts.draft.ruleIds,
      bundle_id: opts.bundleId,
      jobs: opts.jobs,
      tenant: settings.tenant,
      pace_rps: settings.rps,
      gateway_rate_limit_rps: settings.gatewayRps,
      forbid: settings.flips.forbid,
      max_allow_to_deny_share: settings.flips.maxAllowToDenyShare,
    });
  }, { timeoutMs: DEADLINE.draft });

  s.step('Prove that bundle simulation applies the draft (canary)', async (ctx) => {
    const r = run(ctx);
    const gw = ctx.gateway();
    const bundles = await ctx.step('Read the stored bundles (GET /api/v1/policy/bundles)', () => gw.bundles());
    const stored = (bundles.bundles ?? {})[r.opts.bundleId] as { content?: unknown; enabled?: unknown } | undefined;
    r.replaced = stored !== undefined;
    // Cordum counts a bundle without `enabled` as enabled; a disabled one is not in today's policy.
    const live = stored !== undefined && stored.enabled !== false && typeof stored.content === 'string' && stored.content.trim() !== '';
    r.baselineContent = live ? (stored!.content as string) : NEUTRAL_BUNDLE;
    if (stored !== undefined && !live) {
      ctx.finding({ id: 'policy-impact-replaces-disabled-bundle', severity: 'info', title: `${r.opts.bundleId} is stored but not live`, detail: `the stored bundle ${r.opts.bundleId} is disabled, so the baseline leaves it out and every flip is what enabling the draft under that id would do` });
    }

    const canaryTopic = `job.${ctx.prefix}.impact-canary`;
    const canaryRule = { id: `${ctx.prefix}-impact-canary`, decision: 'deny', reason: `policy-impact canary ${ctx.prefix}`, match: { topics: [canaryTopic] } };
    const request: PolicyCheckBody = { topic: canaryTopic, tenant: r.settings.tenant };
    const before = await ctx.step(`Baseline decision for ${canaryTopic}`, () => gw.simulateBundle(r.opts.bundleId, { request, content: r.baselineContent }));
    if (before.ruleId === canaryRule.id) fail(`the baseline already decides ${canaryTopic} by this run's canary rule ${canaryRule.id}: a stored bundle holds it`);
    const withCanary = withLeadingRule(r.opts.draft.content, canaryRule);
    const after = await ctx.step(`Decision for ${canaryTopic} with the draft plus a canary rule`, () =>
      gw.simulateBundle(r.opts.bundleId, { request, content: withCanary }).catch((err: unknown) => draftRefused(err, r)),
    );
    if (after.decision !== 'DECISION_TYPE_DENY' || after.ruleId !== canaryRule.id) {
      fail(
        `bundle simulation did not apply the content it was sent: with the draft plus a canary rule denying ${canaryTopic}, POST /api/v1/policy/bundles/${r.opts.bundleId}/simulate answered ${short(after)} (the baseline answered ${short(before)}); expected DECISION_TYPE_DENY by rule ${canaryRule.id}. Every "no flips" from this evaluator would mean nothing, so no replay was run`,
      );
    }
  }, { timeoutMs: DEADLINE.canary });

  s.step('Collect the most recent decided jobs', async (ctx) => {
    const r = run(ctx);
    const { jobs, stats } = await withReplayClient(ctx, (gateway, pacer) =>
      collectDecidedJobs({ gateway, pacer, tenant: r.settings.tenant, count: r.opts.jobs, redis: ctx.target.redis ? () => ctx.redis() : undefined, signal: ctx.signal }),
    );
    r.jobs = jobs;
    r.collect = stats;
    const byDecision: Record<string, number> = {};
    for (const j of jobs) byDecision[j.recorded.decision] = (byDecision[j.recorded.decision] ?? 0) + 1;
    await ctx.evidence.json('jobs collected', { ...stats, unreadable: stats.unreadable.slice(0, 50), replayable: jobs.length, recorded_decisions: byDecision });
    if (stats.redisProblem) {
      ctx.finding({ id: 'policy-impact-redis-unavailable', severity: 'warn', title: 'Stored job requests not read from Redis', detail: `the profile names Redis, but reading job:req failed (${stats.redisProblem}); the check requests were rebuilt from the API's job details, which lack the budget and meta labels` });
    }
    if (jobs.length === 0) {
      ctx.finding({ id: 'policy-impact-no-jobs', severity: 'warn', title: 'No decided jobs to replay', detail: `the ${stats.listed} most recent job(s) listed held none decided in tenant ${r.settings.tenant}: this run says nothing about the draft's effect on real traffic` });
    }
  }, { timeoutMs: DEADLINE.collect });

  s.step('Replay each job without and with the draft', async (ctx) => {
    const r = run(ctx);
    const jobs = r.jobs ?? [];
    const { replayed, stats } = await withReplayClient(ctx, (gateway, pacer) =>
      replayJobs(jobs, { gateway, pacer, bundleId: r.opts.bundleId, baselineContent: r.baselineContent, draftContent: r.opts.draft.content }).catch((err: unknown) => draftRefused(err, r)),
    );
    r.replayed = replayed;
    r.replay = stats;
    r.summary = summarize(replayed);
    r.violations = violations(r.summary, r.settings.flips);
  }, { timeoutMs: DEADLINE.replay });

  s.step('Report the decision flips', async (ctx) => {
    const r = run(ctx);
    const sum = r.summary!;
    const v = r.violations!;
    const header: ImpactHeader = { draft: r.opts.draft.display, bundleId: r.opts.bundleId, replaced: r.replaced, tenant: r.settings.tenant };
    ctx.summary(impactMarkdown(header, sum, v));
    const achieved = r.pacedMs > 0 ? (r.requests / r.pacedMs) * 1000 : 0;
    ctx.writeArtifact(
      'policy-impact.json',
      impactJson(header, sum, v, {
        collected: { ...r.collect, unreadable: r.collect?.unreadable.length ?? 0 },
        replay: r.replay,
        pace: { requests: r.requests, seconds: Math.round(r.pacedMs) / 1000, achieved_rps: Math.round(achieved * 10) / 10, allowed_rps: r.settings.rps, gateway_rate_limit_rps: r.settings.gatewayRps, retried_429: r.retried429 },
      }),
    );
    await ctx.evidence.svg('decision flips', impactChart(sum));

    for (const kind of FLIP_KINDS) {
      const g = sum.byKind[kind];
      if (!g) continue;
      const topics = sum.byTopic.filter((t) => t.kind === kind);
      const rules = sum.byRule.filter((x) => x.kind === kind);
      ctx.finding({
        id: `policy-impact-${kind.replace(/_/g, '-')}`,
        severity: v.some((x) => x.kind === kind) ? 'warn' : 'info',
        title: `${g.count} job(s) ${FLIP_LABEL[kind]}`,
        detail: `${pct(g.count / sum.jobs)} of ${sum.jobs} replayed job(s); topics: ${topics.slice(0, 8).map((t) => `${t.topic} (${t.count})`).join(', ')}${topics.length > 8 ? ', …' : ''}; rules: ${rules.slice(0, 8).map((x) => `${x.rule} (${x.count})`).join(', ')}; e.g. jobs ${g.examples.join(', ')}`,
      });
    }
    // The baseline is bundle simulation: no policy file, no effective config, today's bundles.
    const drift = sum.baselineDrift;
    if (drift.length) {
      const n = drift.reduce((a, d) => a + d.count, 0);
      ctx.finding({
        id: 'policy-impact-baseline-differs-from-recorded',
        severity: 'info',
        title: `${n} job(s) were decided otherwise when they ran`,
        detail: `${drift.slice(0, 6).map((d) => `recorded ${d.recorded}, baseline ${d.baseline}: ${d.count} (e.g. ${d.examples.slice(0, 3).join(', ')})`).join('; ')}. Bundle simulation leaves out the kernel's policy file and effective-config denials (api.md §10.10), and these jobs may have been decided under an earlier policy snapshot or by a kernel error; flips are measured between baseline and draft, not against these records`,
      });
    }
    ctx.finding({
      id: 'policy-impact-pace',
      severity: r.retried429 > 0 ? 'warn' : 'info',
      title: `Replay paced at ${Math.round(achieved * 10) / 10} requests/s`,
      detail: `${r.requests} request(s) in ${(r.pacedMs / 1000).toFixed(1)} s against an allowed ${r.settings.rps} requests/s (${pct(r.settings.rateShare)} of the gateway's ${r.settings.gatewayRps}); ${r.replay?.distinct ?? 0} distinct check request(s) for ${sum.jobs} job(s); ${r.retried429} answer(s) of 429 retried${r.retried429 ? ': other clients share the limiter, lower policy_impact.rate_share' : ''}`,
    });
  }, { timeoutMs: DEADLINE.report });

  s.step("Judge the flips by the profile's rules", async (ctx) => {
    const r = run(ctx);
    const v = r.violations!;
    if (v.length === 0) return;
    const bad = new Set(v.map((x) => x.kind));
    const jobs = (r.replayed ?? []).filter((j) => {
      const k = flipKind(j.baseline, j.candidate);
      return k !== undefined && bad.has(k);
    });
    const lines = jobs.map((j) => `${j.id}\t${j.topic}\t${j.baseline.decision} -> ${j.candidate.decision}\t${j.baseline.ruleId || '(no rule)'} -> ${j.candidate.ruleId || '(no rule)'}`);
    const file = ctx.writeArtifact('policy-impact-forbidden-jobs.tsv', ['job_id\ttopic\tdecision\trule', ...lines].join('\n') + '\n');
    const shown = jobs.slice(0, 20).map((j) => j.id);
    fail(
      `the draft makes ${jobs.length} forbidden decision flip(s): ${v.map((x) => `${x.count} ${FLIP_LABEL[x.kind]} (${x.reason})`).join('; ')}; jobs: ${shown.join(', ')}${jobs.length > shown.length ? ` and ${jobs.length - shown.length} more` : ''} (all in ${file.split('/').slice(-2).join('/')})`,
    );
  }, { timeoutMs: DEADLINE.verdict });
});
