// Prometheus text exposition parsing, enough for runbooks to ask "is this family exported?" and
// "did this counter move?". Fetching is done elsewhere (GatewayClient.scrapeMetrics); this module
// only reads the text, so it works for any endpoint (gateway, scheduler, anything Prometheus-shaped).

export interface Sample {
  /** Full sample name, e.g. `foo_total`, `foo_bucket`, `foo_sum`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricsPage {
  samples: Sample[];
  /** Family name -> TYPE from `# TYPE` lines (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', '_info'];

/** Parse a Prometheus text page. Malformed lines are ignored (counted in `skipped`). */
export function parseMetrics(text: string): MetricsPage & { skipped: number } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  let skipped = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) {
      skipped++;
      continue;
    }
    const value = parseValue(m[4]!);
    if (Number.isNaN(value) && m[4] !== 'NaN') {
      skipped++;
      continue;
    }
    samples.push({ name: m[1]!, labels: m[3] ? parseLabels(m[3]) : {}, value });
  }
  return { samples, types, skipped };
}

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

/** `a="x",b="y \"q\""` -> {a: 'x', b: 'y "q"'} (handles escaped quotes, backslashes, newlines). */
function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** The family a sample belongs to: its name, or the name without a histogram/summary/counter suffix. */
function familiesOf(sampleName: string): string[] {
  const names = [sampleName];
  for (const s of SUFFIXES) if (sampleName.endsWith(s)) names.push(sampleName.slice(0, -s.length));
  return names;
}

/**
 * Is the family exported? True when a `# TYPE` line names it or any sample belongs to it.
 * Note: Go's client_golang drops labelled families that have no series yet, so a family can be
 * legitimately absent until the first event it counts.
 */
export function hasFamily(page: MetricsPage, family: string): boolean {
  if (page.types.has(family)) return true;
  const bare = familiesOf(family);
  return page.samples.some((s) => familiesOf(s.name).some((f) => bare.includes(f)));
}

/** Which of `families` the page does not export. */
export function missingFamilies(page: MetricsPage, families: string[]): string[] {
  return families.filter((f) => !hasFamily(page, f));
}

/** Samples with exactly this name whose labels include every given label. */
export function findSamples(page: MetricsPage, name: string, labels: Record<string, string> = {}): Sample[] {
  return page.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** Sum of the matching samples (0 when there are none: a counter that has not been touched yet). */
export function sumSamples(page: MetricsPage, name: string, labels: Record<string, string> = {}): number {
  return findSamples(page, name, labels).reduce((a, s) => a + s.value, 0);
}
