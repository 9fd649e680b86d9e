// The readiness audit's vocabulary: a Check is one item of Cordum's production checklist, run in
// one of two modes against a CheckContext, producing a CheckResult with evidence and a fix.
import type { ObjectIndex } from './objects.js';
import type { LiveFacts } from './live.js';
import type { Location } from './source.js';

export type Mode = 'static' | 'live';
export type Severity = 'fail' | 'warn' | 'info';
export type Status = 'pass' | 'fail' | 'warn' | 'info' | 'waived' | 'not-checkable';

export const SECTIONS = [
  'persistence',
  'ha',
  'tls',
  'network-policies',
  'secrets',
  'observability',
  'limits',
  'backups',
  'upgrades',
  'enterprise',
  'functional',
  'kubernetes',
] as const;
export type Section = (typeof SECTIONS)[number];

export const SECTION_TITLES: Record<Section, string> = {
  persistence: 'Persistence and state',
  ha: 'High availability',
  tls: 'TLS',
  'network-policies': 'NetworkPolicies',
  secrets: 'Secrets',
  observability: 'Observability',
  limits: 'Limits and policy',
  backups: 'Backups and recovery',
  upgrades: 'Upgrades and releases',
  enterprise: 'Enterprise gating',
  functional: 'Functional tests',
  kubernetes: 'Kubernetes hardening',
};

/** Tunables a user may tighten or relax; defaults follow the checklist. */
export interface Thresholds {
  /** Minimum replicas of the CORDUM_* streams (checklist: 3). */
  minStreamReplicas: number;
  /** Certificates must be valid for at least this many more days. */
  certMarginDays: number;
  /** A restore drill must have passed within this many days (quarterly = 92). */
  restoreDrillMaxAgeDays: number;
  /** Extra hours a backup CronJob may be late beyond its schedule period. */
  backupGraceHours: number;
  /** Requests sent past the burst before the rate-limit probe gives up. */
  rateLimitExtraRequests: number;
  /** The functional runbooks (smoke, dlq-retry, policy, audit-trail) must have passed within this many days. */
  functionalMaxAgeDays: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  minStreamReplicas: 3,
  certMarginDays: 30,
  restoreDrillMaxAgeDays: 92,
  backupGraceHours: 6,
  rateLimitExtraRequests: 40,
  functionalMaxAgeDays: 7,
};

export interface CheckContext {
  mode: Mode;
  now: Date;
  namespace?: string;
  /** Manifests (static) or objects read from the Kubernetes API (live); absent when unreadable. */
  objects?: ObjectIndex;
  /** Why `objects` is absent (live mode: the API could not be read). */
  objectsUnavailable?: string;
  /** Live probe results; absent in static mode. */
  live?: LiveFacts;
  thresholds: Thresholds;
  /** Problems met while loading manifests (render errors, unparsable files). */
  loadErrors: string[];
  /** How the manifests were read (e.g. that a relaxed kustomize render was audited). */
  loadNotes: string[];
}

/** One defect a check found, with the line that shows it (a check may find several). */
export interface Finding {
  status: 'fail' | 'warn' | 'info';
  message: string;
  location?: Location;
}

export interface CheckResult {
  status: Status;
  message: string;
  evidence: unknown;
  remediation: string;
  /** Each gap on its own, with its evidence line; the status is the worst of them. */
  findings?: Finding[];
  /** What the result is about (objects, files and lines); filled in by the audit when a check names none. */
  locations?: Location[];
}

export interface Check {
  id: string;
  section: Section;
  title: string;
  /** What this check reports when its condition is not met (a check may downgrade to warn). */
  severity: Severity;
  modes: Mode[];
  /** Which checklist item(s) it implements, e.g. "1.1". */
  item: string;
  remediation: string;
  run(ctx: CheckContext): CheckResult | Promise<CheckResult>;
}

export interface CheckOutcome extends CheckResult {
  id: string;
  section: Section;
  title: string;
  severity: Severity;
  item: string;
  waiver?: { reason: string; owner: string; ticket: string; expires: string };
}

export interface SectionSummary {
  section: Section;
  title: string;
  /** pass / (pass + fail + warn), in percent; null when nothing was judged. */
  score: number | null;
  counts: Record<Status, number>;
  results: CheckOutcome[];
}

export interface AuditReport {
  mode: Mode;
  namespace?: string;
  generatedAt: string;
  results: CheckOutcome[];
  sections: SectionSummary[];
  loadErrors: string[];
  loadNotes?: string[];
  /** Static mode: the file the manifests were read from (the fallback location of a result). */
  entry?: string;
  /** True when any fail remains after waivers: the CLI exits 1. */
  failed: boolean;
  exitCode: 0 | 1;
}

// Small constructors keep the checks terse and their results uniform.
export const pass = (message: string, evidence: unknown = null): Omit<CheckResult, 'remediation'> => ({ status: 'pass', message, evidence });
export const fail = (message: string, evidence: unknown = null): Omit<CheckResult, 'remediation'> => ({ status: 'fail', message, evidence });
export const warn = (message: string, evidence: unknown = null): Omit<CheckResult, 'remediation'> => ({ status: 'warn', message, evidence });
export const info = (message: string, evidence: unknown = null): Omit<CheckResult, 'remediation'> => ({ status: 'info', message, evidence });
export const notCheckable = (message: string, evidence: unknown = null): Omit<CheckResult, 'remediation'> => ({ status: 'not-checkable', message, evidence });

export type PartialResult = Omit<CheckResult, 'remediation'> & { remediation?: string };

/**
 * A result from findings: fail if any finding fails, else warn if any warns, else `ok`. The message
 * lists them, each once.
 */
export function fromFindings(findings: Finding[], okMessage: string, evidence: unknown = null): PartialResult {
  const worst = findings.some((f) => f.status === 'fail') ? 'fail' : findings.some((f) => f.status === 'warn') ? 'warn' : undefined;
  if (!worst) return { status: 'pass', message: okMessage, evidence, findings: findings.length ? findings : undefined };
  const shown = findings.filter((f) => f.status !== 'info');
  return { status: worst, message: shown.map((f) => f.message).join('; '), evidence, findings };
}

/** Define a check whose run returns a result without the (default) remediation. */
export function defineCheck(def: Omit<Check, 'run'> & { run(ctx: CheckContext): PartialResult | Promise<PartialResult> }): Check {
  return {
    ...def,
    async run(ctx) {
      const r = await def.run(ctx);
      return { ...r, remediation: r.remediation ?? def.remediation };
    },
  };
}
