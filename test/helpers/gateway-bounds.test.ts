// GatewayClient: every call is bounded. The caller's signal (and the one a client is bound to with
// withSignal) cancels the request on the socket; one deadline covers headers and body; the body
// is capped; a 2xx that is not the documented JSON is named as such. The server records when it
// saw each connection close, so "cancelled" means the socket, not just the promise.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ResponseTooLargeError, TargetTimeoutError } from '../../helpers/errors.js';
import { GatewayClient, UnexpectedBodyError } from '../../helpers/gateway.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { waitFor } from '../../helpers/waits.js';

let server: Server;
let base: string;
let handler: (req: IncomingMessage, res: ServerResponse) => void;
const sockets = new Set<Socket>();
/** Per request path: when the server saw the response close. */
const closed = new Map<string, number>();
/** Paths the server has received a request for. */
const arrived = new Set<string>();

beforeAll(async () => {
  server = createServer((req, res) => {
    arrived.add(req.url ?? '');
    res.on('close', () => closed.set(req.url ?? '', Date.now()));
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  closed.clear();
  arrived.clear();
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

function client(requestTimeoutMs = 30_000, opts: ConstructorParameters<typeof GatewayClient>[1] = {}): GatewayClient {
  const profile: TargetProfile = {
    name: 'bounds',
    source: 'bounds.yaml',
    gateway: { url: base, connect_timeout_ms: 2000, request_timeout_ms: requestTimeoutMs },
    routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
    policy: { reload_interval_ms: 30000, case_files: [] },
    destructive: { allowed: false },
  };
  return new GatewayClient(profile, { apiKey: null, ...opts });
}

/** Never answers. */
const silent = () => {};
/** Headers at once, then one byte every 50 ms, never finishing. */
const trickle = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  const t = setInterval(() => res.write(' '), 50);
  res.on('close', () => clearInterval(t));
};

/** The server saw `path` close (the client hung up) within `ms` of `since`. */
async function hungUp(path: string, since: number, ms: number): Promise<void> {
  await waitFor(`the server to see ${path} closed`, async () => closed.get(path), (t) => t !== undefined, { timeoutMs: ms, intervalMs: 20 });
  expect(closed.get(path)! - since).toBeLessThanOrEqual(ms);
}

describe('GatewayClient bounds', () => {
  it('the caller signal aborts the request on the socket, with the signal reason as the error', async () => {
    handler = silent;
    const gw = client();
    const stop = new AbortController();
    const reason = new Error('step timed out');
    const p = gw.request('GET', '/api/v1/hold', { signal: stop.signal }).catch((e: unknown) => e);
    await waitFor('the request to arrive', async () => arrived.has('/api/v1/hold'), (yes) => yes, { timeoutMs: 5000, intervalMs: 10 });
    const at = Date.now();
    stop.abort(reason);
    expect(await p).toBe(reason);
    await hungUp('/api/v1/hold', at, 2000);
    await gw.close();
  });

  it('withSignal binds every request, and a function signal is asked when each request starts', async () => {
    handler = silent;
    const base = client();
    let current: AbortController | undefined = new AbortController();
    const bound = base.withSignal(() => current?.signal);
    const first = bound.request('GET', '/api/v1/one').catch((e: unknown) => e);
    await waitFor('the first request to arrive', async () => arrived.has('/api/v1/one'), (yes) => yes, { timeoutMs: 5000, intervalMs: 10 });
    const at = Date.now();
    current.abort(new Error('step one ended'));
    expect((await first as Error).message).toBe('step one ended');
    await hungUp('/api/v1/one', at, 2000);
    // The next "step": a fresh signal, the same client, stats shared with the parent.
    current = new AbortController();
    handler = (_req, res) => res.end('{"ok":true}');
    expect((await bound.request('GET', '/api/v1/two')).json).toEqual({ ok: true });
    expect(base.stats.requests).toBe(2);
    await base.close();
  });

  it('one deadline covers headers and body: a body that trickles fails at the request timeout (exit 3)', async () => {
    handler = trickle;
    const gw = client(600);
    const at = Date.now();
    const err = await gw.request('GET', '/api/v1/trickle').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetTimeoutError);
    expect((err as TargetTimeoutError).exitCode).toBe(3);
    expect((err as Error).message).toBe(`gateway unreachable: GET ${base}/api/v1/trickle: no complete response within the request timeout of 600 ms`);
    await hungUp('/api/v1/trickle', at, 600 + 2000);
    await gw.close();
  });

  it('the body is capped: a larger answer fails naming the cap (exit 3) without being read whole', async () => {
    const sent = { bytes: 0 };
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const block = Buffer.alloc(64 * 1024, ' ');
      const pump = () => {
        while (!res.destroyed && sent.bytes < 64 * 1024 * 1024) {
          sent.bytes += block.length;
          if (!res.write(block)) return;
        }
      };
      res.on('drain', pump);
      pump();
    };
    const gw = client(30_000, { maxBodyBytes: 1024 * 1024 });
    const err = await gw.request('GET', '/api/v1/flood').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResponseTooLargeError);
    expect((err as Error).message).toMatch(/answer too large: GET .*\/api\/v1\/flood: the body exceeds 1024 KiB; stopped reading/);
    expect(sent.bytes).toBeLessThan(64 * 1024 * 1024);
    // A declared Content-Length over the cap is refused before reading anything.
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) });
      res.write('[');
    };
    await expect(gw.request('GET', '/api/v1/declared')).rejects.toBeInstanceOf(ResponseTooLargeError);
    await gw.destroy();
  });

  it('a 2xx that is not the documented JSON is named: endpoint, status, what came back, what was expected', async () => {
    const gw = client();
    const answer = (type: string, body: string) => (handler = (_req, res) => res.writeHead(200, { 'content-type': type }).end(body));
    answer('text/html; charset=utf-8', '<html>login</html>');
    await expect(gw.status()).rejects.toThrow(/^GET \/api\/v1\/status answered 200 with text\/html, expected JSON: "<html>login<\/html>"$/);
    answer('application/json', '{"build":');
    await expect(gw.status()).rejects.toThrow(/^GET \/api\/v1\/status answered 200 with application\/json that does not parse, expected JSON/);
    answer('application/json', 'null');
    await expect(gw.status()).rejects.toThrow(/^GET \/api\/v1\/status answered 200 with JSON null, expected a JSON object$/);
    answer('application/json', '[]');
    await expect(gw.getJob('j1')).rejects.toBeInstanceOf(UnexpectedBodyError);
    answer('text/plain', '');
    await expect(gw.status()).rejects.toThrow(/answered 200 with an empty body, expected JSON/);
    // Lists: Cordum's `null` for an empty list is [], an object is not a list.
    answer('application/json', 'null');
    expect(await gw.dlqList()).toEqual([]);
    answer('application/json', '{"items":[]}');
    await expect(gw.dlqList()).rejects.toThrow(/GET \/api\/v1\/dlq answered 200 with a JSON object, expected a JSON array/);
    await gw.close();
  });

  it('the 429 backoff is cut short by the signal', async () => {
    handler = (_req, res) => res.writeHead(429, { 'content-type': 'text/plain' }).end('rate limit exceeded');
    // The first backoff alone is 10-20 s: only the signal can end the call within a few seconds.
    const gw = client(30_000, { rateLimit: { maxAttempts: 10, baseDelayMs: 20_000, maxDelayMs: 20_000, deadlineMs: 120_000 } });
    const stop = new AbortController();
    const reason = new Error('interrupted');
    setTimeout(() => stop.abort(reason), 200);
    const t0 = Date.now();
    expect(await gw.request('GET', '/api/v1/limited', { signal: stop.signal }).catch((e: unknown) => e)).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(5_000);
    await gw.close();
  });
});
