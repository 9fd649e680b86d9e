// Static readiness audit time for 100, 1,000 and 10,000 objects: the compliant fixture namespace
// replicated as renamed copies. The audit must grow linearly (ms per object roughly constant).
import { resolve } from 'node:path';
import { runAudit } from '../helpers/readiness/audit.js';
import { loadManifestDir } from '../helpers/readiness/manifests.js';
import type { KubeObject } from '../helpers/readiness/objects.js';
import { goalLinear, stat, type BenchResult, type Figure } from './stats.js';
import type { BenchContext } from './index.js';

export const COMPLIANT_DIR = resolve(import.meta.dirname, '../test/fixtures/readiness/compliant');

/**
 * `size` objects from the base set: copy 0 is the original, copy k renames every object to
 * `<name>-r<k>` and labels every label set and selector with `bench-copy: r<k>` (other labels and references are left alone, so every copy is recognised as Cordum's).
 */
export function replicate(base: KubeObject[], size: number): KubeObject[] {
  if (base.length === 0) throw new Error('replicate: empty base set');
  const out: KubeObject[] = [];
  for (let k = 0; out.length < size; k++) {
    for (const o of base) {
      if (out.length >= size) break;
      const copy = structuredClone(o);
      if (k > 0) {
        copy.metadata.name = `${o.metadata.name}-r${k}`;
        markCopy(copy, `r${k}`);
      }
      out.push(copy);
    }
  }
  return out;
}

/**
 * A copy is its own installation: every label set and selector gains `bench-copy: <k>`, so a copy's
 * Services, monitors and policies select their own workloads, as separate releases in one namespace
 * do. Without it every ServiceMonitor of every copy would select every Service of every copy, and
 * the audit's output (one row per monitor, Service and workload) would grow with the cube of the size.
 */
function markCopy(node: unknown, copy: string, key?: string): void {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) return node.forEach((n) => markCopy(n, copy));
  const o = node as Record<string, unknown>;
  if (key === 'labels' || key === 'matchLabels' || (key === 'selector' && !('matchLabels' in o) && !('matchExpressions' in o) && Object.keys(o).length > 0)) {
    o['bench-copy'] = copy;
    return;
  }
  for (const [k, v] of Object.entries(o)) markCopy(v, copy, k);
}

export async function benchReadiness(ctx: BenchContext): Promise<BenchResult> {
  const t0 = performance.now();
  const m = loadManifestDir(COMPLIANT_DIR);
  if (m.errors.length) throw new Error(m.errors.join('\n'));
  const sizes = ctx.quick ? [10, 100, 1000] : [100, 1000, 10_000];
  const now = new Date('2026-03-01T00:00:00Z');
  const figures: Figure[] = [];
  const perObject: { size: number; msPerObject: number }[] = [];
  const n = ctx.reps.fast;
  // Warm-up (module loading, JIT) on the smallest set; not counted.
  await runAudit({ mode: 'static', objects: replicate(m.objects, sizes[0]!), now });
  for (const size of sizes) {
    const total: Figure = { bench: 'readiness', name: `static audit, ${size.toLocaleString('en-US')} objects`, unit: 'ms', values: [] };
    const per: Figure = { bench: 'readiness', name: `static audit per object, ${size.toLocaleString('en-US')} objects`, unit: 'ms/object', values: [] };
    for (let i = 0; i < n; i++) {
      const objects = replicate(m.objects, size);
      const s = performance.now();
      await runAudit({ mode: 'static', objects, now });
      const ms = performance.now() - s;
      total.values.push(ms);
      per.values.push(ms / size);
    }
    figures.push(total, per);
    perObject.push({ size, msPerObject: stat(per.values).median });
    ctx.progress(`readiness ${size} objects: ${Math.round(stat(total.values).median)} ms`);
  }
  return {
    name: 'readiness',
    title: 'Readiness audit (static)',
    method: [
      `The compliant fixture namespace (test/fixtures/readiness/compliant, ${m.objects.length} objects) replicated into renamed copies (\`<name>-r<k>\`, each labelled and selecting \`bench-copy: r<k>\`) up to each size, then \`runAudit({ mode: 'static' })\` over all of them, in process (manifest parsing excluded). One warm-up audit is not counted.`,
    ],
    figures,
    goals: [goalLinear('audit time grows linearly with the object count', perObject)],
    notes: [],
    durationMs: performance.now() - t0,
  };
}
