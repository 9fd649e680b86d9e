// Unit tests of the policy-impact helpers that decide a run's verdict: flip kinds, the summary by
// kind/topic/rule, the profile's rules, check requests rebuilt from what Cordum stored, the draft
// checks and the canary variant, and the pacer's spacing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { checkFromJobDetail, checkFromStoredRequest, checkKey } from '../../helpers/policy-impact/check-request.js';
import { readDraft, readImpactOptions, withLeadingRule } from '../../helpers/policy-impact/draft.js';
import { DEFAULT_FLIP_POLICY, canonicalConstraints, flipKind, normalizeDecision, summarize, violations, type Outcome, type ReplayedJob } from '../../helpers/policy-impact/flips.js';
import { Pacer } from '../../helpers/policy-impact/pacer.js';
import type { JobDetail } from '../../helpers/gateway-types.js';

const o = (decision: string, ruleId = '', constraints: unknown = null): Outcome => ({ decision: normalizeDecision(decision), ruleId, constraints: canonicalConstraints(constraints) });

function job(id: string, topic: string, baseline: Outcome, candidate: Outcome, recorded = baseline): ReplayedJob {
  return { id, topic, recorded, baseline, candidate };
}

describe('flip kinds', () => {
  it('reads every spelling of a decision', () => {
    expect(['DECISION_TYPE_REQUIRE_HUMAN', 'REQUIRE_APPROVAL', 'require-approval', 'require_human'].map(normalizeDecision)).toEqual(Array(4).fill('REQUIRE_HUMAN'));
    expect(normalizeDecision('')).toBe('UNSPECIFIED');
  });

  it('names each change and none for the same decision', () => {
    expect(flipKind(o('ALLOW'), o('DENY'))).toBe('allow_to_deny');
    expect(flipKind(o('ALLOW_WITH_CONSTRAINTS'), o('DECISION_TYPE_REQUIRE_HUMAN'))).toBe('allow_to_require_human');
    expect(flipKind(o('DENY'), o('ALLOW'))).toBe('deny_to_allow');
    expect(flipKind(o('REQUIRE_APPROVAL'), o('ALLOW'))).toBe('require_human_to_allow');
    expect(flipKind(o('ALLOW'), o('ALLOW_WITH_CONSTRAINTS', 'r', { budgets: { maxRuntimeMs: '1000' } }))).toBe('constraints_changed');
    expect(flipKind(o('ALLOW', 'a'), o('ALLOW', 'b'))).toBeUndefined();
    expect(flipKind(o('DENY'), o('UNSPECIFIED'))).toBeUndefined();
    expect(flipKind(o('THROTTLE'), o('ALLOW'))).toBe('other');
  });

  it('does not read "0" against 0 or key order as a constraint change', () => {
    expect(canonicalConstraints({ budgets: { maxRuntimeMs: '0', maxRetries: 2 }, sandbox: { isolated: false, networkAllowlist: [] } })).toBe(canonicalConstraints({ budgets: { maxRetries: 2 } }));
    expect(canonicalConstraints(null)).toBe('');
  });
});

describe('summary and verdict', () => {
  const jobs = [
    ...Array.from({ length: 8 }, (_, i) => job(`a${i}`, 'job.reports', o('ALLOW'), o('ALLOW'))),
    job('m1', 'job.mail', o('ALLOW'), o('DENY', 'deny-mail')),
    job('p1', 'job.pay', o('REQUIRE_HUMAN', 'pay-approval'), o('ALLOW'), o('REQUIRE_HUMAN', 'pay-approval')),
    job('r1', 'job.reports', o('ALLOW', 'old'), o('ALLOW', 'new'), o('DENY', 'file-rule')),
  ];
  const s = summarize(jobs);

  it('groups flips by kind, topic and blamed rule, with job ids', () => {
    expect(s.flipped).toBe(2);
    expect(s.byKind.allow_to_deny).toEqual({ count: 1, examples: ['m1'] });
    expect(s.byTopic.map((t) => [t.kind, t.topic])).toEqual([['allow_to_deny', 'job.mail'], ['require_human_to_allow', 'job.pay']]);
    // A looser flip is blamed on the rule that no longer matches.
    expect(s.byRule.map((r) => r.rule)).toEqual(['deny-mail', 'pay-approval']);
    expect(s.ruleOnly.count).toBe(1);
    expect(s.baselineDrift).toEqual([{ recorded: 'DENY', baseline: 'ALLOW', count: 1, examples: ['r1'] }]);
    expect(s.baselineAllowed).toBe(10);
  });

  it('forbids REQUIRE_HUMAN→ALLOW by default and ALLOW→DENY only above the share', () => {
    expect(violations(s, DEFAULT_FLIP_POLICY).map((v) => v.kind)).toEqual(['require_human_to_allow']);
    expect(violations(s, { forbid: [], maxAllowToDenyShare: 0.05 }).map((v) => v.kind)).toEqual(['allow_to_deny']);
    expect(violations(summarize(jobs.slice(0, 8)), DEFAULT_FLIP_POLICY)).toEqual([]);
  });
});

