// The gateway's WebSocket stream (api.md §10.15, §3.4) on a started sandbox: handshake auth forms,
// origin check, rate limit, protojson frames, forwarded and ignored subjects, slow-client drop.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodePacket, type BusPacket } from '../../helpers/cap/codec.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { CLIENT_BUFFER_FRAMES, packetToProtoJson } from '../../sandbox/gateway/stream.js';
import { client, until } from './sandbox-client.js';

// One token per second and a large burst: the earlier tests never hit the limiter, the last one
// drains it on purpose.
const BURST = 300;

let sb: Sandbox;
let nc: NatsConnection;
let call: ReturnType<typeof client>;
const sockets: WebSocket[] = [];
const logs: string[] = [];

beforeAll(async () => {
  sb = await startSandbox({ env: { API_RATE_LIMIT_RPS: '1', API_RATE_LIMIT_BURST: String(BURST) }, log: (l) => logs.push(l) });
  nc = await connect({ servers: sb.natsUrl });
  call = client(sb);
});
afterAll(async () => {
  sockets.forEach((s) => s.terminate());
  await nc?.close();
  await sb?.stop();
});

const wsUrl = () => `${sb.profile.gateway.url.replace(/^http/, 'ws')}/api/v1/stream`;

interface Stream {
  ws: WebSocket;
  frames: Record<string, any>[];
  closed: Promise<number>;
}

function open(protocols: string[] = [], headers: Record<string, string> = {}): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(), protocols, { headers });
    sockets.push(ws);
    const frames: Record<string, any>[] = [];
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (data) => frames.push(JSON.parse(String(data))));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () => resolve({ ws, frames, closed }));
  });
}

