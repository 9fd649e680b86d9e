// Static checks of deploy/k8s: every manifest parses, kustomize renders it, and the hardening the
// readiness audit (and deploy.md's Kubernetes advice) asks for is present on every runbook pod.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DRILL_CONFIGMAP as BACKUP_DRILL_CONFIGMAP } from '../../helpers/backup/history.js';
import { DRILL_CONFIGMAP, loadManifestDir, parseManifestText, runAudit } from '../../helpers/readiness/index.js';
import { loadProfile } from '../../helpers/target.js';
import { K8S_DIR, REPO, allDocs, byKind, loadK8sDir, loadYamlFile, type Doc } from './k8s-fixture.js';

const NAMESPACE = 'cordum';
const docs = allDocs();
const cronJobs = byKind(docs, 'CronJob');
const podSpec = (cj: Doc) => cj.spec.jobTemplate.spec.template.spec;
const container = (cj: Doc) => podSpec(cj).containers[0];

function kubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('deploy/k8s parses and renders', () => {
  it('every file is valid YAML with well-formed, labelled objects in the Cordum namespace', () => {
    const files = loadK8sDir();
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) {
      expect(f.errors, f.file).toEqual([]);
      for (const d of f.docs) {
        const where = `${d.kind}/${d.metadata?.name} in ${f.file}`;
        expect(d.apiVersion, where).toBeTruthy();
        expect(d.metadata.namespace, where).toBe(NAMESPACE);
        expect(d.metadata.labels, where).toMatchObject({
          'app.kubernetes.io/name': 'cordum-runbooks',
          'app.kubernetes.io/part-of': 'cordum',
        });
        expect(d.metadata.labels?.['app.kubernetes.io/component'], where).toBeTruthy();
      }
    }
  });

  it('the kustomization lists every manifest file, and each one exists', () => {
    const kustomization = loadYamlFile(join(K8S_DIR, 'kustomization.yaml')).docs[0];
    expect(kustomization.namespace).toBe(NAMESPACE);
    const resources: string[] = kustomization.resources;
    for (const r of resources) expect(existsSync(join(K8S_DIR, r)), r).toBe(true);
    expect([...resources].sort()).toEqual(loadK8sDir().map((f) => f.file.slice(K8S_DIR.length + 1)));
    expect(kustomization.images).toEqual([
      expect.objectContaining({ name: 'cordum-runbooks', newTag: expect.stringMatching(/^\d+\.\d+\.\d+$/) }),
    ]);
  });

  it.skipIf(!kubectl())('renders with `kubectl kustomize` (what `kubectl apply -k` does)', () => {
    const out = execFileSync('kubectl', ['kustomize', K8S_DIR], { encoding: 'utf8' });
    const rendered = parseManifestText(out, 'kustomize');
    expect(rendered.errors).toEqual([]);
    expect(rendered.objects).toHaveLength(docs.length);
    const images = byKind(rendered.objects as Doc[], 'CronJob').map((cj) => container(cj).image);
    for (const image of images) expect(image).toMatch(/\/cordum-runbooks:\d+\.\d+\.\d+$/);
  });
});

