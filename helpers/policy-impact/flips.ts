// Decision flips: what a policy change does to one job's decision, and what a whole replay adds up
// to. Pure functions over the answers the evaluator gave (no I/O), so the verdict a run reaches can
// be tested without a target. Decision names arrive in any of Cordum's three vocabularies.

/** One decision as the report compares it. */
export type Decision = 'ALLOW' | 'ALLOW_WITH_CONSTRAINTS' | 'DENY' | 'REQUIRE_HUMAN' | 'THROTTLE' | 'UNSPECIFIED';

/**
 * The kinds of change a draft can make to a job's decision. `constraints_changed` covers a job that
 * is let through either way but under other constraints (ALLOW <-> ALLOW_WITH_CONSTRAINTS, or other
 * budgets); `other` is any remaining pair (THROTTLE in or out, DENY <-> REQUIRE_HUMAN).
 */
export const FLIP_KINDS = [
  'allow_to_deny',
  'allow_to_require_human',
  'deny_to_allow',
  'require_human_to_allow',
  'deny_to_require_human',
  'require_human_to_deny',
  'constraints_changed',
  'other',
] as const;
export type FlipKind = (typeof FLIP_KINDS)[number];

export const FLIP_LABEL: Record<FlipKind, string> = {
  allow_to_deny: 'ALLOW→DENY',
  allow_to_require_human: 'ALLOW→REQUIRE_HUMAN',
  deny_to_allow: 'DENY→ALLOW',
  require_human_to_allow: 'REQUIRE_HUMAN→ALLOW',
  deny_to_require_human: 'DENY→REQUIRE_HUMAN',
  require_human_to_deny: 'REQUIRE_HUMAN→DENY',
  constraints_changed: 'constraints changed',
  other: 'other change',
};

/** Cordum's spellings (protojson enum, job record, policy YAML) to one name. */
export function normalizeDecision(raw: string | undefined | null): Decision {
  const s = String(raw ?? '').trim().toUpperCase().replace(/^DECISION_TYPE_/, '').replace(/-/g, '_');
  switch (s) {
    case 'ALLOW':
    case 'PERMIT':
      return 'ALLOW';
    case 'ALLOW_WITH_CONSTRAINTS':
      return 'ALLOW_WITH_CONSTRAINTS';
    case 'DENY':
    case 'BLOCK':
      return 'DENY';
    case 'REQUIRE_HUMAN':
    case 'REQUIRE_APPROVAL':
      return 'REQUIRE_HUMAN';
    case 'THROTTLE':
      return 'THROTTLE';
    default:
      return 'UNSPECIFIED';
  }
}

const lets = (d: Decision) => d === 'ALLOW' || d === 'ALLOW_WITH_CONSTRAINTS';
/** The scheduler treats UNSPECIFIED as DENY (runtime.md §7.4). */
const stops = (d: Decision) => d === 'DENY' || d === 'UNSPECIFIED';

/** One evaluator answer, reduced to what a flip is made of. */
export interface Outcome {
  decision: Decision;
  ruleId: string;
  /** Canonical JSON of the constraints, '' when none. */
  constraints: string;
}

/** The kind of change from `before` to `after`, or undefined when the decision and constraints are the same. */
export function flipKind(before: Outcome, after: Outcome): FlipKind | undefined {
  const a = before.decision;
  const b = after.decision;
  if (lets(a) && lets(b)) return a !== b || before.constraints !== after.constraints ? 'constraints_changed' : undefined;
  if (a === b || (stops(a) && stops(b))) return undefined;
  if (lets(a) && stops(b)) return 'allow_to_deny';
  if (lets(a) && b === 'REQUIRE_HUMAN') return 'allow_to_require_human';
  if (stops(a) && lets(b)) return 'deny_to_allow';
  if (a === 'REQUIRE_HUMAN' && lets(b)) return 'require_human_to_allow';
  if (stops(a) && b === 'REQUIRE_HUMAN') return 'deny_to_require_human';
  if (a === 'REQUIRE_HUMAN' && stops(b)) return 'require_human_to_deny';
  return 'other';
}

/** Constraints as canonical JSON (sorted keys, zero values dropped) so key order or "0" vs 0 never reads as a change. */
export function canonicalConstraints(c: unknown): string {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.length ? v.map(norm) : undefined;
    if (v && typeof v === 'object') {
      const entries = Object.keys(v as object)
        .sort()
        .map((k) => [k, norm((v as Record<string, unknown>)[k])] as const)
        .filter(([, x]) => x !== undefined);
      return entries.length ? Object.fromEntries(entries) : undefined;
    }
    if (v === '' || v === 0 || v === '0' || v === false || v === null) return undefined;
    return typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  };
  const n = norm(c);
  return n === undefined ? '' : JSON.stringify(n);
}

/** One replayed job: what was recorded on it, and what the evaluator said without and with the draft. */
export interface ReplayedJob {
  id: string;
  topic: string;
  recorded: Outcome;
  baseline: Outcome;
  candidate: Outcome;
}

/** The profile's rules for a draft (`policy_impact` section). */
export interface FlipPolicy {
  /** Flip kinds that fail the run whenever one occurs. */
  forbid: FlipKind[];
  /** ALLOW→DENY fails the run when it hits more than this share of the jobs the baseline lets through (0-1). */
  maxAllowToDenyShare: number;
}

export const DEFAULT_FLIP_POLICY: FlipPolicy = { forbid: ['deny_to_allow', 'require_human_to_allow'], maxAllowToDenyShare: 0.1 };

