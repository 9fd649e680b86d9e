// deploy/k8s on a real Kubernetes API server (test/support/kube/): every shipped manifest passes
// `kubectl apply --dry-run=server` (schema and strict field validation by the server), and each Role is
// proven, not described. Each runbook that uses the Kubernetes API runs through the CLI as its CronJob
// would, authenticated with its own ServiceAccount's token from the TokenRequest API; the API server's
// audit log then shows every call it made and what the real RBAC authorizer decided. Per Role: every
// call its runbook makes is allowed, one call beyond it is refused with 403 and reported as a
// precondition naming the missing verb and resource. The calls are not listed here: they are what the
// runbook code did (issue 16 may change what the readiness audit reads; this test follows).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox, type Sandbox } from '../../sandbox/index.js';
import { createKube } from '../../helpers/kube.js';
import { PreconditionError } from '../../helpers/errors.js';
import { DRILL_CONFIGMAP, LAST_DRILL_ANNOTATION } from '../../helpers/backup/history.js';
import { startKubeCluster, type AuditEvent, type KubeCluster } from '../support/kube/cluster.js';
import { DEPLOY_K8S, DEPLOY_TOOLS, inNamespace, loadDeployTools, renderDeployK8s } from '../support/kube/manifests.js';
import { sandboxProfileYaml } from '../support/kube/profile.js';
import { RUN_TIMEOUT_MS, cleanupRuns, failedSteps, runCli, writeProfile } from '../support/run-runbook.js';

/**
 * Cluster-scoped reads the readiness audit tries and does without (deploy/k8s/rbac-readiness.yaml says
 * why: a Role cannot grant them): the Namespace's pod-security labels, the CRD list. Their refusal is
 * part of the design; any other refusal is a gap in the Role.
 */
const READINESS_OPTIONAL_CLUSTER_READS = ['namespaces', 'customresourcedefinitions'];

let cluster: KubeCluster;
let sb: Sandbox;
let NS: string;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cordum-rb-rbac-'));
  [cluster, sb] = await Promise.all([startKubeCluster(), startSandbox({ policyReloadMs: 1000 })]);
  // deploy/k8s itself lives in "cordum"; the runs use a namespace of their own with the same objects.
  const ns = await cluster.kubectl(['create', 'namespace', 'cordum']);
  if (ns.code !== 0) throw new Error(ns.stderr);
  NS = await cluster.createNamespace('rbac');
  await cluster.apply(inNamespace(await renderDeployK8s(cluster), NS));
}, 180_000);

