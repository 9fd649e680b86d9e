import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { MissingBinaryError, startNats, startRedis } from '../../helpers/processes.js';

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
