// Checklist §9 and §11: requests/limits, PDBs, non-root security contexts, probes, the overlay
// rendering, stateful stores, and REDIS_CLUSTER_ADDRESSES in step with the Redis StatefulSet.
import { defineCheck, fail, fromFindings, info, notCheckable, pass, warn, type Check, type CheckContext, type Finding, type PartialResult } from '../model.js';
import { locate } from '../source.js';
import { containersOf, CORDUM_SERVICES, type Container, type KubeObject, type ObjectIndex, type Workload } from '../objects.js';
import { containerPortOf, isResult, needObjects, parseRedisConf, pathServed, primary, REDIS_CLIENTS, redisArgs, redisConf, ref, servedPaths } from './util.js';
import { clusterInitJobs } from '../scripts.js';

/** API groups served by Kubernetes itself; any other group's kinds need a CRD. */
const BUILTIN_GROUPS = new Set(['', 'apps', 'batch', 'policy', 'autoscaling', 'networking.k8s.io', 'rbac.authorization.k8s.io', 'coordination.k8s.io', 'storage.k8s.io', 'apiextensions.k8s.io', 'admissionregistration.k8s.io', 'scheduling.k8s.io', 'certificates.k8s.io', 'discovery.k8s.io', 'node.k8s.io', 'events.k8s.io', 'flowcontrol.apiserver.k8s.io', 'apiregistration.k8s.io', 'authentication.k8s.io', 'authorization.k8s.io', 'resource.k8s.io']);
/** CRDs the production layout needs whatever the namespace shows (deploy facts §10, checklist 11.3). */
const REQUIRED_CRDS = [
  { group: 'monitoring.coreos.com', kind: 'ServiceMonitor', name: 'servicemonitors.monitoring.coreos.com' },
  { group: 'monitoring.coreos.com', kind: 'PrometheusRule', name: 'prometheusrules.monitoring.coreos.com' },
];

const groupOf = (apiVersion: string | undefined) => (apiVersion?.includes('/') ? apiVersion.split('/')[0] : '');

/** Custom kinds (group + kind) used by the objects, with how many objects use each. */
function customKinds(objs: KubeObject[]): { group: string; kind: string; objects: string[] }[] {
  const m = new Map<string, { group: string; kind: string; objects: string[] }>();
  for (const o of objs) {
    const group = groupOf(o.apiVersion);
    if (BUILTIN_GROUPS.has(group) || o.kind === 'CustomResourceDefinition') continue;
    const k = `${o.kind}.${group}`;
    if (!m.has(k)) m.set(k, { group, kind: o.kind, objects: [] });
    m.get(k)!.objects.push(o.metadata.name);
  }
  return [...m.values()];
}

