// A fault-injecting stand-in for Cordum's API gateway, on loopback only. Fixture runbooks
// (test/fixtures/faults/) create objects on it (things, locks) and register their teardown; the
// server keeps a registry of what exists, so a test can scan it for leftovers after a run.
// Probes (GET /api/v1/probe/<name>) answer according to the fault set for that name; /health and
// /api/v1/status can be given a hostile answer too (a body that trickles or never ends, HTML,
// invalid JSON, null). Every answer records how long its connection stayed open and how many body
// bytes were written, so a test can prove the client hung up in time. The server can die (stop
// listening, drop every connection) and come back on the same port with its registry.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | 'ok' // 200 {"ok":true}
  | '500' // plain-text 500, as Cordum's handlers answer
  | '502' // an ingress in front of a dead gateway
  | '429' // the shared rate limiter's bare 429, every time
  | 'slow' // answers after `slowMs` (past the profile's request timeout)
  | 'reset' // destroys the socket without answering
  | 'die' // the whole server dies: stops listening, every connection is dropped
  | 'hold' // no answer until release() (or the client gives up)
  | 'echo' // 500 echoing the caller's key in the encoding the probe is named after (echo-<encoding>, see ECHOES)
  | 'custom' // the status and body given with setAnswer()
  | 'trickle' // 200 and headers at once, then the body one byte every `trickleMs`, never finishing
  | 'endless' // 200 application/json, then 64 KiB every 5 ms without end
  | 'flood' // 200 application/json, then bytes as fast as the socket takes them, without end
  | 'html' // 200 text/html: a proxy's or a login page's answer
  | 'invalid-json' // 200 application/json whose body does not parse
  | 'null'; // 200 application/json `null`

/** One answer as the server saw it: when its connection closed and how much body it wrote. */
export interface Served {
  /** "METHOD /path" */
  line: string;
  /** ms since the server started */
  openedAt: number;
  closedAt?: number;
  /** Body bytes written before the client hung up (or the answer ended). */
  bytes: number;
}

/**
 * How hostile or careless servers echo a credential: each turns the caller's key into an error body.
 * Cordum is written in Go, whose encoding/json escapes < > & as \u003c \u003e \u0026.
 */
export const ECHOES: Record<string, (key: string) => string> = {
  b64json: (k) => Buffer.from(JSON.stringify({ auth: { 'x-api-key': k } })).toString('base64'),
  basic: (k) => `upstream rejected Authorization: Basic ${Buffer.from(`ops:${k}`).toString('base64')}`,
  b64url: (k) => `token=${Buffer.from(JSON.stringify({ k, n: 1 })).toString('base64url')}`,
  gojson: (k) => goJson({ error: `invalid key "${k}"` }),
  pctlower: (k) => `GET /v1/auth?key=${queryEscape(k).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())} failed`,
  pctupper: (k) => `GET /v1/auth?key=${queryEscape(k)} failed`,
  hex: (k) => `key bytes ${Buffer.from(k).toString('hex')}`,
  hexupper: (k) => `KEY BYTES ${Buffer.from(k).toString('hex').toUpperCase()}`,
  unicode: (k) => `{"key":"${[...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"}`,
  html: (k) => `<html><body>bad key ${k.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</body></html>`,
};

/** Go's json.Marshal: HTML-safe escaping of < > &. */
function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

