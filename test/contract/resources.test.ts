// Job approvals, config service, schemas, locks, artifacts and memory pointers.
import { describe, expect, it } from 'vitest';
import { itWhen, RFC3339, SKIP, submitPinned, target, uniq, useContract } from './support.js';

const fx = useContract({ redis: true });

describe('job approvals', () => {
  it('GET /api/v1/approvals answers {items, next_cursor}', async () => {
    const res = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/approvals', { query: { limit: 5 }, expect: 200 });
    expect(Object.keys(res.json!).sort()).toEqual(['items', 'next_cursor']);
  });

  it('approve of an unknown job answers 404 job not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/approvals/${uniq()}/approve`, { body: {}, expect: 404 });
    expect(res.text).toBe('job not found\n');
  });

  it('reject of an unknown job answers 404 job not found', async () => {
    const res = await fx.gw.request('POST', `/api/v1/approvals/${uniq()}/reject`, { body: {}, expect: 404 });
    expect(res.text).toBe('job not found\n');
  });

  it('approve of a job that is not awaiting approval answers 409 job not awaiting approval', async () => {
    const { job_id } = await submitPinned(fx);
    const res = await fx.gw.request('POST', `/api/v1/approvals/${job_id}/approve`, { expect: [200, 409] });
    expect(res.status).toBe(409);
    expect(res.text).toBe('job not awaiting approval\n');
  });
});

