// Sandbox states: `fresh` is a new install (as recorded from a real one); `lived-in` carries the
// history a used installation has (sandbox/lived-in.ts). Checked through the gateway, Redis and
// JetStream as a runbook would see them.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSandboxState } from '../../sandbox/lived-in.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';

async function get(sb: Sandbox, path: string): Promise<any> {
  const res = await fetch(sb.profile.gateway.url + path, { headers: { 'x-api-key': sb.apiKey } });
  return res.json();
}

describe('sandbox states', () => {
  it('parses fresh (the default) and lived-in, and names the valid states otherwise', () => {
    expect(parseSandboxState(undefined)).toBe('fresh');
    expect(parseSandboxState('lived-in')).toBe('lived-in');
    expect(() => parseSandboxState('used')).toThrow("unknown sandbox state 'used' (expected one of: fresh, lived-in)");
  });

  describe('fresh', () => {
    let sb: Sandbox;
    beforeAll(async () => {
      sb = await startSandbox();
    });
    afterAll(() => sb?.stop());

    it('has no bundles, no workers, an empty DLQ and no jobs', async () => {
      expect(sb.state).toBe('fresh');
      expect(await get(sb, '/api/v1/policy/bundles')).toEqual({ bundles: {}, items: null, updated_at: '' });
      expect((await get(sb, '/api/v1/status')).workers).toEqual({ count: 0 });
      expect(await get(sb, '/api/v1/dlq?limit=500')).toEqual([]);
      expect((await get(sb, '/api/v1/jobs?limit=10')).items ?? []).toEqual([]);
    });
  });

  describe('lived-in', () => {
    let sb: Sandbox;
    let nc: NatsConnection;
    beforeAll(async () => {
      sb = await startSandbox({ state: 'lived-in' });
      nc = await connect({ servers: sb.natsUrl });
    }, 60_000);
    afterAll(async () => {
      await nc?.close();
      await sb?.stop();
    });

    it('has bundles, a few hundred earlier jobs, pending approvals and DLQ entries of several kinds', async () => {
      expect(sb.state).toBe('lived-in');
      expect(sb.profile.labels?.state).toBe('lived-in');
      const bundles = await get(sb, '/api/v1/policy/bundles');
      expect(Object.keys(bundles.bundles).length).toBeGreaterThanOrEqual(2);
      expect(sb.livedIn!.historicalJobs + sb.livedIn!.platformJobs).toBeGreaterThanOrEqual(250);
      expect((await get(sb, '/api/v1/approvals?limit=1000')).items.length).toBeGreaterThan(0);
      const dlq = (await get(sb, '/api/v1/dlq?limit=500')) as { reason_code: string; status: string }[];
      expect(new Set(dlq.map((e) => e.status)).size).toBeGreaterThan(1);
    });

    it('has streams with deleted messages and consumers with acked history', async () => {
      const jsm = await jetstreamManager(nc);
      for (const stream of ['CORDUM_SYS', 'CORDUM_JOBS']) expect((await jsm.streams.info(stream)).state.num_deleted, stream).toBeGreaterThan(0);
      const acked: number[] = [];
      for await (const ci of jsm.consumers.list('CORDUM_SYS')) acked.push(ci.ack_floor.stream_seq);
      expect(Math.max(...acked)).toBeGreaterThan(10);
    });
  });
});
