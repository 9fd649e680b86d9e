// The manifest loader (folders, multi-doc, List kinds, JSON, kustomize through kubectl, stdin-like
// text) and helpers/kube.ts against a real kube-apiserver (test/support/kube/: leases, scale, CronJob
// suspend, HPA, 404/403 errors, a dead server), plus the faults only a fake can inject (500, reset,
// an API server that never answers).
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { findBinary } from '../../helpers/processes.js';
import { loadManifests, loadManifestDir, readStdin, runAudit } from '../../helpers/readiness/index.js';
import { ObjectIndex } from '../../helpers/readiness/objects.js';
import { createKube, microTime, type Kube } from '../../helpers/kube.js';
import { PreconditionError, UnreachableError } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { startFakeKube } from '../support/fake-kube.js';
import { startKubeCluster, type KubeCluster } from '../support/kube/cluster.js';
import { freePort } from '../../helpers/processes.js';
import { compliant, COMPLIANT_DIR, NOW } from './fixtures.js';

describe('manifest loader', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cordum-rb-manifests-'));
    mkdirSync(join(dir, 'nested'));
    writeFileSync(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}\n- {apiVersion: v1, kind: Secret, metadata: {name: three}}\n');
    writeFileSync(join(dir, 'nested', 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'ServiceList', items: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'four' } }] }));
    writeFileSync(join(dir, 'nested', 'c.yml'), 'kind: ConfigMap\nmetadata:\n  name: five\n  labels: {a: [\n');
    writeFileSync(join(dir, 'README.md'), '# not yaml');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads folders recursively, multi-doc, List kinds and JSON; parse errors name file and line', () => {
    const m = loadManifestDir(dir);
    expect(m.objects.map((o) => o.metadata.name)).toEqual(['one', 'two', 'three', 'four']);
    expect(m.errors.length).toBeGreaterThan(0);
    for (const e of m.errors) expect(e).toMatch(/c\.yml:\d+: /);
  });

  it('reads stdin', async () => {
    const m = await readStdin(Readable.from([Buffer.from('kind: ConfigMap\nmetadata: {name: x}\n---\nkind: Secret\nmetadata: {name: y}\n')]));
    expect(m.objects.map((o) => o.kind)).toEqual(['ConfigMap', 'Secret']);
  });

  it.skipIf(!findBinary('kubectl'))('renders a kustomize overlay with kubectl, and reports a render error while auditing the rest', async () => {
    const k = join(dir, 'overlay');
    mkdirSync(k);
    writeFileSync(join(k, 'kustomization.yaml'), `resources:\n${['10-cordum-services.yaml', '20-stores.yaml'].map((f) => `- ${f}`).join('\n')}\nnamespace: cordum\n`);
    for (const f of ['10-cordum-services.yaml', '20-stores.yaml']) writeFileSync(join(k, f), (await import('node:fs')).readFileSync(join(COMPLIANT_DIR, f)));
    const ok = await loadManifests(k);
    expect(ok.rendered).toBe(true);
    expect(ok.errors).toEqual([]);
    expect(new ObjectIndex(ok.objects).component('nats')).toHaveLength(1);

    writeFileSync(join(k, 'kustomization.yaml'), 'resources:\n- 10-cordum-services.yaml\n- missing.yaml\n');
    const bad = await loadManifests(k);
    expect(bad.rendered).toBe(false);
    expect(bad.errors[0]).toMatch(/render failed \(kubectl kustomize/);
    expect(bad.objects.length).toBeGreaterThan(5); // fell back to the raw files
    const r = await runAudit({ mode: 'static', objects: bad.objects, loadErrors: bad.errors, now: NOW });
    expect(r.results.find((x) => x.id === 'kubernetes.renders')!.status).toBe('fail');
    expect(r.results.find((x) => x.id === 'kubernetes.probes')!.status).toBe('pass');
  });

  it('indexes 1,000 objects once (sanity, not a timing assertion)', async () => {
    const base = compliant();
    const many = [...base];
    for (let i = 0; many.length < 1000; i++) many.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `filler-${i}`, namespace: 'cordum' }, data: {} });
    const r = await runAudit({ mode: 'static', objects: many, now: NOW });
    expect(r.results.filter((x) => x.status === 'fail')).toEqual([]);
  });
});

