// Cordum's NATS bus: binary CAP BusPackets on core subjects, plus read-only JetStream views
// (consumer redelivery counters, stream state) for the fault-injection runbooks.
import { credsAuthenticator, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager, type StreamConfig, type StreamState } from '@nats-io/jetstream';
import { decodePacket, encodePacket, payloadKind, type BusPacket } from './cap/codec.js';
import { ConfigError, UnreachableError } from './errors.js';
import { registerSecret } from './evidence.js';
import { MiB, readUserFileBytes } from './files.js';
import type { TargetProfile } from './profile-types.js';
import { compactJson, WaitTimeoutError } from './waits.js';

export type { BusPacket } from './cap/codec.js';

export interface ConnectBusOptions {
  /** Overrides profile.nats.url (e.g. the local end of a port-forward). */
  url?: string;
  env?: NodeJS.ProcessEnv;
  /** Client name shown in NATS monitoring (default "cordum-runbooks"). */
  name?: string;
  /** PEM material already fetched (e.g. from the profile's Kubernetes TLS secret). */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Default: profile.gateway.connect_timeout_ms. */
  connectTimeoutMs?: number;
}

export interface ReceivedPacket {
  subject: string;
  packet: BusPacket;
  receivedAt: number;
}

export interface PacketSubscription {
  readonly subject: string;
  /**
   * The first not-yet-taken packet (already received or future) that matches. Each packet is handed
   * out once, so consecutive calls walk through matching packets in arrival order.
   */
  next(predicate: (p: ReceivedPacket) => boolean, opts: { timeoutMs: number; what: string }): Promise<ReceivedPacket>;
  /** Everything received so far, in arrival order. */
  received(): ReceivedPacket[];
  /** Messages that were not CAP packets. */
  undecodable(): number;
  stop(): void;
}

export interface ConsumerCounters {
  num_redelivered: number;
  num_ack_pending: number;
  num_pending: number;
  delivered: { consumer_seq: number; stream_seq: number };
}

export interface Bus {
  readonly nc: NatsConnection;
  readonly url: string;
  /** Core publish + flush. Core (not JetStream) on purpose: Cordum only de-dups JS-published packets. */
  publish(subject: string, packet: BusPacket): Promise<void>;
  subscribe(subject: string, opts?: { queue?: string; maxBuffered?: number }): PacketSubscription;
  consumerInfo(stream: string, durable: string): Promise<ConsumerCounters | undefined>;
  streamInfo(name: string): Promise<{ config: StreamConfig; state: StreamState } | undefined>;
  close(): Promise<void>;
}

export async function connectBus(profile: TargetProfile, opts: ConnectBusOptions = {}): Promise<Bus> {
  const url = opts.url ?? profile.nats?.url;
  if (!url) {
    throw new ConfigError(
      `${profile.source}: nats.url: no NATS URL (with only nats.port_forward, start the port-forward first and pass its local URL)`,
    );
  }
  const timeout = opts.connectTimeoutMs ?? profile.gateway.connect_timeout_ms;
  const connOpts: NodeConnectionOptions = {
    servers: url,
    name: opts.name ?? 'cordum-runbooks',
    timeout,
    // Fail fast on the first connect; reconnect later (drills restart NATS on purpose).
    waitOnFirstConnect: false,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...authOptions(profile, opts.env ?? process.env),
  };
  const tls = tlsOptions(profile, opts.tls);
  if (tls) connOpts.tls = tls;
  let nc: NatsConnection;
  try {
    nc = await connect(connOpts);
  } catch (err) {
    throw new UnreachableError(`NATS unreachable at ${url}: ${(err as Error).message} (connect timeout ${timeout} ms)`);
  }
  return new NatsBus(nc, url);
}

function authOptions(profile: TargetProfile, env: NodeJS.ProcessEnv): Partial<NodeConnectionOptions> {
  const n = profile.nats;
  if (!n) return {};
  const need = (field: string, name: string): string => {
    const v = env[name];
    if (!v) throw new ConfigError(`${profile.source}: nats.${field}: environment variable ${name} is not set`);
    registerSecret(v);
    return v;
  };
  if (n.token_env) return { token: need('token_env', n.token_env) };
  if (n.user && n.password_env) return { user: n.user, pass: need('password_env', n.password_env) };
  if (n.creds_file) {
    const creds = readUserFileBytes(n.creds_file, { what: n.creds_file, maxBytes: MiB, display: `${profile.source}: nats.creds_file` });
    return { authenticator: credsAuthenticator(creds) };
  }
  return {};
}

function tlsOptions(profile: TargetProfile, material: ConnectBusOptions['tls']): NodeConnectionOptions['tls'] | undefined {
  const t = profile.nats?.tls;
  if (!t && !material) return undefined;
  if (t?.secret && !material) {
    throw new ConfigError(`${profile.source}: nats.tls.secret: fetch Kubernetes secret ${t.secret} first and pass its PEM material to connectBus`);
  }
  return {
    ...(material?.ca ? { ca: material.ca } : t?.ca_file ? { caFile: t.ca_file } : {}),
    ...(material?.cert ? { cert: material.cert } : t?.cert_file ? { certFile: t.cert_file } : {}),
    ...(material?.key ? { key: material.key } : t?.key_file ? { keyFile: t.key_file } : {}),
    ...(t?.insecure_skip_verify ? { rejectUnauthorized: false } : {}),
  };
}

