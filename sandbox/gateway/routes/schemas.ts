// Schema registry routes (api.md §10.12). Schemas are stored without validation; a missing
// `schema` is stored as null. The list holds ids only, newest first; DELETE is 204 even for an
// unknown id.
import { createSchemaStore } from '../../stores/schemas.js';
import { expect, intQuery } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';

const DEFAULT_LIST_LIMIT = 100;

export const schemaRoutes: RouteModule = (routes, deps) => {
  const store = createSchemaStore(deps.redis);

  routes.add('POST', '/api/v1/schemas', async (req, reply) => {
    const body = expect.object(await req.json());
    const id = expect.str(body, 'id').trim();
    if (!id) throw new HttpError(400, 'schema id required');
    await store.put(id, JSON.stringify(body.schema ?? null));
    reply.empty(204);
  });

  routes.add('GET', '/api/v1/schemas', async (req, reply) => {
    reply.json(200, { schemas: await store.list(intQuery(req.query, 'limit', DEFAULT_LIST_LIMIT)) });
  });

  routes.add('GET', '/api/v1/schemas/{id}', async (req, reply) => {
    const raw = await store.get(req.params.id);
    if (raw === null) throw new HttpError(404, 'schema not found');
    let schema: unknown = null;
    try {
      schema = JSON.parse(raw);
    } catch {
      // Written around the API: hand back the text rather than fail.
      schema = raw;
    }
    reply.json(200, { id: req.params.id, schema });
  });

  routes.add('DELETE', '/api/v1/schemas/{id}', async (req, reply) => {
    await store.delete(req.params.id);
    reply.empty(204);
  });
};
