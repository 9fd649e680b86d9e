// runAudit: runs every check in one mode, applies waivers, scores each section. Checks that do not
// support the mode report "not-checkable" (never "pass"); a check that throws reports "fail" with
// the error, so one broken reader cannot hide the rest of the audit.
import { ALL_CHECKS } from './checks/index.js';
import { gatewayRateLimit } from './checks/limits.js';
import { collectLive, type CollectOptions, type LiveFacts } from './live.js';
import { DEFAULT_THRESHOLDS, SECTIONS, SECTION_TITLES, type AuditReport, type Check, type CheckContext, type CheckOutcome, type CheckResult, type Mode, type SectionSummary, type Status, type Thresholds } from './model.js';
import { locate, type Location } from './source.js';
import { ObjectIndex, type KubeObject } from './objects.js';
import { waiverApplies, waiverExpiry, type Waiver } from './waivers.js';
import { errorMessage } from '../errors.js';

export interface RunAuditOptions {
  mode: Mode;
  /** Static: the manifests. Live: pre-read objects (otherwise `live.kube` is used to list them). */
  objects?: KubeObject[];
  /** Live: probe results already collected, or options to collect them now. */
  live?: LiveFacts | CollectOptions;
  waivers?: Waiver[];
  now?: Date;
  namespace?: string;
  /** Target profile name, for waiver scopes and the drill history. */
  target?: string;
  thresholds?: Partial<Thresholds>;
  loadErrors?: string[];
  /** How the manifests were read (a relaxed render, files skipped as patches). */
  loadNotes?: string[];
  /** Static mode: where the manifests came from; results about no object in particular point here. */
  entry?: string;
  checks?: Check[];
}

const isFacts = (x: LiveFacts | CollectOptions): x is LiveFacts => !('profile' in x) && !('kube' in x) && !('gatewayUrl' in x) && !('redisUrl' in x) && !('natsUrl' in x) && !('historyFile' in x);

export async function runAudit(opts: RunAuditOptions): Promise<AuditReport> {
  const now = opts.now ?? new Date();
  const checks = opts.checks ?? ALL_CHECKS;
  let objects = opts.objects;
  let objectsUnavailable: string | undefined;
  let live: LiveFacts | undefined;
  let namespace = opts.namespace;
  if (opts.mode === 'live') {
    if (opts.live && !isFacts(opts.live)) {
      const c = await collectLive(opts.live, (objs) => {
        const l = gatewayRateLimit(new ObjectIndex(objs));
        return { burst: l.effectiveBurst, rps: l.effectiveRps, replicas: l.replicas };
      });
      live = c.facts;
      objects ??= c.objects;
      objectsUnavailable = c.objectsUnavailable;
      namespace ??= c.namespace;
    } else live = (opts.live as LiveFacts | undefined) ?? {};
    if (!objects && !objectsUnavailable) objectsUnavailable = 'no Kubernetes objects were read';
  }
  namespace ??= objects?.find((o) => o.metadata?.namespace)?.metadata.namespace;
  const ctx: CheckContext = {
    mode: opts.mode,
    now,
    namespace,
    objects: objects ? new ObjectIndex(objects) : undefined,
    objectsUnavailable,
    live: live ? { ...live, targetName: live.targetName ?? opts.target } : undefined,
    thresholds: { ...DEFAULT_THRESHOLDS, ...opts.thresholds },
    loadErrors: opts.loadErrors ?? [],
    loadNotes: opts.loadNotes ?? [],
  };

  const results: CheckOutcome[] = [];
  for (const check of checks) {
    const base = { id: check.id, section: check.section, title: check.title, severity: check.severity, item: check.item };
    if (!check.modes.includes(opts.mode)) {
      const r: CheckResult = { status: 'not-checkable', message: `not checkable in ${opts.mode} mode (needs ${check.modes.join(' or ')})`, evidence: null, remediation: check.remediation };
      results.push({ ...base, ...r, locations: locationsOf(r, undefined, opts.entry) });
      continue;
    }
    let r;
    try {
      r = await check.run(ctx);
    } catch (err) {
      r = { status: 'fail' as Status, message: `check crashed: ${errorMessage(err)}`, evidence: null, remediation: check.remediation };
    }
    results.push(applyWaivers({ ...base, ...r, locations: locationsOf(r, ctx.objects, opts.entry) }, opts.waivers ?? [], { namespace, target: opts.target }, now));
  }
  return { ...summarize(opts.mode, namespace, now, results, ctx.loadErrors), loadNotes: ctx.loadNotes, ...(opts.entry ? { entry: opts.entry } : {}) };
}

/**
 * Where a result points: what the check said, else the objects its message names (`Kind/name`),
 * else (static) the manifests' entry file. Every static result thus has a file and a line.
 */
function locationsOf(r: CheckResult, idx: ObjectIndex | undefined, entry: string | undefined): Location[] {
  if (r.locations?.length) return r.locations;
  const fromFindings = (r.findings ?? []).map((f) => f.location).filter((l): l is Location => !!l);
  if (fromFindings.length) return fromFindings;
  const named: Location[] = [];
  if (idx) {
    const seen = new Set<string>();
    for (const m of r.message.matchAll(/\b([A-Z][A-Za-z]+)\/([a-z0-9][a-z0-9.-]*)/g)) {
      const o = idx.get(m[1], m[2]);
      const k = `${m[1]}/${m[2]}`;
      if (o && !seen.has(k)) {
        seen.add(k);
        named.push(locate(o));
      }
    }
  }
  const placed = named.filter((l) => l.uri);
  if (placed.length) return placed;
  if (entry) return [{ uri: entry, line: 1 }];
  return named;
}

function applyWaivers(o: CheckOutcome, waivers: Waiver[], scope: { namespace?: string; target?: string }, now: Date): CheckOutcome {
  if (o.status !== 'fail' && o.status !== 'warn') return o;
  const w = waivers.find((x) => waiverApplies(x, o.id, scope));
  if (!w) return o;
  const waiver = { reason: w.reason, owner: w.owner, ticket: w.ticket, expires: w.expires };
  if (waiverExpiry(w) < now.getTime()) {
    return { ...o, status: 'fail', message: `waiver expired on ${w.expires} (${w.ticket}, ${w.owner}); underlying ${o.status}: ${o.message}`, waiver };
  }
  return { ...o, status: 'waived', message: `waived until ${w.expires}: ${w.reason} (owner ${w.owner}, ${w.ticket}); underlying ${o.status}: ${o.message}`, waiver };
}

export function summarize(mode: Mode, namespace: string | undefined, now: Date, results: CheckOutcome[], loadErrors: string[]): AuditReport {
  const sections: SectionSummary[] = SECTIONS.map((s) => {
    const rs = results.filter((r) => r.section === s);
    const counts = { pass: 0, fail: 0, warn: 0, info: 0, waived: 0, 'not-checkable': 0 } as Record<Status, number>;
    for (const r of rs) counts[r.status]++;
    const judged = counts.pass + counts.fail + counts.warn + counts.waived;
    return { section: s, title: SECTION_TITLES[s], score: judged ? Math.round((counts.pass / judged) * 100) : null, counts, results: rs };
  });
  const failed = results.some((r) => r.status === 'fail');
  return { mode, namespace, generatedAt: now.toISOString(), results, sections, loadErrors, failed, exitCode: failed ? 1 : 0 };
}
