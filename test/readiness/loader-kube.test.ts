// The manifest loader (folders, multi-doc, List kinds, JSON, kustomize through kubectl, stdin-like
// text) and helpers/kube.ts against the fake API server (leases, scale, CronJob suspend, HPA, errors).
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { findBinary } from '../../helpers/processes.js';
import { loadManifests, loadManifestDir, readStdin, runAudit } from '../../helpers/readiness/index.js';
import { ObjectIndex } from '../../helpers/readiness/objects.js';
import { createKube, type Kube } from '../../helpers/kube.js';
import { PreconditionError, UnreachableError } from '../../helpers/errors.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { startFakeKube, type FakeKube } from '../support/fake-kube.js';
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

describe('helpers/kube.ts against the fake API server', () => {
  let fake: FakeKube;
  let kube: Kube;
  const profile = { name: 't', source: 'test', kube: { namespace: 'cordum' } } as unknown as TargetProfile;

  beforeAll(async () => {
    // Without the Prometheus Operator objects: the fake then behaves like a cluster lacking those CRDs.
    fake = await startFakeKube(compliant().filter((o) => !o.apiVersion?.startsWith('monitoring.coreos.com')) as any, { namespace: 'cordum' });
    kube = createKube(profile, { kubeconfig: fake.kubeconfigPath });
  });
  afterAll(() => fake.stop());

  it('lists the audit kinds; absent CRDs are reported as skipped', async () => {
    const { objects, skipped } = await kube.listAll();
    expect(objects.filter((o) => o.kind === 'Deployment')).toHaveLength(5);
    expect(objects.every((o) => o.kind && o.apiVersion)).toBe(true);
    expect(skipped.map((s) => s.kind)).toEqual(expect.arrayContaining(['ServiceMonitor', 'PrometheusRule']));
  });

  it('scales deployments through the scale subresource (merge patch)', async () => {
    expect(await kube.scaleDeployment('cordum', 'cordum-scheduler', 0)).toBe(0);
    const d = await kube.apps.readNamespacedDeployment({ name: 'cordum-scheduler', namespace: 'cordum' });
    expect(d.spec?.replicas).toBe(0);
    const req = fake.requests().find((r) => r.method === 'PATCH' && r.path.endsWith('/deployments/cordum-scheduler/scale'))!;
    expect(req.contentType).toBe('application/merge-patch+json');
    await kube.scaleDeployment('cordum', 'cordum-scheduler', 1);
    expect(await kube.scaleStatefulSet('cordum', 'cordum-nats', 3)).toBe(3);
  });

  it('suspends and resumes CronJobs, reads and patches HPAs', async () => {
    await kube.patchCronJobSuspend('cordum', 'cordum-redis-backup', true);
    expect((await kube.batch.readNamespacedCronJob({ name: 'cordum-redis-backup', namespace: 'cordum' })).spec?.suspend).toBe(true);
    await kube.patchCronJobSuspend('cordum', 'cordum-redis-backup', false);
    expect((await kube.getHpa('cordum', 'cordum-api-gateway'))?.spec?.minReplicas).toBe(2);
    expect(await kube.getHpa('cordum', 'nope')).toBeUndefined();
    expect((await kube.patchHpa('cordum', 'cordum-api-gateway', { spec: { minReplicas: 3 } })).spec?.minReplicas).toBe(3);
  });

  it('leases are exclusive until released or expired', async () => {
    expect(await kube.getOrCreateLease('drill-lock', 'run-a')).toMatchObject({ acquired: true, holder: 'run-a' });
    expect(await kube.getOrCreateLease('drill-lock', 'run-b')).toMatchObject({ acquired: false, holder: 'run-a' });
    expect(await kube.getOrCreateLease('drill-lock', 'run-a')).toMatchObject({ acquired: true });
    expect(await kube.releaseLease('drill-lock', 'run-b')).toBe(false);
    expect(await kube.releaseLease('drill-lock', 'run-a')).toBe(true);
    expect(await kube.getOrCreateLease('drill-lock', 'run-b', { durationSeconds: 1 })).toMatchObject({ acquired: true });
    const l = await kube.coordination.readNamespacedLease({ name: 'drill-lock', namespace: 'cordum' });
    await kube.coordination.replaceNamespacedLease({ name: 'drill-lock', namespace: 'cordum', body: { ...l, spec: { ...l.spec, renewTime: new Date(Date.now() - 60_000) } } });
    expect(await kube.getOrCreateLease('drill-lock', 'run-c')).toMatchObject({ acquired: true, holder: 'run-c' }); // expired lease taken over
    await kube.releaseLease('drill-lock', 'run-c');
  });

  it('maps API errors to one-line PreconditionError and dead servers to UnreachableError', async () => {
    await expect(kube.scaleDeployment('cordum', 'missing', 1)).rejects.toThrow(PreconditionError);
    await expect(kube.scaleDeployment('cordum', 'missing', 1)).rejects.toThrow(/scale deployment cordum\/missing to 1: 404 deployments.apps "missing" not found/);
    fake.setFault(({ method }) => (method === 'PATCH' ? { status: 403 } : undefined));
    await expect(kube.patchCronJobSuspend('cordum', 'cordum-redis-backup', true)).rejects.toThrow(/: 403/);
    fake.setFault(undefined);
    const dead = await startFakeKube([], {});
    const k2 = createKube(profile, { kubeconfig: dead.kubeconfigPath });
    await dead.stop();
    await expect(k2.scaleDeployment('cordum', 'x', 1)).rejects.toThrow(UnreachableError);
  });

  it('rejects an unknown kubeconfig context with a clear message', () => {
    expect(() => createKube({ ...profile, kube: { namespace: 'cordum', context: 'prod' } } as TargetProfile, { kubeconfig: fake.kubeconfigPath })).toThrow(/no context "prod" \(have: fake\)/);
  });
});
