// Checklist §5: pool timeouts/retries, policy budgets, and the gateway rate limit (configured, and
// live: really answering 429 past the burst).
import { parse as parseYaml } from 'yaml';
import { defineCheck, fail, notCheckable, pass, warn, type Check } from '../model.js';
import type { ObjectIndex } from '../objects.js';
import { isResult, needObjects, primary, ref } from './util.js';

function configFile(idx: ObjectIndex, key: string): { configMap: string; value: any; error?: string } | undefined {
  for (const cm of idx.kind('ConfigMap')) {
    const text = cm.data?.[key];
    if (typeof text !== 'string') continue;
    try {
      return { configMap: cm.metadata.name, value: parseYaml(text) ?? {} };
    } catch (err) {
      return { configMap: cm.metadata.name, value: {}, error: (err as Error).message };
    }
  }
  return undefined;
}

/** Rate-limit settings the gateway runs with (defaults 50/100 when unset or invalid). */
export function gatewayRateLimit(idx: ObjectIndex): { rps: string | undefined; burst: string | undefined; effectiveBurst: number; effectiveRps: number; replicas?: number } {
  const gw = primary(idx, 'api-gateway');
  const rps = gw ? idx.envOf(gw, 'API_RATE_LIMIT_RPS') : undefined;
  const burst = gw ? idx.envOf(gw, 'API_RATE_LIMIT_BURST') : undefined;
  const positive = (v: string | undefined) => (v && /^[1-9]\d*$/.test(v) ? Number(v) : undefined);
  // Each gateway replica has its own bucket (api.md §4): the limit a client meets is per pod.
  return { rps, burst, effectiveBurst: positive(burst) ?? 100, effectiveRps: positive(rps) ?? 50, ...(gw ? { replicas: Math.max(1, gw.replicas) } : {}) };
}

