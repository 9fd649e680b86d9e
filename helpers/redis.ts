// Redis client for a target (ioredis). Connects eagerly with a bounded timeout so an unreachable
// Redis is reported at once (exit 3) instead of commands queueing forever; after the first
// connect it reconnects on its own, because restore drills restart Redis on purpose.
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConfigError, UnreachableError } from './errors.js';
import { registerSecret } from './evidence.js';
import { MiB, readUserFile } from './files.js';
import type { TargetProfile } from './profile-types.js';

export interface ConnectRedisOptions {
  /** Overrides profile.redis.url (e.g. the local end of a port-forward). */
  url?: string;
  env?: NodeJS.ProcessEnv;
  /** PEM material already fetched (e.g. from the profile's Kubernetes TLS secret). */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Default: profile.gateway.connect_timeout_ms. */
  connectTimeoutMs?: number;
}

/**
 * Connect to the target's Redis. With `redis.cluster: true` this is an ioredis Cluster, typed as
 * Redis because both expose the same command methods (use isCluster() for the few differences).
 */
export async function connectRedis(profile: TargetProfile, opts: ConnectRedisOptions = {}): Promise<Redis> {
  const cfg = profile.redis;
  const url = opts.url ?? cfg?.url;
  if (!url) {
    throw new ConfigError(
      `${profile.source}: redis.url: no Redis URL (with only redis.port_forward, start the port-forward first and pass its local URL)`,
    );
  }
  const parsed = parseRedisUrl(url, profile.source);
  const timeout = opts.connectTimeoutMs ?? profile.gateway.connect_timeout_ms;
  const password = cfg?.password_env ? requireEnv(profile, cfg.password_env, opts.env ?? process.env) : undefined;
  const tls = tlsOptions(profile, parsed.tls, opts.tls);

  let connectedOnce = false;
  const base: RedisOptions = {
    host: parsed.host,
    port: parsed.port,
    db: parsed.db,
    username: cfg?.username,
    password,
    tls,
    lazyConnect: true,
    connectTimeout: timeout,
    // Before the first connect: fail at once (reported as unreachable). Afterwards: keep retrying.
    retryStrategy: (times) => (connectedOnce ? Math.min(100 * times, 2000) : null),
    maxRetriesPerRequest: 3,
    enableOfflineQueue: true,
  };

  const client: Redis | Cluster = cfg?.cluster
    ? new Cluster([{ host: parsed.host, port: parsed.port }], {
        lazyConnect: true,
        redisOptions: { username: base.username, password, tls, connectTimeout: timeout },
        clusterRetryStrategy: (times) => (connectedOnce ? Math.min(100 * times, 2000) : null),
      })
    : new Redis(base);
  // Without a listener ioredis prints "Unhandled error event" for every reconnect attempt.
  let lastError: Error | undefined;
  client.on('error', (err: Error) => {
    lastError = err;
  });

  const shown = `${parsed.tls ? 'rediss' : 'redis'}://${parsed.host}:${parsed.port}/${parsed.db}`;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeout} ms`)), timeout + 250);
      }),
    ]);
    await client.ping();
    connectedOnce = true;
  } catch (err) {
    client.disconnect();
    // connect() only says "Connection is closed."; the cause arrived on the 'error' event.
    const msg = lastError?.message || (err as Error).message || 'unknown error';
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(msg)) {
      throw new UnreachableError(`Redis at ${shown} refused the credentials: ${msg}`);
    }
    throw new UnreachableError(`Redis unreachable at ${shown}: ${msg} (connect timeout ${timeout} ms)`);
  } finally {
    clearTimeout(timer);
  }
  return client as unknown as Redis;
}

export function isCluster(client: Redis): boolean {
  return (client as unknown) instanceof Cluster;
}

function requireEnv(profile: TargetProfile, name: string, env: NodeJS.ProcessEnv): string {
  const v = env[name];
  if (!v) throw new ConfigError(`${profile.source}: redis.password_env: environment variable ${name} is not set`);
  registerSecret(v);
  return v;
}

function parseRedisUrl(url: string, source: string): { host: string; port: number; db: number; tls: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`${source}: redis.url: expected a URL like redis://host:6379/0, got ${JSON.stringify(url)}`);
  }
  if (u.password) throw new ConfigError(`${source}: redis.url: the URL contains a password; use redis.password_env`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 6379), db: Number.isFinite(db) ? db : 0, tls: u.protocol === 'rediss:' };
}

function tlsOptions(profile: TargetProfile, fromUrl: boolean, material: ConnectRedisOptions['tls']): TlsConnectionOptions | undefined {
  const t = profile.redis?.tls;
  if (!t && !fromUrl && !material) return undefined;
  if (t?.secret && !material) {
    throw new ConfigError(`${profile.source}: redis.tls.secret: fetch Kubernetes secret ${t.secret} first and pass its PEM material to connectRedis`);
  }
  const read = (f: string | undefined, field: string): string | undefined => {
    if (!f) return undefined;
    return readUserFile(f, { what: f, maxBytes: MiB, display: `${profile.source}: redis.tls.${field}` });
  };
  return {
    ca: material?.ca ?? read(t?.ca_file, 'ca_file'),
    cert: material?.cert ?? read(t?.cert_file, 'cert_file'),
    key: material?.key ?? read(t?.key_file, 'key_file'),
    servername: t?.server_name,
    rejectUnauthorized: !t?.insecure_skip_verify,
  };
}
