// Start-up and shutdown hygiene: profile shape, key handling, and no leftover child process or temp dir.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { SANDBOX_API_KEY_ENV, startSandbox as start, type Sandbox } from '../../sandbox/index.js';

// Every sandbox is stopped at the end even when an assertion fails midway (stop is idempotent).
const started: Sandbox[] = [];
const startSandbox = async (...args: Parameters<typeof start>) => {
  const sb = await start(...args);
  started.push(sb);
  return sb;
};
afterAll(async () => {
  for (const sb of started.reverse()) await sb.stop();
});

/** Direct children of this process: pid + argv. */
function children(): { pid: number; args: string }[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).trim();
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\s*(\d+)\s+(.*)$/.exec(l)!;
      return { pid: Number(m[1]), args: m[2] };
    })
    .filter((c) => /redis-server|nats-server/.test(c.args));
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('sandbox lifecycle', () => {
  it('builds the documented profile and stops without leaving processes or temp dirs', async () => {
    const before = new Set(children().map((c) => c.pid));
    const sb = await startSandbox({ faults: 'metrics-missing', policyReloadMs: 1000 });
    const mine = children().filter((c) => !before.has(c.pid));
    expect(mine.map((c) => (c.args.includes('redis-server') ? 'redis' : 'nats')).sort()).toEqual(['nats', 'redis']);
    // Temp dirs: redis reports its own (it rewrites its process title); nats has -sd <dir>/js.
    const r = new Redis(sb.redisUrl);
    const [, redisDir] = (await r.config('GET', 'dir')) as string[];
    r.disconnect();
    const natsStore = mine.map((c) => / -sd (\S+)/.exec(c.args)?.[1]).find(Boolean)!;
    const dirs = [redisDir, natsStore.replace(/\/js$/, '')];
    for (const d of dirs) expect(existsSync(d)).toBe(true);

    const p = sb.profile;
    expect(p).toMatchObject({
      name: 'sandbox',
      source: 'sandbox',
      gateway: { api_key_env: 'CORDUM_SANDBOX_API_KEY', principal: { id: 'runbook-operator', role: 'admin' }, connect_timeout_ms: 3000, request_timeout_ms: 10000 },
      nats: { url: sb.natsUrl },
      redis: { url: sb.redisUrl },
      routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
      policy: { reload_interval_ms: 1000, case_files: [] },
      destructive: { allowed: true },
      labels: { faults: 'metrics-missing' },
    });
    expect(p.gateway.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(p.metrics?.gateway).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(p.metrics?.scheduler).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
    expect(p.workflow_engine?.health_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
    expect(JSON.stringify(p)).not.toContain(sb.apiKey);
    expect(process.env[SANDBOX_API_KEY_ENV]).toBe(sb.apiKey);
    const res = await request(`${p.gateway.url}/api/v1/status`, { headers: { 'X-API-Key': process.env[SANDBOX_API_KEY_ENV]! } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();

    await sb.stop();
    await sb.stop(); // idempotent
    for (const c of mine) expect(alive(c.pid), c.args).toBe(false);
    for (const d of dirs) expect(existsSync(d), d).toBe(false);
    expect(process.env[SANDBOX_API_KEY_ENV]).toBeUndefined();
  });

  it('rejects unknown faults before starting anything', async () => {
    const before = children().length;
    await expect(startSandbox({ faults: ['no-such-fault' as never] })).rejects.toThrow(/unknown fault "no-such-fault"/);
    expect(children().length).toBe(before);
  });

  it('uses given URLs instead of spawning servers, and a given key', async () => {
    const a = await startSandbox();
    const before = children().length;
    const b = await startSandbox({ redisUrl: a.redisUrl, natsUrl: a.natsUrl, apiKey: 'fixed-key' });
    expect(children().length).toBe(before);
    expect(b.apiKey).toBe('fixed-key');
    const res = await request(`${b.profile.gateway.url}/api/v1/status`, { headers: { 'X-API-Key': 'fixed-key' } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    await b.stop();
    await a.stop();
    expect(children()).toEqual([]);
  });
});