/** Go's url.QueryEscape (space as %20 here; keys have none). */
function queryEscape(s: string): string {
  return [...Buffer.from(s)].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

export interface CreatedObject {
  kind: 'thing' | 'lock';
  name: string;
  created: string;
}

export interface FaultGateway {
  url: string;
  port: number;
  /** "METHOD /path" per request, in arrival order. */
  log: string[];
  /** Every X-API-Key value seen. */
  keys: string[];
  /** What exists on the "target": the leftover scan reads this. */
  objects: Map<string, CreatedObject>;
  setFault(probe: string, fault: Fault): void;
  /** The probe answers this status and body (the body may be built from the caller's key). */
  setAnswer(probe: string, status: number, body: string | ((key: string) => string)): void;
  /** When set, GET /api/v1/status answers this instead of the build info. */
  statusAnswer?: { status: number; body: (key: string) => string };
  /** DELETEs of things wait for release() (teardown that blocks). */
  holdDeletes: boolean;
  /** Answers for the next DELETEs of things, one each, before holdDeletes and the normal answer apply. */
  nextDeletes: ('500' | 'hold')[];
  /** GET /health waits for release() (a target that is slow to answer preflight). */
  holdHealth: boolean;
  /** A hostile answer for GET /health or GET /api/v1/status (preflight asks both); 'ok' by default. */
  answers: { health: Fault; status: Fault };
  /** Every answer, in arrival order, with the time its connection closed. */
  served: Served[];
  /** Date.now() when the server started: `served` times are relative to it. */
  startedAt: number;
  slowMs: number;
  /** Pause between bytes of a 'trickle' body. */
  trickleMs: number;
  /** Answer every held request now. */
  release(): void;
  /** Called before a probe answers (test hook: e.g. restart NATS when a step reaches a point). */
  onProbe?: (name: string) => Promise<void> | void;
  /** Count of log lines matching a predicate. */
  count(match: string | RegExp): number;
  alive(): boolean;
  kill(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultGateway(): Promise<FaultGateway> {
  const log: string[] = [];
  const keys: string[] = [];
  const objects = new Map<string, CreatedObject>();
  const faults = new Map<string, Fault>();
  const answers = new Map<string, { status: number; body: (key: string) => string }>();
  const held = new Set<() => void>();
  const sockets = new Set<Socket>();
  const served: Served[] = [];
  const t0 = Date.now();
  let next = 1;
  let server: Server | undefined;
  let port = 0;

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body));
  };
  const hold = (res: ServerResponse, then: () => void) => {
    const answer = () => {
      held.delete(answer);
      then();
    };
    held.add(answer);
    res.on('close', () => held.delete(answer));
  };

  const gw: FaultGateway = {
    url: '',
    port: 0,
    log,
    keys,
    objects,
    holdDeletes: false,
    nextDeletes: [],
    holdHealth: false,
    answers: { health: 'ok', status: 'ok' },
    served,
    startedAt: t0,
    slowMs: 4000,
    trickleMs: 500,
    setFault: (probe, fault) => void faults.set(probe, fault),
    setAnswer(probe, status, body) {
      faults.set(probe, 'custom');
      answers.set(probe, { status, body: typeof body === 'string' ? () => body : body });
    },
    release() {
      for (const answer of [...held]) answer();
    },
    count: (m) => log.filter((l) => (typeof m === 'string' ? l === m : m.test(l))).length,
    alive: () => !!server?.listening,
    kill,
    restart: listen,
    async close() {
      gw.release();
      await kill();
    },
  };

  /** The hostile answers; false when `fault` is not one of them. */
  function hostile(fault: Fault, res: ServerResponse, record: Served): boolean {
    const write = (chunk: string | Buffer) => {
      if (res.destroyed) return false;
      record.bytes += Buffer.byteLength(chunk);
      return res.write(chunk);
    };
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      res.on('close', () => clearInterval(t));
    };
    switch (fault) {
      case 'trickle':
        res.writeHead(200, { 'content-type': 'text/plain' });
        every(gw.trickleMs, () => write('o'));
        return true;
      case 'endless': {
        res.writeHead(200, { 'content-type': 'application/json' });
        write('[');
        const block = Buffer.alloc(64 * 1024, '0,');
        every(5, () => write(block));
        return true;
      }
      case 'flood': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const block = Buffer.alloc(256 * 1024, ' ');
        const pump = () => {
          while (write(block));
        };
        res.on('drain', pump);
        pump();
        return true;
      }
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><html><body><h1>Sign in</h1></body></html>');
        return true;
      case 'invalid-json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"build": {"version": ');
        return true;
      case 'null':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('null');
        return true;
      default:
        return false;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, raw: string, record: Served): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') {
      if (gw.holdHealth) return hold(res, () => send(res, 200, 'ok'));
      if (hostile(gw.answers.health, res, record)) return;
      return send(res, 200, 'ok');
    }
    const key = String(req.headers['x-api-key'] ?? '');
    if (path === '/api/v1/status') {
      if (gw.statusAnswer) return send(res, gw.statusAnswer.status, gw.statusAnswer.body(key));
      if (hostile(gw.answers.status, res, record)) return;
      return send(res, 200, { build: { version: 'faults-0.0.1', commit: 'f00d' }, redis: { ok: true }, nats: { connected: true } });
    }

    const probe = /^\/api\/v1\/probe\/([a-z0-9-]+)$/.exec(path);
    if (probe) {
      const name = probe[1]!;
      await gw.onProbe?.(name);
      switch (faults.get(name) ?? 'ok') {
        case 'ok':
          return send(res, 200, { ok: true, probe: name });
        case '500':
          // Some backends echo the caller's credentials in errors: the runner must not print them.
          return send(res, 500, `internal error: redis: connection pool exhausted (key ${req.headers['x-api-key']})`);
        case '502':
          return send(res, 502, '<html><body><h1>502 Bad Gateway</h1></body></html>');
        case '429':
          return send(res, 429, 'rate limit exceeded');
        case 'slow': {
          const t = setTimeout(() => send(res, 200, { ok: true, slow: true }), gw.slowMs);
          res.on('close', () => clearTimeout(t));
          return;
        }
        case 'reset':
          req.socket.destroy();
          return;
        case 'die':
          req.socket.destroy();
          await kill();
          return;
        case 'hold':
          return hold(res, () => send(res, 200, { ok: true, held: true }));
        case 'echo': {
          const echo = ECHOES[name.replace(/^echo-/, '')];
          return echo ? send(res, 500, echo(key)) : send(res, 404, `no echo encoding for probe ${name}`);
        }
        case 'custom': {
          const a = answers.get(name)!;
          return send(res, a.status, a.body(key));
        }
        default:
          if (hostile(faults.get(name)!, res, record)) return;
      }
    }

    if (path === '/api/v1/things' && req.method === 'POST') {
      const id = `t${next++}`;
      const body = JSON.parse(raw || '{}') as { name?: string };
      objects.set(`thing/${id}`, { kind: 'thing', name: body.name ?? id, created: new Date().toISOString() });
      return send(res, 201, { id });
    }
    const thing = /^\/api\/v1\/things\/([^/]+)$/.exec(path);
    if (thing) {
      const key = `thing/${thing[1]}`;
      if (req.method === 'DELETE') {
        const remove = () => send(res, objects.delete(key) ? 204 : 404);
        const scripted = gw.nextDeletes.shift();
        if (scripted === '500') return send(res, 500, 'internal error: delete failed');
        return scripted === 'hold' || gw.holdDeletes ? hold(res, remove) : remove();
      }
      if (req.method === 'GET') return objects.has(key) ? send(res, 200, objects.get(key)) : send(res, 404, 'not found');
    }

    // Cordum's lock API, exclusive mode only (what the drill lock uses).
    if (path === '/api/v1/locks/acquire' && req.method === 'POST') {
      const b = JSON.parse(raw || '{}') as { resource: string; owner: string; ttl_ms?: number };
      const key = `lock/${b.resource}`;
      const cur = objects.get(key);
      if (cur && cur.name !== b.owner) return send(res, 409, `lock ${b.resource} is held by ${cur.name}`);
      objects.set(key, { kind: 'lock', name: b.owner, created: new Date().toISOString() });
      return send(res, 200, { resource: b.resource, mode: 'exclusive', owners: { [b.owner]: 1 }, updated_at: '', expires_at: '' });
    }
    if (path === '/api/v1/locks/release' && req.method === 'POST') {
      const b = JSON.parse(raw || '{}') as { resource: string; owner: string };
      const key = `lock/${b.resource}`;
      const cur = objects.get(key);
      if (cur && cur.name !== b.owner) return send(res, 409, `lock ${b.resource} is held by ${cur.name}`);
      objects.delete(key);
      return send(res, 200, { lock: null, released: !!cur });
    }
    send(res, 404, 'no route');
  }

  async function listen(): Promise<void> {
    if (server?.listening) return;
    const srv = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      log.push(`${req.method} ${path}`);
      const record: Served = { line: `${req.method} ${path}`, openedAt: Date.now() - t0, bytes: 0 };
      served.push(record);
      res.on('close', () => (record.closedAt = Date.now() - t0));
      const key = req.headers['x-api-key'];
      if (typeof key === 'string') keys.push(key);
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        handle(req, res, raw, record).catch((err: unknown) => send(res, 500, `fault gateway: ${String(err)}`));
      });
    });
    srv.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    server = srv;
    port = (srv.address() as AddressInfo).port;
    gw.port = port;
    gw.url = `http://127.0.0.1:${port}`;
  }

  async function kill(): Promise<void> {
    const srv = server;
    if (!srv) return;
    server = undefined;
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  await listen();
  return gw;
}
