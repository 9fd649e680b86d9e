// Fault switches: each names one deliberate regression the sandbox can exhibit so that runbooks
// can prove they detect it. Names are validated up front so a typo never silently runs a clean sandbox.
import { FAULTS, type FaultName, type Faults } from './types.js';

export function isFaultName(name: string): name is FaultName {
  return (FAULTS as readonly string[]).includes(name);
}

/** Accepts a list, or a comma/space separated string (as in SANDBOX_FAULTS). */
export function parseFaults(list: string | string[] | undefined): Faults {
  const raw = (Array.isArray(list) ? list : (list ?? '').split(/[\s,]+/)).map((s) => s.trim()).filter(Boolean);
  const unknown = raw.filter((n) => !isFaultName(n));
  if (unknown.length) {
    throw new Error(`unknown fault ${unknown.map((u) => `"${u}"`).join(', ')}; known faults: ${FAULTS.join(', ')}`);
  }
  const set = new Set(raw as FaultName[]);
  return {
    has: (name) => set.has(name),
    list: () => FAULTS.filter((f) => set.has(f)),
  };
}

/**
 * `scheduler-skips-kernel`: the scheduler dispatches jobs whose topic starts with this prefix
 * without asking the safety kernel (a "fast path" for trusted topics gone wrong): no decision is
 * recorded on the job and the kernel's policy never applies to them. The prefix covers the
 * sandbox's mapped topic `job.default`, so every job a runbook routes there bypasses policy.
 */
export const SKIPS_KERNEL_TOPIC_PREFIX = 'job.default';

export function skipsKernel(faults: Faults, topic: string): boolean {
  return faults.has('scheduler-skips-kernel') && topic.startsWith(SKIPS_KERNEL_TOPIC_PREFIX);
}
