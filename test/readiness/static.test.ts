// Static mode: the compliant namespace passes every check; each variant fails (or warns) exactly
// its own check and produces no other fail; both label schemes; wrong-mode checks say so.
import { describe, expect, it } from 'vitest';
import { runAudit, ALL_CHECKS, parseManifestText, type AuditReport } from '../../helpers/readiness/index.js';
import { ObjectIndex } from '../../helpers/readiness/objects.js';
import { compliant, NOW, STATIC_VARIANTS, toHelmScheme } from './fixtures.js';

const statusOf = (r: AuditReport, id: string) => r.results.find((x) => x.id === id)?.status;

describe('static audit of the compliant namespace', () => {
  it('passes every static check; live-only checks are not-checkable, never pass', async () => {
    const r = await runAudit({ mode: 'static', objects: compliant(), now: NOW });
    const bad = r.results.filter((x) => !['pass', 'info', 'not-checkable'].includes(x.status));
    expect(bad.map((b) => `${b.id}: ${b.message}`)).toEqual([]);
    for (const c of ALL_CHECKS) {
      const s = statusOf(r, c.id);
      if (!c.modes.includes('static')) expect(s, c.id).toBe('not-checkable');
      else expect(s, c.id).not.toBe('not-checkable');
    }
    expect(r.exitCode).toBe(0);
    expect(r.sections.every((s) => s.score === null || s.score === 100)).toBe(true);
  });

  it('recognises every component under the Helm label scheme too', async () => {
    const helm = toHelmScheme(compliant());
    const idx = new ObjectIndex(helm);
    for (const c of ['api-gateway', 'scheduler', 'workflow-engine', 'safety-kernel', 'context-engine', 'nats', 'redis'] as const) {
      expect(idx.component(c).map((w) => w.name), c).toEqual([`prod-cordum-${c}`]);
      expect(idx.component(c)[0].podLabels.app).toBeUndefined();
    }
    const r = await runAudit({ mode: 'static', objects: helm, now: NOW });
    const bad = r.results.filter((x) => !['pass', 'info', 'not-checkable'].includes(x.status));
    expect(bad.map((b) => `${b.id}: ${b.message}`)).toEqual([]);
  });

  it('falls back to names and images when labels are missing', () => {
    const idx = new ObjectIndex([
      { kind: 'StatefulSet', metadata: { name: 'queue' }, spec: { template: { metadata: { labels: { tier: 'x' } }, spec: { containers: [{ name: 'q', image: 'docker.io/library/nats:2.10.22' }] } } } },
      { kind: 'Deployment', metadata: { name: 'cordum-scheduler' }, spec: { template: { metadata: {}, spec: { containers: [{ name: 's', image: 'x:1' }] } } } },
    ]);
    expect(idx.component('nats')[0]?.name).toBe('queue');
    expect(idx.component('scheduler')[0]?.name).toBe('cordum-scheduler');
  });
});

describe('one variant per static check', () => {
  const staticIds = ALL_CHECKS.filter((c) => c.modes.includes('static') && c.severity !== 'info').map((c) => c.id);

  it('covers every static check id (except kubernetes.renders, tested below)', () => {
    const covered = new Set(STATIC_VARIANTS.map((v) => v.id));
    expect(staticIds.filter((id) => !covered.has(id) && id !== 'kubernetes.renders')).toEqual([]);
  });

  for (const v of STATIC_VARIANTS) {
    it(`${v.id} → ${v.expect} (${v.why})`, async () => {
      const objs = compliant();
      v.mutate(objs);
      const r = await runAudit({ mode: 'static', objects: objs, now: NOW });
      const own = r.results.find((x) => x.id === v.id)!;
      expect(own.status, own.message).toBe(v.expect);
      expect(own.message.length).toBeGreaterThan(0);
      expect(own.remediation.length).toBeGreaterThan(0);
      const otherFails = r.results.filter((x) => x.id !== v.id && x.status === 'fail');
      expect(otherFails.map((f) => `${f.id}: ${f.message}`)).toEqual([]);
      expect(r.exitCode).toBe(v.expect === 'fail' ? 1 : 0);
    });
  }

  it('kubernetes.renders → fail on a parse error, and the rest of the audit continues', async () => {
    const broken = parseManifestText('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [unclosed\n', 'broken.yaml');
    expect(broken.errors[0]).toMatch(/^broken\.yaml:\d+: /);
    const r = await runAudit({ mode: 'static', objects: compliant(), loadErrors: broken.errors, now: NOW });
    expect(statusOf(r, 'kubernetes.renders')).toBe('fail');
    expect(r.results.filter((x) => x.status === 'fail').map((x) => x.id)).toEqual(['kubernetes.renders']);
    expect(statusOf(r, 'tls.nats')).toBe('pass');
  });
});

describe('modes', () => {
  it('a live audit without Kubernetes access reports object checks as not-checkable with the reason', async () => {
    const r = await runAudit({ mode: 'live', live: {}, now: NOW });
    for (const c of ALL_CHECKS.filter((x) => x.modes.includes('live'))) {
      const o = r.results.find((x) => x.id === c.id)!;
      expect(o.status, `${c.id}: ${o.message}`).toBe(c.id === 'backups.restore-drill' ? 'not-checkable' : 'not-checkable');
    }
    expect(statusOf(r, 'kubernetes.renders')).toBe('not-checkable');
    expect(statusOf(r, 'secrets.no-literal')).toBe('not-checkable');
    expect(r.exitCode).toBe(0);
  });
});