afterAll(async () => {
  cleanupRuns();
  await cluster?.stop();
  await sb?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const sa = (name: string) => `system:serviceaccount:${NS}:${name}`;
const decision = (e: AuditEvent) => e.annotations?.['authorization.k8s.io/decision'];
const call = (e: AuditEvent) => `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}${e.objectRef?.name && e.verb !== 'create' ? ` ${e.objectRef.name}` : ''}`;

async function profileFor(serviceAccount: string): Promise<string> {
  const token = await cluster.serviceAccountToken(NS, serviceAccount);
  return writeProfile(sandboxProfileYaml(sb, { kubeconfig: cluster.kubeconfigForToken(token, NS), namespace: NS }, { name: `in-cluster-${serviceAccount}`, backupDir: join(work, serviceAccount) }));
}

describe('every manifest the project ships passes kubectl apply --dry-run=server', () => {
  it('deploy/k8s (as kustomize renders it) and deploy/tools/*.yaml', async () => {
    const k = await cluster.kubectl(['apply', '-k', DEPLOY_K8S, '--dry-run=server']);
    expect(k.code, k.stderr).toBe(0);
    const rendered = await renderDeployK8s(cluster);
    for (const o of rendered) expect(k.stdout, `${o.kind} ${o.metadata.name}`).toMatch(new RegExp(`${o.metadata.name} (created|configured|unchanged) \\(server dry run\\)`));
    // The tools run next to an installed package (the reports reader uses its ServiceAccount): install it, then check them.
    const installed = await cluster.kubectl(['apply', '-k', DEPLOY_K8S]);
    expect(installed.code, installed.stderr).toBe(0);
    for (const { file, docs } of loadDeployTools()) {
      const r = await cluster.kubectl(['apply', '-f', join(DEPLOY_TOOLS, file.replace('deploy/tools/', '')), '--dry-run=server']);
      expect(r.code, `${file}: ${r.stderr}`).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(docs.length);
    }
  });

  it('the server check is strict: an unknown field or a bad value is refused (so the checks above can fail)', async () => {
    const cm = readFileSync(join(DEPLOY_K8S, 'drill-record.yaml'), 'utf8');
    const typo = await cluster.kubectl(['apply', '-f', '-', '--dry-run=server'], { input: cm.replace('data: {}', 'data: {}\nspec: {replicas: 1}') });
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toMatch(/unknown field "spec"/);
    const badSchedule = edited('cronjob-nightly.yaml', (t) => t.replace('schedule: "15 2 * * *"', 'schedule: "every night"'));
    const bad = await cluster.kubectl(['apply', '-f', '-', '--dry-run=server'], { input: badSchedule });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.schedule: Invalid value: "every night"/);
  });
});

function edited(file: string, edit: (text: string) => string): string {
  const text = readFileSync(join(DEPLOY_K8S, file), 'utf8');
  const out = edit(text);
  if (out === text) throw new Error(`edit did not change ${file}`);
  return out;
}

describe('RBAC of deploy/k8s, proven with each ServiceAccount\'s own token', () => {
  it('readiness: the in-cluster audit reads everything its Role grants and is refused nothing else; a write is 403, reported as a precondition naming verb and resource', async () => {
    const profile = await profileFor('cordum-runbooks-readiness');
    const before = cluster.auditEvents().length;
    const r = await runCli(['readiness', '--target', profile], { env: { [SANDBOX_API_KEY_ENV]: sb.apiKey } });
    const out = r.stdout + r.stderr;
    expect(r.summary, out).toBeDefined();
    expect(r.code, out).not.toBe(3);
    expect(r.summary!.steps.find((s) => s.name.startsWith('Run the audit'))?.status, out).toBe('passed');

    const calls = cluster.auditEvents().slice(before).filter((e) => e.user.username === sa('cordum-runbooks-readiness'));
    const refused = calls.filter((e) => decision(e) !== 'allow');
    // Listing Secrets is refused by design: the audit then reads the Role's named TLS Secrets one by one.
    const secretListFallback = (e: (typeof refused)[number]) => e.verb === 'list' && e.objectRef?.resource === 'secrets';
    expect(refused.filter(secretListFallback).length, 'the audit tries to list Secrets once, then reads them by name').toBeLessThanOrEqual(1);
    expect(refused.filter((e) => !secretListFallback(e) && !READINESS_OPTIONAL_CLUSTER_READS.includes(e.objectRef?.resource ?? '')).map(call), 'namespaced reads the Role does not grant').toEqual([]);
    const allowed = calls.filter((e) => decision(e) === 'allow');
    expect(allowed.every((e) => ['get', 'list'].includes(e.verb)), 'the audit only reads').toBe(true);
    // It really read the namespace: Deployments, CronJobs, ConfigMaps, Secrets (for certificates) at least.
    for (const res of ['deployments', 'cronjobs', 'configmaps', 'secrets', 'pods']) expect(allowed.map((e) => e.objectRef?.resource), res).toContain(res);

    const kube = createKube(undefined, { kubeconfig: cluster.kubeconfigForToken(await cluster.serviceAccountToken(NS, 'cordum-runbooks-readiness'), NS), namespace: NS });
    const err = await kube.patchCronJobSuspend(NS, 'cordum-runbooks-nightly', true).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PreconditionError);
    expect((err as Error).message).toMatch(/suspend cronjob .*: 403 .*\(RBAC: the Role lacks verb "patch" on "cronjobs" \(apiGroup "batch"\)\)/);
  }, RUN_TIMEOUT_MS);

  it('backup-restore: the in-cluster drill takes its Lease and records itself on the drill ConfigMap, every call allowed; another ConfigMap is 403', async () => {
    const profile = await profileFor('cordum-runbooks-backup-restore');
    const before = cluster.auditEvents().length;
    const r = await runCli(['backup-restore', '--target', profile], { env: { [SANDBOX_API_KEY_ENV]: sb.apiKey }, deadlineMs: 200_000 });
    const out = r.stdout + r.stderr;
    expect(r.code, `${out}\n${JSON.stringify(r.summary && failedSteps(r as never))}`).toBe(0);

    const calls = cluster.auditEvents().slice(before).filter((e) => e.user.username === sa('cordum-runbooks-backup-restore'));
    expect(calls.filter((e) => decision(e) !== 'allow').map(call), 'calls its Role refused').toEqual([]);
    const made = calls.map(call);
    expect(made).toContain('create leases');
    expect(made).toContain('delete leases cordum-runbooks-restore-drill');
    expect(made).toContain(`patch configmaps ${DRILL_CONFIGMAP}`);
    const cm = await createKube(undefined, { kubeconfig: cluster.kubeconfigPath }).core.readNamespacedConfigMap({ name: DRILL_CONFIGMAP, namespace: NS });
    expect(cm.metadata?.annotations?.[LAST_DRILL_ANNOTATION]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const kube = createKube(undefined, { kubeconfig: cluster.kubeconfigForToken(await cluster.serviceAccountToken(NS, 'cordum-runbooks-backup-restore'), NS), namespace: NS });
    const err = await kube.core.patchNamespacedConfigMap({ name: 'cordum-runbooks-target', namespace: NS, body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }] }).catch((e: unknown) => e);
    expect((err as { code?: number }).code).toBe(403);
    // (The runner's exit 3 for this Role is proven in test/backup/in-place-cli.test.ts: it cannot freeze writers.)
  }, RUN_TIMEOUT_MS);

  it('the nightly runbooks\' ServiceAccount has no Kubernetes access at all', async () => {
    const kube = createKube(undefined, { kubeconfig: cluster.kubeconfigForToken(await cluster.serviceAccountToken(NS, 'cordum-runbooks'), NS), namespace: NS });
    const err = await kube.listAll().then(
      (res) => res,
      (e: Error) => e,
    );
    // listAll reports forbidden kinds as skipped; every namespaced kind is skipped with a 403.
    expect(err).not.toBeInstanceOf(Error);
    const res = err as Awaited<ReturnType<typeof kube.listAll>>;
    expect(res.objects.filter((o) => o.kind !== 'Namespace')).toEqual([]);
    expect(res.skipped.filter((s) => !/403/.test(s.reason)).map((s) => s.kind).filter((k) => !['ServiceMonitor', 'PodMonitor', 'Probe', 'PrometheusRule'].includes(k))).toEqual([]);
    await expect(kube.getOrCreateLease('cordum-runbooks-restore-drill', 'x', { namespace: NS })).rejects.toThrow(/403 .*RBAC: the Role lacks verb "create" on "leases"/);
  });
});