function crdsCheck(ctx: CheckContext): PartialResult {
  const idx = needObjects(ctx);
  if (isResult(idx)) return idx;
  const used = customKinds(idx.all);
  if (ctx.mode === 'static') {
    const defined = idx.kind('CustomResourceDefinition').map((c) => ({ name: c.metadata.name, group: c.spec?.group, kind: c.spec?.names?.kind }));
    const definedKinds = new Set(defined.map((d) => JSON.stringify([d.group, d.kind])));
    const missing = used.filter((u) => !definedKinds.has(JSON.stringify([u.group, u.kind])));
    const evidence = { customKinds: used, crdsInManifests: defined.map((d) => d.name), missing: missing.map((m) => `${m.kind}.${m.group}`) };
    if (missing.length) return warn(`custom kinds used without their CRD among the rendered objects: ${missing.map((m) => `${m.kind} (${m.group})`).join(', ')}; applying fails unless they are installed first (check live)`, evidence);
    return pass(used.length ? `CRDs for ${used.map((u) => u.kind).join(', ')} are part of the manifests` : 'no custom resource kinds used', evidence);
  }
  const needed = [...REQUIRED_CRDS.map((r) => ({ group: r.group, kind: r.kind, why: 'production layout (deploy facts §10)' })), ...used.filter((u) => !REQUIRED_CRDS.some((r) => r.group === u.group && r.kind === u.kind)).map((u) => ({ group: u.group, kind: u.kind, why: `used by ${u.objects.length} object(s)` }))];
  const probe = ctx.live?.crds;
  if (!probe?.ok) {
    // The cluster-scoped list may be forbidden; a 404 on a namespaced list of the kind says the same.
    const absent = (ctx.live?.kubeSkipped ?? []).filter((s) => /CRD not installed/.test(s.reason) && needed.some((n) => n.kind === s.kind));
    const evidence = { needed, crdList: probe && !probe.ok ? probe.reason : 'not read', absentByListing: absent };
    if (absent.length) return fail(`CRD missing for ${absent.map((a) => a.kind).join(', ')} (the API server has no such resource)`, evidence);
    return notCheckable(`CRDs could not be listed: ${probe && !probe.ok ? probe.reason : 'not read'}`, evidence);
  }
  const rows = needed.map((n) => ({ ...n, crd: probe.value.find((c) => c.group === n.group && c.kind === n.kind)?.name ?? null }));
  const missing = rows.filter((r) => !r.crd);
  const evidence = { needed: rows, installed: probe.value.length };
  if (missing.length) return fail(`CRDs not installed: ${missing.map((m) => `${m.kind} (${m.group}; ${m.why})`).join(', ')}`, evidence);
  return pass(`${rows.length} needed CRDs installed (${rows.map((r) => r.crd).join(', ')})`, evidence);
}

/** Is Redis configured as a cluster (redis.conf or command-line `cluster-enabled yes`)? */
function redisClustered(idx: ObjectIndex): { workload?: string; clustered: boolean } {
  const w = primary(idx, 'redis');
  if (!w) return { clustered: false };
  const conf = parseRedisConf(redisConf(idx, w)).get('cluster-enabled')?.[0] ?? redisArgs(w).get('cluster-enabled');
  return { workload: ref(w), clustered: conf?.toLowerCase() === 'yes' };
}

function clusterInitCheck(ctx: CheckContext): PartialResult {
  const idx = ctx.objects;
  const redisProbe = ctx.mode === 'live' ? ctx.live?.redis : undefined;
  const clusterInfo = redisProbe?.ok ? redisProbe.value.cluster : undefined;
  const layout = idx ? redisClustered(idx) : undefined;
  const jobs = idx ? [...new Set(clusterInitJobs(idx).map((j) => j.workload))] : [];
  const jobRows = jobs.map((w) => ({ job: ref(w), succeeded: w.obj.status?.succeeded ?? 0, failed: w.obj.status?.failed ?? 0, active: w.obj.status?.active ?? 0 }));
  const evidence: Record<string, unknown> = { redis: layout?.workload ?? null, clusterEnabled: layout?.clustered ?? null, initJobs: jobRows, clusterInfo: clusterInfo === undefined ? (redisProbe && !redisProbe.ok ? { error: redisProbe.reason } : 'not read') : clusterInfo };
  if (ctx.mode === 'static') {
    if (!idx) return notCheckable(ctx.objectsUnavailable ?? 'no manifests');
    if (!layout!.clustered) return info(`Redis ${layout!.workload ? 'is not a cluster' : 'not found'}: no cluster-init Job needed`, evidence);
    if (!jobs.length) return fail(`Redis runs as a cluster but no Job runs \`redis-cli --cluster create\``, evidence);
    return pass(`cluster-init Job ${jobRows.map((j) => j.job).join(', ')} present`, evidence);
  }
  // Live: the cluster's own word wins; the Job's status is the fallback (it may be garbage-collected).
  if (clusterInfo) {
    if (clusterInfo.cluster_state === 'ok') return pass(`CLUSTER INFO: cluster_state ok, ${clusterInfo.cluster_slots_assigned ?? '?'} slots assigned, ${clusterInfo.cluster_known_nodes ?? '?'} nodes`, evidence);
    return fail(`CLUSTER INFO: cluster_state ${clusterInfo.cluster_state ?? 'unknown'} (slots assigned ${clusterInfo.cluster_slots_assigned ?? '?'})`, evidence);
  }
  if (!idx) {
    if (clusterInfo === null) return info('the profile\'s Redis has cluster support disabled: no cluster init needed', evidence);
    return notCheckable(`neither the Kubernetes objects nor CLUSTER INFO could be read (${ctx.objectsUnavailable ?? 'no objects'})`, evidence);
  }
  if (!layout!.clustered) return info(`Redis ${layout!.workload ? 'is not a cluster' : 'not found'}: no cluster init needed`, evidence);
  if (jobRows.some((j) => j.succeeded >= 1)) return pass(`cluster-init Job ${jobRows.find((j) => j.succeeded >= 1)!.job} succeeded`, evidence);
  if (jobRows.length) return fail(`cluster-init Job ${jobRows.map((j) => `${j.job} (succeeded ${j.succeeded}, failed ${j.failed}, active ${j.active})`).join(', ')} has not completed`, evidence);
  return warn('no cluster-init Job found (it may have been removed by ttlSecondsAfterFinished) and CLUSTER INFO was not read: point the profile\'s redis at a cluster node to confirm cluster_state:ok', evidence);
}

