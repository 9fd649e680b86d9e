import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { MissingBinaryError, PORT_ATTEMPTS, freePort, startNats, startRedis } from '../../helpers/processes.js';

describe('managed redis-server and nats-server', () => {
  it('starts redis with persistence on a free port and removes its dir on stop', async () => {
    const srv = await startRedis();
    const r = new Redis(srv.url, { lazyConnect: true });
    await r.connect();
    expect(await r.ping()).toBe('PONG');
    expect(await r.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    r.disconnect();
    await srv.stop();
    expect(existsSync(srv.dir)).toBe(false);
  });

  it('starts nats-server with JetStream enabled', async () => {
    const srv = await startNats();
    const nc = await connect({ servers: srv.url });
    const info = nc.info;
    expect(info?.jetstream).toBe(true);
    await nc.close();
    await srv.stop();
    expect(existsSync(srv.dir)).toBe(false);
  });

  it('names the missing binary and how to install it', async () => {
    const saved = process.env.REDIS_SERVER_BIN;
    process.env.REDIS_SERVER_BIN = '/nonexistent/redis-server';
    try {
      const err = await startRedis().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MissingBinaryError);
      expect((err as Error).message).toMatch(/redis-server not found.*apt-get install redis-server/);
    } finally {
      if (saved === undefined) delete process.env.REDIS_SERVER_BIN;
      else process.env.REDIS_SERVER_BIN = saved;
    }
  });
});

/** A listener holding a port, as another process that took it between our choice and the bind would. */
async function squat(): Promise<Server> {
  const srv = createServer((sock) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  return srv;
}

function portOf(srv: Server): number {
  const addr = srv.address();
  if (!addr || typeof addr !== 'object') throw new Error('squatter has no port');
  return addr.port;
}

describe('port race at start-up (a port taken between choice and bind)', () => {
  const squatters: Server[] = [];
  afterEach(async () => {
    await Promise.all(squatters.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** First choice is a port another listener already holds; later choices are really free. */
  function racyPicker(): { pick: () => Promise<number>; chosen: number[] } {
    const chosen: number[] = [];
    return {
      chosen,
      pick: async () => {
        let port: number;
        if (chosen.length === 0) {
          const s = await squat();
          squatters.push(s);
          port = portOf(s);
        } else port = await freePort();
        chosen.push(port);
        return port;
      },
    };
  }

  it('redis-server retries on a fresh port and is reachable there, not at the squatted one', async () => {
    const { pick, chosen } = racyPicker();
    const srv = await startRedis({ persistence: false, pickPort: pick });
    try {
      expect(chosen.length).toBe(2);
      expect(srv.port).toBe(chosen[1]);
      expect(srv.port).not.toBe(chosen[0]);
      expect(existsSync(srv.dir), 'the retried server has its temp dir').toBe(true);
      const r = new Redis(srv.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
      await r.connect();
      expect(await r.ping()).toBe('PONG');
      r.disconnect();
    } finally {
      await srv.stop();
    }
    expect(existsSync(srv.dir)).toBe(false);
  });

  it('nats-server retries on a fresh port too', async () => {
    const { pick, chosen } = racyPicker();
    const srv = await startNats({ pickPort: pick });
    try {
      expect(chosen.length).toBe(2);
      expect(srv.port).toBe(chosen[1]);
      const nc = await connect({ servers: srv.url });
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
    } finally {
      await srv.stop();
    }
  });

  it(`gives up after ${PORT_ATTEMPTS} taken ports with the server's own reason, and never retries a fixed port`, async () => {
    let picks = 0;
    const taken = async () => {
      picks++;
      const s = await squat();
      squatters.push(s);
      return portOf(s);
    };
    const err = await startRedis({ persistence: false, pickPort: taken }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(new RegExp(`^redis-server exited with code \\d+ during start-up \\(port \\d+\\): .*Address already in use.* \\(attempt ${PORT_ATTEMPTS} of ${PORT_ATTEMPTS} on a fresh port\\)$`));
    expect(picks).toBe(PORT_ATTEMPTS);

    const fixed = await squat();
    squatters.push(fixed);
    let picked = false;
    const once = await startRedis({ persistence: false, port: portOf(fixed), pickPort: async () => ((picked = true), freePort()) }).catch((e: unknown) => e);
    expect((once as Error).message).toMatch(new RegExp(`\\(port ${portOf(fixed)}\\): .*Address already in use`));
    expect((once as Error).message).not.toMatch(/attempt/);
    expect(picked, 'a fixed port is the caller\'s choice: no other port is tried').toBe(false);
  });
});
