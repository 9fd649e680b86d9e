// User lock routes (api.md §10.13). Release answers 200 released:true even for a missing lock or a
// non-owner: Cordum's 409 branch there is unreachable.
import { createLockStore } from '../../stores/locks.js';
import { expect } from '../http.js';
import { HttpError, type RouteModule } from '../types.js';

export const lockRoutes: RouteModule = (routes, deps) => {
  const locks = createLockStore(deps.redis);

  routes.add('GET', '/api/v1/locks', async (req, reply) => {
    const resource = (req.query.get('resource') ?? '').trim();
    if (!resource) throw new HttpError(400, 'resource required');
    const lock = await locks.get(resource);
    if (!lock) throw new HttpError(404, 'lock not found');
    reply.json(200, lock);
  });

  routes.add('POST', '/api/v1/locks/acquire', async (req, reply) => {
    const body = expect.object(await req.json());
    const resource = expect.str(body, 'resource').trim();
    const owner = expect.str(body, 'owner').trim();
    const mode = expect.str(body, 'mode').trim().toLowerCase();
    const ttl = expect.num(body, 'ttl_ms');
    if (!resource || !owner) throw new HttpError(400, 'resource and owner required');
    const lock = await locks.acquire(resource, owner, mode === 'shared' ? 'shared' : 'exclusive', ttl);
    if (lock === 'unavailable') throw new HttpError(409, 'lock unavailable');
    reply.json(200, lock);
  });

  routes.add('POST', '/api/v1/locks/release', async (req, reply) => {
    const body = expect.object(await req.json());
    const resource = expect.str(body, 'resource').trim();
    const owner = expect.str(body, 'owner').trim();
    if (!resource || !owner) throw new HttpError(400, 'resource and owner required');
    const lock = await locks.release(resource, owner);
    reply.json(200, { lock, released: true });
  });

  routes.add('POST', '/api/v1/locks/renew', async (req, reply) => {
    const body = expect.object(await req.json());
    const resource = expect.str(body, 'resource').trim();
    const owner = expect.str(body, 'owner').trim();
    const ttl = expect.num(body, 'ttl_ms');
    if (!resource || !owner) throw new HttpError(400, 'resource and owner required');
    const lock = await locks.renew(resource, owner, ttl);
    if (!lock) throw new HttpError(404, 'lock not held');
    reply.json(200, lock);
  });
};
