// NOT the Kubernetes test server. The project's Kubernetes code paths are tested against a real
// kube-apiserver on etcd (test/support/kube/cluster.ts). This fake stays only for what a real server
// cannot be made to produce on demand: injected faults (500s, connection resets, an API server that
// accepts a request and never answers) and objects older than the test run (a real server stamps
// creationTimestamp and managedFields itself, so "a Secret last rotated 200 days ago" needs the fake).
//
// A small, generic fake of the Kubernetes API server for tests: real REST paths on 127.0.0.1,
// list/get/create/replace/patch/delete for any namespaced resource, the scale subresource of
// Deployments/StatefulSets, Status objects for errors, optimistic concurrency on resourceVersion,
// and a request log. Objects of custom groups (e.g. monitoring.coreos.com) are served when present
// or declared via `crds`; otherwise their lists 404 like a cluster without the CRD. Cluster-scoped
// kinds (CustomResourceDefinition, Namespace-less objects) are stored without a namespace and served
// at /apis/<group>/<version>/<plural>[/<name>], where a collection GET of a namespaced resource lists
// it across all namespaces, as the real API server does.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

export type FakeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: any }; [k: string]: any };

export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: unknown;
  status: number;
}

/**
 * Return a response to short-circuit a request (fault injection), or undefined to serve normally:
 * a status (and body), `reset` (the connection is destroyed, no answer), or `hang` (never answered).
 */
export type FaultHook = (req: { method: string; path: string }) => { status: number; body?: unknown } | { reset: true } | { hang: true } | undefined;

export interface FakeKube {
  url: string;
  kubeconfigPath: string;
  /** Current objects (deep copies). */
  objects(): FakeObject[];
  /** Requests served so far, oldest first. */
  requests(): FakeRequest[];
  /** Add or replace an object while running. */
  put(obj: FakeObject): void;
  setFault(hook: FaultHook | undefined): void;
  stop(): Promise<void>;
}

export interface FakeKubeOptions {
  /** Namespace for objects without metadata.namespace. Default "default". */
  namespace?: string;
  /** API groups to serve even with no objects (CRDs "installed"). */
  crds?: string[];
  /** Kubeconfig context name. Default "fake". */
  context?: string;
}

const BUILTIN_GROUPS = ['', 'apps', 'batch', 'networking.k8s.io', 'policy', 'autoscaling', 'coordination.k8s.io', 'rbac.authorization.k8s.io', 'apiextensions.k8s.io'];
const PREFERRED_VERSION: Record<string, string> = { '': 'v1', apps: 'v1', batch: 'v1', 'networking.k8s.io': 'v1', policy: 'v1', autoscaling: 'v2', 'coordination.k8s.io': 'v1', 'rbac.authorization.k8s.io': 'v1', 'apiextensions.k8s.io': 'v1' };
const IRREGULAR: Record<string, string> = { Endpoints: 'endpoints' };
/** Kinds the API server keeps outside any namespace. */
const CLUSTER_SCOPED = new Set(['CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'Node', 'PriorityClass', 'IngressClass', 'APIService', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']);

export function pluralOf(kind: string): string {
  if (IRREGULAR[kind]) return IRREGULAR[kind];
  const k = kind.toLowerCase();
  if (k.endsWith('s')) return `${k}es`;
  if (k.endsWith('y')) return `${k.slice(0, -1)}ies`;
  return `${k}s`;
}

function groupOf(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

const clone = <T>(x: T): T => structuredClone(x);

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** RFC 7386 JSON merge patch (also used for strategic-merge: lists are replaced). */
export function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Minimal RFC 6902: add, replace, remove, test. */
function jsonPatch(doc: any, ops: { op: string; path: string; value?: unknown }[]): any {
  const out = clone(doc);
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let parent = out;
    for (const p of parts) {
      if (parent[p] === undefined) {
        if (op.op !== 'add') throw new Error(`path ${op.path} not found`);
        parent[p] = {};
      }
      parent = parent[p];
    }
    if (op.op === 'test') {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new Error(`test failed at ${op.path}`);
    } else if (op.op === 'remove') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (op.op === 'add' && Array.isArray(parent)) {
      parent.splice(last === '-' ? parent.length : Number(last), 0, clone(op.value));
    } else if (op.op === 'add' || op.op === 'replace') parent[last] = clone(op.value);
    else throw new Error(`unsupported op ${op.op}`);
  }
  return out;
}

