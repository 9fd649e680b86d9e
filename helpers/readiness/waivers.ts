// Waivers: a reviewed, expiring exception for one check. A waived check reports "waived" with its
// reason (never "pass"); an expired waiver turns the check into a fail; a malformed file is a
// ConfigError naming the file and line.
import { existsSync } from 'node:fs';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError } from '../errors.js';
import { MiB, readUserFile } from '../files.js';

export interface Waiver {
  check: string;
  /** '*' | a namespace | a target profile name. */
  scope: string;
  reason: string;
  owner: string;
  ticket: string;
  /** YYYY-MM-DD (end of that day, UTC) or RFC3339. */
  expires: string;
  line: number;
}

export const WAIVERS_FILE = 'readiness.waivers.yaml';
const FIELDS = ['check', 'scope', 'reason', 'owner', 'ticket', 'expires'] as const;

/** Expiry instant: a bare date means the waiver holds through that whole UTC day. */
export function waiverExpiry(w: Pick<Waiver, 'expires'>): number {
  return /^\d{4}-\d{2}-\d{2}$/.test(w.expires) ? Date.parse(`${w.expires}T23:59:59.999Z`) : Date.parse(w.expires);
}

export function parseWaivers(text: string, file: string, knownChecks?: Set<string>): Waiver[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true });
  const lineOf = (n: Node | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : 1);
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}:${e.linePos?.[0]?.line ?? '?'}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (root === null || root === undefined) return [];
  const list = isMap(root) ? root.get('waivers', true) : root;
  if (list === undefined || list === null) return [];
  if (!isSeq(list)) throw new ConfigError(`${file}:${lineOf(list as Node)}: expected \`waivers:\` to be a list of {check, scope, reason, owner, ticket, expires}`);
  return list.items.map((item, i) => {
    const line = lineOf(item as Node);
    if (!isMap(item)) throw new ConfigError(`${file}:${line}: waivers[${i}] must be a mapping with ${FIELDS.join(', ')}`);
    const out: Record<string, string> = {};
    for (const f of FIELDS) {
      const node = item.get(f, true) as Node | undefined;
      const v = (node as { value?: unknown } | undefined)?.value;
      const str = v instanceof Date ? v.toISOString().slice(0, 10) : v;
      if (typeof str !== 'string' && typeof str !== 'number') throw new ConfigError(`${file}:${node ? lineOf(node) : line}: waivers[${i}].${f} is required (a non-empty string)`);
      if (String(str).trim() === '') throw new ConfigError(`${file}:${lineOf(node)}: waivers[${i}].${f} must not be empty`);
      out[f] = String(str).trim();
    }
    for (const p of item.items) {
      const k = String((p.key as { value?: unknown })?.value);
      if (!(FIELDS as readonly string[]).includes(k)) throw new ConfigError(`${file}:${lineOf(p.key as Node)}: waivers[${i}] has unknown field "${k}" (allowed: ${FIELDS.join(', ')})`);
    }
    if (Number.isNaN(waiverExpiry({ expires: out.expires }))) throw new ConfigError(`${file}:${lineOf(item.get('expires', true) as Node)}: waivers[${i}].expires "${out.expires}" is not a date (YYYY-MM-DD or RFC3339)`);
    if (knownChecks && !knownChecks.has(out.check)) throw new ConfigError(`${file}:${lineOf(item.get('check', true) as Node)}: waivers[${i}].check "${out.check}" is not a readiness check id`);
    return { ...(out as Omit<Waiver, 'line'>), line };
  });
}

export function loadWaivers(file: string, knownChecks?: Set<string>): Waiver[] {
  if (!existsSync(file)) return [];
  // Bounded and type-checked: a FIFO or /dev/zero named as the waiver file must not hang the audit.
  return parseWaivers(readUserFile(file, { what: 'waiver file', maxBytes: MiB }), file, knownChecks);
}

export function waiverApplies(w: Waiver, checkId: string, scope: { namespace?: string; target?: string }): boolean {
  return w.check === checkId && (w.scope === '*' || w.scope === scope.namespace || w.scope === scope.target || w.scope === `namespace/${scope.namespace}` || w.scope === `target/${scope.target}`);
}
