// Policy routes (api.md §10.9-10.10): evaluate/simulate/explain/snapshots proxied to the safety
// kernel (protojson replies), and the config-service backed bundles, rules, bundle snapshots,
// publish, rollback and audit over cfg:system:policy / policy_snapshots / policy_audit.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createKernelClient, type KernelClient } from '../../kernel/client.js';
import { buildBundlesOnlyPolicy, enabledFragments, type StoredBundle } from '../../kernel/load.js';
import { evaluate } from '../../kernel/evaluate.js';
import { parsePolicy } from '../../kernel/policy.js';
import type { PolicyCheckRequest } from '../../kernel/wire.js';
import { createConfigStore, type ConfigStore } from '../../stores/config-docs.js';
import { rfc3339, rfc3339Nano } from '../../stores/jobs.js';
import type { SandboxDeps } from '../../types.js';
import { resolveTenant } from '../http.js';
import { HttpError, type GatewayRequest, type RouteModule } from '../types.js';

const KEEP_SNAPSHOTS = 10;
const KEEP_AUDIT = 100;
const KERNEL_TIMEOUT_MS = 5_000;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------- request decoding (encoding/json-like: wrong types are 400 invalid json) ----------

function str(o: Obj, k: string): string {
  const v = o[k];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new HttpError(400, 'invalid json');
  return v;
}
function strList(o: Obj, k: string): string[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new HttpError(400, 'invalid json');
  return v as string[];
}
function strMap(o: Obj, k: string): Record<string, string> | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new HttpError(400, 'invalid json');
  return v as Record<string, string>;
}
function obj(o: Obj, k: string): Obj | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new HttpError(400, 'invalid json');
  return v;
}

/** The policy check request from the REST body (snake_case plain JSON, api.md §10.9). */
function checkRequestFromBody(body: Obj, principalHeader: string | undefined): { req: PolicyCheckRequest; team: string; workflow: string; step: string; hasEffective: boolean } {
  const budget = obj(body, 'budget');
  const meta = obj(body, 'meta');
  const cost = body.estimated_cost;
  if (cost !== undefined && cost !== null && typeof cost !== 'number') throw new HttpError(400, 'invalid json');
  const req: PolicyCheckRequest = {
    job_id: str(body, 'job_id'),
    topic: str(body, 'topic').trim(),
    priority: str(body, 'priority'),
    estimated_cost: (cost as number | undefined) ?? 0,
    principal_id: str(body, 'principal_id') || principalHeader || '',
    labels: strMap(body, 'labels') ?? {},
    memory_id: str(body, 'memory_id'),
  };
  if (budget) {
    for (const k of ['max_input_tokens', 'max_output_tokens', 'max_total_tokens', 'deadline_ms']) {
      if (budget[k] !== undefined && budget[k] !== null && typeof budget[k] !== 'number') throw new HttpError(400, 'invalid json');
    }
    req.budget = budget as PolicyCheckRequest['budget'];
  }
  if (meta) {
    const actorType = str(meta, 'actor_type').toLowerCase();
    req.meta = {
      actor_id: str(meta, 'actor_id'),
      // Anything but human/service is silently dropped.
      actor_type: actorType === 'human' || actorType === 'service' ? actorType : '',
      idempotency_key: str(meta, 'idempotency_key'),
      capability: str(meta, 'capability'),
      risk_tags: strList(meta, 'risk_tags') ?? [],
      requires: strList(meta, 'requires') ?? [],
      pack_id: str(meta, 'pack_id'),
      labels: strMap(meta, 'labels') ?? {},
    };
  }
  const hasEffective = body.effective_config !== undefined && body.effective_config !== null;
  if (hasEffective) req.effective_config = body.effective_config;
  return { req, team: str(body, 'team_id'), workflow: str(body, 'workflow_id'), step: str(body, 'step_id'), hasEffective };
}

// ---------- config docs ----------

