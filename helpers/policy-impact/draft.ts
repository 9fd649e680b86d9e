// The draft bundle named by --draft, and the options that say where it goes: read bounded, parsed
// as YAML, checked for the shape of a Cordum policy fragment (api.md §10.10) so a typo is one line
// with exit 2 before anything is asked of the target. The canary variant of the draft carries one
// extra rule first in line, so a single request proves the evaluator really applied this content.
import { isAbsolute, resolve } from 'node:path';
import { isMap, isSeq, parseDocument, stringify, type Document } from 'yaml';
import { ConfigError, UsageError } from '../errors.js';
import { KiB, readUserFile } from '../files.js';

/** Cordum keeps bundles in one config document; a draft far beyond this is not a policy fragment. */
export const MAX_DRAFT_BYTES = 256 * KiB;
/** Cordum's job:recent index keeps the newest 1000 jobs: more cannot be listed. */
export const MAX_JOBS = 1000;
export const DEFAULT_JOBS = 1000;

const TOP_LEVEL = ['version', 'default_tenant', 'rules', 'tenants'];
const RULE_FIELDS = ['id', 'match', 'decision', 'reason', 'constraints', 'remediations'];
const DECISIONS = /^(allow|permit|deny|block|require_approval|require-approval|require_human|allow_with_constraints|allow-with-constraints|throttle)$/i;
/** Policy Studio ids: only `secops/*` bundles can be stored and published through the API. */
const BUNDLE_ID = /^secops\/[A-Za-z0-9][A-Za-z0-9._-]{0,120}$/;

export interface Draft {
  /** The path as given on the command line. */
  display: string;
  content: string;
  ruleIds: string[];
}

export interface ImpactOptions {
  draft: Draft;
  /** The bundle the draft is simulated as: replaces a stored bundle of that id, or is added. */
  bundleId: string;
  /** True when --bundle-id was not given (the draft is added under a name of this run). */
  addedUnderRunName: boolean;
  jobs: number;
}

/** The runbook's options (--draft, --bundle-id, --jobs) checked and the draft read. */
export function readImpactOptions(options: Readonly<Record<string, string | boolean>>, prefix: string, cwd = process.cwd()): ImpactOptions {
  const given = (name: string): string | undefined => {
    const v = options[name];
    if (v === undefined || v === false) return undefined;
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} needs a value`);
    return v;
  };
  const path = given('draft');
  if (path === undefined) throw new UsageError('--draft <bundle.yaml> is required: the draft policy bundle whose impact to measure');
  const bundle = given('bundle-id');
  if (bundle !== undefined && !BUNDLE_ID.test(bundle)) {
    throw new UsageError(`--bundle-id: expected a Policy Studio bundle id like secops/payments (secops/ then letters, digits, '.', '_', '-'), got ${JSON.stringify(bundle.slice(0, 80))}`);
  }
  const jobsText = given('jobs');
  let jobs = DEFAULT_JOBS;
  if (jobsText !== undefined) {
    if (!/^\d+$/.test(jobsText) || Number(jobsText) < 1 || Number(jobsText) > MAX_JOBS) {
      throw new UsageError(`--jobs: expected a whole number from 1 to ${MAX_JOBS} (Cordum lists at most its ${MAX_JOBS} most recent jobs), got ${JSON.stringify(jobsText.slice(0, 20))}`);
    }
    jobs = Number(jobsText);
  }
  return {
    draft: readDraft(isAbsolute(path) ? path : resolve(cwd, path), path),
    bundleId: bundle ?? `secops/${prefix}-impact-draft`,
    addedUnderRunName: bundle === undefined,
    jobs,
  };
}

/** Read and check a draft bundle file; every problem is a ConfigError naming the file (and line). */
export function readDraft(path: string, display = path): Draft {
  const where = `--draft ${display}`;
  const content = readUserFile(path, { what: 'draft policy bundle', maxBytes: MAX_DRAFT_BYTES, display: where });
  const doc = parseDocument(content, { prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line;
    throw new ConfigError(`${where}${line ? `:${line}` : ''}: not valid YAML: ${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '')}`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    throw new ConfigError(`${where}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) {
    throw new ConfigError(`${where}: the file is empty; a draft with no rules is written "rules: []"`);
  }
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`${where}: expected a policy mapping (version, rules, tenants) at the top level`);
  const top = data as Record<string, unknown>;
  for (const k of Object.keys(top)) {
    if (!TOP_LEVEL.includes(k)) throw new ConfigError(`${where}: unknown top-level field '${k}' (a policy bundle has ${TOP_LEVEL.join(', ')})`);
  }
  const rules = top.rules ?? [];
  if (!Array.isArray(rules)) throw new ConfigError(`${where}: rules: expected a list of rules`);
  const ids: string[] = [];
  rules.forEach((r: unknown, i) => {
    const at = `${where}: rules[${i}]`;
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw new ConfigError(`${at}: expected a rule mapping (id, match, decision, reason)`);
    const rule = r as Record<string, unknown>;
    for (const k of Object.keys(rule)) if (!RULE_FIELDS.includes(k)) throw new ConfigError(`${at}: unknown field '${k}' (a rule has ${RULE_FIELDS.join(', ')})`);
    if (typeof rule.id !== 'string' || !rule.id) throw new ConfigError(`${at}.id: expected a rule id`);
    if (ids.includes(rule.id)) throw new ConfigError(`${at}.id: rule id '${rule.id}' is used twice`);
    if (typeof rule.decision !== 'string' || !DECISIONS.test(rule.decision)) {
      // Cordum reads an unknown decision as allow: a typo in "deny" would silently let everything through.
      throw new ConfigError(`${at}.decision: expected allow, deny, require_approval, allow_with_constraints or throttle, got ${JSON.stringify(rule.decision)}`);
    }
    if (rule.match !== undefined && (rule.match === null || typeof rule.match !== 'object' || Array.isArray(rule.match))) {
      throw new ConfigError(`${at}.match: expected a mapping (topics, capabilities, risk_tags, labels, ...)`);
    }
    ids.push(rule.id);
  });
  return { display, content, ruleIds: ids };
}

/** A bundle that adds nothing: what "the stored bundles as they are" means when the named bundle is absent or disabled. */
export const NEUTRAL_BUNDLE = 'rules: []\n';

/** The draft with `rule` first in its rules (first match wins), as YAML text; the rest of the draft is kept as written. */
export function withLeadingRule(content: string, rule: Record<string, unknown>): string {
  // Edited as a plain Document: the parsed one's node types do not accept new nodes.
  const doc = parseDocument(content) as unknown as Document;
  const root = doc.contents;
  // readDraft only lets mappings through; anything else is replaced by the rule alone.
  if (!isMap(root)) return stringify({ rules: [rule] });
  const rules = root.get('rules', true);
  const node = doc.createNode(rule);
  if (isSeq(rules)) rules.items.unshift(node);
  else root.set('rules', doc.createNode([rule]));
  return doc.toString();
}
