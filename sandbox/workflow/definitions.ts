// Decodes a POST /api/v1/workflows body the way Go's encoding/json decodes it into Cordum's
// Workflow struct: unknown fields ignored, null = zero value, a wrong JSON type anywhere → error
// (the route answers 400 `invalid json`). Also implements the upsert merge rules.
import { randomUUID } from 'node:crypto';
import type { Step, Workflow } from './models.js';
import { rfc3339Now } from './time.js';

export class DecodeError extends Error {}

type Kind = 'string' | 'int' | 'number' | 'bool' | 'object' | 'objects' | 'strings' | 'strmap' | { [field: string]: Kind };

const RETRY: Record<string, Kind> = { max_retries: 'int', initial_backoff_sec: 'int', max_backoff_sec: 'int', multiplier: 'number' };
const META: Record<string, Kind> = {
  actor_id: 'string',
  actor_type: 'string',
  idempotency_key: 'string',
  pack_id: 'string',
  capability: 'string',
  risk_tags: 'strings',
  requires: 'strings',
  labels: 'strmap',
};
const STEP: Record<string, Kind> = {
  id: 'string',
  name: 'string',
  type: 'string',
  topic: 'string',
  worker_id: 'string',
  depends_on: 'strings',
  condition: 'string',
  for_each: 'string',
  max_parallel: 'int',
  input: 'object',
  input_schema: 'object',
  input_schema_id: 'string',
  output_path: 'string',
  output_schema: 'object',
  output_schema_id: 'string',
  meta: META,
  on_error: 'string',
  retry: RETRY,
  timeout_sec: 'int',
  delay_sec: 'int',
  delay_until: 'string',
  route_labels: 'strmap',
};
const WORKFLOW: Record<string, Kind> = {
  id: 'string',
  org_id: 'string',
  team_id: 'string',
  name: 'string',
  description: 'string',
  version: 'string',
  timeout_sec: 'int',
  created_by: 'string',
  input_schema: 'object',
  parameters: 'objects',
  config: 'object',
};

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function check(v: unknown, kind: Kind, path: string): unknown {
  if (v === null || v === undefined) return undefined;
  const fail = (): never => {
    throw new DecodeError(`${path}: unexpected ${Array.isArray(v) ? 'array' : typeof v}`);
  };
  if (typeof kind === 'object') return isObj(v) ? decodeFields(v, kind, path) : fail();
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : fail();
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) ? v : fail();
    case 'number':
      return typeof v === 'number' ? v : fail();
    case 'bool':
      return typeof v === 'boolean' ? v : fail();
    case 'object':
      return isObj(v) ? v : fail();
    case 'objects':
      return Array.isArray(v) && v.every((x) => x === null || isObj(x)) ? v : fail();
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : fail();
    case 'strmap':
      return isObj(v) && Object.values(v).every((x) => typeof x === 'string') ? v : fail();
  }
}

/** Known fields only; empty values dropped (Go omitempty). */
function decodeFields(src: Record<string, unknown>, spec: Record<string, Kind>, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, kind] of Object.entries(spec)) {
    const v = check(src[field], kind, `${path}.${field}`);
    if (v === undefined || v === '' || v === 0) continue;
    out[field] = v;
  }
  return out;
}

export interface DecodedWorkflow {
  fields: Partial<Omit<Workflow, 'steps'>>;
  steps: Record<string, Step>;
}

export function decodeWorkflowBody(body: unknown): DecodedWorkflow {
  if (body === null || body === undefined) return { fields: {}, steps: {} };
  if (!isObj(body)) throw new DecodeError('body must be an object');
  const fields = decodeFields(body, WORKFLOW, 'workflow') as Partial<Workflow>;
  const steps: Record<string, Step> = {};
  if (body.steps !== null && body.steps !== undefined) {
    if (!isObj(body.steps)) throw new DecodeError('steps must be an object keyed by step id');
    for (const [id, raw] of Object.entries(body.steps)) {
      const decoded = raw === null ? {} : check(raw, STEP, `steps.${id}`);
      // The map key wins over any `id` inside the step.
      steps[id] = { ...(decoded as object), id } as Step;
    }
  }
  return { fields, steps };
}

/** Builds the stored workflow: new, or an upsert that keeps old scalars left empty. */
export function mergeWorkflow(decoded: DecodedWorkflow, existing: Workflow | null, tenant: string): Workflow {
  const f = decoded.fields;
  const now = rfc3339Now();
  const keep = <K extends 'team_id' | 'name' | 'description' | 'version' | 'created_by'>(k: K): string => f[k] || existing?.[k] || '';
  const wf: Workflow = {
    id: f.id || existing?.id || randomUUID(),
    org_id: f.org_id || existing?.org_id || tenant,
    team_id: keep('team_id'),
    name: keep('name'),
    description: keep('description'),
    version: keep('version'),
    timeout_sec: f.timeout_sec || existing?.timeout_sec || 0,
    created_by: keep('created_by'),
    steps: decoded.steps,
    created_at: existing?.created_at ?? now,
    updated_at: now,
  };
  if (f.input_schema) wf.input_schema = f.input_schema;
  if (f.parameters) wf.parameters = f.parameters;
  if (f.config) wf.config = f.config;
  return wf;
}

/** The GET shape: always-present fields first, optional ones only when set. */
export function workflowView(wf: Workflow): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: wf.id,
    org_id: wf.org_id,
    team_id: wf.team_id ?? '',
    name: wf.name ?? '',
    description: wf.description ?? '',
    version: wf.version ?? '',
    timeout_sec: wf.timeout_sec ?? 0,
    steps: wf.steps ?? {},
  };
  if (wf.config) out.config = wf.config;
  if (wf.input_schema) out.input_schema = wf.input_schema;
  if (wf.parameters) out.parameters = wf.parameters;
  out.created_by = wf.created_by ?? '';
  out.created_at = wf.created_at;
  out.updated_at = wf.updated_at;
  return out;
}
