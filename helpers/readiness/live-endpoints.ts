// Live probes that need nothing but the target profile (a compose-style install, or a cluster
// reached through URLs): TLS on the gateway, NATS and Redis endpoints (handshake, chain, SANs,
// expiry, plaintext refused, client certificates required) and Redis key retention sampled per
// Cordum key family. Each is bounded in time; failures become Probe {ok:false}.
import { X509Certificate } from 'node:crypto';
import { readTlsFiles } from '../files.js';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import type { TlsRef } from '../profile-types.js';

export interface TlsEndpointFacts {
  url: string;
  /** The endpoint spoke TLS (for NATS: the server requires it, per its INFO). */
  tls: boolean;
  /** The chain verified against the profile's CA (or the system roots). */
  authorized?: boolean;
  authorizationError?: string;
  /** Name checked against the certificate (profile server_name, else the URL host). */
  serverName?: string;
  sans?: string[];
  hostCovered?: boolean;
  notAfter?: string;
  daysLeft?: number;
  /** A plaintext client is turned away. */
  plaintextRefused?: boolean;
  /** A TLS client without a certificate is turned away (mTLS). */
  clientCertRequired?: boolean;
  handshakeError?: string;
}

function readMaterial(t: TlsRef | undefined): Pick<ConnectionOptions, 'ca' | 'cert' | 'key'> {
  return readTlsFiles(t, 'target profile tls');
}

function certFacts(sock: TLSSocket, serverName: string, now: Date): Partial<TlsEndpointFacts> {
  const raw = sock.getPeerX509Certificate?.();
  if (!raw) return { authorized: sock.authorized, authorizationError: sock.authorizationError ? String(sock.authorizationError) : undefined };
  const cert = raw as X509Certificate;
  const sans = (cert.subjectAltName ?? '').split(/,\s*/).filter(Boolean).map((s) => s.replace(/^(DNS|IP Address):/, ''));
  const hostCovered = isIP(serverName) ? cert.checkIP(serverName) !== undefined : cert.checkHost(serverName) !== undefined;
  return {
    authorized: sock.authorized,
    authorizationError: sock.authorizationError ? String(sock.authorizationError) : undefined,
    serverName,
    sans,
    hostCovered,
    notAfter: new Date(cert.validTo).toISOString(),
    daysLeft: Math.floor((Date.parse(cert.validTo) - now.getTime()) / 86_400_000),
  };
}

/** A socket once `ready` fires (connect, secureConnect), or an error after `timeoutMs`. */
function ready<T extends Socket>(sock: T, event: string, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${what} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once(event, () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** TLS handshake on a socket (or a fresh connection); the chain is judged by the caller. */
const handshake = (opts: ConnectionOptions, timeoutMs: number): Promise<TLSSocket> => ready(tlsConnect({ ...opts, rejectUnauthorized: false }), 'secureConnect', 'TLS handshake', timeoutMs);

/** Send `payload` and collect what comes back until `done` says so, the peer closes, or the deadline. */
function exchange(sock: Socket, payload: string | undefined, done: (s: string) => boolean, timeoutMs: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      sock.removeAllListeners('data');
      resolve({ text, closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (done(text)) finish(false);
    });
    sock.once('close', () => finish(true));
    sock.once('error', () => finish(true));
    if (payload !== undefined) sock.write(payload);
  });
}

const tcp = (host: string, port: number, timeoutMs: number): Promise<Socket> => ready(netConnect({ host, port }), 'connect', `connect ${host}:${port}`, timeoutMs);

const hostOf = (u: URL) => u.hostname.replace(/^\[|\]$/g, '');

/** HTTPS (or plain HTTP) gateway: handshake and certificate. */
export async function probeHttpsEndpoint(url: string, tls: TlsRef | undefined, timeoutMs: number, now: Date): Promise<TlsEndpointFacts> {
  const u = new URL(url);
  if (u.protocol !== 'https:') return { url, tls: false };
  const host = hostOf(u);
  const serverName = tls?.server_name ?? host;
  try {
    const s = await handshake({ host, port: Number(u.port || 443), servername: isIP(serverName) ? undefined : serverName, ...readMaterial(tls), ALPNProtocols: ['http/1.1'] }, timeoutMs);
    const facts = certFacts(s, serverName, now);
    s.destroy();
    return { url, tls: true, ...facts };
  } catch (err) {
    return { url, tls: true, handshakeError: (err as Error).message };
  }
}

/**
 * NATS: the server speaks first (INFO, in plaintext), then the client upgrades to TLS. INFO says
 * whether TLS is required (a plaintext client is refused) and verified (client certs required).
 */
