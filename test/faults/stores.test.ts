// The runner when NATS or Redis misbehave under a run: NATS goes away mid-drill and comes back on
// the same port (the step recovers), or never comes back (bounded, exit 3); Redis refuses writes
// during teardown (exit 4 naming the cause; the next run removes the key).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { startFaultGateway, type FaultGateway } from './support/fault-gateway.js';
import { expectCalm, expectReport } from './support/checks.js';
import { Workspace, gatewayProfile } from './support/harness.js';

let gw: FaultGateway;
let ws: Workspace;
let nats: ManagedServer | undefined;
let redis: ManagedServer;
let admin: Redis;
const background: Promise<unknown>[] = [];

beforeAll(async () => {
  gw = await startFaultGateway();
  ws = new Workspace(() => gw.url);
  [nats, redis] = await Promise.all([startNats(), startRedis({ persistence: false })]);
  admin = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: 2 });
}, 30_000);

afterAll(async () => {
  gw.onProbe = undefined;
  await Promise.allSettled(background);
  admin?.disconnect();
  await Promise.allSettled([gw?.close(), nats?.stop(), redis?.stop()]);
  if (ws) rmSync(ws.dir, { recursive: true, force: true });
});

function natsProfile(port: number): string {
  return ws.profile(`nats-${port}`, gatewayProfile(`nats:\n  url: nats://127.0.0.1:${port}`));
}

describe('NATS and Redis faults', () => {
  it('NATS disconnects mid-drill and comes back on the same port: the step recovers, exit 0', async () => {
    const port = nats!.port;
    gw.onProbe = async (name) => {
      if (name !== 'nats-down') return;
      await nats!.stop();
      // Back a moment later, as after a pod restart; the step is already waiting on NATS.
      const back = startNats({ port }).then((n) => (nats = n));
      background.push(back);
    };
    const r = await ws.cli(['nats', '--target', natsProfile(port)]);
    gw.onProbe = undefined;
    expectCalm(ws, r, 0);
    expectReport(r, 'passed');
    expect(gw.objects.size).toBe(0);
  }, 240_000);

  it('NATS never comes back: the step gives up within its bound, exit 3 naming NATS, teardown still runs', async () => {
    await Promise.allSettled(background);
    const port = nats!.port;
    gw.onProbe = async (name) => {
      if (name === 'nats-down') await nats!.stop();
    };
    const r = await ws.cli(['nats', '--target', natsProfile(port)]);
    gw.onProbe = undefined;
    expectCalm(ws, r, 3);
    const s = expectReport(r, 'unreachable');
    expect(s.steps[2].error).toMatch(new RegExp(`NATS at nats://127.0.0.1:${port} did not come back within 8000 ms`));
    expect(s.steps.at(-1)).toMatchObject({ name: 'Teardown: remove what this run created', status: 'passed' });
    expect(gw.objects.size).toBe(0);
  }, 240_000);

  it('Redis refuses writes during teardown: exit 4 naming NOREPLICAS; once writes work the next run removes the key', async () => {
    const profile = ws.profile('redis', gatewayProfile(`redis:\n  url: redis://127.0.0.1:${redis.port}/0`));
    gw.onProbe = async (name) => {
      if (name === 'redis-writes') await admin.config('SET', 'min-replicas-to-write', '1');
    };
    const r = await ws.cli(['redis-key', '--target', profile]);
    gw.onProbe = undefined;
    await admin.config('SET', 'min-replicas-to-write', '0');
    expectCalm(ws, r, 4);
    const s = expectReport(r, 'teardown_failed');
    expect(s.teardown.left_behind[0].label).toMatch(/^key rb-\w+:fault-key \(DEL rb-\w+:fault-key\)$/);
    expect(s.teardown.left_behind[0].error).toMatch(/NOREPLICAS/);
    expect(await admin.keys('rb-*')).toHaveLength(1);

    const again = await ws.cli(['redis-key', '--target', profile]);
    expectCalm(ws, again, 0);
    expect(again.stdout).toMatch(/Leftovers of earlier run .*redis-key.*: 1 removed, 0 still there/);
    expect(await admin.keys('rb-*'), 'leftover keys in Redis').toEqual([]);
  }, 240_000);
});
