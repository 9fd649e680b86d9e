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
