// A loopback HTTP stand-in for the gateway routes the fixture scenarios use. It records every
// request so tests can assert that teardown happened and can detect when a step is running.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureServer {
  url: string;
  /** "METHOD /path" for every request, in arrival order. */
  log: string[];
  /** API keys seen in X-API-Key headers. */
  keys: string[];
  things: Map<string, { name: string }>;
  close(): Promise<void>;
}

export async function startFixtureServer(): Promise<FixtureServer> {
  const log: string[] = [];
  const keys: string[] = [];
  const things = new Map<string, { name: string }>();
  const hanging = new Set<ServerResponse>();
  let next = 1;
  const send = (res: ServerResponse, status: number, body?: unknown) => {
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    log.push(`${req.method} ${path}`);
    const key = req.headers['x-api-key'];
    if (typeof key === 'string') keys.push(key);
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      if (path === '/health') return send(res, 200, 'ok');
      if (path === '/api/v1/status') return send(res, 200, { build: { version: 'fixture-1.2.3', commit: 'abc123', date: 'today' } });
      if (path === '/api/v1/slow') {
        hanging.add(res);
        return; // never answers
      }
      if (path === '/api/v1/things' && req.method === 'POST') {
        const id = `t${next++}`;
        things.set(id, JSON.parse(raw || '{}') as { name: string });
        return send(res, 201, { id });
      }
      const m = /^\/api\/v1\/things\/([^/]+)$/.exec(path);
      if (m) {
        const thing = things.get(m[1]!);
        if (req.method === 'DELETE') {
          things.delete(m[1]!);
          return send(res, thing ? 204 : 404);
        }
        if (req.method === 'GET') return thing ? send(res, 200, { ...thing, colour: 'red' }) : send(res, 404, { error: 'not found' });
      }
      send(res, 404, { error: 'no route' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    keys,
    things,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