describe('RBAC: least privilege per runbook group', () => {
  const roles = byKind(docs, 'Role');
  const bindings = byKind(docs, 'RoleBinding');
  const role = (name: string) => roles.find((r) => r.metadata.name === name)!;
  const grants = (r: Doc) =>
    r.rules.flatMap((rule: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }) =>
      rule.resources.map((res) => ({ group: rule.apiGroups[0], res, verbs: rule.verbs, names: rule.resourceNames })),
    );

  it('has no wildcards anywhere', () => {
    for (const r of roles) {
      for (const rule of r.rules) {
        for (const field of ['apiGroups', 'resources', 'verbs']) expect(rule[field], r.metadata.name).not.toContain('*');
      }
    }
  });

  it('readiness can only get and list what the audit reads, and never lists Secrets', () => {
    const g = grants(role('cordum-runbooks-readiness'));
    const [secrets, ...rest] = [g.filter((x: { res: string }) => x.res === 'secrets'), g.filter((x: { res: string }) => x.res !== 'secrets')];
    for (const x of rest[0]) expect(x.verbs, x.res).toEqual(['get', 'list']);
    const resources = rest[0].map((x: { res: string }) => x.res).sort();
    expect(resources).toEqual(
      [
        'certificates', 'configmaps', 'cronjobs', 'daemonsets', 'deployments', 'externalsecrets', 'horizontalpodautoscalers', 'ingresses', 'jobs',
        'limitranges', 'networkpolicies', 'persistentvolumeclaims', 'poddisruptionbudgets', 'podmonitors', 'pods',
        'probes', 'prometheusrules', 'sealedsecrets', 'serviceaccounts', 'servicemonitors', 'services', 'statefulsets',
      ].sort(),
    );
    // Secrets: get by name, the four TLS Secrets only (the API key is checked through the gateway).
    expect(secrets).toEqual([{ group: '', res: 'secrets', verbs: ['get'], names: ['cordum-nats-server-tls', 'cordum-redis-server-tls', 'cordum-client-tls', 'cordum-ingress-tls'] }]);
  });

  it('backup-restore gets its lease and its own drill record, nothing else', () => {
    const g = grants(role('cordum-runbooks-backup-restore'));
    expect(g).toEqual([
      { group: 'coordination.k8s.io', res: 'leases', verbs: ['create'], names: undefined },
      { group: 'coordination.k8s.io', res: 'leases', verbs: ['get', 'update', 'delete'], names: ['cordum-runbooks-restore-drill'] },
      { group: '', res: 'configmaps', verbs: ['get', 'patch'], names: [DRILL_CONFIGMAP] },
    ]);
    // The drill writes and the audit reads the same ConfigMap, and this package ships it.
    expect(BACKUP_DRILL_CONFIGMAP).toBe(DRILL_CONFIGMAP);
    expect(byKind(docs, 'ConfigMap').map((c) => c.metadata.name)).toContain(DRILL_CONFIGMAP);
  });

  it('binds each Role to its own ServiceAccount; the network-only runbooks have none', () => {
    const accounts = byKind(docs, 'ServiceAccount');
    expect(accounts.map((a) => a.metadata.name).sort()).toEqual(
      ['cordum-runbooks', 'cordum-runbooks-backup-restore', 'cordum-runbooks-readiness'],
    );
    for (const a of accounts) expect(a.automountServiceAccountToken, a.metadata.name).toBe(false);
    for (const b of bindings) {
      expect(roles.map((r) => r.metadata.name)).toContain(b.roleRef.name);
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: b.roleRef.name, namespace: NAMESPACE }]);
    }
    expect(bindings.flatMap((b) => b.subjects.map((s: { name: string }) => s.name))).not.toContain('cordum-runbooks');
  });
});