function matchesLabelSelector(obj: FakeObject, sel: string | undefined): boolean {
  if (!sel) return true;
  const labels = obj.metadata.labels ?? {};
  return sel.split(',').every((term) => {
    const t = term.trim();
    if (!t) return true;
    const ne = t.split('!=');
    if (ne.length === 2) return labels[ne[0]] !== ne[1];
    const eq = t.split(/==?/);
    if (eq.length === 2) return labels[eq[0]] === eq[1];
    return t.startsWith('!') ? !(t.slice(1) in labels) : t in labels;
  });
}

export async function startFakeKube(initial: FakeObject[] = [], opts: FakeKubeOptions = {}): Promise<FakeKube> {
  const defaultNs = opts.namespace ?? 'default';
  const store = new Map<string, FakeObject>();
  const kinds = new Map<string, { kind: string; apiVersion: string }>(); // `${group}/${plural}` → kind info
  const groups = new Set([...BUILTIN_GROUPS, ...(opts.crds ?? [])]);
  const log: FakeRequest[] = [];
  let rv = 1;
  let fault: FaultHook | undefined;

  const keyOf = (group: string, plural: string, ns: string, name: string) => `${group}|${plural}|${ns}|${name}`;
  const put = (o: FakeObject) => {
    const obj = clone(o);
    if (CLUSTER_SCOPED.has(obj.kind)) delete obj.metadata.namespace;
    else obj.metadata.namespace ??= defaultNs;
    obj.metadata.resourceVersion = String(rv++);
    obj.metadata.uid ??= randomUUID();
    obj.metadata.creationTimestamp ??= new Date().toISOString();
    const { group } = groupOf(obj.apiVersion);
    const plural = pluralOf(obj.kind);
    groups.add(group);
    kinds.set(`${group}/${plural}`, { kind: obj.kind, apiVersion: obj.apiVersion });
    store.set(keyOf(group, plural, obj.metadata.namespace ?? '', obj.metadata.name), obj);
  };
  for (const o of initial) put(o);

  const kindFor = (group: string, version: string, plural: string) => kinds.get(`${group}/${plural}`) ?? { kind: guessKind(plural), apiVersion: group ? `${group}/${version}` : version };

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    let body: any;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const send = (code: number, payload: unknown) => {
      log.push({ method, path: u.pathname, query: Object.fromEntries(u.searchParams), contentType: req.headers['content-type'], body, status: code });
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    try {
      const f = fault?.({ method, path: u.pathname });
      if (f && 'reset' in f) return void req.socket.destroy();
      if (f && 'hang' in f) return;
      if (f) return send(f.status, f.body ?? status(f.status, 'InternalError', 'injected fault'));
      if (u.pathname === '/version') return send(200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake' });
      if (u.pathname === '/api') return send(200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] });
      if (u.pathname === '/apis')
        return send(200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups].filter(Boolean).map((g) => ({ name: g, versions: [{ groupVersion: `${g}/${PREFERRED_VERSION[g] ?? 'v1'}`, version: PREFERRED_VERSION[g] ?? 'v1' }], preferredVersion: { groupVersion: `${g}/${PREFERRED_VERSION[g] ?? 'v1'}`, version: PREFERRED_VERSION[g] ?? 'v1' } })) });

      const parts = u.pathname.split('/').filter(Boolean);
      let group: string;
      let version: string;
      let rest: string[];
      if (parts[0] === 'api') [group, version, rest] = ['', parts[1], parts.slice(2)];
      else if (parts[0] === 'apis') [group, version, rest] = [parts[1], parts[2], parts.slice(3)];
      else return send(404, status(404, 'NotFound', `the server could not find the requested resource ${u.pathname}`));
      if (!version) return send(404, status(404, 'NotFound', 'no version'));

      // /api/v1/namespaces/{name}: the namespace object itself.
      if (group === '' && rest[0] === 'namespaces' && rest.length === 2) {
        const ns = [...store.values()].find((o) => o.kind === 'Namespace' && o.metadata.name === rest[1]);
        return ns ? send(200, ns) : send(404, status(404, 'NotFound', `namespaces "${rest[1]}" not found`));
      }
      // Cluster-scoped paths: /apis/<group>/<version>/<plural>[/<name>] (GET only).
      if (rest[0] !== 'namespaces' && (rest.length === 1 || rest.length === 2) && method === 'GET') {
        const [plural, name] = rest;
        if (!groups.has(group)) return send(404, status(404, 'NotFound', `the server could not find the requested resource (${group}/${version} ${plural})`));
        const info = kindFor(group, version, plural);
        const items = [...store.values()].filter((o) => groupOf(o.apiVersion).group === group && pluralOf(o.kind) === plural && matchesLabelSelector(o, u.searchParams.get('labelSelector') ?? undefined));
        if (!name) return send(200, { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata: { resourceVersion: String(rv) }, items });
        const one = items.find((o) => o.metadata.name === name && o.metadata.namespace === undefined);
        return one ? send(200, one) : send(404, status(404, 'NotFound', `${plural}${group ? `.${group}` : ''} "${name}" not found`));
      }
      if (rest[0] !== 'namespaces' || rest.length < 3) return send(404, status(404, 'NotFound', `unsupported path ${u.pathname}`));
      const [, ns, plural, name, sub] = rest;
      if (!groups.has(group)) return send(404, status(404, 'NotFound', `the server could not find the requested resource (${group}/${version} ${plural})`));
      const info = kindFor(group, version, plural);
      const k = (n: string) => keyOf(group, plural, ns, n);
      const resource = `${plural}${group ? `.${group}` : ''}`;

      if (!name) {
        if (method === 'GET') {
          const items = [...store.values()].filter((o) => groupOf(o.apiVersion).group === group && pluralOf(o.kind) === plural && o.metadata.namespace === ns && matchesLabelSelector(o, u.searchParams.get('labelSelector') ?? undefined));
          return send(200, { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata: { resourceVersion: String(rv) }, items });
        }
        if (method === 'POST') {
          if (!body?.metadata?.name) return send(400, status(400, 'BadRequest', 'metadata.name is required'));
          if (store.has(k(body.metadata.name))) return send(409, status(409, 'AlreadyExists', `${resource} "${body.metadata.name}" already exists`));
          put({ ...body, apiVersion: body.apiVersion ?? info.apiVersion, kind: body.kind ?? info.kind, metadata: { ...body.metadata, namespace: ns } });
          return send(201, store.get(k(body.metadata.name)));
        }
        return send(405, status(405, 'MethodNotAllowed', `${method} not allowed on a collection`));
      }

      const existing = store.get(k(name));
      if (!existing && method !== 'PUT') return send(404, status(404, 'NotFound', `${resource} "${name}" not found`));

      if (sub === 'scale') {
        if (!['deployments', 'statefulsets', 'replicasets'].includes(plural)) return send(404, status(404, 'NotFound', `no scale subresource for ${resource}`));
        const scaleOf = (o: FakeObject) => ({ kind: 'Scale', apiVersion: 'autoscaling/v1', metadata: { name, namespace: ns, resourceVersion: o.metadata.resourceVersion }, spec: { replicas: o.spec?.replicas ?? 1 }, status: { replicas: o.status?.replicas ?? o.spec?.replicas ?? 1 } });
        if (method === 'GET') return send(200, scaleOf(existing!));
        let next: any;
        if (method === 'PUT') next = body;
        else if (method === 'PATCH') next = (req.headers['content-type'] ?? '').includes('json-patch') ? jsonPatch(scaleOf(existing!), body) : mergePatch(scaleOf(existing!), body);
        else return send(405, status(405, 'MethodNotAllowed', `${method} on scale`));
        const updated = clone(existing!);
        updated.spec = { ...updated.spec, replicas: next?.spec?.replicas };
        put(updated);
        return send(200, scaleOf(store.get(k(name))!));
      }
      if (sub && sub !== 'status') return send(404, status(404, 'NotFound', `unsupported subresource ${sub}`));

      switch (method) {
        case 'GET':
          return send(200, existing);
        case 'PUT': {
          if (!body?.metadata) return send(400, status(400, 'BadRequest', 'body must be an object'));
          if (!existing) return send(404, status(404, 'NotFound', `${resource} "${name}" not found`));
          if (body.metadata.resourceVersion && body.metadata.resourceVersion !== existing.metadata.resourceVersion)
            return send(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
          put({ ...body, apiVersion: body.apiVersion ?? info.apiVersion, kind: body.kind ?? info.kind, metadata: { ...body.metadata, name, namespace: ns, uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp } });
          return send(200, store.get(k(name)));
        }
        case 'PATCH': {
          const ct = req.headers['content-type'] ?? '';
          let next: any;
          try {
            next = ct.includes('json-patch') ? jsonPatch(existing, body) : mergePatch(existing, body);
          } catch (err) {
            return send(422, status(422, 'Invalid', (err as Error).message));
          }
          next.metadata = { ...next.metadata, name, namespace: ns, uid: existing!.metadata.uid };
          put(next);
          return send(200, store.get(k(name)));
        }
        case 'DELETE':
          store.delete(k(name));
          return send(200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: plural } });
        default:
          return send(405, status(405, 'MethodNotAllowed', `${method} not allowed`));
      }
    } catch (err) {
      return send(500, status(500, 'InternalError', (err as Error).message));
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-fakekube-'));
  const kubeconfigPath = join(dir, 'kubeconfig.yaml');
  const ctx = opts.context ?? 'fake';
  writeFileSync(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      `current-context: ${ctx}`,
      'clusters:',
      `- name: ${ctx}`,
      '  cluster:',
      `    server: ${url}`,
      // client-node refuses plain http unless TLS verification is explicitly off.
      '    insecure-skip-tls-verify: true',
      'users:',
      `- name: ${ctx}`,
      '  user:',
      '    token: fake-token',
      'contexts:',
      `- name: ${ctx}`,
      '  context:',
      `    cluster: ${ctx}`,
      `    user: ${ctx}`,
      `    namespace: ${defaultNs}`,
      '',
    ].join('\n'),
  );

  return {
    url,
    kubeconfigPath,
    objects: () => [...store.values()].map(clone),
    requests: () => log.slice(),
    put,
    setFault: (h) => {
      fault = h;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

function guessKind(plural: string): string {
  const known: Record<string, string> = {
    pods: 'Pod', services: 'Service', configmaps: 'ConfigMap', secrets: 'Secret', persistentvolumeclaims: 'PersistentVolumeClaim', serviceaccounts: 'ServiceAccount', limitranges: 'LimitRange',
    deployments: 'Deployment', statefulsets: 'StatefulSet', daemonsets: 'DaemonSet', jobs: 'Job', cronjobs: 'CronJob', networkpolicies: 'NetworkPolicy', ingresses: 'Ingress',
    poddisruptionbudgets: 'PodDisruptionBudget', horizontalpodautoscalers: 'HorizontalPodAutoscaler', leases: 'Lease', roles: 'Role', rolebindings: 'RoleBinding',
    servicemonitors: 'ServiceMonitor', podmonitors: 'PodMonitor', probes: 'Probe', prometheusrules: 'PrometheusRule',
    customresourcedefinitions: 'CustomResourceDefinition',
  };
  return known[plural] ?? plural.replace(/s$/, '').replace(/^./, (c) => c.toUpperCase());
}