export async function probeNatsEndpoint(url: string, tls: TlsRef | undefined, timeoutMs: number, now: Date): Promise<TlsEndpointFacts> {
  const first = url.split(',')[0].trim();
  const u = new URL(/^\w+:\/\//.test(first) ? first : `nats://${first}`);
  const host = hostOf(u);
  const sock = await tcp(host, Number(u.port || 4222), timeoutMs);
  try {
    const hello = await exchange(sock, undefined, (t) => t.includes('\r\n'), timeoutMs);
    const m = /^INFO\s+(\{.*\})/.exec(hello.text);
    if (!m) {
      // tls_first servers start with a TLS handshake instead of INFO.
      sock.destroy();
      return { url, tls: u.protocol === 'tls:', handshakeError: hello.text ? 'no INFO from the server (tls_first?)' : 'the server sent nothing' };
    }
    const info = JSON.parse(m[1]) as { tls_required?: boolean; tls_verify?: boolean; tls_available?: boolean };
    const base: TlsEndpointFacts = { url, tls: !!info.tls_required, plaintextRefused: !!info.tls_required, clientCertRequired: !!info.tls_verify };
    if (!info.tls_required) return base;
    const serverName = tls?.server_name ?? host;
    try {
      const s = await handshake({ socket: sock, servername: isIP(serverName) ? undefined : serverName, ...readMaterial(tls) }, timeoutMs);
      const facts = certFacts(s, serverName, now);
      s.destroy();
      return { ...base, ...facts };
    } catch (err) {
      return { ...base, handshakeError: (err as Error).message };
    }
  } finally {
    sock.destroy();
  }
}

/**
 * Redis: rediss:// is TLS from the first byte. Also asks whether a plaintext PING is refused and
 * whether a TLS client without a certificate gets a PONG (then tls-auth-clients is off).
 */
export async function probeRedisEndpoint(url: string, tls: TlsRef | undefined, timeoutMs: number, now: Date): Promise<TlsEndpointFacts> {
  const u = new URL(url);
  const host = hostOf(u);
  const port = Number(u.port || 6379);
  const plain = await tcp(host, port, timeoutMs);
  const answer = await exchange(plain, 'PING\r\n', (t) => t.includes('\r\n'), Math.min(timeoutMs, 3000));
  plain.destroy();
  // Any RESP answer (+PONG, or -NOAUTH) means the server read plaintext.
  const plaintextRefused = !/^[+-]/.test(answer.text);
  if (u.protocol !== 'rediss:') return { url, tls: false, plaintextRefused };
  const serverName = tls?.server_name ?? host;
  const sni = isIP(serverName) ? undefined : serverName;
  let facts: Partial<TlsEndpointFacts>;
  try {
    const s = await handshake({ host, port, servername: sni, ...readMaterial(tls) }, timeoutMs);
    facts = certFacts(s, serverName, now);
    s.destroy();
  } catch (err) {
    return { url, tls: true, plaintextRefused, handshakeError: (err as Error).message };
  }
  // Without a client certificate: with tls-auth-clients yes the handshake (or, in TLS 1.3, the
  // first read) fails.
  let clientCertRequired = true;
  try {
    const { ca } = readMaterial(tls);
    const anon = await handshake({ host, port, servername: sni, ca }, timeoutMs);
    const r = await exchange(anon, 'PING\r\n', (t) => t.includes('\r\n'), Math.min(timeoutMs, 3000));
    anon.destroy();
    clientCertRequired = !/^\+PONG|^-NOAUTH/.test(r.text);
  } catch {
    clientCertRequired = true;
  }
  return { url, tls: true, plaintextRefused, clientCertRequired, ...facts };
}

// ---------------------------------------------------------------------------------------------
// Retention: keys without TTL per Cordum key family (runtime.md §5, the recorded key listing).

export interface KeyFamily {
  name: string;
  /** Key patterns (prefixes) of the family. */
  prefixes: string[];
  /** Expected to expire (a TTL is set by Cordum); false = kept without TTL by Cordum's design. */
  expires: boolean;
  why: string;
}

export const KEY_FAMILIES: KeyFamily[] = [
  { name: 'job metadata', prefixes: ['job:meta:', 'job:state:', 'job:req:', 'job:decisions:', 'job:idempotency:'], expires: true, why: 'JOB_META_TTL (168h)' },
  { name: 'job events and result pointers', prefixes: ['job:events:', 'job:result_ptr:'], expires: false, why: 'Cordum sets no TTL on them (seen on a real install): one of each per job ever run' },
  { name: 'context', prefixes: ['ctx:'], expires: true, why: 'REDIS_DATA_TTL (24h)' },
  { name: 'results', prefixes: ['res:'], expires: true, why: 'REDIS_DATA_TTL (24h)' },
  { name: 'artifacts', prefixes: ['art:'], expires: true, why: 'ARTIFACT_TTL_* (24h/168h/720h)' },
  { name: 'traces', prefixes: ['trace:'], expires: false, why: 'Cordum sets no TTL on them (seen on a real install): one per trace' },
  { name: 'locks', prefixes: ['cordum:scheduler:job:', 'cordum:reconciler:', 'cordum:replayer:', 'cordum:wf:run:lock:', 'lock:'], expires: true, why: 'locks carry a TTL so a crashed holder cannot block forever' },
  { name: 'DLQ entries', prefixes: ['dlq:entry:'], expires: false, why: 'DLQ entries have no TTL by design; dlq:index is trimmed to 1000 and trimmed entries stay (orphans)' },
];

export interface FamilyRetention {
  family: string;
  expires: boolean;
  why: string;
  /** Keys of the family seen by SCAN (extrapolated when the scan stopped early). */
  keys: number;
  sampled: number;
  withoutTtl: number;
  /** Estimated keys without TTL in the whole keyspace. */
  estimatedWithoutTtl: number;
  /** Mean MEMORY USAGE of sampled keys, bytes (null when the command is unavailable). */
  meanBytes: number | null;
}

export interface RetentionFacts {
  dbsize: number;
  scanned: number;
  complete: boolean;
  families: FamilyRetention[];
  /** DLQ entries not in dlq:index (trimmed away, kept forever). */
  dlqOrphans?: number;
}

/** SCAN up to `maxScan` keys, then per family PTTL and MEMORY USAGE on a sample. */
export async function sampleRetention(r: Redis, opts: { maxScan?: number; samplePerFamily?: number } = {}): Promise<RetentionFacts> {
  const maxScan = opts.maxScan ?? 50_000;
  const perFamily = opts.samplePerFamily ?? 200;
  const dbsize = Number(await r.dbsize());
  const byFamily = new Map<string, string[]>();
  const counts = new Map<string, number>();
  let cursor = '0';
  let scanned = 0;
  do {
    const [next, keys] = (await r.scan(cursor, 'COUNT', 1000)) as [string, string[]];
    cursor = next;
    scanned += keys.length;
    for (const k of keys) {
      const fam = KEY_FAMILIES.find((f) => f.prefixes.some((p) => k.startsWith(p)));
      if (!fam) continue;
      counts.set(fam.name, (counts.get(fam.name) ?? 0) + 1);
      const list = byFamily.get(fam.name) ?? [];
      if (list.length < perFamily) list.push(k);
      byFamily.set(fam.name, list);
    }
  } while (cursor !== '0' && scanned < maxScan);
  const complete = cursor === '0';
  const scale = complete || !scanned ? 1 : dbsize / scanned;
  const families: FamilyRetention[] = [];
  for (const f of KEY_FAMILIES) {
    const sample = byFamily.get(f.name) ?? [];
    const keys = Math.round((counts.get(f.name) ?? 0) * scale);
    if (!sample.length) {
      families.push({ family: f.name, expires: f.expires, why: f.why, keys, sampled: 0, withoutTtl: 0, estimatedWithoutTtl: 0, meanBytes: null });
      continue;
    }
    const p = r.pipeline();
    for (const k of sample) p.pttl(k);
    const ttls = ((await p.exec()) ?? []).map(([, v]) => Number(v));
    const withoutTtl = ttls.filter((t) => t === -1).length;
    let meanBytes: number | null = null;
    try {
      const m = r.pipeline();
      for (const k of sample.slice(0, 20)) m.call('MEMORY', 'USAGE', k);
      const sizes = ((await m.exec()) ?? []).map(([err, v]) => (err ? NaN : Number(v))).filter((n) => Number.isFinite(n));
      meanBytes = sizes.length ? Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length) : null;
    } catch {
      meanBytes = null;
    }
    families.push({ family: f.name, expires: f.expires, why: f.why, keys, sampled: sample.length, withoutTtl, estimatedWithoutTtl: Math.round((withoutTtl / sample.length) * keys), meanBytes });
  }
  let dlqOrphans: number | undefined;
  const dlqKeys = counts.get('DLQ entries') ?? 0;
  if (dlqKeys) {
    const indexed = Number(await r.zcard('dlq:index').catch(() => 0));
    dlqOrphans = Math.max(0, Math.round(dlqKeys * scale) - indexed);
  }
  return { dbsize, scanned, complete, families, dlqOrphans };
}
