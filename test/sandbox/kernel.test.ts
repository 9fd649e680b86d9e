// The safety kernel on real Redis + NATS: evaluation order, legacy rules, bundles, snapshots,
// reload, protojson shape, and the two kernel faults.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, type ManagedServer } from '../../helpers/processes.js';
import { startSafetyKernel } from '../../sandbox/kernel/index.js';
import { createKernelClient } from '../../sandbox/kernel/client.js';
import { globMatch } from '../../sandbox/kernel/evaluate.js';
import type { FaultName, SandboxConfig, SandboxDeps } from '../../sandbox/types.js';
import { pollUntil as until } from './sandbox-client.js';

const STOCK_POLICY = readFileSync(fileURLToPath(new URL('../../sandbox/config/safety.yaml', import.meta.url)), 'utf8');

let redisSrv: ManagedServer;
let natsSrv: ManagedServer;
let redis: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  [redisSrv, natsSrv] = await Promise.all([startRedis({ persistence: false }), startNats()]);
  redis = new Redis(redisSrv.url);
  nc = await connect({ servers: natsSrv.url });
});
afterAll(async () => {
  await nc?.close();
  redis?.disconnect();
  await Promise.all([redisSrv?.stop(), natsSrv?.stop()]);
});

/** What the kernels of this file logged, newest last: the reload loop's ticks show up here. */
const logged: string[] = [];

/** Wait for `n` more kernel log lines matching `re` than there are now (each one a reload tick). */
function ticks(re: RegExp, n: number) {
  const from = logged.filter((l) => re.test(l)).length;
  const count = async () => logged.filter((l) => re.test(l)).length;
  return until(`${n} reload ticks logging ${re}`, count, (c) => c >= from + n);
}

function deps(opts: { faults?: FaultName[]; reloadMs?: number; policy?: string } = {}): SandboxDeps {
  const faults = opts.faults ?? [];
  return {
    redis,
    nc,
    bus: undefined as never, // the kernel makes no bus calls
    config: { tenant: 'default', policyReloadMs: opts.reloadMs ?? 50, policyFileYaml: opts.policy ?? STOCK_POLICY } as SandboxConfig,
    faults: { has: (f) => faults.includes(f), list: () => faults },
    log: (_component, msg) => void logged.push(msg),
  };
}

async function putBundles(bundles: Record<string, unknown>) {
  await redis.set('cfg:system:policy', JSON.stringify({ scope: 'system', scope_id: 'policy', data: { bundles }, revision: 1, updated_at: new Date().toISOString() }));
}

const client = () => createKernelClient(nc, { timeoutMs: 2000 });

describe('glob matching (Go path.Match)', () => {
  it('matches like path.Match', () => {
    expect(globMatch('job.*', 'job.a.b')).toBe(true);
    expect(globMatch('job.*', 'job/x')).toBe(false);
    expect(globMatch('job.?', 'job.a')).toBe(true);
    expect(globMatch('job.[ab]x', 'job.bx')).toBe(true);
    expect(globMatch('job.[^ab]x', 'job.bx')).toBe(false);
    expect(globMatch('job.default', 'job.defaultx')).toBe(false);
  });
});

