// Policy regression cases: YAML files that list policy check requests and the decision the safety
// kernel must give for each (like `opa test` for a Cordum policy). Loading validates every case and
// turns any problem into a one-line ConfigError naming the file and the line, because the person
// reading it has to fix that file.
//
//   description: what these cases protect        # optional
//   requires_stock_policy: true                  # optional: only meaningful while no bundle adds rules
//   cases:
//     - name: tenant default may submit job topics
//       request: { topic: job.default }          # the body of POST /api/v1/policy/evaluate
//       expect:
//         decision: ALLOW                        # or DECISION_TYPE_ALLOW, DENY, REQUIRE_APPROVAL, ...
//         rule_id: legacy:default:allow:1        # required; "" means "no rule matched"
//         reason: unsupported topic              # optional
import { relative } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { ConfigError } from './errors.js';
import { readUserFile } from './files.js';
import type { PolicyCheckBody } from './gateway-types.js';

export interface PolicyCase {
  name: string;
  request: PolicyCheckBody;
  expect: {
    /** Normalised to the policy endpoints' vocabulary, e.g. DECISION_TYPE_ALLOW. */
    decision: string;
    rule_id: string;
    reason?: string;
  };
  /** `path:line` of the case, for messages. */
  source: string;
}

export interface PolicyCaseFile {
  file: string;
  description?: string;
  requiresStockPolicy: boolean;
  cases: PolicyCase[];
}

/** Case files are small; anything bigger is a mistake. */
const MAX_CASE_FILE_BYTES = 1024 * 1024;

const DECISIONS: Record<string, string> = {
  ALLOW: 'DECISION_TYPE_ALLOW',
  PERMIT: 'DECISION_TYPE_ALLOW',
  DENY: 'DECISION_TYPE_DENY',
  BLOCK: 'DECISION_TYPE_DENY',
  REQUIRE_APPROVAL: 'DECISION_TYPE_REQUIRE_HUMAN',
  REQUIRE_HUMAN: 'DECISION_TYPE_REQUIRE_HUMAN',
  THROTTLE: 'DECISION_TYPE_THROTTLE',
  ALLOW_WITH_CONSTRAINTS: 'DECISION_TYPE_ALLOW_WITH_CONSTRAINTS',
};

/**
 * Normalise a decision written in any of Cordum's three vocabularies (`require_approval`,
 * `REQUIRE_APPROVAL`, `DECISION_TYPE_REQUIRE_HUMAN`) to the policy endpoints' enum name.
 * Undefined for anything else.
 */
export function normalizeDecision(value: string): string | undefined {
  const v = value.trim().toUpperCase().replace(/-/g, '_');
  if (v.startsWith('DECISION_TYPE_')) return Object.values(DECISIONS).includes(v) || v === 'DECISION_TYPE_UNSPECIFIED' ? v : undefined;
  return DECISIONS[v];
}

const TOP_KEYS = new Set(['description', 'requires_stock_policy', 'cases']);
const CASE_KEYS = new Set(['name', 'request', 'expect']);
const EXPECT_KEYS = new Set(['decision', 'rule_id', 'reason']);
// Cordum ignores unknown request fields silently, so a typo here would make a case pass for the
// wrong reason: only the documented fields of a policy check request are accepted.
const REQUEST_STRING_KEYS = new Set(['topic', 'tenant', 'job_id', 'principal_id', 'priority', 'memory_id', 'team_id', 'workflow_id', 'step_id']);
const REQUEST_KEYS = new Set([...REQUEST_STRING_KEYS, 'estimated_cost', 'budget', 'labels', 'meta', 'effective_config']);
const BUDGET_KEYS = new Set(['max_input_tokens', 'max_output_tokens', 'max_total_tokens', 'deadline_ms']);
const META_STRING_KEYS = new Set(['tenant_id', 'actor_id', 'actor_type', 'idempotency_key', 'capability', 'pack_id']);
const META_LIST_KEYS = new Set(['risk_tags', 'requires']);
const META_KEYS = new Set([...META_STRING_KEYS, ...META_LIST_KEYS, 'labels']);

/** Load several case files; throws ConfigError on the first malformed one. */
export function loadPolicyCaseFiles(files: readonly string[], cwd = process.cwd()): PolicyCaseFile[] {
  return files.map((f) => loadPolicyCaseFile(f, cwd));
}

export function loadPolicyCaseFile(file: string, cwd = process.cwd()): PolicyCaseFile {
  const display = displayPath(file, cwd);
  const text = readUserFile(file, { what: 'policy case file', maxBytes: MAX_CASE_FILE_BYTES, display });
  return parsePolicyCases(text, display);
}

