// Policy evaluation as Cordum's safety kernel does it (runtime.md §7.3): topic gate, first
// matching rule wins, legacy tenant rules only when the merged policy has no rules, no match =
// allow, then tenant MCP lists and the effective config can force DENY.
import { normalizeDecision, type McpLists, type PolicyDoc, type PolicyRule, type PolicyConstraintsDoc, type RemediationDoc } from './policy.js';
import type { ConstraintsJson, DecisionType, PolicyCheckRequest, PolicyCheckResponse, RemediationJson } from './wire.js';

/** A policy ready to evaluate: the rule list already includes synthesised legacy rules. */
export interface CompiledPolicy {
  doc: PolicyDoc;
  rules: PolicyRule[];
  snapshot: string;
}

export function compilePolicy(doc: PolicyDoc, snapshot: string): CompiledPolicy {
  return { doc, rules: (doc.rules ?? []).length ? doc.rules! : legacyRules(doc), snapshot };
}

/** Tenant allow/deny topic lists as rules: per tenant, deny rules before allow rules. */
export function legacyRules(doc: PolicyDoc): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const tenant of Object.keys(doc.tenants ?? {}).sort()) {
    const tp = doc.tenants![tenant] ?? {};
    (tp.deny_topics ?? []).forEach((topic, i) =>
      out.push({ id: `legacy:${tenant}:deny:${i + 1}`, decision: 'deny', reason: `topic denied by tenant ${tenant} policy`, match: { tenants: [tenant], topics: [topic] } }),
    );
    (tp.allow_topics ?? []).forEach((topic, i) =>
      out.push({ id: `legacy:${tenant}:allow:${i + 1}`, decision: 'allow', match: { tenants: [tenant], topics: [topic] } }),
    );
  }
  return out;
}

/** Go path.Match semantics: `*` and `?` never cross `/`, `[...]` classes with `^` negation. */
export function globMatch(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) return false; // malformed pattern never matches (Go returns ErrBadPattern)
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('^')) body = '^' + body.slice(1).replace(/[\]\\]/g, '\\$&');
      else body = body.replace(/[\]\\^]/g, '\\$&');
      re += `[${body}]`;
      i = end;
    } else re += escapeRe(c);
  }
  try {
    return new RegExp(re + '$').test(name);
  } catch {
    return false;
  }
}
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The facts a rule can match on, pulled from the request once. */
interface Facts {
  tenant: string;
  topic: string;
  capability: string;
  riskTags: string[];
  requires: string[];
  packId: string;
  actorId: string;
  actorType: string;
  labels: Record<string, string>;
  secretsPresent: boolean;
  mcp: { server?: string; tool?: string; resource?: string; action?: string };
}

function actorTypeName(v: string | number | undefined): string {
  if (v === 1 || v === 'ACTOR_TYPE_HUMAN') return 'human';
  if (v === 2 || v === 'ACTOR_TYPE_SERVICE') return 'service';
  return typeof v === 'string' ? v.toLowerCase() : '';
}

function facts(doc: PolicyDoc, req: PolicyCheckRequest): Facts {
  const labels = { ...(req.meta?.labels ?? {}), ...(req.labels ?? {}) };
  const pick = (k: string) => labels[`mcp.${k}`] ?? labels[`mcp_${k}`] ?? labels[`mcp${k[0]!.toUpperCase()}${k.slice(1)}`];
  const riskTags = req.meta?.risk_tags ?? [];
  return {
    tenant: req.tenant || req.meta?.tenant_id || doc.default_tenant || 'default',
    topic: req.topic ?? '',
    capability: req.meta?.capability ?? '',
    riskTags,
    requires: req.meta?.requires ?? [],
    packId: req.meta?.pack_id ?? '',
    actorId: req.meta?.actor_id ?? '',
    actorType: actorTypeName(req.meta?.actor_type),
    labels,
    secretsPresent: labels.secrets_present === 'true' || riskTags.includes('secrets'),
    mcp: { server: pick('server'), tool: pick('tool'), resource: pick('resource'), action: pick('action') },
  };
}

