import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, UnreachableError } from '../../helpers/errors.js';
import { redact } from '../../helpers/evidence.js';
import type { TargetProfile } from '../../helpers/profile-types.js';
import { connectRedis } from '../../helpers/redis.js';
import { freePort, startRedis, type ManagedServer } from '../../helpers/processes.js';

let redis: ManagedServer;

function profile(url: string, extra: Partial<NonNullable<TargetProfile['redis']>> = {}): TargetProfile {
  return {
    name: 'redis-test',
    source: 'redis-test.yaml',
    gateway: { url: 'http://127.0.0.1:1', connect_timeout_ms: 2000, request_timeout_ms: 2000 },
    redis: { url, ...extra },
    routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
    policy: { reload_interval_ms: 30000, case_files: [] },
    destructive: { allowed: false },
  };
}

beforeAll(async () => {
  redis = await startRedis({ persistence: false, extraArgs: ['--requirepass', 'redis-pw-xyz'] });
});
afterAll(async () => {
  await redis?.stop();
});

describe('connectRedis', () => {
  it('connects with the password from password_env and registers it for redaction', async () => {
    const r = await connectRedis(profile(`${redis.url}/2`, { password_env: 'RB_REDIS_PW' }), { env: { RB_REDIS_PW: 'redis-pw-xyz' } });
    await r.set('k', 'v');
    expect(await r.get('k')).toBe('v');
    expect(r.options.db).toBe(2);
    expect(redact('pw=redis-pw-xyz')).toBe('pw=***');
    await r.quit();
  });

  it('wrong credentials and a missing env var are reported clearly', async () => {
    await expect(connectRedis(profile(redis.url, { password_env: 'P' }), { env: { P: 'wrong-pw' } })).rejects.toThrow(/refused the credentials/);
    await expect(connectRedis(profile(redis.url, { password_env: 'P' }), { env: {} })).rejects.toThrow(ConfigError);
  });

  it('an unreachable Redis is an UnreachableError naming the URL', async () => {
    const port = await freePort();
    const err = await connectRedis(profile(`redis://127.0.0.1:${port}`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`^Redis unreachable at redis://127\\.0\\.0\\.1:${port}/0: .*ECONNREFUSED.*\\(connect timeout 2000 ms\\)$`));
  });
});