/** Parse and validate case YAML; `display` is the file name used in messages. */
export function parsePolicyCases(text: string, display: string): PolicyCaseFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lc });
  const lineOf = (node: unknown): number | undefined => {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return range ? lc.linePos(range[0]).line : undefined;
  };
  const at = (node: unknown) => {
    const line = lineOf(node);
    return line ? `${display}:${line}` : display;
  };
  const err0 = doc.errors[0];
  if (err0) {
    const line = err0.linePos?.[0]?.line ?? (err0.pos ? lc.linePos(err0.pos[0]).line : undefined);
    throw new ConfigError(`${display}${line ? `:${line}` : ''}: not valid YAML: ${err0.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '')}`);
  }
  const root = doc.contents;
  if (!root || (isScalar(root) && (root.value === null || root.value === ''))) {
    throw new ConfigError(`${display}: the file is empty; expected a mapping with a 'cases' list`);
  }
  if (!isMap(root)) throw new ConfigError(`${at(root)}: expected a mapping with a 'cases' list at the top level`);

  const bad = (node: unknown, msg: string): never => {
    throw new ConfigError(`${at(node)}: ${msg}`);
  };
  checkKeys(root, TOP_KEYS, '', at);

  const description = root.get('description', true);
  if (description !== undefined && !isNonEmptyString(description)) bad(description, "'description' must be a non-empty string");
  const stock = root.get('requires_stock_policy', true);
  if (stock !== undefined && !(isScalar(stock) && typeof stock.value === 'boolean')) bad(stock, "'requires_stock_policy' must be true or false");

  const casesNode = root.get('cases', true);
  if (casesNode === undefined) bad(root, "missing 'cases': a list of {name, request, expect}");
  if (!isSeq(casesNode)) return bad(casesNode, "'cases' must be a list of {name, request, expect}");
  if (casesNode.items.length === 0) bad(casesNode, "'cases' is empty; a case file must hold at least one case");

  const names = new Map<string, number | undefined>();
  const cases: PolicyCase[] = [];
  casesNode.items.forEach((item, i) => {
    const where = `cases[${i}]`;
    if (!isMap(item)) return bad(item, `${where} must be a mapping {name, request, expect}`);
    checkKeys(item, CASE_KEYS, `${where}.`, at);
    const nameNode = item.get('name', true);
    if (nameNode === undefined) bad(item, `${where}: missing 'name'`);
    if (!isNonEmptyString(nameNode)) return bad(nameNode, `${where}.name must be a non-empty string`);
    const name = String(nameNode.value).trim();
    if (names.has(name)) bad(nameNode, `${where}: duplicate case name '${name}' (first used on line ${names.get(name)})`);
    names.set(name, lineOf(nameNode));

    const reqNode = item.get('request', true);
    if (reqNode === undefined) bad(item, `${where} (${name}): missing 'request'`);
    const request = validateRequest(reqNode as YamlNode, `${where}.request`, at);

    const expNode = item.get('expect', true);
    if (expNode === undefined) bad(item, `${where} (${name}): missing 'expect'`);
    if (!isMap(expNode)) return bad(expNode, `${where}.expect must be a mapping {decision, rule_id, reason?}`);
    checkKeys(expNode, EXPECT_KEYS, `${where}.expect.`, at);
    const decNode = expNode.get('decision', true);
    if (decNode === undefined) bad(expNode, `${where}.expect: missing 'decision'`);
    if (!isNonEmptyString(decNode)) return bad(decNode, `${where}.expect.decision must be a string`);
    const decision = normalizeDecision(String(decNode.value));
    if (!decision) {
      bad(decNode, `${where}.expect.decision '${String(decNode.value)}' is not a decision (use ALLOW, DENY, REQUIRE_APPROVAL, THROTTLE, ALLOW_WITH_CONSTRAINTS or their DECISION_TYPE_* names)`);
    }
    const ruleNode = expNode.get('rule_id', true);
    if (ruleNode === undefined) bad(expNode, `${where}.expect: missing 'rule_id' (write rule_id: "" when no rule should match)`);
    if (!(isScalar(ruleNode) && typeof ruleNode.value === 'string')) return bad(ruleNode, `${where}.expect.rule_id must be a string ("" when no rule should match)`);
    const reasonNode = expNode.get('reason', true);
    if (reasonNode !== undefined && !(isScalar(reasonNode) && typeof reasonNode.value === 'string')) bad(reasonNode, `${where}.expect.reason must be a string`);

    cases.push({
      name,
      request,
      expect: {
        decision: decision!,
        rule_id: ruleNode.value,
        ...(reasonNode !== undefined ? { reason: String((reasonNode as { value: unknown }).value) } : {}),
      },
      source: at(item),
    });
  });

  return {
    file: display,
    ...(description !== undefined ? { description: String((description as { value: unknown }).value) } : {}),
    requiresStockPolicy: stock !== undefined && (stock as { value: unknown }).value === true,
    cases,
  };
}