const has = (list: string[] | undefined) => Array.isArray(list) && list.length > 0;
const lower = (xs: string[]) => xs.map((x) => x.toLowerCase());

/** Why an MCP call breaks the lists, or undefined when it is fine (no MCP labels = fine). */
function mcpViolation(lists: McpLists | undefined, mcp: Facts['mcp']): string | undefined {
  if (!lists) return undefined;
  const kinds = [
    ['server', 'servers'],
    ['tool', 'tools'],
    ['resource', 'resources'],
    ['action', 'actions'],
  ] as const;
  for (const [one, many] of kinds) {
    const v = mcp[one];
    if (!v) continue;
    const deny = lists[`deny_${many}`];
    const allow = lists[`allow_${many}`];
    if (deny?.some((p) => globMatch(p, v))) return `mcp ${one} '${v}' denied`;
    if (has(allow) && !allow!.some((p) => globMatch(p, v))) return `mcp ${one} '${v}' not allowed`;
  }
  return undefined;
}

function ruleMatches(rule: PolicyRule, f: Facts): boolean {
  const m = rule.match ?? {};
  if (has(m.tenants) && !m.tenants!.includes(f.tenant)) return false;
  if (has(m.topics) && !m.topics!.some((p) => globMatch(p, f.topic))) return false;
  if (has(m.capabilities) && !m.capabilities!.includes(f.capability)) return false;
  if (has(m.risk_tags) && !m.risk_tags!.some((t) => f.riskTags.includes(t))) return false;
  if (has(m.requires) && !m.requires!.every((r) => f.requires.includes(r))) return false;
  if (has(m.pack_ids) && !m.pack_ids!.includes(f.packId)) return false;
  if (has(m.actor_ids) && !m.actor_ids!.includes(f.actorId)) return false;
  if (has(m.actor_types) && !lower(m.actor_types!).includes(f.actorType)) return false;
  if (m.labels && Object.entries(m.labels).some(([k, v]) => f.labels[k] !== v)) return false;
  if (m.secrets_present !== undefined && m.secrets_present !== null && m.secrets_present !== f.secretsPresent) return false;
  // An mcp block matches calls that break its lists (the form used by deny rules).
  if (m.mcp && !mcpViolation(m.mcp, f.mcp)) return false;
  return true;
}

export function constraintsJson(c: PolicyConstraintsDoc | undefined): ConstraintsJson | null {
  if (!c || Object.keys(c).length === 0) return null;
  return {
    budgets: {
      maxRuntimeMs: String(c.budgets?.max_runtime_ms ?? 0),
      maxRetries: c.budgets?.max_retries ?? 0,
      maxArtifactBytes: String(c.budgets?.max_artifact_bytes ?? 0),
      maxConcurrentJobs: c.budgets?.max_concurrent_jobs ?? 0,
    },
    sandbox: {
      isolated: c.sandbox?.isolated ?? false,
      networkAllowlist: c.sandbox?.network_allowlist ?? [],
      fsReadOnly: c.sandbox?.fs_read_only ?? [],
      fsReadWrite: c.sandbox?.fs_read_write ?? [],
    },
    toolchain: { allowedTools: c.toolchain?.allowed_tools ?? [], allowedCommands: c.toolchain?.allowed_commands ?? [] },
    diff: { maxFiles: c.diff?.max_files ?? 0, maxLines: c.diff?.max_lines ?? 0, denyPathGlobs: c.diff?.deny_path_globs ?? [] },
    redactionLevel: c.redaction_level ?? '',
  };
}

function remediationJson(r: RemediationDoc): RemediationJson {
  return {
    id: r.id ?? '',
    title: r.title ?? '',
    summary: r.summary ?? '',
    replacementTopic: r.replacement_topic ?? '',
    replacementCapability: r.replacement_capability ?? '',
    addLabels: r.add_labels ?? {},
    removeLabels: r.remove_labels ?? [],
  };
}

