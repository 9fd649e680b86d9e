// The safety policy document (Cordum's config/safety.yaml format) and its parser/validator.
// One format serves the kernel's file policy, config-service bundles and the gateway's bundle
// validation, so a bundle the gateway accepts is exactly what the kernel can load.
import { parse as parseYaml } from 'yaml';

export type DecisionName = 'allow' | 'deny' | 'require_approval' | 'allow_with_constraints' | 'throttle';

export interface McpLists {
  allow_servers?: string[];
  deny_servers?: string[];
  allow_tools?: string[];
  deny_tools?: string[];
  allow_resources?: string[];
  deny_resources?: string[];
  allow_actions?: string[];
  deny_actions?: string[];
}

export interface PolicyMatch {
  tenants?: string[];
  topics?: string[];
  capabilities?: string[];
  risk_tags?: string[];
  requires?: string[];
  pack_ids?: string[];
  actor_ids?: string[];
  actor_types?: string[];
  labels?: Record<string, string>;
  secrets_present?: boolean;
  mcp?: McpLists;
}

export interface PolicyConstraintsDoc {
  budgets?: { max_runtime_ms?: number; max_retries?: number; max_artifact_bytes?: number; max_concurrent_jobs?: number };
  sandbox?: { isolated?: boolean; network_allowlist?: string[]; fs_read_only?: string[]; fs_read_write?: string[] };
  toolchain?: { allowed_tools?: string[]; allowed_commands?: string[] };
  diff?: { max_files?: number; max_lines?: number; deny_path_globs?: string[] };
  redaction_level?: string;
}

export interface RemediationDoc {
  id?: string;
  title?: string;
  summary?: string;
  replacement_topic?: string;
  replacement_capability?: string;
  add_labels?: Record<string, string>;
  remove_labels?: string[];
}

export interface PolicyRule {
  id?: string;
  match?: PolicyMatch;
  decision?: string;
  reason?: string;
  constraints?: PolicyConstraintsDoc;
  remediations?: RemediationDoc[];
}

export interface TenantPolicy {
  allow_topics?: string[];
  deny_topics?: string[];
  allowed_repo_hosts?: string[];
  denied_repo_hosts?: string[];
  max_concurrent_jobs?: number;
  mcp?: McpLists;
}

export interface PolicyDoc {
  version?: string;
  default_tenant?: string;
  rules?: PolicyRule[];
  tenants?: Record<string, TenantPolicy>;
}

/** Every spelling Cordum accepts for a rule decision. */
const DECISION_ALIASES: Record<string, DecisionName> = {
  allow: 'allow',
  permit: 'allow',
  deny: 'deny',
  block: 'deny',
  require_approval: 'require_approval',
  'require-approval': 'require_approval',
  require_human: 'require_approval',
  allow_with_constraints: 'allow_with_constraints',
  'allow-with-constraints': 'allow_with_constraints',
  throttle: 'throttle',
};

/** Unknown decision strings mean allow (Cordum's quirk; the bundle validator still rejects them). */
export function normalizeDecision(d: string | undefined): DecisionName {
  return DECISION_ALIASES[(d ?? '').trim().toLowerCase()] ?? 'allow';
}

// ---- validation (the documented schema: closed objects inside rules/tenants, open at top level) ----

type Check = (v: unknown, path: string, errs: string[]) => void;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const str: Check = (v, p, e) => {
  if (typeof v !== 'string') e.push(`${p}: expected string`);
};
const bool: Check = (v, p, e) => {
  if (typeof v !== 'boolean') e.push(`${p}: expected boolean`);
};
const nonNegInt: Check = (v, p, e) => {
  if (typeof v !== 'number' || !Number.isInteger(v)) e.push(`${p}: expected integer`);
  else if (v < 0) e.push(`${p}: must be >= 0`);
};
const strList: Check = (v, p, e) => {
  if (!Array.isArray(v)) return void e.push(`${p}: expected array`);
  v.forEach((x, i) => str(x, `${p}[${i}]`, e));
};
const strMap: Check = (v, p, e) => {
  if (!isObj(v)) return void e.push(`${p}: expected object`);
  for (const [k, x] of Object.entries(v)) str(x, `${p}.${k}`, e);
};
function closed(fields: Record<string, Check>): Check {
  return (v, p, e) => {
    if (!isObj(v)) return void e.push(`${p}: expected object`);
    for (const [k, x] of Object.entries(v)) {
      const c = fields[k];
      if (!c) e.push(`${p}: unknown field "${k}"`);
      else if (x !== null && x !== undefined) c(x, `${p}.${k}`, e);
    }
  };
}
const mcpCheck = closed(
  Object.fromEntries(
    ['allow_servers', 'deny_servers', 'allow_tools', 'deny_tools', 'allow_resources', 'deny_resources', 'allow_actions', 'deny_actions'].map((k) => [k, strList]),
  ),
);
const matchCheck = closed({
  tenants: strList,
  topics: strList,
  capabilities: strList,
  risk_tags: strList,
  requires: strList,
  pack_ids: strList,
  actor_ids: strList,
  actor_types: strList,
  labels: strMap,
  secrets_present: bool,
  mcp: mcpCheck,
});
const constraintsCheck = closed({
  budgets: closed({ max_runtime_ms: nonNegInt, max_retries: nonNegInt, max_artifact_bytes: nonNegInt, max_concurrent_jobs: nonNegInt }),
  sandbox: closed({ isolated: bool, network_allowlist: strList, fs_read_only: strList, fs_read_write: strList }),
  toolchain: closed({ allowed_tools: strList, allowed_commands: strList }),
  diff: closed({ max_files: nonNegInt, max_lines: nonNegInt, deny_path_globs: strList }),
  redaction_level: str,
});
const remediationCheck = closed({
  id: str,
  title: str,
  summary: str,
  replacement_topic: str,
  replacement_capability: str,
  add_labels: strMap,
  remove_labels: strList,
});
const decisionCheck: Check = (v, p, e) => {
  if (typeof v !== 'string' || !(v in DECISION_ALIASES)) e.push(`${p}: must be one of ${Object.keys(DECISION_ALIASES).join(', ')}`);
};
const ruleCheck = closed({
  id: str,
  match: matchCheck,
  decision: decisionCheck,
  reason: str,
  constraints: constraintsCheck,
  remediations: (v, p, e) => {
    if (!Array.isArray(v)) return void e.push(`${p}: expected array`);
    v.forEach((x, i) => remediationCheck(x, `${p}[${i}]`, e));
  },
});
const tenantCheck = closed({
  allow_topics: strList,
  deny_topics: strList,
  allowed_repo_hosts: strList,
  denied_repo_hosts: strList,
  max_concurrent_jobs: nonNegInt,
  mcp: mcpCheck,
});