class NatsBus implements Bus {
  private jsm: JetStreamManager | undefined;
  private readonly subs = new Set<PacketSubscriptionImpl>();

  constructor(
    readonly nc: NatsConnection,
    readonly url: string,
  ) {}

  async publish(subject: string, packet: BusPacket): Promise<void> {
    this.nc.publish(subject, encodePacket(packet));
    await this.nc.flush();
  }

  subscribe(subject: string, opts: { queue?: string; maxBuffered?: number } = {}): PacketSubscription {
    const sub = new PacketSubscriptionImpl(this.nc, subject, opts.queue, opts.maxBuffered ?? 10000, () => this.subs.delete(sub));
    this.subs.add(sub);
    return sub;
  }

  async consumerInfo(stream: string, durable: string): Promise<ConsumerCounters | undefined> {
    try {
      const ci = await (await this.manager()).consumers.info(stream, durable);
      return {
        num_redelivered: ci.num_redelivered,
        num_ack_pending: ci.num_ack_pending,
        num_pending: ci.num_pending,
        delivered: { consumer_seq: ci.delivered.consumer_seq, stream_seq: ci.delivered.stream_seq },
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async streamInfo(name: string): Promise<{ config: StreamConfig; state: StreamState } | undefined> {
    try {
      const si = await (await this.manager()).streams.info(name);
      return { config: si.config, state: si.state };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async close(): Promise<void> {
    for (const s of [...this.subs]) s.stop();
    if (!this.nc.isClosed()) await this.nc.close();
  }

  private async manager(): Promise<JetStreamManager> {
    this.jsm ??= await jetstreamManager(this.nc);
    return this.jsm;
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: number; api_error?: { err_code?: number; code?: number } };
  // 10014 consumer not found, 10059 stream not found (JetStream API error codes).
  const code = e?.api_error?.err_code;
  return code === 10014 || code === 10059 || /not found/i.test(e?.message ?? '') || /NotFound/.test(e?.name ?? '');
}

interface Waiter {
  predicate: (p: ReceivedPacket) => boolean;
  resolve: (p: ReceivedPacket) => void;
}

class PacketSubscriptionImpl implements PacketSubscription {
  private readonly items: { rp: ReceivedPacket; taken: boolean }[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly sub: Subscription;
  private bad = 0;
  private dropped = 0;

  constructor(
    nc: NatsConnection,
    readonly subject: string,
    queue: string | undefined,
    private readonly maxBuffered: number,
    private readonly onStop: () => void,
  ) {
    this.sub = nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) return;
        let packet: BusPacket;
        try {
          packet = decodePacket(msg.data);
        } catch {
          this.bad++;
          return;
        }
        this.deliver({ subject: msg.subject, packet, receivedAt: Date.now() });
      },
    });
  }

  private deliver(rp: ReceivedPacket): void {
    for (const w of this.waiters) {
      if (safeMatch(w.predicate, rp)) {
        this.waiters.delete(w);
        this.items.push({ rp, taken: true });
        this.trim();
        w.resolve(rp);
        return;
      }
    }
    this.items.push({ rp, taken: false });
    this.trim();
  }

  private trim(): void {
    // Bounded memory on busy subjects (sys.heartbeat): drop the oldest.
    while (this.items.length > this.maxBuffered) {
      this.items.shift();
      this.dropped++;
    }
  }

  next(predicate: (p: ReceivedPacket) => boolean, opts: { timeoutMs: number; what: string }): Promise<ReceivedPacket> {
    const hit = this.items.find((i) => !i.taken && safeMatch(predicate, i.rp));
    if (hit) {
      hit.taken = true;
      return Promise.resolve(hit.rp);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new WaitTimeoutError(`${opts.what} on ${this.subject}`, opts.timeoutMs, undefined, undefined, this.items.length, this.summary()));
      }, opts.timeoutMs);
      this.waiters.add(waiter);
    });
  }

  received(): ReceivedPacket[] {
    return this.items.map((i) => i.rp);
  }

  undecodable(): number {
    return this.bad;
  }

  stop(): void {
    this.sub.unsubscribe();
    this.onStop();
  }

  /** What the timeout message shows: a count and the last few packets in short form. */
  private summary(): string {
    const n = this.items.length + this.dropped;
    const last = this.items.slice(-3).map((i) => shortPacket(i.rp));
    const extra = this.bad ? `, ${this.bad} undecodable` : '';
    return `${n} packet(s)${extra}${last.length ? `, last: ${last.join(' | ')}` : ''}`;
  }
}

function safeMatch(pred: (p: ReceivedPacket) => boolean, rp: ReceivedPacket): boolean {
  try {
    return pred(rp);
  } catch {
    return false;
  }
}

/** One-line packet summary for messages: `sys.job.result job_result {"job_id":"x","status":6}`. */
export function shortPacket(rp: ReceivedPacket): string {
  const kind = payloadKind(rp.packet);
  const body = kind ? compactJson(rp.packet[kind]) : '{}';
  return `${rp.subject} ${kind ?? 'empty'} ${body.length > 160 ? `${body.slice(0, 160)}…` : body}`;
}
