// The live rate-limit probe judges what it achieved: it measures the request rate it reached, and
// when that rate could not outpace the limiter's burst plus refill, `limits.rate-limit-live` says it
// could not judge (with the figures) instead of failing. Exercised on loopback against a real token
// bucket (the sandbox gateway's), the same bucket behind a delaying proxy (a slow link), and a
// gateway with no limiter at all. Also: the live probes read bodies with a size cap.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { runAudit, type AuditReport, type LiveFacts } from '../../helpers/readiness/index.js';
import { MAX_PROBE_BODY_BYTES, probeGatewayStatus, probeRateLimit } from '../../helpers/readiness/live.js';
import { TokenBucket } from '../../sandbox/gateway/http.js';

const servers: Server[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
});

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** /api/v1/status behind a real token bucket; `limit: false` never answers 429. */
function gateway(opts: { burst: number; rps: number; limit?: boolean }): Promise<string> {
  const bucket = new TokenBucket(opts.burst, opts.rps);
  return listen((_req, res) => {
    if (opts.limit !== false && !bucket.take()) return void res.writeHead(429, { 'content-type': 'text/plain' }).end('rate limited');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"redis":{"ok":true}}');
  });
}

/** A Service over several gateways: each request goes to the next one in turn. */
function roundRobin(upstreams: string[]): Promise<string> {
  let next = 0;
  return listen((req, res) => {
    const fwd = httpRequest(new URL(req.url ?? '/', upstreams[next++ % upstreams.length]), { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    fwd.on('error', () => res.writeHead(502).end());
    fwd.end();
  });
}

/** A slow link: forwards one request at a time to `upstream`, each after `delayMs`. */
function delayingProxy(upstream: string, delayMs: number): Promise<string> {
  let queue = Promise.resolve();
  return listen((req, res) => {
    queue = queue.then(
      () =>
        new Promise<void>((done) => {
          setTimeout(() => {
            const fwd = httpRequest(new URL(req.url ?? '/', upstream), { method: req.method, headers: req.headers }, (up) => {
              res.writeHead(up.statusCode ?? 502, up.headers);
              up.pipe(res);
              up.on('end', () => done());
            });
            fwd.on('error', () => (res.writeHead(502).end(), done()));
            fwd.end();
          }, delayMs);
        }),
    );
  });
}

async function judge(rateLimit: LiveFacts['rateLimit']) {
  const report: AuditReport = await runAudit({ mode: 'live', live: { rateLimit }, now: new Date() });
  return report.results.find((r) => r.id === 'limits.rate-limit-live')!;
}

describe('live rate-limit probe', () => {
  it('passes on a working limiter reached quickly: 429 just past the burst', async () => {
    const url = await gateway({ burst: 20, rps: 5 });
    const p = await probeRateLimit(url, undefined, 20, 20, 10_000, { rps: 5 });
    expect(p?.ok).toBe(true);
    const v = p!.ok ? p!.value : undefined;
    expect(v!.first429At).toBeGreaterThan(20);
    expect(v!.first429At).toBeLessThanOrEqual(v!.cap);
    expect(v!.achievedRps).toBeGreaterThan(0);
    expect(v!.allowance).toBeGreaterThanOrEqual(20);
    const r = await judge(p);
    expect(r.status).toBe('pass');
    expect(r.message).toMatch(/^429 after \d+ requests \(burst 20\)$/);
  });

  it('says it could not judge, with the figures, when a slow link keeps it below burst plus refill', async () => {
    // The limiter works, but one request at a time every 40 ms (~25 req/s) never outpaces 50/s.
    const upstream = await gateway({ burst: 20, rps: 50 });
    const slow = await delayingProxy(upstream, 40);
    const p = await probeRateLimit(slow, undefined, 20, 10, 20_000, { rps: 50 });
    const v = p!.ok ? p!.value : undefined;
    expect(v).toMatchObject({ sent: 30, first429At: null, burst: 20, rps: 50 });
    expect(v!.achievedRps).toBeLessThan(50);
    expect(v!.allowance).toBeGreaterThanOrEqual(30);
    const r = await judge(p);
    expect(r.status).toBe('not-checkable');
    expect(r.message).toMatch(
      /^could not judge: no 429, but the probe could not outpace the limiter: 30 requests in \d+ ms \([\d.]+ req\/s\); burst 20 \+ 50\/s refill \(one gateway replica assumed: no Kubernetes objects were read\) allows up to \d+ in that time\. Run the audit closer to the gateway/,
    );
  });

  it('behind a Service over two gateway replicas (a bucket each) a working limiter passes: the allowance counts both', async () => {
    const [a, b] = await Promise.all([gateway({ burst: 20, rps: 1 }), gateway({ burst: 20, rps: 1 })]);
    const url = await roundRobin([a, b]);
    // Few in flight, so the probe's own early stop (answers past the allowance) decides, not a first wave.
    const p = await probeRateLimit(url, undefined, 20, 60, 10_000, { rps: 1, replicas: 2, concurrency: 4 });
    const v = p!.ok ? p!.value : undefined;
    expect(v).toMatchObject({ replicas: 2 });
    // One bucket alone would have refused at 21: the first 429 comes only once both are empty.
    expect(v!.first429At).toBeGreaterThan(20);
    expect((await judge(p)).status).toBe('pass');
  });

  it('fails a gateway with no limiter once the answers outpace burst plus refill, and stops there, saying by how much', async () => {
    const url = await gateway({ burst: 20, rps: 1, limit: false });
    const p = await probeRateLimit(url, undefined, 20, 400, 10_000, { rps: 1 });
    const v = p!.ok ? p!.value : undefined;
    expect(v).toMatchObject({ first429At: null, cap: 420 });
    expect(v!.sent).toBeGreaterThan(v!.allowance);
    // Proven missing after ~burst answers (+ what was in flight): the rest of the cap is never sent.
    expect(v!.sent).toBeLessThan(20 + 64 + 10);
    const r = await judge(p);
    expect(r.status).toBe('fail');
    expect(r.message).toMatch(/^no 429 after \d+ requests \(burst 20\): \d+ requests in \d+ ms .*so a working limiter would have answered 429 to at least \d+$/);
  });

  it('reads a response body only up to its cap, even from a server that never ends it', async () => {
    const url = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const p = await probeGatewayStatus(url, undefined, 10_000);
    expect(p?.ok).toBe(true);
    const body = p!.ok ? (p!.value.body as string) : '';
    expect(body.length).toBe(MAX_PROBE_BODY_BYTES);
  });
});
