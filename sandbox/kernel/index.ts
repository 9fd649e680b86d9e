// The safety kernel: holds the effective policy (file policy + enabled config-service bundles),
// reloads it every config.policyReloadMs, and answers Check/Evaluate/Simulate/Explain/
// ListSnapshots over NATS request-reply (the sandbox's stand-in for Cordum's gRPC service).
import type { Msg, Subscription } from '@nats-io/nats-core';
import type { Component, SandboxDeps } from '../types.js';
import { evaluate, type CompiledPolicy } from './evaluate.js';
import { buildKernelPolicy, enabledFragments, readStoredBundles } from './load.js';
import { KERNEL_SUBJECTS, type KernelErrorReply, type ListSnapshotsResponse, type PolicyCheckRequest, type PolicyCheckResponse } from './wire.js';

const MAX_SNAPSHOTS = 10;
const KERNEL_QUEUE = 'cordum-safety-kernel';

/** Cordum disables config-service fragments when SAFETY_POLICY_CONFIG_DISABLE is set. */
const fragmentsDisabled = () => (process.env.SAFETY_POLICY_CONFIG_DISABLE ?? '') !== '';

export async function startSafetyKernel(deps: SandboxDeps): Promise<Component> {
  const { redis, nc, config, faults } = deps;
  const log = (msg: string) => deps.log('safety-kernel', msg);

  const load = async (): Promise<CompiledPolicy> => {
    const fragments = fragmentsDisabled() ? [] : enabledFragments(await readStoredBundles(redis));
    return buildKernelPolicy(config.policyFileYaml, fragments);
  };

  // A bad bundle at start-up is fatal, as in Cordum; later reload errors keep the last good policy.
  let policy = await load();
  const snapshots: string[] = [policy.snapshot];
  log(`policy loaded, snapshot ${policy.snapshot}`);

  let reloading = false;
  const reload = async () => {
    if (reloading) return;
    reloading = true;
    try {
      const next = await load();
      // Fault: the reload loop runs and sees the change, but the kernel never applies it, so its
      // snapshot never moves. Logged each tick, so a test can tell "stuck" from "never ticked".
      if (faults.has('policy-reload-stuck')) {
        if (next.snapshot !== policy.snapshot) log(`policy reload: snapshot ${next.snapshot} not applied (policy-reload-stuck)`);
        return;
      }
      if (next.snapshot !== policy.snapshot) {
        snapshots.unshift(next.snapshot);
        snapshots.splice(MAX_SNAPSHOTS);
        log(`policy reloaded, snapshot ${next.snapshot}`);
      }
      policy = next;
    } catch (err) {
      log(`policy reload failed: ${(err as Error).message}`);
    } finally {
      reloading = false;
    }
  };
  const timer = setInterval(() => void reload(), Math.max(10, config.policyReloadMs));
  timer.unref();

  const reply = (m: Msg, body: PolicyCheckResponse | ListSnapshotsResponse | KernelErrorReply) => {
    if (m.reply) m.respond(JSON.stringify(body));
  };

  const check = (explain: boolean) => (err: Error | null, m: Msg) => {
    if (err) return;
    let req: PolicyCheckRequest;
    try {
      req = m.data.length ? m.json<PolicyCheckRequest>() : {};
    } catch {
      return reply(m, { error: 'invalid request: not JSON' });
    }
    try {
      const { response, ruleIndex } = evaluate(policy, req ?? {});
      if (explain && faults.has('policy-explain-wrong-rule')) {
        // Fault: explain names another rule than the one that decided.
        const other = policy.rules.find((r, i) => i !== ruleIndex && (r.id ?? '') !== response.ruleId);
        response.ruleId = other?.id ?? `${response.ruleId || 'rule'}:explained`;
      }
      reply(m, response);
    } catch (e) {
      reply(m, { error: `evaluation failed: ${(e as Error).message}` });
    }
  };

  const subs: Subscription[] = [
    nc.subscribe(KERNEL_SUBJECTS.check, { queue: KERNEL_QUEUE, callback: check(false) }),
    nc.subscribe(KERNEL_SUBJECTS.evaluate, { queue: KERNEL_QUEUE, callback: check(false) }),
    nc.subscribe(KERNEL_SUBJECTS.simulate, { queue: KERNEL_QUEUE, callback: check(false) }),
    nc.subscribe(KERNEL_SUBJECTS.explain, { queue: KERNEL_QUEUE, callback: check(true) }),
    nc.subscribe(KERNEL_SUBJECTS.listSnapshots, {
      queue: KERNEL_QUEUE,
      callback: (err, m) => {
        if (!err) reply(m, { snapshots: [...snapshots] });
      },
    }),
  ];
  // Make sure the server knows the subscriptions before callers send requests.
  await nc.flush();

  return {
    name: 'safety-kernel',
    stop: async () => {
      clearInterval(timer);
      for (const s of subs) s.unsubscribe();
    },
  };
}