describe('CronJobs', () => {
  const byComponent = Object.fromEntries(cronJobs.map((cj) => [cj.metadata.labels!['app.kubernetes.io/component'], cj]));

  it('one per runbook group, on the intended schedules and runbooks', () => {
    expect(Object.keys(byComponent).sort()).toEqual(['backup-restore', 'nightly', 'readiness']);
    const runs = (cj: Doc) => container(cj).args.slice(0, container(cj).args.indexOf('--'));
    expect(runs(byComponent.nightly)).toEqual(['smoke', 'dlq-retry', 'policy', 'audit-trail']);
    expect(runs(byComponent.readiness)).toEqual(['readiness']);
    expect(runs(byComponent['backup-restore'])).toEqual(['backup-restore']);
    expect(byComponent.nightly.spec.schedule).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(byComponent.readiness.spec.schedule).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(byComponent['backup-restore'].spec.schedule).toMatch(/^\d+ \d+ \* \* [0-6]$/);
    for (const cj of cronJobs) {
      expect(container(cj).command).toEqual(['/bin/sh', '/app/deploy/run-group.sh']);
      expect(container(cj).args.slice(-3)).toEqual(['--', '--target', 'in-cluster']);
    }
  });

  it.each(cronJobs.map((cj) => [cj.metadata.name, cj] as const))('%s: run controls are bounded', (_name, cj) => {
    expect(cj.spec.concurrencyPolicy).toBe('Forbid');
    expect(cj.spec.startingDeadlineSeconds).toBeGreaterThan(0);
    expect(cj.spec.successfulJobsHistoryLimit).toBeGreaterThan(0);
    expect(cj.spec.failedJobsHistoryLimit).toBeGreaterThan(0);
    const job = cj.spec.jobTemplate.spec;
    expect(job.backoffLimit).toBeGreaterThanOrEqual(0);
    expect(job.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(podSpec(cj).restartPolicy).toBe('Never');
  });

  it.each(cronJobs.map((cj) => [cj.metadata.name, cj] as const))('%s: pod and container are hardened', (_name, cj) => {
    const pod = podSpec(cj);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers).toHaveLength(1);
    expect(pod.initContainers).toBeUndefined();
    const c = container(cj);
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext.capabilities.add).toBeUndefined();
    for (const kind of ['requests', 'limits']) {
      expect(c.resources[kind].cpu, kind).toBeTruthy();
      expect(c.resources[kind].memory, kind).toBeTruthy();
    }
    // Pinned tag, never latest (kustomization.yaml maps it to the registry and can add a digest).
    expect(c.image).toMatch(/^cordum-runbooks:\d+\.\d+\.\d+$/);
    // A writable /tmp on a read-only root filesystem.
    const mounts = Object.fromEntries(c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.mountPath, m.name]));
    const volumes = Object.fromEntries(pod.volumes.map((v: { name: string }) => [v.name, v]));
    expect(volumes[mounts['/tmp']].emptyDir).toBeDefined();
    expect(volumes[mounts['/reports']].persistentVolumeClaim.claimName).toBe('cordum-runbooks-reports');
    expect(volumes[mounts['/etc/cordum-tls']].secret.secretName).toBe('cordum-client-tls');
    expect(volumes[mounts['/app/targets/in-cluster.yaml']].configMap.name).toBe('cordum-runbooks-target');
    const env = Object.fromEntries(c.env.map((e: { name: string }) => [e.name, e]));
    expect(env.RUNBOOK_REPORTS_DIR.value).toBe('/reports');
    expect(env.CORDUM_API_KEY.valueFrom.secretKeyRef).toEqual({ name: 'cordum-api-key', key: 'API_KEY' });
    expect(env.CORDUM_API_KEY.value).toBeUndefined();
  });

  it('mounts a Kubernetes token only where the runbooks use the API, with the matching account', () => {
    expect(podSpec(byComponent.nightly)).toMatchObject({ automountServiceAccountToken: false, serviceAccountName: 'cordum-runbooks' });
    expect(podSpec(byComponent.readiness)).toMatchObject({ automountServiceAccountToken: true, serviceAccountName: 'cordum-runbooks-readiness' });
    expect(podSpec(byComponent['backup-restore'])).toMatchObject({
      automountServiceAccountToken: true,
      serviceAccountName: 'cordum-runbooks-backup-restore',
    });
  });

  it('every referenced ConfigMap and PVC is part of the package', () => {
    const names = (kind: string) => byKind(docs, kind).map((d) => d.metadata.name);
    for (const cj of cronJobs) {
      for (const v of podSpec(cj).volumes) {
        if (v.configMap) expect(names('ConfigMap')).toContain(v.configMap.name);
        if (v.persistentVolumeClaim) expect(names('PersistentVolumeClaim')).toContain(v.persistentVolumeClaim.claimName);
      }
    }
  });
});

describe('NetworkPolicy', () => {
  const policies = byKind(docs, 'NetworkPolicy');
  const main = policies.find((p) => p.metadata.name === 'cordum-runbooks')!;

  it('denies all ingress and allows egress only to DNS and Cordum services', () => {
    expect(main.spec.podSelector).toEqual({ matchLabels: { 'app.kubernetes.io/name': 'cordum-runbooks' } });
    expect(main.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(main.spec.ingress).toEqual([]);
    const peers = main.spec.egress.flatMap((rule: { to: unknown[] }) => rule.to);
    for (const rule of main.spec.egress) {
      expect(rule.to?.length, 'every egress rule names its peers').toBeGreaterThan(0);
      expect(rule.ports?.length, 'every egress rule names its ports').toBeGreaterThan(0);
    }
    expect(JSON.stringify(peers)).not.toContain('ipBlock');
    const ports = main.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port)).sort((a: number, b: number) => a - b);
    expect(ports).toEqual([53, 53, 4222, 6379, 8081, 8222, 9090, 9092, 9093]);
  });

  it('selects every runbook pod, and lets only readiness and backup-restore reach the Kubernetes API', () => {
    for (const cj of cronJobs) {
      const labels = cj.spec.jobTemplate.spec.template.metadata.labels;
      expect(labels['app.kubernetes.io/name']).toBe('cordum-runbooks');
    }
    const api = policies.find((p) => p.metadata.name === 'cordum-runbooks-kube-api')!;
    expect(api.spec.policyTypes).toEqual(['Egress']);
    expect(api.spec.podSelector.matchExpressions).toEqual([
      { key: 'app.kubernetes.io/component', operator: 'In', values: ['readiness', 'backup-restore'] },
    ]);
  });
});

