// The gateway's WebSocket stream /api/v1/stream (api.md §10.15, §3.4).
//
// The upgrade request runs through the same HTTP stack as every other request (CORS origin check,
// the shared rate limiter, API-key auth, which for this path also accepts the key as the
// `cordum-api-key` subprotocol), then the route hands the connection to `ws`. Every packet on
// sys.job.>, sys.heartbeat and sys.audit.> (core subscriptions, no queue group, like every gateway
// replica) is forwarded to every client as one protojson text frame. Events pass through a shared
// 512-slot queue (dropped when it is full) and a 100-frame per-client buffer (a client whose buffer
// is full is disconnected). The server never reads from the socket: no pong, no close reply, and a
// client that went away is only noticed when a write fails.
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Subscription } from '@nats-io/nats-core';
import protobuf from 'protobufjs';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SandboxDeps } from '../types.js';
import { repoPath } from '../../helpers/paths.js';
import { STREAM_PATH, STREAM_SUBPROTOCOL } from './http.js';
import { HttpError, type RouteModule } from './types.js';

export const STREAM_SUBJECTS = ['sys.job.>', 'sys.heartbeat', 'sys.audit.>'] as const;
export const SHARED_QUEUE_SLOTS = 512;
export const CLIENT_BUFFER_FRAMES = 100;

// ---------- protojson for BusPackets ----------

const CAP_PROTO = repoPath('helpers/cap/cap.proto');

/** The project's cap.proto names two enums differently from Cordum; protojson must show Cordum's names. */
const ENUM_PREFIX: Record<string, [string, string]> = {
  Priority: ['PRIORITY_', 'JOB_PRIORITY_'],
  Actor: ['ACTOR_', 'ACTOR_TYPE_'],
};

let packetType: protobuf.Type | undefined;
function busPacketType(): protobuf.Type {
  if (!packetType) {
    const root = new protobuf.Root();
    root.loadSync(CAP_PROTO, { keepCase: true });
    packetType = root.lookupType('runbooks.cap.BusPacket');
  }
  return packetType;
}

/** protoc's JSON name: underscores dropped, the following letter upper-cased. */
const jsonName = (field: string) => field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Shortest decimal that reads back as the same float32 (Go formats float fields with bitSize 32). */
function float32Text(v: number): number {
  const f = Math.fround(v);
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(f.toPrecision(p));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

/** google.protobuf.Timestamp -> RFC3339 in UTC with 0, 3, 6 or 9 fractional digits. */
function timestampText(seconds: unknown, nanos: unknown): string {
  const s = Number(String(seconds ?? 0));
  const n = Number(nanos ?? 0);
  const base = new Date(s * 1000).toISOString().slice(0, 19);
  if (!n) return `${base}Z`;
  let frac = String(n).padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

function scalarJson(field: protobuf.Field, v: unknown): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    const name = resolved.valuesById[Number(v)];
    if (name === undefined) return Number(v);
    const rename = ENUM_PREFIX[resolved.name];
    return rename && name.startsWith(rename[0]) ? rename[1] + name.slice(rename[0].length) : name;
  }
  if (resolved instanceof protobuf.Type) return messageJson(resolved, v as Record<string, unknown>);
  switch (field.type) {
    case 'int64':
    case 'uint64':
    case 'sint64':
    case 'fixed64':
    case 'sfixed64':
      return String(v);
    case 'float':
      return float32Text(Number(v));
    case 'bytes':
      return Buffer.from(v as Uint8Array).toString('base64');
    default:
      return v;
  }
}

/** Zero values are omitted (proto3 implicit presence); message fields only when set. */
function isZero(field: protobuf.Field, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (field.map) return Object.keys(v as object).length === 0;
  if (field.repeated) return (v as unknown[]).length === 0;
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (field.type === 'bytes') return (v as ArrayLike<number>).length === 0;
  if (typeof v === 'object') return String(v) === '0'; // Long
  return v === 0 || v === '' || v === false;
}

function messageJson(type: protobuf.Type, msg: Record<string, unknown>): unknown {
  if (type.fullName === '.google.protobuf.Timestamp') return timestampText(msg.seconds, msg.nanos);
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    field.resolve();
    const v = msg[field.name];
    if (isZero(field, v)) continue;
    if (field.map) {
      out[jsonName(field.name)] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, scalarJson(field, x)]));
    } else if (field.repeated) {
      out[jsonName(field.name)] = (v as unknown[]).map((x) => scalarJson(field, x));
    } else {
      out[jsonName(field.name)] = scalarJson(field, v);
    }
  }
  return out;
}

/** Binary CAP BusPacket -> the protojson object Cordum writes on the stream. Throws on garbage. */
export function packetToProtoJson(bytes: Uint8Array): Record<string, unknown> {
  const type = busPacketType();
  const msg = type.decode(bytes) as unknown as Record<string, unknown>;
  return messageJson(type, msg) as Record<string, unknown>;
}