describe('helpers/kube.ts against a real API server', () => {
  let cluster: KubeCluster;
  let kube: Kube;
  let NS: string;
  const profile = { name: 't', source: 't', kube: {} } as unknown as TargetProfile;

  beforeAll(async () => {
    cluster = await startKubeCluster({ users: { 'no-rights': ['nobody'] } });
    NS = await cluster.createNamespace('cordum');
    // The compliant namespace without the Prometheus Operator objects and CRDs: a cluster lacking those CRDs.
    const objs = compliant().filter((o) => !o.apiVersion?.startsWith('monitoring.coreos.com') && !o.apiVersion?.startsWith('cert-manager.io') && !o.apiVersion?.startsWith('external-secrets.io') && o.kind !== 'CustomResourceDefinition');
    await cluster.apply(objs.map((o) => ({ ...o, metadata: { ...o.metadata, namespace: NS } })));
    kube = createKube(profile, { kubeconfig: cluster.kubeconfigPath, namespace: NS });
  }, 180_000);
  afterAll(() => cluster?.stop());

  it('lists the audit kinds; absent CRDs are reported as skipped', async () => {
    const { objects, skipped } = await kube.listAll();
    expect(objects.filter((o) => o.kind === 'Deployment')).toHaveLength(5);
    expect(objects.every((o) => o.kind && o.apiVersion)).toBe(true);
    expect(skipped).toEqual(expect.arrayContaining([{ kind: 'ServiceMonitor', reason: 'CRD not installed' }, { kind: 'PrometheusRule', reason: 'CRD not installed' }]));
  });

  it('scales deployments and statefulsets through the scale subresource', async () => {
    expect(await kube.scaleDeployment(NS, 'cordum-scheduler', 0)).toBe(0);
    expect((await kube.apps.readNamespacedDeployment({ name: 'cordum-scheduler', namespace: NS })).spec?.replicas).toBe(0);
    const ev = cluster.auditEvents().find((e) => e.verb === 'patch' && e.objectRef?.resource === 'deployments' && e.objectRef.subresource === 'scale' && e.objectRef.name === 'cordum-scheduler');
    expect(ev?.requestObject).toEqual({ spec: { replicas: 0 } });
    expect(await kube.setDeploymentReplicas(NS, 'cordum-scheduler', 2)).toEqual({ before: 0, changed: true });
    expect(await kube.setDeploymentReplicas(NS, 'cordum-scheduler', 5, (n) => n === 0)).toEqual({ before: 2, changed: false });
    expect(await kube.scaleStatefulSet(NS, 'cordum-nats', 3)).toBe(3);
  });

  it('suspends and resumes CronJobs, reads and patches HPAs', async () => {
    await kube.patchCronJobSuspend(NS, 'cordum-redis-backup', true);
    expect((await kube.batch.readNamespacedCronJob({ name: 'cordum-redis-backup', namespace: NS })).spec?.suspend).toBe(true);
    await kube.patchCronJobSuspend(NS, 'cordum-redis-backup', false);
    expect((await kube.batch.readNamespacedCronJob({ name: 'cordum-redis-backup', namespace: NS })).spec?.suspend).toBe(false);
    expect((await kube.getHpa(NS, 'cordum-api-gateway'))?.spec?.minReplicas).toBe(2);
    expect(await kube.getHpa(NS, 'nope')).toBeUndefined();
    expect((await kube.patchHpa(NS, 'cordum-api-gateway', { spec: { minReplicas: 3 } })).spec?.minReplicas).toBe(3);
  });

  it('leases are exclusive until released or expired', async () => {
    expect(await kube.getOrCreateLease('drill-lock', 'run-a')).toMatchObject({ acquired: true, holder: 'run-a' });
    expect(await kube.getOrCreateLease('drill-lock', 'run-b')).toMatchObject({ acquired: false, holder: 'run-a' });
    expect(await kube.getOrCreateLease('drill-lock', 'run-a')).toMatchObject({ acquired: true });
    expect(await kube.releaseLease('drill-lock', 'run-b')).toBe(false);
    expect(await kube.releaseLease('drill-lock', 'run-a')).toBe(true);
    expect(await kube.getOrCreateLease('drill-lock', 'run-b', { durationSeconds: 1 })).toMatchObject({ acquired: true });
    const l = await kube.coordination.readNamespacedLease({ name: 'drill-lock', namespace: NS });
    await kube.coordination.replaceNamespacedLease({ name: 'drill-lock', namespace: NS, body: { ...l, spec: { ...l.spec, renewTime: microTime(new Date(Date.now() - 60_000)) } } });
    expect(await kube.getOrCreateLease('drill-lock', 'run-c')).toMatchObject({ acquired: true, holder: 'run-c' }); // expired lease taken over
    await kube.releaseLease('drill-lock', 'run-c');
  });

  it('maps API errors to one-line PreconditionError (404, 403 naming the missing permission) and a dead server to UnreachableError', async () => {
    await expect(kube.scaleDeployment(NS, 'missing', 1)).rejects.toThrow(PreconditionError);
    await expect(kube.scaleDeployment(NS, 'missing', 1)).rejects.toThrow(new RegExp(`^scale deployment ${NS}/missing to 1: 404 deployments.apps "missing" not found$`));
    const nobody = createKube(profile, { kubeconfig: cluster.kubeconfigForToken(cluster.userTokens['no-rights']!, NS), namespace: NS });
    const err = await nobody.patchCronJobSuspend(NS, 'cordum-redis-backup', true).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PreconditionError);
    expect((err as Error).message).toBe(
      `suspend cronjob ${NS}/cordum-redis-backup: 403 cronjobs.batch "cordum-redis-backup" is forbidden: User "no-rights" cannot patch resource "cronjobs" in API group "batch" in the namespace "${NS}" (RBAC: the Role lacks verb "patch" on "cronjobs" (apiGroup "batch"))`,
    );
    // The same kubeconfig pointed at a port nothing listens on: connection refused.
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-kc-'));
    try {
      const file = join(dir, 'kubeconfig');
      writeFileSync(file, readFileSync(cluster.kubeconfigPath, 'utf8').replace(cluster.server, `https://127.0.0.1:${port}`));
      const dead = createKube(profile, { kubeconfig: file, namespace: NS });
      await expect(dead.scaleDeployment(NS, 'x', 1)).rejects.toThrow(UnreachableError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unknown kubeconfig context with a clear message', () => {
    expect(() => createKube({ ...profile, kube: { namespace: 'cordum', context: 'prod' } } as TargetProfile, { kubeconfig: cluster.kubeconfigPath })).toThrow(/no context "prod" \(have: admin\)/);
  });
});

describe('helpers/kube.ts under faults a real API server cannot be made to produce (fake server)', () => {
  const profile = { name: 't', source: 't', kube: { namespace: 'cordum' } } as unknown as TargetProfile;

  it('a 500 is a one-line PreconditionError; a reset connection and a server that never answers are UnreachableErrors within the deadline', async () => {
    const fake = await startFakeKube([{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'cordum-scheduler', namespace: 'cordum' }, spec: { replicas: 1 } }], { namespace: 'cordum' });
    try {
      const kube = createKube(profile, { kubeconfig: fake.kubeconfigPath, requestTimeoutMs: 1500 });
      fake.setFault(() => ({ status: 500 }));
      await expect(kube.scaleDeployment('cordum', 'cordum-scheduler', 0)).rejects.toThrow(/^scale deployment cordum\/cordum-scheduler to 0: 500 injected fault$/);
      fake.setFault(() => ({ reset: true }));
      await expect(kube.scaleDeployment('cordum', 'cordum-scheduler', 0)).rejects.toThrow(UnreachableError);
      fake.setFault(() => ({ hang: true }));
      const t0 = Date.now();
      const hung = await kube.scaleDeployment('cordum', 'cordum-scheduler', 0).catch((e: Error) => e);
      expect(hung).toBeInstanceOf(UnreachableError);
      expect((hung as Error).message).toBe('scale deployment cordum/cordum-scheduler to 0: Kubernetes API call patchNamespacedDeploymentScale got no answer within 2 s');
      // No hang: the 1.5 s request deadline plus a generous grace for a busy machine.
      expect(Date.now() - t0).toBeLessThan(1500 + 8000);
      // listAll (the readiness audit) is bounded the same way.
      await expect(kube.listAll()).rejects.toThrow(UnreachableError);
    } finally {
      fake.setFault(undefined);
      await fake.stop();
    }
  });
});
