// Static mode: the compliant namespace passes every check; each variant fails (or warns) exactly
// its own check and produces no other fail; both label schemes; wrong-mode checks say so.
import { describe, expect, it } from 'vitest';
import { runAudit, ALL_CHECKS, parseManifestText, type AuditReport } from '../../helpers/readiness/index.js';
import { ObjectIndex } from '../../helpers/readiness/objects.js';
import { logAgents } from '../../helpers/readiness/checks/observability.js';
import { releaseOf } from '../../helpers/readiness/checks/upgrades.js';
import { compliant, NOW, setEnv, STATIC_VARIANTS, toHelmScheme } from './fixtures.js';

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
      // Info-only process items (upgrades.staged-rollout) say "not checkable here" in their message.
      if (c.severity === 'info' && o.status === 'info') expect(o.message, c.id).toMatch(/not checkable here/);
      else expect(o.status, `${c.id}: ${o.message}`).toBe('not-checkable');
    }
    // The functional runbooks cannot be judged without a run history, in either mode.
    expect(statusOf(r, 'functional.runbooks-passed')).toBe('not-checkable');
    expect(statusOf(r, 'kubernetes.renders')).toBe('not-checkable');
    expect(statusOf(r, 'secrets.no-literal')).toBe('not-checkable');
    expect(r.exitCode).toBe(0);
  });
});

describe('checks added for 4.4, 4.5, 7.2–7.4, 11.3 and 11.6', () => {
  it('recognises common log agents by image or name, and not ordinary DaemonSets', () => {
    const ds = (name: string, image: string) => new ObjectIndex([{ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name }, spec: { template: { metadata: {}, spec: { containers: [{ name: 'c', image }] } } } }]).workloads;
    for (const [name, image] of [['logs', 'cr.fluentbit.io/fluent/fluent-bit:3.1.9'], ['x', 'timberio/vector:0.41.1-distroless-libc'], ['x', 'grafana/promtail:3.2.0'], ['x', 'otel/opentelemetry-collector-contrib:0.110.0'], ['x', 'gcr.io/datadoghq/agent:7.57.2'], ['fluentd', 'registry.acme.io/logs:1.0'], ['x', 'docker.elastic.co/beats/filebeat:8.15.2']]) expect(logAgents(ds(name, image)), image).toHaveLength(1);
    for (const image of ['calico/node:v3.28.2', 'registry.k8s.io/kube-proxy:v1.31.0', 'quay.io/prometheus/node-exporter:v1.8.2']) expect(logAgents(ds('node', image)), image).toEqual([]);
  });

  it('observability.opentelemetry passes with OTLP env, reports info (never warn/fail) without it', async () => {
    const good = await runAudit({ mode: 'static', objects: compliant(), now: NOW });
    expect(statusOf(good, 'observability.opentelemetry')).toBe('pass');
    const objs = compliant();
    for (const d of ['cordum-api-gateway', 'cordum-scheduler', 'cordum-workflow-engine', 'cordum-safety-kernel', 'cordum-context-engine']) setEnv(objs, d, 'OTEL_EXPORTER_OTLP_ENDPOINT', undefined);
    const r = await runAudit({ mode: 'static', objects: objs, now: NOW });
    expect(statusOf(r, 'observability.opentelemetry')).toBe('info');
    expect(r.results.find((x) => x.id === 'observability.opentelemetry')!.message).toMatch(/not configured \(optional/);
    expect(r.exitCode).toBe(0);
  });

  it('upgrades.staged-rollout is a process item: info in both modes, never pass', async () => {
    for (const mode of ['static', 'live'] as const) {
      const r = await runAudit({ mode, objects: compliant(), live: {}, now: NOW });
      const o = r.results.find((x) => x.id === 'upgrades.staged-rollout')!;
      expect(o.status).toBe('info');
      expect(o.message).toMatch(/process items, not checkable here/);
      expect(o.evidence).toEqual({ releasesSeen: ['v1.4.2'] });
    }
  });

  it('upgrades.same-release reads the release from cordum/control-plane:<tag>-<service> tags', () => {
    expect(releaseOf('cordum/control-plane:v1.4.2-api-gateway', 'api-gateway')).toBe('v1.4.2');
    expect(releaseOf('registry.acme.io/cordum/scheduler:1.4.2', 'scheduler')).toBe('1.4.2');
    expect(releaseOf('cordum/control-plane@sha256:abc', 'scheduler')).toBeUndefined();
  });

  it('kubernetes.redis-cluster-init is info (not pass, not fail) when Redis is not a cluster', async () => {
    const objs = compliant();
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'cordum-redis-config')!;
    cm.data['redis.conf'] = cm.data['redis.conf'].replace('cluster-enabled yes', 'cluster-enabled no');
    const r = await runAudit({ mode: 'static', objects: objs, now: NOW, checks: ALL_CHECKS.filter((c) => c.id === 'kubernetes.redis-cluster-init') });
    expect(statusOf(r, 'kubernetes.redis-cluster-init')).toBe('info');
  });

  it('kubernetes.crds-installed (static) only warns: CRDs are usually installed by their operators', async () => {
    const objs = compliant().filter((o) => o.kind !== 'CustomResourceDefinition');
    const r = await runAudit({ mode: 'static', objects: objs, now: NOW });
    const o = r.results.find((x) => x.id === 'kubernetes.crds-installed')!;
    expect(o.status).toBe('warn');
    for (const k of ['ServiceMonitor (monitoring.coreos.com)', 'PrometheusRule (monitoring.coreos.com)', 'Certificate (cert-manager.io)', 'ExternalSecret (external-secrets.io)']) expect(o.message).toContain(k);
    expect(r.exitCode).toBe(0);
  });
});