describe('config service', () => {
  const scopeId = uniq();
  fxCleanupConfig(scopeId);

  it('POST /api/v1/config answers 204 with an empty body', async () => {
    const res = await fx.gw.request('POST', '/api/v1/config', { body: { scope: 'team', scope_id: scopeId, data: { ct: { a: 1 } } }, expect: 204 });
    expect(res.text).toBe('');
  });

  it('a config document reads back with revision 1 and an RFC3339 updated_at', async () => {
    const doc = await fx.gw.getConfig('team', scopeId);
    expect(doc).toMatchObject({ scope: 'team', scope_id: scopeId, data: { ct: { a: 1 } }, revision: 1 });
    expect(doc.updated_at).toMatch(RFC3339);
  });

  it('POST replaces the whole document and resets revision to 1', async () => {
    await fx.gw.setConfig({ scope: 'team', scope_id: scopeId, data: { other: true } });
    const doc = await fx.gw.getConfig('team', scopeId);
    expect(doc.data).toEqual({ other: true });
    expect(doc.revision).toBe(1);
  });

  it('the effective config names the team revision in its version and carries a sha256 hash', async () => {
    const eff = await fx.gw.effectiveConfig({ team_id: scopeId });
    expect(eff.version).toContain('team:1');
    expect(eff.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(eff.data).toMatchObject({ other: true });
  });

  // runtime.md §2.2 hot reload; api.md §10.11 warning.
  it('the scheduler seeds the system/default document with data.pools and data.timeouts', async () => {
    const doc = await fx.gw.getConfig();
    expect(doc.scope).toBe('system');
    expect(doc.scope_id).toBe('default');
    expect(doc.data).toHaveProperty('pools');
    expect(doc.data).toHaveProperty('timeouts');
  });

  it('GET of a missing config document answers 404 config not found', async () => {
    const res = await fx.gw.request('GET', '/api/v1/config', { query: { scope: 'team', scope_id: uniq() }, expect: 404 });
    expect(res.text).toBe('config not found\n');
  });

  it('POST without scope answers 400 scope required', async () => {
    const res = await fx.gw.request('POST', '/api/v1/config', { body: { scope_id: uniq(), data: {} }, expect: [204, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('scope required\n');
  });

  it('POST of a non-system scope without scope_id answers 400 scope_id required for non-system scope', async () => {
    const res = await fx.gw.request('POST', '/api/v1/config', { body: { scope: 'team', data: {} }, expect: [204, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('scope_id required for non-system scope\n');
  });

  it('POST with an empty body answers 400', async () => {
    const res = await fx.gw.request('POST', '/api/v1/config', { body: '', expect: [204, 400] });
    expect(res.status).toBe(400);
  });

  it('an org scope for another tenant answers 403', async () => {
    const res = await fx.gw.request('GET', '/api/v1/config', { query: { scope: 'org', scope_id: uniq('ct-tenant') }, expect: [200, 403, 404] });
    expect(res.status).toBe(403);
  });
});

// api.md §10.12.
describe('schemas', () => {
  it('schemas register (204), list by id, read back, and DELETE answers 204 even when repeated', async () => {
    const id = uniq();
    fx.cleanup(() => fx.gw.request('DELETE', `/api/v1/schemas/${id}`, { expect: [204, 404] }));
    const put = await fx.gw.request('POST', '/api/v1/schemas', { body: { id, schema: { type: 'object' } }, expect: 204 });
    expect(put.text).toBe('');
    const list = await fx.gw.request<{ schemas: string[] }>('GET', '/api/v1/schemas', { expect: 200 });
    expect(list.json!.schemas).toContain(id);
    const got = await fx.gw.request('GET', `/api/v1/schemas/${id}`, { expect: 200 });
    expect(got.json).toEqual({ id, schema: { type: 'object' } });
    await fx.gw.request('DELETE', `/api/v1/schemas/${id}`, { expect: 204 });
    await fx.gw.request('DELETE', `/api/v1/schemas/${id}`, { expect: 204 });
    const gone = await fx.gw.request('GET', `/api/v1/schemas/${id}`, { expect: 404 });
    expect(gone.text).toBe('schema not found\n');
  });

  it('a schema without id answers 400 schema id required', async () => {
    const res = await fx.gw.request('POST', '/api/v1/schemas', { body: { schema: {} }, expect: [204, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('schema id required\n');
  });
});

describe('locks', () => {
  it('acquire answers 200 with the Lock shape (exclusive by default, owner count 1, RFC3339 times)', async () => {
    const resource = uniq();
    fx.cleanup(() => fx.gw.lockRelease({ resource, owner: 'ct-a' }));
    const lock = await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    expect(Object.keys(lock).sort()).toEqual(['expires_at', 'mode', 'owners', 'resource', 'updated_at']);
    expect(lock).toMatchObject({ resource, mode: 'exclusive', owners: { 'ct-a': 1 } });
    expect(lock.updated_at).toMatch(RFC3339);
    expect(lock.expires_at).toMatch(RFC3339);
  });

  it('acquire of a lock held by another owner answers 409 lock unavailable', async () => {
    const resource = uniq();
    fx.cleanup(() => fx.gw.lockRelease({ resource, owner: 'ct-a' }));
    await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    const res = await fx.gw.request('POST', '/api/v1/locks/acquire', { body: { resource, owner: 'ct-b', ttl_ms: 10_000 }, expect: [200, 409] });
    expect(res.status).toBe(409);
    expect(res.text).toBe('lock unavailable\n');
  });

  it('release by a non-owner answers 200 released true with the lock unchanged', async () => {
    const resource = uniq();
    fx.cleanup(() => fx.gw.lockRelease({ resource, owner: 'ct-a' }));
    await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    const rel = await fx.gw.lockRelease({ resource, owner: 'ct-b' });
    expect(rel.released).toBe(true);
    expect(rel.lock).toMatchObject({ resource, owners: { 'ct-a': 1 } });
  });

  it('release of a missing lock answers 200 released true with lock null', async () => {
    const rel = await fx.gw.lockRelease({ resource: uniq(), owner: 'ct-a' });
    expect(rel).toEqual({ lock: null, released: true });
  });

  it('locks are re-entrant: N acquires by one owner need N releases', async () => {
    const resource = uniq();
    fx.cleanup(() => fx.gw.lockRelease({ resource, owner: 'ct-a' }));
    await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    const twice = await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    expect(twice.owners).toEqual({ 'ct-a': 2 });
    const first = await fx.gw.lockRelease({ resource, owner: 'ct-a' });
    expect(first.lock?.owners).toEqual({ 'ct-a': 1 });
    const last = await fx.gw.lockRelease({ resource, owner: 'ct-a' });
    expect(last).toEqual({ lock: null, released: true });
    const res = await fx.gw.request('GET', '/api/v1/locks', { query: { resource }, expect: 404 });
    expect(res.text).toBe('lock not found\n');
  });

  it('renew answers 200 for the owner and 404 lock not held for a missing lock', async () => {
    const resource = uniq();
    fx.cleanup(() => fx.gw.lockRelease({ resource, owner: 'ct-a' }));
    await fx.gw.lockAcquire({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    const renewed = await fx.gw.lockRenew({ resource, owner: 'ct-a', ttl_ms: 10_000 });
    expect(renewed.resource).toBe(resource);
    const res = await fx.gw.request('POST', '/api/v1/locks/renew', { body: { resource: uniq(), owner: 'ct-a', ttl_ms: 1000 }, expect: [200, 404] });
    expect(res.status).toBe(404);
    expect(res.text).toBe('lock not held\n');
  });

  it('acquire without owner answers 400 resource and owner required', async () => {
    const res = await fx.gw.request('POST', '/api/v1/locks/acquire', { body: { resource: uniq() }, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('resource and owner required\n');
  });

  it('GET /api/v1/locks without resource answers 400 resource required', async () => {
    const res = await fx.gw.request('GET', '/api/v1/locks', { expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('resource required\n');
  });
});

describe('artifacts', () => {
  it('POST artifact answers 200 {artifact_ptr: redis://art:<uuid>, size_bytes}', async () => {
    const res = await fx.gw.putArtifact({ content: 'hello', retention: 'short' });
    expect(res.artifact_ptr).toMatch(/^redis:\/\/art:[0-9a-f-]{36}$/);
    expect(res.size_bytes).toBe(5);
  });

  it('GET of a percent-encoded pointer round-trips the content as base64 with metadata', async () => {
    const { artifact_ptr } = await fx.gw.putArtifact({ content: 'hello', content_type: 'text/plain', retention: 'short', labels: { ct: 'yes' } });
    const art = await fx.gw.getArtifact(artifact_ptr);
    expect(art.artifact_ptr).toBe(artifact_ptr);
    expect(art.content_base64).toBe(Buffer.from('hello').toString('base64'));
    expect(art.metadata).toMatchObject({ content_type: 'text/plain', size_bytes: 5, retention: 'short' });
    expect(art.metadata.labels).toMatchObject({ ct: 'yes' });
    expect(art.metadata.labels).toHaveProperty('tenant_id');
  });

  it('content_base64 wins over content', async () => {
    const { artifact_ptr } = await fx.gw.putArtifact({ content: 'ignored', content_base64: Buffer.from('win').toString('base64'), retention: 'short' });
    expect((await fx.gw.getArtifact(artifact_ptr)).content_base64).toBe(Buffer.from('win').toString('base64'));
  });

  it('an artifact pointer sent unencoded in the path does not resolve (clean-path redirect: 307, or 301 with older Go)', async () => {
    const { artifact_ptr } = await fx.gw.putArtifact({ content: 'raw', retention: 'short' });
    const res = await fx.raw('GET', `/api/v1/artifacts/${artifact_ptr}`);
    expect([301, 307]).toContain(res.status);
    const followed = await fx.raw('GET', res.headers.location!);
    expect(followed.status).toBe(404);
  });

  it('empty artifact content answers 400 content required', async () => {
    const res = await fx.gw.request('POST', '/api/v1/artifacts', { body: { content: '' }, expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('content required\n');
  });

  it('?max_bytes below the content size answers 413 artifact too large', async () => {
    const res = await fx.gw.request('POST', '/api/v1/artifacts', { body: { content: 'too big', retention: 'short' }, query: { max_bytes: 3 }, expect: [200, 413] });
    expect(res.status).toBe(413);
    expect(res.text).toBe('artifact too large\n');
  });

  it('GET of an unknown artifact answers 404 artifact not found', async () => {
    const res = await fx.gw.request('GET', `/api/v1/artifacts/${encodeURIComponent(`redis://art:${crypto.randomUUID()}`)}`, { expect: 404 });
    expect(res.text).toBe('artifact not found\n');
  });

  it('GET of a value that is not a redis:// pointer answers 500 (not 400)', async () => {
    const res = await fx.gw.request('GET', `/api/v1/artifacts/${uniq()}`, { expect: [400, 404, 500] });
    expect(res.status).toBe(500);
  });
});

describe('memory pointers', () => {
  it('GET /api/v1/memory without ptr or key answers 400 missing ptr or key', async () => {
    const res = await fx.gw.request('GET', '/api/v1/memory', { expect: [200, 400] });
    expect(res.status).toBe(400);
    expect(res.text).toBe('missing ptr or key\n');
  });

  it('a pointer with an unsupported key prefix answers 400', async () => {
    const res = await fx.gw.request('GET', '/api/v1/memory', { query: { ptr: `redis://${uniq()}:x` }, expect: [200, 400, 404] });
    expect(res.status).toBe(400);
  });

  it('a missing ctx: key answers 404 not found', async () => {
    const res = await fx.gw.request('GET', '/api/v1/memory', { query: { ptr: `redis://ctx:${uniq()}` }, expect: [200, 404] });
    expect(res.status).toBe(404);
    expect(res.text).toBe('not found\n');
  });

  it('a job context pointer reads back as kind context with base64, text and json', async () => {
    const { job_id } = await submitPinned(fx, { context: { ct: 'memory' } });
    const mem = await fx.gw.memory(`redis://ctx:${job_id}`);
    expect(mem).toMatchObject({ pointer: `redis://ctx:${job_id}`, key: `ctx:${job_id}`, kind: 'context' });
    expect(mem.size_bytes).toBe(Buffer.from(mem.base64, 'base64').length);
    expect(typeof mem.text).toBe('string');
    expect(mem.json).toMatchObject({ context: { ct: 'memory' }, topic: fx.profile.routing.mapped_topic });
  });

  it('key=<key> works like ptr=redis://<key>, and quotes around the value are stripped', async () => {
    const { job_id } = await submitPinned(fx);
    const byKey = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/memory', { query: { key: `ctx:${job_id}` }, expect: 200 });
    const quoted = await fx.gw.request<Record<string, unknown>>('GET', '/api/v1/memory', { query: { ptr: `"redis://ctx:${job_id}"` }, expect: 200 });
    expect(byKey.json!.key).toBe(`ctx:${job_id}`);
    expect(quoted.json!.key).toBe(`ctx:${job_id}`);
  });

  itWhen(target.hasRedis, SKIP.noRedis)('a mem: list key is wrapped as {redis_type: list, length, items}', async () => {
    const key = `mem:${uniq()}:events`;
    fx.cleanup(() => fx.redis!.del(key));
    await fx.redis!.rpush(key, 'a', 'b');
    const mem = await fx.gw.memory(`redis://${key}`);
    expect(mem.kind).toBe('memory');
    expect(mem.json).toEqual({ redis_type: 'list', length: 2, items: ['a', 'b'] });
  });
});

function fxCleanupConfig(scopeId: string): void {
  // No delete route for config documents: remove the throw-away team doc from Redis when we can,
  // else leave it empty.
  fx.cleanup(async () => {
    if (fx.redis) await fx.redis.del(`cfg:team:${scopeId}`);
    else await fx.gw.setConfig({ scope: 'team', scope_id: scopeId, data: {} });
  });
}


