// The request hash Cordum records with a safety decision and re-checks on approval: approving is
// only valid for the exact request the policy looked at. Volatile parts are left out so that the
// hash survives the protojson round trip through job:req and the approval labels the gateway adds.
import { createHash } from 'node:crypto';
import type { JobRequest } from '../../helpers/cap/codec.js';

/** Labels the approval flow itself adds; they must not change the hash. */
const VOLATILE_LABELS = new Set(['approval_granted', 'approval_reason', 'approval_note', 'cordum.bus_msg_id']);

/** Drop empty values (proto3 defaults) and sort keys, so equal requests serialise equally. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.length ? v.map(canonical) : undefined;
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const c = canonical((v as Record<string, unknown>)[k]);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length ? out : undefined;
  }
  if (v === null || v === undefined || v === '' || v === 0 || v === false) return undefined;
  return v;
}

export function jobHash(req: JobRequest): string {
  const labels = Object.fromEntries(Object.entries(req.labels ?? {}).filter(([k]) => !VOLATILE_LABELS.has(k)));
  // Env entries the scheduler injects (CORDUM_*) are derived data, not part of what was asked.
  const env = Object.fromEntries(Object.entries(req.env ?? {}).filter(([k]) => !k.startsWith('CORDUM_')));
  const body = canonical({ ...req, labels, env }) ?? {};
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}
