// Go-style timestamps. Cordum marshals time.Time as RFC3339Nano (trailing zero digits trimmed),
// so the sandbox does too. JS clocks only have ms; hrtime supplies the sub-ms digits so that
// consecutive events still sort and look like Go's.
const originNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** Nanoseconds since the epoch, monotonic within this process. */
export function nowNs(): bigint {
  return originNs + process.hrtime.bigint();
}

/** RFC3339Nano in UTC, trailing fractional zeros removed, as Go's time.Time JSON. */
export function formatRfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${frac ? `.${frac}` : ''}Z`;
}

export function rfc3339Now(): string {
  return formatRfc3339Nano(nowNs());
}

/** An RFC3339 timestamp for a ms instant (used for next_attempt_at, which is ms-based). */
export function rfc3339FromMs(ms: number): string {
  return formatRfc3339Nano(BigInt(Math.round(ms)) * 1_000_000n);
}

/** Parses RFC3339 (any fractional precision) to epoch ms; NaN when invalid. */
export function parseRfc3339Ms(s: string | undefined | null): number {
  if (!s) return NaN;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return NaN;
  // Date parses at most ms precision; cut longer fractions so it does not reject them.
  return Date.parse(s.replace(/(\.\d{3})\d+/, '$1'));
}

export function unixSecondsFromRfc3339(s: string): number {
  return Math.floor(parseRfc3339Ms(s) / 1000);
}

/**
 * Cordum's cursor normalisation: values are taken as seconds, and ms/µs/ns are recognised
 * by magnitude.
 */
export function normaliseToSeconds(v: number): number {
  if (v >= 1e17) return Math.floor(v / 1e9);
  if (v >= 1e14) return Math.floor(v / 1e6);
  if (v >= 1e11) return Math.floor(v / 1e3);
  return Math.floor(v);
}

/** A query timestamp given either as RFC3339 or as a number in any unit → unix seconds; NaN if invalid. */
export function parseTimeParamSeconds(raw: string): number {
  const t = raw.trim();
  if (/^-?\d+$/.test(t)) return normaliseToSeconds(Number(t));
  const ms = parseRfc3339Ms(t);
  return Number.isNaN(ms) ? NaN : Math.floor(ms / 1000);
}