function secFlags(w: Workload, c: Container) {
  const pod = w.podSpec?.securityContext ?? {};
  const sc = c.securityContext ?? {};
  const runAsNonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
  const runAsUser = sc.runAsUser ?? pod.runAsUser;
  return {
    nonRoot: runAsNonRoot === true && runAsUser !== 0,
    noPrivEsc: sc.allowPrivilegeEscalation === false,
    dropAll: (sc.capabilities?.drop ?? []).includes('ALL'),
    seccomp: (sc.seccompProfile?.type ?? pod.seccompProfile?.type) === 'RuntimeDefault' || (sc.seccompProfile?.type ?? pod.seccompProfile?.type) === 'Localhost',
    readOnlyRoot: sc.readOnlyRootFilesystem === true,
    privileged: sc.privileged === true,
  };
}

function securityRows(ws: Workload[]) {
  return ws.flatMap((w) => containersOf(w.podSpec).map((c) => ({ workload: ref(w), container: c.name, ...secFlags(w, c) })));
}

/** Does the gateway run with an API key (then every /api/* call without one answers 401)? */
function gatewayHasKey(idx: ObjectIndex, w: Workload): boolean {
  return containersOf(w.podSpec, false).some((c) => ['API_KEY', 'CORDUM_API_KEY', 'CORDUM_SUPER_SECRET_API_TOKEN', 'CORDUM_API_KEYS'].some((k) => idx.env(c).has(k)) || (c.envFrom ?? []).some((e) => e.secretRef));
}

/** Why a probe cannot succeed (missing, undeclared port, a route the port does not serve, auth). */
function probeProblem(idx: ObjectIndex, w: Workload, c: Container, kind: string, p: any): { message: string; snippet?: string } | undefined {
  const who = `${ref(w)}/${c.name}`;
  if (!p) return { message: `${who}: no ${kind} probe` };
  if (!probePortOk(c, p)) return { message: `${who}: ${kind} probe on an undeclared port`, snippet: `${kind}Probe:` };
  const http = p.httpGet;
  if (!http) return undefined;
  const path = String(http.path ?? '/');
  const resolved = containerPortOf({ containers: [c] }, http.port);
  const served = resolved ? servedPaths(c.image, w.component, resolved.port) : null;
  const snippet = `path: ${http.path ?? '/'}`;
  if (served && !served.length) return { message: `${who}: ${kind} probe sends HTTP GET ${path} to :${resolved!.port}, which does not speak HTTP`, snippet };
  if (served && !pathServed(served, path)) return { message: `${who}: ${kind} probe GET ${path} on :${resolved!.port} is a route that port does not serve (it serves ${served.join(', ')})`, snippet };
  const keyHeader = (http.httpHeaders ?? []).some((h: { name?: string }) => /^x-api-key$/i.test(h.name ?? ''));
  if (w.component === 'api-gateway' && /^\/api(\/|$)/.test(path) && !keyHeader) {
    return {
      message: gatewayHasKey(idx, w)
        ? `${who}: ${kind} probe GET ${path} needs an API key: with the key this gateway is given it answers 401, so the pod ${kind === 'readiness' ? 'never becomes Ready' : 'is restarted forever'} (probe /health instead)`
        : `${who}: ${kind} probe GET ${path} needs an API key: it answers 401 as soon as a key is set (probe /health instead)`,
      snippet,
    };
  }
  return undefined;
}