/** How many example job ids a group carries into reports. */
export const EXAMPLES = 5;

export interface FlipGroup {
  count: number;
  /** The first few job ids (never payloads). */
  examples: string[];
}

export interface TopicFlips extends FlipGroup {
  topic: string;
  kind: FlipKind;
}

export interface RuleFlips extends FlipGroup {
  /** The candidate's rule for flips to a stricter decision, the baseline's for flips to a looser one. */
  rule: string;
  kind: FlipKind;
}

export interface BaselineDrift extends FlipGroup {
  recorded: Decision;
  baseline: Decision;
}

export interface ImpactSummary {
  jobs: number;
  flipped: number;
  /** Jobs whose decision stayed the same but another rule decided it. */
  ruleOnly: FlipGroup;
  byKind: Partial<Record<FlipKind, FlipGroup>>;
  byTopic: TopicFlips[];
  byRule: RuleFlips[];
  /** Where the evaluator's baseline differs from the decision recorded on the job. */
  baselineDrift: BaselineDrift[];
  /** Jobs the baseline lets through (the denominator of the ALLOW→DENY share). */
  baselineAllowed: number;
}

function add(group: FlipGroup, id: string): void {
  group.count++;
  if (group.examples.length < EXAMPLES) group.examples.push(id);
}

/** Stricter flips are explained by the rule that now matches, looser ones by the rule that no longer does. */
function blamedRule(kind: FlipKind, j: ReplayedJob): string {
  const looser = kind === 'deny_to_allow' || kind === 'require_human_to_allow';
  return (looser ? j.baseline.ruleId : j.candidate.ruleId) || (looser ? j.candidate.ruleId : j.baseline.ruleId) || '(no rule)';
}

export function summarize(jobs: ReplayedJob[]): ImpactSummary {
  const byKind: Partial<Record<FlipKind, FlipGroup>> = {};
  const byTopic = new Map<string, TopicFlips>();
  const byRule = new Map<string, RuleFlips>();
  const drift = new Map<string, BaselineDrift>();
  const ruleOnly: FlipGroup = { count: 0, examples: [] };
  let flipped = 0;
  let baselineAllowed = 0;
  for (const j of jobs) {
    if (lets(j.baseline.decision)) baselineAllowed++;
    if (j.recorded.decision !== j.baseline.decision) {
      const key = `${j.recorded.decision}>${j.baseline.decision}`;
      const d = drift.get(key) ?? { recorded: j.recorded.decision, baseline: j.baseline.decision, count: 0, examples: [] };
      add(d, j.id);
      drift.set(key, d);
    }
    const kind = flipKind(j.baseline, j.candidate);
    if (!kind) {
      if (j.baseline.ruleId !== j.candidate.ruleId) add(ruleOnly, j.id);
      continue;
    }
    flipped++;
    add((byKind[kind] ??= { count: 0, examples: [] }), j.id);
    const tKey = `${kind}|${j.topic}`;
    const t = byTopic.get(tKey) ?? { topic: j.topic, kind, count: 0, examples: [] };
    add(t, j.id);
    byTopic.set(tKey, t);
    const rule = blamedRule(kind, j);
    const rKey = `${kind}|${rule}`;
    const r = byRule.get(rKey) ?? { rule, kind, count: 0, examples: [] };
    add(r, j.id);
    byRule.set(rKey, r);
  }
  const order = <T extends FlipGroup & { kind?: FlipKind }>(a: T, b: T) =>
    (a.kind && b.kind ? FLIP_KINDS.indexOf(a.kind) - FLIP_KINDS.indexOf(b.kind) : 0) || b.count - a.count;
  return {
    jobs: jobs.length,
    flipped,
    ruleOnly,
    byKind,
    byTopic: [...byTopic.values()].sort((a, b) => order(a, b) || a.topic.localeCompare(b.topic)),
    byRule: [...byRule.values()].sort((a, b) => order(a, b) || a.rule.localeCompare(b.rule)),
    baselineDrift: [...drift.values()].sort((a, b) => b.count - a.count),
    baselineAllowed,
  };
}

export interface Violation {
  kind: FlipKind;
  reason: string;
  count: number;
  examples: string[];
}

/** The flips the profile forbids, each with its reason and example jobs; empty when the draft is acceptable. */
export function violations(s: ImpactSummary, policy: FlipPolicy): Violation[] {
  const out: Violation[] = [];
  for (const kind of FLIP_KINDS) {
    const g = s.byKind[kind];
    if (!g) continue;
    if (policy.forbid.includes(kind)) {
      out.push({ kind, count: g.count, examples: g.examples, reason: `${FLIP_LABEL[kind]} is forbidden by the profile (policy_impact.forbid)` });
    } else if (kind === 'allow_to_deny') {
      const share = s.baselineAllowed ? g.count / s.baselineAllowed : 1;
      if (share > policy.maxAllowToDenyShare) {
        out.push({
          kind,
          count: g.count,
          examples: g.examples,
          reason: `${FLIP_LABEL[kind]} hits ${pct(share)} of the ${s.baselineAllowed} job(s) let through today, more than the profile's ${pct(policy.maxAllowToDenyShare)} (policy_impact.max_allow_to_deny_share)`,
        });
      }
    }
  }
  return out;
}

export function pct(share: number): string {
  return `${(Math.round(share * 1000) / 10).toString()}%`;
}
