// Label lookups that do not test every object against every selector. Matching each selector of one
// kind (ServiceMonitors, Services, PDBs, NetworkPolicies) against each object of another made the
// audit grow with the product of the two counts; these indexes make a lookup cost what it returns,
// plus the few candidates sharing its rarest label. Both keep the objects' original order, and both
// only narrow the candidates: the caller's own matcher still decides, so results are unchanged.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Labels = Record<string, any>;

/** One key for a label pair; a value compared with `===` always yields the same key. */
const pairKey = (k: string, v: unknown): string => `${k}\u0000${String(v)}`;

function entriesOf(map: unknown): [string, unknown][] {
  return map && typeof map === 'object' ? Object.entries(map) : [];
}

/**
 * Items by their labels, for "which items does this selector pick". A selector with required pairs
 * (matchLabels, a Service selector) is answered from the shortest list of items carrying one of them.
 */
export class LabelIndex<T> {
  private readonly byPair = new Map<string, number[]>();

  constructor(
    private readonly items: readonly T[],
    private readonly labelsOf: (item: T) => Labels,
  ) {
    items.forEach((item, i) => {
      for (const [k, v] of entriesOf(labelsOf(item))) {
        const key = pairKey(k, v);
        let list = this.byPair.get(key);
        if (!list) this.byPair.set(key, (list = []));
        list.push(i);
      }
    });
  }

  /** Items whose labels pass `test`; `required` are pairs every match must carry (may be empty). */
  select(required: [string, unknown][], test: (labels: Labels) => boolean): T[] {
    if (!required.length) return this.items.filter((item) => test(this.labelsOf(item) ?? {}));
    let shortest: number[] | undefined;
    for (const [k, v] of required) {
      const list = this.byPair.get(pairKey(k, v)) ?? [];
      if (!shortest || list.length < shortest.length) shortest = list;
    }
    const out: T[] = [];
    for (const i of shortest!) if (test(this.labelsOf(this.items[i]) ?? {})) out.push(this.items[i]);
    return out;
  }
}

/**
 * What a selector demands of a label set, as alternatives: the label set must carry one of them (a
 * `k=v` pair, or just the key `k`). A matchLabels pair is one alternative; `k In (a, b)` is two.
 */
export type Requirement = { key: string; value?: unknown }[];

/** The key a label set is looked up by: the pair, or the key alone (`Exists`). */
const requirementKey = (r: { key: string; value?: unknown }, withValue: boolean): string => (withValue ? pairKey(r.key, r.value) : `${r.key}\u0001`);

/**
 * Selectors (with the item each belongs to), for "which selectors pick these labels". Each selector
 * is filed under its rarest requirement, so a label set only meets the selectors filed under one of
 * its own pairs or keys, plus those that demand nothing filable (empty, NotIn or DoesNotExist only),
 * which are tested every time.
 */
export class SelectorIndex<S, T> {
  private readonly byKey = new Map<string, number[]>();
  private readonly unfiled: number[] = [];

  constructor(
    private readonly entries: readonly { selector: S; item: T }[],
    requirementsOf: (selector: S) => Requirement[],
    private readonly matches: (selector: S, labels: Labels) => boolean,
  ) {
    // `k In (a, a)` files the selector once.
    const keysOf = (r: Requirement) => [...new Set(r.map((alt) => requirementKey(alt, 'value' in alt)))];
    const all = entries.map((e) => requirementsOf(e.selector).map(keysOf));
    const frequency = new Map<string, number>();
    for (const reqs of all) for (const keys of reqs) for (const k of keys) frequency.set(k, (frequency.get(k) ?? 0) + 1);
    const cost = (keys: string[]) => keys.reduce((n, k) => n + frequency.get(k)!, 0);
    all.forEach((reqs, i) => {
      if (!reqs.length) return void this.unfiled.push(i);
      let rarest = reqs[0];
      for (const keys of reqs) if (cost(keys) < cost(rarest)) rarest = keys;
      for (const k of rarest) {
        let list = this.byKey.get(k);
        if (!list) this.byKey.set(k, (list = []));
        list.push(i);
      }
    });
  }

  /** Items whose selector matches `labels`, in the order they were given. */
  matching(labels: Labels): T[] {
    // A requirement's alternatives all name one key and a label set holds each key once, so a
    // selector is met at most once here: no duplicates.
    const candidates = [...this.unfiled];
    for (const [k, v] of entriesOf(labels)) {
      for (const key of [pairKey(k, v), requirementKey({ key: k }, false)]) {
        const list = this.byKey.get(key);
        if (list) for (const i of list) candidates.push(i);
      }
    }
    candidates.sort((a, b) => a - b);
    const out: T[] = [];
    for (const i of candidates) if (this.matches(this.entries[i].selector, labels)) out.push(this.entries[i].item);
    return out;
  }
}

/** The pairs a Kubernetes label selector's matchLabels require (for LabelIndex). */
export function requiredByLabelSelector(sel: { matchLabels?: unknown } | null | undefined): [string, unknown][] {
  return sel ? entriesOf(sel.matchLabels ?? {}) : [];
}

/**
 * What a Kubernetes label selector demands (for SelectorIndex): each matchLabels pair, each `In`
 * expression (one of its values) and each `Exists` (the key). NotIn and DoesNotExist demand nothing
 * a label set can be looked up by.
 */
export function labelSelectorRequirements(sel: { matchLabels?: unknown; matchExpressions?: unknown } | null | undefined): Requirement[] {
  if (!sel) return [];
  const exprs = sel.matchExpressions ?? [];
  // A malformed expression list: no narrowing, so the matcher meets every label set as before.
  if (!Array.isArray(exprs) || exprs.some((e) => !e || typeof e !== 'object' || typeof e.key !== 'string')) return [];
  const reqs: Requirement[] = entriesOf(sel.matchLabels ?? {}).map(([key, value]) => [{ key, value }]);
  for (const e of exprs) {
    if (e.operator === 'In' && Array.isArray(e.values ?? [])) reqs.push((e.values ?? []).map((value: unknown) => ({ key: e.key, value })));
    else if (e.operator === 'Exists') reqs.push([{ key: e.key }]);
  }
  return reqs;
}

/** What a Service selector (a plain map) demands: each of its pairs. */
export function mapRequirements(sel: unknown): Requirement[] {
  return entriesOf(sel).map(([key, value]) => [{ key, value }]);
}
