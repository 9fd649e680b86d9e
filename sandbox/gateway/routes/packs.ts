// Packs and marketplace (api.md §10.14), minimal but faithful where a client can observe it.
//
// - The pack registry is the config-service document cfg:system:packs (runtime.md §5.4). The sandbox
//   keeps installed PackRecords under data.packs as a map id -> record; GET lists them sorted by id.
// - Pack installation is NOT simulated: POST /api/v1/packs/install checks the upload the way the
//   gateway's validation does up to the point where it would unpack the bundle (multipart form,
//   `bundle` file field, size limit, gzip data) and then answers 400 with a plain-text message, so
//   nothing is ever written by it. Packs can only appear through the registry document itself.
// - The marketplace never fetches anything: the sandbox is loopback-only, so every catalog is
//   reported with `error` set (Cordum's offline answer is still 200), and installs from a catalog
//   answer 404 because no catalog has entries.
import { randomBytes } from 'node:crypto';
import { createKernelClient } from '../../kernel/client.js';
import type { PolicyCheckRequest } from '../../kernel/wire.js';
import { createConfigStore } from '../../stores/config-docs.js';
import { rfc3339Nano } from '../../stores/jobs.js';
import { expect } from '../http.js';
import { HttpError, type GatewayRequest, type RouteModule } from '../types.js';

const MAX_BUNDLE_BYTES = 64 << 20;
const KERNEL_TIMEOUT_MS = 5_000;
const DECISIONS = ['ALLOW', 'DENY', 'REQUIRE_APPROVAL', 'ALLOW_WITH_CONSTRAINTS', 'THROTTLE'];

type PackRecord = Record<string, unknown> & { id: string };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Multipart body -> the `bundle` file, or an HttpError(400) naming what is wrong with the upload. */
async function readBundle(req: GatewayRequest): Promise<Uint8Array> {
  const contentType = String(req.headers['content-type'] ?? '');
  if (!/^multipart\/form-data\s*;/i.test(contentType) || !/boundary=/i.test(contentType)) {
    throw new HttpError(400, 'invalid multipart form: content type must be multipart/form-data');
  }
  const body = await req.rawBody();
  if (body.length > MAX_BUNDLE_BYTES + (1 << 20)) throw new HttpError(400, 'invalid multipart form: request body too large');
  let form: FormData;
  try {
    form = await new Response(new Uint8Array(body), { headers: { 'content-type': contentType } }).formData();
  } catch {
    throw new HttpError(400, 'invalid multipart form');
  }
  const file = form.get('bundle');
  if (file === null || typeof file === 'string') throw new HttpError(400, 'bundle file required');
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.length > MAX_BUNDLE_BYTES) throw new HttpError(400, 'bundle too large');
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new HttpError(400, 'invalid pack bundle: not a gzip archive');
  return bytes;
}

