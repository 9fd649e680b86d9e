// WebSocket stream /api/v1/stream (api.md §10.15, §3.4): subprotocol and header auth, protojson
// frames for bus packets published after the connection opened.
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { allKeys, itWhen, RFC3339, SKIP, submitPinned, target, useContract } from './support.js';

const fx = useContract();

const streamUrl = () => `${fx.profile.gateway.url.replace(/\/+$/, '').replace(/^http/, 'ws')}/api/v1/stream`;

interface OpenStream {
  ws: WebSocket;
  frames: Record<string, any>[];
  /** Wait (with a deadline) for a frame that satisfies `ok`. */
  waitFrame(what: string, ok: (f: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>;
}

/** Open the stream; resolves once the handshake is done, rejects with the HTTP status otherwise. */
function openStream(opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(streamUrl(), opts.protocols ?? [], { headers: opts.headers ?? {} });
    const frames: Record<string, any>[] = [];
    ws.on('message', (data) => frames.push(JSON.parse(String(data))));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      reject(new Error(`handshake answered ${res.statusCode}`));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      fx.cleanup(async () => ws.terminate());
      resolve({
        ws,
        frames,
        async waitFrame(what, ok, timeoutMs = 10_000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const hit = frames.find(ok);
            if (hit) return hit;
            if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; ${frames.length} frames seen, last: ${JSON.stringify(frames.at(-1))}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        },
      });
    });
  });
}

describe('WebSocket stream', () => {
  itWhen(target.authConfigured, SKIP.noAuth)(
    'the subprotocol form authenticates, the server echoes cordum-api-key, and a submitted job arrives as a camelCase jobRequest frame',
    async () => {
      const token = Buffer.from(fx.apiKey!, 'utf8').toString('base64url');
      const stream = await openStream({ protocols: ['cordum-api-key', token] });
      expect(stream.ws.protocol).toBe('cordum-api-key');
      const { job_id, trace_id } = await submitPinned(fx);
      const frame = await stream.waitFrame(`a jobRequest frame for ${job_id}`, (f) => f.jobRequest?.jobId === job_id);
      expect(frame.traceId).toBe(trace_id);
      expect(frame.createdAt).toMatch(RFC3339);
      expect(frame.jobRequest.topic).toBe(fx.profile.routing.mapped_topic);
      // protojson: lowerCamelCase field names (map keys such as env/labels are user data).
      expect(allKeys(frame, ['env', 'labels']).filter((k) => k.includes('_'))).toEqual([]);
      expect(frame).not.toHaveProperty('job_request');
    },
  );

  itWhen(target.authConfigured, SKIP.noAuth)('the X-API-Key header on the upgrade request authenticates too', async () => {
    const stream = await openStream({ headers: { 'X-API-Key': fx.apiKey! } });
    expect(stream.ws.readyState).toBe(WebSocket.OPEN);
  });

  itWhen(target.authConfigured, SKIP.noAuth)('an upgrade without a key or with a wrong one answers 401', async () => {
    await expect(openStream()).rejects.toThrow('handshake answered 401');
    const wrong = Buffer.from('ct-wrong-key', 'utf8').toString('base64url');
    await expect(openStream({ protocols: ['cordum-api-key', wrong] })).rejects.toThrow('handshake answered 401');
  });

  it('a plain GET without an upgrade is not served as a stream (4xx, not 404)', async () => {
    const res = await fx.raw('GET', '/api/v1/stream');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.status).not.toBe(404);
  });
});