/** Schema errors for a parsed document (empty = valid). */
export function policySchemaErrors(doc: unknown): string[] {
  const errs: string[] = [];
  if (!isObj(doc)) return ['policy: expected a mapping at the top level'];
  const d = doc as Record<string, unknown>;
  if (d.version !== undefined && d.version !== null) str(d.version, 'version', errs);
  if (d.default_tenant !== undefined && d.default_tenant !== null) str(d.default_tenant, 'default_tenant', errs);
  if (d.rules !== undefined && d.rules !== null) {
    if (!Array.isArray(d.rules)) errs.push('rules: expected array');
    else d.rules.forEach((r, i) => ruleCheck(r, `rules[${i}]`, errs));
  }
  if (d.tenants !== undefined && d.tenants !== null) {
    if (!isObj(d.tenants)) errs.push('tenants: expected object');
    else for (const [t, tp] of Object.entries(d.tenants)) tenantCheck(tp, `tenants.${t}`, errs);
  }
  return errs;
}

export class PolicyParseError extends Error {}

/**
 * A YAML syntax error worded as Go's yaml.v3 words it (`yaml: line N: <what>`; recorded:
 * "yaml: line 1: did not find expected node content"). The JS parser's own codes are mapped to
 * the closest Go wording; anything else keeps the parser's first line.
 */
function goYamlError(err: unknown): string {
  const e = err as { code?: string; linePos?: { line: number }[]; message?: string };
  const line = e.linePos?.[0]?.line;
  const GO_WORDING: Record<string, string> = {
    MISSING_CHAR: 'did not find expected node content',
    UNEXPECTED_TOKEN: 'did not find expected node content',
    BAD_INDENT: 'did not find expected key',
    BLOCK_AS_IMPLICIT_KEY: 'mapping values are not allowed in this context',
    MULTILINE_IMPLICIT_KEY: 'could not find expected \':\'',
    TAB_AS_INDENT: 'found character that cannot start any token',
  };
  // An unterminated flow collection (`rules: [ {`) is "did not find expected node content" in Go.
  const unterminatedFlow = /^Flow (map|sequence)/.test(e.message ?? '');
  const what = unterminatedFlow ? 'did not find expected node content' : ((e.code && GO_WORDING[e.code]) ?? (e.message ?? String(err)).split('\n')[0]);
  return line ? `yaml: line ${line}: ${what}` : `yaml: ${what}`;
}

/**
 * Parse policy YAML. `validate` applies the schema (bundle PUT/publish and kernel fragments);
 * an empty document is an empty policy.
 */
export function parsePolicy(text: string, opts: { validate?: boolean } = {}): PolicyDoc {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new PolicyParseError(`parse safety policy config: ${goYamlError(err)}`);
  }
  if (raw === null || raw === undefined) return {};
  if (opts.validate ?? true) {
    const errs = policySchemaErrors(raw);
    if (errs.length) throw new PolicyParseError(errs.join('; '));
  } else if (!isObj(raw)) {
    throw new PolicyParseError('policy: expected a mapping at the top level');
  }
  const doc = raw as PolicyDoc;
  // A numeric YAML version (version: 1) is still a version string.
  if (doc.version !== undefined && doc.version !== null) doc.version = String(doc.version);
  return doc;
}

/** Merge the file policy with bundle fragments: rules in order, tenant lists appended. */
export function mergePolicies(base: PolicyDoc, fragments: PolicyDoc[]): PolicyDoc {
  const out: PolicyDoc = {
    version: base.version,
    default_tenant: base.default_tenant,
    rules: [...(base.rules ?? [])],
    tenants: {},
  };
  for (const doc of [base, ...fragments]) {
    if (doc !== base) out.rules!.push(...(doc.rules ?? []));
    if (!out.default_tenant && doc.default_tenant) out.default_tenant = doc.default_tenant;
    for (const [t, tp] of Object.entries(doc.tenants ?? {})) {
      const cur = (out.tenants![t] ??= {});
      cur.allow_topics = [...(cur.allow_topics ?? []), ...(tp?.allow_topics ?? [])];
      cur.deny_topics = [...(cur.deny_topics ?? []), ...(tp?.deny_topics ?? [])];
      if (tp?.mcp) cur.mcp = { ...(cur.mcp ?? {}), ...tp.mcp };
    }
  }
  return out;
}