export const limitsChecks: Check[] = [
  defineCheck({
    id: 'limits.timeouts',
    section: 'limits',
    item: '5.1',
    title: 'Every routed topic has a timeout and max retries; reconciler values > 0',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'In timeouts.yaml set `topics.<topic>.timeout_seconds` and `max_retries` for every topic routed in pools.yaml, and positive reconciler dispatch/running/scan values.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const pools = configFile(idx, 'pools.yaml');
      const timeouts = configFile(idx, 'timeouts.yaml');
      if (!pools || !timeouts) return fail(`missing ${!pools ? 'pools.yaml' : ''}${!pools && !timeouts ? ' and ' : ''}${!timeouts ? 'timeouts.yaml' : ''} ConfigMap`);
      if (pools.error || timeouts.error) return fail(`unparsable config: ${pools.error ?? timeouts.error}`);
      const topicsRaw = pools.value.topics ?? {};
      const topics: string[] = Array.isArray(topicsRaw) ? topicsRaw.map((t: any) => (typeof t === 'string' ? t : t.topic ?? t.name)) : Object.keys(topicsRaw);
      const tt = timeouts.value.topics ?? {};
      const missing = topics.filter((t) => typeof tt[t]?.timeout_seconds !== 'number' || typeof tt[t]?.max_retries !== 'number');
      const rec = timeouts.value.reconciler ?? {};
      const badRec = ['dispatch_timeout_seconds', 'running_timeout_seconds', 'scan_interval_seconds'].filter((k) => !(typeof rec[k] === 'number' && rec[k] > 0));
      const evidence = { pools: pools.configMap, timeouts: timeouts.configMap, routedTopics: topics, missing, reconciler: rec };
      if (badRec.length) return fail(`reconciler values not > 0: ${badRec.join(', ')}`, evidence);
      if (missing.length) return warn(`routed topics without timeout/max_retries: ${missing.join(', ')}`, evidence);
      return pass(`${topics.length} routed topics with timeouts and retries`, evidence);
    },
  }),
  defineCheck({
    id: 'limits.policy-budgets',
    section: 'limits',
    item: '5.2',
    title: 'Allowed topics are covered by policy rules with budgets',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Add `constraints.budgets` (max_runtime_ms, max_retries, max_artifact_bytes) to the safety.yaml rules that allow job topics.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const safety = configFile(idx, 'safety.yaml');
      if (!safety) return warn('no safety.yaml ConfigMap found (policy may come from SAFETY_POLICY_URL or bundles)');
      const rules: any[] = safety.value.rules ?? [];
      const allowing = rules.filter((r) => /^(allow|permit|allow[_-]with[_-]constraints)$/.test(String(r.decision ?? 'allow')));
      const without = allowing.filter((r) => !['max_runtime_ms', 'max_retries', 'max_artifact_bytes'].every((k) => typeof r.constraints?.budgets?.[k] === 'number')).map((r) => r.id ?? '(unnamed)');
      const evidence = { configMap: safety.configMap, allowingRules: allowing.map((r) => r.id), withoutBudgets: without };
      if (!allowing.length) return warn('no allow rules with budgets: allowed topics run unbounded', evidence);
      if (without.length) return warn(`allow rules without full budgets: ${without.join(', ')}`, evidence);
      return pass(`${allowing.length} allow rule(s) with budgets`, evidence);
    },
  }),
  defineCheck({
    id: 'limits.rate-limit-config',
    section: 'limits',
    item: '5.3',
    title: 'Gateway rate limit configured (API_RATE_LIMIT_RPS / BURST)',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Set API_RATE_LIMIT_RPS and API_RATE_LIMIT_BURST to positive integers sized for your traffic (the bucket is per pod; 0 or junk silently means 50/100).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const gw = primary(idx, 'api-gateway');
      if (!gw) return fail('no gateway workload found');
      const { rps, burst } = gatewayRateLimit(idx);
      const valid = (v: string | undefined) => v !== undefined && /^[1-9]\d*$/.test(v);
      const evidence = { workload: ref(gw), API_RATE_LIMIT_RPS: rps ?? null, API_RATE_LIMIT_BURST: burst ?? null, replicas: gw.replicas };
      if (rps === undefined && burst === undefined) return warn('rate limit unset: defaults 50 rps / burst 100 per pod apply', evidence);
      if (!valid(rps) || !valid(burst)) return warn(`invalid rate limit (${rps}/${burst}): the gateway ignores it and uses 50/100`, evidence);
      return pass(`${rps} rps, burst ${burst} per pod (×${gw.replicas} pods)`, evidence);
    },
  }),
  defineCheck({
    id: 'limits.rate-limit-live',
    section: 'limits',
    item: '5.3',
    title: 'Gateway answers 429 past the burst',
    severity: 'fail',
    modes: ['live'],
    remediation: 'Check that the gateway build has the limiter and that API_RATE_LIMIT_BURST is what you expect; a proxy retrying 429s can also hide it.',
    run(ctx) {
      const p = ctx.live?.rateLimit;
      if (!p) return notCheckable('the rate-limit probe did not run (no gateway URL)');
      if (!p.ok) return notCheckable(`rate-limit probe failed: ${p.reason}`);
      const v = p.value;
      if (v.first429At !== null) return pass(`429 after ${v.first429At} requests (burst ${v.burst})`, v);
      // No 429 is a finding only when the probe sent more than a working limiter lets through in
      // the time it took (burst + refill x elapsed). Behind a slow link it cannot get there.
      const pods = v.replicas === undefined ? ' (one gateway replica assumed: no Kubernetes objects were read)' : v.replicas > 1 ? ` per replica, x${v.replicas} gateway replicas (each has its own bucket)` : '';
      const figures = `${v.sent} requests in ${v.elapsedMs} ms (${v.achievedRps} req/s); burst ${v.burst} + ${v.rps}/s refill${pods} allows up to ${v.allowance} in that time`;
      if (v.allowance === undefined || v.sent <= v.allowance) {
        return notCheckable(`could not judge: no 429, but the probe could not outpace the limiter: ${figures}. Run the audit closer to the gateway (same cluster or node) to judge it`, v);
      }
      return fail(`no 429 after ${v.sent} requests (burst ${v.burst}): ${figures}, so a working limiter would have answered 429 to at least ${v.sent - v.allowance}`, v);
    },
  }),
];
