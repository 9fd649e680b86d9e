// helpers/policy-cases.ts: valid case files load; every malformed one is a ConfigError (exit 2)
// that names the file and the line to fix.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, EXIT } from '../../helpers/errors.js';
import { loadPolicyCaseFile, loadPolicyCaseFiles, normalizeDecision, parsePolicyCases } from '../../helpers/policy-cases.js';

const ROOT = resolve(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'policy-cases-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function configError(text: string): ConfigError {
  try {
    parsePolicyCases(text, 'team.cases.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(EXIT.USAGE);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const VALID = `description: team cases
cases:
  - name: refunds need a human
    request:
      topic: job.payments.refund
      labels: { env: prod }
      meta: { capability: refund, risk_tags: [money] }
      budget: { deadline_ms: 1000 }
    expect:
      decision: require_approval
      rule_id: payments-approval
      reason: refunds need approval
  - name: no rule for sys
    request: { topic: sys.x }
    expect: { decision: DECISION_TYPE_DENY, rule_id: "" }
`;

describe('parsePolicyCases', () => {
  it('loads cases, normalises decisions and records where each case is', () => {
    const f = parsePolicyCases(VALID, 'team.cases.yaml');
    expect(f.description).toBe('team cases');
    expect(f.requiresStockPolicy).toBe(false);
    expect(f.cases).toHaveLength(2);
    expect(f.cases[0]).toMatchObject({
      name: 'refunds need a human',
      request: { topic: 'job.payments.refund', labels: { env: 'prod' }, meta: { capability: 'refund', risk_tags: ['money'] } },
      expect: { decision: 'DECISION_TYPE_REQUIRE_HUMAN', rule_id: 'payments-approval', reason: 'refunds need approval' },
      source: 'team.cases.yaml:3',
    });
    expect(f.cases[1]!.expect).toEqual({ decision: 'DECISION_TYPE_DENY', rule_id: '' });
  });

  it('names file and line for invalid YAML', () => {
    expect(configError('cases:\n  - name: a\n    request: {topic: job.x\n').message).toMatch(/^team\.cases\.yaml:\d+: not valid YAML/);
  });

  it('names file and line for an unknown field (a typo would silently pass in Cordum)', () => {
    const e = configError(VALID.replace('      labels: { env: prod }', '      label: { env: prod }'));
    expect(e.message).toBe("team.cases.yaml:6: unknown field 'cases[0].request.label' (known: topic, tenant, job_id, principal_id, priority, memory_id, team_id, workflow_id, step_id, estimated_cost, budget, labels, meta, effective_config)");
    expect(configError(VALID.replace('    expect: { decision', '    expected: { decision')).message).toMatch(/^team\.cases\.yaml:15: unknown field 'cases\[1\]\.expected'/);
  });

  it('rejects an unknown decision with the line of the value', () => {
    expect(configError(VALID.replace('decision: require_approval', 'decision: maybe')).message).toMatch(/^team\.cases\.yaml:10: cases\[0\]\.expect\.decision 'maybe' is not a decision/);
  });

  it('requires rule_id, explaining how to say "no rule"', () => {
    expect(configError(VALID.replace('      rule_id: payments-approval\n', '')).message).toMatch(/^team\.cases\.yaml:10: cases\[0\]\.expect: missing 'rule_id' \(write rule_id: "" when no rule should match\)/);
  });

  it('rejects non-string label values (Cordum answers 400) and missing topics', () => {
    expect(configError(VALID.replace('{ env: prod }', '{ replicas: 3 }')).message).toBe('team.cases.yaml:6: cases[0].request.labels.replicas must be a string (quote numbers and booleans)');
    expect(configError('cases:\n  - name: a\n    request: { tenant: default }\n    expect: { decision: allow, rule_id: "" }\n').message).toBe(
      "team.cases.yaml:3: cases[0].request: missing 'topic' (Cordum answers 400 without it)",
    );
  });

  it('rejects duplicate names, empty files, empty case lists and wrong shapes', () => {
    expect(configError(VALID.replace('no rule for sys', 'refunds need a human')).message).toMatch(/^team\.cases\.yaml:13: cases\[1\]: duplicate case name 'refunds need a human' \(first used on line 3\)/);
    expect(configError('').message).toBe("team.cases.yaml: the file is empty; expected a mapping with a 'cases' list");
    expect(configError('cases: []\n').message).toMatch(/^team\.cases\.yaml:1: 'cases' is empty/);
    expect(configError('- a\n- b\n').message).toMatch(/^team\.cases\.yaml:1: expected a mapping with a 'cases' list/);
    expect(configError('cases:\n  - just a string\n').message).toMatch(/^team\.cases\.yaml:2: cases\[0\] must be a mapping/);
    expect(configError('cases:\n  - name: a\n    request: { topic: job.x }\n    expect: { decision: allow, rule_id: "" }\ncases: []\n').message).toMatch(/^team\.cases\.yaml:5: not valid YAML/);
  });
});

describe('loading files', () => {
  it('loads the case file shipped with the policy runbook', () => {
    const f = loadPolicyCaseFile(join(ROOT, 'runbooks/cases/stock-policy.cases.yaml'), ROOT);
    expect(f.file).toBe('runbooks/cases/stock-policy.cases.yaml');
    expect(f.requiresStockPolicy).toBe(true);
    expect(f.cases.find((c) => c.request.topic === 'job.default')?.expect).toEqual({ decision: 'DECISION_TYPE_ALLOW', rule_id: 'legacy:default:allow:1' });
    expect(f.cases.find((c) => c.request.topic === 'sys.x')?.expect).toEqual({ decision: 'DECISION_TYPE_DENY', rule_id: '', reason: 'unsupported topic' });
  });

  it('names the file of the first malformed one and missing files', () => {
    const good = join(tmp, 'good.yaml');
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(good, VALID);
    writeFileSync(bad, 'cases:\n  - name: x\n    request: { topic: job.x }\n    expect: { decision: nope, rule_id: "" }\n');
    expect(loadPolicyCaseFiles([good], tmp)[0]!.cases).toHaveLength(2);
    expect(() => loadPolicyCaseFiles([good, bad], tmp)).toThrow(/^bad\.yaml:4: cases\[0\]\.expect\.decision 'nope'/);
    expect(() => loadPolicyCaseFile(join(tmp, 'missing.yaml'), tmp)).toThrow(new ConfigError('missing.yaml: policy case file does not exist'));
  });
});

describe('normalizeDecision', () => {
  it('accepts all three vocabularies', () => {
    expect(normalizeDecision('require-approval')).toBe('DECISION_TYPE_REQUIRE_HUMAN');
    expect(normalizeDecision('REQUIRE_APPROVAL')).toBe('DECISION_TYPE_REQUIRE_HUMAN');
    expect(normalizeDecision('DECISION_TYPE_REQUIRE_HUMAN')).toBe('DECISION_TYPE_REQUIRE_HUMAN');
    expect(normalizeDecision('permit')).toBe('DECISION_TYPE_ALLOW');
    expect(normalizeDecision('allow_with_constraints')).toBe('DECISION_TYPE_ALLOW_WITH_CONSTRAINTS');
    expect(normalizeDecision('DECISION_TYPE_MAYBE')).toBeUndefined();
    expect(normalizeDecision('maybe')).toBeUndefined();
  });
});
