// Waivers (waived with reason, expired fails, malformed → ConfigError with file and line) and the
// three report formats (Markdown checklist, SARIF 2.1.0, JUnit XML).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../helpers/errors.js';
import { ALL_CHECKS, loadWaivers, parseWaivers, runAudit, toJUnit, toMarkdown, toSarif } from '../../helpers/readiness/index.js';
import { compliant, find, NOW, STATIC_VARIANTS } from './fixtures.js';

const KNOWN = new Set(ALL_CHECKS.map((c) => c.id));

function variant(id: string) {
  const objs = compliant();
  STATIC_VARIANTS.find((v) => v.id === id)!.mutate(objs);
  return objs;
}

const waiverYaml = (expires: string, scope = 'cordum') => `waivers:
  - check: tls.redis
    scope: "${scope}"
    reason: Redis TLS rollout scheduled with the platform team
    owner: alice@example.com
    ticket: OPS-1234
    expires: ${expires}
`;

describe('waivers', () => {
  it('a waived fail reports "waived" with its reason, never pass, and no longer fails the run', async () => {
    const waivers = parseWaivers(waiverYaml('2026-06-30'), 'readiness.waivers.yaml', KNOWN);
    const r = await runAudit({ mode: 'static', objects: variant('tls.redis'), waivers, now: NOW });
    const o = r.results.find((x) => x.id === 'tls.redis')!;
    expect(o.status).toBe('waived');
    expect(o.message).toMatch(/Redis TLS rollout/);
    expect(o.message).toMatch(/OPS-1234/);
    expect(o.waiver?.owner).toBe('alice@example.com');
    expect(r.exitCode).toBe(0);
    expect(r.sections.find((s) => s.section === 'tls')!.score).toBeLessThan(100);
  });

  it('an expired waiver fails', async () => {
    const waivers = parseWaivers(waiverYaml('2026-02-01'), 'w.yaml', KNOWN);
    const r = await runAudit({ mode: 'static', objects: variant('tls.redis'), waivers, now: NOW });
    const o = r.results.find((x) => x.id === 'tls.redis')!;
    expect(o.status).toBe('fail');
    expect(o.message).toMatch(/waiver expired on 2026-02-01/);
    expect(r.exitCode).toBe(1);
  });

  it('a waiver only applies in its scope; a passing check stays pass', async () => {
    const other = parseWaivers(waiverYaml('2026-06-30', 'staging'), 'w.yaml', KNOWN);
    const r = await runAudit({ mode: 'static', objects: variant('tls.redis'), waivers: other, now: NOW });
    expect(r.results.find((x) => x.id === 'tls.redis')!.status).toBe('fail');
    const ok = await runAudit({ mode: 'static', objects: compliant(), waivers: parseWaivers(waiverYaml('2026-06-30', '*'), 'w.yaml', KNOWN), now: NOW });
    expect(ok.results.find((x) => x.id === 'tls.redis')!.status).toBe('pass');
  });

  it.each([
    ['missing owner', 'waivers:\n  - check: tls.redis\n    scope: "*"\n    reason: r\n    ticket: T-1\n    expires: 2026-06-30\n', /w\.yaml:2: waivers\[0\]\.owner is required/],
    ['bad date', 'waivers:\n  - check: tls.redis\n    scope: "*"\n    reason: r\n    owner: o\n    ticket: T-1\n    expires: someday\n', /w\.yaml:7: waivers\[0\]\.expires "someday" is not a date/],
    ['unknown check', 'waivers:\n  - check: tls.nope\n    scope: "*"\n    reason: r\n    owner: o\n    ticket: T-1\n    expires: 2026-06-30\n', /w\.yaml:2: waivers\[0\]\.check "tls\.nope" is not a readiness check id/],
    ['unknown field', 'waivers:\n  - check: tls.redis\n    scope: "*"\n    reason: r\n    owner: o\n    ticket: T-1\n    expires: 2026-06-30\n    until: x\n', /w\.yaml:8: waivers\[0\] has unknown field "until"/],
    ['invalid YAML', 'waivers:\n  - check: [oops\n', /w\.yaml:\d+: invalid YAML/],
    ['not a list', 'waivers: yes\n', /w\.yaml:1: expected `waivers:` to be a list/],
  ])('malformed file (%s) → ConfigError naming file and line', (_name, text, re) => {
    expect(() => parseWaivers(text, 'w.yaml', KNOWN)).toThrow(ConfigError);
    expect(() => parseWaivers(text, 'w.yaml', KNOWN)).toThrow(re);
  });

  it('loads from disk; a missing file means no waivers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-waivers-'));
    try {
      const f = join(dir, 'readiness.waivers.yaml');
      expect(loadWaivers(f, KNOWN)).toEqual([]);
      writeFileSync(f, waiverYaml('2026-06-30'));
      expect(loadWaivers(f, KNOWN)).toMatchObject([{ check: 'tls.redis', ticket: 'OPS-1234', line: 2 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reports', () => {
  async function mixed() {
    const objs = variant('tls.redis');
    find(objs, 'NetworkPolicy', 'default-deny-ingress'); // still present
    STATIC_VARIANTS.find((v) => v.id === 'limits.rate-limit-config')!.mutate(objs); // a warn
    const waivers = parseWaivers(waiverYaml('2026-06-30').replace('tls.redis', 'limits.rate-limit-config'), 'w.yaml', KNOWN);
    return runAudit({ mode: 'static', objects: objs, waivers, now: NOW, namespace: 'cordum' });
  }

  it('Markdown: section score table plus a checklist row per check', async () => {
    const md = toMarkdown(await mixed());
    expect(md).toMatch(/^# Cordum production readiness \(static, namespace cordum\)/);
    expect(md).toMatch(/\| TLS \| \d+% \| \d+ \| 1 \|/);
    expect(md).toMatch(/\| ❌ fail \| `tls\.redis` .*\| 3\.3 \|.*rediss:\/\//);
    expect(md).toMatch(/\| 🟦 waived \| `limits\.rate-limit-config`/);
    expect(md).toMatch(/➖ not checkable \| `limits\.rate-limit-live`/);
    expect(md).toContain('Result: **FAIL**');
    for (const c of ALL_CHECKS) expect(md).toContain(`\`${c.id}\``);
  });

  it('SARIF 2.1.0: one rule per check, results with levels, waived as suppressed', async () => {
    const s = toSarif(await mixed()) as any;
    expect(s.version).toBe('2.1.0');
    expect(s.$schema).toMatch(/sarif-2\.1\.0/);
    const run = s.runs[0];
    expect(run.tool.driver.name).toBe('cordum-readiness');
    expect(run.tool.driver.rules.map((r: any) => r.id)).toEqual(ALL_CHECKS.map((c) => c.id));
    const byId = new Map(run.results.map((r: any) => [r.ruleId, r]));
    const redis: any = byId.get('tls.redis');
    expect(redis).toMatchObject({ kind: 'fail', level: 'error' });
    expect(run.tool.driver.rules[redis.ruleIndex].id).toBe('tls.redis');
    expect(byId.get('limits.rate-limit-config')).toMatchObject({ kind: 'fail', level: 'warning', suppressions: [{ kind: 'external', status: 'accepted' }] });
    expect(byId.get('limits.rate-limit-live')).toMatchObject({ kind: 'notApplicable', level: 'none' });
    expect(byId.get('tls.nats')).toMatchObject({ kind: 'pass', level: 'none' });
    expect(() => JSON.stringify(s)).not.toThrow();
  });

  it('JUnit: a suite per section, failures for fails, skipped for waived/not-checkable', async () => {
    const r = await mixed();
    const x = toJUnit(r);
    expect(x.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    const fails = r.results.filter((o) => o.status === 'fail').length;
    expect(x).toMatch(new RegExp(`<testsuites name="cordum-readiness" tests="${ALL_CHECKS.length}" failures="${fails}"`));
    expect(x).toMatch(/<testsuite name="readiness\.tls" tests="\d+" failures="1"/);
    expect(x).toMatch(/<testcase classname="readiness\.tls" name="tls\.redis: [^"]*" time="0\.000">\n\s*<failure message="[^"]*REDIS_URL redis:\/\//);
    expect(x).toMatch(/name="limits\.rate-limit-config: [^"]*" time="0\.000">\n\s*<skipped message="waived until 2026-06-30/);
    expect((x.match(/<testcase /g) ?? []).length).toBe(ALL_CHECKS.length);
    expect((x.match(/<testsuite /g) ?? []).length).toBe(12);
    expect(x).not.toMatch(/&(?!amp;|lt;|gt;|quot;)/);
  });
});
