// Child process of the readiness benchmark: one object count per process, so each size is measured
// from the same start (a fresh heap holding only its own objects, as a `pnpm runbook readiness` run
// has), not after the garbage and heap growth of the sizes measured before it.
//   node --expose-gc --import tsx bench/child/readiness-audit.ts <size> <runs>
// Prints one JSON line: {"size", "ms": [...], "maxRssKb"}; ms covers runAudit only.
import { runAudit } from '../../helpers/readiness/audit.js';
import { loadManifestDir } from '../../helpers/readiness/manifests.js';
import type { AuditReport } from '../../helpers/readiness/model.js';
import { COMPLIANT_DIR, replicate } from '../readiness.js';

const NOW = new Date('2026-03-01T00:00:00Z');
const WARM_UP_RUNS = 20;

/** Checks whose status differs between the base set and its copies (copies must not interact). */
function verdictChanges(base: AuditReport, copies: AuditReport): string[] {
  const was = new Map(base.results.map((r) => [r.id, r.status]));
  return copies.results.filter((r) => was.get(r.id) !== r.status).map((r) => `${r.id}: ${was.get(r.id)} → ${r.status} (${r.message.slice(0, 200)})`);
}

async function main(): Promise<void> {
  const size = Number(process.argv[2]);
  const runs = Number(process.argv[3]);
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(runs) || runs < 1) throw new Error('usage: readiness-audit.ts <size> <runs>');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const m = loadManifestDir(COMPLIANT_DIR);
  if (m.errors.length) throw new Error(m.errors.join('\n'));
  // Warm-up, not counted, the same for every size: module loading and JIT on the base set (20
  // audits), then one audit at this size, whose verdicts must be the base set's (else the copies
  // are auditing each other, not themselves).
  const base = await runAudit({ mode: 'static', objects: m.objects, now: NOW });
  for (let i = 1; i < WARM_UP_RUNS; i++) await runAudit({ mode: 'static', objects: m.objects, now: NOW });
  const changes = verdictChanges(base, await runAudit({ mode: 'static', objects: replicate(m.objects, size), now: NOW }));
  if (changes.length) throw new Error(`${size} objects: copies change the audit's verdicts:\n${changes.join('\n')}`);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const objects = replicate(m.objects, size);
    // The previous run's report and copies are garbage now; collect them so this run pays for its own.
    gc();
    const t0 = performance.now();
    await runAudit({ mode: 'static', objects, now: NOW });
    ms.push(performance.now() - t0);
  }
  process.stdout.write(JSON.stringify({ size, ms, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`readiness-audit child: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
