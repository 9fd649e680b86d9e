// Memory pointer reads (api.md §10.3): ctx:, res: and mem: keys only; mem: keys of any Redis type are
// wrapped in a small description before being returned.
import { HttpError, type RouteModule } from '../types.js';

function stripQuotes(s: string): string {
  return s.trim().replace(/^["']+/, '').replace(/["']+$/, '');
}

export const memoryRoutes: RouteModule = (routes, deps) => {
  const redis = deps.redis;

  routes.add('GET', '/api/v1/memory', async (req, reply) => {
    let ptr = stripQuotes(req.query.get('ptr') ?? '');
    let key = stripQuotes(req.query.get('key') ?? '');
    if (!ptr && key.startsWith('redis://')) {
      ptr = key;
      key = '';
    }
    if (ptr) {
      const m = /^redis:\/\/(.+)$/.exec(ptr);
      if (!m) throw new HttpError(400, 'invalid pointer');
      key = m[1];
    }
    if (!key) throw new HttpError(400, 'missing ptr or key');
    const kind = key.startsWith('ctx:') ? 'context' : key.startsWith('res:') ? 'result' : key.startsWith('mem:') ? 'memory' : '';
    if (!kind) throw new HttpError(400, 'unsupported pointer key (only ctx:*, res:*, or mem:*)');

    let bytes: Buffer;
    if (kind !== 'memory') {
      const v = await redis.getBuffer(key);
      if (!v) throw new HttpError(404, 'not found');
      bytes = v;
    } else {
      const type = await redis.type(key);
      let wrapped: Record<string, unknown>;
      if (type === 'none') throw new HttpError(404, 'not found');
      if (type === 'string') {
        const v = (await redis.getBuffer(key)) ?? Buffer.alloc(0);
        const text = v.toString('utf8');
        wrapped = Buffer.from(text, 'utf8').equals(v) ? { redis_type: 'string', value: text } : { redis_type: 'string', base64: v.toString('base64') };
      } else if (type === 'list') {
        const items = await redis.lrange(key, 0, -1);
        wrapped = { redis_type: 'list', length: items.length, items };
      } else if (type === 'set') {
        const items = await redis.smembers(key);
        wrapped = { redis_type: 'set', length: items.length, items };
      } else if (type === 'hash') {
        const items = await redis.hgetall(key);
        wrapped = { redis_type: 'hash', length: Object.keys(items).length, items };
      } else throw new HttpError(400, `unsupported redis type: ${type}`);
      bytes = Buffer.from(JSON.stringify(wrapped), 'utf8');
    }
    const out: Record<string, unknown> = {
      pointer: `redis://${key}`,
      key,
      kind,
      size_bytes: bytes.length,
      base64: bytes.toString('base64'),
    };
    const text = bytes.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(bytes)) {
      out.text = text;
      try {
        out.json = JSON.parse(text);
      } catch {
        // not JSON: text only
      }
    }
    reply.json(200, out);
  });
};