function probePortOk(c: Container, probe: any): boolean {
  const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
  if (port === undefined) return !!probe?.exec;
  return (c.ports ?? []).some((p) => p.containerPort === port || p.name === port);
}

export const kubernetesChecks: Check[] = [
  defineCheck({
    id: 'kubernetes.renders',
    section: 'kubernetes',
    item: '11.1',
    title: 'The manifests render and parse (documented apply command works)',
    severity: 'fail',
    modes: ['static'],
    remediation: 'Fix the render/parse error shown in the evidence; `kubectl kustomize <overlay>` must succeed with no extra flags.',
    run(ctx) {
      // Reported here once; the other checks judge what could still be read (ctx.loadNotes says what).
      if (ctx.loadErrors.length) return fail(`${ctx.loadErrors.length} render/parse error(s): ${ctx.loadErrors[0]}${ctx.loadNotes.length ? `. ${ctx.loadNotes.join('. ')}` : ''}`, { errors: ctx.loadErrors, notes: ctx.loadNotes });
      return pass(`${ctx.objects?.all.length ?? 0} objects parsed`, { objects: ctx.objects?.all.length ?? 0 });
    },
  }),
  defineCheck({
    id: 'kubernetes.resources',
    section: 'kubernetes',
    item: '9.1',
    title: 'CPU and memory requests and limits on every container',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Set resources.requests.{cpu,memory} and resources.limits.{cpu,memory} on every container and init container, Jobs and CronJobs included.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const missing: string[] = [];
      let total = 0;
      for (const w of idx.templates())
        for (const c of containersOf(w.podSpec)) {
          total++;
          const lack = ['requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory'].filter((p) => {
            const [a, b] = p.split('.');
            return !(c.resources as any)?.[a]?.[b];
          });
          if (lack.length) missing.push(`${ref(w)}/${c.name} (${lack.join(', ')})`);
        }
      const evidence = { containers: total, missing, limitRanges: idx.kind('LimitRange').map((l) => l.metadata.name) };
      if (missing.length) return fail(`missing resources: ${missing.join('; ')}`, evidence);
      return pass(`${total} containers with requests and limits`, evidence);
    },
  }),
  defineCheck({
    id: 'kubernetes.pdb',
    section: 'kubernetes',
    item: '9.2',
    title: 'Replicated workloads have a PDB that still allows drains',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add a PodDisruptionBudget (e.g. maxUnavailable: 1) selecting the pods of every Deployment/StatefulSet with replicas > 1 or an HPA; avoid minAvailable equal to the replica count.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rows = idx
        .templates()
        .filter((w) => (w.kind === 'Deployment' || w.kind === 'StatefulSet') && (w.replicas > 1 || idx.hpasFor(w).length))
        .map((w) => {
          const pdbs = idx.pdbsFor(w);
          const blocking = pdbs.filter((p) => {
            const s = p.spec ?? {};
            if (s.maxUnavailable !== undefined) return s.maxUnavailable === 0 || s.maxUnavailable === '0%';
            if (typeof s.minAvailable === 'number') return s.minAvailable >= w.replicas;
            return s.minAvailable === '100%';
          });
          const live = ctx.mode === 'live' ? pdbs.map((p) => p.status?.disruptionsAllowed).filter((x) => x !== undefined) : [];
          return { workload: ref(w), replicas: w.replicas, pdbs: pdbs.map((p) => p.metadata.name), drainBlocking: blocking.map((p) => p.metadata.name), disruptionsAllowed: live };
        });
      const uncovered = rows.filter((r) => !r.pdbs.length);
      const blocking = rows.filter((r) => r.drainBlocking.length || r.disruptionsAllowed.some((d: number) => d < 1));
      if (uncovered.length) return fail(`replicated without PDB: ${uncovered.map((u) => u.workload).join(', ')}`, rows);
      if (blocking.length) return warn(`PDB blocks drains: ${blocking.map((b) => b.workload).join(', ')}`, rows);
      return pass(`${rows.length} replicated workloads covered by PDBs`, rows);
    },
  }),
  defineCheck({
    id: 'kubernetes.security-context',
    section: 'kubernetes',
    item: '9.3',
    title: 'Cordum services run as non-root (plus hardening extras)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Set runAsNonRoot: true (uid 65532) on the Cordum service pods, and allowPrivilegeEscalation: false, capabilities.drop: [ALL], seccompProfile RuntimeDefault, readOnlyRootFilesystem: true on their containers.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rows = securityRows(CORDUM_SERVICES.flatMap((c) => idx.component(c)));
      const root = rows.filter((r) => !r.nonRoot || r.privileged);
      const extras = rows.filter((r) => !(r.noPrivEsc && r.dropAll && r.seccomp && r.readOnlyRoot));
      const ns = ctx.mode === 'live' && ctx.namespace ? idx.get('Namespace', ctx.namespace) : undefined;
      const evidence = { containers: rows, podSecurityEnforce: ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'] ?? null };
      if (!rows.length) return fail('no Cordum service workloads found', evidence);
      if (root.length) return fail(`may run as root: ${root.map((r) => `${r.workload}/${r.container}`).join(', ')}`, evidence);
      if (extras.length) return warn(`hardening extras missing on ${extras.map((r) => `${r.workload}/${r.container}`).join(', ')}`, evidence);
      return pass(`${rows.length} Cordum containers non-root and hardened`, evidence);
    },
  }),
  defineCheck({
    id: 'kubernetes.security-context-infra',
    section: 'kubernetes',
    item: '9.3',
    title: 'Infrastructure pods (NATS, Redis, Jobs) hardened (graded separately)',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Run NATS, Redis and the backup/init Jobs as non-root with allowPrivilegeEscalation: false and capabilities.drop: [ALL].',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const infra = [...idx.component('nats'), ...idx.component('redis'), ...idx.templates().filter((w) => w.kind === 'Job' || w.kind === 'CronJob')];
      const rows = securityRows(infra);
      const weak = rows.filter((r) => !r.nonRoot || !r.noPrivEsc || !r.dropAll || r.privileged);
      if (weak.length) return warn(`not hardened: ${weak.map((r) => `${r.workload}/${r.container}`).join(', ')}`, rows);
      return pass(`${rows.length} infrastructure containers non-root`, rows);
    },
  }),
  defineCheck({
    id: 'kubernetes.probes',
    section: 'kubernetes',
    item: '9.4',
    title: 'Readiness and liveness probes on every Deployment/StatefulSet container',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add readinessProbe and livenessProbe to every long-running container, pointing at a port the container declares (gateway :8081/health, workflow engine :9093/health, gRPC services grpc or tcpSocket).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const findings: Finding[] = [];
      let n = 0;
      for (const w of idx.templates().filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet'))
        for (const c of containersOf(w.podSpec, false)) {
          n++;
          for (const [k, p] of [['readiness', c.readinessProbe], ['liveness', c.livenessProbe]] as const) {
            const problem = probeProblem(idx, w, c, k, p);
            if (problem) findings.push({ status: 'fail', message: problem.message, location: locate(w.obj, problem.snippet) });
          }
        }
      return fromFindings(findings, `${n} containers with both probes on routes they serve`, { containers: n, problems: findings.map((f) => f.message) });
    },
  }),
  defineCheck({
    id: 'kubernetes.stateful-stores',
    section: 'kubernetes',
    item: '11.2',
    title: 'NATS and Redis run as StatefulSets with volumeClaimTemplates',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Use the production layout: StatefulSets cordum-nats and cordum-redis with volumeClaimTemplates (not single Deployments with emptyDir).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const rows = (['nats', 'redis'] as const).map((c) => {
        const w = primary(idx, c);
        return { component: c, workload: w ? ref(w) : null, volumeClaimTemplates: (w?.obj.spec?.volumeClaimTemplates ?? []).map((t: { metadata?: { name?: string } }) => t.metadata?.name) };
      });
      const bad = rows.filter((r) => !r.workload?.startsWith('StatefulSet/') || !r.volumeClaimTemplates.length);
      if (bad.length) return fail(`not stateful: ${bad.map((b) => b.workload ?? `${b.component} (missing)`).join(', ')}`, rows);
      return pass('NATS and Redis are StatefulSets with PVC templates', rows);
    },
  }),
  defineCheck({
    id: 'kubernetes.redis-cluster-addresses',
    section: 'kubernetes',
    item: '11.4',
    title: 'REDIS_CLUSTER_ADDRESSES matches the Redis StatefulSet on every client',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'List `<sts>-<i>.<headless svc>.<ns>.svc:6379` for every i < replicas in REDIS_CLUSTER_ADDRESSES, identically on every Redis client (and in the cluster-init Job).',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const redis = primary(idx, 'redis');
      const values: Record<string, string | null> = {};
      for (const c of REDIS_CLIENTS) for (const w of idx.component(c)) values[ref(w)] = idx.envOf(w, 'REDIS_CLUSTER_ADDRESSES') ?? null;
      const clustered = redis?.kind === 'StatefulSet' && redis.replicas > 1;
      const evidence: Record<string, unknown> = { redis: redis ? ref(redis) : null, replicas: redis?.replicas ?? null, values };
      if (!clustered) {
        if (Object.values(values).some((v) => v && v.split(/[\s,]+/).filter(Boolean).length > 1)) return fail('cluster addresses set but Redis is not a replicated StatefulSet', evidence);
        return pass('single Redis: no cluster addresses needed', evidence);
      }
      const distinct = new Set(Object.values(values));
      if (distinct.size > 1) return fail('REDIS_CLUSTER_ADDRESSES differs between clients', evidence);
      const v = [...distinct][0];
      if (!v) return fail('REDIS_CLUSTER_ADDRESSES unset on the clients of a clustered Redis', evidence);
      const entries = v.split(/[\s,]+/).filter(Boolean);
      const ns = ctx.namespace ?? redis!.obj.metadata.namespace ?? 'cordum';
      const svc = redis!.obj.spec?.serviceName ?? redis!.name;
      const expected = Array.from({ length: redis!.replicas }, (_, i) => `${redis!.name}-${i}.${svc}.${ns}.svc:6379`);
      const missing = expected.filter((e) => !entries.includes(e));
      const extra = entries.filter((e) => !expected.includes(e));
      Object.assign(evidence, { expected, missing, extra });
      if (missing.length || extra.length) return fail(`${entries.length} addresses for ${redis!.replicas} Redis pods${missing.length ? `; missing ${missing.join(', ')}` : ''}${extra.length ? `; unexpected ${extra.join(', ')}` : ''}`, evidence);
      return pass(`${entries.length} addresses match ${ref(redis!)}`, evidence);
    },
  }),
  defineCheck({
    id: 'kubernetes.crds-installed',
    section: 'kubernetes',
    item: '11.3',
    title: 'The CRDs the install needs are installed (Prometheus Operator, and every custom kind used)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Install the operators that own the custom kinds before applying: kube-prometheus-stack / Prometheus Operator CRDs (servicemonitors and prometheusrules.monitoring.coreos.com), cert-manager (certificates.cert-manager.io), External Secrets (externalsecrets.external-secrets.io).',
    run: crdsCheck,
  }),
  defineCheck({
    id: 'kubernetes.redis-cluster-init',
    section: 'kubernetes',
    item: '11.6',
    title: 'Redis cluster initialised (cluster-init Job present and succeeded, or CLUSTER INFO ok)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Ship the cluster-init Job (cordum-redis-cluster-init: `redis-cli --tls … --cluster create <all pods> --cluster-replicas 1 --cluster-yes`) and look at its pod logs if it did not succeed; re-run it only on a fresh cluster ("node is not empty" otherwise).',
    run: clusterInitCheck,
  }),
];