function validateRequest(node: YamlNode, where: string, at: (n: unknown) => string): PolicyCheckBody {
  const bad = (n: unknown, msg: string): never => {
    throw new ConfigError(`${at(n)}: ${msg}`);
  };
  if (!isMap(node)) return bad(node, `${where} must be a mapping (the body of POST /api/v1/policy/evaluate)`);
  checkKeys(node, REQUEST_KEYS, `${where}.`, at);
  const topic = node.get('topic', true);
  if (topic === undefined) bad(node, `${where}: missing 'topic' (Cordum answers 400 without it)`);
  for (const pair of node.items) {
    const key = String((pair.key as { value: unknown }).value);
    const v = pair.value as YamlNode | null;
    const field = `${where}.${key}`;
    if (REQUEST_STRING_KEYS.has(key)) {
      if (!(isScalar(v) && typeof v.value === 'string')) bad(v ?? pair.key, `${field} must be a string`);
      if (key === 'topic' && !String((v as { value: unknown }).value).trim()) bad(v, `${field} must not be empty`);
    } else if (key === 'estimated_cost') {
      if (!(isScalar(v) && typeof v.value === 'number')) bad(v ?? pair.key, `${field} must be a number`);
    } else if (key === 'budget') {
      if (!isMap(v)) return bad(v ?? pair.key, `${field} must be a mapping {max_input_tokens, max_output_tokens, max_total_tokens, deadline_ms}`);
      checkKeys(v, BUDGET_KEYS, `${field}.`, at);
      for (const p of v.items) {
        const n = p.value as YamlNode | null;
        if (!(isScalar(n) && typeof n.value === 'number' && Number.isInteger(n.value) && n.value >= 0)) {
          bad(n ?? p.key, `${field}.${String((p.key as { value: unknown }).value)} must be a non-negative integer`);
        }
      }
    } else if (key === 'labels') {
      checkStringMap(v, field, at, pair.key);
    } else if (key === 'meta') {
      if (!isMap(v)) return bad(v ?? pair.key, `${field} must be a mapping`);
      checkKeys(v, META_KEYS, `${field}.`, at);
      for (const p of v.items) {
        const k = String((p.key as { value: unknown }).value);
        const n = p.value as YamlNode | null;
        if (META_STRING_KEYS.has(k) && !(isScalar(n) && typeof n.value === 'string')) bad(n ?? p.key, `${field}.${k} must be a string`);
        if (META_LIST_KEYS.has(k) && !(isSeq(n) && n.items.every((x) => isScalar(x) && typeof x.value === 'string'))) {
          bad(n ?? p.key, `${field}.${k} must be a list of strings`);
        }
        if (k === 'labels') checkStringMap(n, `${field}.labels`, at, p.key);
      }
    }
    // effective_config: any value, passed through.
  }
  return node.toJSON() as PolicyCheckBody;
}

function checkStringMap(n: unknown, field: string, at: (n: unknown) => string, keyNode: unknown): void {
  if (!isMap(n)) throw new ConfigError(`${at(n ?? keyNode)}: ${field} must be a mapping of strings to strings`);
  for (const p of n.items) {
    const v = p.value as YamlNode | null;
    if (!(isScalar(v) && typeof v.value === 'string')) {
      // Cordum answers 400 for a non-string label value; quote numbers and booleans.
      throw new ConfigError(`${at(v ?? p.key)}: ${field}.${String((p.key as { value: unknown }).value)} must be a string (quote numbers and booleans)`);
    }
  }
}

function checkKeys(map: { items: { key: unknown }[] }, known: Set<string>, prefix: string, at: (n: unknown) => string): void {
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (!known.has(key)) {
      throw new ConfigError(`${at(pair.key)}: unknown field '${prefix}${key}' (known: ${[...known].join(', ')})`);
    }
  }
}

function isNonEmptyString(n: unknown): n is { value: string } {
  return isScalar(n) && typeof n.value === 'string' && n.value.trim() !== '';
}

function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') ? rel : file;
}
