// Spawns the real redis-server and nats-server the sandbox (and the tests, and the backup drill's
// scratch targets) run on: free loopback ports, a private temp dir, bounded start-up waits, and a
// stop that always removes the process and the directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MissingBinaryError } from './errors.js';

export { MissingBinaryError };

// Servers are spawned `detached` (their own process group) so a Ctrl-C in the terminal reaches only
// the runner, which then tears down through the still-running servers and stops them itself.

export interface ManagedServer {
  url: string;
  port: number;
  dir: string;
  pid: number;
  /** Last lines the process printed, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

const SEARCH_PATH = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin']);

/** REDIS_SERVER_BIN / NATS_SERVER_BIN override the search (and let tests simulate a missing binary). */
const BIN_OVERRIDES: Record<string, string> = { 'redis-server': 'REDIS_SERVER_BIN', 'nats-server': 'NATS_SERVER_BIN' };

export function findBinary(name: string): string | undefined {
  const override = BIN_OVERRIDES[name] && process.env[BIN_OVERRIDES[name]];
  if (override) return existsSync(override) ? override : undefined;
  for (const dir of SEARCH_PATH) {
    if (!dir) continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * A free TCP port on 127.0.0.1 (the OS picks it). Another process can still take it before our server
 * binds it (several sandboxes or test runs start at once on this machine): startRedis/startNats
 * therefore retry on a fresh port when the server reports the address in use (onFreePort).
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Ready = the server printed its own ready line AND the port accepts connections. The port alone is
 * not enough: if it is taken, another process answers there while ours exits with "Address already
 * in use", and clients would silently talk to the squatter.
 */
async function waitForReady(port: number, child: ChildProcess, what: string, timeoutMs: number, out: () => string, ready: RegExp): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exited = () => `${what} exited with code ${child.exitCode} during start-up (port ${port}): ${out().trim().split('\n').slice(-3).join(' | ')}`;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(await afterOutput(child, exited));
    if (ready.test(out()) && (await canConnect(port))) {
      if (child.exitCode !== null) throw new Error(await afterOutput(child, exited));
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} did not become ready on 127.0.0.1:${port} within ${timeoutMs} ms: ${out().trim().split('\n').slice(-2).join(' | ')}`);
}

/**
 * The message once the exited child's output is all read: 'exit' can come before the last lines on
 * its pipes, and those lines say why (e.g. "Address already in use", which the retry looks for).
 */
async function afterOutput(child: ChildProcess, message: () => string): Promise<string> {
  const piped = child.stdout ?? child.stderr;
  if (piped && !piped.destroyed) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return message();
}

/** How a server says its port was taken (redis: "Address already in use"; nats: "address already in use"). */
const ADDRESS_IN_USE = /address already in use/i;
/** Start-up attempts on fresh ports before a port race is reported as the failure. */
export const PORT_ATTEMPTS = 5;

/**
 * Start a server on the caller's fixed port (no retry: a taken fixed port is the caller's error to
 * see), or on a free port, retried on a fresh one (up to PORT_ATTEMPTS in all) when the server fails
 * with the address in use because another process took the port between the choice and the bind.
 * A failed attempt's stop removes `dir`, so it is made again for the next one.
 */
async function onFreePort(
  fixed: number | undefined,
  dir: string,
  pickPort: () => Promise<number>,
  start: (port: number) => Promise<ManagedServer>,
): Promise<ManagedServer> {
  if (fixed !== undefined) return start(fixed);
  for (let attempt = 1; ; attempt++) {
    const port = await pickPort();
    try {
      return await start(port);
    } catch (err) {
      if (attempt >= PORT_ATTEMPTS || !ADDRESS_IN_USE.test((err as Error).message)) {
        if (attempt > 1) (err as Error).message += ` (attempt ${attempt} of ${PORT_ATTEMPTS} on a fresh port)`;
        throw err;
      }
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
  }
}

function manage(child: ChildProcess, dir: string, url: string, port: number, out: () => string): ManagedServer {
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      const done = () => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) return done();
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.once('exit', () => {
        clearTimeout(killTimer);
        done();
      });
      child.kill('SIGTERM');
    });
    return stopped;
  };
  // Never leave a server behind when the parent goes away.
  const onExit = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  child.once('exit', () => process.removeListener('exit', onExit));
  startWatchdog(child, dir);
  return { url, port, dir, pid: child.pid ?? -1, output: out, stop };
}

/**
 * A parent killed abruptly (SIGKILL, a crashed test worker) runs no exit handler, and a detached
 * server would outlive it. A tiny shell loop watches both pids and stops the server (and removes
 * its dir) once the parent is gone. It ends by itself when the server stops first.
 */
function startWatchdog(child: ChildProcess, dir: string): void {
  if (!child.pid) return;
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done`,
    `if kill -0 ${child.pid} 2>/dev/null; then kill -TERM ${child.pid}; sleep 2; kill -KILL ${child.pid} 2>/dev/null; rm -rf '${dir.replace(/'/g, '')}'; fi`,
  ].join('; ');
  const dog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  dog.on('error', () => {});
  dog.unref();
}

function capture(child: ChildProcess): () => string {
  let buf = '';
  const add = (d: Buffer) => {
    buf = (buf + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => buf;
}

/** Port choice for servers started without a fixed port (tests pass one that loses the race). */
export interface PortChoice {
  /** Fixed port: used as is, never retried. */
  port?: number;
  /** Picks a port when none is fixed; default freePort. */
  pickPort?: () => Promise<number>;
}

export interface RedisOptions extends PortChoice {
  /** Persistence on (AOF everysec + RDB snapshots), as production should run. Default true. */
  persistence?: boolean;
  startTimeoutMs?: number;
  extraArgs?: string[];
  /** Also listen with TLS on `tls.port` (the plain port stays for local use). */
  tls?: { port: number; cert: string; key: string; ca: string; authClients: boolean };
}

export async function startRedis(opts: RedisOptions = {}): Promise<ManagedServer> {
  const bin = findBinary('redis-server');
  if (!bin) throw new MissingBinaryError('redis-server', 'redis-server', 'REDIS_SERVER_BIN', process.env.REDIS_SERVER_BIN);
  const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-redis-'));
  return onFreePort(opts.port, dir, opts.pickPort ?? freePort, (port) => spawnRedis(bin, dir, port, opts));
}

async function spawnRedis(bin: string, dir: string, port: number, opts: RedisOptions): Promise<ManagedServer> {
  const persistence = opts.persistence ?? true;
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    '--logfile', '',
    '--save', persistence ? '3600 1 300 100 60 10000' : '',
    '--appendonly', persistence ? 'yes' : 'no',
    ...(persistence ? ['--appendfsync', 'everysec'] : []),
    ...(opts.tls ? ['--tls-port', String(opts.tls.port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key, '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', opts.tls.authClients ? 'yes' : 'no'] : []),
    ...(opts.extraArgs ?? []),
  ];
  return spawnServer('redis-server', bin, args, dir, `redis://127.0.0.1:${port}`, port, /Ready to accept connections/, opts.startTimeoutMs);
}

/** Spawn a server and wait until it is ready; a server that does not get ready is stopped. */
async function spawnServer(what: string, bin: string, args: string[], dir: string, url: string, port: number, ready: RegExp, timeoutMs = 5000): Promise<ManagedServer> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out = capture(child);
  const server = manage(child, dir, url, port, out);
  try {
    await waitForReady(port, child, what, timeoutMs, out, ready);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

export interface NatsOptions extends PortChoice {
  startTimeoutMs?: number;
  /** Store dir for JetStream; defaults to a subdir of the temp dir. */
  storeDir?: string;
  extraArgs?: string[];
  /** Require TLS on the client port (`verify`: client certificates too); the URL becomes tls://. */
  tls?: { cert: string; key: string; ca: string; verify: boolean };
}

export async function startNats(opts: NatsOptions = {}): Promise<ManagedServer> {
  const bin = findBinary('nats-server');
  if (!bin) throw new MissingBinaryError('nats-server', 'nats-server', 'NATS_SERVER_BIN', process.env.NATS_SERVER_BIN);
  const dir = mkdtempSync(join(tmpdir(), 'cordum-rb-nats-'));
  return onFreePort(opts.port, dir, opts.pickPort ?? freePort, (port) => spawnNats(bin, dir, port, opts));
}

async function spawnNats(bin: string, dir: string, port: number, opts: NatsOptions): Promise<ManagedServer> {
  const tls = opts.tls ? ['--tls', '--tlscert', opts.tls.cert, '--tlskey', opts.tls.key, '--tlscacert', opts.tls.ca, ...(opts.tls.verify ? ['--tlsverify'] : [])] : [];
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', opts.storeDir ?? join(dir, 'js'), ...tls, ...(opts.extraArgs ?? [])];
  return spawnServer('nats-server', bin, args, dir, `${opts.tls ? 'tls' : 'nats'}://127.0.0.1:${port}`, port, /Server is ready/, opts.startTimeoutMs);
}
