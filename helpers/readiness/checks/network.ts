// Checklist §3.5: NetworkPolicies isolate the backends and still allow every flow Cordum needs,
// evaluated against real pod-template labels (Jobs and CronJobs included).
import { defineCheck, fail, pass, warn, type Check } from '../model.js';
import { containersOf, selectorMatches, type Component, type KubeObject, type ObjectIndex, type Workload } from '../objects.js';
import { backupWorkloads, isResult, KERNEL_CLIENTS, needObjects, NATS_CLIENTS, REDIS_CLIENTS, ref } from './util.js';
import { clusterInitJobs } from '../scripts.js';
import { labelSelectorRequirements, SelectorIndex } from '../label-index.js';

type Direction = 'Ingress' | 'Egress';

function types(p: KubeObject): Direction[] {
  const t = p.spec?.policyTypes as Direction[] | undefined;
  if (t?.length) return t;
  return p.spec?.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

/**
 * NetworkPolicies grouped by direction and pod selector, built once per index: a selector is then
 * matched once per workload however many policies share it, and only against the workloads that
 * carry its rarest required label (label-index.ts). Matching every policy against every workload
 * made the flow checks quadratic in the object count.
 */
type PolicyGroup = { selector: any; policies: KubeObject[] };
const policyGroups = new WeakMap<ObjectIndex, Map<Direction, SelectorIndex<any, PolicyGroup>>>();

function groupsFor(idx: ObjectIndex): Map<Direction, SelectorIndex<any, PolicyGroup>> {
  const cached = policyGroups.get(idx);
  if (cached) return cached;
  const groups = new Map<Direction, PolicyGroup[]>();
  const byKey = new Map<string, PolicyGroup>();
  for (const p of idx.kind('NetworkPolicy')) {
    const selector = p.spec?.podSelector ?? {};
    for (const dir of types(p)) {
      const key = `${dir} ${JSON.stringify(selector)}`;
      let g = byKey.get(key);
      if (!g) {
        g = { selector, policies: [] };
        byKey.set(key, g);
        if (!groups.has(dir)) groups.set(dir, []);
        groups.get(dir)!.push(g);
      }
      g.policies.push(p);
    }
  }
  const indexed = new Map([...groups].map(([dir, gs]) => [dir, new SelectorIndex(gs.map((g) => ({ selector: g.selector, item: g })), labelSelectorRequirements, selectorMatches)] as const));
  policyGroups.set(idx, indexed);
  return indexed;
}

/** Workloads with the same pod labels are selected by the same policies: answer once per label set. */
const selectedCache = new WeakMap<ObjectIndex, Map<string, KubeObject[]>>();

function policiesFor(idx: ObjectIndex, w: Workload, dir: Direction): KubeObject[] {
  let cache = selectedCache.get(idx);
  if (!cache) selectedCache.set(idx, (cache = new Map()));
  const key = `${dir} ${JSON.stringify(Object.entries(w.podLabels ?? {}).sort())}`;
  let out = cache.get(key);
  if (!out) {
    out = [];
    for (const g of groupsFor(idx).get(dir)?.matching(w.podLabels) ?? []) out.push(...g.policies);
    cache.set(key, out);
  }
  return out;
}

function peerMatches(peer: any, other: Workload, namespace: string | undefined): boolean {
  if (peer.ipBlock) return false; // pod IPs are not known statically
  if (peer.namespaceSelector) {
    const ml = peer.namespaceSelector.matchLabels ?? {};
    const sameNs = Object.keys(ml).length === 0 && !(peer.namespaceSelector.matchExpressions ?? []).length ? true : ml['kubernetes.io/metadata.name'] === namespace && namespace !== undefined;
    if (!sameNs) return false;
  }
  return peer.podSelector ? selectorMatches(peer.podSelector, other.podLabels) : true;
}

function portMatches(ports: any[] | undefined, port: number, dst: Workload): boolean {
  if (!ports?.length) return true;
  const named = new Map<string, number>();
  for (const c of containersOf(dst.podSpec, false)) for (const p of c.ports ?? []) if (p.name) named.set(p.name, p.containerPort);
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== 'TCP') return false;
    if (p.port === undefined) return true;
    const n = typeof p.port === 'number' ? p.port : /^\d+$/.test(p.port) ? Number(p.port) : named.get(p.port);
    if (n === undefined) return false;
    return p.endPort ? port >= n && port <= p.endPort : port === n;
  });
}

/** Is TCP src → dst:port allowed by the namespace's policies (ingress on dst and egress on src)? */
export function flowAllowed(idx: ObjectIndex, src: Workload, dst: Workload, port: number, namespace?: string): { allowed: boolean; by?: string } {
  const ing = policiesFor(idx, dst, 'Ingress');
  let by: string | undefined;
  if (ing.length) {
    const ok = ing.find((p) => (p.spec?.ingress ?? []).some((r: any) => (!r.from?.length || r.from.some((peer: any) => peerMatches(peer, src, namespace))) && portMatches(r.ports, port, dst)));
    if (!ok) return { allowed: false };
    by = ok.metadata.name;
  }
  const eg = policiesFor(idx, src, 'Egress');
  if (eg.length) {
    const ok = eg.find((p) => (p.spec?.egress ?? []).some((r: any) => (!r.to?.length || r.to.some((peer: any) => peerMatches(peer, dst, namespace))) && portMatches(r.ports, port, dst)));
    if (!ok) return { allowed: false };
  }
  return { allowed: true, by: by ?? '(not isolated)' };
}

