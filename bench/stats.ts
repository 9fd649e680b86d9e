// Pure helpers of the benchmark: medians, formatting, one line per figure, goal verdicts.
// Nothing here measures anything (test/bench/bench-quick.test.ts covers it without timings).

export type Unit = 'ms' | 'ms/object' | 'keys/s' | 'msg/s' | 'req/s' | 'MB/s' | 'MB' | 'µs/key' | 'x';

/** One measured quantity, with every sample kept (the report shows median, min and max). */
export interface Figure {
  /** Benchmark id (smoke, dlq, redis, jetstream, readiness). */
  bench: string;
  name: string;
  unit: Unit;
  values: number[];
  /** Peak resident set size of the measured process per run, in bytes (when it was measured). */
  rssBytes?: number[];
  note?: string;
}

export interface Goal {
  text: string;
  /** null: could not be judged (figure missing, benchmark failed). */
  met: boolean | null;
  detail: string;
}

export interface BenchResult {
  name: string;
  title: string;
  /** How it was measured: a few sentences for the report. */
  method: string[];
  figures: Figure[];
  goals: Goal[];
  notes: string[];
  error?: string;
  durationMs: number;
}

export interface Stat {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function stat(values: number[]): Stat {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN };
  return { n: finite.length, median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

/** Number with sensible precision for its size: 12345 → "12,345", 12.34 → "12.3", 0.0123 → "0.0123". */
export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(3);
}

export function fmtValue(v: number, unit: Unit): string {
  return `${fmtNum(v)} ${unit}`;
}

export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a';
  return `${fmtNum(bytes / (1024 * 1024))} MB`;
}

export function fmtRss(rss: number[] | undefined): string {
  if (!rss || rss.length === 0) return '';
  const s = stat(rss);
  return s.n > 1 ? `${fmtBytes(s.median)} (max ${fmtBytes(s.max)})` : fmtBytes(s.median);
}

/** The one line a benchmark prints per figure. */
export function figureLine(f: Figure): string {
  const s = stat(f.values);
  const range = s.n > 1 ? ` (min ${fmtNum(s.min)}, max ${fmtNum(s.max)}, n=${s.n})` : ` (n=${s.n})`;
  const rss = f.rssBytes?.length ? `, peak RSS ${fmtRss(f.rssBytes)}` : '';
  return `${f.bench.padEnd(10)} ${f.name}: median ${fmtValue(s.median, f.unit)}${range}${rss}${f.note ? ` [${f.note}]` : ''}`;
}

export function goalLine(bench: string, g: Goal): string {
  const mark = g.met === null ? 'NOT JUDGED' : g.met ? 'met' : 'NOT MET';
  return `${bench.padEnd(10)} goal "${g.text}": ${mark} (${g.detail})`;
}

/** Median of the figure with this name, NaN when absent. */
export function medianOf(figures: Figure[], name: string): number {
  const f = figures.find((x) => x.name === name);
  return f ? stat(f.values).median : NaN;
}

/** A goal "value < limit": not judged when the value is not a number. */
export function goalBelow(text: string, value: number, limit: number, unit: string): Goal {
  if (!Number.isFinite(value)) return { text, met: null, detail: 'figure missing' };
  return { text, met: value < limit, detail: `median ${fmtNum(value)} ${unit} vs limit ${fmtNum(limit)} ${unit}` };
}

/** A goal "value >= ratio x reference". */
export function goalRatioAtLeast(text: string, value: number, reference: number, ratio: number): Goal {
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference <= 0) return { text, met: null, detail: 'figure missing' };
  const r = value / reference;
  return { text, met: r >= ratio, detail: `${fmtNum(r)}x (need ≥ ${ratio}x)` };
}

/**
 * Linear growth: going from each size to the next larger one, the cost per object grows by at most
 * `tolerance` x (constant overhead makes small sizes look worse, never better, so a super-linear
 * audit shows as a rising ms/object between the larger sizes). The worst step is reported.
 */
export function goalLinear(text: string, perObject: { size: number; msPerObject: number }[], tolerance = 1.5): Goal {
  const ok = perObject.filter((p) => Number.isFinite(p.msPerObject) && p.msPerObject > 0);
  if (ok.length < 2) return { text, met: null, detail: 'fewer than two sizes measured' };
  const sorted = [...ok].sort((a, b) => a.size - b.size);
  let worst = { r: -Infinity, from: sorted[0]!, to: sorted[1]! };
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!.msPerObject / sorted[i - 1]!.msPerObject;
    if (r > worst.r) worst = { r, from: sorted[i - 1]!, to: sorted[i]! };
  }
  const list = sorted.map((p) => `${fmtNum(p.msPerObject)} at ${p.size.toLocaleString('en-US')}`).join(', ');
  return {
    text,
    met: worst.r <= tolerance,
    detail: `ms/object: ${list}; worst step ${worst.from.size.toLocaleString('en-US')} → ${worst.to.size.toLocaleString('en-US')}: ${fmtNum(worst.r)}x (linear if ≤ ${tolerance}x)`,
  };
}

/** Memory flat: peak RSS at the largest size within `tolerance` x of the smallest. */
export function goalFlatMemory(text: string, rss: { size: number; bytes: number }[], tolerance = 1.5): Goal {
  const ok = rss.filter((p) => Number.isFinite(p.bytes) && p.bytes > 0);
  if (ok.length < 2) return { text, met: null, detail: 'fewer than two sizes measured' };
  const sorted = [...ok].sort((a, b) => a.size - b.size);
  const small = sorted[0]!;
  const large = sorted[sorted.length - 1]!;
  const r = large.bytes / small.bytes;
  return {
    text,
    met: r <= tolerance,
    detail: `${fmtBytes(large.bytes)} at ${large.size.toLocaleString('en-US')} keys vs ${fmtBytes(small.bytes)} at ${small.size.toLocaleString('en-US')}: ${fmtNum(r)}x (flat if ≤ ${tolerance}x)`,
  };
}

/** Parse GNU time -v output: "Maximum resident set size (kbytes): 12345" → bytes. */
export function parseTimeV(stderr: string): { maxRssBytes?: number; wallMs?: number } {
  const out: { maxRssBytes?: number; wallMs?: number } = {};
  const rss = /Maximum resident set size \(kbytes\):\s*(\d+)/.exec(stderr);
  if (rss) out.maxRssBytes = Number(rss[1]) * 1024;
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\):\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)/.exec(stderr);
  if (wall) out.wallMs = Math.round(((Number(wall[1] ?? 0) * 60 + Number(wall[2])) * 60 + Number(wall[3])) * 1000);
  return out;
}

export interface BenchArgs {
  quick: boolean;
  write: boolean;
  only?: string;
  out?: string;
  reps?: number;
  help: boolean;
}

export function parseArgs(argv: string[]): BenchArgs {
  const a: BenchArgs = { quick: false, write: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--') continue;
    else if (x === '--quick') a.quick = true;
    else if (x === '--write') a.write = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else if (x === '--only' || x === '--out' || x === '--reps') {
      const v = argv[++i];
      if (!v || v.startsWith('--')) throw new Error(`${x} needs a value`);
      if (x === '--only') a.only = v;
      else if (x === '--out') a.out = v;
      else {
        a.reps = Number(v);
        if (!Number.isInteger(a.reps) || a.reps < 1) throw new Error(`--reps must be a positive integer, got ${v}`);
      }
    } else if (x.startsWith('--only=')) a.only = x.slice(7);
    else if (x.startsWith('--out=')) a.out = x.slice(6);
    else throw new Error(`unknown argument ${x}`);
  }
  return a;
}
