// The label indexes behind the audit's selector lookups (helpers/readiness/label-index.ts) must give
// exactly what testing every selector against every label set gives, in the same order: the audit's
// results may not depend on whether a lookup was indexed. Checked on generated selectors of every
// shape Kubernetes allows, and some it does not.
import { describe, expect, it } from 'vitest';
import { LabelIndex, labelSelectorRequirements, mapRequirements, requiredByLabelSelector, SelectorIndex } from '../../helpers/readiness/label-index.js';
import { mapSubset, selectorMatches, type LabelSelector } from '../../helpers/readiness/objects.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** Small deterministic PRNG (mulberry32), so a failure is reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['app', 'tier', 'copy', 'role', 'zone'];
const VALUES = ['a', 'b', 'c', 'd', '1'];

function generate(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const labelSet = (): Record<string, any> => {
    const l: Record<string, any> = {};
    for (const k of KEYS) if (r() < 0.6) l[k] = r() < 0.05 ? 1 : pick(VALUES); // a number now and then, as YAML gives
    return l;
  };
  const expression = (): any => {
    const operator = pick(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Bogus']);
    const e: any = { key: pick(KEYS), operator };
    if (operator === 'In' || operator === 'NotIn') e.values = Array.from({ length: Math.floor(r() * 3) }, () => pick(VALUES));
    return e;
  };
  const selector = (): any => {
    const shape = r();
    if (shape < 0.05) return undefined;
    if (shape < 0.1) return {};
    if (shape < 0.13) return { matchExpressions: [expression(), null] }; // malformed: the matcher decides
    const s: any = {};
    if (r() < 0.8) s.matchLabels = Object.fromEntries(Array.from({ length: 1 + Math.floor(r() * 2) }, () => [pick(KEYS), pick(VALUES)]));
    if (r() < 0.5) s.matchExpressions = Array.from({ length: 1 + Math.floor(r() * 2) }, expression);
    return s;
  };
  const serviceSelector = (): any => (r() < 0.1 ? (r() < 0.5 ? undefined : {}) : Object.fromEntries(Array.from({ length: 1 + Math.floor(r() * 2) }, () => [pick(KEYS), pick(VALUES)])));
  return {
    labelSets: Array.from({ length: 60 }, labelSet),
    selectors: Array.from({ length: 60 }, selector),
    serviceSelectors: Array.from({ length: 60 }, serviceSelector),
  };
}

/** Outcome of a call: its value, or the error it threw (a malformed selector may make the matcher throw). */
function outcome<T>(f: () => T): { value?: T; error?: string } {
  try {
    return { value: f() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe('label indexes answer as testing every pair would', () => {
  for (const seed of Array.from({ length: 20 }, (_, i) => i + 1)) {
    it(`seed ${seed}: selectors → label sets, label sets → selectors, Service selectors`, () => {
      const { labelSets, selectors, serviceSelectors } = generate(seed);
      const items = labelSets.map((labels, i) => ({ i, labels }));
      const forward = new LabelIndex(items, (x) => x.labels);
      const reverse = new SelectorIndex(selectors.map((selector, i) => ({ selector, item: i })), labelSelectorRequirements, selectorMatches);
      const services = new SelectorIndex(serviceSelectors.map((selector, i) => ({ selector, item: i })), mapRequirements, (s, l) => mapSubset(s as Record<string, string> | undefined, l));
      let matched = 0;
      for (const sel of selectors) {
        const s = (sel ?? {}) as LabelSelector;
        const want = outcome(() => items.filter((x) => selectorMatches(s, x.labels)).map((x) => x.i));
        const got = outcome(() => forward.select(requiredByLabelSelector(s), (l) => selectorMatches(s, l)).map((x) => x.i));
        if (!want.error) expect(got).toEqual(want);
        matched += want.value?.length ?? 0;
      }
      for (const labels of labelSets) {
        const want = outcome(() => selectors.flatMap((s, i) => (selectorMatches(s, labels) ? [i] : [])));
        expect(outcome(() => reverse.matching(labels))).toEqual(want);
        expect(services.matching(labels)).toEqual(serviceSelectors.flatMap((s, i) => (mapSubset(s, labels) ? [i] : [])));
      }
      expect(matched, 'the generated selectors match something, so the comparison means something').toBeGreaterThan(0);
    });
  }
});