const BACKENDS: Component[] = ['nats', 'redis', 'safety-kernel', 'context-engine'];

interface Flow {
  from: Workload;
  to: Workload;
  port: number;
  why: string;
}

function requiredFlows(idx: ObjectIndex): Flow[] {
  const flows: Flow[] = [];
  const first = (c: Component) => idx.component(c)[0];
  const add = (froms: Workload[], to: Workload | undefined, port: number, why: string) => {
    if (!to) return;
    for (const from of froms) flows.push({ from, to, port, why });
  };
  const of = (cs: Component[]) => cs.flatMap((c) => idx.component(c));
  const nats = first('nats');
  const redis = first('redis');
  add(of(NATS_CLIENTS), nats, 4222, 'bus and JetStream');
  if (nats && nats.replicas > 1) add([nats], nats, 6222, 'NATS cluster routes');
  add(of(REDIS_CLIENTS), redis, 6379, 'state');
  if (redis && redis.replicas > 1) {
    add([redis], redis, 6379, 'Redis replication');
    add([redis], redis, 16379, 'Redis cluster bus');
  }
  add(of(KERNEL_CLIENTS), first('safety-kernel'), 50051, 'policy checks');
  const backups = backupWorkloads(idx);
  add(backups.redis, redis, 6379, 'Redis backup');
  add(backups.nats, nats, 4222, 'JetStream backup');
  add([...new Set(clusterInitJobs(idx).map((j) => j.workload))], redis, 6379, 'Redis cluster init');
  return flows;
}

export const networkChecks: Check[] = [
  defineCheck({
    id: 'netpol.default-deny',
    section: 'network-policies',
    item: '3.5',
    title: 'A namespace default-deny ingress policy exists',
    severity: 'warn',
    modes: ['static', 'live'],
    remediation: 'Add a NetworkPolicy with `podSelector: {}`, `policyTypes: [Ingress]` and no ingress rules, then allow each required flow explicitly.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const dd = idx.kind('NetworkPolicy').filter((p) => Object.keys(p.spec?.podSelector?.matchLabels ?? {}).length === 0 && !(p.spec?.podSelector?.matchExpressions ?? []).length && types(p).includes('Ingress') && !(p.spec?.ingress ?? []).length);
      if (!dd.length) return warn('no default-deny ingress NetworkPolicy', { policies: idx.kind('NetworkPolicy').map((p) => p.metadata.name) });
      return pass(`default deny: ${dd.map((p) => p.metadata.name).join(', ')}`, { policies: dd.map((p) => p.metadata.name) });
    },
  }),
  defineCheck({
    id: 'netpol.backends-protected',
    section: 'network-policies',
    item: '3.5',
    title: 'NetworkPolicies select every backend (NATS, Redis, safety kernel, context engine)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Make sure an ingress NetworkPolicy (a default-deny or a specific one) selects the pods of NATS, Redis, the safety kernel and the context engine.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const evidence: Record<string, string[]> = {};
      const open: string[] = [];
      for (const c of BACKENDS)
        for (const w of idx.component(c)) {
          const pols = policiesFor(idx, w, 'Ingress').map((p) => p.metadata.name);
          evidence[ref(w)] = pols;
          if (!pols.length) open.push(ref(w));
        }
      if (open.length) return fail(`unprotected backends: ${open.join(', ')}`, evidence);
      return pass('every backend is selected by an ingress policy', evidence);
    },
  }),
  defineCheck({
    id: 'netpol.required-flows',
    section: 'network-policies',
    item: '3.5',
    title: 'Every flow Cordum needs is allowed (clients, routes, cluster bus, backups)',
    severity: 'fail',
    modes: ['static', 'live'],
    remediation: 'Add an allow rule for each denied flow in the evidence: a podSelector matching the source pod-template labels and the destination port.',
    run(ctx) {
      const idx = needObjects(ctx);
      if (isResult(idx)) return idx;
      const results = requiredFlows(idx).map((f) => ({ from: ref(f.from), to: ref(f.to), port: f.port, why: f.why, ...flowAllowed(idx, f.from, f.to, f.port, ctx.namespace ?? f.to.obj.metadata.namespace) }));
      const denied = results.filter((r) => !r.allowed);
      const evidence = { flows: results, notEvaluated: ['ingress controller → gateway/dashboard', 'Prometheus → metrics ports (other namespaces)'] };
      if (denied.length) return fail(`denied: ${denied.map((d) => `${d.from} → ${d.to}:${d.port}`).join(', ')}`, evidence);
      return pass(`${results.length} required flows allowed`, evidence);
    },
  }),
];