function response(snapshot: string, decision: DecisionType, reason: string, ruleId = ''): PolicyCheckResponse {
  return {
    decision,
    reason,
    redactedContextPtr: '',
    policySnapshot: snapshot,
    ruleId,
    constraints: null,
    approvalRequired: false,
    approvalRef: '',
    remediations: [],
  };
}

/** The `safety` section of an effective config, whether given as the merged data or the whole doc. */
function effectiveSafety(ec: unknown): { denied_topics?: string[]; allowed_topics?: string[]; mcp?: McpLists } | undefined {
  let v = ec;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, any>;
  const safety = o.safety ?? o.data?.safety;
  return typeof safety === 'object' && safety !== null ? safety : undefined;
}

export interface Evaluation {
  response: PolicyCheckResponse;
  /** Index into policy.rules of the winning rule, -1 for none. */
  ruleIndex: number;
}

export function evaluate(policy: CompiledPolicy, req: PolicyCheckRequest): Evaluation {
  const snap = policy.snapshot;
  const topic = (req.topic ?? '').trim();
  if (!topic) return { response: response(snap, 'DECISION_TYPE_DENY', 'missing topic'), ruleIndex: -1 };
  if (!topic.startsWith('job.')) return { response: response(snap, 'DECISION_TYPE_DENY', 'unsupported topic'), ruleIndex: -1 };

  const f = facts(policy.doc, { ...req, topic });
  const ruleIndex = policy.rules.findIndex((r) => ruleMatches(r, f));
  const rule = ruleIndex >= 0 ? policy.rules[ruleIndex] : undefined;
  let res = response(snap, 'DECISION_TYPE_ALLOW', rule?.reason ?? '', rule?.id ?? '');
  if (rule) {
    const constraints = constraintsJson(rule.constraints);
    res.remediations = (rule.remediations ?? []).map(remediationJson);
    switch (normalizeDecision(rule.decision)) {
      case 'deny':
        res.decision = 'DECISION_TYPE_DENY';
        break;
      case 'throttle':
        res.decision = 'DECISION_TYPE_THROTTLE';
        break;
      case 'require_approval':
        res.decision = 'DECISION_TYPE_REQUIRE_HUMAN';
        res.approvalRequired = true;
        res.approvalRef = req.job_id ?? '';
        res.constraints = constraints;
        break;
      case 'allow_with_constraints':
        res.decision = 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS';
        res.constraints = constraints;
        break;
      case 'allow':
        res.constraints = constraints;
        if (constraints) res.decision = 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS';
        break;
    }
  }
  if (res.decision === 'DECISION_TYPE_DENY') return { response: res, ruleIndex };

  // Post-rule gates: the tenant's MCP lists, then the effective config.
  const tenantMcp = mcpViolation(policy.doc.tenants?.[f.tenant]?.mcp, f.mcp);
  if (tenantMcp) return { response: { ...res, decision: 'DECISION_TYPE_DENY', reason: tenantMcp, approvalRequired: false, approvalRef: '' }, ruleIndex };
  const safety = effectiveSafety(req.effective_config);
  if (safety) {
    let reason: string | undefined;
    if (safety.denied_topics?.some((p) => globMatch(p, topic))) reason = `topic '${topic}' denied by effective config`;
    else if (has(safety.allowed_topics) && !safety.allowed_topics!.some((p) => globMatch(p, topic))) reason = `topic '${topic}' not allowed by effective config`;
    else {
      const m = mcpViolation(safety.mcp, f.mcp);
      if (m) reason = `${m} by effective config`;
    }
    if (reason) res = { ...res, decision: 'DECISION_TYPE_DENY', reason, approvalRequired: false, approvalRef: '' };
  }
  return { response: res, ruleIndex };
}
