// Static readiness audit time for 100, 1,000 and 10,000 objects: the compliant fixture namespace
// replicated as renamed copies, each size audited in its own child process. The audit must grow
// linearly (ms per object roughly constant).
import { resolve } from 'node:path';
import { loadManifestDir } from '../helpers/readiness/manifests.js';
import type { KubeObject } from '../helpers/readiness/objects.js';
import { lastJson, runChild, tsxArgs } from './env.js';
import { goalLinear, stat, type BenchResult, type Figure } from './stats.js';
import type { BenchContext } from './index.js';

const REPO = resolve(import.meta.dirname, '..');
const CHILD = resolve(import.meta.dirname, 'child/readiness-audit.ts');
export const COMPLIANT_DIR = resolve(REPO, 'test/fixtures/readiness/compliant');

/**
 * `size` objects from the base set: copy 0 is the original, copy k renames every object to
 * `<name>-r<k>` and labels every label set and selector with `bench-copy: r<k>` (other labels are left
 * alone, so every copy is recognised as Cordum's). A copy's references to its own claim and Service
 * follow the rename, and the namespace's default-deny policy exists once (see copyOf).
 */
export function replicate(base: KubeObject[], size: number): KubeObject[] {
  if (base.length === 0) throw new Error('replicate: empty base set');
  const out: KubeObject[] = [];
  const names = new Map<string, Set<string>>();
  for (const o of base) names.set(o.kind, (names.get(o.kind) ?? new Set()).add(o.metadata.name));
  for (let k = 0; out.length < size; k++) {
    let added = 0;
    for (const o of base) {
      if (out.length >= size) break;
      const copy = k === 0 ? structuredClone(o) : copyOf(o, k, names);
      if (!copy) continue;
      out.push(copy);
      added++;
    }
    if (!added) throw new Error('replicate: a copy added no objects');
  }
  return out;
}

/** A policy with an empty pod selector covers the whole namespace: one per namespace, not per copy. */
const namespaceWide = (o: KubeObject) => o.kind === 'NetworkPolicy' && !Object.keys(o.spec?.podSelector?.matchLabels ?? {}).length && !(o.spec?.podSelector?.matchExpressions ?? []).length;

/**
 * Copy k of an object, or undefined when the object is namespace-wide. Besides the rename and the
 * labels, the references that would make copies share one thing are renamed with their target: a
 * backup claim (two copies' CronJobs writing one ReadWriteOnce claim at the same minute is a real
 * collision the audit reports, pair by pair) and a blackbox Probe's Service (every copy's Probe
 * would reach copy 0's Service, which selects every copy's pods). Left shared, they change the
 * audit's verdicts and make its output grow with the square of the copies.
 */
function copyOf(o: KubeObject, k: number, names: Map<string, Set<string>>): KubeObject | undefined {
  if (namespaceWide(o)) return undefined;
  const copy = structuredClone(o);
  const suffix = `-r${k}`;
  copy.metadata.name = `${o.metadata.name}${suffix}`;
  markCopy(copy, `r${k}`);
  for (const v of podSpecOf(copy)?.volumes ?? []) {
    const claim = v.persistentVolumeClaim;
    if (claim && names.get('PersistentVolumeClaim')?.has(claim.claimName)) claim.claimName += suffix;
  }
  const targets = copy.kind === 'Probe' ? copy.spec?.targets?.staticConfig?.static : undefined;
  if (Array.isArray(targets)) {
    copy.spec.targets.staticConfig.static = targets.map((t: string) => {
      const host = /^(\w+:\/\/)?([^.:/]+)/.exec(t);
      return host && names.get('Service')?.has(host[2]!) ? `${host[1] ?? ''}${host[2]}${suffix}${t.slice(host[0].length)}` : t;
    });
  }
  return copy;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function podSpecOf(o: KubeObject): any {
  return o.kind === 'CronJob' ? o.spec?.jobTemplate?.spec?.template?.spec : o.spec?.template?.spec;
}

/**
 * A copy is its own installation: every label set and selector gains `bench-copy: <k>`, so a copy's
 * Services, monitors and policies select their own workloads, as separate releases in one namespace
 * do. Without it every ServiceMonitor of every copy would select every Service of every copy, and
 * the audit's output (one row per monitor, Service and workload) would grow with the cube of the size.
 * A selector of expressions only (`app In (…)`) gains a matchLabels for it too.
 */
function markCopy(node: unknown, copy: string, key?: string): void {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) return node.forEach((n) => markCopy(n, copy));
  const o = node as Record<string, unknown>;
  if (key === 'labels' || key === 'matchLabels' || (key === 'selector' && !('matchLabels' in o) && !('matchExpressions' in o) && Object.keys(o).length > 0)) {
    o['bench-copy'] = copy;
    return;
  }
  if ((key === 'selector' || key === 'podSelector') && 'matchExpressions' in o && !('matchLabels' in o)) o.matchLabels = { 'bench-copy': copy };
  for (const [k, v] of Object.entries(o)) markCopy(v, copy, k);
}

