// Config service routes (api.md §10.11). POST replaces the whole document (revision back to 1); the
// org scope is pinned to the server tenant.
import { createConfigStore } from '../../stores/config-docs.js';
import { expect, resolveTenant } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';

export const configRoutes: RouteModule = (routes, deps) => {
  const store = createConfigStore(deps.redis);
  const tenant = deps.config.tenant;

  routes.add('GET', '/api/v1/config', async (req, reply) => {
    const scope = (req.query.get('scope') ?? '').trim() || 'system';
    let id = (req.query.get('scope_id') ?? '').trim();
    if (scope === 'system') id ||= 'default';
    else if (scope === 'org') id = resolveTenant(tenant, id);
    else if (!id) throw new HttpError(400, 'scope_id required for non-system scope');
    const doc = await store.get(scope, id);
    if (!doc) throw new HttpError(404, 'config not found');
    reply.json(200, doc);
  });

  routes.add('POST', '/api/v1/config', async (req, reply) => {
    const body = expect.object(await req.json());
    const scope = expect.str(body, 'scope').trim();
    let id = expect.str(body, 'scope_id').trim();
    if (body.data !== undefined && body.data !== null && (typeof body.data !== 'object' || Array.isArray(body.data))) throw new HttpError(400, 'invalid json');
    if (body.meta !== undefined && body.meta !== null && (typeof body.meta !== 'object' || Array.isArray(body.meta))) throw new HttpError(400, 'invalid json');
    if (!scope) throw new HttpError(400, 'scope required');
    if (scope === 'system') id ||= 'default';
    else if (scope === 'org') id = resolveTenant(tenant, id);
    else if (!id) throw new HttpError(400, 'scope_id required for non-system scope');
    await store.put({
      scope,
      scope_id: id,
      data: (body.data as Record<string, unknown> | null) ?? {},
      ...(body.meta ? { meta: body.meta as Record<string, unknown> } : {}),
    });
    reply.empty(204);
  });

  routes.add('GET', '/api/v1/config/effective', async (req, reply) => {
    const org = resolveTenant(tenant, req.query.get('org_id'));
    const pick = (n: string) => (req.query.get(n) ?? '').trim() || undefined;
    reply.json(200, await store.effective({ org, team: pick('team_id'), workflow: pick('workflow_id'), step: pick('step_id') }));
  });
};