describe('in-cluster target profile', () => {
  it('is a valid profile for helpers/target.ts, with secrets referenced by env name only', () => {
    const cm = byKind(docs, 'ConfigMap').find((c) => c.metadata.name === 'cordum-runbooks-target')!;
    const dir = mkdtempSync(join(tmpdir(), 'in-cluster-profile-'));
    writeFileSync(join(dir, 'in-cluster.yaml'), cm.data['in-cluster.yaml']);
    const profile = loadProfile(join(dir, 'in-cluster.yaml'), { env: {} });
    expect(profile.name).toBe('in-cluster');
    expect(profile.gateway.url).toBe('http://cordum-api-gateway:8081');
    expect(profile.gateway.api_key_env).toBe('CORDUM_API_KEY');
    expect(profile.nats?.url).toMatch(/^(nats|tls):\/\/cordum-nats:4222$/);
    expect(profile.redis?.url).toMatch(/^rediss?:\/\/cordum-redis:6379$/);
    expect(profile.nats?.tls?.ca_file).toMatch(/^\/etc\/cordum-tls\//);
    expect(profile.kube?.namespace).toBe(NAMESPACE);
    expect(profile.destructive.allowed).toBe(false);
    expect(parse(cm.data['in-cluster.yaml'])).not.toHaveProperty('gateway.api_key');
  });
});

describe('the project readiness audit on deploy/k8s (static)', () => {
  // These two judge Cordum's own workloads, which this package does not deploy; on our manifests
  // they can only report the absence. Anything else failing in the section is a real finding.
  const ABOUT_CORDUM_ITSELF: Record<string, RegExp> = {
    'kubernetes.security-context': /no Cordum service workloads found/,
    'kubernetes.stateful-stores': /nats \(missing\), redis \(missing\)/,
  };

  it('reports no Kubernetes-hardening failure for the runbook workloads', async () => {
    const loaded = loadManifestDir(K8S_DIR, { skipKustomizeFiles: true });
    expect(loaded.errors).toEqual([]);
    const tools = loadManifestDir(join(REPO, 'deploy/tools'));
    const report = await runAudit({ mode: 'static', objects: [...loaded.objects, ...tools.objects], namespace: NAMESPACE, now: new Date('2025-06-01T00:00:00Z') });
    const section = report.sections.find((s) => s.section === 'kubernetes')!;
    const failures = section.results.filter((r) => r.status === 'fail');
    for (const f of failures) {
      expect(ABOUT_CORDUM_ITSELF[f.id], `${f.id}: ${f.message}`).toBeDefined();
      expect(f.message).toMatch(ABOUT_CORDUM_ITSELF[f.id]);
    }
    const byId = Object.fromEntries(section.results.map((r) => [r.id, r.status]));
    expect(byId['kubernetes.resources']).toBe('pass');
    expect(byId['kubernetes.security-context-infra']).toBe('pass');
    // Pinned images are judged in the upgrades section.
    expect(report.results.find((r) => r.id === 'upgrades.pinned-images')?.status).toBe('pass');
  });

  // README › In the cluster: "READINESS_MANIFESTS=deploy/k8s pnpm runbook readiness on it alone still
  // exits 1: the other checks look for Cordum's own workloads ... and find none". Both halves hold:
  // the audit fails, and every failure, in every section, is an absence of something Cordum's own
  // install would bring, never a finding about what this package ships.
  it('fails as a whole (exit 1) only because Cordum itself is absent, as the README says', async () => {
    const loaded = loadManifestDir(K8S_DIR, { skipKustomizeFiles: true });
    const report = await runAudit({ mode: 'static', objects: loaded.objects, namespace: NAMESPACE, now: new Date('2025-06-01T00:00:00Z') });
    expect(report.exitCode).toBe(1);
    const failures = report.results.filter((r) => r.status === 'fail');
    expect(failures.length).toBeGreaterThan(0);
    const ABSENT = /^(no \S|missing |not stateful: (\w+ \(missing\)(, )?)+$)/;
    for (const f of failures) expect(f.message, `${f.id} is a finding about deploy/k8s itself, not an absence of Cordum`).toMatch(ABSENT);
    // The checks that judge runbook pods as pods are not among them.
    const failedIds = failures.map((f) => f.id);
    for (const id of ['kubernetes.resources', 'kubernetes.security-context-infra', 'upgrades.pinned-images']) expect(failedIds).not.toContain(id);
  });
});
