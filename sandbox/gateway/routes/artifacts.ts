// Artifact routes (api.md §10.4). The {ptr} segment must be percent-encoded; a value that is not a
// redis:// pointer is a 500 (Cordum's quirk), a missing one 404.
import { InvalidPointerError, createArtifactStore } from '../../stores/artifacts.js';
import { expect } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';

export const artifactRoutes: RouteModule = (routes, deps) => {
  const store = createArtifactStore(deps.redis, deps.config);
  const tenant = deps.config.tenant;

  routes.add('POST', '/api/v1/artifacts', async (req, reply) => {
    const body = expect.object(await req.json());
    const content = expect.str(body, 'content');
    const contentB64 = expect.str(body, 'content_base64');
    const contentType = expect.str(body, 'content_type');
    const retention = expect.str(body, 'retention');
    const labels = expect.strMap(body, 'labels');
    let bytes: Buffer;
    if (contentB64) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(contentB64) || contentB64.length % 4 !== 0) throw new HttpError(400, 'invalid content_base64');
      bytes = Buffer.from(contentB64, 'base64');
    } else bytes = Buffer.from(content, 'utf8');
    if (!bytes.length) throw new HttpError(400, 'content required');
    const capRaw = req.query.get('max_bytes') ?? (req.headers['x-max-artifact-bytes'] as string | undefined);
    const cap = capRaw && /^\d+$/.test(capRaw.trim()) ? Number(capRaw) : 0;
    if (cap > 0 && bytes.length > cap) throw new HttpError(413, 'artifact too large');
    labels.tenant_id = tenant;
    const { ptr, size } = await store.put(bytes, { contentType, retention, labels });
    reply.json(200, { artifact_ptr: ptr, size_bytes: size });
  });

  routes.add('GET', '/api/v1/artifacts/{ptr}', async (req, reply) => {
    let found;
    try {
      found = await store.get(req.params.ptr);
    } catch (err) {
      if (err instanceof InvalidPointerError) throw new HttpError(500, err.message);
      throw err;
    }
    if (!found) throw new HttpError(404, 'artifact not found');
    const owner = found.meta.labels?.tenant_id;
    if (owner && owner !== tenant) throw new HttpError(403, 'tenant access denied');
    reply.json(200, { artifact_ptr: req.params.ptr, content_base64: found.content.toString('base64'), metadata: found.meta });
  });
};