interface PolicySnapshotRecord {
  id: string;
  created_at: string;
  note?: string;
  bundles: Record<string, StoredBundle>;
}
interface AuditEntry {
  id: string;
  action: 'publish' | 'rollback';
  actor_id?: string;
  role?: string;
  bundle_ids?: string[];
  message?: string;
  snapshot_before?: string;
  snapshot_after?: string;
  created_at: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function bundleSource(id: string): 'core' | 'secops' | 'pack' {
  if (id.startsWith('secops/')) return 'secops';
  return id.includes('/') ? 'pack' : 'core';
}

/** Bundle id from `?bundle_id=` (wins) or the path segment with `~` meaning `/`. */
function bundleId(req: GatewayRequest): string {
  const q = (req.query.get('bundle_id') ?? '').trim();
  if (q) return q;
  return (req.params.id ?? '').replace(/~/g, '/').trim();
}

function validateContent(content: string): void {
  try {
    parsePolicy(content);
  } catch (err) {
    throw new HttpError(400, `invalid policy content: ${(err as Error).message}`);
  }
}

function createPolicyDocs(configs: ConfigStore) {
  const bundlesDoc = async () => {
    const doc = await configs.get('system', 'policy');
    const data = doc?.data ?? {};
    const bundles = isObj(data.bundles) ? (data.bundles as Record<string, StoredBundle>) : {};
    return { doc, data, bundles };
  };
  const saveBundles = async (data: Obj, bundles: Record<string, StoredBundle>) => configs.put({ scope: 'system', scope_id: 'policy', data: { ...data, bundles } });

  const snapshots = async (): Promise<PolicySnapshotRecord[]> => {
    const doc = await configs.get('system', 'policy_snapshots');
    return Array.isArray(doc?.data?.snapshots) ? (doc!.data.snapshots as PolicySnapshotRecord[]) : [];
  };
  const captureSnapshot = async (note: string | undefined): Promise<PolicySnapshotRecord> => {
    const { bundles } = await bundlesDoc();
    const snap: PolicySnapshotRecord = { id: `${rfc3339()}-${randomBytes(5).toString('hex')}`, created_at: rfc3339Nano(), ...(note ? { note } : {}), bundles };
    const list = [snap, ...(await snapshots())].slice(0, KEEP_SNAPSHOTS);
    await configs.put({ scope: 'system', scope_id: 'policy_snapshots', data: { snapshots: list } });
    return snap;
  };
  const audit = async (): Promise<AuditEntry[]> => {
    const doc = await configs.get('system', 'policy_audit');
    return Array.isArray(doc?.data?.entries) ? (doc!.data.entries as AuditEntry[]) : [];
  };
  const appendAudit = async (e: AuditEntry) => {
    const entries = [e, ...(await audit())].slice(0, KEEP_AUDIT);
    await configs.put({ scope: 'system', scope_id: 'policy_audit', data: { entries } });
  };
  return { bundlesDoc, saveBundles, snapshots, captureSnapshot, audit, appendAudit };
}

const omitEmpty = (o: Obj) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== ''));

// ---------- routes ----------