/** Short audits are timed more often: a scheduling blip on a shared machine is a large share of one. */
const runsAt = (size: number, n: number) => (size <= 1000 ? n * 4 : n);

export async function benchReadiness(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const m = loadManifestDir(COMPLIANT_DIR);
  if (m.errors.length) throw new Error(m.errors.join('\n'));
  const sizes = ctx.quick ? [10, 100, 1000] : [100, 1000, 10_000];
  const figures: Figure[] = [];
  const perObject: { size: number; msPerObject: number }[] = [];
  const n = ctx.reps.fast;
  for (const size of sizes) {
    const total: Figure = { bench: 'readiness', name: `static audit, ${size.toLocaleString('en-US')} objects`, unit: 'ms', values: [], rssBytes: [] };
    const per: Figure = { bench: 'readiness', name: `static audit per object, ${size.toLocaleString('en-US')} objects`, unit: 'ms/object', values: [] };
    const runs = runsAt(size, n);
    const [node, args] = tsxArgs(CHILD, String(size), String(runs));
    const c = await runChild(node, ['--expose-gc', ...args], { cwd: REPO, timeoutMs: 600_000 });
    if (c.code !== 0) throw new Error(`readiness child (${size} objects) failed: ${c.stderr.slice(-1500)}`);
    const r = lastJson<{ size: number; ms: number[] }>(c.stdout);
    if (r.size !== size || r.ms.length !== runs) throw new Error(`readiness child reported ${r.ms.length} runs of ${r.size} objects, expected ${runs} of ${size}`);
    total.values.push(...r.ms);
    per.values.push(...r.ms.map((ms) => ms / size));
    if (c.maxRssBytes) total.rssBytes!.push(c.maxRssBytes);
    figures.push(total, per);
    perObject.push({ size, msPerObject: stat(per.values).median });
    ctx.progress(`readiness ${size} objects: ${Math.round(stat(total.values).median)} ms`);
  }
  return {
    name: 'readiness',
    title: 'Readiness audit (static)',
    method: [
      `The compliant fixture namespace (test/fixtures/readiness/compliant, ${m.objects.length} objects) replicated into renamed copies (\`<name>-r<k>\`, each labelled and selecting \`bench-copy: r<k>\`, its backup claim and Probe target renamed with their objects, the namespace's one default-deny policy not copied) up to each size, then \`runAudit({ mode: 'static' })\` over all of them (manifest parsing excluded). The copies do not audit each other: the benchmark stops if any check's verdict at a size differs from the base set's.`,
      `Each size runs in its own child process (bench/child/readiness-audit.ts, \`node --expose-gc\`), so every size starts as a \`pnpm runbook readiness\` run does, from a fresh process holding only its own objects: after an uncounted warm-up (20 audits of the base set, then one at that size), ${runsAt(1000, n)} timed audits up to 1,000 objects and ${runsAt(10_000, n)} above, each on fresh copies and after a forced garbage collection of the previous run's report, so a run pays for the garbage it makes itself and not for the sizes measured before it. The figure is the median; peak RSS is the child's (Node, tsx and the warm-up included).`,
    ],
    figures,
    goals: [goalLinear('audit time grows linearly with the object count', perObject)],
    notes: [],
    durationMs: performance.now() - t0,
  };
}