/** A raw handshake: status, headers and body of whatever the server answers. */
function handshake(headers: Record<string, string>, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(wsUrl().replace(/^ws/, 'http'), {
      method,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), ...headers },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.once('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

const waitFrame = (s: Stream, what: string, ok: (f: Record<string, any>) => boolean, timeoutMs = 5000) =>
  until(what, async () => s.frames.find(ok), timeoutMs);

const publish = (subject: string, p: BusPacket) => nc.publish(subject, encodePacket(p));

describe('protojson frames', () => {
  it('lowerCamelCase, zero values omitted, enum names, int64 as strings, float32 shortest, createdAt RFC3339', () => {
    const created = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    const result = packetToProtoJson(
      encodePacket({
        trace_id: 't1',
        sender_id: 'w1',
        created_at: created,
        job_result: { job_id: 'j1', status: 6, execution_ms: 1234, error_code: 'boom', artifact_ptrs: ['redis://art:x'] },
      }),
    );
    expect(result).toEqual({
      traceId: 't1',
      senderId: 'w1',
      createdAt: '2026-01-02T03:04:05.678Z',
      protocolVersion: 1,
      jobResult: { jobId: 'j1', status: 'JOB_STATUS_FAILED', executionMs: '1234', errorCode: 'boom', artifactPtrs: ['redis://art:x'] },
    });
    const hb = packetToProtoJson(encodePacket({ created_at: 0, heartbeat: { worker_id: 'w', cpu_load: 0.3, active_jobs: 0, labels: { snake_key: 'v' } } }));
    expect(hb).toEqual({ createdAt: '1970-01-01T00:00:00Z', protocolVersion: 1, heartbeat: { workerId: 'w', cpuLoad: 0.3, labels: { snake_key: 'v' } } });
    const req = packetToProtoJson(encodePacket({ job_request: { job_id: 'j', priority: 2, meta: { actor_type: 1, risk_tags: ['a'] } } }));
    expect(req.jobRequest).toEqual({ jobId: 'j', priority: 'JOB_PRIORITY_BATCH', meta: { actorType: 'ACTOR_TYPE_HUMAN', riskTags: ['a'] } });
  });
});

describe('handshake', () => {
  const b64url = () => Buffer.from(sb.apiKey, 'utf8').toString('base64url');

  it('subprotocol `cordum-api-key, <base64url key>` authenticates and the server echoes cordum-api-key', async () => {
    const s = await open(['cordum-api-key', b64url()]);
    expect(s.ws.protocol).toBe('cordum-api-key');
  });

  it('the token may also be standard base64 or the raw key; the X-API-Key header works without a subprotocol', async () => {
    const std = Buffer.from(sb.apiKey, 'utf8').toString('base64');
    for (const token of [std, sb.apiKey]) {
      const r = await handshake({ 'Sec-WebSocket-Protocol': `cordum-api-key, ${token}` });
      expect(r.status).toBe(101);
    }
    const viaHeader = await open([], { 'X-API-Key': sb.apiKey });
    expect(viaHeader.ws.protocol).toBe('');
  });

  it('a single `cordum-api-key.<token>` entry authenticates but selects no subprotocol', async () => {
    const r = await handshake({ 'Sec-WebSocket-Protocol': `cordum-api-key.${b64url()}` });
    expect(r.status).toBe(101);
    expect(r.headers['sec-websocket-protocol']).toBeUndefined();
  });

  it('no key or a wrong key answers 401 unauthorized; the subprotocol form is not accepted on other routes', async () => {
    expect(await handshake({})).toMatchObject({ status: 401, body: 'unauthorized\n' });
    const wrong = Buffer.from('wrong-key', 'utf8').toString('base64url');
    expect(await handshake({ 'Sec-WebSocket-Protocol': `cordum-api-key, ${wrong}` })).toMatchObject({ status: 401 });
    const other = await call('GET', '/api/v1/status', undefined, { 'X-API-Key': '', 'Sec-WebSocket-Protocol': `cordum-api-key, ${b64url()}` });
    expect(other.status).toBe(401);
  });

  it('a disallowed Origin answers 403 origin not allowed; a localhost origin is accepted', async () => {
    const key = { 'X-API-Key': sb.apiKey };
    expect(await handshake({ ...key, Origin: 'https://evil.example' })).toMatchObject({ status: 403, body: 'origin not allowed\n' });
    expect((await handshake({ ...key, Origin: 'http://localhost:3000' })).status).toBe(101);
  });

  it('a non-GET upgrade answers 405; a plain GET without the handshake answers 400', async () => {
    expect((await handshake({ 'X-API-Key': sb.apiKey }, 'POST')).status).toBe(405);
    const plain = await call('GET', '/api/v1/stream');
    expect([plain.status, plain.text]).toEqual([400, 'Bad Request\n']);
  });

  it('upgrade requests to other routes get the ordinary HTTP answer', async () => {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${sb.profile.gateway.url}/health`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
      req.once('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.once('upgrade', () => reject(new Error('unexpected upgrade')));
      req.once('error', reject);
      req.end();
    });
    expect(r).toEqual({ status: 200, body: 'ok' });
  });
});

describe('frames', () => {
  it('a submitted job arrives as a jobRequest frame; heartbeats, progress, cancels and audit packets are forwarded', async () => {
    const s = await open(['cordum-api-key', Buffer.from(sb.apiKey).toString('base64url')]);
    const submitted = await call('POST', '/api/v1/jobs', { prompt: 'stream', topic: 'job.default', labels: { pin: 'nowhere' } });
    const jobId = submitted.json.job_id as string;
    const frame = await waitFrame(s, 'jobRequest', (f) => f.jobRequest?.jobId === jobId);
    expect(frame).toMatchObject({ traceId: submitted.json.trace_id, senderId: expect.any(String), protocolVersion: 1 });
    expect(frame.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?Z$/);
    expect(frame.jobRequest.labels).toEqual({ pin: 'nowhere' });

    publish('sys.heartbeat', { sender_id: 'sb-w', heartbeat: { worker_id: 'sb-stream-w', pool: 'default', cpu_load: 12.5 } });
    publish('sys.job.progress', { job_progress: { job_id: jobId, percent: 50 } });
    publish('sys.audit.sb', { alert: { level: 'info', message: 'audit', component: 'sb' } });
    await waitFrame(s, 'heartbeat', (f) => f.heartbeat?.workerId === 'sb-stream-w' && f.heartbeat.cpuLoad === 12.5);
    await waitFrame(s, 'jobProgress', (f) => f.jobProgress?.jobId === jobId && f.jobProgress.percent === 50);
    await waitFrame(s, 'audit alert', (f) => f.alert?.message === 'audit');

    await call('POST', `/api/v1/jobs/${jobId}/cancel`);
    await waitFrame(s, 'a cancel or cancelled result', (f) => f.jobCancel?.jobId === jobId || (f.jobResult?.jobId === jobId && f.jobResult.status === 'JOB_STATUS_CANCELLED'));
  });

  it('sys.workflow.event is not forwarded, and undecodable packets are dropped', async () => {
    const s = await open([], { 'X-API-Key': sb.apiKey });
    publish('sys.workflow.event', { alert: { message: 'workflow-event' } });
    nc.publish('sys.audit.garbage', new Uint8Array([0xff, 0xff, 0xff]));
    publish('sys.audit.sb', { alert: { message: 'marker' } }); // same publisher: arrives after the two above
    await waitFrame(s, 'marker', (f) => f.alert?.message === 'marker');
    expect(s.frames.filter((f) => f.alert?.message === 'workflow-event')).toEqual([]);
  });

  it(`a client that stops reading is disconnected once ${CLIENT_BUFFER_FRAMES} frames are pending; a reading client gets everything`, async () => {
    const slow = await open([], { 'X-API-Key': sb.apiKey });
    const fast = await open([], { 'X-API-Key': sb.apiKey });
    slow.ws.pause(); // stop reading: the kernel buffers fill, then the server-side buffer
    const N = 300;
    const BATCH = 20; // well under the buffer: the reading client is never more than one batch behind
    const big = 'x'.repeat(128 * 1024);
    const readByFast = () => fast.frames.filter((f) => f.alert?.message === big).length;
    const dropped = () => logs.some((l) => l.includes('client dropped: buffer full'));
    for (let sent = 0; sent < N && !dropped(); ) {
      for (let i = 0; i < BATCH; i++, sent++) publish('sys.audit.sb-flood', { alert: { message: big, code: String(sent) } });
      await nc.flush();
      await until(`the reading client has ${sent} frames`, async () => (readByFast() === sent ? true : undefined), 20_000);
    }
    slow.ws.resume();
    const code = await Promise.race([slow.closed, new Promise<string>((r) => setTimeout(() => r('still open'), 10_000))]);
    expect(code).toBe(1006); // dropped without a close frame
    expect(dropped()).toBe(true);
    expect(slow.frames.filter((f) => f.alert?.message === big).length).toBeLessThan(readByFast());
    expect(fast.ws.readyState).toBe(WebSocket.OPEN);
  }, 60_000);
});

describe('rate limit', () => {
  it('the upgrade request takes a token from the shared /api bucket (429 rate limited when it is empty)', async () => {
    let last = 0;
    for (let attempt = 0; attempt < 3 && last !== 429; attempt++) {
      // Drain the bucket, then upgrade at once (one token per second refills it slowly).
      for (let i = 0; i < BURST + 10; i++) if ((await call('GET', '/api/v1/status')).status === 429) break;
      const r = await handshake({ 'X-API-Key': sb.apiKey });
      last = r.status;
      if (last === 429) expect(r.body).toBe('rate limited\n');
    }
    expect(last).toBe(429);
  }, 30_000);
});