describe('check requests', () => {
  it('rebuilds the scheduler\'s request from a stored job request, without approval labels', () => {
    const stored = {
      jobId: 'j1', topic: 'job.pay', priority: 'JOB_PRIORITY_BATCH', tenantId: 'default', principalId: 'alice', memoryId: 'mem:j1',
      labels: { team: 'pay', approval_granted: 'true', 'cordum.bus_msg_id': 'x' },
      budget: { maxInputTokens: '8000', maxOutputTokens: '1024', maxTotalTokens: '0', deadlineMs: '0' },
      meta: { tenantId: '', actorId: 'bot', actorType: 'ACTOR_TYPE_SERVICE', idempotencyKey: '', capability: 'refund', riskTags: ['pii'], requires: [], packId: '', labels: {} },
      env: { SECRET: 'never copied' },
    };
    expect(checkFromStoredRequest(stored, 'default')).toEqual({
      topic: 'job.pay', tenant: 'default', principal_id: 'alice', memory_id: 'mem:j1', labels: { team: 'pay' },
      budget: { max_input_tokens: 8000, max_output_tokens: 1024 },
      meta: { tenant_id: 'default', actor_id: 'bot', actor_type: 'service', capability: 'refund', risk_tags: ['pii'] },
    });
  });

  it('rebuilds it from the API\'s job detail, never copying the payload', () => {
    const detail = { id: 'j2', topic: 'job.mail', tenant: 'default', actor_id: 'u', actor_type: '', capability: '', risk_tags: null, requires: null, pack_id: '', labels: { team: 'growth' }, context: { prompt: 'secret' }, workflow_id: '' } as unknown as JobDetail;
    const req = checkFromJobDetail(detail, { id: 'j2', updated_at: 1, state: 'RUNNING', principal: 'p' }, 'default');
    expect(req).toEqual({ topic: 'job.mail', tenant: 'default', principal_id: 'p', labels: { team: 'growth' }, meta: { tenant_id: 'default', actor_id: 'u' } });
  });

  it('asks once for jobs no rule can tell apart', () => {
    const a = checkFromStoredRequest({ topic: 'job.x', memoryId: 'mem:1', meta: { idempotencyKey: 'k1' } }, 'default');
    const b = checkFromStoredRequest({ topic: 'job.x', memoryId: 'mem:2', meta: { idempotencyKey: 'k2' } }, 'default');
    const c = checkFromStoredRequest({ topic: 'job.x', labels: { l: '1' } }, 'default');
    expect(checkKey(a)).toBe(checkKey(b));
    expect(checkKey(a)).not.toBe(checkKey(c));
  });
});

describe('the draft', () => {
  const dir = mkdtempSync(join(tmpdir(), 'impact-draft-'));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('refuses what Cordum would misread, naming the file and rule', () => {
    expect(() => readDraft(file('typo.yaml', 'rules:\n  - id: a\n    decision: deni\n'))).toThrow(/typo\.yaml: rules\[0\]\.decision: expected allow, deny/);
    expect(() => readDraft(file('empty.yaml', '# nothing\n'))).toThrow(/the file is empty; a draft with no rules is written "rules: \[\]"/);
    expect(() => readDraft(file('bad.yaml', 'rules: [\n'))).toThrow(/bad\.yaml(:\d+)?: not valid YAML/);
    expect(() => readDraft(file('dup.yaml', 'rules:\n  - { id: a, decision: deny }\n  - { id: a, decision: allow }\n'))).toThrow(/rule id 'a' is used twice/);
    expect(() => readDraft(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml/);
  });

  it('checks the options: --draft required, --bundle-id secops/*, --jobs 1-1000', () => {
    const ok = file('ok.yaml', 'rules: []\n');
    expect(() => readImpactOptions({}, 'rb-1')).toThrow(/--draft <bundle\.yaml> is required/);
    expect(() => readImpactOptions({ draft: ok, 'bundle-id': 'pack/x' }, 'rb-1')).toThrow(/--bundle-id: expected a Policy Studio bundle id/);
    expect(() => readImpactOptions({ draft: ok, jobs: '1001' }, 'rb-1')).toThrow(/--jobs: expected a whole number from 1 to 1000/);
    expect(readImpactOptions({ draft: ok }, 'rb-1')).toMatchObject({ bundleId: 'secops/rb-1-impact-draft', addedUnderRunName: true, jobs: 1000 });
  });

  it('puts the canary rule first and keeps the draft\'s own rules', () => {
    const out = parse(withLeadingRule('version: "1"\nrules:\n  - id: a\n    decision: deny\n', { id: 'canary', decision: 'deny' })) as { version: string; rules: { id: string }[] };
    expect(out.version).toBe('1');
    expect(out.rules.map((r) => r.id)).toEqual(['canary', 'a']);
    expect((parse(withLeadingRule('tenants: {}\n', { id: 'canary' })) as { rules: { id: string }[] }).rules.map((r) => r.id)).toEqual(['canary']);
  });
});

describe('pacer', () => {
  it('starts requests evenly spaced at the given rate, several in flight', async () => {
    const pacer = new Pacer({ rps: 100, concurrency: 4 });
    const starts: number[] = [];
    const t0 = performance.now();
    await pacer.map(Array.from({ length: 21 }, (_, i) => i), async () => {
      starts.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 30));
    });
    // 21 starts at 10 ms spacing cannot finish before 200 ms; the in-flight work overlaps.
    expect(starts.at(-1)!).toBeGreaterThanOrEqual(195);
    expect(pacer.started).toBe(21);
  });

  it('stops waiting when its signal aborts', async () => {
    const ac = new AbortController();
    const pacer = new Pacer({ rps: 1, signal: ac.signal });
    const runs = pacer.map([1, 2, 3], async (x) => x);
    setTimeout(() => ac.abort(new Error('stopped')), 50);
    await expect(runs).rejects.toThrow('stopped');
  });
});