export const policyRoutes: RouteModule = (routes, deps: SandboxDeps) => {
  const tenant = deps.config.tenant;
  const configs = createConfigStore(deps.redis);
  const docs = createPolicyDocs(configs);
  let kernel: KernelClient | undefined;
  const kernelClient = () => (kernel ??= createKernelClient(deps.nc, { timeoutMs: KERNEL_TIMEOUT_MS }));
  const viaKernel = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw new HttpError(502, (err as Error).message);
    }
  };

  const checkRoute = (mode: 'evaluate' | 'simulate' | 'explain') => async (req: GatewayRequest, reply: Parameters<Parameters<typeof routes.add>[2]>[1]) => {
    const body = await req.json<Obj>();
    if (!isObj(body)) throw new HttpError(400, 'invalid json');
    const { req: check, team, workflow, step, hasEffective } = checkRequestFromBody(body, req.principalId);
    if (!check.topic) throw new HttpError(400, 'topic is required');
    const t = resolveTenant(tenant, str(body, 'tenant'));
    check.tenant = t;
    check.meta = { ...(check.meta ?? {}), tenant_id: t };
    if (!hasEffective) check.effective_config = await configs.effective({ org: t, team: team || undefined, workflow: workflow || undefined, step: step || undefined });
    const res = await viaKernel(() => kernelClient()[mode](check));
    reply.json(200, res);
  };
  routes.add('POST', '/api/v1/policy/evaluate', checkRoute('evaluate'));
  routes.add('POST', '/api/v1/policy/simulate', checkRoute('simulate'));
  routes.add('POST', '/api/v1/policy/explain', checkRoute('explain'));

  routes.add('GET', '/api/v1/policy/snapshots', async (_req, reply) => {
    reply.json(200, await viaKernel(() => kernelClient().listSnapshots()));
  });

  routes.add('GET', '/api/v1/policy/rules', async (req, reply) => {
    const includeDisabled = /^(1|t|true|y|yes|on)$/i.test((req.query.get('include_disabled') ?? '').trim());
    const { bundles } = await docs.bundlesDoc();
    const items: Obj[] = [];
    const errors: { fragment_id: string; error: string }[] = [];
    for (const id of Object.keys(bundles).sort()) {
      const b = bundles[id]!;
      if (!includeDisabled && b.enabled === false) continue;
      const content = typeof b.content === 'string' ? b.content : '';
      let doc;
      try {
        doc = parsePolicy(content);
      } catch (err) {
        errors.push({ fragment_id: id, error: (err as Error).message });
        continue;
      }
      const slash = id.indexOf('/');
      const source = omitEmpty({
        fragment_id: id,
        pack_id: slash > 0 ? id.slice(0, slash) : id,
        overlay_name: slash > 0 ? id.slice(slash + 1) : undefined,
        version: b.version,
        installed_at: b.installed_at,
        sha256: b.sha256 ?? sha256(content),
      });
      for (const rule of doc.rules ?? []) items.push({ ...rule, source });
    }
    reply.json(200, errors.length ? { items, errors } : { items });
  });

  routes.add('GET', '/api/v1/policy/bundles', async (_req, reply) => {
    const { doc, bundles } = await docs.bundlesDoc();
    const ids = Object.keys(bundles).sort();
    const items = ids.map((id) => {
      const b = bundles[id]!;
      return omitEmpty({
        id,
        enabled: b.enabled !== false,
        source: bundleSource(id),
        author: b.author,
        message: b.message,
        created_at: b.created_at,
        updated_at: b.updated_at,
        version: b.version,
        installed_at: b.installed_at,
        sha256: b.sha256 ?? sha256(typeof b.content === 'string' ? b.content : ''),
      });
    });
    // Go's nil slice: `items` is null, not [], when there are no bundles.
    reply.json(200, { bundles, items: items.length ? items : null, updated_at: doc?.updated_at ?? '' });
  });

  // Literal snapshot routes are registered before the {id} wildcard; the router prefers literals anyway.
  routes.add('GET', '/api/v1/policy/bundles/snapshots', async (_req, reply) => {
    const list = await docs.snapshots();
    reply.json(200, { items: list.map((s) => omitEmpty({ id: s.id, created_at: s.created_at, note: s.note })) });
  });
  routes.add('POST', '/api/v1/policy/bundles/snapshots', async (req, reply) => {
    let note: string | undefined;
    try {
      const body = await req.json<Obj>({ emptyOk: true });
      if (isObj(body) && typeof body.note === 'string') note = body.note;
    } catch {
      // decode errors are ignored here
    }
    reply.json(200, await docs.captureSnapshot(note));
  });
  routes.add('GET', '/api/v1/policy/bundles/snapshots/{id}', async (req, reply) => {
    const snap = (await docs.snapshots()).find((s) => s.id === req.params.id);
    if (!snap) throw new HttpError(404, 'snapshot not found');
    reply.json(200, snap);
  });

  routes.add('GET', '/api/v1/policy/bundles/{id}', async (req, reply) => {
    const id = bundleId(req);
    const { bundles } = await docs.bundlesDoc();
    const b = bundles[id];
    if (!b) throw new HttpError(404, 'bundle not found');
    reply.json(200, {
      id,
      content: typeof b.content === 'string' ? b.content : '',
      enabled: b.enabled !== false,
      ...omitEmpty({ author: b.author, message: b.message, created_at: b.created_at, updated_at: b.updated_at }),
    });
  });

  routes.add('PUT', '/api/v1/policy/bundles/{id}', async (req, reply) => {
    const id = bundleId(req);
    if (!id.startsWith('secops/')) throw new HttpError(400, 'bundle id must start with secops/');
    const body = await req.json<Obj>();
    if (!isObj(body)) throw new HttpError(400, 'invalid json');
    const content = str(body, 'content');
    if (body.enabled !== undefined && body.enabled !== null && typeof body.enabled !== 'boolean') throw new HttpError(400, 'invalid json');
    if (!content.trim()) throw new HttpError(400, 'content required');
    validateContent(content);
    const { data, bundles } = await docs.bundlesDoc();
    const prev = bundles[id];
    const now = rfc3339Nano();
    const next: StoredBundle = { ...(prev ?? {}), content, created_at: prev?.created_at ?? now, updated_at: now };
    if (typeof body.enabled === 'boolean') next.enabled = body.enabled;
    const author = str(body, 'author');
    const message = str(body, 'message');
    if (author) next.author = author;
    if (message) next.message = message;
    delete next.sha256; // recomputed from content on read
    await docs.saveBundles(data, { ...bundles, [id]: next });
    reply.json(200, { id, updated_at: now });
  });

  // Bundle simulate runs here in the gateway: stored bundles + the draft, no file policy, no tenant checks.
  routes.add('POST', '/api/v1/policy/bundles/{id}/simulate', async (req, reply) => {
    const id = bundleId(req);
    const body = await req.json<Obj>();
    if (!isObj(body)) throw new HttpError(400, 'invalid json');
    const request = obj(body, 'request') ?? {};
    const { req: check } = checkRequestFromBody(request, undefined);
    if (!check.topic) throw new HttpError(400, 'topic is required');
    if (!check.tenant) check.tenant = str(request, 'tenant');
    const draft = str(body, 'content');
    const { bundles } = await docs.bundlesDoc();
    const merged: Record<string, StoredBundle> = { ...bundles };
    // Fault policy-simulate-ignores-draft: the answer comes from the stored bundles alone, as if
    // the draft had never been sent (a "no change" that proves nothing).
    if (draft && !deps.faults.has('policy-simulate-ignores-draft')) merged[id] = { ...(bundles[id] ?? {}), content: draft, enabled: true };
    let policy;
    try {
      policy = buildBundlesOnlyPolicy(enabledFragments(merged));
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    reply.json(200, evaluate(policy, check).response);
  });

  routes.add('POST', '/api/v1/policy/publish', async (req, reply) => {
    const body = (await req.json<Obj>({ emptyOk: true })) ?? {};
    if (!isObj(body)) throw new HttpError(400, 'invalid json');
    const wanted = strList(body, 'bundle_ids') ?? [];
    const author = str(body, 'author');
    const message = str(body, 'message');
    const note = str(body, 'note');
    const { data, bundles } = await docs.bundlesDoc();
    if (!Object.keys(bundles).length) throw new HttpError(400, 'no bundles configured');
    const targets = (wanted.length ? wanted : Object.keys(bundles).sort()).filter((id) => id.startsWith('secops/') && bundles[id]);
    if (!targets.length) throw new HttpError(400, 'no policy bundles to publish');
    const now = rfc3339Nano();
    const next: Record<string, StoredBundle> = { ...bundles };
    for (const id of targets) next[id] = { ...next[id], enabled: true, updated_at: now };
    for (const [id, b] of Object.entries(next)) {
      try {
        parsePolicy(typeof b.content === 'string' ? b.content : '');
      } catch (err) {
        throw new HttpError(400, `invalid policy content: bundle ${id}: ${(err as Error).message}`);
      }
    }
    const before = await docs.captureSnapshot(note || 'before publish');
    await docs.saveBundles(data, next);
    const after = await docs.captureSnapshot(note || 'after publish');
    await docs.appendAudit(
      omitEmpty({
        id: randomUUID(),
        action: 'publish',
        actor_id: req.principalId || author || undefined,
        role: req.principalRole,
        bundle_ids: targets,
        message,
        snapshot_before: before.id,
        snapshot_after: after.id,
        created_at: now,
      }) as unknown as AuditEntry,
    );
    reply.json(200, { snapshot_before: before.id, snapshot_after: after.id, published: targets });
  });

  routes.add('POST', '/api/v1/policy/rollback', async (req, reply) => {
    const body = (await req.json<Obj>({ emptyOk: true })) ?? {};
    if (!isObj(body)) throw new HttpError(400, 'invalid json');
    const snapshotId = str(body, 'snapshot_id').trim();
    if (!snapshotId) throw new HttpError(400, 'snapshot_id required');
    const target = (await docs.snapshots()).find((s) => s.id === snapshotId);
    if (!target) throw new HttpError(404, 'snapshot not found');
    const note = str(body, 'note');
    const { data } = await docs.bundlesDoc();
    const before = await docs.captureSnapshot(note || 'before rollback');
    const restored = target.bundles ?? {};
    await docs.saveBundles(data, restored);
    // Cordum takes no snapshot of an empty bundle map (recorded on a fresh install): rolling back to
    // it answers snapshot_after "" and the audit entry has no snapshot_after.
    const after = Object.keys(restored).length ? await docs.captureSnapshot(note || 'after rollback') : { id: '' };
    await docs.appendAudit(
      omitEmpty({
        id: randomUUID(),
        action: 'rollback',
        actor_id: req.principalId || str(body, 'author') || undefined,
        role: req.principalRole,
        bundle_ids: Object.keys(target.bundles ?? {}).sort(),
        message: str(body, 'message'),
        snapshot_before: before.id,
        snapshot_after: after.id,
        created_at: rfc3339Nano(),
      }) as unknown as AuditEntry,
    );
    reply.json(200, { snapshot_before: before.id, snapshot_after: after.id, rollback_to: snapshotId });
  });

  routes.add('GET', '/api/v1/policy/audit', async (_req, reply) => {
    reply.json(200, { items: (await docs.audit()).slice(0, KEEP_AUDIT) });
  });
};
