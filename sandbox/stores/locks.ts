// User locks (api.md §10.13): lock:<resource> STRING JSON {resource, mode, owners{owner:count},
// updated_at, expires_at} with PX ttl. Re-entrant per owner, shared/exclusive, a sole shared owner
// may upgrade. Every operation is one Lua script so concurrent callers cannot interleave.
import type { Redis } from 'ioredis';
import { rfc3339 } from './jobs.js';

export interface Lock {
  resource: string;
  mode: 'exclusive' | 'shared';
  owners: Record<string, number>;
  updated_at: string;
  expires_at: string;
}

export const lockKey = (resource: string) => `lock:${resource}`;
export const DEFAULT_LOCK_TTL_MS = 30_000;

// ARGV: op, owner, mode, ttlMs, updatedAt, expiresAt, resource
// Returns {status, json}. status: ok | unavailable | missing | notheld
const LOCK_LUA = `
local key = KEYS[1]
local op, owner, mode, ttl, updated, expires, resource = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local raw = redis.call('GET', key)
local lock = nil
if raw then lock = cjson.decode(raw) end
local function count(l)
  local n, only = 0, nil
  for k, _ in pairs(l.owners) do n = n + 1; only = k end
  return n, only
end
if op == 'acquire' then
  if not lock then
    lock = {resource = resource, mode = mode, owners = {}}
    lock.owners[owner] = 1
  else
    local n, only = count(lock)
    local mine = lock.owners[owner] ~= nil
    if lock.mode == 'exclusive' then
      if not mine then return {'unavailable', raw} end
      lock.owners[owner] = lock.owners[owner] + 1
    elseif mode == 'shared' then
      lock.owners[owner] = (lock.owners[owner] or 0) + 1
    else
      if not (n == 1 and only == owner) then return {'unavailable', raw} end
      lock.mode = 'exclusive'
      lock.owners[owner] = lock.owners[owner] + 1
    end
  end
  lock.updated_at = updated
  lock.expires_at = expires
  local out = cjson.encode(lock)
  redis.call('SET', key, out, 'PX', ttl)
  return {'ok', out}
elseif op == 'release' then
  if not lock then return {'missing', ''} end
  if lock.owners[owner] == nil then return {'ok', raw} end
  lock.owners[owner] = lock.owners[owner] - 1
  if lock.owners[owner] <= 0 then lock.owners[owner] = nil end
  local n = count(lock)
  if n == 0 then
    redis.call('DEL', key)
    return {'missing', ''}
  end
  lock.updated_at = updated
  local out = cjson.encode(lock)
  local left = redis.call('PTTL', key)
  if left > 0 then redis.call('SET', key, out, 'PX', left) else redis.call('SET', key, out) end
  return {'ok', out}
elseif op == 'renew' then
  if not lock or lock.owners[owner] == nil then return {'notheld', ''} end
  lock.updated_at = updated
  lock.expires_at = expires
  local out = cjson.encode(lock)
  redis.call('SET', key, out, 'PX', ttl)
  return {'ok', out}
end
return {'missing', ''}
`;

export interface LockStore {
  get(resource: string): Promise<Lock | null>;
  acquire(resource: string, owner: string, mode: string | undefined, ttlMs: number | undefined): Promise<Lock | 'unavailable'>;
  /** Removes one count for the owner; null once the last owner is gone (or when there was no lock). */
  release(resource: string, owner: string): Promise<Lock | null>;
  renew(resource: string, owner: string, ttlMs: number | undefined): Promise<Lock | null>;
}

export function createLockStore(redis: Redis): LockStore {
  const run = async (op: string, resource: string, owner: string, mode: string, ttlMs: number | undefined) => {
    const ttl = ttlMs && ttlMs > 0 ? Math.floor(ttlMs) : DEFAULT_LOCK_TTL_MS;
    const now = new Date();
    const [status, json] = (await redis.eval(
      LOCK_LUA,
      1,
      lockKey(resource),
      op,
      owner,
      mode === 'shared' ? 'shared' : 'exclusive',
      String(ttl),
      rfc3339(now),
      rfc3339(new Date(now.getTime() + ttl)),
      resource,
    )) as [string, string];
    return { status, lock: json ? (JSON.parse(json) as Lock) : null };
  };
  return {
    async get(resource) {
      const raw = await redis.get(lockKey(resource));
      return raw ? (JSON.parse(raw) as Lock) : null;
    },
    async acquire(resource, owner, mode, ttlMs) {
      const r = await run('acquire', resource, owner, mode ?? 'exclusive', ttlMs);
      return r.status === 'unavailable' ? 'unavailable' : (r.lock as Lock);
    },
    async release(resource, owner) {
      return (await run('release', resource, owner, 'exclusive', undefined)).lock;
    },
    async renew(resource, owner, ttlMs) {
      const r = await run('renew', resource, owner, 'exclusive', ttlMs);
      return r.status === 'ok' ? r.lock : null;
    },
  };
}
