// The compliant namespace on the tests' real API server, for the live readiness tests: the fixture's
// CRDs installed cluster-wide, each variant's objects applied into the namespace the fixture names
// ("cordum": certificate SANs and Redis addresses spell it out) after the previous variant's objects
// are deleted, and the status a healthy cluster's controllers and kubelets would report written through
// each object's status subresource (there are no controllers here to overwrite it).
import type { AuditEvent, KubeCluster } from '../support/kube/cluster.js';
import type { FakeObject } from '../support/fake-kube.js';
import { compliant } from './fixtures.js';

const ADMIN = 'cordum-runbooks-test-admin';

export interface LiveNamespace {
  namespace: string;
  kubeconfigPath: string;
  /** The admin's requests in this namespace (and cluster-wide reads) since the objects were applied: what the audit did. */
  calls(): { verb: string; path: string }[];
}

const crds = () => compliant().filter((o) => o.kind === 'CustomResourceDefinition') as FakeObject[];

/** Install (again) the fixture's CRDs and wait until the API server serves them. */
export async function installCrds(cluster: KubeCluster): Promise<void> {
  const list = crds();
  await cluster.apply(list);
  const r = await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...list.map((c) => `crd/${c.metadata.name}`)]);
  if (r.code !== 0) throw new Error(`CRDs not established: ${r.stderr.trim()}`);
}

/** Kinds served by the fixture's CRDs; custom objects of other kinds (their operators' CRDs are not in the fixture) are left out. */
function servedCustomKinds(): Set<string> {
  return new Set(crds().map((c) => (c.spec as { names: { kind: string } }).names.kind));
}

const BUILTIN = /^(v1|apps\/v1|batch\/v1|networking\.k8s\.io\/v1|policy\/v1|autoscaling\/v2|rbac\.authorization\.k8s\.io\/v1|coordination\.k8s\.io\/v1)$/;

/** Kinds applied by earlier variants, deleted before the next one is applied. */
const applied = new Set<string>();

export async function applyLiveNamespace(cluster: KubeCluster, objs: FakeObject[], namespace: string): Promise<LiveNamespace> {
  const nsObj = objs.find((o) => o.kind === 'Namespace');
  const exists = await cluster.kubectl(['get', 'namespace', namespace]);
  if (exists.code !== 0) {
    const r = await cluster.kubectl(['create', 'namespace', namespace]);
    if (r.code !== 0) throw new Error(`create namespace ${namespace}: ${r.stderr.trim()}`);
  }
  if (nsObj?.metadata.labels) await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: nsObj.metadata.labels } }]);
  if (applied.size) {
    // A kind whose CRD a test removed is gone with it: drop it from the list and clear the rest.
    let r = await cluster.kubectl(['delete', '-n', namespace, [...applied].join(','), '--all', '--wait=true', '--timeout=60s']);
    const gone = /doesn't have a resource type "([^"]+)" in group "([^"]+)"/.exec(r.stderr);
    if (r.code !== 0 && gone) {
      applied.delete(`${gone[1]}.${gone[2]}`);
      r = await cluster.kubectl(['delete', '-n', namespace, [...applied].join(','), '--all', '--wait=true', '--timeout=60s']);
    }
    if (r.code !== 0) throw new Error(`clearing namespace ${namespace} failed: ${r.stderr.trim()}`);
  }
  const custom = servedCustomKinds();
  const placed = objs
    .filter((o) => o.kind !== 'Namespace' && o.kind !== 'CustomResourceDefinition' && (BUILTIN.test(o.apiVersion) || custom.has(o.kind)))
    .map((o) => {
      const c = structuredClone(o);
      c.metadata.namespace = namespace;
      // Server-owned: a real API server sets these itself.
      delete c.metadata.creationTimestamp;
      delete c.metadata.uid;
      delete c.metadata.resourceVersion;
      return c;
    });
  for (const o of placed) applied.add(`${o.kind.toLowerCase()}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}`.replace(/\.$/, ''));
  await cluster.apply(placed.map(({ status: _status, ...rest }) => rest));
  const withStatus = placed.filter((o) => o.status && Object.keys(o.status).length);
  if (withStatus.length) {
    const r = await cluster.kubectl(['replace', '--subresource=status', '-f', '-'], { input: withStatus.map((o) => JSON.stringify(o)).join('\n') });
    if (r.code !== 0) throw new Error(`writing the fixture statuses failed: ${r.stderr.trim()}`);
  }
  const from = cluster.auditEvents().length;
  return {
    namespace,
    kubeconfigPath: cluster.kubeconfigPath,
    calls: () =>
      cluster
        .auditEvents()
        .slice(from)
        .filter((e: AuditEvent) => e.user.username === ADMIN && (e.objectRef?.namespace === namespace || (e.objectRef?.resource === 'namespaces' && e.objectRef.name === namespace) || (!e.objectRef?.namespace && e.verb === 'list')))
        .map((e) => ({ verb: e.verb, path: e.requestURI.split('?')[0]! })),
  };
}