// ---------- the hub ----------

interface Client {
  ws: WebSocket;
  inflight: number;
}

export interface StreamHub {
  /** Registers /api/v1/stream (any method) on the gateway router. */
  routes: RouteModule;
  /** The gateway server's 'upgrade' listener; `handler` is the gateway's HTTP stack. */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  clientCount(): number;
  stop(): Promise<void>;
}

export function createStreamHub(deps: SandboxDeps): StreamHub {
  const log = (m: string) => deps.log('gateway', `stream: ${m}`);
  const wss = new WebSocketServer({
    noServer: true,
    autoPong: false,
    clientTracking: false,
    handleProtocols: (protocols) => (protocols.has(STREAM_SUBPROTOCOL) ? STREAM_SUBPROTOCOL : false),
  });
  const clients = new Set<Client>();
  /** Upgrade requests waiting for the router to reach the stream route. */
  const pending = new WeakMap<IncomingMessage, { socket: Duplex; head: Buffer; res: ServerResponse }>();
  const queue: string[] = [];
  let draining = false;
  let stopped = false;

  const drop = (c: Client, why: string) => {
    if (!clients.delete(c)) return;
    log(`client dropped: ${why}`);
    c.ws.terminate();
  };

  const sendTo = (c: Client, frame: string) => {
    if (c.inflight >= CLIENT_BUFFER_FRAMES) return drop(c, 'buffer full (slow client)');
    c.inflight++;
    c.ws.send(frame, (err) => {
      c.inflight--;
      if (err) drop(c, `write failed: ${err.message}`);
    });
  };

  const drain = () => {
    draining = false;
    for (const frame of queue.splice(0)) for (const c of [...clients]) sendTo(c, frame);
  };

  const enqueue = (data: Uint8Array, subject: string) => {
    let frame: string;
    try {
      frame = JSON.stringify(packetToProtoJson(data));
    } catch (err) {
      log(`undecodable packet on ${subject} dropped: ${(err as Error).message}`);
      return;
    }
    if (!clients.size) return;
    if (queue.length >= SHARED_QUEUE_SLOTS) return; // shared channel full: the event is dropped
    queue.push(frame);
    if (!draining) {
      draining = true;
      setImmediate(drain);
    }
  };

  const subs: Subscription[] = STREAM_SUBJECTS.map((subject) =>
    deps.nc.subscribe(subject, { callback: (err, msg) => (err ? log(`subscription ${subject}: ${err.message}`) : enqueue(msg.data, msg.subject)) }),
  );

  const accept = (ws: WebSocket) => {
    if (stopped) return ws.terminate();
    // Never read: pings, pongs and close frames from the client go unanswered.
    ws.pause();
    const c: Client = { ws, inflight: 0 };
    clients.add(c);
    ws.on('error', (err) => drop(c, err.message));
    ws.on('close', () => clients.delete(c));
  };

  const routes: RouteModule = (table) => {
    table.add('*', STREAM_PATH, (req) => {
      const up = req.raw ? pending.get(req.raw) : undefined;
      if (!up || !req.raw) throw new HttpError(400, 'Bad Request'); // not a WebSocket handshake
      if (req.method !== 'GET') throw new HttpError(405, 'Method Not Allowed');
      pending.delete(req.raw);
      // Auth already read the key from the subprotocol list. Gorilla only splits that header on
      // commas, while ws rejects entries that are not HTTP tokens (standard base64 has '=', '+',
      // '/'): keep just the one subprotocol the server knows, so the key itself never reaches ws.
      const offered = String(req.raw.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim());
      if (offered.includes(STREAM_SUBPROTOCOL)) req.raw.headers['sec-websocket-protocol'] = STREAM_SUBPROTOCOL;
      else delete req.raw.headers['sec-websocket-protocol'];
      // The handshake is ws's from here: the HTTP response object lets go of the socket unused.
      up.res.detachSocket(up.socket as never);
      wss.handleUpgrade(req.raw, up.socket, up.head, accept);
    });
  };

  return {
    routes,
    onUpgrade(req, socket, head, handler) {
      socket.on('error', () => socket.destroy());
      // Run the upgrade request through the normal stack with a response bound to the raw socket:
      // rejections (403/429/401/404/400) are ordinary HTTP answers, the stream route takes over.
      const res = new ServerResponse(req);
      res.shouldKeepAlive = false;
      res.assignSocket(socket as never);
      res.on('finish', () => {
        res.detachSocket(socket as never);
        socket.end();
      });
      pending.set(req, { socket, head, res });
      handler(req, res);
    },
    clientCount: () => clients.size,
    async stop() {
      stopped = true;
      subs.forEach((s) => s.unsubscribe());
      for (const c of [...clients]) {
        clients.delete(c);
        c.ws.terminate();
      }
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