describe('safety kernel', () => {
  it('stock policy: legacy allow rule, unsupported topic, protojson shape', async () => {
    await redis.del('cfg:system:policy');
    const k = await startSafetyKernel(deps());
    try {
      const res = await client().evaluate({ topic: 'job.default', job_id: 'j1' });
      expect(res).toEqual({
        decision: 'DECISION_TYPE_ALLOW',
        reason: '',
        redactedContextPtr: '',
        policySnapshot: expect.stringMatching(/^[0-9a-f]{64}$/),
        ruleId: 'legacy:default:allow:1',
        constraints: null,
        approvalRequired: false,
        approvalRef: '',
        remediations: [],
      });
      const sys = await client().evaluate({ topic: 'sys.x' });
      expect(sys.decision).toBe('DECISION_TYPE_DENY');
      expect(sys.reason).toBe('unsupported topic');
      // Another tenant has no legacy rule: no match means allow with an empty rule id.
      const other = await client().check({ topic: 'job.default', tenant: 'acme' });
      expect(other).toMatchObject({ decision: 'DECISION_TYPE_ALLOW', ruleId: '' });
      const snaps = await client().listSnapshots();
      expect(snaps.snapshots).toEqual([res.policySnapshot]);
    } finally {
      await k.stop();
    }
  });

  it('legacy deny rules come before allow rules; versioned snapshot', async () => {
    await redis.del('cfg:system:policy');
    const policy = 'version: "7"\ntenants:\n  default:\n    allow_topics: ["job.*"]\n    deny_topics: ["job.secret.*", "job.x"]\n';
    const k = await startSafetyKernel(deps({ policy }));
    try {
      const r = await client().evaluate({ topic: 'job.x' });
      expect(r).toMatchObject({ decision: 'DECISION_TYPE_DENY', ruleId: 'legacy:default:deny:2' });
      expect(r.policySnapshot).toMatch(/^7:[0-9a-f]{64}$/);
    } finally {
      await k.stop();
    }
  });

  it('bundles: enabled merge, first match wins, aliases, constraints, approval, labels; legacy rules switch off', async () => {
    await putBundles({
      'secops/a': {
        content: [
          'rules:',
          '  - id: approve-ops',
          '    match: { topics: ["job.ops.*"], risk_tags: ["prod"] }',
          '    decision: require-approval',
          '    reason: needs a human',
          '  - id: block-ops',
          '    match: { topics: ["job.ops.*"] }',
          '    decision: block',
          '    reason: ops blocked',
          '    remediations: [{ id: r1, title: use safe, replacement_topic: job.safe }]',
          '  - id: limited',
          '    match: { topics: ["job.lim"], labels: { team: red } }',
          '    decision: allow',
          '    constraints: { budgets: { max_runtime_ms: 5000, max_retries: 2 }, redaction_level: high }',
        ].join('\n'),
      },
      'secops/b-disabled': { content: 'rules:\n  - id: never\n    match: { topics: ["job.*"] }\n    decision: deny\n', enabled: false },
    });
    const k = await startSafetyKernel(deps());
    try {
      const c = client();
      const appr = await c.evaluate({ topic: 'job.ops.restart', job_id: 'job-9', meta: { risk_tags: ['prod'] } });
      expect(appr).toMatchObject({ decision: 'DECISION_TYPE_REQUIRE_HUMAN', ruleId: 'approve-ops', approvalRequired: true, approvalRef: 'job-9', reason: 'needs a human' });
      const deny = await c.evaluate({ topic: 'job.ops.restart' });
      expect(deny).toMatchObject({ decision: 'DECISION_TYPE_DENY', ruleId: 'block-ops' });
      expect(deny.remediations).toEqual([{ id: 'r1', title: 'use safe', summary: '', replacementTopic: 'job.safe', replacementCapability: '', addLabels: {}, removeLabels: [] }]);
      const lim = await c.evaluate({ topic: 'job.lim', labels: { team: 'red' } });
      expect(lim.decision).toBe('DECISION_TYPE_ALLOW_WITH_CONSTRAINTS');
      expect(lim.constraints?.budgets).toEqual({ maxRuntimeMs: '5000', maxRetries: 2, maxArtifactBytes: '0', maxConcurrentJobs: 0 });
      expect(lim.constraints?.redactionLevel).toBe('high');
      expect(lim.constraints?.sandbox).toEqual({ isolated: false, networkAllowlist: [], fsReadOnly: [], fsReadWrite: [] });
      // Label mismatch: no rule; legacy tenant rules no longer apply once bundles add rules.
      const none = await c.evaluate({ topic: 'job.lim', labels: { team: 'blue' } });
      expect(none).toMatchObject({ decision: 'DECISION_TYPE_ALLOW', ruleId: '' });
      const snap = (await c.listSnapshots()).snapshots[0]!;
      expect(snap).toMatch(/^[0-9a-f]{64}\|cfg:[0-9a-f]{64}$/);
    } finally {
      await k.stop();
      await redis.del('cfg:system:policy');
    }
  });

  it('effective config forces DENY', async () => {
    const k = await startSafetyKernel(deps());
    try {
      const r = await client().check({ topic: 'job.default', effective_config: { safety: { denied_topics: ['job.default'] } } });
      expect(r).toMatchObject({ decision: 'DECISION_TYPE_DENY', reason: "topic 'job.default' denied by effective config" });
      const r2 = await client().check({ topic: 'job.other', effective_config: { safety: { allowed_topics: ['job.default'] } } });
      expect(r2).toMatchObject({ decision: 'DECISION_TYPE_DENY', reason: "topic 'job.other' not allowed by effective config" });
    } finally {
      await k.stop();
    }
  });

  it('reload picks up bundle changes and prepends the new snapshot; bad bundles keep the last good policy', async () => {
    await redis.del('cfg:system:policy');
    const k = await startSafetyKernel(deps({ reloadMs: 30 }));
    try {
      const c = client();
      const first = (await c.listSnapshots()).snapshots[0]!;
      await putBundles({ 'secops/deny': { content: 'rules:\n  - id: d\n    match: { topics: ["job.default"] }\n    decision: deny\n' } });
      const snaps = await until('snapshot change', () => c.listSnapshots(), (s) => s.snapshots.length === 2);
      expect(snaps.snapshots[1]).toBe(first);
      expect(snaps.snapshots[0]).toBe(`${first}|${snaps.snapshots[0]!.split('|')[1]}`);
      expect((await c.evaluate({ topic: 'job.default' })).ruleId).toBe('d');
      // Three reload ticks that each read the bad bundle and fail must not change anything.
      const failed = ticks(/^policy reload failed: /, 3);
      await putBundles({ 'secops/deny': { content: 'rules: [ {' } });
      await failed;
      expect((await c.listSnapshots()).snapshots).toEqual(snaps.snapshots);
      expect((await c.evaluate({ topic: 'job.default' })).ruleId).toBe('d');
    } finally {
      await k.stop();
      await redis.del('cfg:system:policy');
    }
  });

  it('fault policy-reload-stuck: bundle changes never reach the kernel', async () => {
    await redis.del('cfg:system:policy');
    const k = await startSafetyKernel(deps({ reloadMs: 20, faults: ['policy-reload-stuck'] }));
    try {
      const c = client();
      const before = await c.listSnapshots();
      // The loop must tick and see the change (three times), yet never apply it.
      const seen = ticks(/^policy reload: snapshot \S+ not applied \(policy-reload-stuck\)$/, 3);
      await putBundles({ 'secops/deny': { content: 'rules:\n  - id: d\n    match: { topics: ["job.default"] }\n    decision: deny\n' } });
      await seen;
      expect(await c.listSnapshots()).toEqual(before);
      expect((await c.evaluate({ topic: 'job.default' })).decision).toBe('DECISION_TYPE_ALLOW');
    } finally {
      await k.stop();
      await redis.del('cfg:system:policy');
    }
  });

  it('fault policy-explain-wrong-rule: explain names another rule than evaluate', async () => {
    const policy = 'tenants:\n  default:\n    allow_topics: ["job.*"]\n    deny_topics: ["sys.*"]\n';
    for (const faults of [[], ['policy-explain-wrong-rule']] as FaultName[][]) {
      const k = await startSafetyKernel(deps({ policy, faults }));
      try {
        const ev = await client().evaluate({ topic: 'job.default' });
        const ex = await client().explain({ topic: 'job.default' });
        expect(ev.ruleId).toBe('legacy:default:allow:1');
        if (faults.length) expect(ex.ruleId).not.toBe(ev.ruleId);
        else expect(ex).toEqual(ev);
      } finally {
        await k.stop();
      }
    }
  });

  it('client errors when no kernel is listening', async () => {
    await expect(createKernelClient(nc, { timeoutMs: 300 }).evaluate({ topic: 'job.default' })).rejects.toThrow(/rpc error/);
  });
});