export const packRoutes: RouteModule = (routes, deps) => {
  const configs = createConfigStore(deps.redis);
  let kernel: ReturnType<typeof createKernelClient> | undefined;
  const kernelClient = () => (kernel ??= createKernelClient(deps.nc, { timeoutMs: KERNEL_TIMEOUT_MS }));

  const registry = async () => {
    const doc = await configs.get('system', 'packs');
    const packs = isObject(doc?.data?.packs) ? (doc!.data.packs as Record<string, unknown>) : {};
    return { doc, packs };
  };
  const withId = (id: string, rec: Record<string, unknown>): PackRecord => ({ ...rec, id: typeof rec.id === 'string' && rec.id ? rec.id : id });
  const installed = async (id: string): Promise<PackRecord | undefined> => {
    const rec = (await registry()).packs[id];
    return isObject(rec) ? withId(id, rec) : undefined;
  };

  routes.add('GET', '/api/v1/packs', async (_req, reply) => {
    const { packs } = await registry();
    const items = Object.entries(packs)
      .flatMap(([id, rec]) => (isObject(rec) ? [withId(id, rec)] : []))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    reply.json(200, { items });
  });

  routes.add('GET', '/api/v1/packs/{id}', async (req, reply) => {
    const rec = await installed(req.params.id);
    if (!rec) throw new HttpError(404, 'not found');
    reply.json(200, rec);
  });

  routes.add('POST', '/api/v1/packs/install', async (req) => {
    await readBundle(req);
    // Not simulated (see the header): a well-formed upload still stops here.
    throw new HttpError(400, 'invalid pack bundle: pack installation is not supported by the sandbox');
  });

  routes.add('POST', '/api/v1/packs/{id}/uninstall', async (req, reply) => {
    const body = expect.object(await req.json({ emptyOk: true }));
    expect.bool(body, 'purge');
    const id = req.params.id;
    const { doc, packs } = await registry();
    const rec = packs[id];
    if (!doc || !isObject(rec)) throw new HttpError(404, 'pack not installed');
    // Overlays and pack resources are not tracked by the sandbox; only the registry entry changes.
    const updated: PackRecord = { ...rec, id, status: 'DISABLED' };
    await configs.put({ scope: 'system', scope_id: 'packs', data: { ...doc.data, packs: { ...packs, [id]: updated } }, ...(doc.meta ? { meta: doc.meta } : {}) });
    reply.json(200, updated);
  });

  routes.add('POST', '/api/v1/packs/{id}/verify', async (req, reply) => {
    const rec = await installed(req.params.id);
    if (!rec) throw new HttpError(404, 'pack not installed');
    const tests = isObject(rec.tests) ? rec.tests : {};
    const sims = Array.isArray(tests.policySimulations) ? tests.policySimulations.filter(isObject) : [];
    const results = [];
    for (const sim of sims) {
      const request = isObject(sim.request) ? sim.request : {};
      const expected = String(sim.expectDecision ?? '').toUpperCase();
      let got = 'ERROR';
      let reason = '';
      try {
        const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
        const strs = (v: unknown) => (Array.isArray(v) ? v.map(String) : undefined);
        const check: PolicyCheckRequest = {
          job_id: `pack-verify-${randomBytes(4).toString('hex')}`,
          topic: str(request.topic),
          tenant: str(request.tenantId),
          meta: {
            tenant_id: str(request.tenantId),
            actor_id: str(request.actorId),
            actor_type: typeof request.actorType === 'number' ? request.actorType : str(request.actorType),
            capability: str(request.capability),
            risk_tags: strs(request.riskTags),
            requires: strs(request.requires),
            pack_id: str(request.packId),
          },
        };
        const res = await kernelClient().simulate(check);
        const decision = String((res as { decision?: string }).decision ?? '').replace(/^DECISION_TYPE_/, '');
        got = decision === 'REQUIRE_HUMAN' ? 'REQUIRE_APPROVAL' : DECISIONS.includes(decision) ? decision : 'ERROR';
        reason = String((res as { reason?: string }).reason ?? '');
      } catch (err) {
        reason = (err as Error).message;
      }
      results.push({ name: String(sim.name ?? ''), expected, got, reason, ok: got === expected });
    }
    reply.json(200, { pack_id: rec.id, results });
  });

  routes.add('GET', '/api/v1/marketplace/packs', async (_req, reply) => {
    const c = deps.config.packCatalog;
    const catalog = { id: c.id, ...(c.title ? { title: c.title } : {}), url: c.url, enabled: c.enabled };
    // Only an enabled catalog is fetched, so only it can carry a fetch error.
    const list = [c.enabled ? { ...catalog, error: 'catalog fetch skipped: the sandbox makes no outbound requests' } : catalog];
    reply.json(200, { catalogs: list, items: [], fetched_at: rfc3339Nano() });
  });

  routes.add('POST', '/api/v1/marketplace/install', async (req) => {
    const body = expect.object(await req.json());
    const catalogId = expect.str(body, 'catalog_id').trim();
    const packId = expect.str(body, 'pack_id').trim();
    const url = expect.str(body, 'url').trim();
    const sha = expect.str(body, 'sha256').trim();
    expect.str(body, 'version');
    for (const flag of ['force', 'upgrade', 'inactive']) expect.bool(body, flag);
    if (!(url && sha) && !(catalogId && packId)) throw new HttpError(400, 'catalog_id and pack_id (or url and sha256) required');
    // The catalogs are never fetched, so no entry can match.
    throw new HttpError(404, 'pack not found in catalog');
  });
};
